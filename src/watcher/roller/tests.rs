//! The roller on a state without a cluster (`crate::testing`): any call to the apiserver
//! fails, so a check that returns `Ok` made none, and one that reaches the apiserver says
//! so with an error.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::Roller;
use crate::cache::filter::NamespaceFilter;
use crate::core::kind::WorkloadKind;
use crate::core::names::{AnnotationNames, LAST_ROLL, MIN_ROLL_INTERVAL, PAUSED_AT};
use crate::core::record::{Mode, Stored};
use crate::core::refs::SourceRef;
use crate::core::stamp::stamp_refs;
use crate::core::workload::Workload;
use crate::services::metrics::ByReason;
use crate::services::state::State;
use crate::testing::{nowhere_client, offline_watcher_state as offline_state};
use crate::watcher::WatcherConfig;
use crate::watcher::workloads::{WorkloadEntry, WorkloadKey};

const NS: &str = "team-a";

fn config() -> WatcherConfig {
    WatcherConfig {
        coalesce_window: Duration::ZERO,
        max_rollouts_per_second: 100.0,
        cronjob_run_on_change: true,
        permanent_error_retry: Duration::from_secs(60),
        min_roll_interval: Duration::ZERO,
        paused: false,
        rollout_timeout: Duration::from_secs(600),
        max_concurrent_rollouts: 0,
        switch: None,
        window_namespace_label: None,
        instance: "hashroll-test".into(),
        alerts: None,
        post_instead: None,
    }
}

/// A roller on an offline state whose namespaces are `filter`'s, and its state.
fn roller_with(cfg: WatcherConfig, filter: NamespaceFilter) -> (Roller, Arc<State>) {
    let state = offline_state(filter);
    (Roller::new(state.clone(), nowhere_client(), &cfg), state)
}

fn roller() -> (Roller, Arc<State>) {
    roller_with(config(), NamespaceFilter::default())
}

fn put_cm(state: &State, name: &str, value: &str) {
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        data: Some([("k".to_string(), value.to_string())].into()),
        ..Default::default()
    };
    let e = state.cache.configmap_entry(&cm);
    state.cache.upsert(NS, &SourceRef::configmap(name), e);
}

/// A Deployment that uses ConfigMap `cfg` and opts in, with `annotations` besides.
fn deployment(name: &str, annotations: Value) -> Value {
    let mut ann = json!({"reloader.stakater.com/auto": "true"});
    for (k, v) in annotations.as_object().into_iter().flatten() {
        ann[k] = v.clone();
    }
    json!({
        "metadata": {"name": name, "namespace": NS, "annotations": ann},
        "spec": {"template": {"metadata": {"annotations": {}}, "spec": {"containers": [
            {"name": "c", "image": "x", "envFrom": [{"configMapRef": {"name": "cfg"}}]}
        ]}}}
    })
}

fn entry_of(obj: &Value) -> WorkloadEntry {
    let w = Workload::from_value(WorkloadKind::Deployment, NS, obj).expect("a workload");
    WorkloadEntry::from_workload(
        w,
        Some("1".into()),
        None,
        false,
        &AnnotationNames::default(),
        &Default::default(),
    )
}

/// `obj` as the webhook leaves it: its record and token are what the core decides now.
fn stamped(state: &State, mut obj: Value) -> WorkloadEntry {
    let e = entry_of(&obj);
    let keys = state.keys.get();
    let s = stamp_refs(
        &state.policy,
        &keys,
        &e.input(),
        &state.cache.view(NS),
        &Stored::default(),
        Mode::Fresh,
        state.roll,
    );
    let d = s.decision;
    obj["metadata"]["annotations"][&state.names.record] = json!(d.record_text().expect("a record"));
    obj["spec"]["template"]["metadata"]["annotations"][&state.names.token] =
        json!(d.token.expect("a token"));
    entry_of(&obj)
}

fn skipped(state: &State, reason: &'static str) -> u64 {
    state
        .metrics
        .skipped
        .get_or_create(&ByReason { reason })
        .get()
}

fn key(name: &str) -> WorkloadKey {
    WorkloadKey {
        kind: WorkloadKind::Deployment,
        namespace: NS.into(),
        name: name.into(),
    }
}

#[tokio::test]
async fn an_up_to_date_workload_is_left_alone_without_a_call() {
    let (r, state) = roller();
    put_cm(&state, "cfg", "one");
    r.upsert(stamped(&state, deployment("web", json!({}))));
    r.check(&key("web"), Instant::now())
        .await
        .expect("no call to the apiserver");
    assert_eq!(skipped(&state, "up_to_date"), 1);
}

#[tokio::test]
async fn a_changed_source_is_confirmed_with_the_apiserver_before_a_roll() {
    let (r, state) = roller();
    put_cm(&state, "cfg", "one");
    r.upsert(stamped(&state, deployment("web", json!({}))));
    put_cm(&state, "cfg", "two");
    let e = r.check(&key("web"), Instant::now()).await;
    // the error is the GET of the source, not the patch: nothing was written
    assert!(
        matches!(e, Err(crate::watcher::retry::WriteError::Source(ref s, _)) if s.ends_with("/cfg")),
        "{e:?}"
    );
    assert_eq!(skipped(&state, "up_to_date"), 0);
}

