//! The roller ties the parts of the watcher together: the store of workloads, the roll
//! queue (`queue`, pure) and the writer (`writer`, the apiserver calls). It works the queue
//! with a bounded number of workers and turns each failure, by its variant, into what comes
//! next: re-read and retry soon (conflict), forget (gone), wait for the lease (not leader),
//! or retry with backoff. Nothing queued is dropped while the workload exists.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::FutureExt;
use kube::Client;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use super::WatcherConfig;
use super::queue::{Pending, Queue, Task, backoff};
use super::reported::Reported;
use super::retry::{Next, WriteError, next_step};
use super::safe::{Safe, Slots};
use super::workloads::{WorkloadEntry, WorkloadKey, WorkloadStore};
use super::writer::Writer;
use crate::core::kind::WorkloadKind;
use crate::core::names::LAST_ROLL;
use crate::core::policy::pause_period;
use crate::core::refs::SourceRef;
use crate::core::sync::Recover;
use crate::services::metrics::{ByResult, ByType};
use crate::services::state::State;

mod check;
mod counts;
mod order;
#[cfg(test)]
mod tests;

use order::{MemoKey, PeerMemo};

/// How many checks and writes run at once.
const WORKERS: usize = 16;

pub(crate) struct Roller {
    state: Arc<State>,
    store: Mutex<WorkloadStore>,
    queue: Mutex<Queue<WorkloadKey>>,
    notify: Notify,
    writer: Writer,
    workers: Arc<Semaphore>,
    /// per workload, the problems last reported in a Warning Event (reported once each)
    reported: Reported,
    /// the longest wait before a refused write (403, 422, ...) is tried again
    /// (`--permanent-error-retry`; the waits start at 1 s, see `retry`)
    permanent_retry: Duration,
    /// `--min-roll-interval` (the flap breaker; 0: off unless a workload asks)
    min_interval: Duration,
    /// safe rollouts: the pause switches and the workloads whose roll waits
    pub(crate) safe: Safe,
    /// `--max-concurrent-rollouts`
    slots: Mutex<Slots>,
    /// per namespace, a count of the times one of its workloads moved (rolled, changed,
    /// went, or its rollout moved): what the peer memo is valid for
    generations: Mutex<HashMap<Arc<str>, u64>>,
    /// per (namespace, source, wave): the workloads that come before that wave
    peer_memo: Mutex<HashMap<MemoKey, PeerMemo>>,
}

impl Roller {
    pub(crate) fn new(state: Arc<State>, client: Client, cfg: &WatcherConfig) -> Roller {
        let store = WorkloadStore::new(state.policy.names.clone(), state.names.clone());
        let writer = Writer::new(
            state.clone(),
            client,
            cfg.instance.clone(),
            cfg.max_rollouts_per_second,
            cfg.cronjob_run_on_change,
            cfg.alerts.clone(),
            cfg.post_instead.clone(),
        );
        Roller {
            state,
            store: Mutex::new(store),
            queue: Mutex::new(Queue::default()),
            notify: Notify::new(),
            writer,
            workers: Arc::new(Semaphore::new(WORKERS)),
            reported: Reported::default(),
            permanent_retry: cfg.permanent_error_retry.max(Duration::from_secs(1)),
            min_interval: cfg.min_roll_interval,
            safe: Safe::new(cfg.paused, cfg.rollout_timeout, Default::default()),
            slots: Mutex::new(Slots::new(cfg.max_concurrent_rollouts, cfg.rollout_timeout)),
            generations: Mutex::new(HashMap::new()),
            peer_memo: Mutex::new(HashMap::new()),
        }
    }

