//! Switching from Reloader in one step, against the real plane: `hashroll run` starts with
//! every flag of Reloader v1.4 and v2 and with every one of Reloader's environment names,
//! and each does what it says (or its start-up line says what hashroll does instead); and
//! `hashroll migrate --from-reloader --chart-values` turns the Deployment that Reloader's own
//! Helm chart renders (fetched from its Go module by hack/fetch-reloader-chart.sh), and the
//! values file it came from, into hashroll chart values that render to the same behaviour.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use serde_json::Value;
use support::*;

const WAIT: Duration = Duration::from_secs(60);

/// A free loopback port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits until hashroll's log contains `line`.
async fn log_says(h: &Hashroll, line: &str) {
    wait_for(&format!("the log to say {line:?}"), WAIT, || {
        let found = h.log().contains(line);
        async move { found.then_some(()) }
    })
    .await;
}

/// Waits for the Lease `name` in `ns` to be held by `identity`.
async fn lease_held(client: &kube::Client, ns: &str, name: &str, identity: &str) -> Lease {
    let api: kube::Api<Lease> = kube::Api::namespaced(client.clone(), ns);
    wait_for(
        &format!("Lease {ns}/{name} held by {identity}"),
        WAIT,
        || {
            let api = api.clone();
            async move {
                let l = api.get_opt(name).await.ok().flatten()?;
                let holder = l.spec.as_ref()?.holder_identity.clone()?;
                (holder == identity).then_some(l)
            }
        },
    )
    .await
}

