//! Safe rollouts on the real control plane: the Deployment controller says when a rollout
//! is complete or has failed. Waves roll in order; a bad change (the new pods refused by a
//! ValidatingAdmissionPolicy reading the same ConfigMap, so the rollout meets its progress
//! deadline) fails the first wave and holds the rest, across a restart; the fix rolls them
//! all, the failed ones included; a release rolls the rest anyway. (Pauses, the cap and
//! windows: e2e_gates.rs.)

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use support::*;

/// A Deployment `name` of wave `wave` using ConfigMap `cfg`, with a progress deadline a
/// loaded machine meets for a good revision.
fn waved(name: &str, wave: u32) -> String {
    waved_app(name, wave, "progressDeadlineSeconds: 15")
}

/// A policy refusing new pods in `ns` while ConfigMap `verdict` there says `mode: bad`: a
/// change rolled then is a bad one, whose new pods never come up (the verdict is apart from
/// the tracked ConfigMap so the test knows the policy reads it before the change rolls).
fn bad_mode_refuses_pods(ns: &str) -> String {
    format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: bad-mode-{ns}}}
spec:
  failurePolicy: Fail
  paramKind: {{apiVersion: v1, kind: ConfigMap}}
  matchConstraints:
    resourceRules:
    - {{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}}
    namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {ns}}}}}
  validations:
  - expression: "!has(params.data) || !('mode' in params.data) || params.data.mode != 'bad'"
    message: "mode=bad: this revision cannot start"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: bad-mode-{ns}}}
spec:
  policyName: bad-mode-{ns}
  validationActions: [Deny]
  paramRef: {{name: verdict, parameterNotFoundAction: Allow}}
"#
    )
}

/// The policy in force in `ns`, with the verdict `bad`: new pods are refused from now.
async fn refuse_new_pods(ns: &str) {
    kubectl_stdin(&["apply", "-f", "-"], &bad_mode_refuses_pods(ns));
    set_verdict(ns, "bad").await;
}

/// Removes the policy of `ns` (it is cluster-scoped: the test's own clean-up).
fn drop_policy(ns: &str) {
    for kind in [
        "validatingadmissionpolicybinding",
        "validatingadmissionpolicy",
    ] {
        kubectl(&["delete", kind, &format!("bad-mode-{ns}")]);
    }
}

