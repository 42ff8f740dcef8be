//! `hashroll migrate --from-reloader` on the real plane: a dry run lists Reloader's
//! leftovers and changes nothing; `--apply` removes them in one patch per workload (one
//! rollout each) and records the workload in the same patch, so hashroll, started after,
//! rolls nothing again; the next change rolls once.

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use support::*;

const TOKEN: &str = "hashroll.dev/config-hash";

fn legacy(name: &str, env: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  annotations: {{reloader.stakater.com/auto: "true"}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata:
      labels: {{app: {name}}}
      annotations: {{reloader.stakater.com/last-reloaded-from: '{{"type":"CONFIGMAP","name":"cfg"}}'}}
    spec:
      containers:
      - name: c
        image: nginx
        envFrom: [{{configMapRef: {{name: cfg}}}}]
        env: {env}
"#
    )
}

fn migrate(h: &Hashroll, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hashroll"))
        .arg("migrate")
        .args(args)
        .arg(format!(
            "--hmac-key-file={}",
            h.dir.join("hmac.key").display()
        ))
        .env("KUBECONFIG", plane().kubeconfig())
        .output()
        .expect("run hashroll migrate");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn annotations(d: &Deployment) -> (Option<String>, Option<String>) {
    let rec = d
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RECORD).cloned());
    let tok = d
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(TOKEN).cloned());
    (rec, tok)
}

#[tokio::test]
async fn migrate_removes_reloaders_leftovers_with_one_rollout_and_nothing_after() {
    let client = client().await;
    let ns = namespace("migrate");
    // hashroll is not running yet (as when switching from Reloader): its key is
    let only = format!("--namespaces={ns}");
    let mut h = Hashroll::prepare(&[&only]);
    h.launch.issue_cert(plane()).unwrap();
    let yaml = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg}}\ndata: {{k: '1'}}\n---\n{}---\n{}",
        legacy(
            "legacy",
            "[{name: STAKATER_CFG_CONFIGMAP, value: abc}, {name: KEEP, value: k}]"
        ),
        legacy("clean", "[{name: KEEP, value: k}]").replace(
            "annotations: {reloader.stakater.com/last-reloaded-from: '{\"type\":\"CONFIGMAP\",\"name\":\"cfg\"}'}",
            "annotations: {}"
        ),
    );
    kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &yaml);
    wait_rs(&client, &ns, "app=legacy", 1).await;
    wait_rs(&client, &ns, "app=clean", 1).await;
    let deps = Api::<Deployment>::namespaced(client.clone(), &ns);
    // the generation: the controllers change the status (and the resourceVersion) on their own
    let generation = deps.get("legacy").await.unwrap().metadata.generation;

    // the dry run lists and changes nothing
    let (ok, out) = migrate(&h, &["--from-reloader", "-n", &ns]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "deployment/{ns}/legacy: remove env STAKATER_CFG_CONFIGMAP (container c), annotation reloader.stakater.com/last-reloaded-from; record 1 tracked source(s)"
        )),
        "{out}"
    );
    assert!(!out.contains("/clean"), "{out}");
    assert!(
        out.contains("1 workload(s)") && out.contains("dry run"),
        "{out}"
    );
    assert_rs_count_stays(&client, &ns, "app=legacy", 1, SETTLE).await;
    assert_eq!(
        deps.get("legacy").await.unwrap().metadata.generation,
        generation
    );

    // applied: gone, recorded, one rollout
    let (ok, out) = migrate(&h, &["--from-reloader", "-n", &ns, "--apply"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("patched deployment/{ns}/legacy")),
        "{out}"
    );
    wait_rs(&client, &ns, "app=legacy", 2).await;
    let d = deps.get("legacy").await.unwrap();
    let c = &d.spec.template.spec.as_ref().unwrap().containers[0];
    let env: Vec<_> = c.env.iter().flatten().map(|e| e.name.clone()).collect();
    assert_eq!(env, ["KEEP"]);
    let (rec, tok) = annotations(&d);
    assert!(
        rec.as_deref().is_some_and(|r| r.contains("configmap/cfg")),
        "{rec:?}"
    );
    assert!(tok.is_some());
    let tmpl_ann = d.spec.template.metadata.unwrap().annotations.unwrap();
    assert!(!tmpl_ann.contains_key("reloader.stakater.com/last-reloaded-from"));
    assert_rs_count_stays(&client, &ns, "app=legacy", 2, SETTLE).await;
    assert_rs_count_stays(&client, &ns, "app=clean", 1, std::time::Duration::ZERO).await;

    // hashroll starts: it finds them recorded, rolls nothing, writes nothing
    h.restart().await;
    h.register_webhook_for(&format!("hashroll-{ns}"), Some(&ns));
    wait_webhook_active(&ns).await;
    assert_rs_count_stays(&client, &ns, "app=legacy", 2, SETTLE).await;
    assert_eq!(annotations(&deps.get("legacy").await.unwrap()), (rec, tok));
    let (ok, out) = migrate(&h, &["--from-reloader", "-n", &ns]);
    assert!(ok && out.contains("nothing of Reloader's left"), "{out}");

    // the next change rolls once
    set_cfg(&ns, "2");
    wait_rs(&client, &ns, "app=legacy", 3).await;
    assert_rs_count_stays(&client, &ns, "app=legacy", 3, SETTLE).await;
    assert!(!h.log().contains("panicked"), "{}", h.log());
}

#[tokio::test]
async fn migrate_says_what_it_needs() {
    let h = Hashroll::prepare(&[]);
    let (ok, out) = migrate(&h, &["-n", "default"]);
    assert!(!ok && out.contains("--from-reloader"), "{out}");
}
