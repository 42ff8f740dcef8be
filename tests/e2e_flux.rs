//! GitOps beside a real Flux: kustomize-controller (built from its Go module by
//! hack/build-flux.sh) applies an application made of a ConfigMap and a Deployment that opts
//! in, from artifacts this test serves on loopback (an ExternalArtifact: no source-controller
//! runs). Flux applies server-side with force, as field manager `kustomize-controller`, and
//! its applied configuration has no record and no token: on every re-apply the webhook
//! carries them over from the old object, so
//! (1) the first sync is Ready, stamped, one ReplicaSet;
//! (2) a commit that changes the ConfigMap's data rolls the Deployment exactly once, and over
//!     a settle period the Kustomization stays Ready and no second rollout appears;
//! (3) a commit that changes the Deployment's own template rolls once, record and token kept;
//! (4) a forced reconcile (`reconcile.fluxcd.io/requestedAt`) rolls nothing.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use k8s_openapi::api::apps::v1::Deployment;
use serde_json::Value;
use sha2::{Digest, Sha256};
use support::*;

const WAIT: Duration = Duration::from_secs(90);

/// One kustomize-controller for the binary's tests (two would both reconcile).
fn flux() -> &'static hashroll_harness::flux::Flux {
    static FLUX: std::sync::OnceLock<hashroll_harness::flux::Flux> = std::sync::OnceLock::new();
    FLUX.get_or_init(|| {
        hashroll_harness::flux::Flux::start(plane()).expect("kustomize-controller starts")
    })
}
const TOKEN: &str = "hashroll.dev/config-hash";

type Files = Arc<Mutex<BTreeMap<String, Vec<u8>>>>;

/// A loopback HTTP server of artifacts (`/NAME`), as source-controller would serve them.
async fn artifact_server() -> (Files, u16) {
    let files: Files = Arc::default();
    let app = axum::Router::new()
        .route(
            "/{name}",
            axum::routing::get(
                |State(f): State<Files>, Path(name): Path<String>| async move {
                    match f.lock().unwrap_or_else(|e| e.into_inner()).get(&name) {
                        Some(b) => Ok(b.clone()),
                        None => Err(StatusCode::NOT_FOUND),
                    }
                },
            ),
        )
        .with_state(files.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(l, app).await });
    (files, port)
}

/// A tar.gz of `files` at its root.
fn tarball(files: &[(&str, String)]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let out = dir.path().join("artifact.tar.gz");
    let st = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&out)
        .arg("-C")
        .arg(dir.path())
        .args(files.iter().map(|(n, _)| *n))
        .status()
        .expect("run tar");
    assert!(st.success());
    std::fs::read(out).unwrap()
}

/// Serves `files` as revision `rev` and points the ExternalArtifact at it.
fn publish(files: &Files, port: u16, ns: &str, rev: &str, content: &[(&str, String)]) {
    publish_as(files, port, ns, "app", rev, content)
}

fn publish_as(
    files: &Files,
    port: u16,
    ns: &str,
    artifact: &str,
    rev: &str,
    content: &[(&str, String)],
) {
    let bytes = tarball(content);
    let digest = hex::encode(Sha256::digest(&bytes));
    let name = format!("{ns}-{artifact}-{rev}.tar.gz");
    let size = bytes.len();
    files
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name.clone(), bytes);
    let status = serde_json::json!({"status": {"artifact": {
        "path": name,
        "url": format!("http://127.0.0.1:{port}/{name}"),
        "revision": rev,
        "digest": format!("sha256:{digest}"),
        "size": size,
        "lastUpdateTime": "2026-01-01T00:00:00Z",
    }}});
    kubectl(&[
        "patch",
        "externalartifact",
        artifact,
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        &status.to_string(),
    ]);
}

/// The Kustomization's Ready status and last applied revision.
fn kustomization(ns: &str) -> (String, String, Value) {
    kustomization_named(ns, "app")
}

