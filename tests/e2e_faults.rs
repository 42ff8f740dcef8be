//! Faults: a roll refused for good (a ValidatingAdmissionPolicy denying template changes of
//! one Deployment, answered 422) is retried slowly with one ReloadFail Event for the error,
//! while another namespace keeps rolling on time; once the policy is gone the change lands,
//! once.

mod support;

use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use support::*;

fn policy(ns: &str) -> String {
    format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: frozen-{ns}}}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: ["apps"]
      apiVersions: ["v1"]
      operations: ["UPDATE"]
      resources: ["deployments"]
  validations:
  - expression: "object.spec.template == oldObject.spec.template"
    message: "the template of this Deployment is frozen"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: frozen-{ns}}}
spec:
  policyName: frozen-{ns}
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {{kubernetes.io/metadata.name: {ns}}}
"#
    )
}

async fn reload_fail_events(client: &kube::Client, ns: &str) -> usize {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("ReloadFail"))
        .count()
}

#[tokio::test]
async fn a_refused_roll_is_retried_slowly_with_one_event_and_lands_once_allowed() {
    let client = client().await;
    let frozen = namespace("frozen");
    let other = namespace("thawed");
    let h = Hashroll::start(&[
        &format!("--namespaces={frozen},{other}"),
        "--permanent-error-retry=3s",
    ])
    .await;
    for ns in [&frozen, &other] {
        h.register_webhook_for(&format!("hashroll-{ns}"), Some(ns));
        wait_webhook_active(ns).await;
        kubectl_stdin(&["apply", "-n", ns, "-f", "-"], &cfg_and_app("1", &["web"]));
        wait_rs(&client, ns, "app=web", 1).await;
    }
    kubectl_stdin(&["apply", "-f", "-"], &policy(&frozen));
    // the policy is live once it refuses a template change of ours
    // the policy is live once it refuses a template change (a new one each try: a change
    // that got through before would be no change the next time)
    let mut n = 0;
    wait_for("the policy to refuse", DEADLINE, || {
        n += 1;
        let patch =
            format!(r#"{{"spec":{{"template":{{"metadata":{{"labels":{{"probe":"p{n}"}}}}}}}}}}"#);
        let frozen = frozen.clone();
        async move {
            let out = plane().kubectl(&[
                "patch",
                "deployment",
                "web",
                "-n",
                &frozen,
                "--type=merge",
                "-p",
                &patch,
            ]);
            out.is_err().then_some(())
        }
    })
    .await;
    // the probes that got through rolled it: count from here
    let before = replicasets(&client, &frozen, "app=web").await.len();
    set_cfg(&frozen, "2");
    set_cfg(&other, "2");
    // the other namespace rolls on time
    wait_rs(&client, &other, "app=web", 2).await;
    wait_for("a ReloadFail Event", DEADLINE, || async {
        (reload_fail_events(&client, &frozen).await > 0).then_some(())
    })
    .await;
    // retried every 3 s for 12 s: still one Event, still one ReplicaSet
    holds_for(Duration::from_secs(12), || async {
        assert_eq!(reload_fail_events(&client, &frozen).await, 1);
        assert_rs_count_stays(&client, &frozen, "app=web", before, Duration::ZERO).await;
    })
    .await;
    assert!(
        h.log().matches("will retry").count() >= 2,
        "retried: {}",
        h.log()
    );

    // allowed again: the change lands, once
    kubectl(&[
        "delete",
        "validatingadmissionpolicybinding",
        &format!("frozen-{frozen}"),
    ]);
    kubectl(&[
        "delete",
        "validatingadmissionpolicy",
        &format!("frozen-{frozen}"),
    ]);
    wait_rs(&client, &frozen, "app=web", before + 1).await;
    assert_rs_count_stays(&client, &frozen, "app=web", before + 1, SETTLE).await;
    assert!(!h.log().contains("panicked"));
}
