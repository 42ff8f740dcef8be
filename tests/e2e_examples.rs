//! Every YAML file under `examples/` (each one a page of the documentation shows) against a
//! real control plane: objects pass a server-side dry run (in the namespaces they name,
//! made first; third-party kinds against stand-in CRDs), kustomizations render and pass
//! one, Helm values files render the chart and pass one, the apiserver's own files say what
//! the security page says. And the reload-list recipe does what its page promises, with
//! hashroll running: a key its volume's `items` leave out rolls nothing, the key it names
//! rolls once, a Secret the regex names joins the record when created and rolls on its
//! next change, the excluded one is never tracked.

mod support;

use std::path::{Path, PathBuf};

use support::*;

fn examples() -> PathBuf {
    PathBuf::from(root()).join("examples")
}

/// Every `.yaml` under `dir`, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// What a file under `examples/` is, by where it lives and its name.
#[derive(Debug, PartialEq)]
enum Example {
    /// a Helm values file of the chart (`values-*.yaml`)
    Values,
    /// a kustomization: its folder is rendered
    Kustomization,
    /// a file the apiserver reads (`security/apiserver/`), not an object
    ApiserverFile,
    /// Kubernetes objects
    Objects,
}

fn kind_of(p: &Path) -> Example {
    let name = p.file_name().unwrap().to_string_lossy();
    if name.starts_with("values-") {
        Example::Values
    } else if name == "kustomization.yaml" {
        Example::Kustomization
    } else if p.parent().unwrap().ends_with("security/apiserver") {
        Example::ApiserverFile
    } else {
        Example::Objects
    }
}

/// The number of documents of a multi-document YAML that are objects (a `kind:` at the
/// start of a line).
fn objects_in(yaml: &str) -> usize {
    yaml.lines().filter(|l| l.starts_with("kind:")).count()
}

/// The namespaces a file's objects name (`namespace:` lines), to make before a dry run.
fn namespaces_named(yaml: &str) -> Vec<String> {
    let mut out: Vec<String> = yaml
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("namespace: "))
        .map(|v| v.trim().trim_matches('"').to_string())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Makes the namespace if it is not there.
fn ensure_namespace(ns: &str) {
    kubectl_stdin(
        &["apply", "-f", "-"],
        &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"),
    );
}

/// Stand-ins for the CRDs of the tools the pages name (`(group, version, kind)`): any
/// content kept, so a dry run checks what the apiserver checks of any object (names,
/// namespaces, metadata), not the tools' own schemas.
async fn stand_in_crds(crds: &[(&str, &str, &str)]) {
    for (group, version, kind) in crds {
        let singular = kind.to_lowercase();
        let name = format!("{singular}s.{group}");
        kubectl_stdin(
            &["apply", "-f", "-"],
            &format!(
                "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
                 metadata: {{name: {name}}}\nspec:\n  group: {group}\n\
                 \x20 names: {{kind: {kind}, plural: {singular}s, singular: {singular}}}\n\
                 \x20 scope: Namespaced\n  versions:\n\
                 \x20 - {{name: {version}, served: true, storage: true, schema: {{openAPIV3Schema: \
                 {{type: object, x-kubernetes-preserve-unknown-fields: true}}}}}}\n"
            ),
        );
        wait_for(&format!("{name} established"), DEADLINE, || async {
            let s = plane()
                .kubectl(&[
                    "get",
                    "crd",
                    &name,
                    "-o",
                    r#"jsonpath={.status.conditions[?(@.type=="Established")].status}"#,
                ])
                .ok()?;
            (s.trim() == "True").then_some(())
        })
        .await;
    }
}

/// The third-party kinds the examples and the chart's optional objects use.
const THIRD_PARTY: [(&str, &str, &str); 8] = [
    ("argoproj.io", "v1alpha1", "Application"),
    ("source.toolkit.fluxcd.io", "v1", "GitRepository"),
    ("helm.toolkit.fluxcd.io", "v2", "HelmRelease"),
    ("cert-manager.io", "v1", "Certificate"),
    ("cert-manager.io", "v1", "Issuer"),
    ("monitoring.coreos.com", "v1", "PodMonitor"),
    ("monitoring.coreos.com", "v1", "ServiceMonitor"),
    ("monitoring.coreos.com", "v1", "PrometheusRule"),
];

