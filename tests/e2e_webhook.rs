//! The real kube-apiserver calls the webhook through a real MutatingWebhookConfiguration.
//! New workloads start stamped; re-applying, replacing, opting in and editing reload lists
//! roll nothing.

mod support;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, Deployment, StatefulSet};
use kube::api::{Api, ListParams};
use support::*;
use tokio::sync::OnceCell;

const TOKEN: &str = "hashroll.dev/config-hash";

static HASHROLL: OnceCell<Hashroll> = OnceCell::const_new();

async fn hashroll() -> &'static Hashroll {
    HASHROLL
        .get_or_init(|| async {
            let h = Hashroll::start(&[]).await;
            h.register_webhook("hashroll-e2e-webhook");
            let probe = namespace("probe");
            wait_webhook_active(&probe).await;
            h
        })
        .await
}

/// The record's sources (the id of the key it was made with, `"@key"`, checked and left out).
/// The record without its `@key`, which it must name.
fn sources_of(annotations: Option<&BTreeMap<String, String>>) -> Option<BTreeMap<String, String>> {
    let mut r = record_of(annotations)?;
    let id = r.remove("@key");
    assert!(
        id.as_ref().is_some_and(|id| id.len() == 8),
        "the record names its key: {r:?}"
    );
    Some(r)
}

async fn deployment(client: &kube::Client, ns: &str, name: &str) -> Deployment {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap()
}

fn stamp_of(d: &Deployment) -> (Option<BTreeMap<String, String>>, Option<String>) {
    let token = d
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(TOKEN).cloned());
    (sources_of(d.metadata.annotations.as_ref()), token)
}

fn seed_files() -> [String; 2] {
    let root = env!("CARGO_MANIFEST_DIR");
    [
        format!("{root}/examples/cm.yaml"),
        format!("{root}/examples/nginx-deploy.yaml"),
    ]
}

#[tokio::test]
async fn seed_manifests_start_stamped_and_reapplying_rolls_nothing() {
    let h = hashroll().await;
    let client = client().await;
    // the seed's manifests name namespace ns1 themselves
    kubectl(&["create", "namespace", "ns1"]);
    let [cm, deploy] = seed_files();
    kubectl(&["apply", "-f", &cm, "-f", &deploy]);

    let d = deployment(&client, "ns1", "nginx").await;
    let (record, token) = stamp_of(&d);
    let record = record.unwrap_or_else(|| panic!("no record on the new Deployment\n{}", h.log()));
    assert_eq!(
        record.keys().cloned().collect::<Vec<_>>(),
        vec!["configmap/test-config-env", "configmap/test-config-file"]
    );
    for (k, v) in &record {
        assert_eq!(
            v.len(),
            16,
            "{k} has a 16-hex digest, not {v:?} (the ConfigMaps were applied with it)"
        );
    }
    let token = token.expect("a roll token on the pod template");
    wait_for("the first ReplicaSet", DEADLINE, || async {
        (replicasets(&client, "ns1", "app=nginx").await.len() == 1).then_some(())
    })
    .await;

    let same = |d: &Deployment| {
        let (r, t) = stamp_of(d);
        assert_eq!(r.as_ref(), Some(&record), "record kept");
        assert_eq!(t.as_ref(), Some(&token), "token kept");
    };
    // client-side apply again
    kubectl(&["apply", "-f", &cm, "-f", &deploy]);
    same(&deployment(&client, "ns1", "nginx").await);
    // server-side apply of the same files
    kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        &cm,
        "-f",
        &deploy,
    ]);
    same(&deployment(&client, "ns1", "nginx").await);
    // kubectl replace: the manifest as written, without record and token
    kubectl(&["replace", "-f", &deploy]);
    same(&deployment(&client, "ns1", "nginx").await);
    assert_rs_count_stays(&client, "ns1", "app=nginx", 1, SETTLE).await;
}

#[tokio::test]
async fn opting_in_and_editing_the_reload_list_roll_nothing() {
    let _h = hashroll().await;
    let client = client().await;
    let ns = namespace("optin");
    kubectl_stdin(
        &["apply", "-n", &ns, "-f", "-"],
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config}
data: {a: "1"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      containers:
      - {name: c, image: nginx, envFrom: [{configMapRef: {name: app-config}}]}
"#,
    );
    wait_for("the first ReplicaSet", DEADLINE, || async {
        (replicasets(&client, &ns, "app=app").await.len() == 1).then_some(())
    })
    .await;
    let (record, token) = stamp_of(&deployment(&client, &ns, "app").await);
    assert_eq!(record, None, "not opted in: no record");
    assert_eq!(token, None);

    kubectl(&[
        "annotate",
        "-n",
        &ns,
        "deployment/app",
        "reloader.stakater.com/auto=true",
    ]);
    let (record, token) = stamp_of(&deployment(&client, &ns, "app").await);
    let record = record.expect("opting in records the sources");
    assert_eq!(
        record.keys().cloned().collect::<Vec<_>>(),
        vec!["configmap/app-config"]
    );
    assert_eq!(token, None, "opting in writes no token, so nothing rolls");

    kubectl(&[
        "annotate",
        "-n",
        &ns,
        "deployment/app",
        "configmap.reloader.stakater.com/reload=later-config",
    ]);
    // the webhook records the new name `unseen` (a review never GETs a source); the
    // watcher looks it up and records it absent, without a roll
    let (record2, token2) = wait_for("later-config recorded absent", DEADLINE, || async {
        let (r, t) = stamp_of(&deployment(&client, &ns, "app").await);
        let r = r?;
        (r.get("configmap/later-config").map(String::as_str) == Some("absent")).then_some((r, t))
    })
    .await;
    assert_eq!(
        record2.get("configmap/app-config"),
        record.get("configmap/app-config")
    );
    assert_eq!(token2, None);
    assert_rs_count_stays(&client, &ns, "app=app", 1, SETTLE).await;
}

