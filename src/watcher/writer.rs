//! The writer: every call the watcher makes to the apiserver for a workload. It patches
//! record and token (and a pause-period's pause) under the global rate limit, resumes a
//! paused Deployment, re-reads a workload or a source, and posts Events. Workloads are
//! reached through the kind table (`k8s::api`), so no kind is special-cased here beyond
//! Deployments' pause.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::queue::due_at;
use super::workloads::{PAUSED_AT, WorkloadEntry, WorkloadKey};
use crate::core::patch::merge_patch;
use crate::core::policy::pause_period;
use crate::core::record::Decision;
use crate::core::refs::SourceRef;
use crate::core::workload::WorkloadKind;
use crate::k8s;
use crate::state::State;

/// Why a write did not land; the roller decides from the variant what to do next.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    /// our copy is stale (409): re-read, then retry soon
    #[error("patch of {0} conflicted: {1}")]
    Conflict(String, kube::Error),
    /// the workload is gone (404)
    #[error("{0} is gone")]
    Gone(String),
    #[error("patch of {0} failed: {1}")]
    Patch(String, kube::Error),
    #[error("cannot refresh source {0}: {1}")]
    Source(String, kube::Error),
    #[error("this replica does not hold the lease")]
    NotLeader,
}

impl WriteError {
    /// A short label for logs and metrics.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            WriteError::Conflict(..) => "conflict",
            WriteError::Gone(_) => "gone",
            WriteError::Patch(..) => "patch",
            WriteError::Source(..) => "source",
            WriteError::NotLeader => "not_leader",
        }
    }

    fn of_patch(key: &WorkloadKey, e: kube::Error) -> WriteError {
        match &e {
            kube::Error::Api(a) if a.code == 409 => WriteError::Conflict(key.to_string(), e),
            kube::Error::Api(a) if a.code == 404 => WriteError::Gone(key.to_string()),
            _ => WriteError::Patch(key.to_string(), e),
        }
    }
}

/// A roll patch that landed.
#[derive(Debug)]
pub(crate) struct Written {
    /// the workload as the patch left it
    pub entry: Option<WorkloadEntry>,
    /// a pause-period to end with a resume
    pub pause_for: Option<Duration>,
}

/// Event severity.
#[derive(Debug, Clone, Copy)]
enum EventType {
    Normal,
    Warning,
}

/// The global limit on roll patches: each takes the next free slot.
struct RateLimit {
    next_slot: tokio::sync::Mutex<Instant>,
    interval: Duration,
}