/// `kubectl apply --dry-run=server` of `yaml`, retried while the apiserver's discovery
/// has not caught up with a new CRD; asserts one "(server dry run)" line per object.
async fn dry_run(what: &str, yaml: &str) {
    for ns in namespaces_named(yaml) {
        ensure_namespace(&ns);
    }
    let want = objects_in(yaml);
    assert!(want > 0, "{what}: no object in it");
    let last_error = std::sync::Mutex::new(String::new());
    let out = wait_for_then(
        &format!("a server-side dry run of {what}"),
        DEADLINE,
        || last_error.lock().unwrap().clone(),
        || async {
            plane()
                .kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], yaml)
                .map_err(|e| *last_error.lock().unwrap() = e.to_string())
                .ok()
        },
    )
    .await;
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), want, "{what}: one line per object\n{out}");
    assert!(
        lines.iter().all(|l| l.ends_with("(server dry run)")),
        "{what}:\n{out}"
    );
}

fn helm(args: &[&str]) -> Result<String, String> {
    support::helm::helm(plane().kubeconfig(), args)
}

/// `helm template` of the chart with a values file, as the pages run it.
fn render_chart(values: &Path) -> String {
    let chart = format!("{}/charts/hashroll", root());
    let kv = hashroll_harness::plane::version("KUBERNETES_VERSION").to_string();
    let values = values.to_string_lossy();
    let mut args = vec![
        "template",
        "hashroll",
        chart.as_str(),
        "-n",
        "hashroll",
        "--kube-version",
        kv.as_str(),
        "-f",
        values.as_ref(),
    ];
    // the own-certificate mode takes its CA on the command line, as its page shows
    if values.ends_with("values-own-certificate.yaml") {
        args.extend(["--set", "webhook.caBundle=Zm9v"]);
    }
    helm(&args).unwrap_or_else(|e| panic!("{e}"))
}

/// What some values files promise, seen in what the chart renders from them.
const RENDERS: [(&str, &str); 8] = [
    (
        "values-registry.yaml",
        "image: \"registry.example.com/platform/hashroll:0.1.0\"",
    ),
    ("values-one-namespace.yaml", "--namespaces=hashroll"),
    ("values-namespaced.yaml", "- --namespaced"),
    ("values-cert-manager.yaml", "kind: Certificate"),
    ("values-safe.yaml", "--max-concurrent-rollouts=10"),
    ("values-monitoring.yaml", "kind: PrometheusRule"),
    ("values-locked-down.yaml", "kind: NetworkPolicy"),
    ("values-alerts.yaml", "ALERT_ON_RELOAD"),
];

