//! The Helm chart, checked by Helm itself (built from its Go module) and the real plane:
//! `helm lint --strict`; for each certificate mode the chart and the kustomize overlay make
//! the same objects (they never drift); every documented values combination renders, passes
//! a server-side dry run, and gives `hashroll run` flags it accepts; values.schema.json
//! refuses a misspelt key, a wrong type and Reloader's `reloader:` block, naming the key;
//! every value is in the chart's README; and `helm install` on the plane, with hashroll run
//! outside it on the chart's ServiceAccount token, passes the seed walk-through.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use base64::Engine;
use serde_json::Value;
use support::*;
fn chart() -> String {
    format!("{}/charts/hashroll", root())
}

/// Helm against the plane.
fn helm(args: &[&str]) -> Result<String, String> {
    support::helm::helm(plane().kubeconfig(), args)
}

/// The plane's Kubernetes version (offline, Helm would take v1.20.0).
fn kube_version() -> String {
    hashroll_harness::plane::version("KUBERNETES_VERSION").to_string()
}

/// `helm template hashroll CHART -n hashroll` with `--set` values.
fn template(sets: &[&str]) -> Result<String, String> {
    support::helm::template("hashroll", &chart(), "hashroll", sets, &[])
}

/// The labels only Helm adds (release bookkeeping); everything else must match.
const HELM_LABELS: [&str; 4] = [
    "helm.sh/chart",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
];

/// kind/namespace/name → object, the Namespace left out (Helm installs into one), Helm's
/// own labels dropped.
fn objects(list: &Value) -> BTreeMap<String, Value> {
    items(list)
        .into_iter()
        .filter(|o| o["kind"] != "Namespace")
        .map(|mut o| {
            if let Some(l) = o["metadata"]["labels"].as_object_mut() {
                for k in HELM_LABELS {
                    l.remove(k);
                }
            }
            let key = format!(
                "{}/{}/{}",
                o["kind"].as_str().unwrap_or_default(),
                o["metadata"]["namespace"].as_str().unwrap_or_default(),
                o["metadata"]["name"].as_str().unwrap_or_default()
            );
            (key, o)
        })
        .collect()
}

/// Stand-in CRDs of the kinds the chart can make beyond the core ones, established.
async fn install_crds() {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_init(|| async {
        let mut kinds = CERT_MANAGER_KINDS.to_vec();
        for kind in ["PodMonitor", "ServiceMonitor", "PrometheusRule"] {
            kinds.push(("monitoring.coreos.com", kind));
        }
        install_stand_in_crds(&kinds).await;
        kubectl(&["create", "namespace", "hashroll"]);
    })
    .await;
}

#[tokio::test]
async fn the_chart_lints_and_makes_what_the_kustomize_overlays_make() {
    install_crds().await;
    let chart = chart();
    for mode in ["self-managed", "cert-manager", "secret"] {
        let set = format!("certificates.mode={mode}");
        let kv = kube_version();
        helm(&[
            "lint",
            "--strict",
            &chart,
            "--set",
            &set,
            "--kube-version",
            &kv,
        ])
        .unwrap_or_else(|e| panic!("{e}"));
    }
    for (mode, dir) in [
        ("secret", "manifests"),
        ("self-managed", "manifests/overlays/self-managed"),
        ("cert-manager", "manifests/overlays/cert-manager"),
    ] {
        let from_chart = objects(&as_list(
            &template(&[&format!("certificates.mode={mode}")]).unwrap(),
        ));
        let from_kustomize = objects(&as_list(&kubectl(&[
            "kustomize",
            &format!("{}/{dir}", root()),
        ])));
        assert_eq!(
            from_chart.keys().collect::<Vec<_>>(),
            from_kustomize.keys().collect::<Vec<_>>(),
            "{mode}: the objects"
        );
        for (k, o) in &from_chart {
            assert_eq!(
                o,
                &from_kustomize[k],
                "{mode}: {k} differs between the chart and {dir}:\nchart: {}\nkustomize: {}",
                serde_json::to_string_pretty(o).unwrap(),
                serde_json::to_string_pretty(&from_kustomize[k]).unwrap()
            );
        }
    }
}

