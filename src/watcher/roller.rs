//! The roller: a queue of workloads to check, each due at a time (the coalesce window), a
//! global rate limit on patches, and retries with backoff until a write lands or the
//! workload is gone. Nothing queued is dropped.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
/// Event severity.
#[derive(Debug, Clone, Copy)]
enum EventType {
    Normal,
    Warning,
}
use kube::Client;
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use super::WatcherConfig;
use super::workloads::{PAUSED_AT, WorkloadEntry, WorkloadKey, WorkloadStore};
use crate::core::patch::merge_patch;
use crate::core::policy::pause_period;
use crate::core::record::{Decision, Mode, Stamp, stamp_refs};
use crate::core::refs::SourceRef;
use crate::core::workload::WorkloadKind;
use crate::state::State;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Task {
    /// check the record, roll if due
    Check,
    /// end a pause-period: resume the Deployment
    Resume,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    due: Instant,
    attempts: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum RollError {
    #[error("patch of {0} failed: {1}")]
    Patch(String, kube::Error),
    #[error("cannot refresh source {0}: {1}")]
    Source(String, kube::Error),
    #[error("this replica does not hold the lease")]
    NotLeader,
}

impl RollError {
    /// A short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            RollError::Patch(_, kube::Error::Api(e)) if e.code == 409 => "conflict",
            RollError::Patch(_, kube::Error::Api(e)) if e.code == 404 => "gone",
            RollError::Patch(..) => "patch",
            RollError::Source(..) => "source",
            RollError::NotLeader => "not_leader",
        }
    }
}

pub struct Roller {
    state: Arc<State>,
    client: Client,
    store: Mutex<WorkloadStore>,
    /// one entry per workload and task: a check never moves a pending resume, nor back
    queue: Mutex<BTreeMap<(WorkloadKey, Task), Pending>>,
    notify: Notify,
    /// the next free slot of the global rate limit
    next_slot: tokio::sync::Mutex<Instant>,
    interval: Duration,
    instance: String,
    workers: Arc<Semaphore>,
}

fn backoff(attempts: u32) -> Duration {
    let ms = 100u64.saturating_mul(1u64 << attempts.min(9));
    Duration::from_millis(ms.min(30_000))
}

impl Roller {
    pub fn new(state: Arc<State>, client: Client, cfg: &WatcherConfig) -> Roller {
        let store = WorkloadStore::new(state.policy.names.clone(), state.names.clone());
        Roller {
            instance: cfg.instance.clone(),
            state,
            client,
            store: Mutex::new(store),
            queue: Mutex::new(BTreeMap::new()),
            notify: Notify::new(),
            next_slot: tokio::sync::Mutex::new(Instant::now()),
            interval: Duration::from_secs_f64(1.0 / cfg.max_rollouts_per_second),
            workers: Arc::new(Semaphore::new(16)),
        }
    }

    /// Stores a workload; whether anything the watcher reads changed.
    pub fn upsert(&self, entry: WorkloadEntry) -> bool {
        let mut store = self.store.lock().expect("store lock");
        let changed = match store.get(&entry.key) {
            Some(old) => {
                old.annotations != entry.annotations
                    || old.template_annotations != entry.template_annotations
                    || old.refs != entry.refs
                    || old.paused != entry.paused
            }
            None => true,
        };
        store.upsert(entry);
        changed
    }

    pub fn remove(&self, key: &WorkloadKey) {
        self.store.lock().expect("store lock").remove(key);
        let mut q = self.queue.lock().expect("queue lock");
        q.remove(&(key.clone(), Task::Check));
        q.remove(&(key.clone(), Task::Resume));
    }

    pub fn retain_kind(&self, kind: WorkloadKind, seen: &std::collections::HashSet<WorkloadKey>) {
        self.store
            .lock()
            .expect("store lock")
            .retain_kind(kind, seen);
    }

    pub fn affected(&self, namespace: &str, source: &SourceRef) -> Vec<WorkloadKey> {
        self.store
            .lock()
            .expect("store lock")
            .affected(namespace, source)
    }

    /// Schedules a check of `key` after `delay`; an earlier schedule stands, so changes
    /// within one window end in one patch.
    pub fn enqueue(&self, key: WorkloadKey, delay: Duration) {
        self.schedule(key, delay, Task::Check, 0);
    }

    fn schedule(&self, key: WorkloadKey, delay: Duration, task: Task, attempts: u32) {
        let due = Instant::now() + delay;
        let mut q = self.queue.lock().expect("queue lock");
        match q.get_mut(&(key.clone(), task)) {
            Some(p) => {
                p.due = p.due.min(due);
                p.attempts = p.attempts.max(attempts);
            }
            None => {
                q.insert((key, task), Pending { due, attempts });
            }
        }
        self.state.metrics.pending_rolls.set(q.len() as i64);
        drop(q);
        self.notify.notify_one();
    }

    /// Schedules every workload of one namespace (it just became selected).
    pub fn enqueue_namespace(&self, ns: &str) {
        let keys = self.store.lock().expect("store lock").keys();
        for k in keys.into_iter().filter(|k| k.namespace == ns) {
            self.enqueue(k, Duration::ZERO);
        }
    }