#[tokio::test]
async fn every_example_passes_a_server_side_dry_run() {
    stand_in_crds(&THIRD_PARTY).await;
    let files = yaml_files(&examples());
    assert!(files.len() >= 20, "{files:?}");
    let mut seen = Vec::new();
    for f in &files {
        let what = f.strip_prefix(root()).unwrap().display().to_string();
        let text = std::fs::read_to_string(f).unwrap();
        match kind_of(f) {
            Example::Objects => dry_run(&what, &text).await,
            Example::Kustomization => {
                let dir = f.parent().unwrap().to_string_lossy().into_owned();
                let rendered = kubectl(&["kustomize", &dir]);
                if what.ends_with("install/kustomize/kustomization.yaml") {
                    // the overlay's promise: the image from the registry, the policy added
                    assert!(
                        rendered.contains("image: registry.example.com/platform/hashroll:0.1.0"),
                        "{rendered}"
                    );
                    assert!(rendered.contains("kind: NetworkPolicy"), "{rendered}");
                }
                dry_run(&what, &rendered).await;
            }
            Example::Values => {
                let rendered = render_chart(f);
                let name = f.file_name().unwrap().to_string_lossy().into_owned();
                for (file, want) in RENDERS {
                    if name == file {
                        assert!(
                            rendered.contains(want),
                            "{what}: no {want:?} in\n{rendered}"
                        );
                    }
                }
                dry_run(&what, &rendered).await;
            }
            Example::ApiserverFile => {
                if what.ends_with(".kubeconfig.yaml") {
                    let user = kubectl(&[
                        "config",
                        "view",
                        "--kubeconfig",
                        &f.to_string_lossy(),
                        "-o",
                        "jsonpath={.users[0].name}",
                    ]);
                    // the apiserver picks the user by the webhook Service's DNS name
                    assert_eq!(user.trim(), "hashroll.hashroll.svc", "{what}");
                } else {
                    assert!(text.contains("kind: AdmissionConfiguration"), "{what}");
                    assert!(text.contains("name: MutatingAdmissionWebhook"), "{what}");
                    // it names the kubeconfig the other example is
                    let named = text
                        .lines()
                        .find_map(|l| l.trim().strip_prefix("kubeConfigFile: "))
                        .expect("a kubeConfigFile");
                    let kubeconfig = std::fs::read_to_string(
                        f.parent().unwrap().join("webhook-clients.kubeconfig.yaml"),
                    )
                    .unwrap();
                    assert!(
                        kubeconfig.lines().next().unwrap().contains(named),
                        "{what}: {named} is not the kubeconfig example's path"
                    );
                }
            }
        }
        seen.push(what);
    }
    // each kind of example was met (a renamed folder would silently skip a check)
    for k in [
        Example::Values,
        Example::Kustomization,
        Example::ApiserverFile,
        Example::Objects,
    ] {
        assert!(files.iter().any(|f| kind_of(f) == k), "no example of {k:?}");
    }
    eprintln!("{} examples checked: {seen:?}", seen.len());
}

#[tokio::test]
async fn the_reload_list_recipe_rolls_as_its_page_says() {
    let ns = "shop";
    ensure_namespace(ns);
    let _h = Hashroll::for_namespace(ns, &[]).await;
    let client = client().await;
    let recipe = std::fs::read_to_string(examples().join("tracking/reload-list.yaml")).unwrap();
    kubectl_stdin(&["apply", "-f", "-"], &recipe);
    let app = "app=checkout";
    wait_rs(&client, ns, app, 1).await;
    wait_for("checkout's record", DEADLINE, || async {
        deployment_record(ns, "checkout")
            .contains("configmap/pricing")
            .then_some(())
    })
    .await;

    // a key the volume's items leave out: nothing rolls
    patch_cm(ns, "pricing", r#"{"comment.txt":"edited"}"#);
    assert_rs_count_stays(&client, ns, app, 1, SETTLE).await;
    // the key it names: one rollout
    patch_cm(ns, "pricing", r#"{"rates.json":"{\"eur\": 1.1}"}"#);
    wait_rs(&client, ns, app, 2).await;
    assert_rs_count_stays(&client, ns, app, 2, SETTLE).await;

    // a Secret the exclude list names: never tracked; one the regex names joins the record
    // when created, without a roll (a regex names no source before it exists), and its
    // next change rolls once
    kubectl(&[
        "create",
        "secret",
        "generic",
        "payment-test",
        "-n",
        ns,
        "--from-literal=k=v",
    ]);
    kubectl(&[
        "create",
        "secret",
        "generic",
        "payment-live",
        "-n",
        ns,
        "--from-literal=k=v",
    ]);
    wait_for("payment-live in checkout's record", DEADLINE, || async {
        deployment_record(ns, "checkout")
            .contains("secret/payment-live")
            .then_some(())
    })
    .await;
    assert_rs_count_stays(&client, ns, app, 2, SETTLE).await;
    kubectl(&[
        "patch",
        "secret",
        "payment-live",
        "-n",
        ns,
        "--type",
        "merge",
        "-p",
        r#"{"stringData":{"k":"v2"}}"#,
    ]);
    wait_rs(&client, ns, app, 3).await;
    assert_rs_count_stays(&client, ns, app, 3, SETTLE).await;
    let record = deployment_record(ns, "checkout");
    assert!(!record.contains("secret/payment-test"), "{record}");
}
