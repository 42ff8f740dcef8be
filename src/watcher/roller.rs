//! The roller ties the parts of the watcher together: the store of workloads, the roll
//! queue (`queue`, pure) and the writer (`writer`, the apiserver calls). It works the queue
//! with a bounded number of workers and turns each failure, by its variant, into what comes
//! next: re-read and retry soon (conflict), forget (gone), wait for the lease (not leader),
//! or retry with backoff. Nothing queued is dropped while the workload exists.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::FutureExt;
use kube::Client;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use super::WatcherConfig;
use super::breaker;
use super::queue::{Pending, Queue, Task, backoff};
use super::safe::{Safe, Slots};
use super::workloads::{WorkloadEntry, WorkloadKey, WorkloadStore};
use super::writer::{WriteError, Writer};
use crate::core::digest::{KeyRing, UNSEEN};
use crate::core::gate::{self, Gate};
use crate::core::kind::WorkloadKind;
use crate::core::names::{LAST_ROLL, MIN_ROLL_INTERVAL, PAUSED_AT};
use crate::core::policy::pause_period;
use crate::core::record::{MadeWith, Mode, Stored};
use crate::core::refs::SourceRef;
use crate::core::stamp::{Stamp, stamp_refs};
use crate::state::State;

/// Says once per process that records were made with a key hashroll no longer has, and
/// at debug level each record re-made with the current key.
fn note_key(key: &WorkloadKey, made: &MadeWith, keys: &KeyRing) {
    static LOST_KEY_SAID: AtomicBool = AtomicBool::new(false);
    match made {
        MadeWith::Lost(id) if !LOST_KEY_SAID.swap(true, Ordering::Relaxed) => {
            tracing::warn!(
                workload = %key,
                lost_key = %id,
                current_key = %keys.current.id(),
                "records made with an HMAC key hashroll no longer has (the key Secret deleted, \
                 or a reinstall): re-recording them with the current key without rolling; a \
                 change made while the key was lost is not rolled (said once)"
            );
        }
        MadeWith::Previous | MadeWith::Lost(_) | MadeWith::Unnamed => {
            tracing::debug!(workload = %key, made_with = ?made, "record re-made with the current key");
        }
        MadeWith::Current => {}
    }
}

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
    reported: Mutex<HashMap<WorkloadKey, Vec<String>>>,
    /// how long a write refused for good (403, 422, ...) waits before it is tried again
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

/// (namespace, source, wave) of the peer memo.
type MemoKey = (Arc<str>, SourceRef, u32);

/// What the waves below one wave said, and what it was decided on.
struct PeerMemo {
    generation: u64,
    digests: Option<crate::core::digest::SourceDigests>,
    keys: Arc<KeyRing>,
    peers: Arc<[gate::Peer]>,
}