fn kustomization_named(ns: &str, name: &str) -> (String, String, Value) {
    let out = kubectl(&["get", "kustomization", name, "-n", ns, "-o", "json"]);
    let k: Value = serde_json::from_str(&out).unwrap();
    let ready = k["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| c["status"].as_str())
        .unwrap_or("")
        .to_string();
    let rev = k["status"]["lastAppliedRevision"]
        .as_str()
        .unwrap_or("")
        .to_string();
    (ready, rev, k)
}

async fn wait_applied(ns: &str, rev: &str) {
    wait_for(&format!("Kustomization Ready at {rev}"), WAIT, || {
        let (ready, applied, _) = kustomization(ns);
        async move { (ready == "True" && applied == rev).then_some(()) }
    })
    .await;
}

/// Over `settle`: the Kustomization stays Ready at `rev` and the ReplicaSets stay `rs`.
async fn stays(client: &kube::Client, ns: &str, rev: &str, rs: usize, settle: Duration) {
    holds_for(settle, || async {
        let (ready, applied, k) = kustomization(ns);
        assert!(
            ready == "True" && applied == rev,
            "the Kustomization left Ready at {rev}: {}",
            k["status"]
        );
        assert_eq!(
            replicasets(client, ns, "app=web").await.len(),
            rs,
            "ReplicaSets of web"
        );
    })
    .await;
}

async fn stamped(client: &kube::Client, ns: &str) -> Deployment {
    let api: kube::Api<Deployment> = kube::Api::namespaced(client.clone(), ns);
    let d = api.get("web").await.unwrap();
    assert!(
        record_of(d.metadata.annotations.as_ref()).is_some(),
        "web has no record: {:?}",
        d.metadata.annotations
    );
    let token = d
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(TOKEN));
    assert!(token.is_some(), "web has no roll token");
    let managers = managers(&d.metadata);
    assert!(
        managers.contains(&("kustomize-controller".into(), "Apply".into())),
        "Flux applies web server-side: {managers:?}"
    );
    d
}

