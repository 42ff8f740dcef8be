//! The install manifests: they render and pass a server-side dry run; with exactly the
//! rights of the manifests' ServiceAccount (a TokenRequest token), hashroll runs the seed
//! walk-through; a right taken away shows up as a failure.

mod support;

use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};
use support::*;
/// `kubectl kustomize DIR` as a JSON List.
fn rendered(dir: &str) -> Value {
    as_list(&kubectl(&["kustomize", dir]))
}

#[tokio::test]
async fn manifests_render_and_pass_a_server_side_dry_run() {
    let base = format!("{}/manifests", root());
    // a server-side dry run does not create the namespace its objects go into
    kubectl(&["apply", "-f", &format!("{base}/base/namespace.yaml")]);
    let out = kubectl(&["apply", "--dry-run=server", "-k", &base]);
    assert!(out.contains("mutatingwebhookconfiguration.admissionregistration.k8s.io/hashroll created (server dry run)"), "{out}");
    assert!(
        out.contains("deployment.apps/hashroll created (server dry run)"),
        "{out}"
    );
    // the self-managed overlay
    let selfm = format!("{}/manifests/overlays/self-managed", root());
    let out = kubectl(&["apply", "--dry-run=server", "-k", &selfm]);
    assert!(
        out.contains(
            "clusterrole.rbac.authorization.k8s.io/hashroll-webhook-ca created (server dry run)"
        ),
        "{out}"
    );
    // the cert-manager overlay, against stand-in CRDs of cert-manager's kinds
    install_stand_in_crds(&CERT_MANAGER_KINDS).await;
    let overlay = format!("{}/manifests/overlays/cert-manager", root());
    let out = wait_for("the cert-manager overlay to dry-run", DEADLINE, || async {
        plane()
            .kubectl(&["apply", "--dry-run=server", "-k", &overlay])
            .ok()
    })
    .await;
    assert!(
        out.contains("certificate.cert-manager.io/hashroll-serving created (server dry run)"),
        "{out}"
    );
    let list = rendered(&overlay);
    let hook = items(&list)
        .into_iter()
        .find(|o| o["kind"] == "MutatingWebhookConfiguration")
        .unwrap();
    assert_eq!(
        hook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        json!("hashroll/hashroll-serving")
    );
}

#[tokio::test]
async fn the_csi_overlay_adds_the_flag_and_only_read_rights_on_the_drivers_kinds() {
    let overlay = format!("{}/manifests/overlays/csi", root());
    let list = rendered(&overlay);
    let deployment = items(&list)
        .into_iter()
        .find(|o| o["kind"] == "Deployment")
        .unwrap();
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].clone();
    assert!(
        args.as_array()
            .unwrap()
            .iter()
            .any(|a| a == "--enable-csi-integration"),
        "{args}"
    );
    let rules: Vec<Value> = items(&list)
        .into_iter()
        .filter(|o| o["kind"] == "ClusterRole")
        .flat_map(|o| o["rules"].as_array().cloned().unwrap_or_default())
        .filter(|r| r["apiGroups"] == json!(["secrets-store.csi.x-k8s.io"]))
        .collect();
    assert_eq!(
        rules,
        vec![json!({"apiGroups": ["secrets-store.csi.x-k8s.io"],
            "resources": ["secretproviderclasses", "secretproviderclasspodstatuses"],
            "verbs": ["get", "list", "watch"]})]
    );
    // the base alone grants none
    let base = rendered(&format!("{}/manifests", root()));
    assert!(!base.to_string().contains("secrets-store.csi.x-k8s.io"));
    kubectl(&[
        "apply",
        "-f",
        &format!("{}/manifests/base/namespace.yaml", root()),
    ]);
    let out = kubectl(&["apply", "--dry-run=server", "-k", &overlay]);
    assert!(
        out.contains("clusterrole.rbac.authorization.k8s.io/hashroll-csi created (server dry run)"),
        "{out}"
    );
}