/// Entries of the peer memo before it starts over.
const PEER_MEMO_MAX: usize = 4096;

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
            reported: Mutex::new(HashMap::new()),
            permanent_retry: cfg.permanent_error_retry.max(Duration::from_secs(1)),
            min_interval: cfg.min_roll_interval,
            safe: Safe::new(cfg.paused, cfg.rollout_timeout, Default::default()),
            slots: Mutex::new(Slots::new(cfg.max_concurrent_rollouts, cfg.rollout_timeout)),
            generations: Mutex::new(HashMap::new()),
            peer_memo: Mutex::new(HashMap::new()),
        }
    }

    fn store(&self) -> MutexGuard<'_, WorkloadStore> {
        self.store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn peer_memo(&self) -> MutexGuard<'_, HashMap<MemoKey, PeerMemo>> {
        self.peer_memo
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn generation(&self, ns: &str) -> u64 {
        self.generations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(ns)
            .copied()
            .unwrap_or(0)
    }

    /// A workload of `ns` moved: what was decided on its namespace's workloads is stale.
    fn bump(&self, ns: &Arc<str>) {
        let mut g = self
            .generations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *g.entry(ns.clone()).or_default() += 1;
    }

    fn slots(&self) -> MutexGuard<'_, Slots> {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
        self.reported
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }

    /// Posts the problems with a workload's annotations as a Warning Event, once for each
    /// set of problems (not on every check).
    async fn report_problems(&self, entry: &WorkloadEntry, problems: &[String]) {
        {
            let mut reported = self
                .reported
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if reported.get(&entry.key).map(Vec::as_slice) == Some(problems) {
                return;
            }
            if problems.is_empty() {
                reported.remove(&entry.key);
                return;
            }
            reported.insert(entry.key.clone(), problems.to_vec());
        }
        for p in problems {
            tracing::warn!(workload = %entry.key, problem = %p, "bad annotation value");
        }
        self.writer.warn_annotations(entry, problems).await;
    }

    pub(crate) fn retain_kind(
        &self,
        kind: WorkloadKind,
        seen: &std::collections::HashSet<WorkloadKey>,
    ) {
        self.store().retain_kind(kind, seen);
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

    /// Schedules every known workload; how many.
    pub(crate) fn enqueue_all(&self, delay: Duration) -> usize {
        let mut keys = self.store().keys();
        // Jobs deleted for a roll and not created again: not in the store, still due
        keys.extend(self.writer.kept_recreates());
        let n = keys.len();
        for k in keys {
            self.enqueue(k, delay);
        }
        n
    }

    /// Works the queue forever.
    pub(crate) async fn run(self: Arc<Self>) {
        loop {
            let (ready, next) = {
                let mut q = self.queue();
                let now = Instant::now();
                let ready = q.take_due(now);
                let m = &self.state.metrics;
                m.pending_rolls.set(q.len() as i64);
                m.queue_depth.set(q.len() as i64);
                for (_, _, p) in &ready {
                    m.queue_latency
                        .observe(now.saturating_duration_since(p.queued).as_secs_f64());
                }
                (ready, q.next_due())
            };
            for (key, task, pending) in ready {
                let Ok(permit) = self.workers.clone().acquire_owned().await else {
                    return;
                };
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
            .get_or_create(&vec![("result".to_string(), outcome.to_string())])
            .inc();
        m.reconcile_duration
            .get_or_create(&vec![("result".to_string(), outcome.to_string())])
            .observe(t0.elapsed().as_secs_f64());
        let Err(e) = result else { return };
        m.errors
            .get_or_create(&vec![("type".to_string(), e.label().to_string())])
            .inc();
        let attempts = pending.attempts + 1;
        let delay = match &e {
            WriteError::Gone(_) => {
                self.remove(&key);
                return;
            }
            // as above: the next leader takes it from here
            WriteError::NotLeader => return,
            WriteError::Conflict(..) => Duration::from_millis(20),
            // refused for good (RBAC, a policy, an invalid object): asked again slowly,
            // never dropped while the workload exists
            e if e.is_permanent() => self.permanent_retry,
            // 429, 5xx, timeouts: capped backoff, jittered so retries do not march together
            WriteError::Patch(..) | WriteError::Source(..) => {
                backoff(attempts).mul_f64(rand::random_range(0.75..1.25))
            }
        };
        tracing::warn!(workload = %key, error = %e, reason = e.label(), attempts, retry_in = ?delay, "write failed; will retry");
        if let WriteError::Conflict(..) = e {
            // our copy is stale: read the workload again before retrying
            self.refresh_workload(&key).await;
        }
        self.state.metrics.retries.inc();
        self.schedule_since(key, delay, task, attempts, pending.queued);
    }

    /// What the core decides for `entry` now. A workload with reload lists is decided on
    /// tokio's blocking pool: its regexes (a tenant's, compiled within a budget) run over
    /// every name of its namespace, which must not hold up the runtime's workers, where the
    /// watches, the webhook and the Lease renewal run.
    async fn stamp(&self, entry: &WorkloadEntry, stored: &Stored, keys: &Arc<KeyRing>) -> Stamp {
        if !entry.has_lists(&self.state.policy.names) {
            return stamp_now(&self.state, entry, stored, keys);
        }
        let (state, e, st, k) = (
            self.state.clone(),
            entry.clone(),
            stored.clone(),
            keys.clone(),
        );
        match tokio::task::spawn_blocking(move || stamp_now(&state, &e, &st, &k)).await {
            Ok(s) => s,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // the runtime is shutting down: decided here, as any other
            Err(_) => stamp_now(&self.state, entry, stored, keys),
        }
    }

    /// Checks `key` (queued at `queued`) and writes what is due.
    async fn check(&self, key: &WorkloadKey, queued: Instant) -> Result<(), WriteError> {
        let m = &self.state.metrics;
        // --namespace-selector: a namespace that is not selected now is left alone
        if !self.state.cache.namespaces().allows(&key.namespace) {
            m.skip("namespace_not_selected");
            return Ok(());
        }
        let Some(entry) = self.store().get(key).cloned() else {
            // a Job deleted for a roll and not created again yet: created now
            return self.writer.recreate_kept(key).await;
        };
        // the stored record, parsed once for the whole check
        let stored = entry.stored(&self.state.names);
        self.look_up_unseen(&entry, &stored).await?;
        let mut keys = self.state.keys.get();
        let mut result = self.stamp(&entry, &stored, &keys).await;
        // made with a key this replica does not hold: another replica may have taken a new
        // one already; the keys are read again (at most every few seconds) before the
        // record is re-made with what this one holds
        if matches!(result.made_with, MadeWith::Lost(_)) {
            self.state
                .keys
                .reload_unless_recent(crate::key::LOST_KEY_RELOAD)
                .await;
            let now = self.state.keys.get();
            if !Arc::ptr_eq(&now, &keys) {
                keys = now;
                result = self.stamp(&entry, &stored, &keys).await;
            }
        }
        let (interval, problem) =
            breaker::interval(self.min_interval, entry.annotations.get(MIN_ROLL_INTERVAL));
        let mut problems = result.problems.clone();
        problems.extend(problem);
        // read once: its problems reported here, the settings used by the gate below
        let (settings, gate_problems) = gate::settings(|k| {
            entry
                .annotations
                .get(k)
                .or_else(|| entry.template_annotations.get(k))
        });
        problems.extend(gate_problems);
        self.report_problems(&entry, &problems).await;
        if result.decision.is_noop(&stored) {
            m.skip("up_to_date");
            return Ok(());
        }
        note_key(key, &result.made_with, &keys);
        // the flap breaker: too soon after the last roll, the check comes back when the
        // interval ends and rolls what is then the latest
        if result.decision.roll
            && let Some(left) = breaker::wait_left(
                interval,
                entry.annotations.get(LAST_ROLL),
                k8s_openapi::jiff::Timestamp::now(),
            )
        {
            m.held_rolls.inc();
            tracing::info!(workload = %key, next_in = ?left, "roll held: minimum interval between rolls");
            self.schedule_since(key.clone(), left, Task::Check, 0, queued);
            return Ok(());
        }
        let mut ordered = false;
        if result.decision.roll {
            let (gate, engaged) = self.gate(&entry, &settings, &result, &keys).await;
            ordered = engaged;
            let report = self.safe.note(key, &gate);
            match &gate {
                Gate::Go => {}
                Gate::Paused(why) => {
                    m.skip("paused");
                    tracing::info!(workload = %key, reason = %why, "roll paused");
                    return Ok(());
                }
                Gate::Closed { next } => {
                    m.skip("outside_window");
                    // checked again when the window opens: the latest data rolls then, once
                    let wait = next
                        .and_then(|t| {
                            let d = t.duration_since(k8s_openapi::jiff::Timestamp::now());
                            Duration::try_from(d).ok()
                        })
                        .unwrap_or(Duration::from_secs(3600));
                    tracing::info!(workload = %key, next_opening = ?next, "roll waits for its window");
                    self.schedule_since(key.clone(), wait + WAKE_DELAY, Task::Check, 0, queued);
                    return Ok(());
                }
                Gate::Wait { reason, recheck } => {
                    m.skip("waiting");
                    tracing::info!(workload = %key, reason = %reason, "roll waits");
                    if let Some(r) = recheck {
                        self.schedule_since(key.clone(), *r + WAKE_DELAY, Task::Check, 0, queued);
                    }
                    return Ok(());
                }
                Gate::Held(hold) => {
                    m.skip("held");
                    if report.source {
                        m.rollout_failures
                            .get_or_create(&vec![(
                                "source_kind".to_string(),
                                hold.source
                                    .split('/')
                                    .next()
                                    .unwrap_or_default()
                                    .to_string(),
                            )])
                            .inc();
                        tracing::warn!(workload = %key, source = %hold.source, failed = %hold.failed, change = %hold.change, why = %hold.why, "a rollout failed: the later waves of this change are held");
                    }
                    if report.workload {
                        tracing::warn!(workload = %key, hold = %hold, "roll held");
                        self.writer.warn_held(&entry, hold, report.source).await;
                    }
                    return Ok(());
                }
            }
        }
        if result.decision.roll {
            // a roll is costly: confirm each changed source with the apiserver first
            for k in &result.decision.changed {
                if let Some(s) = SourceRef::from_record_key(k) {
                    self.writer.refresh_source(&key.namespace, &s).await?;
                }
            }
            result = self.stamp(&entry, &stored, &keys).await;
            if result.decision.is_noop(&stored) {
                m.skip("not_confirmed");
                return Ok(());
            }
            m.workloads_matched
                .get_or_create(&vec![("kind".to_string(), key.kind.as_str().to_string())])
                .inc();
        }
        // --max-concurrent-rollouts: a roll takes a slot, or waits its namespace's turn
        let capped = result.decision.roll && self.slots().enabled();
        if capped && !self.slots().take(key, k8s_openapi::jiff::Timestamp::now()) {
            m.skip("max_concurrent_rollouts");
            tracing::info!(workload = %key, "roll waits for a slot (--max-concurrent-rollouts)");
            // a slot freed by a timeout comes with no event: asked again after a while
            self.schedule_since(key.clone(), SLOT_RECHECK, Task::Check, 0, queued);
            return Ok(());
        }
        let written = self
            .writer
            .write(
                &entry,
                &result.decision,
                !interval.is_zero() || ordered || capped,
            )
            .await;
        if capped {
            self.slots().done();
        }
        let written = written?;
        if result.decision.roll {
            m.action_latency
                .get_or_create(&vec![(
                    "workload_kind".to_string(),
                    key.kind.as_str().to_string(),
                )])
                .observe(
                    Instant::now()
                        .saturating_duration_since(queued)
                        .as_secs_f64(),
                );
        }
        if let Some(e) = written.entry {
            self.upsert(e);
        }
        if let Some(p) = written.pause_for {
            self.schedule(key.clone(), p, Task::Resume, 0);
        }
        Ok(())
    }

    /// Whether the roll `result` calls for may go now (`core::gate`), and whether the
    /// roll takes part in an order (its workload or another tracking a changed source has
    /// a wave or an `after` list: the roll then writes when it happened, which a rollout
    /// timeout counts from).
    async fn gate(
        &self,
        entry: &WorkloadEntry,
        me: &gate::Settings,
        result: &Stamp,
        keys: &Arc<KeyRing>,
    ) -> (Gate, bool) {
        let key = &entry.key;
        let switches = self.safe.switches(&key.namespace);
        let changed = gate::gated_sources(&result.decision.changed, result.tracked.keys().cloned());
        let me_kind = key.kind.as_str().to_ascii_lowercase();
        let mut engaged = me.ordered();
        // per changed source: its switches, and the workloads tracking it that come before
        // this one (the others cost a look at two annotations)
        let mut sources = Vec::with_capacity(changed.len());
        for s in &changed {
            let cached = self.state.cache.get(&key.namespace, s);
            let info = cached.as_ref().map(|e| e.info).unwrap_or_default();
            let digests = cached.map(|e| e.digests);
            // the rolls of one wave share what the waves below them say, until a workload
            // of the namespace moves, the source changes or the keys do (no `after` list:
            // one names its own)
            let memo_key = (key.namespace.clone(), s.clone(), me.wave);
            let generation = self.generation(&key.namespace);
            let memo = me.after.is_empty().then(|| {
                let memo = self.peer_memo();
                memo.get(&memo_key)
                    .filter(|m| {
                        m.generation == generation
                            && m.digests == digests
                            && Arc::ptr_eq(&m.keys, keys)
                    })
                    .map(|m| m.peers.clone())
            });
            let peers = match memo.flatten() {
                Some(peers) => {
                    engaged = true;
                    peers
                }
                None => {
                    let (peers, seen_ordered, shareable) =
                        self.peers_before(key, me, s, keys).await;
                    engaged |= seen_ordered;
                    let peers: Arc<[gate::Peer]> = peers.into();
                    if shareable && me.ordered() {
                        let mut memo = self.peer_memo();
                        if memo.len() >= PEER_MEMO_MAX {
                            memo.clear();
                        }
                        memo.insert(
                            memo_key,
                            PeerMemo {
                                generation,
                                digests,
                                keys: keys.clone(),
                                peers: peers.clone(),
                            },
                        );
                    }
                    peers
                }
            };
            sources.push(gate::Source {
                name: s.to_string(),
                paused: info.paused,
                release: info.release,
                peers,
            });
        }
        let g = gate::gate(
            &me_kind,
            &key.name,
            me,
            switches,
            &sources,
            k8s_openapi::jiff::Timestamp::now(),
        );
        (g, engaged)
    }

    /// The workloads tracking `s` that may come before `me` (`key`), decided now; whether
    /// any workload tracking `s` takes part in an order; and whether the list holds for
    /// every workload of `me`'s wave (no `after` list anywhere: waves alone decide).
    async fn peers_before(
        &self,
        key: &WorkloadKey,
        me: &gate::Settings,
        s: &SourceRef,
        keys: &Arc<KeyRing>,
    ) -> (Vec<gate::Peer>, bool, bool) {
        let mut engaged = false;
        let candidates: Vec<WorkloadEntry> = {
            let store = self.store();
            // no workload of the namespace in an order (the usual case): nothing to ask
            if !store.has_ordered(&key.namespace) {
                return (Vec::new(), false, me.after.is_empty());
            }
            store
                .affected(&key.namespace, s)
                .iter()
                .filter(|k| *k != key)
                .filter_map(|k| store.get(k))
                .filter(|p| {
                    engaged |= p.ordered();
                    me.ordered()
                })
                .cloned()
                .collect()
        };
        let record_key = s.record_key();
        let read: Vec<(String, gate::Settings)> = candidates
            .iter()
            .map(|p| {
                let pget = |k: &str| {
                    p.annotations
                        .get(k)
                        .or_else(|| p.template_annotations.get(k))
                };
                (
                    p.key.kind.as_str().to_ascii_lowercase(),
                    gate::settings(pget).0,
                )
            })
            .collect();
        let me_kind = key.kind.as_str().to_ascii_lowercase();
        let nodes: Vec<gate::Node> = candidates
            .iter()
            .zip(&read)
            .map(|(p, (kind, settings))| gate::Node {
                kind,
                name: &p.key.name,
                settings,
            })
            .collect();
        let me_node = gate::Node {
            kind: &me_kind,
            name: &key.name,
            settings: me,
        };
        let after_me = gate::after_me(me_node, &nodes);
        drop(nodes);
        let shareable = me.after.is_empty() && read.iter().all(|(_, s)| s.after.is_empty());
        let mut peers = Vec::new();
        for ((p, (kind, settings)), after_me) in candidates.into_iter().zip(read).zip(after_me) {
            if after_me || !gate::may_precede(me, &kind, &p.key.name, &settings) {
                continue;
            }
            let stored = p.stored(&self.state.names);
            let stamp = self.stamp(&p, &stored, keys).await;
            if !stamp.tracked.contains_key(s) {
                continue;
            }
            let d = &stamp.decision;
            peers.push(gate::Peer {
                kind,
                name: p.key.name.to_string(),
                settings,
                pending: gate::pending_for(d.roll, &d.changed, &record_key),
                health: p.health,
                rolled_at: p.annotations.get(LAST_ROLL).and_then(|t| t.parse().ok()),
                change: stored
                    .record
                    .as_ref()
                    .and_then(|r| r.get(&record_key).cloned()),
            });
        }
        (peers, engaged, shareable)
    }

    /// The sources the webhook recorded `unseen` (not in its cache at admission) that the
    /// cache still lacks: one GET each, at most [`MAX_UNSEEN_LOOKUPS`] a check. So a source
    /// created just before its workload is recorded with its digest, not as absent, which
    /// would roll the new workload when the watch brings the source. A GET here is for a
    /// workload the apiserver holds, in its own namespace; a review never causes one.
    async fn look_up_unseen(
        &self,
        entry: &WorkloadEntry,
        stored: &Stored,
    ) -> Result<(), WriteError> {
        let Some(record) = &stored.record else {
            return Ok(());
        };
        let (ns, cache) = (&entry.key.namespace, &self.state.cache);
        let unseen: Vec<SourceRef> = record
            .iter()
            .filter(|(_, v)| v.as_str() == UNSEEN)
            .filter_map(|(k, _)| SourceRef::from_record_key(k))
            .filter(|s| s.kind.row().gettable)
            .filter(|s| cache.get(ns, s).is_none() && !cache.recently_absent(ns, s))
            .take(MAX_UNSEEN_LOOKUPS)
            .collect();
        for s in &unseen {
            self.writer.refresh_source(ns, s).await?;
        }
        Ok(())
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
            due.push((e.key.clone(), period.saturating_sub(since)));
        }
        drop(store);
        for (k, d) in due {
            self.schedule(k, d, Task::Resume, 0);
        }
    }

    /// Counts a source change for Reloader's event metrics: seen, handled (queued, or
    /// skipped when no workload tracks the source), and the workloads it reaches by kind.
    pub(crate) fn count_change(
        &self,
        change: &crate::cache::SourceChange,
        affected: &[WorkloadKey],
    ) {
        use crate::cache::ChangeKind;
        let m = &self.state.metrics;
        let event = match change.kind {
            ChangeKind::Created => "add",
            ChangeKind::Data | ChangeKind::Meta => "update",
            ChangeKind::Deleted => "delete",
        };
        let resource = change.source.kind.as_str();
        let labels = |extra: Option<&str>| {
            let mut l = vec![
                ("event_type".to_string(), event.to_string()),
                ("resource_type".to_string(), resource.to_string()),
            ];
            if let Some(r) = extra {
                l.push(("result".to_string(), r.to_string()));
            }
            l
        };
        m.events_received.get_or_create(&labels(None)).inc();
        let result = if affected.is_empty() {
            m.skip("not_tracked");
            "skipped"
        } else {
            "queued"
        };
        m.events_processed
            .get_or_create(&labels(Some(result)))
            .inc();
        for k in affected {
            m.workloads_scanned
                .get_or_create(&vec![("kind".to_string(), k.kind.as_str().to_string())])
                .inc();
        }
    }

    /// Counts for the gauges.
    pub(crate) fn update_gauges(&self) {
        let (sources, workloads) = self.store().counts();
        let oldest = self.queue().oldest(Task::Check, Instant::now());
        self.state
            .metrics
            .oldest_pending_check
            .set(oldest.unwrap_or_default().as_secs_f64());
        let (held, waiting) = self.safe.counts();
        let for_slot = self.slots().queued();
        self.state.metrics.rollouts_held.set(held as i64);
        self.state
            .metrics
            .rollouts_waiting
            .set((waiting + for_slot) as i64);
        self.state.metrics.sources_tracked.set(sources as i64);
        self.state.metrics.workloads_tracked.set(workloads as i64);
    }
}

/// How long a roll waiting for a slot waits before it asks again without being woken.
const SLOT_RECHECK: Duration = Duration::from_secs(30);

/// How long after a workload of its namespace moved a waiting roll is checked again.
const WAKE_DELAY: Duration = Duration::from_millis(500);

/// Sources recorded `unseen` looked up in one check (the rest are taken as the cache
/// has them: absent).
const MAX_UNSEEN_LOOKUPS: usize = 8;

fn stamp_now(s: &State, entry: &WorkloadEntry, stored: &Stored, keys: &KeyRing) -> Stamp {
    stamp_refs(
        &s.policy,
        keys,
        &entry.input(),
        &s.cache.view(&entry.key.namespace),
        stored,
        Mode::Reconcile,
        s.roll,
    )
}