    /// Schedules every known workload; how many.
    pub fn enqueue_all(&self, delay: Duration) -> usize {
        let keys = self.store.lock().expect("store lock").keys();
        let n = keys.len();
        for k in keys {
            self.enqueue(k, delay);
        }
        n
    }

    /// Works the queue forever.
    pub async fn run(self: Arc<Self>) {
        loop {
            let now = Instant::now();
            type Ready = Vec<((WorkloadKey, Task), Pending)>;
            let (ready, next): (Ready, Option<Instant>) = {
                let mut q = self.queue.lock().expect("queue lock");
                let ready_keys: Vec<(WorkloadKey, Task)> = q
                    .iter()
                    .filter(|(_, p)| p.due <= now)
                    .map(|(k, _)| k.clone())
                    .collect();
                let ready = ready_keys
                    .into_iter()
                    .filter_map(|k| q.remove(&k).map(|p| (k, p)))
                    .collect();
                let next = q.values().map(|p| p.due).min();
                self.state.metrics.pending_rolls.set(q.len() as i64);
                (ready, next)
            };
            for ((key, task), pending) in ready {
                let permit = self
                    .workers
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("semaphore open");
                let me = self.clone();
                tokio::spawn(async move {
                    me.work(key, task, pending).await;
                    drop(permit);
                });
            }
            match next {
                Some(t) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(t) => {}
                        _ = self.notify.notified() => {}
                    }
                }
                None => self.notify.notified().await,
            }
        }
    }

    async fn work(&self, key: WorkloadKey, task: Task, pending: Pending) {
        if !self.state.writer.is_leader() {
            // kept, not dropped: the next leader (maybe us) reconciles everything anyway
            self.schedule(key, Duration::from_secs(1), task, pending.attempts);
            return;
        }
        let result = match task {
            Task::Check => self.check(&key).await,
            Task::Resume => self.resume(&key).await,
        };
        if let Err(e) = result {
            let label = e.label();
            if label == "gone" {
                self.remove(&key);
                return;
            }
            if label == "not_leader" {
                self.schedule(key, Duration::from_secs(1), task, pending.attempts);
                return;
            }
            let attempts = pending.attempts + 1;
            let delay = if label == "conflict" {
                Duration::from_millis(20)
            } else {
                backoff(attempts)
            };
            tracing::warn!(workload = %key, error = %e, reason = label, attempts, retry_in = ?delay, "write failed; will retry");
            if label == "conflict" {
                // our copy is stale: read the workload again before retrying
                self.refresh_workload(&key).await;
            }
            self.schedule(key, delay, task, attempts);
        }
    }

    fn stamp(&self, entry: &WorkloadEntry) -> Stamp {
        let s = &self.state;
        stamp_refs(
            &s.policy,
            &s.key,
            &entry.input(),
            &s.cache.view(&entry.key.namespace),
            &entry.stored(&s.names),
            Mode::Reconcile,
            s.roll,
        )
    }

    /// One GET of a source: the cache's copy may lag behind what the webhook saw.
    async fn refresh_source(&self, ns: &str, source: &SourceRef) -> Result<(), RollError> {
        let exists = self
            .state
            .cache
            .confirm_miss(&self.client, ns, source)
            .await
            .map_err(|e| RollError::Source(source.to_string(), e))?;
        if !exists {
            self.state.cache.remove(ns, source);
        }
        Ok(())
    }

    async fn check(&self, key: &WorkloadKey) -> Result<(), RollError> {
        // --namespace-selector: a namespace that is not selected now is left alone
        if !self.state.cache.namespaces().allows(&key.namespace) {
            return Ok(());
        }
        let Some(entry) = self.store.lock().expect("store lock").get(key).cloned() else {
            return Ok(());
        };
        let mut result = self.stamp(&entry);
        if result.decision.is_noop(&entry.stored(&self.state.names)) {
            return Ok(());
        }
        if result.decision.roll {
            // a roll is costly: confirm each changed source with the apiserver first
            for k in &result.decision.changed {
                if let Some(s) = SourceRef::from_record_key(k) {
                    self.refresh_source(&key.namespace, &s).await?;
                }
            }
            result = self.stamp(&entry);
            if result.decision.is_noop(&entry.stored(&self.state.names)) {
                return Ok(());
            }
        }
        self.write(&entry, &result.decision).await
    }

    async fn rate_limit(&self) {
        let slot = {
            let mut next = self.next_slot.lock().await;
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }

    async fn write(&self, entry: &WorkloadEntry, decision: &Decision) -> Result<(), RollError> {
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
            self.rate_limit().await;
        }
        // the lease may have gone while we waited: a replica that lost it writes nothing
        if !self.state.writer.is_leader() {
            return Err(RollError::NotLeader);
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
                if let Some(e) = new_entry {
                    self.upsert(e);
                }
                if decision.roll {
                    self.state.metrics.reload(true);
                    tracing::info!(workload = %key, sources = %sources, reason = "data changed", "rolled");
                    self.event(
                        entry,
                        EventType::Normal,
                        "Reloaded",
                        format!("Changes to {sources} rolled {} {}", key.kind, key.name),
                    )
                    .await;
                    if let Some(p) = pause_for {
                        self.schedule(key.clone(), p, Task::Resume, 0);
                    }
                } else {
                    tracing::info!(workload = %key, "record updated (sources joined or left; no roll)");
                }
                Ok(())
            }
            Err(e) => {
                let conflict = matches!(&e, kube::Error::Api(a) if matches!(a.code, 404 | 409));
                if decision.roll && !conflict {
                    self.state.metrics.reload(false);
                    self.event(
                        entry,
                        EventType::Warning,
                        "ReloadFail",
                        format!("Rolling for {sources} failed: {e}"),
                    )
                    .await;
                }
                Err(RollError::Patch(key.to_string(), e))
            }
        }
    }

    async fn resume(&self, key: &WorkloadKey) -> Result<(), RollError> {
        let body = json!({
            "metadata": {"annotations": {PAUSED_AT: null}},
            "spec": {"paused": false}
        });
        if !self.state.writer.is_leader() {
            return Err(RollError::NotLeader);
        }
        let res = self.patch(key, &body).await;
        match res {
            Ok(e) => {
                if let Some(e) = e {
                    self.upsert(e);
                }
                tracing::info!(workload = %key, "pause-period over; resumed");
                Ok(())
            }
            Err(e) => Err(RollError::Patch(key.to_string(), e)),
        }
    }

    async fn patch(
        &self,
        key: &WorkloadKey,
        body: &Value,
    ) -> Result<Option<WorkloadEntry>, kube::Error> {
        let pp = PatchParams::default();
        let c = self.client.clone();
        let ns = &key.namespace;
        Ok(match key.kind {
            WorkloadKind::Deployment => {
                let o = Api::<Deployment>::namespaced(c, ns)
                    .patch(&key.name, &pp, &Patch::Merge(body))
                    .await?;
                super::entry_of(&self.state, key.kind, &o)
            }
            WorkloadKind::DaemonSet => {
                let o = Api::<DaemonSet>::namespaced(c, ns)
                    .patch(&key.name, &pp, &Patch::Merge(body))
                    .await?;
                super::entry_of(&self.state, key.kind, &o)
            }
            WorkloadKind::StatefulSet => {
                let o = Api::<StatefulSet>::namespaced(c, ns)
                    .patch(&key.name, &pp, &Patch::Merge(body))
                    .await?;
                super::entry_of(&self.state, key.kind, &o)
            }
        })
    }

    async fn refresh_workload(&self, key: &WorkloadKey) {
        let c = self.client.clone();
        let ns = &key.namespace;
        let entry = match key.kind {
            WorkloadKind::Deployment => Api::<Deployment>::namespaced(c, ns)
                .get_opt(&key.name)
                .await
                .map(|o| o.and_then(|o| super::entry_of(&self.state, key.kind, &o))),
            WorkloadKind::DaemonSet => Api::<DaemonSet>::namespaced(c, ns)
                .get_opt(&key.name)
                .await
                .map(|o| o.and_then(|o| super::entry_of(&self.state, key.kind, &o))),
            WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(c, ns)
                .get_opt(&key.name)
                .await
                .map(|o| o.and_then(|o| super::entry_of(&self.state, key.kind, &o))),
        };
        match entry {
            Ok(Some(e)) => {
                self.upsert(e);
            }
            Ok(None) => self.remove(key),
            Err(e) => tracing::warn!(workload = %key, error = %e, "cannot re-read workload"),
        }
    }

    /// One Event per roll (events.k8s.io/v1), so each names its own sources.
    async fn event(&self, entry: &WorkloadEntry, type_: EventType, reason: &str, note: String) {
        let key = &entry.key;
        let now = k8s_openapi::jiff::Timestamp::now();
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
                api_version: Some("apps/v1".into()),
                kind: Some(key.kind.as_str().into()),
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

    /// Schedules the end of pause-periods found at start-up (nothing lost across restarts).
    pub fn resume_pending_pauses(&self) {
        let store = self.store.lock().expect("store lock");
        let mut due = Vec::new();
        for k in store.keys() {
            let Some(e) = store.get(&k) else { continue };
            let Some(at) = e.annotations.get(PAUSED_AT) else {
                continue;
            };
            let period = pause_period(&self.state.policy, &e.annotations).unwrap_or_default();
            let since = at
                .parse::<k8s_openapi::jiff::Timestamp>()
                .ok()
                .and_then(|t| {
                    let d = k8s_openapi::jiff::Timestamp::now().duration_since(t);
                    Duration::try_from(d).ok()
                })
                .unwrap_or(period);
            due.push((k, period.saturating_sub(since)));
        }
        drop(store);
        for (k, d) in due {
            self.schedule(k, d, Task::Resume, 0);
        }
    }

    /// Counts for the gauges.
    pub fn update_gauges(&self) {
        let (sources, workloads) = self.store.lock().expect("store lock").counts();
        self.state.metrics.sources_tracked.set(sources as i64);
        self.state.metrics.workloads_tracked.set(workloads as i64);
    }
}
