//! One check of one workload: stamp it (on the blocking pool when its lists are costly),
//! confirm what changed, ask the breaker and the gate, and write.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::{Roller, SLOT_RECHECK, WAKE_DELAY};
use crate::core::digest::{KeyRing, UNSEEN};
use crate::core::gate::{self, Gate};
use crate::core::names::{LAST_ROLL, MIN_ROLL_INTERVAL};
use crate::core::record::{MadeWith, Mode, Stored};
use crate::core::refs::SourceRef;
use crate::core::stamp::{Stamp, stamp_refs};
use crate::services::state::State;
use crate::watcher::breaker;
use crate::watcher::queue::Task;
use crate::watcher::retry::WriteError;
use crate::watcher::workloads::{WorkloadEntry, WorkloadKey};

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

impl Roller {
    /// What the core decides for `entry` now. A workload with reload lists is decided on
    /// tokio's blocking pool: its regexes (a tenant's, compiled within a budget) run over
    /// every name of its namespace, which must not hold up the runtime's workers, where the
    /// watches, the webhook and the Lease renewal run.
    pub(super) async fn stamp(
        &self,
        entry: &WorkloadEntry,
        stored: &Stored,
        keys: &Arc<KeyRing>,
    ) -> Stamp {
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
    pub(super) async fn check(&self, key: &WorkloadKey, queued: Instant) -> Result<(), WriteError> {
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
                .reload_unless_recent(crate::services::key::LOST_KEY_RELOAD)
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
                            .get_or_create(&crate::services::metrics::BySourceKind {
                                source_kind: SourceRef::from_record_key(&hold.source)
                                    .map_or("other", |s| s.kind.as_str()),
                            })
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
                .get_or_create(&crate::services::metrics::ByKind {
                    kind: key.kind.as_str(),
                })
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
                .get_or_create(&crate::services::metrics::ByWorkloadKind {
                    workload_kind: key.kind.as_str(),
                })
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

    /// The sources the webhook recorded `unseen` (not in its cache at admission) that the
    /// cache still lacks: one GET each, at most [`MAX_UNSEEN_LOOKUPS`] a check. So a source
    /// created just before its workload is recorded with its digest, not as absent, which
    /// would roll the new workload when the watch brings the source. A GET here is for a
    /// workload the apiserver holds, in its own namespace; a review never causes one.
    pub(super) async fn look_up_unseen(
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
}