#[tokio::test]
async fn a_roll_too_soon_after_the_last_is_held_and_queued_again() {
    let (r, state) = roller();
    put_cm(&state, "cfg", "one");
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let obj = deployment("web", json!({ MIN_ROLL_INTERVAL: "1h", LAST_ROLL: now }));
    r.upsert(stamped(&state, obj));
    put_cm(&state, "cfg", "two");
    r.check(&key("web"), Instant::now())
        .await
        .expect("held before any call");
    assert_eq!(state.metrics.held_rolls.get(), 1);
    let due = r.queue().next_due().expect("the check comes back");
    let left = due.saturating_duration_since(Instant::now());
    assert!(
        left > Duration::from_secs(3500) && left <= Duration::from_secs(3600),
        "{left:?}"
    );
}

#[tokio::test]
async fn paused_by_flag_no_roll_is_tried() {
    let cfg = WatcherConfig {
        paused: true,
        ..config()
    };
    let (r, state) = roller_with(cfg, NamespaceFilter::default());
    put_cm(&state, "cfg", "one");
    r.upsert(stamped(&state, deployment("web", json!({}))));
    put_cm(&state, "cfg", "two");
    r.check(&key("web"), Instant::now())
        .await
        .expect("paused before any call");
    assert_eq!(skipped(&state, "paused"), 1);
}

#[tokio::test]
async fn a_namespace_not_acted_in_is_not_checked() {
    let filter = NamespaceFilter {
        ignore: vec![NS.into()],
        ..Default::default()
    };
    let (r, state) = roller_with(config(), filter);
    // a workload never stamped: a check that went on would write (and fail here)
    r.upsert(entry_of(&deployment("web", json!({}))));
    r.check(&key("web"), Instant::now()).await.expect("no call");
    assert_eq!(skipped(&state, "namespace_not_selected"), 1);
}

#[tokio::test]
async fn a_workload_seen_again_unchanged_is_not_news() {
    let (r, state) = roller();
    put_cm(&state, "cfg", "one");
    let e = stamped(&state, deployment("web", json!({})));
    assert!(r.upsert(e.clone()), "new");
    let before = r.generation(NS);
    assert!(!r.upsert(e.clone()), "the same again");
    assert_eq!(r.generation(NS), before, "nothing moved");
    // its rollout moved: not a change the stamp reads, but what waits on it is stale
    let mut progressing = e.clone();
    progressing.health = crate::core::health::Health::Progressing;
    assert!(!r.upsert(progressing));
    assert_eq!(r.generation(NS), before + 1);
    let mut other = e;
    other.annotations = entry_of(&deployment(
        "web",
        json!({"reloader.stakater.com/auto": "false"}),
    ))
    .annotations;
    assert!(r.upsert(other), "an annotation the core reads changed");
}

#[tokio::test]
async fn queueing_coalesces_and_a_removed_workload_leaves_the_queue() {
    let (r, state) = roller();
    put_cm(&state, "cfg", "one");
    for name in ["a", "b"] {
        r.upsert(stamped(&state, deployment(name, json!({}))));
    }
    r.enqueue(key("a"), Duration::from_secs(5));
    r.enqueue(key("a"), Duration::from_secs(50));
    assert_eq!(r.queue().len(), 1, "one check for changes within a window");
    let due = r.queue().next_due().expect("queued");
    assert!(
        due.saturating_duration_since(Instant::now()) <= Duration::from_secs(5),
        "the earlier stands"
    );
    r.enqueue_namespace("elsewhere");
    assert_eq!(r.queue().len(), 1, "no workload there");
    r.enqueue_namespace(NS);
    assert_eq!(r.queue().len(), 2);
    r.remove(&key("a"));
    assert_eq!(r.queue().len(), 1);
    assert!(!r.contains(&key("a")) && r.contains(&key("b")));
}

#[tokio::test]
async fn a_pause_found_at_start_up_ends_when_its_period_does() {
    let (r, state) = roller();
    put_cm(&state, "cfg", "one");
    let now = k8s_openapi::jiff::Timestamp::now();
    let long_ago = now - k8s_openapi::jiff::SignedDuration::from_hours(2);
    let pause = "deployment.reloader.stakater.com/pause-period";
    r.upsert(stamped(
        &state,
        deployment("fresh", json!({ pause: "10m", PAUSED_AT: now.to_string() })),
    ));
    r.resume_pending_pauses();
    let left = r
        .queue()
        .next_due()
        .expect("resumed later")
        .saturating_duration_since(Instant::now());
    assert!(
        left > Duration::from_secs(500) && left <= Duration::from_secs(600),
        "{left:?}"
    );
    // a pause whose period ended while hashroll was down: resumed at once; one whose time
    // is not a time: resumed at once too, never a panic
    r.upsert(stamped(
        &state,
        deployment(
            "old",
            json!({ pause: "10m", PAUSED_AT: long_ago.to_string() }),
        ),
    ));
    r.upsert(stamped(
        &state,
        deployment("bad", json!({ pause: "10m", PAUSED_AT: "yesterday" })),
    ));
    r.resume_pending_pauses();
    let first = r.queue().next_due().expect("queued");
    assert!(first <= Instant::now(), "due now");
}
