//! The control plane is real: a Deployment's pods become Running and Ready, a template
//! change makes a second ReplicaSet and the rollout completes; a DaemonSet and a StatefulSet
//! get Ready pods on the fake node.

mod support;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use support::*;

async fn ready_pods(client: &kube::Client, ns: &str, selector: &str) -> usize {
    Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(selector))
        .await
        .expect("list pods")
        .items
        .iter()
        .filter(|p| {
            let st = p.status.as_ref();
            st.and_then(|s| s.phase.as_deref()) == Some("Running")
                && st
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                && p.metadata.deletion_timestamp.is_none()
        })
        .count()
}

#[tokio::test]
async fn deployment_runs_and_rolls_out_a_template_change() {
    let client = client().await;
    let ns = namespace("plane-deploy");
    kubectl_stdin(
        &["apply", "-n", &ns, "-f", "-"],
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx:1}]}
"#,
    );
    wait_for("2 Running and Ready pods", DEADLINE, || async {
        (ready_pods(&client, &ns, "app=web").await == 2).then_some(())
    })
    .await;
    assert_eq!(replicasets(&client, &ns, "app=web").await.len(), 1);

    kubectl(&["set", "image", "-n", &ns, "deployment/web", "web=nginx:2"]);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    wait_for("the rollout to complete", DEADLINE, || async {
        let d = deployments.get("web").await.ok()?;
        let st = d.status?;
        let done = st.observed_generation == d.metadata.generation
            && st.updated_replicas == Some(2)
            && st.ready_replicas == Some(2)
            && st.replicas == Some(2);
        done.then_some(())
    })
    .await;
    let rs = replicasets(&client, &ns, "app=web").await;
    assert_eq!(rs.len(), 2, "a template change makes a second ReplicaSet");
    let images: Vec<_> = rs
        .iter()
        .filter(|r| r.spec.replicas == Some(2))
        .filter_map(|r| {
            r.spec
                .template
                .as_ref()?
                .spec
                .as_ref()?
                .containers
                .first()?
                .image
                .clone()
        })
        .collect();
    assert_eq!(images, vec!["nginx:2".to_string()]);
    wait_for("2 Ready pods of the new template", DEADLINE, || async {
        (ready_pods(&client, &ns, "app=web").await == 2).then_some(())
    })
    .await;
}

#[tokio::test]
async fn daemonset_and_statefulset_get_ready_pods() {
    let client = client().await;
    let ns = namespace("plane-ds-sts");
    kubectl_stdin(
        &["apply", "-n", &ns, "-f", "-"],
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: a, image: busybox}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: d, image: postgres}]}
"#,
    );
    wait_for("the DaemonSet's pod on the fake node", DEADLINE, || async {
        (ready_pods(&client, &ns, "app=agent").await == 1).then_some(())
    })
    .await;
    wait_for("2 StatefulSet pods", DEADLINE, || async {
        (ready_pods(&client, &ns, "app=db").await == 2).then_some(())
    })
    .await;
    let ds = Api::<DaemonSet>::namespaced(client.clone(), &ns)
        .get("agent")
        .await
        .unwrap();
    assert_eq!(ds.status.unwrap().desired_number_scheduled, 1);
    let sts = Api::<StatefulSet>::namespaced(client.clone(), &ns)
        .get("db")
        .await
        .unwrap();
    wait_for("StatefulSet status", DEADLINE, || {
        let api = Api::<StatefulSet>::namespaced(client.clone(), &ns);
        async move { (api.get("db").await.ok()?.status?.ready_replicas == Some(2)).then_some(()) }
    })
    .await;
    assert_eq!(sts.spec.replicas, Some(2));
}
