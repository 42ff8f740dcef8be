//! Events in the writer: one per roll, a Warning per held roll or bad annotation, a
//! ReloadFail at most once per distinct error per period.
//!
//! Events are written through the core `v1` API (readable as `events.k8s.io/v1` too: one
//! storage): a namespace's `admin` role grants creating those, not `events.k8s.io` ones,
//! so a namespaced install needs no right an admin of those namespaces lacks.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event as K8sEvent, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::Api;
use tokio::time::Instant;

use super::Writer;
use crate::core::sync::Recover;
use crate::k8s;
use crate::services::alert::Notice;
use crate::watcher::workloads::{WorkloadEntry, WorkloadKey};

/// Every reason of the Events hashroll publishes: the one list the reference page is
/// rendered from (what it says of each is kept for that page alone). A reason fixes the
/// Event's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    Reloaded,
    ReloadFail,
    RecreateFail,
    InvalidAnnotation,
    RolloutHeld,
    RolloutFailed,
}

impl Reason {
    #[cfg(test)]
    pub(crate) const ALL: [Reason; 6] = [
        Reason::Reloaded,
        Reason::ReloadFail,
        Reason::RecreateFail,
        Reason::InvalidAnnotation,
        Reason::RolloutHeld,
        Reason::RolloutFailed,
    ];

    /// The Event's `reason`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::Reloaded => "Reloaded",
            Reason::ReloadFail => "ReloadFail",
            Reason::RecreateFail => "RecreateFail",
            Reason::InvalidAnnotation => "InvalidAnnotation",
            Reason::RolloutHeld => "RolloutHeld",
            Reason::RolloutFailed => "RolloutFailed",
        }
    }

    /// The Event's `type`: `Normal` or `Warning`.
    pub(crate) fn type_(self) -> &'static str {
        match self {
            Reason::Reloaded => "Normal",
            _ => "Warning",
        }
    }

    /// The object the Event is about.
    #[cfg(test)]
    pub(crate) fn regarding(self) -> &'static str {
        match self {
            Reason::RolloutFailed => "ConfigMap, Secret or SecretProviderClass",
            Reason::RecreateFail => "Job",
            _ => "workload",
        }
    }

    /// When it is published.
    #[cfg(test)]
    pub(crate) fn when(self) -> &'static str {
        match self {
            Reason::Reloaded => "a roll was written; the note names the sources whose change it is",
            Reason::ReloadFail => {
                "a roll patch failed; the same text at most once per 10 minutes per workload"
            }
            Reason::RecreateFail => {
                "a Job deleted for a roll cannot be created again yet (hashroll keeps it and retries)"
            }
            Reason::InvalidAnnotation => {
                "an annotation of the workload has a bad value, named in the note"
            }
            Reason::RolloutHeld => {
                "the roll is held: a rollout of an earlier wave of the same change failed"
            }
            Reason::RolloutFailed => {
                "a rollout of this source's change failed and holds the later waves (with an alert)"
            }
        }
    }
}

/// The reporting controller every Event names.
const REPORTER: &str = "hashroll.dev/hashroll";

/// A workload's ReloadFail Event with the same text is posted at most once in this.
pub(super) const FAIL_EVENT_PERIOD: Duration = Duration::from_secs(600);

/// An Event's name: the workload's name and the time in hex, as kubectl's recorder makes
/// them, within the 253 characters of an object name (a workload's own name may take all
/// 253): the workload's part is cut so the whole fits, and never ends in `.` or `-`.
fn event_name(workload: &str, nanos: i128) -> String {
    let tail = format!(".{nanos:x}");
    let room = 253usize.saturating_sub(tail.len());
    let head: String = workload.chars().take(room).collect();
    format!("{}{tail}", head.trim_end_matches(['.', '-']))
}

impl Writer {
    /// Whether a ReloadFail Event with `note` is due for `key`: not when the same text was
    /// posted within [`FAIL_EVENT_PERIOD`]. Bounded: entries past the period are dropped.
    pub(super) fn first_failure(&self, key: &WorkloadKey, note: &str) -> bool {
        let now = Instant::now();
        let mut f = self.failures.lock().recover();
        f.retain(|_, (_, at)| now.duration_since(*at) < FAIL_EVENT_PERIOD);
        match f.get(key) {
            Some((text, _)) if text == note => false,
            _ => {
                f.insert(key.clone(), (note.to_string(), now));
                true
            }
        }
    }

