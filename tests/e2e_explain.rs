//! `hashroll explain` against the real plane: what a workload tracks and why, whether a roll
//! is pending, what a source change would roll; clear errors.

mod support;

use serde_json::Value;
use support::*;

fn explain(h: &Hashroll, kubeconfig: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    h.explain_with(kubeconfig, args)
}

#[tokio::test]
async fn explain_tells_what_is_tracked_why_and_what_is_pending() {
    let client = client().await;
    let ns = namespace("explain");
    let h = Hashroll::for_namespace(&ns, &[]).await;
    let kc = plane().kubeconfig().to_path_buf();
    kubectl_stdin(
        &["apply", "-n", &ns, "-f", "-"],
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {a: "1", b: "2"}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations: {configmap.reloader.stakater.com/reload: "cfg, later"}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: nginx, env: [{name: A, valueFrom: {configMapKeyRef: {name: cfg, key: a}}}]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: plain}
spec:
  selector: {matchLabels: {app: plain}}
  template:
    metadata: {labels: {app: plain}}
    spec: {containers: [{name: c, image: nginx}]}
"#,
    );
    wait_rs(&client, &ns, "app=web", 1).await;

    let (code, out, err) = explain(&h, &kc, &["deployment/web", "-n", &ns, "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    let tracked = r["tracked"].as_array().unwrap();
    assert_eq!(tracked.len(), 2, "{out}");
    let cfg = tracked
        .iter()
        .find(|t| t["source"] == "configmap/cfg")
        .unwrap();
    assert_eq!(cfg["exists"], Value::Bool(true));
    assert_eq!(cfg["keys"], serde_json::json!(["a"]));
    assert!(
        cfg["reasons"][0]
            .as_str()
            .unwrap()
            .contains("configmap.reloader.stakater.com/reload")
    );
    let later = tracked
        .iter()
        .find(|t| t["source"] == "configmap/later")
        .unwrap();
    assert_eq!(later["exists"], Value::Bool(false));
    assert_eq!(r["roll_pending"], Value::Bool(false));

    // with hashroll stopped, a change shows as a pending roll
    h.kill();
    kubectl(&[
        "patch",
        "configmap",
        "cfg",
        "-n",
        &ns,
        "--type",
        "merge",
        "-p",
        r#"{"data":{"a":"9"}}"#,
    ]);
    let (code, out, _) = explain(&h, &kc, &["deployment/web", "-n", &ns]);
    assert_eq!(code, 0);
    assert!(
        out.contains("roll pending: yes, for configmap/cfg"),
        "{out}"
    );

    // a source: what a change to it would roll, and why
    let (code, out, _) = explain(&h, &kc, &["configmap/cfg", "-n", &ns]);
    assert_eq!(code, 0);
    assert!(
        out.contains("would roll 1 workload(s)") && out.contains("deployment/web"),
        "{out}"
    );
    let (_, out, _) = explain(&h, &kc, &["secret/nobody-uses", "-n", &ns]);
    assert!(out.contains("rolls nothing"), "{out}");

    // not opted in, unknown object, unknown kind, no cluster
    let (code, out, _) = explain(&h, &kc, &["deployment/plain", "-n", &ns]);
    assert_eq!(code, 0);
    assert!(out.contains("not opted in"), "{out}");
    let (code, _, err) = explain(&h, &kc, &["deployment/missing", "-n", &ns]);
    assert_eq!(code, 1);
    assert!(err.contains("deployment/missing not found"), "{err}");
    let (code, _, err) = explain(&h, &kc, &["pod/x", "-n", &ns]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown kind"), "{err}");
    let bad = h.dir.join("nowhere.kubeconfig");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: Config\nclusters: [{name: x, cluster: {server: 'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {}}]\ncontexts: [{name: x, context: {cluster: x, user: u}}]\ncurrent-context: x\n",
    )
    .unwrap();
    let (code, _, err) = explain(&h, &bad, &["deployment/web", "-n", &ns]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot reach the cluster") || err.contains("connect"),
        "{err}"
    );
}

/// Installed as `kubectl-hashroll` on the PATH, the binary is a kubectl plugin: `kubectl
/// hashroll explain ...` gives what `hashroll explain` gives, and its help says how it was
/// called.
#[tokio::test]
async fn the_binary_is_a_kubectl_plugin() {
    let client = client().await;
    let ns = namespace("plugin");
    let h = Hashroll::for_namespace(&ns, &[]).await;
    kubectl_stdin(
        &["apply", "-n", &ns, "-f", "-"],
        &cfg_and_app("1", &["web"]),
    );
    wait_rs(&client, &ns, "app=web", 1).await;

    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_hashroll"),
        bin.path().join("kubectl-hashroll"),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let kubectl_bin = hashroll_harness::plane::default_bin_dir().join("bin/kubectl");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&kubectl_bin)
            .args(args)
            .env("PATH", &path)
            .env("KUBECONFIG", plane().kubeconfig())
            .output()
            .expect("run kubectl");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, list, _) = run(&["plugin", "list"]);
    assert_eq!(code, 0);
    assert!(list.contains("kubectl-hashroll"), "{list}");
    let key = format!("--hmac-key-file={}", h.dir.join("hmac.key").display());
    let (code, out, err) = run(&["hashroll", "explain", "deployment/web", "-n", &ns, &key]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        h.explain(&["deployment/web", "-n", &ns]),
        "the same as hashroll explain"
    );
    assert!(out.contains("configmap/cfg"), "{out}");
    let (_, help, _) = run(&["hashroll", "--help"]);
    assert!(help.contains("Usage: kubectl hashroll"), "{help}");
}