#[tokio::test(flavor = "multi_thread")]
async fn flux_applies_hashroll_rolls_once_and_nothing_drifts() {
    let client = client().await;
    flux();
    let ns = namespace("flux");
    let _h = Hashroll::for_namespace(&ns, &[]).await;
    let (files, port) = artifact_server().await;
    apply(
        &ns,
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: ExternalArtifact\nmetadata: {name: app}\nspec: {}\n",
    );
    publish(&files, port, &ns, "r1", &gitops_app("1", "busybox:1"));
    apply(
        &ns,
        &format!(
            r#"apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {{name: app}}
spec:
  interval: 10m
  path: ./
  prune: true
  targetNamespace: {ns}
  sourceRef: {{kind: ExternalArtifact, name: app}}
"#
        ),
    );
    // (1) synced, stamped at admission, one ReplicaSet
    wait_applied(&ns, "r1").await;
    wait_rs(&client, &ns, "app=web", 1).await;
    let first = stamped(&client, &ns).await;
    stays(&client, &ns, "r1", 1, SETTLE).await;

    // (2) the ConfigMap's data changes: one rollout, Flux stays Ready, nothing more
    publish(&files, port, &ns, "r2", &gitops_app("2", "busybox:1"));
    wait_applied(&ns, "r2").await;
    wait_rs(&client, &ns, "app=web", 2).await;
    let second = stamped(&client, &ns).await;
    assert_ne!(
        first.spec.template.metadata.and_then(|m| m.annotations),
        second
            .spec
            .template
            .metadata
            .clone()
            .and_then(|m| m.annotations),
        "the roll changed the token"
    );
    let hashroll_wrote = managers(&second.metadata)
        .iter()
        .any(|(n, _)| n == "hashroll");
    assert!(
        hashroll_wrote,
        "the roll's patch names the field manager hashroll"
    );
    stays(&client, &ns, "r2", 2, SETTLE * 2).await;

    // (3) the Deployment's own template changes: one rollout, record and token kept
    publish(&files, port, &ns, "r3", &gitops_app("2", "busybox:2"));
    wait_applied(&ns, "r3").await;
    wait_rs(&client, &ns, "app=web", 3).await;
    stamped(&client, &ns).await;
    stays(&client, &ns, "r3", 3, SETTLE).await;

    // (4) a forced reconcile re-applies everything: nothing rolls
    let at = format!("{:?}", Instant::now());
    kubectl(&[
        "annotate",
        "--overwrite",
        "kustomization",
        "app",
        "-n",
        &ns,
        &format!("reconcile.fluxcd.io/requestedAt={at}"),
    ]);
    wait_for("Flux handled the forced reconcile", WAIT, || {
        let (_, _, k) = kustomization(&ns);
        let handled = k["status"]["lastHandledReconcileAt"].as_str() == Some(at.as_str());
        async move { handled.then_some(()) }
    })
    .await;
    stamped(&client, &ns).await;
    stays(&client, &ns, "r3", 3, SETTLE * 2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn flux_installs_hashroll_and_its_objects_do_not_drift() {
    flux();
    let ns = namespace("hrflux");
    let chart = format!("{}/charts/hashroll", root());
    // the chart's output, as a GitOps repository holds it (self-managed certificates)
    let rendered = support::helm::template("hashroll", &chart, &ns, &["replicaCount=0"], &[])
        .expect("the chart renders");
    let list = as_list(&rendered);
    let webhook = items(&list)
        .into_iter()
        .find(|o| o["kind"] == "MutatingWebhookConfiguration")
        .and_then(|o| o["metadata"]["name"].as_str().map(String::from))
        .expect("a MutatingWebhookConfiguration");
    let (files, port) = artifact_server().await;
    apply(
        &ns,
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: ExternalArtifact\nmetadata: {name: hashroll}\nspec: {}\n",
    );
    publish_as(
        &files,
        port,
        &ns,
        "hashroll",
        "h1",
        &[("hashroll.yaml", rendered.clone())],
    );
    apply(
        &ns,
        r#"apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: hashroll}
spec:
  interval: 10m
  path: ./
  prune: true
  sourceRef: {kind: ExternalArtifact, name: hashroll}
"#,
    );
    let applied = |rev: &'static str| {
        let ns = ns.clone();
        move || {
            let (ready, applied, _) = kustomization_named(&ns, "hashroll");
            async move { (ready == "True" && applied == rev).then_some(()) }
        }
    };
    wait_for("Flux applied hashroll's chart", WAIT, applied("h1")).await;

    // hashroll as the chart runs it, on the chart's ServiceAccount, keeping the caBundle
    let _hashroll = Hashroll::as_the_chart_runs_it(&ns, &webhook).await;
    let ca_bundle = || {
        kubectl(&[
            "get",
            "mutatingwebhookconfiguration",
            &webhook,
            "-o",
            "jsonpath={.webhooks[0].clientConfig.caBundle}",
        ])
    };
    let bundle = wait_for("hashroll set the caBundle", WAIT, || {
        let b = ca_bundle();
        async move { (!b.trim().is_empty()).then_some(b) }
    })
    .await;
    let before = versions(&list, &ns);

    // a forced reconcile re-applies every object: nothing of hashroll's changes
    let at = format!("{:?}", Instant::now());
    kubectl(&[
        "annotate",
        "--overwrite",
        "kustomization",
        "hashroll",
        "-n",
        &ns,
        &format!("reconcile.fluxcd.io/requestedAt={at}"),
    ]);
    wait_for("Flux handled the forced reconcile", WAIT, || {
        let (ready, _, k) = kustomization_named(&ns, "hashroll");
        let handled =
            ready == "True" && k["status"]["lastHandledReconcileAt"].as_str() == Some(at.as_str());
        async move { handled.then_some(()) }
    })
    .await;
    assert_eq!(ca_bundle(), bundle, "the re-apply kept the caBundle");
    assert_eq!(
        versions(&list, &ns),
        before,
        "Flux's re-apply changed none of hashroll's objects"
    );
    let (ready, _, k) = kustomization_named(&ns, "hashroll");
    assert_eq!(ready, "True", "{}", k["status"]);
}
