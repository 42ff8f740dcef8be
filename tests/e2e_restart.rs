//! Nothing lost, nothing rolled twice: changes made while hashroll was down are caught up
//! once; a restart with no change rolls nothing; workloads that opted in while it was down
//! are recorded, not rolled.

mod support;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use support::*;

#[tokio::test]
async fn kill_9_change_start_rolls_exactly_once_and_a_clean_restart_rolls_nothing() {
    let client = client().await;
    let ns = namespace("kill9");
    let mut h = Hashroll::for_namespace(&ns, &[]).await;
    kubectl_stdin(
        &["apply", "-n", &ns, "-f", "-"],
        &cfg_and_app("1", &["web"]),
    );
    wait_rs(&client, &ns, "app=web", 1).await;

    h.kill();
    set_cfg(&ns, "2");
    assert_rs_count_stays(&client, &ns, "app=web", 1, SETTLE).await;
    h.restart().await;
    wait_rs(&client, &ns, "app=web", 2).await;
    assert_rs_count_stays(&client, &ns, "app=web", 2, SETTLE).await;

    // again, with nothing changed
    h.restart().await;
    assert_rs_count_stays(&client, &ns, "app=web", 2, SETTLE).await;
    // and it still works afterwards
    set_cfg(&ns, "3");
    wait_rs(&client, &ns, "app=web", 3).await;
}

#[tokio::test]
async fn workloads_created_while_down_are_recorded_not_rolled_then_roll_once_on_change() {
    let client = client().await;
    let ns = namespace("down");
    let mut h = Hashroll::for_namespace(&ns, &[]).await;
    h.kill();
    kubectl_stdin(
        &["apply", "-n", &ns, "-f", "-"],
        &cfg_and_app("1", &["a", "b"]),
    );
    wait_rs(&client, &ns, "app=a", 1).await;
    wait_rs(&client, &ns, "app=b", 1).await;
    let api = Api::<Deployment>::namespaced(client.clone(), &ns);
    let record = |d: &Deployment| -> Option<BTreeMap<String, String>> {
        serde_json::from_str(d.metadata.annotations.as_ref()?.get(RECORD)?).ok()
    };
    assert_eq!(
        record(&api.get("a").await.unwrap()),
        None,
        "the webhook was down: no record yet"
    );

    h.restart().await;
    for name in ["a", "b"] {
        wait_for(&format!("a record on {name}"), DEADLINE, || async {
            record(&api.get(name).await.ok()?).filter(|r| r.contains_key("configmap/cfg"))
        })
        .await;
    }
    assert_rs_count_stays(&client, &ns, "app=a", 1, SETTLE).await;
    assert_rs_count_stays(&client, &ns, "app=b", 1, std::time::Duration::ZERO).await;

    set_cfg(&ns, "2");
    wait_rs(&client, &ns, "app=a", 2).await;
    wait_rs(&client, &ns, "app=b", 2).await;
    assert_rs_count_stays(&client, &ns, "app=a", 2, SETTLE).await;
    assert_rs_count_stays(&client, &ns, "app=b", 2, std::time::Duration::ZERO).await;
}