fn app(ns: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: cfg, namespace: {ns}}}
data: {{v: "1"}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
  annotations:
    reloader.stakater.com/auto: "true"
    deployment.reloader.stakater.com/pause-period: "1h"
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: c
        image: busybox
        envFrom: [{{configMapRef: {{name: cfg}}}}]
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn every_reloader_flag_starts_hashroll_and_does_what_it_says() {
    let client = client().await;
    let ns = namespace("rlflags");
    kubectl(&["label", "namespace", &ns, "migrating=yes"]);
    let lease_ns = namespace("rllease");
    let (health, pprof) = (free_port(), free_port());
    let flags: Vec<String> = [
        "--auto-reload-all=false",
        "--configmap-annotation=configmap.reloader.stakater.com/reload",
        "--secret-annotation=secret.reloader.stakater.com/reload",
        "--auto-annotation=reloader.stakater.com/auto",
        "--ignore-annotation=reloader.stakater.com/ignore",
        "--configmap-auto-annotation=configmap.reloader.stakater.com/auto",
        "--secret-auto-annotation=secret.reloader.stakater.com/auto",
        "--auto-search-annotation=reloader.stakater.com/search",
        "--search-match-annotation=reloader.stakater.com/match",
        "--configmap-exclude-annotation=configmaps.exclude.reloader.stakater.com/reload",
        "--secret-exclude-annotation=secrets.exclude.reloader.stakater.com/reload",
        "--secretproviderclass-auto-annotation=secretproviderclass.reloader.stakater.com/auto",
        "--secretproviderclass-annotation=secretproviderclass.reloader.stakater.com/reload",
        "--secretproviderclass-exclude-annotation=secretproviderclasses.exclude.reloader.stakater.com/reload",
        "--pause-deployment-annotation=deployment.reloader.stakater.com/pause-period",
        "--pause-deployment-time-annotation=example.com/paused-at",
        "--log-format=",
        "--log-level=info",
        "--webhook-url=",
        "--resources-to-ignore=Secrets",
        "--ignored-workload-types=jobs",
        "--ignored-workload-types=cronjobs",
        "--namespaces-to-ignore=kube-system",
        // as Reloader's chart passes it, quotes and all
        "--namespace-selector=\"migrating=yes\"",
        "--resource-label-selector=",
        "--is-Argo-Rollouts=false",
        "--is-openshift=false",
        "--reload-strategy=annotations",
        "--reload-on-create=true",
        "--reload-on-delete=true",
        "--enable-ha=true",
        "--sync-after-restart",
        "--enable-pprof",
        "--enable-csi-integration=false",
        "--leader-election-id=rl-lease",
        "--leader-election-lease-duration=6s",
        "--leader-election-renew-deadline=4s",
        "--leader-election-retry-period=1s",
        "--leader-election-release-on-cancel=true",
        "--alert-on-reload=false",
        "--alert-webhook-url=",
        "--alert-sink=webhook",
        "--alert-proxy=",
        "--alert-additional-info=eu-1",
        "--alert-structured=true",
    ]
    .into_iter()
    .map(String::from)
    .chain([
        format!("--leader-election-namespace={lease_ns}"),
        format!("--pprof-addr=127.0.0.1:{pprof}"),
        format!("--health-addr=127.0.0.1:{health}"),
    ])
    .collect();
    // every Reloader flag is in the list above (the unit test holds the list to `run`)
    let given: Vec<&str> = flags
        .iter()
        .filter_map(|f| f.strip_prefix("--"))
        .map(|f| f.split('=').next().unwrap_or(f))
        .collect();
    for f in [
        "auto-reload-all",
        "log-format",
        "log-level",
        "is-Argo-Rollouts",
        "is-openshift",
        "reload-strategy",
        "sync-after-restart",
        "enable-pprof",
        "pprof-addr",
        "health-addr",
        "leader-election-id",
        "leader-election-namespace",
        "leader-election-lease-duration",
        "leader-election-renew-deadline",
        "leader-election-retry-period",
        "leader-election-release-on-cancel",
        "pause-deployment-time-annotation",
        "alert-proxy",
        "alert-structured",
    ] {
        assert!(given.contains(&f), "--{f} is not given");
    }
    let flag_refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    let h = Hashroll::for_namespace(&ns, &flag_refs).await;

    // the replaced flags say what hashroll does instead
    log_says(
        &h,
        "--reload-strategy=annotations: hashroll always rolls by one pod-template annotation",
    )
    .await;
    log_says(
        &h,
        "--sync-after-restart: hashroll always catches up at start",
    )
    .await;
    log_says(&h, "--alert-structured: hashroll's raw alert sink").await;
    log_says(
        &h,
        "--is-openshift=false: DeploymentConfigs are not watched",
    )
    .await;
    // the leader-election flags: the Lease of that name, in that namespace, with that duration
    let lease = lease_held(&client, &lease_ns, "rl-lease", &h.identity()).await;
    assert_eq!(lease.spec.and_then(|s| s.lease_duration_seconds), Some(6));
    // --health-addr serves the probes; --enable-pprof a CPU profile
    let healthz = reqwest::get(format!("http://127.0.0.1:{health}/healthz"))
        .await
        .expect("health address answers");
    assert!(healthz.status().is_success());
    let profile = reqwest::get(format!(
        "http://127.0.0.1:{pprof}/debug/pprof/profile?seconds=1"
    ))
    .await
    .expect("pprof address answers");
    assert!(profile.status().is_success(), "{}", profile.status());
    let body = profile.bytes().await.unwrap();
    assert!(body.len() > 16, "a profile, not {} bytes", body.len());

    // a roll in the selected namespace (quoted selector), and the pause-period marked
    // under --pause-deployment-time-annotation's name
    apply(&ns, &app(&ns));
    let deployments: kube::Api<Deployment> = kube::Api::namespaced(client.clone(), &ns);
    wait_for("web stamped at admission", WAIT, || {
        let d = deployments.clone();
        async move {
            let d = d.get("web").await.ok()?;
            record_of(d.metadata.annotations.as_ref()).map(|_| ())
        }
    })
    .await;
    patch_cm(&ns, "cfg", r#"{"v":"2"}"#);
    let d = wait_for(
        "web rolled and paused with example.com/paused-at",
        WAIT,
        || {
            let d = deployments.clone();
            async move {
                let d = d.get("web").await.ok()?;
                let marked = d
                    .metadata
                    .annotations
                    .as_ref()?
                    .contains_key("example.com/paused-at");
                marked.then_some(d)
            }
        },
    )
    .await;
    assert_eq!(d.spec.paused, Some(true));
    assert!(
        !d.metadata
            .annotations
            .unwrap_or_default()
            .contains_key("deployment.reloader.stakater.com/paused-at"),
        "the default name is not written when another is given"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_reloader_environment_name_is_read() {
    let client = client().await;
    let ns = namespace("rlenv");
    let lease_ns = namespace("rlenvlease");
    let mut h = Hashroll::prepare(&[]);
    h.launch.issue_cert(plane()).unwrap();
    let pprof = free_port();
    let env: Vec<(&str, String)> = vec![
        ("AUTO_RELOAD_ALL", "false".into()),
        (
            "CONFIGMAP_ANNOTATION",
            "configmap.reloader.stakater.com/reload".into(),
        ),
        (
            "SECRET_ANNOTATION",
            "secret.reloader.stakater.com/reload".into(),
        ),
        ("AUTO_ANNOTATION", "reloader.stakater.com/auto".into()),
        ("IGNORE_ANNOTATION", "reloader.stakater.com/ignore".into()),
        (
            "CONFIGMAP_AUTO_ANNOTATION",
            "configmap.reloader.stakater.com/auto".into(),
        ),
        (
            "SECRET_AUTO_ANNOTATION",
            "secret.reloader.stakater.com/auto".into(),
        ),
        (
            "AUTO_SEARCH_ANNOTATION",
            "reloader.stakater.com/search".into(),
        ),
        (
            "SEARCH_MATCH_ANNOTATION",
            "reloader.stakater.com/match".into(),
        ),
        (
            "CONFIGMAP_EXCLUDE_ANNOTATION",
            "configmaps.exclude.reloader.stakater.com/reload".into(),
        ),
        (
            "SECRET_EXCLUDE_ANNOTATION",
            "secrets.exclude.reloader.stakater.com/reload".into(),
        ),
        (
            "SECRETPROVIDERCLASS_AUTO_ANNOTATION",
            "secretproviderclass.reloader.stakater.com/auto".into(),
        ),
        (
            "SECRETPROVIDERCLASS_ANNOTATION",
            "secretproviderclass.reloader.stakater.com/reload".into(),
        ),
        (
            "SECRETPROVIDERCLASS_EXCLUDE_ANNOTATION",
            "secretproviderclasses.exclude.reloader.stakater.com/reload".into(),
        ),
        (
            "PAUSE_DEPLOYMENT_ANNOTATION",
            "deployment.reloader.stakater.com/pause-period".into(),
        ),
        (
            "PAUSE_DEPLOYMENT_TIME_ANNOTATION",
            "example.com/paused-at".into(),
        ),
        ("LOG_FORMAT", "text".into()),
        // posted to instead of rolling: nothing here rolls
        ("WEBHOOK_URL", "http://127.0.0.1:9/post".into()),
        ("RESOURCES_TO_IGNORE", "secrets".into()),
        ("IGNORED_WORKLOAD_TYPES", "jobs".into()),
        ("NAMESPACES", ns.clone()),
        ("NAMESPACES_TO_IGNORE", "kube-system".into()),
        ("NAMESPACE_SELECTOR", "kubernetes.io/metadata.name".into()),
        ("RESOURCE_LABEL_SELECTOR", "app".into()),
        ("IS_ARGO_ROLLOUTS", "false".into()),
        ("IS_OPENSHIFT", "false".into()),
        ("RELOAD_STRATEGY", "env-vars".into()),
        ("RELOAD_ON_CREATE", "false".into()),
        ("RELOAD_ON_DELETE", "false".into()),
        ("ENABLE_HA", "true".into()),
        ("SYNC_AFTER_RESTART", "true".into()),
        ("ENABLE_PPROF", "true".into()),
        ("PPROF_ADDR", format!("127.0.0.1:{pprof}")),
        ("ENABLE_CSI_INTEGRATION", "false".into()),
        ("LEADER_ELECTION_ID", "env-lease".into()),
        ("LEADER_ELECTION_NAMESPACE", lease_ns.clone()),
        ("LEADER_ELECTION_LEASE_DURATION", "8s".into()),
        ("LEADER_ELECTION_RENEW_DEADLINE", "5s".into()),
        ("LEADER_ELECTION_RETRY_PERIOD", "1s".into()),
        ("LEADER_ELECTION_RELEASE_ON_CANCEL", "true".into()),
        ("HEALTH_ADDR", format!("127.0.0.1:{}", free_port())),
        ("ALERT_ON_RELOAD", "false".into()),
        ("ALERT_WEBHOOK_URL", "http://127.0.0.1:9/alert".into()),
        ("ALERT_SINK", "webhook".into()),
        ("ALERT_PROXY", "http://127.0.0.1:9".into()),
        ("ALERT_ADDITIONAL_INFO", "eu-1".into()),
        ("ALERT_STRUCTURED", "true".into()),
        // Reloader v1's own names
        ("ALERT_WEBHOOK_PROXY", "http://127.0.0.1:8".into()),
        ("KUBERNETES_NAMESPACE", ns.clone()),
        ("RELOADER_NAMESPACE", lease_ns.clone()),
        ("RELOADER_DEPLOYMENT_NAME", "reloader-reloader".into()),
        // set by the harness as flags: the flag wins, the name is not reported as read
        ("LOG_LEVEL", "error".into()),
        ("METRICS_ADDR", ":1".into()),
    ];
    h.env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    h.restart().await;
    // shadowed: by a flag on the command line, or by a name read before it for that flag
    let shadowed = [
        "LOG_LEVEL",
        "METRICS_ADDR",
        "KUBERNETES_NAMESPACE",
        "ALERT_WEBHOOK_PROXY",
    ];
    for (var, _) in &env {
        let said = format!("read Reloader's {var} as --");
        if shadowed.contains(var) {
            assert!(!h.log().contains(&said), "{var} was shadowed, yet reported");
        } else {
            log_says(&h, &said).await;
        }
    }
    // the effects: the Lease by Reloader's names; reload on create off; the profile
    let lease = lease_held(&client, &lease_ns, "env-lease", &h.identity()).await;
    assert_eq!(lease.spec.and_then(|s| s.lease_duration_seconds), Some(8));
    let profile = reqwest::get(format!(
        "http://127.0.0.1:{pprof}/debug/pprof/profile?seconds=1"
    ))
    .await
    .expect("pprof address answers");
    assert!(profile.status().is_success());
    log_says(&h, "--reload-strategy=env-vars").await;
}

/// Reloader's chart rendered with `sets`; its Deployment.
fn reloader_deployment(chart: &str, ns: &str, sets: &[&str]) -> Value {
    let out = support::helm::template("reloader", chart, ns, sets, &[])
        .expect("Reloader's chart renders");
    let list = as_list(&out);
    items(&list)
        .into_iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("a Deployment")
}

fn migrate(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hashroll"))
        .args(["migrate", "--from-reloader", "--chart-values"])
        .args(args)
        .env("KUBECONFIG", plane().kubeconfig())
        .output()
        .expect("run hashroll migrate");
    assert!(
        out.status.success(),
        "migrate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The args of the hashroll Deployment the chart renders with `values` (a file).
fn hashroll_args(values: &std::path::Path) -> Vec<String> {
    let chart = format!("{}/charts/hashroll", root());
    let out = support::helm::template("hashroll", &chart, "hashroll", &[], &[values])
        .expect("hashroll's chart renders the migrated values");
    let d = items(&as_list(&out))
        .into_iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("hashroll's Deployment");
    d["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str().map(String::from))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_turns_reloaders_chart_into_hashroll_values() {
    let chart_dir = std::process::Command::new("bash")
        .arg(format!("{}/hack/fetch-reloader-chart.sh", root()))
        .output()
        .expect("fetch Reloader's chart");
    assert!(
        chart_dir.status.success(),
        "{}",
        String::from_utf8_lossy(&chart_dir.stderr)
    );
    let chart = String::from_utf8_lossy(&chart_dir.stdout)
        .trim()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    // (Reloader chart values, hashroll args wanted, hashroll args not wanted)
    let cases: &[(&[&str], &[&str], &[&str])] = &[
        (
            &[],
            &["--reload-on-create=false", "--reload-on-delete=false"],
            &["--enable-ha"],
        ),
        (
            &[
                "reloader.reloadOnCreate=true",
                "reloader.ignoreSecrets=true",
                "reloader.ignoreJobs=true",
                "reloader.ignoreCronJobs=true",
                "reloader.logFormat=json",
                "reloader.ignoreNamespaces=kube-system",
            ],
            &[
                "--reload-on-delete=false",
                "--resources-to-ignore=secrets",
                "--ignored-workload-types=jobs,cronjobs",
                "--log-format=json",
                "--namespaces-to-ignore=kube-system",
            ],
            &["--reload-on-create=false"],
        ),
        (
            &[
                "reloader.enableHA=true",
                "reloader.deployment.replicas=2",
                "reloader.namespaceSelector=team=a",
                "reloader.autoReloadAll=true",
                "reloader.reloadStrategy=annotations",
            ],
            &[
                "--enable-ha",
                "--namespace-selector=team=a",
                "--auto-reload-all",
            ],
            &[],
        ),
        (
            &[
                "reloader.watchGlobally=false",
                "reloader.custom_annotations.auto=example.com/auto",
                "reloader.enableMetricsByNamespace=true",
            ],
            &[
                "--namespaces=hashroll",
                "--auto-annotation=example.com/auto",
            ],
            &[],
        ),
    ];
    for (i, (sets, want, not_want)) in cases.iter().enumerate() {
        let ns = namespace("rlmig");
        // the running Reloader: its chart's Deployment on the plane (no node needed)
        let mut d = reloader_deployment(&chart, &ns, sets);
        d["metadata"]["namespace"] = Value::String(ns.clone());
        kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &d.to_string());
        let name = d["metadata"]["name"].as_str().unwrap().to_string();
        let from_cluster = migrate(&[&format!("--reloader-deployment={ns}/{name}")]);
        // the values file the same Deployment came from
        let mut yaml = String::from("reloader:\n");
        for s in sets.iter() {
            let (k, v) = s.split_once('=').unwrap();
            let path: Vec<&str> = k.trim_start_matches("reloader.").split('.').collect();
            for (depth, p) in path.iter().enumerate() {
                let indent = "  ".repeat(depth + 1);
                if depth + 1 == path.len() {
                    yaml.push_str(&format!("{indent}{p}: {v}\n"));
                } else {
                    yaml.push_str(&format!("{indent}{p}:\n"));
                }
            }
        }
        let values_file = dir.path().join(format!("reloader-{i}.yaml"));
        std::fs::write(&values_file, &yaml).unwrap();
        let from_file = migrate(&[&format!("--values={}", values_file.display())]);
        for (what, values) in [("cluster", &from_cluster), ("values file", &from_file)] {
            assert!(
                values.contains("reloadOnCreate:") && values.contains("reloadOnDelete:"),
                "{what}: both defaults written:\n{values}"
            );
            let out = dir.path().join(format!("hashroll-{i}-{what}.yaml"));
            std::fs::write(&out, values).unwrap();
            let args = hashroll_args(&out);
            for w in *want {
                assert!(
                    args.iter().any(|a| a == w),
                    "case {i} ({what}): {w} missing from {args:?}\nvalues:\n{values}"
                );
            }
            for w in *not_want {
                assert!(
                    !args.iter().any(|a| a == w),
                    "case {i} ({what}): {w} in {args:?}\nvalues:\n{values}"
                );
            }
        }
    }
}
