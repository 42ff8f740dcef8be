//! A kind named by flag: a CRD written for this test keeps its pod template at a
//! non-standard path (`spec.workload.podTemplate`). With `--workload-kind` hashroll stamps
//! it at admission, patches the token into that path on a change, rolls nothing on a
//! restart, and `explain` reads it. Named but not installed: a log line, no crash, and the
//! kind watched within seconds of its CRD's install.

mod support;

use std::time::Duration;

use kube::api::DynamicObject;
use support::kinds::{
    TOKEN, WIDGET_FLAG as FLAG, add_widget_rule, annotation_at, install_widget_crd, widgets,
};
use support::*;

fn token(o: &DynamicObject) -> Option<String> {
    annotation_at(o, "/spec/workload/podTemplate", TOKEN)
}

#[tokio::test]
async fn a_kind_named_by_flag_is_stamped_and_rolled_at_its_template_path() {
    let client = client().await;
    // named before its CRD exists: hashroll starts, says so, and picks it up later
    let ns = namespace("custom");
    let mut h = Hashroll::for_namespace(&ns, &[FLAG]).await;
    wait_for("the not-installed line", DEADLINE, || async {
        h.log().contains("not installed").then_some(())
    })
    .await;
    install_widget_crd().await;
    // found by the watch of its CRD, not by a poll (every 30 s): watched within seconds
    let established = std::time::Instant::now();
    wait_for("the kind watched", DEADLINE, || async {
        h.log().contains("now installed; watching it").then_some(())
    })
    .await;
    let took = established.elapsed();
    assert!(
        took <= Duration::from_secs(5),
        "the kind was watched {took:?} after its CRD was established"
    );
    add_widget_rule(&ns);
    // the webhook configuration takes a moment to reach the apiserver's admission chain
    let w = widgets(&client, &ns);
    kubectl_stdin(
        &["apply", "-n", &ns, "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {k: '1'}\n",
    );
    let widget = |n: usize| {
        format!(
            r#"apiVersion: example.hashroll.dev/v1
kind: Widget
metadata:
  name: w{n}
  annotations: {{reloader.stakater.com/auto: "true"}}
spec:
  size: 3
  workload:
    podTemplate:
      metadata: {{labels: {{app: w}}}}
      spec:
        containers: [{{name: c, image: nginx, envFrom: [{{configMapRef: {{name: cfg}}}}]}}]
"#
        )
    };
    // stamped at admission once the rule is live (a widget made before that gets its
    // record from the watcher instead)
    let mut n = 0;
    let first = wait_for("a widget stamped at admission", DEADLINE, || {
        n += 1;
        let yaml = widget(n);
        let (w, ns) = (w.clone(), ns.clone());
        async move {
            kubectl_stdin(&["apply", "-f", "-", "-n", &ns], &yaml);
            token(&w.get(&format!("w{n}")).await.ok()?).map(|t| (n, t))
        }
    })
    .await;
    let (name, t1) = (format!("w{}", first.0), first.1);

    set_cfg(&ns, "2");
    let t2 = wait_for("the new token at the template path", DEADLINE, || async {
        token(&w.get(&name).await.ok()?).filter(|t| *t != t1)
    })
    .await;
    // the rest of the object is the tenant's
    assert_eq!(
        w.get(&name).await.unwrap().data.pointer("/spec/size"),
        Some(&serde_json::json!(3))
    );
    h.restart().await;
    holds_for(SETTLE, || async {
        assert_eq!(token(&w.get(&name).await.unwrap()), Some(t2.clone()));
    })
    .await;
    let out = h.explain(&[&format!("widget/{name}"), "-n", &ns, FLAG]);
    assert!(out.contains("configmap/cfg"), "{out}");
    assert!(!h.log().contains("panicked"), "{}", h.log());
}