/// Installs what the manifests grant (namespace, ServiceAccount, RBAC) and the webhook
/// configuration pointed at `url` with the plane's CA.
fn install_rbac_and_webhook(url: &str) {
    use base64::Engine;
    let list = rendered(&format!("{}/manifests", root()));
    let ca = base64::engine::general_purpose::STANDARD.encode(plane().ca_pem());
    let mut keep = Vec::new();
    for mut o in items(&list) {
        let kind = o["kind"].as_str().unwrap_or_default().to_string();
        match kind.as_str() {
            "Namespace" | "ServiceAccount" | "ClusterRole" | "ClusterRoleBinding" | "Role"
            | "RoleBinding" => keep.push(o),
            "MutatingWebhookConfiguration" => {
                for w in o["webhooks"].as_array_mut().unwrap() {
                    w["clientConfig"] = json!({"url": url, "caBundle": ca});
                }
                keep.push(o);
            }
            _ => {}
        }
    }
    let doc = json!({"apiVersion": "v1", "kind": "List", "items": keep});
    kubectl_stdin(&["apply", "-f", "-"], &doc.to_string());
}

#[tokio::test]
async fn seed_walkthrough_with_exactly_the_manifests_rights() {
    let client = client().await;
    // the process (started with the admin kubeconfig) is restarted below with the SA's
    let mut h = Hashroll::start(&["--namespace=hashroll", "--namespaces=ns1"]).await;
    h.kill();
    install_rbac_and_webhook(&h.url("/mutate"));
    let kubeconfig = service_account_kubeconfig(&h.dir, "hashroll", "hashroll");
    // no --hmac-key-file: the key Secret is created with the SA's rights
    // as the manifests run it: --enable-ha, so the Lease rights are exercised too
    h.args = vec![
        "--namespace=hashroll".into(),
        "--namespaces=ns1".into(),
        "--enable-ha".into(),
        "--lease-duration=4s".into(),
        // a 403 is retried this long after (2m by default), so the test sees it land
        "--permanent-error-retry=3s".into(),
    ];
    h.hmac_from_secret = true;
    h.kubeconfig = Some(kubeconfig);
    h.restart().await;
    assert!(
        !kubectl(&[
            "get",
            "secret",
            "hashroll-hmac-key",
            "-n",
            "hashroll",
            "-o",
            "name"
        ])
        .is_empty()
    );

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
    let patch = |name: &str, data: &str| {
        kubectl(&[
            "patch",
            "configmap",
            name,
            "-n",
            "ns1",
            "--type",
            "merge",
            "-p",
            &format!(r#"{{"data":{data}}}"#),
        ]);
    };
    patch("test-config-file", r#"{"info.yaml":"user=ted\nage=22\n"}"#);
    wait_rs(&client, "ns1", "app=nginx", 2).await;
    patch("test-config-env", r#"{"CITY":"shenzhen"}"#);
    wait_rs(&client, "ns1", "app=nginx", 3).await;
    assert_rs_count_stays(&client, "ns1", "app=nginx", 3, SETTLE).await;

    // take the right to patch Deployments away: the next change fails, visibly
    kubectl(&[
        "patch",
        "clusterrole",
        "hashroll",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/rules/1/verbs","value":["get","list","watch"]}]"#,
    ]);
    patch("test-config-env", r#"{"CITY":"guangzhou"}"#);
    let events = Api::<Event>::namespaced(client.clone(), "ns1");
    let note = wait_for("a ReloadFail event", DEADLINE, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("ReloadFail"))
            .and_then(|e| e.note)
    })
    .await;
    assert!(note.contains("forbidden"), "{note}");
    assert_rs_count_stays(&client, "ns1", "app=nginx", 3, Duration::from_secs(2)).await;
    let m = h.metrics().await;
    assert!(
        m.contains("reloader_reload_executed_total{success=\"false\"}"),
        "{m}"
    );

    // given back, the queued change lands (nothing lost)
    kubectl(&[
        "patch",
        "clusterrole",
        "hashroll",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/rules/1/verbs","value":["get","list","watch","patch"]}]"#,
    ]);
    wait_rs(&client, "ns1", "app=nginx", 4).await;
    // Argo Rollouts is not installed here: its CRD is watched by name, which the
    // manifests' resourceNames allow (a list and watch naming it in a field selector)
    let log = h.log();
    assert!(log.contains("rollouts.argoproj.io"), "{log}");
    assert!(!log.contains("no right to watch the CRD"), "{log}");
}