impl RateLimit {
    async fn wait(&self) {
        let slot = {
            let mut next = self.next_slot.lock().await;
            let slot = (*next).max(Instant::now());
            *next = due_at(slot, self.interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

pub(crate) struct Writer {
    state: Arc<State>,
    client: Client,
    /// who we are in Events
    instance: String,
    limit: RateLimit,
}

impl Writer {
    pub(crate) fn new(
        state: Arc<State>,
        client: Client,
        instance: String,
        max_rollouts_per_second: f64,
    ) -> Writer {
        Writer {
            state,
            client,
            instance,
            limit: RateLimit {
                next_slot: tokio::sync::Mutex::new(Instant::now()),
                interval: Duration::from_secs_f64(1.0 / max_rollouts_per_second),
            },
        }
    }

    /// Writes record and token (and, for a roll of a Deployment with a pause-period, the
    /// pause) in one merge patch.
    pub(crate) async fn write(
        &self,
        entry: &WorkloadEntry,
        decision: &Decision,
    ) -> Result<Written, WriteError> {
        let key = &entry.key;
        let names = &self.state.names;
        let mut body = merge_patch(entry.resource_version.as_deref(), names, decision);
        let mut pause_for = None;
        if decision.roll
            && key.kind == WorkloadKind::Deployment
            && let Some(period) = pause_period(&self.state.policy, &entry.annotations)
        {
            if !entry.annotations.contains_key(PAUSED_AT) {
                let now = k8s_openapi::jiff::Timestamp::now().to_string();
                body["spec"]["paused"] = json!(true);
                body["metadata"]["annotations"][PAUSED_AT] = json!(now);
            }
            pause_for = Some(period);
        }
        if decision.roll {
            self.limit.wait().await;
        }
        // the lease may have gone while we waited: a replica that lost it writes nothing
        if !self.state.writer.is_leader() {
            return Err(WriteError::NotLeader);
        }
        let t0 = std::time::Instant::now();
        let res = self.patch(key, &body).await;
        self.state
            .metrics
            .patch_duration
            .observe(t0.elapsed().as_secs_f64());
        let sources = decision.changed.join(", ");
        match res {
            Ok(new_entry) => {
                if decision.roll {
                    self.state.metrics.reload(true);
                    tracing::info!(workload = %key, sources = %sources, reason = "data changed", "rolled");
                    let note = format!("Changes to {sources} rolled {} {}", key.kind, key.name);
                    self.event(entry, EventType::Normal, "Reloaded", note).await;
                } else {
                    tracing::info!(workload = %key, "record updated (sources joined or left; no roll)");
                }
                Ok(Written {
                    entry: new_entry,
                    pause_for: pause_for.filter(|_| decision.roll),
                })
            }
            Err(e) => {
                let err = WriteError::of_patch(key, e);
                if decision.roll && matches!(err, WriteError::Patch(..)) {
                    self.state.metrics.reload(false);
                    let note = format!("Rolling for {sources} failed: {err}");
                    self.event(entry, EventType::Warning, "ReloadFail", note)
                        .await;
                }
                Err(err)
            }
        }
    }

    /// Ends a pause-period: unpauses the Deployment and drops the paused-at mark.
    pub(crate) async fn resume(
        &self,
        key: &WorkloadKey,
    ) -> Result<Option<WorkloadEntry>, WriteError> {
        let body = json!({
            "metadata": {"annotations": {PAUSED_AT: null}},
            "spec": {"paused": false}
        });
        if !self.state.writer.is_leader() {
            return Err(WriteError::NotLeader);
        }
        let e = self
            .patch(key, &body)
            .await
            .map_err(|e| WriteError::of_patch(key, e))?;
        tracing::info!(workload = %key, "pause-period over; resumed");
        Ok(e)
    }

    async fn patch(
        &self,
        key: &WorkloadKey,
        body: &Value,
    ) -> Result<Option<WorkloadEntry>, kube::Error> {
        let api = k8s::api::namespaced(self.client.clone(), &key.namespace, key.kind);
        let o = api
            .patch(&key.name, &PatchParams::default(), &Patch::Merge(body))
            .await?;
        Ok(self.entry_of(key.kind, &o))
    }

    fn entry_of(&self, kind: WorkloadKind, o: &kube::api::DynamicObject) -> Option<WorkloadEntry> {
        WorkloadEntry::from_object(kind, o, &self.state.policy.names, &self.state.names)
    }

    /// The workload as the apiserver has it now (`None`: gone).
    pub(crate) async fn get(
        &self,
        key: &WorkloadKey,
    ) -> Result<Option<WorkloadEntry>, kube::Error> {
        let api = k8s::api::namespaced(self.client.clone(), &key.namespace, key.kind);
        Ok(api
            .get_opt(&key.name)
            .await?
            .and_then(|o| self.entry_of(key.kind, &o)))
    }

    /// One GET of a source: the cache's copy may lag behind what the webhook saw.
    pub(crate) async fn refresh_source(
        &self,
        ns: &str,
        source: &SourceRef,
    ) -> Result<(), WriteError> {
        let exists = self
            .state
            .cache
            .confirm_miss(&self.client, ns, source)
            .await
            .map_err(|e| WriteError::Source(source.to_string(), e))?;
        if !exists {
            self.state.cache.remove(ns, source);
        }
        Ok(())
    }

    /// A Warning Event naming what is wrong with the workload's annotations.
    pub(crate) async fn warn_annotations(&self, entry: &WorkloadEntry, problems: &[String]) {
        let note = problems.join("; ");
        self.event(entry, EventType::Warning, "InvalidAnnotation", note)
            .await;
    }

    /// One Event per roll (events.k8s.io/v1), so each names its own sources.
    async fn event(&self, entry: &WorkloadEntry, type_: EventType, reason: &str, note: String) {
        let key = &entry.key;
        let now = k8s_openapi::jiff::Timestamp::now();
        let row = key.kind.row();
        let ev = K8sEvent {
            metadata: ObjectMeta {
                name: Some(format!("{}.{:x}", key.name, now.as_nanosecond())),
                namespace: Some(key.namespace.clone()),
                ..Default::default()
            },
            action: Some("Reload".into()),
            reason: Some(reason.into()),
            note: Some(note.chars().take(1000).collect()),
            event_time: Some(MicroTime(now)),
            regarding: Some(ObjectReference {
                api_version: Some(k8s::api::resource(key.kind).api_version),
                kind: Some(row.name.into()),
                name: Some(key.name.clone()),
                namespace: Some(key.namespace.clone()),
                uid: entry.uid.clone(),
                ..Default::default()
            }),
            reporting_controller: Some("hashroll.dev/hashroll".into()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(match type_ {
                EventType::Normal => "Normal".into(),
                EventType::Warning => "Warning".into(),
            }),
            ..Default::default()
        };
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &key.namespace);
        if let Err(e) = api.create(&PostParams::default(), &ev).await {
            tracing::warn!(workload = %key, error = %e, "cannot publish event");
        }
    }
}