    fn store(&self) -> MutexGuard<'_, WorkloadStore> {
        self.store.lock().recover()
    }

    fn peer_memo(&self) -> MutexGuard<'_, HashMap<MemoKey, PeerMemo>> {
        self.peer_memo.lock().recover()
    }

    fn generation(&self, ns: &str) -> u64 {
        self.generations
            .lock()
            .recover()
            .get(ns)
            .copied()
            .unwrap_or(0)
    }

    /// A workload of `ns` moved: what was decided on its namespace's workloads is stale.
    fn bump(&self, ns: &Arc<str>) {
        let mut g = self.generations.lock().recover();
        *g.entry(ns.clone()).or_default() += 1;
    }

    fn slots(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().recover()
    }

    /// Tells the slots where `entry`'s rollout stands; checks the rolls a freed slot lets go.
    fn observe_rollout(&self, entry: &WorkloadEntry) {
        let mut slots = self.slots();
        if !slots.enabled() {
            return;
        }
        let since = (entry.health == crate::core::health::Health::Progressing)
            .then(|| entry.annotations.get(LAST_ROLL)?.parse().ok())
            .flatten();
        if slots.observe(&entry.key, since) {
            let next = slots.next(k8s_openapi::jiff::Timestamp::now());
            drop(slots);
            for k in next {
                self.enqueue(k, Duration::ZERO);
            }
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue<WorkloadKey>> {
        self.queue.lock().recover()
    }

    /// Stores a workload; whether anything the watcher reads changed.
    pub(crate) fn upsert(&self, entry: WorkloadEntry) -> bool {
        let mut store = self.store();
        let (changed, moved) = match store.get(&entry.key) {
            Some(old) => {
                let changed = old.annotations != entry.annotations
                    || old.template_annotations != entry.template_annotations
                    || old.refs != entry.refs
                    || old.paused != entry.paused;
                (changed, changed || old.health != entry.health)
            }
            None => (true, true),
        };
        let ns = entry.key.namespace.clone();
        self.observe_rollout(&entry);
        tracing::debug!(workload = %entry.key, resource_version = %entry.resource_version.as_deref().unwrap_or_default(), changed, "workload seen");
        store.upsert(entry);
        drop(store);
        if moved {
            self.bump(&ns);
            self.wake_waiting(&ns);
        }
        changed
    }

    /// A workload of `ns` rolled, or its rollout moved: the rolls waiting there are
    /// checked again (after a short while, so a rollout's many status updates end in one
    /// check each).
    fn wake_waiting(&self, ns: &str) {
        for k in self.safe.waiting_in(ns) {
            self.enqueue(k, WAKE_DELAY);
        }
    }

    pub(crate) fn contains(&self, key: &WorkloadKey) -> bool {
        self.store().get(key).is_some()
    }

    pub(crate) fn remove(&self, key: &WorkloadKey) {
        self.store().remove(key);
        if self.writer.awaiting_recreate(key).is_some() {
            // a Job deleted for a roll: its retry stays queued until the new Job exists
            return;
        }
        self.queue().remove(key);
        self.safe.forget(key);
        self.bump(&key.namespace);
        self.wake_waiting(&key.namespace);
        let next = {
            let mut slots = self.slots();
            slots.forget(key);
            if slots.enabled() {
                slots.next(k8s_openapi::jiff::Timestamp::now())
            } else {
                Vec::new()
            }
        };
        for k in next {
            self.enqueue(k, Duration::ZERO);
        }
        self.reported.forget(key);
    }

    /// Posts the problems with a workload's annotations as a Warning Event, once for each
    /// set of problems (not on every check).
    async fn report_problems(&self, entry: &WorkloadEntry, problems: &[String]) {
        if !self.reported.is_new(&entry.key, problems) {
            return;
        }
        for p in problems {
            tracing::warn!(workload = %entry.key, problem = %p, "bad annotation value");
        }
        self.writer.warn_annotations(entry, problems).await;
    }

    pub(crate) fn retain_kind(
        &self,
        kind: WorkloadKind,
        scope: Option<&str>,
        seen: &std::collections::HashSet<WorkloadKey>,
    ) {
        self.store().retain_kind(kind, scope, seen);
    }

    pub(crate) fn affected(&self, namespace: &str, source: &SourceRef) -> Vec<WorkloadKey> {
        self.store().affected(namespace, source)
    }

    /// Schedules a check of `key` after `delay`; an earlier schedule stands, so changes
    /// within one window end in one patch.
    pub(crate) fn enqueue(&self, key: WorkloadKey, delay: Duration) {
        self.schedule(key, delay, Task::Check, 0);
    }

    fn schedule(&self, key: WorkloadKey, delay: Duration, task: Task, attempts: u32) {
        let now = Instant::now();
        self.schedule_since(key, delay, task, attempts, now);
    }

    /// [`Roller::schedule`] of a task first queued at `queued` (a retry keeps its age).
    fn schedule_since(
        &self,
        key: WorkloadKey,
        delay: Duration,
        task: Task,
        attempts: u32,
        queued: Instant,
    ) {
        let mut q = self.queue();
        q.schedule_since(key, task, Instant::now(), delay, attempts, queued);
        let m = &self.state.metrics;
        m.pending_rolls.set(q.len() as i64);
        m.queue_depth.set(q.len() as i64);
        m.queue_adds.inc();
        drop(q);
        self.notify.notify_one();
    }

    /// Schedules every workload of one namespace (it just became selected).
    pub(crate) fn enqueue_namespace(&self, ns: &str) {
        let keys = self.store().keys();
        for k in keys.into_iter().filter(|k| &*k.namespace == ns) {
            self.enqueue(k, Duration::ZERO);
        }
    }

    /// Schedules a check of every known workload now, as a walk: a change that comes
    /// meanwhile is checked ahead of it (`queue`); how many.
    pub(crate) fn enqueue_all(&self) -> usize {
        let mut keys = self.store().keys();
        // Jobs deleted for a roll and not created again: not in the store, still due
        keys.extend(self.writer.kept_recreates());
        let n = keys.len();
        let now = Instant::now();
        let mut q = self.queue();
        for k in keys {
            q.schedule_walk(k, Task::Check, now);
        }
        let m = &self.state.metrics;
        m.pending_rolls.set(q.len() as i64);
        m.queue_depth.set(q.len() as i64);
        m.queue_adds.inc_by(n as u64);
        drop(q);
        self.notify.notify_one();
        n
    }

    /// Works the queue forever: a task is taken when a worker is free, not before, so the
    /// one taken is the most urgent at that moment (a fresh change ahead of a walk).
    pub(crate) async fn run(self: Arc<Self>) {
        loop {
            let Ok(permit) = self.workers.clone().acquire_owned().await else {
                return;
            };
            let (ready, next) = {
                let mut q = self.queue();
                let now = Instant::now();
                let ready = q.take_one_due(now);
                let m = &self.state.metrics;
                m.pending_rolls.set(q.len() as i64);
                m.queue_depth.set(q.len() as i64);
                if let Some((_, _, p)) = &ready {
                    m.queue_latency
                        .observe(now.saturating_duration_since(p.queued).as_secs_f64());
                }
                (ready, q.next_due())
            };
            if let Some((key, task, pending)) = ready {
                let me = self.clone();
                tokio::spawn(async move {
                    // one workload's failure stays that workload's: a panic is caught here,
                    // logged, and the task retried later
                    let work = AssertUnwindSafe(me.work(key.clone(), task, pending));
                    if work.catch_unwind().await.is_err() {
                        let attempts = pending.attempts + 1;
                        tracing::error!(workload = %key, "the work on this workload panicked; will retry");
                        me.schedule_since(key, backoff(attempts), task, attempts, pending.queued);
                    }
                    drop(permit);
                });
                continue;
            }
            drop(permit);
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
            // a follower does nothing: whoever leads next (maybe us) reconciles every
            // workload and resumes every pause when it takes over, so nothing is lost
            return;
        }
        let t0 = Instant::now();
        let result = match task {
            Task::Check => self.check(&key, pending.queued).await,
            Task::Resume => self.resume(&key).await,
        };
        let m = &self.state.metrics;
        let outcome = if result.is_ok() { "success" } else { "error" };
        m.reconciles
            .get_or_create(&ByResult { result: outcome })
            .inc();
        m.reconcile_duration
            .get_or_create(&ByResult { result: outcome })
            .observe(t0.elapsed().as_secs_f64());
        let Err(e) = result else { return };
        m.errors.get_or_create(&ByType { r#type: e.label() }).inc();
        let attempts = pending.attempts + 1;
        let jitter = rand::random_range(0.75..1.25);
        let (delay, refresh) = match next_step(&e, attempts, self.permanent_retry, jitter) {
            Next::Forget => {
                self.remove(&key);
                return;
            }
            Next::Leave => return,
            Next::Retry { delay, refresh } => (delay, refresh),
        };
        tracing::warn!(workload = %key, error = %e, reason = e.label(), attempts, retry_in = ?delay, "write failed; will retry");
        if refresh {
            self.refresh_workload(&key).await;
        }
        self.state.metrics.retries.inc();
        self.schedule_since(key, delay, task, attempts, pending.queued);
    }

    async fn resume(&self, key: &WorkloadKey) -> Result<(), WriteError> {
        if let Some(e) = self.writer.resume(key).await? {
            self.upsert(e);
        }
        Ok(())
    }

    async fn refresh_workload(&self, key: &WorkloadKey) {
        match self.writer.get(key).await {
            Ok(Some(e)) => {
                self.upsert(e);
            }
            Ok(None) => self.remove(key),
            Err(e) => tracing::warn!(workload = %key, error = %e, "cannot re-read workload"),
        }
    }

    /// Schedules the end of pause-periods found at start-up (nothing lost across restarts).
    pub(crate) fn resume_pending_pauses(&self) {
        let store = self.store();
        let mut due = Vec::new();
        for e in store.entries() {
            let Some(at) = e.annotations.get(&self.state.policy.names.paused_at) else {
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
            due.push((e.key.clone(), period.saturating_sub(since)));
        }
        drop(store);
        for (k, d) in due {
            self.schedule(k, d, Task::Resume, 0);
        }
    }
}

/// How long a roll waiting for a slot waits before it asks again without being woken.
const SLOT_RECHECK: Duration = Duration::from_secs(30);

/// How long after a workload of its namespace moved a waiting roll is checked again.
const WAKE_DELAY: Duration = Duration::from_millis(500);
