//! Key rotation: records name the HMAC key they were made with. A key rotated with the
//! previous one kept, or a key lost (its Secret deleted), never rolls a workload by itself;
//! a source whose data changed meanwhile still rolls, once. A rotation of the key Secret
//! takes effect while hashroll runs.

mod support;

use hashroll::core::digest::DigestKey;
use support::*;

/// Two ConfigMaps and a Deployment on each (`a` uses `cfg-a`, `b` uses `cfg-b`).
fn two_apps() -> String {
    let mut out = String::new();
    for name in ["a", "b"] {
        out.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg-{name}}}\ndata: {{k: '1'}}\n"
        ));
        out.push_str(&app_on(name, &format!("cfg-{name}")));
    }
    out
}

/// The key id Deployment `ns/name`'s record names (`None`: no record, or none named).
fn record_key_id(ns: &str, name: &str) -> Option<String> {
    let text = deployment_record(ns, name);
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("@key")?.as_str().map(String::from)
}

async fn wait_key_id(ns: &str, name: &str, id: &str) {
    wait_for(
        &format!("{ns}/{name}'s record made with key {id}"),
        DEADLINE,
        || async { (record_key_id(ns, name).as_deref() == Some(id)).then_some(()) },
    )
    .await;
}

/// hashroll for namespace `ns` (and `extra` flags) with its key in the Secret `keys` there,
/// as an installation keeps it, and [`two_apps`] applied and recorded: the key id their
/// records name.
async fn two_apps_with_key_secret(
    client: &kube::Client,
    ns: &str,
    extra: &[&str],
) -> (Hashroll, String) {
    let mut h = Hashroll::prepare(&[]);
    h.args = vec![
        format!("--namespaces={ns}"),
        format!("--namespace={ns}"),
        "--hmac-key-secret=keys".into(),
    ];
    h.args.extend(extra.iter().map(|a| a.to_string()));
    h.hmac_from_secret = true;
    h.launch.issue_cert(plane()).unwrap();
    h.restart().await;
    h.register_webhook_for(&format!("hashroll-{ns}"), Some(ns));
    wait_webhook_active(ns).await;
    kubectl_stdin(&["apply", "-n", ns, "-f", "-"], &two_apps());
    wait_rs(client, ns, "app=a", 1).await;
    wait_rs(client, ns, "app=b", 1).await;
    let id = wait_for("a record naming a key", DEADLINE, || async {
        record_key_id(ns, "a")
    })
    .await;
    wait_key_id(ns, "b", &id).await;
    (h, id)
}

#[tokio::test]
async fn a_rotated_key_re_records_without_rolling_and_a_change_made_meanwhile_rolls_once() {
    let client = client().await;
    let ns = namespace("rotate");
    let mut h = Hashroll::for_namespace(&ns, &[]).await;
    kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &two_apps());
    wait_rs(&client, &ns, "app=a", 1).await;
    wait_rs(&client, &ns, "app=b", 1).await;
    let old = std::fs::read(h.dir.join("hmac.key")).unwrap();
    let old_id = DigestKey::new(old.clone()).unwrap().id().to_string();
    for app in ["a", "b"] {
        wait_key_id(&ns, app, &old_id).await;
    }

    // rotate: a new current key, the old one kept as the previous; cfg-a changes meanwhile
    h.kill();
    let new = b"e2e-rotated-hmac-key-9876543210".to_vec();
    let new_id = DigestKey::new(new.clone()).unwrap().id().to_string();
    std::fs::write(h.dir.join("hmac.key"), &new).unwrap();
    std::fs::write(h.dir.join("previous.key"), &old).unwrap();
    h.args.push(format!(
        "--hmac-previous-key-file={}",
        h.dir.join("previous.key").display()
    ));
    patch_cm(&ns, "cfg-a", r#"{"k":"2"}"#);
    // explain says what becomes of the record, with the previous key and without it
    let target = ["deployment/b", "-n", ns.as_str()];
    let previous = format!(
        "--hmac-previous-key-file={}",
        h.dir.join("previous.key").display()
    );
    let with_previous = [&target[..], &[previous.as_str()]].concat();
    let (code, out, err) = h.explain_with(plane().kubeconfig(), &with_previous);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("made with the previous key {old_id}"))
            && out.contains("roll pending: no"),
        "{out}"
    );
    let (code, out, err) = h.explain_with(plane().kubeconfig(), &target);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!(
            "made with key {old_id}, which hashroll no longer has"
        )),
        "{out}"
    );
    h.restart().await;

    for app in ["a", "b"] {
        wait_key_id(&ns, app, &new_id).await;
    }
    wait_rs(&client, &ns, "app=a", 2).await;
    assert_rs_count_stays(&client, &ns, "app=a", 2, SETTLE).await;
    assert_rs_count_stays(&client, &ns, "app=b", 1, std::time::Duration::ZERO).await;

    // the previous key dropped again: records made with the new one stand, nothing rolls
    h.args
        .retain(|a| !a.starts_with("--hmac-previous-key-file"));
    h.restart().await;
    assert_rs_count_stays(&client, &ns, "app=b", 1, SETTLE).await;
    assert_rs_count_stays(&client, &ns, "app=a", 2, std::time::Duration::ZERO).await;
    // and a change rolls as ever
    patch_cm(&ns, "cfg-b", r#"{"k":"2"}"#);
    wait_rs(&client, &ns, "app=b", 2).await;
    assert!(!h.log().contains("panicked"), "{}", h.log());
}