#[tokio::test]
async fn template_change_gets_a_fresh_stamp_and_one_rollout() {
    let _h = hashroll().await;
    let client = client().await;
    let ns = namespace("tmpl");
    kubectl_stdin(
        &["apply", "-n", &ns, "-f", "-"],
        r#"
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: hunter2}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  annotations: {secret.reloader.stakater.com/auto: "true"}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
      - name: c
        image: nginx:1
        env: [{name: P, valueFrom: {secretKeyRef: {name: creds, key: password}}}]
"#,
    );
    let (record, token) = stamp_of(&deployment(&client, &ns, "api").await);
    assert!(record.unwrap().contains_key("secret/creds"));
    assert!(token.is_some());
    kubectl(&["set", "image", "-n", &ns, "deployment/api", "c=nginx:2"]);
    wait_for("the second ReplicaSet", DEADLINE, || async {
        (replicasets(&client, &ns, "app=api").await.len() == 2).then_some(())
    })
    .await;
    let (record2, token2) = stamp_of(&deployment(&client, &ns, "api").await);
    assert!(record2.unwrap().contains_key("secret/creds"));
    assert_eq!(token2, token, "the same sources give the same token");
    assert_rs_count_stays(&client, &ns, "app=api", 2, SETTLE).await;
}

async fn revisions(client: &kube::Client, ns: &str, selector: &str) -> usize {
    Api::<ControllerRevision>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(selector))
        .await
        .unwrap()
        .items
        .len()
}

#[tokio::test]
async fn daemonset_and_statefulset_start_stamped_and_reapply_rolls_nothing() {
    let _h = hashroll().await;
    let client = client().await;
    let ns = namespace("ds-sts");
    let yaml = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: shared}
data: {k: v}
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
  annotations: {reloader.stakater.com/auto: "true"}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: a, image: busybox}]
      volumes: [{name: v, configMap: {name: shared}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata:
      labels: {app: db}
      annotations: {reloader.stakater.com/auto: "true"}
    spec:
      containers: [{name: d, image: postgres, envFrom: [{configMapRef: {name: shared}}]}]
"#;
    kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], yaml);
    let ds = Api::<DaemonSet>::namespaced(client.clone(), &ns)
        .get("agent")
        .await
        .unwrap();
    let sts = Api::<StatefulSet>::namespaced(client.clone(), &ns)
        .get("db")
        .await
        .unwrap();
    let ds_record = sources_of(ds.metadata.annotations.as_ref()).expect("DaemonSet record");
    let sts_record = sources_of(sts.metadata.annotations.as_ref())
        .expect("StatefulSet record (pod-template opt-in)");
    assert!(ds_record.contains_key("configmap/shared"));
    assert!(sts_record.contains_key("configmap/shared"));
    let tok = |a: Option<&BTreeMap<String, String>>| a.and_then(|a| a.get(TOKEN).cloned());
    let ds_token = tok(ds
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref()));
    let sts_token = tok(sts
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref()));
    assert!(ds_token.is_some() && sts_token.is_some());
    wait_for("one revision each", DEADLINE, || async {
        (revisions(&client, &ns, "app=agent").await == 1
            && revisions(&client, &ns, "app=db").await == 1)
            .then_some(())
    })
    .await;

    kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], yaml);
    kubectl_stdin(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-n",
            &ns,
            "-f",
            "-",
        ],
        yaml,
    );
    let ds2 = Api::<DaemonSet>::namespaced(client.clone(), &ns)
        .get("agent")
        .await
        .unwrap();
    let sts2 = Api::<StatefulSet>::namespaced(client.clone(), &ns)
        .get("db")
        .await
        .unwrap();
    assert_eq!(
        sources_of(ds2.metadata.annotations.as_ref()),
        Some(ds_record)
    );
    assert_eq!(
        sources_of(sts2.metadata.annotations.as_ref()),
        Some(sts_record)
    );
    assert_eq!(
        tok(ds2
            .spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.as_ref())),
        ds_token
    );
    assert_eq!(
        tok(sts2
            .spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.as_ref())),
        sts_token
    );
    holds_for(SETTLE, || async {
        assert_eq!(revisions(&client, &ns, "app=agent").await, 1);
        assert_eq!(revisions(&client, &ns, "app=db").await, 1);
    })
    .await;
}
