//! Hostile tenants on the real plane: one namespace does the worst things issue 11 names
//! (absurd durations, a hand-written paused-at, a reload list matching thousands of
//! long-named sources, a thousand missing names, pathological regexes, a forged review for
//! another namespace) while an ordinary workload in another namespace keeps rolling in its
//! usual time; the process is never restarted and nothing panics.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};
use support::*;
fn app(name: &str, annotations: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  annotations: {{{annotations}}}
spec:
  replicas: 0
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: c, image: nginx, envFrom: [{{configMapRef: {{name: cfg}}}}]}}]
"#
    )
}

/// The calm namespace's Deployment rolls on a change within `limit`.
async fn calm_still_rolls(client: &kube::Client, calm: &str, round: usize, limit: Duration) {
    let t0 = Instant::now();
    set_cfg(calm, &format!("v{round}"));
    wait_rs(client, calm, "app=calm", round).await;
    let took = t0.elapsed();
    assert!(took < limit, "the calm workload took {took:?} to roll");
}

fn assert_alive(h: &Hashroll) {
    let exited = h.exited();
    assert!(exited.is_none(), "hashroll exited: {exited:?}\n{}", h.log());
    assert!(
        !h.log().contains("panicked"),
        "a panic in the log:\n{}",
        h.log()
    );
}

async fn warnings_on(client: &kube::Client, ns: &str, name: &str) -> Vec<String> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("InvalidAnnotation"))
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.note)
        .collect()
}

#[tokio::test]
async fn a_hostile_tenant_slows_and_stops_nothing_for_others() {
    let client = client().await;
    let calm = namespace("calm");
    let tenant = namespace("tenant");
    let h = Hashroll::start(&[&format!("--namespaces={calm},{tenant}")]).await;
    h.register_webhook_for(&format!("hashroll-{calm}"), Some(&calm));
    h.register_webhook_for(&format!("hashroll-{tenant}"), Some(&tenant));
    wait_webhook_active(&calm).await;
    wait_webhook_active(&tenant).await;

    // the ordinary workload, and its usual time to roll
    apply(&calm, &cfg_and_app("v0", &["calm"]));
    wait_rs(&client, &calm, "app=calm", 1).await;
    let t0 = Instant::now();
    set_cfg(&calm, "v1");
    wait_rs(&client, &calm, "app=calm", 2).await;
    let usual = t0.elapsed();
    let limit = (usual * 5).max(Duration::from_secs(20));
    eprintln!("calm rolls in {usual:?}; allowed under hostile load: {limit:?}");

    // 1,500 ConfigMaps of long names, and a list matching them all
    let long = "l".repeat(200);
    let mut many = String::new();
    for i in 0..1500 {
        many.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {long}-{i}}}\ndata: {{k: '0'}}\n"
        ));
    }
    kubectl_stdin(&["create", "-n", &tenant, "-f", "-"], &many);
    apply(
        &tenant,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {k: '0'}\n",
    );
    let missing: Vec<String> = (0..1000).map(|i| format!("missing-{i}")).collect();
    let regexes = [
        "(a{1000}){1000}",
        "((a+)+)+b",
        "(unclosed",
        &"x".repeat(600),
    ]
    .join(",");
    let out = apply(
        &tenant,
        &[
            app("all", r#"configmap.reloader.stakater.com/reload: "l+-.*""#),
            app(
                "paused",
                r#"reloader.stakater.com/auto: "true", deployment.reloader.stakater.com/pause-period: "3000000000000000h""#,
            ),
            app(
                "missing",
                &format!(r#"configmap.reloader.stakater.com/reload: "{}""#, missing.join(",")),
            ),
            app(
                "regexes",
                &format!(r#"configmap.reloader.stakater.com/reload: "{regexes}""#),
            ),
        ]
        .join("---\n"),
    );
    assert!(
        out.contains("deployment.apps/all"),
        "the tenant's apply went through: {out}"
    );
    let deps: Api<Deployment> = Api::namespaced(client.clone(), &tenant);
    let record = |d: &Deployment| {
        d.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("hashroll.dev/sources"))
            .cloned()
            .unwrap_or_default()
    };
    // stamped by the webhook, or, when its review on the slow lane outlived the
    // apiserver's timeout (a loaded machine), by the watcher soon after
    let all = wait_for(
        "a record on the tenant's wide Deployment",
        DEADLINE,
        || async {
            let d = deps.get("all").await.ok()?;
            (!record(&d).is_empty()).then_some(d)
        },
    )
    .await;
    let groups: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&record(&all)).unwrap();
    assert!(
        groups
            .keys()
            .all(|k| k.starts_with("group/") || k == "@key"),
        "compact record: {}",
        record(&all)
    );
    assert!(record(&all).len() < 2048);
    calm_still_rolls(&client, &calm, 3, limit).await;

    // a hand-written paused-at in the future, garbage in another; then restart
    kubectl(&[
        "annotate",
        "-n",
        &tenant,
        "deployment/paused",
        "--overwrite",
        "deployment.reloader.stakater.com/paused-at=9999-01-01T00:00:00Z",
    ]);
    kubectl(&[
        "annotate",
        "-n",
        &tenant,
        "deployment/missing",
        "--overwrite",
        "deployment.reloader.stakater.com/paused-at=not-a-time",
        "deployment.reloader.stakater.com/pause-period=1e400h",
    ]);
    // a change rolls the tenant's workloads: the compact record, the absurd pause
    patch_cm(&tenant, &format!("{long}-7"), r#"{"k":"1"}"#);
    patch_cm(&tenant, "cfg", r#"{"k":"1"}"#);
    wait_rs(&client, &tenant, "app=all", 2).await;
    wait_rs(&client, &tenant, "app=paused", 2).await;
    calm_still_rolls(&client, &calm, 4, limit).await;
    let mut h = h;
    h.restart().await;
    calm_still_rolls(&client, &calm, 5, limit).await;
    assert_alive(&h);

    // a forged review: asked in the tenant's namespace about an object in calm's
    let forged = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "forged", "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": "calm", "namespace": tenant, "operation": "CREATE",
            "userInfo": {"username": "mallory"},
            "object": {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "calm", "namespace": calm,
                    "annotations": {"reloader.stakater.com/auto": "true"}},
                "spec": {"selector": {}, "template": {"spec": {"containers": [
                    {"name": "c", "image": "x", "envFrom": [{"configMapRef": {"name": "cfg"}}]}]}}}}
        }
    });
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(plane().ca_pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let answer: Value = http
        .post(h.url("/mutate"))
        .json(&forged)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["response"]["allowed"], true);
    assert!(answer["response"]["patch"].is_null(), "{answer}");
    assert!(
        answer["response"]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("namespace")
    );

    // every bad value was said: a Warning Event on its workload
    for (name, says) in [
        ("paused", "taken as 24h"),
        ("missing", "only the first"),
        ("regexes", "too large"),
    ] {
        let notes = wait_for(&format!("a Warning Event on {name}"), DEADLINE, || async {
            let n = warnings_on(&client, &tenant, name).await;
            (!n.is_empty()).then_some(n)
        })
        .await;
        assert!(notes.iter().any(|n| n.contains(says)), "{name}: {notes:?}");
    }
    assert_alive(&h);
}