#[tokio::test]
async fn a_lost_key_re_records_everything_without_rolling_and_says_so_once() {
    let client = client().await;
    let ns = namespace("lostkey");
    let (mut h, first) = two_apps_with_key_secret(&client, &ns, &[]).await;

    // the key Secret deleted (a reinstall): a new key is made at start
    h.kill();
    kubectl(&["delete", "secret", "keys", "-n", &ns]);
    h.restart().await;
    let second = wait_for("a record naming another key", DEADLINE, || async {
        record_key_id(&ns, "a").filter(|id| *id != first)
    })
    .await;
    wait_key_id(&ns, "b", &second).await;
    assert_rs_count_stays(&client, &ns, "app=a", 1, SETTLE).await;
    assert_rs_count_stays(&client, &ns, "app=b", 1, std::time::Duration::ZERO).await;
    let log = h.log();
    assert_eq!(
        log.matches("an HMAC key hashroll no longer has").count(),
        1,
        "one warning:\n{log}"
    );
    // with the new key, changes roll as ever
    patch_cm(&ns, "cfg-a", r#"{"k":"2"}"#);
    wait_rs(&client, &ns, "app=a", 2).await;
    assert_rs_count_stays(&client, &ns, "app=a", 2, SETTLE).await;
    assert_rs_count_stays(&client, &ns, "app=b", 1, std::time::Duration::ZERO).await;
}

#[tokio::test]
async fn a_rotated_key_secret_is_taken_without_a_restart_and_rolls_nothing() {
    let client = client().await;
    let ns = namespace("liverotate");
    let (h, _) = two_apps_with_key_secret(&client, &ns, &["--key-reload-interval=2s"]).await;

    // the README's rotation, without the restart: the immutable Secret replaced by one
    // holding a new key and the old one as `previous`
    let old = kubectl(&[
        "get",
        "secret",
        "keys",
        "-n",
        &ns,
        "-o",
        "jsonpath={.data.key}",
    ]);
    let new = b"e2e-live-rotated-hmac-key-0123456789";
    let new_id = DigestKey::new(new.to_vec()).unwrap().id().to_string();
    use base64::Engine as _;
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: keys, namespace: {ns}}}\ndata: {{key: {}, previous: {}}}\n",
        base64::engine::general_purpose::STANDARD.encode(new),
        old.trim()
    );
    kubectl_stdin(&["replace", "--force", "-f", "-"], &secret);
    for app in ["a", "b"] {
        wait_key_id(&ns, app, &new_id).await;
    }
    assert_rs_count_stays(&client, &ns, "app=a", 1, SETTLE).await;
    assert_rs_count_stays(&client, &ns, "app=b", 1, std::time::Duration::ZERO).await;
    let log = h.log();
    assert!(log.contains("the HMAC keys changed"), "{log}");
    assert!(!log.contains("an HMAC key hashroll no longer has"), "{log}");
    // with the new key, a change rolls as ever, once
    patch_cm(&ns, "cfg-a", r#"{"k":"2"}"#);
    wait_rs(&client, &ns, "app=a", 2).await;
    assert_rs_count_stays(&client, &ns, "app=a", 2, SETTLE).await;
    assert_rs_count_stays(&client, &ns, "app=b", 1, std::time::Duration::ZERO).await;
}
