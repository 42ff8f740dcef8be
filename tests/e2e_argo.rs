//! Argo Rollouts with the real controller (v1.10.1, built from its Go module into the cache
//! and started here): a Rollout with `auto` gets one new ReplicaSet from Argo per change and
//! none on re-apply or restart; `rollout-strategy: restart` sets `spec.restartAt` and leaves
//! the template alone; a `workloadRef` Rollout rolls through its Deployment.

mod support;

use std::sync::OnceLock;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DynamicObject};
use support::kinds::{TOKEN, annotation_at, rollout_replicasets, rollouts};
use support::*;

use hashroll_harness::argo::ArgoRollouts;

static ARGO: OnceLock<ArgoRollouts> = OnceLock::new();

fn argo() {
    ARGO.get_or_init(|| {
        ArgoRollouts::start(plane()).unwrap_or_else(|e| panic!("cannot start Argo Rollouts: {e}"))
    });
}

async fn wait_rollout_rs(client: &kube::Client, ns: &str, name: &str, n: usize) {
    wait_for(
        &format!("{n} ReplicaSets of rollout/{name}"),
        DEADLINE,
        || async { (rollout_replicasets(client, ns, name).await.len() >= n).then_some(()) },
    )
    .await;
}

async fn assert_rollout_rs_stays(client: &kube::Client, ns: &str, name: &str, want: usize) {
    holds_for(SETTLE, || async {
        let rs = rollout_replicasets(client, ns, name).await;
        let tokens: Vec<_> = rs
            .iter()
            .map(|r| {
                let t = r
                    .spec
                    .template
                    .as_ref()
                    .and_then(|t| t.metadata.as_ref())
                    .and_then(|m| m.annotations.clone());
                (
                    r.metadata.name.clone(),
                    r.metadata.creation_timestamp.clone(),
                    t,
                )
            })
            .collect();
        assert_eq!(
            rs.len(),
            want,
            "ReplicaSets of rollout/{name} in {ns}: {tokens:#?}"
        );
    })
    .await;
}

fn rollout_yaml(name: &str, ann: &str) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: {name}
  annotations: {{{ann}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  strategy: {{canary: {{}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: c, image: nginx, envFrom: [{{configMapRef: {{name: cfg}}}}]}}]
"#
    )
}

fn cfg(v: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg}}\ndata: {{k: '{v}'}}\n")
}

fn template_token(o: &DynamicObject) -> Option<String> {
    annotation_at(o, "/spec/template", TOKEN)
}

#[tokio::test]
async fn an_auto_rollout_gets_one_replicaset_per_change_and_none_on_reapply_or_restart() {
    argo();
    let client = client().await;
    let ns = namespace("argo");
    let mut h = Hashroll::for_namespace(&ns, &[]).await;
    let yaml = format!(
        "{}---\n{}",
        cfg("1"),
        rollout_yaml("ro", r#"reloader.stakater.com/auto: "true""#)
    );
    kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &yaml);
    let ro = rollouts(&client, &ns);
    let first = template_token(&ro.get("ro").await.unwrap()).expect("stamped at admission");
    wait_rollout_rs(&client, &ns, "ro", 1).await;
    assert_rollout_rs_stays(&client, &ns, "ro", 1).await;

    set_cfg(&ns, "2");
    wait_rollout_rs(&client, &ns, "ro", 2).await;
    let second = template_token(&ro.get("ro").await.unwrap()).unwrap();
    assert_ne!(first, second);
    // the same manifests again, then a restart: nothing new
    kubectl_stdin(
        &["apply", "-n", &ns, "-f", "-"],
        &yaml.replace("k: '1'", "k: '2'"),
    );
    assert_rollout_rs_stays(&client, &ns, "ro", 2).await;
    h.restart().await;
    assert_rollout_rs_stays(&client, &ns, "ro", 2).await;
    assert_eq!(template_token(&ro.get("ro").await.unwrap()), Some(second));
    assert!(!h.log().contains("panicked"), "{}", h.log());
}

#[tokio::test]
async fn restart_strategy_sets_restart_at_and_leaves_the_template() {
    argo();
    let client = client().await;
    let ns = namespace("argorestart");
    let _h = Hashroll::for_namespace(&ns, &[]).await;
    let yaml = format!(
        "{}---\n{}",
        cfg("1"),
        rollout_yaml(
            "rs",
            r#"reloader.stakater.com/auto: "true", reloader.stakater.com/rollout-strategy: restart"#
        )
    );
    kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &yaml);
    let ro = rollouts(&client, &ns);
    let before = ro.get("rs").await.unwrap();
    let token = template_token(&before);
    let record = |o: &DynamicObject| {
        o.metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .get(RECORD)
            .cloned()
    };
    let rec1 = record(&before);
    wait_rollout_rs(&client, &ns, "rs", 1).await;

    set_cfg(&ns, "2");
    let after = wait_for("spec.restartAt", DEADLINE, || async {
        ro.get("rs")
            .await
            .ok()
            .filter(|o| o.data.pointer("/spec/restartAt").is_some())
    })
    .await;
    assert_eq!(template_token(&after), token, "the template is left alone");
    assert_ne!(record(&after), rec1, "the record is written");
    assert_rollout_rs_stays(&client, &ns, "rs", 1).await;
}

#[tokio::test]
async fn a_workload_ref_rollout_rolls_through_its_deployment() {
    argo();
    let client = client().await;
    let ns = namespace("argoref");
    let h = Hashroll::for_namespace(&ns, &[]).await;
    let yaml = format!(
        r#"{}---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: base
  annotations: {{reloader.stakater.com/auto: "true"}}
spec:
  replicas: 0
  selector: {{matchLabels: {{app: ref}}}}
  template:
    metadata: {{labels: {{app: ref}}}}
    spec:
      containers: [{{name: c, image: nginx, envFrom: [{{configMapRef: {{name: cfg}}}}]}}]
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: ref
  annotations: {{reloader.stakater.com/auto: "true"}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: ref}}}}
  strategy: {{canary: {{}}}}
  workloadRef: {{apiVersion: apps/v1, kind: Deployment, name: base}}
"#,
        cfg("1")
    );
    kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &yaml);
    wait_rollout_rs(&client, &ns, "ref", 1).await;
    let deps = Api::<Deployment>::namespaced(client.clone(), &ns);
    let token = |d: &Deployment| {
        d.spec
            .template
            .metadata
            .as_ref()?
            .annotations
            .as_ref()?
            .get(TOKEN)
            .cloned()
    };
    let t1 = token(&deps.get("base").await.unwrap()).expect("the Deployment is stamped");
    set_cfg(&ns, "2");
    wait_rollout_rs(&client, &ns, "ref", 2).await;
    assert_ne!(token(&deps.get("base").await.unwrap()), Some(t1));
    assert_rollout_rs_stays(&client, &ns, "ref", 2).await;
    // explain on the Rollout names the Deployment
    let out = h.explain(&["rollout/ref", "-n", &ns]);
    assert!(out.contains("deployment/base"), "{out}");
}