/// Whether a rendered ClusterRole grants every one of `verbs` on core `resource`.
fn grants(list: &Value, resource: &str, verbs: &[&str]) -> bool {
    grants_in(list, "", resource, verbs)
}

/// Whether a ClusterRole of the list grants `verbs` on `group`'s `resource`.
fn grants_in(list: &Value, group: &str, resource: &str, verbs: &[&str]) -> bool {
    items(list)
        .iter()
        .filter(|o| o["kind"] == "ClusterRole")
        .flat_map(|o| o["rules"].as_array().cloned().unwrap_or_default())
        .any(|r| {
            let has = |field: &str, v: &str| {
                r[field]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == v))
            };
            has("apiGroups", group)
                && has("resources", resource)
                && verbs.iter().all(|v| has("verbs", v))
        })
}

/// The container args of the rendered Deployment.
fn args_of(list: &Value) -> Vec<String> {
    let d = items(list)
        .into_iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("a Deployment");
    d["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// `hashroll run ARGS --check`, the serving-certificate paths pointed at real files.
fn hashroll_accepts(args: &[String], dir: &Path) -> Result<(), String> {
    let cert = rcgen::generate_simple_self_signed(vec!["hashroll.hashroll.svc".into()]).unwrap();
    std::fs::write(dir.join("tls.crt"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("tls.key"), cert.signing_key.serialize_pem()).unwrap();
    let tls = format!("{}/", dir.display());
    std::fs::create_dir_all(dir.join("client-ca")).unwrap();
    std::fs::write(dir.join("client-ca/ca.crt"), cert.cert.pem()).unwrap();
    let client_ca = format!("{}/client-ca/", dir.display());
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("/tls/", &tls).replace("/client-ca/", &client_ca))
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_hashroll"))
        .args(&args)
        .arg("--check")
        .env_remove("HASHROLL_LOG_LEVEL")
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Every documented values combination: (values, a flag the Deployment must then carry, or
/// "" for none).
const COMBOS: &[(&[&str], &str)] = &[
    (&[], "--self-managed-certs"),
    (
        &["certificates.mode=secret"],
        "--tls-cert-file=/tls/tls.crt",
    ),
    (
        &["certificates.mode=cert-manager"],
        "--tls-key-file=/tls/tls.key",
    ),
    (
        &["certificates.secretName=other-tls"],
        "--tls-secret=other-tls",
    ),
    (&["enableHA=false", "replicaCount=1"], ""),
    (&["watchGlobally=false"], "--namespaces=hashroll"),
    (&["namespaces={a,b}"], "--namespaces=a,b"),
    (&["ignoreNamespaces={c,d}"], "--namespaces-to-ignore=c,d"),
    (&["namespaceSelector=team=x"], "--namespace-selector=team=x"),
    (
        &["resourceLabelSelector=reload=yes"],
        "--resource-label-selector=reload=yes",
    ),
    (&["ignoreSecrets=true"], "--resources-to-ignore=secrets"),
    (
        &["ignoreConfigMaps=true"],
        "--resources-to-ignore=configMaps",
    ),
    (
        &["ignoreJobs=true", "ignoreCronJobs=true"],
        "--ignored-workload-types=jobs,cronjobs",
    ),
    (&["isArgoRollouts=false"], "--is-argo-rollouts=false"),
    (&["isArgoRollouts=true"], "--is-argo-rollouts=true"),
    (&["reloadOnCreate=false"], "--reload-on-create=false"),
    (&["reloadOnDelete=false"], "--reload-on-delete=false"),
    (&["autoReloadAll=true"], "--auto-reload-all"),
    (&["maxConcurrentRollouts=5"], "--max-concurrent-rollouts=5"),
    (
        &["windowNamespaceLabel=example.com/rolls"],
        "--window-namespace-label=example.com/rolls",
    ),
    (&["rolloutTimeout=15m"], "--rollout-timeout=15m"),
    (&["paused=true"], "--paused"),
    (&["enableCSIIntegration=true"], "--enable-csi-integration"),
    (
        &["cronjobRunOnChange=false"],
        "--cronjob-run-on-change=false",
    ),
    (&["logFormat=json", "logLevel=debug"], "--log-format=json"),
    (
        &["extraArgs={--coalesce-window=5s}"],
        "--coalesce-window=5s",
    ),
    (&["extraEnv[0].name=X", "extraEnv[0].value=y"], ""),
    (&["image.tag=9.9.9", "image.pullPolicy=Always"], ""),
    (
        &["podDisruptionBudget.enabled=false", "topologySpread=false"],
        "",
    ),
    (
        &[
            "nodeSelector.disk=ssd",
            "priorityClassName=system-cluster-critical",
        ],
        "",
    ),
    (
        &["tolerations[0].key=k", "tolerations[0].operator=Exists"],
        "",
    ),
    (
        &[
            "affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight=1",
            "affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].preference.matchExpressions[0].key=infra",
            "affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].preference.matchExpressions[0].operator=Exists",
            "podAnnotations.team=platform",
            "imagePullSecrets[0].name=regcred",
        ],
        "",
    ),
    // Reloader's chart takes a namespace list as one comma-separated string
    (&["ignoreNamespaces=c\\,d"], "--namespaces-to-ignore=c,d"),
    (
        &["podMonitor.enabled=true", "serviceMonitor.enabled=true"],
        "",
    ),
    (&["networkPolicy.enabled=true"], ""),
    (
        &[
            "alerts.onReload=true",
            "alerts.sink=slack",
            "alerts.existingSecret=hashroll-alerts",
            "alerts.additionalInfo=eu-1",
        ],
        "",
    ),
    // the URL is a secret: in a Secret, not in the Deployment (checked below)
    (&["webhookUrl=https://ci.example/hook"], ""),
    (&["webhookUrlExistingSecret=my-hook"], ""),
    (
        &["clientCA.existingSecret=apiserver-client-ca"],
        "--client-ca-file=/client-ca/ca.crt",
    ),
    (
        &["enableHA=true", "leaseName=my-lease"],
        "--lease-name=my-lease",
    ),
    (
        &[
            "prometheusRule.enabled=true",
            "prometheusRule.labels.release=kps",
            "grafanaDashboard.enabled=true",
            "enableMetricsByNamespace=true",
        ],
        "",
    ),
    (
        &[
            "webhook.url=https://127.0.0.1:9443/mutate",
            "webhook.caBundle=Cg==",
            "certificates.mode=secret",
        ],
        "",
    ),
    (
        &[
            "webhook.failurePolicy=Fail",
            "webhook.timeoutSeconds=3",
            "webhook.excludeNamespaces={kube-system,kube-public}",
        ],
        "",
    ),
];

#[tokio::test]
async fn every_values_combination_renders_dry_runs_and_gives_flags_hashroll_takes() {
    install_crds().await;
    let dir = tempfile::tempdir().unwrap();
    // audit 14: webhookUrl never in the Deployment, in a Secret it reads as environment
    let yaml = template(&["webhookUrl=https://ci.example/hook"]).unwrap();
    let docs: Vec<&str> = yaml.split("\n---").collect();
    let deployment = docs
        .iter()
        .find(|d| d.contains("kind: Deployment"))
        .unwrap();
    assert!(!deployment.contains("ci.example"), "{deployment}");
    assert!(deployment.contains("HASHROLL_WEBHOOK_URL"), "{deployment}");
    assert!(
        docs.iter()
            .any(|d| d.contains("kind: Secret") && d.contains("https://ci.example/hook")),
        "{yaml}"
    );
    for (sets, flag) in COMBOS {
        let yaml = template(sets).unwrap_or_else(|e| panic!("{sets:?}: {e}"));
        let list = as_list(&yaml);
        let args = args_of(&list);
        if !flag.is_empty() {
            assert!(
                args.iter().any(|a| a == flag),
                "{sets:?}: {flag} not in {args:?}"
            );
        }
        hashroll_accepts(&args, dir.path()).unwrap_or_else(|e| panic!("{sets:?}: {e}"));
        // namespaces are always watched (their pause and window; --namespace-selector)
        assert!(
            grants(&list, "namespaces", &["get", "list", "watch"]),
            "{sets:?}: no rights to watch namespaces"
        );
        // audit 14: Lease rights beyond create name the Lease hashroll uses
        let lease = args
            .iter()
            .find_map(|a| a.strip_prefix("--lease-name="))
            .unwrap_or("hashroll-leader");
        for rule in items(&list)
            .iter()
            .filter(|o| o["kind"] == "Role")
            .flat_map(|o| o["rules"].as_array().cloned().unwrap_or_default())
            .filter(|r| {
                r["resources"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == "leases"))
            })
        {
            let verbs = rule["verbs"].as_array().cloned().unwrap_or_default();
            if verbs.iter().any(|v| v != "create") {
                assert_eq!(
                    rule["resourceNames"],
                    serde_json::json!([lease]),
                    "{sets:?}: {rule}"
                );
            }
        }
        let csi = args.iter().any(|a| a == "--enable-csi-integration");
        for resource in ["secretproviderclasses", "secretproviderclasspodstatuses"] {
            let granted = grants_in(
                &list,
                "secrets-store.csi.x-k8s.io",
                resource,
                &["get", "list", "watch"],
            );
            assert_eq!(
                granted, csi,
                "{sets:?}: read of {resource} must come with --enable-csi-integration, only with it"
            );
        }
        let out = wait_for(&format!("{sets:?} to dry-run"), DEADLINE, || async {
            plane()
                .kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &yaml)
                .map_err(|e| eprintln!("{sets:?}: {e}"))
                .ok()
        })
        .await;
        assert!(
            out.contains("deployment.apps/hashroll created (server dry run)"),
            "{out}"
        );
        // what the values say is what was rendered
        let kinds: Vec<String> = items(&list)
            .iter()
            .map(|o| o["kind"].as_str().unwrap_or_default().to_string())
            .collect();
        let has = |k: &str| kinds.iter().any(|x| x == k);
        if sets.contains(&"podMonitor.enabled=true") {
            assert!(has("PodMonitor") && has("ServiceMonitor"), "{kinds:?}");
        }
        if sets.contains(&"prometheusRule.enabled=true") {
            let rule = items(&list)
                .into_iter()
                .find(|o| o["kind"] == "PrometheusRule")
                .expect("a PrometheusRule");
            // the groups of files/alerts.yaml, as they are
            assert_eq!(rule["spec"]["groups"][0]["name"], "hashroll", "{rule}");
            assert!(rule["spec"]["groups"][0]["rules"].as_array().unwrap().len() >= 7);
            let cm = items(&list)
                .into_iter()
                .find(|o| o["kind"] == "ConfigMap")
                .expect("the dashboard ConfigMap");
            assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
            let dash: Value =
                serde_json::from_str(cm["data"]["hashroll.json"].as_str().unwrap()).unwrap();
            assert_eq!(dash["uid"], "hashroll");
            let env = items(&list)
                .into_iter()
                .find(|o| o["kind"] == "Deployment")
                .unwrap()["spec"]["template"]["spec"]["containers"][0]["env"]
                .to_string();
            assert!(env.contains("METRICS_COUNT_BY_NAMESPACE"), "{env}");
        }
        if sets.contains(&"alerts.onReload=true") {
            let c = &items(&list)
                .into_iter()
                .find(|o| o["kind"] == "Deployment")
                .unwrap()["spec"]["template"]["spec"]["containers"][0];
            assert_eq!(
                c["envFrom"][0]["secretRef"]["name"], "hashroll-alerts",
                "{c}"
            );
            let env = c["env"].to_string();
            assert!(
                env.contains("ALERT_ON_RELOAD") && env.contains("eu-1"),
                "{env}"
            );
        }
        if sets.contains(&"networkPolicy.enabled=true") {
            assert!(has("NetworkPolicy"), "{kinds:?}");
        }
        if sets.contains(&"podDisruptionBudget.enabled=false") {
            assert!(!has("PodDisruptionBudget"), "{kinds:?}");
        }
    }
    // a wrong value is Helm's error, naming it, not a broken install
    let err = template(&["certificates.mode=bogus"]).unwrap_err();
    assert!(
        err.contains("mode") && err.contains("self-managed"),
        "{err}"
    );
    let err = template(&["alerts.onReload=true"]).unwrap_err();
    assert!(err.contains("needs alerts.existingSecret"), "{err}");
    let err = template(&["ignoreSecrets=true", "ignoreConfigMaps=true"]).unwrap_err();
    assert!(err.contains("leave nothing to track"), "{err}");
}

/// `helm template` of the chart with `--set` values and values files, without the plane:
/// Helm checks the values against values.schema.json before it renders anything.
fn render(sets: &[&str], files: &[&Path]) -> Result<String, String> {
    support::helm::template("hashroll", &chart(), "hashroll", sets, files)
}

#[test]
fn the_schema_refuses_a_misspelt_key_a_wrong_type_and_reloaders_block() {
    // the defaults and every documented combination pass it
    let yaml = render(&[], &[]).unwrap_or_else(|e| panic!("the defaults: {e}"));
    assert!(yaml.contains("kind: Deployment"), "{yaml}");
    for (sets, _) in COMBOS {
        render(sets, &[]).unwrap_or_else(|e| panic!("{sets:?}: {e}"));
    }
    // (values, the key Helm's error must name)
    let refused: &[(&[&str], &str)] = &[
        // a misspelt key, at the top and in a group
        (&["watchGlobaly=false"], "watchGlobaly"),
        (&["image.tags=1.0"], "tags"),
        (&["alerts.onreload=true"], "onreload"),
        // a wrong type: a number, a boolean, a list
        (&["replicaCount=abc"], "replicaCount"),
        (&["enableHA=yes"], "enableHA"),
        (&["ignoreSecrets=1"], "ignoreSecrets"),
        (&["extraArgs=--paused"], "extraArgs"),
        // a string the template does not take
        (&["certificates.mode=bogus"], "mode"),
        (&["logFormat=yaml"], "logFormat"),
        (&["webhook.failurePolicy=Never"], "failurePolicy"),
        (&["isArgoRollouts=maybe"], "isArgoRollouts"),
        (&["rolloutTimeout=soon"], "rolloutTimeout"),
        (&["webhook.timeoutSeconds=60"], "timeoutSeconds"),
        (&["webhook.url=http://plain.example/mutate"], "url"),
    ];
    for (sets, key) in refused {
        let Err(err) = render(sets, &[]) else {
            panic!("{sets:?} rendered: the schema must refuse it");
        };
        assert!(
            err.contains("schema") && err.contains(key),
            "{sets:?}: the error does not name {key}:\n{err}"
        );
    }
    // Reloader's chart nests its values under `reloader:`; a values file made for it is
    // refused as a whole, not silently ignored
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("reloader-values.yaml");
    std::fs::write(
        &file,
        "reloader:\n  watchGlobally: false\n  reloadOnCreate: true\n  ignoreSecrets: true\n",
    )
    .unwrap();
    let Err(err) = render(&[], &[&file]) else {
        panic!("a reloader: block rendered: the schema must refuse it");
    };
    assert!(err.contains("schema") && err.contains("reloader"), "{err}");
    // what the same values mean here, flat at the top, is taken
    std::fs::write(
        &file,
        "watchGlobally: false\nreloadOnCreate: true\nignoreSecrets: true\n",
    )
    .unwrap();
    let yaml = render(&[], &[&file]).unwrap_or_else(|e| panic!("{e}"));
    assert!(yaml.contains("--resources-to-ignore=secrets"), "{yaml}");
}

/// The chart README's values table, made from values.yaml: one row per leaf value (two-space
/// indented mappings; lists and `{}` are leaves) with its default and its `# --` comment.
fn values_table(text: &str) -> String {
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut comment: Vec<String> = Vec::new();
    let mut out = String::from("| value | default | |\n|---|---|---|\n");
    for line in text.lines() {
        let t = line.trim_start();
        if t.is_empty() {
            comment.clear();
            continue;
        }
        if let Some(c) = t.strip_prefix('#') {
            let c = c.trim();
            if let Some(first) = c.strip_prefix("-- ") {
                comment = vec![first.to_string()];
            } else if !comment.is_empty() {
                comment.push(c.to_string());
            }
            continue;
        }
        let indent = line.len() - t.len();
        let Some((key, rest)) = t.split_once(':') else {
            continue;
        };
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        let path = stack
            .iter()
            .map(|(_, k)| k.as_str())
            .chain([key])
            .collect::<Vec<_>>()
            .join(".");
        if rest.trim().is_empty() {
            stack.push((indent, key.to_string()));
        } else {
            let text = comment.join(" ").replace('|', "\\|");
            out.push_str(&format!("| `{path}` | `{}` | {text} |\n", rest.trim()));
        }
        comment.clear();
    }
    out
}

#[test]
fn the_chart_readme_table_is_made_from_values_yaml() {
    let values = std::fs::read_to_string(format!("{}/values.yaml", chart())).unwrap();
    let path = format!("{}/README.md", chart());
    let readme = std::fs::read_to_string(&path).unwrap();
    let table = values_table(&values);
    assert!(table.lines().count() > 40, "{table}");
    // every value documented
    for line in table.lines().skip(2) {
        assert!(
            line.ends_with(" |") && !line.ends_with("|  |"),
            "no `# --` comment: {line}"
        );
    }
    assert!(
        readme.contains(&table),
        "the values table of {path} is not the one values.yaml makes; it should read:\n{table}"
    );
}

#[tokio::test]
async fn helm_install_runs_the_seed_walk_through() {
    install_crds().await;
    let client = client().await;
    // hashroll outside the plane, on the chart's ServiceAccount; the chart's webhook calls it
    let mut h = Hashroll::start(&["--namespace=hashroll", "--namespaces=ns1"]).await;
    h.kill();
    let ca = base64::engine::general_purpose::STANDARD.encode(plane().ca_pem());
    let (url, bundle) = (
        format!("webhook.url={}", h.url("/mutate")),
        format!("webhook.caBundle={ca}"),
    );
    let chart = chart();
    let out = helm(&[
        "install",
        "hashroll",
        &chart,
        "-n",
        "hashroll",
        "--wait=false",
        "--set",
        "replicaCount=0",
        "--set",
        "certificates.mode=secret",
        "--set",
        &url,
        "--set",
        &bundle,
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("STATUS: deployed"), "{out}");
    let kubeconfig = service_account_kubeconfig(&h.dir, "hashroll", "hashroll");
    h.args = vec![
        "--namespace=hashroll".into(),
        "--namespaces=ns1".into(),
        "--enable-ha".into(),
        "--lease-duration=4s".into(),
    ];
    h.hmac_from_secret = true;
    h.kubeconfig = Some(kubeconfig);
    h.restart().await;

    kubectl(&["create", "namespace", "ns1"]);
    wait_webhook_active("ns1").await;
    kubectl(&[
        "apply",
        "-f",
        &format!("{}/examples/cm.yaml", root()),
        "-f",
        &format!("{}/examples/nginx-deploy.yaml", root()),
    ]);
    wait_rs(&client, "ns1", "app=nginx", 1).await;
    patch_cm(
        "ns1",
        "test-config-file",
        r#"{"info.yaml":"user=ted\nage=22\n"}"#,
    );
    wait_rs(&client, "ns1", "app=nginx", 2).await;
    patch_cm("ns1", "test-config-env", r#"{"CITY":"shenzhen"}"#);
    wait_rs(&client, "ns1", "app=nginx", 3).await;
    assert_rs_count_stays(&client, "ns1", "app=nginx", 3, SETTLE).await;
    let out = helm(&["uninstall", "hashroll", "-n", "hashroll"]).unwrap();
    assert!(out.contains("uninstalled"), "{out}");
}

/// What the GitOps page says of the NetworkPolicy rendered without a cluster (Argo CD's
/// `helm template`): the lookup finds nothing, the policy falls back to 10.0.0.0/8, and
/// `networkPolicy.apiserverCIDR` replaces it.
#[test]
fn the_network_policy_rendered_offline_falls_back_unless_told_the_apiserver() {
    let policy = |sets: &[&str]| {
        let out = template(sets).unwrap_or_else(|e| panic!("{e}"));
        out.split("\n---")
            .find(|d| d.contains("kind: NetworkPolicy"))
            .unwrap_or_else(|| panic!("no NetworkPolicy in\n{out}"))
            .to_string()
    };
    let fallback = policy(&["networkPolicy.enabled=true"]);
    assert!(fallback.contains("cidr: 10.0.0.0/8"), "{fallback}");
    let told = policy(&[
        "networkPolicy.enabled=true",
        "networkPolicy.apiserverCIDR=192.0.2.10/32",
    ]);
    assert!(told.contains("cidr: 192.0.2.10/32"), "{told}");
    assert!(!told.contains("10.0.0.0/8"), "{told}");
}