/// Sets the verdict and waits until the policy acts on it (a dry-run pod is refused when
/// `bad`, let through when not).
async fn set_verdict(ns: &str, mode: &str) {
    kubectl_stdin(
        &["apply", "-n", ns, "-f", "-"],
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: verdict}}\ndata: {{mode: {mode}}}\n"
        ),
    );
    let probe = "apiVersion: v1\nkind: Pod\nmetadata: {name: probe}\nspec: {containers: [{name: c, image: x}]}\n";
    wait_for(
        &format!("the policy to read mode={mode}"),
        DEADLINE,
        || async {
            let allowed = plane()
                .kubectl_stdin(&["create", "-n", ns, "--dry-run=server", "-f", "-"], probe)
                .is_ok();
            (allowed == (mode != "bad")).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn waves_roll_in_order_a_failure_holds_the_rest_and_the_fix_rolls_all() {
    let client = client().await;
    let ns = namespace("waves");
    let mut h = Hashroll::for_namespace(&ns, &["--coalesce-window=0"]).await;
    // 20 Deployments, waves 0, 1, 2 (7, 7, 6)
    let wave_of = |i: usize| (i % 3) as u32;
    let names: Vec<String> = (0..20).map(|i| format!("d{i:02}")).collect();
    let mut yaml =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {k: '1'}\n".to_string();
    for (i, n) in names.iter().enumerate() {
        yaml.push_str(&waved(n, wave_of(i)));
    }
    kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &yaml);
    wait_all_rs(&client, &ns, &names, 1).await;

    // a good change: wave by wave
    patch_cm(&ns, "cfg", r#"{"k":"2"}"#);
    wait_all_rs(&client, &ns, &names, 2).await;
    let deps = Api::<Deployment>::namespaced(client.clone(), &ns);
    let mut rolled_at: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let times = rs_times(&client, &ns).await;
    let mut created: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for (i, n) in names.iter().enumerate() {
        let d = deps.get(n).await.unwrap();
        let at = d.metadata.annotations.unwrap()["hashroll.dev/last-roll"].clone();
        rolled_at.entry(wave_of(i)).or_default().push(at);
        created
            .entry(wave_of(i))
            .or_default()
            .push(times[n][1].clone());
    }
    for w in 1..3 {
        let (prev, this) = (&rolled_at[&(w - 1)], &rolled_at[&w]);
        let parse = |t: &String| t.parse::<k8s_openapi::jiff::Timestamp>().unwrap();
        let last_prev = prev.iter().map(parse).max().unwrap();
        let first_this = this.iter().map(parse).min().unwrap();
        assert!(
            first_this > last_prev,
            "wave {w} rolled at {first_this} before wave {} ended rolling at {last_prev}",
            w - 1
        );
        // the controller's own clock (seconds) agrees: no new ReplicaSet of a wave before
        // one of the wave before it
        let rs_prev = created[&(w - 1)].iter().max().unwrap();
        let rs_this = created[&w].iter().min().unwrap();
        assert!(
            rs_this >= rs_prev,
            "ReplicaSets of wave {w} before wave {}",
            w - 1
        );
    }

    // a bad change: the new pods are refused, wave 0's rollouts fail, nothing else rolls
    refuse_new_pods(&ns).await;
    let wave0: Vec<String> = names
        .iter()
        .enumerate()
        .filter(|(i, _)| wave_of(*i) == 0)
        .map(|(_, n)| n.clone())
        .collect();
    patch_cm(&ns, "cfg", r#"{"k":"3"}"#);
    wait_all_rs(&client, &ns, &wave0, 3).await;
    wait_for(
        "wave 0's rollouts to fail",
        Duration::from_secs(120),
        || async {
            let m = h.metrics().await;
            (metric(&m, "hashroll_rollouts_held ") >= 13.0).then_some(())
        },
    )
    .await;
    let mut want: BTreeMap<String, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), if wave_of(i) == 0 { 3 } else { 2 }))
        .collect();
    counts_stay(&client, &ns, &want).await;
    let m = h.metrics().await;
    assert!(metric(&m, "hashroll_rollout_failures_total") >= 1.0, "{m}");
    // the held ones say why, and the source hears of it
    let events = kubectl(&["get", "events", "-n", &ns, "-o", "json"]);
    assert!(events.contains("RolloutHeld"), "{events}");
    assert!(events.contains("RolloutFailed"), "{events}");
    assert!(events.contains("hashroll.dev/release="), "{events}");
    // explain says what holds a roll and how to go on, on a workload and on the source
    let out = h.explain(&["deployment/d01", "-n", &ns]);
    assert!(out.contains("wave: 1"), "{out}");
    assert!(
        out.contains("the pending roll: held: the rollout of deployment/d0"),
        "{out}"
    );
    assert!(out.contains("hashroll.dev/release="), "{out}");
    let out = h.explain(&["configmap/cfg", "-n", &ns]);
    assert!(out.contains("roll pending: held:"), "{out}");
    // a restart decides the same from the objects: still held
    h.restart().await;
    counts_stay(&client, &ns, &want).await;

    // the fix: the failed wave rolls again first, then the rest
    set_verdict(&ns, "good").await;
    patch_cm(&ns, "cfg", r#"{"k":"4"}"#);
    wait_all_rs(&client, &ns, &wave0, 4).await;
    let rest: Vec<String> = names
        .iter()
        .filter(|n| !wave0.contains(n))
        .cloned()
        .collect();
    wait_all_rs(&client, &ns, &rest, 3).await;
    for (n, c) in want.iter_mut() {
        *c = if wave0.contains(n) { 4 } else { 3 };
    }
    counts_stay(&client, &ns, &want).await;
    let m = h.metrics().await;
    assert_eq!(metric(&m, "hashroll_rollouts_held "), 0.0, "{m}");
    drop_policy(&ns);
    assert!(!h.log().contains("panicked"), "{}", h.log());
}

#[tokio::test]
async fn a_release_on_the_source_rolls_the_rest_of_a_failed_change() {
    let client = client().await;
    let ns = namespace("release");
    let h = Hashroll::for_namespace(&ns, &["--coalesce-window=0"]).await;
    let mut yaml =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {k: '1'}\n".to_string();
    yaml.push_str(&waved("first", 0));
    yaml.push_str(&waved("second", 1));
    kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &yaml);
    let both = ["first".to_string(), "second".to_string()];
    wait_all_rs(&client, &ns, &both, 1).await;
    refuse_new_pods(&ns).await;
    patch_cm(&ns, "cfg", r#"{"k":"2"}"#);
    wait_all_rs(&client, &ns, &both[..1], 2).await;
    wait_for("the hold", Duration::from_secs(120), || async {
        (metric(&h.metrics().await, "hashroll_rollouts_held ") == 1.0).then_some(())
    })
    .await;
    // the change to release: what the failed one's record holds for the source
    let record = deployment_record(&ns, "first");
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    let change = record["configmap/cfg"].as_str().unwrap().to_string();
    let events = kubectl(&["get", "events", "-n", &ns, "-o", "json"]);
    assert!(
        events.contains(&format!("hashroll.dev/release={change}")),
        "{events}"
    );
    kubectl(&[
        "annotate",
        "configmap",
        "cfg",
        "-n",
        &ns,
        &format!("hashroll.dev/release={change}"),
    ]);
    wait_all_rs(&client, &ns, &both[1..], 2).await;
    let want = BTreeMap::from([("first".to_string(), 2), ("second".to_string(), 2)]);
    counts_stay(&client, &ns, &want).await;
    drop_policy(&ns);
}
