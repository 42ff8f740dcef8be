//! The writer: every call the watcher makes to the apiserver for a workload. It patches
//! record and token (and a pause-period's pause) under the global rate limit, resumes a
//! paused Deployment, re-reads a workload or a source, and posts Events. Workloads are
//! reached through the kind table (`k8s::api`), so no kind is special-cased here beyond
//! Deployments' pause.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::api::Patch;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::queue::due_at;
use super::retry::{Failed, Verb, WriteError};
use super::workloads::{WorkloadEntry, WorkloadKey};
use crate::core::kind::{Rollout, WorkloadKind};
use crate::core::names::{LAST_ROLL, ROLLOUT_STRATEGY};
use crate::core::patch::merge_patch;
use crate::core::policy::pause_period;
use crate::core::record::{Decision, Entry, entry_list};
use crate::core::refs::SourceRef;
use crate::k8s;
use crate::services::alert::{Alerts, Notice};
use crate::services::state::State;

mod events;
mod jobs;
#[cfg(test)]
mod tests;

pub(crate) use events::Reason;
pub(crate) use jobs::Recreate;

/// What an alert says of a roll of `key`.
fn notice(key: &WorkloadKey, decision: &Decision, rolled: bool) -> Notice {
    Notice {
        kind: key.kind.as_str().to_string(),
        namespace: key.namespace.to_string(),
        name: key.name.to_string(),
        sources: decision.changed.iter().map(Entry::to_string).collect(),
        rolled,
        held: None,
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
    /// `--cronjob-run-on-change`
    run_cronjobs: bool,
    /// a message per rollout, queued (never waited for)
    alerts: Option<Alerts>,
    /// `--webhook-url`: the record is written and the change posted, nothing rolled
    post_instead: Option<Alerts>,
    /// the last ReloadFail Event per workload: its text and when (one per distinct error
    /// per [`events::FAIL_EVENT_PERIOD`])
    failures: std::sync::Mutex<std::collections::HashMap<WorkloadKey, (String, Instant)>>,
    /// opted-in Jobs deleted for a roll whose new Job is not created yet: the Job to create
    /// and the entry the roll was decided on (for Events), until a create lands
    recreating: std::sync::Mutex<std::collections::HashMap<WorkloadKey, Recreate>>,
}

impl Writer {
    pub(crate) fn new(
        state: Arc<State>,
        client: Client,
        instance: String,
        max_rollouts_per_second: f64,
        run_cronjobs: bool,
        alerts: Option<Alerts>,
        post_instead: Option<Alerts>,
    ) -> Writer {
        Writer {
            state,
            client,
            instance,
            run_cronjobs,
            alerts,
            post_instead,
            failures: Default::default(),
            recreating: Default::default(),
            limit: RateLimit {
                next_slot: tokio::sync::Mutex::new(Instant::now()),
                // config.rs bounds the rate; a value past them is clamped, never a panic
                interval: Duration::try_from_secs_f64(1.0 / max_rollouts_per_second)
                    .unwrap_or(Duration::from_secs(1000)),
            },
        }
    }

    /// Writes record and token (and, for a roll of a Deployment with a pause-period, the
    /// pause) in one merge patch.
    /// `mark_roll`: a flap-breaker interval applies, so a roll also writes when it happened.
    pub(crate) async fn write(
        &self,
        entry: &WorkloadEntry,
        decision: &Decision,
        mark_roll: bool,
    ) -> Result<Written, WriteError> {
        // counted while under way: a stop waits for it
        let _under_way = self.state.writer.write();
        let key = &entry.key;
        let names = &self.state.names;
        let mut body = merge_patch(key.kind, entry.resource_version.as_deref(), names, decision);
        if decision.roll && mark_roll {
            body["metadata"]["annotations"][LAST_ROLL] =
                json!(k8s_openapi::jiff::Timestamp::now().to_string());
        }
        if decision.roll
            && let Some(post) = &self.post_instead
        {
            return self
                .post_instead_of_rolling(entry, decision, body, post)
                .await;
        }
        let pause_for = self.pause_fields(entry, decision, &mut body);
        // every write takes a slot, a record-only one too (a key change re-records every
        // workload: at the rate of rolls, not all at once)
        self.limit.wait().await;
        // the lease may have gone while we waited: a replica that lost it writes nothing
        if !self.state.writer.is_leader() {
            return Err(WriteError::NotLeader);
        }
        // an Argo Rollout with `rollout-strategy: restart`: the record, and `spec.restartAt`
        // instead of a new template (the token stays; the record alone says what was rolled)
        if decision.roll
            && key.kind == WorkloadKind::ArgoRollout
            && entry.annotations.get(ROLLOUT_STRATEGY) == Some("restart")
        {
            let now = k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ");
            body["spec"] = json!({"restartAt": now.to_string()});
        }
        let rollout = key.kind.row().rollout;
        let t0 = std::time::Instant::now();
        let res = match (decision.roll, rollout) {
            (true, Rollout::Recreate) => self.recreate_job(entry, decision).await,
            (true, Rollout::TemplateAndRun) if self.run_cronjobs => {
                // the Job first: if the patch then fails, the retry (same change, same
                // token) finds the Job by its name instead of making a second
                match self.run_cronjob(key, decision).await {
                    Ok(()) => self.patch_call(key, &body).await,
                    Err(e) => Err(e),
                }
            }
            _ => self.patch_call(key, &body).await,
        };
        self.state
            .metrics
            .patch_duration
            .observe(t0.elapsed().as_secs_f64());
        self.said(entry, decision, res, pause_for).await
    }

    /// A roll of a Deployment with a pause-period: paused in the same patch (unless it is
    /// already, from a roll before), and how long until it is resumed.
    fn pause_fields(
        &self,
        entry: &WorkloadEntry,
        decision: &Decision,
        body: &mut serde_json::Value,
    ) -> Option<Duration> {
        if !decision.roll || entry.key.kind != WorkloadKind::Deployment {
            return None;
        }
        let period = pause_period(&self.state.policy, &entry.annotations)?;
        let paused_at = &self.state.policy.names.paused_at;
        if !entry.annotations.contains_key(paused_at) {
            let now = k8s_openapi::jiff::Timestamp::now().to_string();
            body["spec"]["paused"] = json!(true);
            body["metadata"]["annotations"][paused_at.as_str()] = json!(now);
        }
        Some(period)
    }

    /// What a write's result is worth saying: the reload counted, a log line, an alert and
    /// an Event for a roll; for a failed roll the count and (once per text and period) a
    /// ReloadFail Event.
    async fn said(
        &self,
        entry: &WorkloadEntry,
        decision: &Decision,
        res: Result<Option<WorkloadEntry>, Failed>,
        pause_for: Option<Duration>,
    ) -> Result<Written, WriteError> {
        let key = &entry.key;
        let sources = entry_list(&decision.changed);
        match res {
            Ok(new_entry) => {
                if decision.roll {
                    self.state
                        .metrics
                        .reload(true, key.kind.as_str(), &key.namespace);
                    tracing::info!(workload = %key, sources = %sources, reason = "data changed", "rolled");
                    if let Some(a) = &self.alerts {
                        a.notify(notice(key, decision, true));
                    }
                    let note = format!("Changes to {sources} rolled {} {}", key.kind, key.name);
                    self.event(entry, Reason::Reloaded, note).await;
                } else {
                    tracing::info!(workload = %key, "record updated without a roll (sources joined or left, or re-made with the current key)");
                }
                Ok(Written {
                    entry: new_entry,
                    pause_for: pause_for.filter(|_| decision.roll),
                })
            }
            Err(f) => {
                let err = WriteError::of_call(key, f);
                if decision.roll && matches!(err, WriteError::Call { .. }) {
                    self.state
                        .metrics
                        .reload(false, key.kind.as_str(), &key.namespace);
                    let note = format!("Rolling for {sources} failed: {err}");
                    if self.first_failure(key, &note) {
                        self.event(entry, Reason::ReloadFail, note).await;
                    }
                }
                Err(err)
            }
        }
    }

    /// Reloader's `--webhook-url`: the record alone is written (with the resourceVersion
    /// guard; the token stays, so nothing rolls and the change is not posted again), then
    /// the change is queued for the POST.
    async fn post_instead_of_rolling(
        &self,
        entry: &WorkloadEntry,
        decision: &Decision,
        body: Value,
        post: &Alerts,
    ) -> Result<Written, WriteError> {
        let key = &entry.key;
        if !self.state.writer.is_leader() {
            return Err(WriteError::NotLeader);
        }
        let record_only = json!({ "metadata": body["metadata"].clone() });
        match self.patch(key, &record_only).await {
            Ok(new_entry) => {
                tracing::info!(workload = %key, sources = %entry_list(&decision.changed), "change posted to --webhook-url instead of rolling");
                post.notify(notice(key, decision, false));
                Ok(Written {
                    entry: new_entry,
                    pause_for: None,
                })
            }
            Err(e) => Err(WriteError::of_patch(key, e)),
        }
    }

    /// Ends a pause-period: unpauses the Deployment and drops the paused-at mark.
    pub(crate) async fn resume(
        &self,
        key: &WorkloadKey,
    ) -> Result<Option<WorkloadEntry>, WriteError> {
        let _under_way = self.state.writer.write();
        let paused_at = self.state.policy.names.paused_at.as_str();
        let body = json!({
            "metadata": {"annotations": {paused_at: null}},
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

    /// [`Writer::patch`], its error naming the call.
    async fn patch_call(
        &self,
        key: &WorkloadKey,
        body: &Value,
    ) -> Result<Option<WorkloadEntry>, Failed> {
        self.patch(key, body)
            .await
            .map_err(|e| Failed::new(Verb::Patch, key.kind, e))
    }

    async fn patch(
        &self,
        key: &WorkloadKey,
        body: &Value,
    ) -> Result<Option<WorkloadEntry>, kube::Error> {
        let api = k8s::api::namespaced(self.client.clone(), &key.namespace, key.kind);
        let o = api
            .patch(&key.name, &k8s::api::patch_params(), &Patch::Merge(body))
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
            let gone = self.state.cache.remove(ns, source);
            self.state.cache.announce(gone);
        }
        Ok(())
    }
}