    /// A Warning Event naming what is wrong with the workload's annotations.
    pub(crate) async fn warn_annotations(&self, entry: &WorkloadEntry, problems: &[String]) {
        let note = problems.join("; ");
        self.event(entry, Reason::InvalidAnnotation, note).await;
    }

    /// A Warning Event on a workload whose roll is held, and (`source_too`) on the source
    /// whose change it is, with an alert through the configured sinks.
    pub(crate) async fn warn_held(
        &self,
        entry: &WorkloadEntry,
        hold: &crate::core::gate::Hold,
        source_too: bool,
    ) {
        let note = hold.to_string();
        self.event(entry, Reason::RolloutHeld, note.clone()).await;
        if !source_too {
            return;
        }
        {
            let s = &hold.source;
            let row = s.kind.row();
            let regarding = ObjectReference {
                api_version: Some(row.api_version.into()),
                kind: Some(row.object_kind.into()),
                name: Some(s.name.clone()),
                namespace: Some(entry.key.namespace.to_string()),
                ..Default::default()
            };
            self.post_event(regarding, Reason::RolloutFailed, note.clone())
                .await;
        }
        if let Some(a) = &self.alerts {
            a.notify(Notice {
                kind: entry.key.kind.as_str().to_string(),
                namespace: entry.key.namespace.to_string(),
                name: entry.key.name.to_string(),
                sources: vec![hold.source.to_string()],
                rolled: false,
                held: Some(note),
            });
        }
    }

    /// One Event per roll, so each names its own sources.
    pub(super) async fn event(&self, entry: &WorkloadEntry, reason: Reason, note: String) {
        let key = &entry.key;
        let row = key.kind.row();
        let regarding = ObjectReference {
            api_version: Some(k8s::api::resource(key.kind).api_version),
            kind: Some(row.name.into()),
            name: Some(key.name.to_string()),
            namespace: Some(key.namespace.to_string()),
            uid: entry.uid.as_deref().map(String::from),
            ..Default::default()
        };
        self.post_event(regarding, reason, note).await;
    }

    /// An Event about `regarding`, with the fields of a new-style Event (`eventTime`,
    /// reporting controller and instance, action) and of an old one (`source`, timestamps).
    pub(super) async fn post_event(
        &self,
        regarding: ObjectReference,
        reason: Reason,
        note: String,
    ) {
        let now = k8s_openapi::jiff::Timestamp::now();
        let name = regarding.name.clone().unwrap_or_default();
        let ns = regarding.namespace.clone().unwrap_or_default();
        let ev = K8sEvent {
            metadata: ObjectMeta {
                name: Some(event_name(&name, now.as_nanosecond())),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            action: Some("Reload".into()),
            reason: Some(reason.as_str().into()),
            message: Some(note.chars().take(1000).collect()),
            event_time: Some(MicroTime(now)),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            involved_object: regarding,
            reporting_component: Some(REPORTER.into()),
            // the apiserver takes at most 128 characters here
            reporting_instance: Some(self.instance.chars().take(128).collect()),
            source: Some(EventSource {
                component: Some(REPORTER.into()),
                host: None,
            }),
            type_: Some(reason.type_().into()),
            related: None,
            series: None,
        };
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &ns);
        if let Err(e) = api.create(&crate::k8s::api::post_params(), &ev).await {
            tracing::warn!(object = %format!("{ns}/{name}"), error = %e, "cannot publish event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_fit_an_object_name_whatever_the_workload() {
        let nanos = 1_764_650_000_123_456_789i128;
        assert_eq!(event_name("web", nanos), format!("web.{nanos:x}"));
        for len in [1, 200, 236, 237, 240, 252, 253] {
            let name = "a".repeat(len);
            let got = event_name(&name, nanos);
            assert!(got.len() <= 253, "{len}: {} characters", got.len());
            assert!(got.starts_with('a') && got.ends_with(&format!("{nanos:x}")));
        }
        // a cut never leaves a dot or dash before the time
        let name = format!("{}.b", "a".repeat(235));
        let got = event_name(&name, nanos);
        assert!(!got.contains(".."), "{got}");
        assert!(got.len() <= 253);
    }
}
