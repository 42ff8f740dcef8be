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

use super::batch::{manual_job, no_run_now, recreated_job};
use super::queue::due_at;
use super::retry::WriteError;
use super::workloads::{WorkloadEntry, WorkloadKey};
use crate::alert::{Alerts, Notice};
use crate::core::kind::{Rollout, WorkloadKind};
use crate::core::names::{LAST_ROLL, PAUSED_AT, ROLLOUT_STRATEGY};
use crate::core::patch::merge_patch;
use crate::core::policy::pause_period;
use crate::core::record::Decision;
use crate::core::refs::SourceRef;
use crate::k8s;
use crate::state::State;

/// What an alert says of a roll of `key`.
fn notice(key: &WorkloadKey, decision: &Decision, rolled: bool) -> Notice {
    Notice {
        kind: key.kind.as_str().to_string(),
        namespace: key.namespace.to_string(),
        name: key.name.to_string(),
        sources: decision.changed.clone(),
        rolled,
        held: None,
    }
}

/// A 409 of our own making: the roller re-reads the workload and checks it again.
fn conflict(message: &str) -> kube::Error {
    kube::Error::Api(
        kube::core::Status {
            code: 409,
            ..kube::core::Status::failure(message, "Conflict")
        }
        .boxed(),
    )
}

/// Whether a 403's message is a ResourceQuota refusal over `count/jobs.batch` alone.
fn only_job_count_quota(message: &str) -> bool {
    let Some(rest) = message.split("exceeded quota:").nth(1) else {
        return false;
    };
    let limited = rest.split("limited:").nth(1).unwrap_or_default();
    let resources: Vec<&str> = limited
        .split(',')
        .filter_map(|r| r.split('=').next())
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect();
    !resources.is_empty()
        && resources
            .iter()
            .all(|r| *r == "count/jobs.batch" || *r == "count/jobs")
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
    /// `--cronjob-run-on-change`
    run_cronjobs: bool,
    /// a message per rollout, queued (never waited for)
    alerts: Option<Alerts>,
    /// `--webhook-url`: the record is written and the change posted, nothing rolled
    post_instead: Option<Alerts>,
    /// the last ReloadFail Event per workload: its text and when (one per distinct error
    /// per [`FAIL_EVENT_PERIOD`])
    failures: std::sync::Mutex<std::collections::HashMap<WorkloadKey, (String, Instant)>>,
    /// opted-in Jobs deleted for a roll whose new Job is not created yet: the Job to create
    /// and the entry the roll was decided on (for Events), until a create lands
    recreating: std::sync::Mutex<std::collections::HashMap<WorkloadKey, Recreate>>,
}

/// A Job deleted for a roll, to be created again.
#[derive(Clone)]
pub(crate) struct Recreate {
    pub entry: WorkloadEntry,
    job: kube::api::DynamicObject,
}

