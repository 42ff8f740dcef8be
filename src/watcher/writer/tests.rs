//! The writer's own state, without a cluster: the rate limit, the ReloadFail
//! de-duplication, what an alert says.

use std::time::Duration;

use tokio::time::Instant;

use super::{Writer, notice};
use crate::cache::filter::NamespaceFilter;
use crate::core::kind::WorkloadKind;
use crate::core::record::Decision;
use crate::core::refs::SourceRef;
use crate::testing::{nowhere_client, offline_watcher_state as offline_state};
use crate::watcher::workloads::WorkloadKey;

fn writer(rate: f64) -> Writer {
    let state = offline_state(NamespaceFilter::default());
    Writer::new(state, nowhere_client(), "t".into(), rate, true, None, None)
}

fn key(name: &str) -> WorkloadKey {
    WorkloadKey {
        kind: WorkloadKind::Deployment,
        namespace: "ns".into(),
        name: name.into(),
    }
}

#[tokio::test(start_paused = true)]
async fn roll_patches_take_slots_the_rate_apart() {
    let w = writer(4.0);
    let t0 = Instant::now();
    for _ in 0..5 {
        w.limit.wait().await;
    }
    // the first slot is now, each next a quarter second on
    assert_eq!(t0.elapsed(), Duration::from_secs(1));
    // a slot left unused is not saved up: after a pause the next waits no longer
    tokio::time::sleep(Duration::from_secs(10)).await;
    let t1 = Instant::now();
    w.limit.wait().await;
    w.limit.wait().await;
    assert_eq!(t1.elapsed(), Duration::from_millis(250));
}

#[tokio::test(start_paused = true)]
async fn a_rate_out_of_bounds_is_clamped_never_a_panic() {
    for rate in [0.0, -1.0, f64::NAN, 1e-300] {
        let w = writer(rate);
        assert_eq!(w.limit.interval, Duration::from_secs(1000), "{rate}");
    }
    let w = writer(f64::INFINITY);
    assert_eq!(w.limit.interval, Duration::ZERO);
    let t0 = Instant::now();
    w.limit.wait().await;
    w.limit.wait().await;
    assert_eq!(t0.elapsed(), Duration::ZERO);
}

#[tokio::test]
async fn a_failure_is_posted_once_per_text_and_workload() {
    let w = writer(10.0);
    assert!(w.first_failure(&key("a"), "patch refused"));
    assert!(
        !w.first_failure(&key("a"), "patch refused"),
        "the same again"
    );
    assert!(
        w.first_failure(&key("b"), "patch refused"),
        "another workload"
    );
    assert!(w.first_failure(&key("a"), "quota exceeded"), "another text");
    assert!(
        w.first_failure(&key("a"), "patch refused"),
        "the text changed back"
    );
}

#[test]
fn an_alert_names_the_workload_and_the_sources_that_rolled_it() {
    let d = Decision {
        record: None,
        token: Some("t2".into()),
        roll: true,
        changed: vec![
            SourceRef::configmap("cfg").into(),
            SourceRef::secret("s").into(),
        ],
        key_id: "k".into(),
    };
    let n = notice(&key("web"), &d, false);
    assert_eq!(
        (n.kind.as_str(), n.namespace.as_str(), n.name.as_str()),
        ("Deployment", "ns", "web")
    );
    assert_eq!(n.sources, ["configmap/cfg", "secret/s"]);
    assert!(!n.rolled && n.held.is_none());
}
