//! The Secrets Store CSI Driver installed after hashroll started (its own binary: the CRDs
//! are cluster-wide, and every other CSI test wants them from the start): the classes are
//! watched once the CRDs appear, what was stamped "not mounted yet" is completed without a
//! roll, and a rotation then rolls once.

mod support;

use support::csi::*;
use support::*;

#[tokio::test]
async fn classes_are_watched_once_the_crds_appear() {
    let client = client().await;
    let ns = namespace("csi-late");
    let h = Hashroll::for_namespace(&ns, &["--enable-csi-integration"]).await;
    app(
        &ns,
        "web",
        r#"{secretproviderclass.reloader.stakater.com/reload: kv}"#,
        &["kv"],
        1,
    );
    // `unseen` at admission, then `absent` from the watcher (no pod mounted it yet)
    wait_for(
        "web's record to name the class absent",
        DEADLINE,
        || async { recorded(&ns, "web", "kv").filter(|v| v == "absent") },
    )
    .await;
    assert!(
        h.log().contains("watching for the CSI driver's CRDs"),
        "{}",
        h.log()
    );
    install_crds();
    let pods = wait_pods(&ns, "web", 1, None).await;
    status(&ns, &pods[0], "kv", &[("token", "1")]);
    // found by discovery (every 30 s), completed without a roll
    let first = wait_recorded(&ns, "web", "kv").await;
    assert_rs_count_stays(&client, &ns, "app=web", 1, SETTLE).await;
    status(&ns, &pods[0], "kv", &[("token", "2")]);
    wait_rs(&client, &ns, "app=web", 2).await;
    assert_ne!(wait_recorded(&ns, "web", "kv").await, first);
}