/// A workload's ReloadFail Event with the same text is posted at most once in this.
pub(crate) const FAIL_EVENT_PERIOD: Duration = Duration::from_secs(600);

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
                    Ok(()) => self.patch(key, &body).await,
                    Err(e) => Err(e),
                }
            }
            _ => self.patch(key, &body).await,
        };
        self.state
            .metrics
            .patch_duration
            .observe(t0.elapsed().as_secs_f64());
        let sources = decision.changed.join(", ");
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
                    self.event(entry, EventType::Normal, "Reloaded", note).await;
                } else {
                    tracing::info!(workload = %key, "record updated without a roll (sources joined or left, or re-made with the current key)");
                }
                Ok(Written {
                    entry: new_entry,
                    pause_for: pause_for.filter(|_| decision.roll),
                })
            }
            Err(e) => {
                let err = WriteError::of_patch(key, e);
                if decision.roll && matches!(err, WriteError::Patch(..)) {
                    self.state
                        .metrics
                        .reload(false, key.kind.as_str(), &key.namespace);
                    let note = format!("Rolling for {sources} failed: {err}");
                    if self.first_failure(key, &note) {
                        self.event(entry, EventType::Warning, "ReloadFail", note)
                            .await;
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
                tracing::info!(workload = %key, sources = %decision.changed.join(", "), "change posted to --webhook-url instead of rolling");
                post.notify(notice(key, decision, false));
                Ok(Written {
                    entry: new_entry,
                    pause_for: None,
                })
            }
            Err(e) => Err(WriteError::of_patch(key, e)),
        }
    }

    /// Whether a ReloadFail Event with `note` is due for `key`: not when the same text was
    /// posted within [`FAIL_EVENT_PERIOD`]. Bounded: entries past the period are dropped.
    fn first_failure(&self, key: &WorkloadKey, note: &str) -> bool {
        let now = Instant::now();
        let mut f = self.failures.lock().expect("failures lock");
        f.retain(|_, (_, at)| now.duration_since(*at) < FAIL_EVENT_PERIOD);
        match f.get(key) {
            Some((text, _)) if text == note => false,
            _ => {
                f.insert(key.clone(), (note.to_string(), now));
                true
            }
        }
    }

    /// Ends a pause-period: unpauses the Deployment and drops the paused-at mark.
    pub(crate) async fn resume(
        &self,
        key: &WorkloadKey,
    ) -> Result<Option<WorkloadEntry>, WriteError> {
        let _under_way = self.state.writer.write();
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

    /// Creates the Job a change of a CronJob runs now (see `batch::manual_job`); one that
    /// exists already (a retry of the same change) is left as it is; none for a suspended
    /// CronJob or a busy one that forbids concurrency (`batch::no_run_now`).
    async fn run_cronjob(&self, key: &WorkloadKey, decision: &Decision) -> Result<(), kube::Error> {
        let Some(token) = decision.token.as_deref() else {
            return Ok(());
        };
        let cronjobs = k8s::api::namespaced(self.client.clone(), &key.namespace, key.kind);
        let cron = k8s::api::to_value(&cronjobs.get(&key.name).await?);
        if let Some(why) = no_run_now(&cron) {
            tracing::info!(workload = %key, why, "no Job run for this change; the template takes it");
            return Ok(());
        }
        let Some(job) = manual_job(&cron, &self.state.names.token, token) else {
            tracing::warn!(workload = %key, "the CronJob has no job template; no Job run");
            return Ok(());
        };
        let job: kube::api::DynamicObject =
            serde_json::from_value(job).map_err(kube::Error::SerdeError)?;
        let jobs = k8s::api::namespaced(self.client.clone(), &key.namespace, WorkloadKind::Job);
        let name = job.metadata.name.clone().unwrap_or_default();
        match jobs.create(&PostParams::default(), &job).await {
            Ok(_) => {
                tracing::info!(workload = %key, job = %name, "created a Job from the CronJob");
                Ok(())
            }
            Err(kube::Error::Api(a)) if a.code == 409 => {
                tracing::info!(workload = %key, job = %name, "the Job for this change exists already");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// A Job's template cannot change: deletes the Job the roll was decided on (guarded by
    /// that object's uid and resourceVersion, so a second check of the same Job cannot
    /// delete the one the first just made; in the background so its pods go with it) and
    /// creates it again with the record and the new token (see `batch::recreated_job`).
    ///
    /// Nothing is lost on the way: the new Job is first created as a server-side dry run
    /// (under another name), so what would refuse it (a policy, a webhook, validation)
    /// refuses before the delete, and the Job stays; once deleted, the Job to create is
    /// kept (`recreating`) until a create lands, retried like any write, with a Warning
    /// Event and `hashroll_jobs_awaiting_recreate` meanwhile. A stop waits for a write under
    /// way, so only a kill between the delete and the create can lose it.
    async fn recreate_job(
        &self,
        entry: &WorkloadEntry,
        decision: &Decision,
    ) -> Result<Option<WorkloadEntry>, kube::Error> {
        let key = &entry.key;
        if let Some(r) = self.awaiting_recreate(key) {
            // deleted by an earlier try: what was kept is created, not what is decided now
            return self.create_again(&r).await;
        }
        let names = &self.state.names;
        let api = k8s::api::namespaced(self.client.clone(), &key.namespace, key.kind);
        let old = api.get(&key.name).await?;
        if old.metadata.uid.as_deref() != entry.uid.as_deref()
            || old.metadata.resource_version.as_deref() != entry.resource_version.as_deref()
        {
            // not the object the roll was decided on (made again already, or changed)
            return Err(conflict(
                "the Job changed since the roll was decided; checking it again",
            ));
        }
        let record = decision.record_text();
        let token = decision.token.as_deref().unwrap_or_default();
        let Some(new) = recreated_job(
            &k8s::api::to_value(&old),
            &names.record,
            record.as_deref(),
            &names.token,
            token,
        ) else {
            tracing::warn!(workload = %key, "the Job has no template; not made again");
            return Ok(None);
        };
        let new: kube::api::DynamicObject =
            serde_json::from_value(new).map_err(kube::Error::SerdeError)?;
        self.dry_run_create(key, &new).await?;
        let dp = kube::api::DeleteParams {
            propagation_policy: Some(kube::api::PropagationPolicy::Background),
            preconditions: Some(kube::api::Preconditions {
                uid: entry.uid.as_deref().map(String::from),
                resource_version: entry.resource_version.as_deref().map(String::from),
            }),
            ..Default::default()
        };
        let r = Recreate {
            entry: entry.clone(),
            job: new,
        };
        api.delete(&key.name, &dp).await?;
        self.keep_recreate(key, Some(r.clone()));
        self.create_again(&r).await
    }

    /// Creates the Job kept for `key` after its delete, if there is one (a retry whose
    /// workload left the store with the delete).
    pub(crate) async fn recreate_kept(&self, key: &WorkloadKey) -> Result<(), WriteError> {
        let Some(r) = self.awaiting_recreate(key) else {
            return Ok(());
        };
        let _under_way = self.state.writer.write();
        if !self.state.writer.is_leader() {
            return Err(WriteError::NotLeader);
        }
        self.limit.wait().await;
        self.create_again(&r)
            .await
            .map(|_| ())
            .map_err(|e| WriteError::of_patch(key, e))
    }

    /// The Jobs kept after their delete, not created again yet.
    pub(crate) fn kept_recreates(&self) -> Vec<WorkloadKey> {
        self.recreating
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    /// The Job kept for `key` after its delete, if its create has not landed yet.
    pub(crate) fn awaiting_recreate(&self, key: &WorkloadKey) -> Option<Recreate> {
        self.recreating
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn keep_recreate(&self, key: &WorkloadKey, r: Option<Recreate>) {
        let mut m = self
            .recreating
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match r {
            Some(r) => m.insert(key.clone(), r),
            None => m.remove(key),
        };
        self.state
            .metrics
            .jobs_awaiting_recreate
            .set(m.len() as i64);
    }

    /// A server-side dry run of creating `job` under a name of its own (the real name is
    /// still taken): refused, the Job is not deleted. A refusal by a Job-count quota alone
    /// is not one (the delete frees what the create takes).
    async fn dry_run_create(
        &self,
        key: &WorkloadKey,
        job: &kube::api::DynamicObject,
    ) -> Result<(), kube::Error> {
        let api = k8s::api::namespaced(self.client.clone(), &key.namespace, key.kind);
        let mut probe = job.clone();
        let name = probe.metadata.name.clone().unwrap_or_default();
        let head: String = name.chars().take(63 - 9).collect();
        probe.metadata.name = Some(format!("{}-hr-check", head.trim_end_matches(['-', '.'])));
        let pp = PostParams {
            dry_run: true,
            ..Default::default()
        };
        match api.create(&pp, &probe).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(a)) if a.code == 409 => Ok(()),
            Err(kube::Error::Api(a)) if a.code == 403 && only_job_count_quota(&a.message) => Ok(()),
            Err(e) => {
                tracing::warn!(workload = %key, error = %e, "the Job would not be created again; not deleted");
                Err(e)
            }
        }
    }

    /// Creates the kept Job (the name is free once the old object is gone: a few tries
    /// while it goes); forgets it once created.
    async fn create_again(&self, r: &Recreate) -> Result<Option<WorkloadEntry>, kube::Error> {
        let key = &r.entry.key;
        let api = k8s::api::namespaced(self.client.clone(), &key.namespace, key.kind);
        let mut delay = Duration::from_millis(50);
        let mut attempt = 0;
        loop {
            match api.create(&PostParams::default(), &r.job).await {
                Ok(o) => {
                    tracing::info!(workload = %key, "deleted the Job and created it again");
                    self.keep_recreate(key, None);
                    return Ok(self.entry_of(key.kind, &o));
                }
                Err(kube::Error::Api(a)) if a.code == 409 && attempt < 20 => {
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                Err(e) => {
                    tracing::error!(workload = %key, error = %e, "deleted the Job but cannot create it again yet; kept, will retry");
                    let note = format!(
                        "The Job was deleted for a roll and cannot be created again yet (kept by hashroll, retrying): {e}"
                    );
                    if self.first_failure(key, &note) {
                        self.event(&r.entry, EventType::Warning, "RecreateFail", note)
                            .await;
                    }
                    // never taken as "gone": the roller retries until it lands
                    return Err(match e {
                        kube::Error::Api(a) if a.code == 404 => {
                            kube::Error::Api(Box::new(kube::core::Status { code: 503, ..*a }))
                        }
                        e => e,
                    });
                }
            }
        }
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

    /// A Warning Event naming what is wrong with the workload's annotations.
    pub(crate) async fn warn_annotations(&self, entry: &WorkloadEntry, problems: &[String]) {
        let note = problems.join("; ");
        self.event(entry, EventType::Warning, "InvalidAnnotation", note)
            .await;
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
        self.event(entry, EventType::Warning, "RolloutHeld", note.clone())
            .await;
        if !source_too {
            return;
        }
        if let Some(s) = SourceRef::from_record_key(&hold.source) {
            let row = s.kind.row();
            let regarding = ObjectReference {
                api_version: Some(row.api_version.into()),
                kind: Some(row.object_kind.into()),
                name: Some(s.name.clone()),
                namespace: Some(entry.key.namespace.to_string()),
                ..Default::default()
            };
            self.post_event(regarding, EventType::Warning, "RolloutFailed", note.clone())
                .await;
        }
        if let Some(a) = &self.alerts {
            a.notify(Notice {
                kind: entry.key.kind.as_str().to_string(),
                namespace: entry.key.namespace.to_string(),
                name: entry.key.name.to_string(),
                sources: vec![hold.source.clone()],
                rolled: false,
                held: Some(note),
            });
        }
    }

    /// One Event per roll (events.k8s.io/v1), so each names its own sources.
    async fn event(&self, entry: &WorkloadEntry, type_: EventType, reason: &str, note: String) {
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
        self.post_event(regarding, type_, reason, note).await;
    }

    /// An Event (events.k8s.io/v1) about `regarding`.
    async fn post_event(
        &self,
        regarding: ObjectReference,
        type_: EventType,
        reason: &str,
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
            reason: Some(reason.into()),
            note: Some(note.chars().take(1000).collect()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding),
            reporting_controller: Some("hashroll.dev/hashroll".into()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(match type_ {
                EventType::Normal => "Normal".into(),
                EventType::Warning => "Warning".into(),
            }),
            ..Default::default()
        };
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &ns);
        if let Err(e) = api.create(&PostParams::default(), &ev).await {
            tracing::warn!(object = %format!("{ns}/{name}"), error = %e, "cannot publish event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_job_count_quota_refusal_lets_a_job_be_deleted_for_its_recreate() {
        let count = "jobs.batch \"web-hr-check\" is forbidden: exceeded quota: q, requested: count/jobs.batch=1, used: count/jobs.batch=1, limited: count/jobs.batch=1";
        assert!(only_job_count_quota(count));
        let cpu = "exceeded quota: q, requested: count/jobs.batch=1,requests.cpu=1, used: count/jobs.batch=0,requests.cpu=2, limited: count/jobs.batch=5,requests.cpu=2";
        assert!(!only_job_count_quota(cpu));
        assert!(!only_job_count_quota(
            "denied by policy no-jobs: no new Jobs here"
        ));
        assert!(!only_job_count_quota("exceeded quota: q, limited: "));
    }

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
