//! The Secrets Store CSI Driver's part in the tests: its CRDs (from its Go module) on the
//! plane, SecretProviderClass objects, Deployments that mount a class through a `csi`
//! volume, and `SecretProviderClassPodStatus` objects written exactly as the driver writes
//! them (name `<pod>-<namespace>-<class>`, owner reference to the pod, node label, status
//! fields), one per pod.

use std::sync::OnceLock;

use serde_json::{Value, json};

use super::*;

/// The CRDs on this binary's plane (once).
pub fn install_crds() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        hashroll_harness::csi::install(plane()).unwrap_or_else(|e| panic!("CSI CRDs: {e}"))
    });
}

/// A SecretProviderClass `name` with `annotations` (a YAML flow map, e.g. `{a: "b"}`).
pub fn class(ns: &str, name: &str, annotations: &str) {
    let yaml = format!(
        "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata: {{name: {name}, namespace: {ns}, annotations: {annotations}}}\nspec: {{provider: vault, parameters: {{roleName: app}}}}\n"
    );
    kubectl_stdin(&["apply", "-f", "-"], &yaml);
}

/// A Deployment `name` of `replicas` pods with `annotations` (a YAML flow map), mounting
/// each of `classes` through a `csi` volume of the driver.
pub fn app(ns: &str, name: &str, annotations: &str, classes: &[&str], replicas: u32) {
    let mounts: Vec<String> = (0..classes.len())
        .map(|i| format!("{{name: s{i}, mountPath: /mnt/s{i}, readOnly: true}}"))
        .collect();
    let volumes: Vec<String> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            format!("{{name: s{i}, csi: {{driver: secrets-store.csi.k8s.io, readOnly: true, volumeAttributes: {{secretProviderClass: {c}}}}}}}")
        })
        .collect();
    let yaml = format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}, annotations: {annotations}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: c, image: nginx, volumeMounts: [{mounts}]}}]
      volumes: [{volumes}]
"#,
        mounts = mounts.join(", "),
        volumes = volumes.join(", "),
    );
    kubectl_stdin(&["apply", "-f", "-"], &yaml);
}

/// A pod of a Deployment, as a status names it.
#[derive(Debug, Clone)]
pub struct PodOf {
    pub name: String,
    pub uid: String,
    pub node: String,
    /// its ReplicaSet's `pod-template-hash`
    pub hash: String,
}

/// The live (not terminating) pods of Deployment `app`.
pub fn pods(ns: &str, app: &str) -> Vec<PodOf> {
    let out = kubectl(&[
        "get",
        "pods",
        "-n",
        ns,
        "-l",
        &format!("app={app}"),
        "-o",
        "json",
    ]);
    let list: Value = serde_json::from_str(&out).unwrap();
    items(&list)
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| PodOf {
            name: p["metadata"]["name"].as_str().unwrap_or_default().into(),
            uid: p["metadata"]["uid"].as_str().unwrap_or_default().into(),
            node: p["spec"]["nodeName"].as_str().unwrap_or_default().into(),
            hash: p["metadata"]["labels"]["pod-template-hash"]
                .as_str()
                .unwrap_or_default()
                .into(),
        })
        .collect()
}

/// Waits until Deployment `app` has `n` live pods of its newest ReplicaSet (`hash`, when
/// given), and returns them.
pub async fn wait_pods(ns: &str, app: &str, n: usize, hash: Option<&str>) -> Vec<PodOf> {
    wait_for(&format!("{n} pods of {app} in {ns}"), DEADLINE, || async {
        let p: Vec<PodOf> = pods(ns, app)
            .into_iter()
            .filter(|p| hash.is_none_or(|h| p.hash == h))
            .collect();
        (p.len() == n).then_some(p)
    })
    .await
}

/// Writes the status of `pod` mounting `class` with `objects` (`id`, `version`), as the
/// driver does on a mount (create) and a rotation (update). `target` stands for the
/// driver's other fields: a write that changes only it is a write that changes no version.
pub fn status_with(ns: &str, pod: &PodOf, class: &str, objects: &[(&str, &str)], target: &str) {
    let objects: Vec<Value> = objects
        .iter()
        .map(|(id, v)| json!({"id": id, "version": v}))
        .collect();
    let o = json!({
        "apiVersion": "secrets-store.csi.x-k8s.io/v1",
        "kind": "SecretProviderClassPodStatus",
        "metadata": {
            "name": format!("{}-{ns}-{class}", pod.name),
            "namespace": ns,
            "labels": {"internal.secrets-store.csi.k8s.io/node-name": pod.node},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": pod.name, "uid": pod.uid}],
        },
        "status": {
            "podName": pod.name,
            "secretProviderClassName": class,
            "mounted": true,
            "targetPath": format!("/var/lib/kubelet/pods/{}/volumes/kubernetes.io~csi/{target}/mount", pod.uid),
            "objects": objects,
        }
    });
    kubectl_stdin(&["apply", "-f", "-"], &o.to_string());
}

/// [`status_with`] of the usual volume.
pub fn status(ns: &str, pod: &PodOf, class: &str, objects: &[(&str, &str)]) {
    status_with(ns, pod, class, objects, "s0");
}

/// The record's value for class `class` of Deployment `app` (`None`: not in the record).
pub fn recorded(ns: &str, app: &str, class: &str) -> Option<String> {
    let r = deployment_record(ns, app);
    let m: std::collections::BTreeMap<String, String> = serde_json::from_str(&r).ok()?;
    m.get(&format!("secretproviderclass/{class}")).cloned()
}

/// Waits until the record holds a digest (not `absent`) for `class`, and returns it.
pub async fn wait_recorded(ns: &str, app: &str, class: &str) -> String {
    wait_for(
        &format!("{app}'s record to hold secretproviderclass/{class}"),
        DEADLINE,
        || async { recorded(ns, app, class).filter(|v| v != "absent" && v != "unseen") },
    )
    .await
}

/// Waits until the record holds nothing for `class`: a class hashroll does not track may be
/// recorded `absent` while its watch has not brought the class yet (its `ignore` is then
/// unknown), and is dropped once it has.
pub async fn wait_unrecorded(ns: &str, app: &str, class: &str) {
    wait_for(
        &format!("{app}'s record to hold nothing for secretproviderclass/{class}"),
        DEADLINE,
        || async { recorded(ns, app, class).is_none().then_some(()) },
    )
    .await
}

/// Waits until the wall clock is past the second `t` (statuses' change times are seconds).
pub async fn next_second(t: std::time::SystemTime) {
    let secs = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
    };
    wait_for("the next second", Duration::from_secs(5), || async {
        (secs(std::time::SystemTime::now()) > secs(t)).then_some(())
    })
    .await
}
