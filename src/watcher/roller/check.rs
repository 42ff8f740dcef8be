//! One check of one workload: stamp it (on the blocking pool when its lists are costly),
//! confirm what changed, ask the breaker and the gate, and write.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::{Roller, SLOT_RECHECK, WAKE_DELAY};
use crate::core::digest::KeyRing;
use crate::core::gate::{self, Gate};
use crate::core::names::{LAST_ROLL, MIN_ROLL_INTERVAL};
use crate::core::record::{self, Entry, MadeWith, Mode, Stored};
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

/// Why a check wrote nothing: the `reason` label of `reloader_skipped_total` (the flap
/// breaker's hold counts in `hashroll_held_rolls_total` instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Skip {
    NamespaceNotSelected,
    UpToDate,
    MinInterval,
    Paused,
    OutsideWindow,
    Waiting,
    Held,
    NotConfirmed,
    MaxConcurrentRollouts,
}

impl Skip {
    /// The metric's label.
    pub(super) fn label(self) -> &'static str {
        match self {
            Skip::NamespaceNotSelected => "namespace_not_selected",
            Skip::UpToDate => "up_to_date",
            Skip::MinInterval => "min_roll_interval",
            Skip::Paused => "paused",
            Skip::OutsideWindow => "outside_window",
            Skip::Waiting => "waiting",
            Skip::Held => "held",
            Skip::NotConfirmed => "not_confirmed",
            Skip::MaxConcurrentRollouts => "max_concurrent_rollouts",
        }
    }

    /// The log line it is worth, if any (a workload up to date is the common case).
    fn says(self) -> Option<&'static str> {
        match self {
            Skip::MinInterval => Some("roll held: minimum interval between rolls"),
            Skip::Paused => Some("roll paused"),
            Skip::OutsideWindow => Some("roll waits for its window"),
            Skip::Waiting => Some("roll waits"),
            Skip::MaxConcurrentRollouts => {
                Some("roll waits for a slot (--max-concurrent-rollouts)")
            }
            Skip::NamespaceNotSelected | Skip::UpToDate | Skip::Held | Skip::NotConfirmed => None,
        }
    }
}

/// What one check decided (and, for a write, did).
#[derive(Debug)]
pub(super) enum Outcome {
    /// a Job deleted for a roll, created again
    Recreated,
    /// the record written, and with `roll` the token; `pause_for`: a pause-period to end
    Wrote {
        roll: bool,
        pause_for: Option<Duration>,
    },
    /// nothing written; checked again after `again` when some
    NotNow {
        skip: Skip,
        again: Option<Duration>,
        detail: Option<String>,
    },
    /// held after a failed rollout of an earlier wave: Events and a count as `report` says
    Held {
        hold: gate::Hold,
        report: crate::watcher::safe::Report,
        entry: Option<Box<WorkloadEntry>>,
    },
}

impl Outcome {
    fn not_now(skip: Skip) -> Outcome {
        Outcome::NotNow {
            skip,
            again: None,
            detail: None,
        }
    }

    /// What the gate's answer makes of a due roll: none when it may go.
    fn of_gate(
        gate: Gate,
        report: crate::watcher::safe::Report,
        now: k8s_openapi::jiff::Timestamp,
    ) -> Option<Outcome> {
        Some(match gate {
            Gate::Go => return None,
            Gate::Paused(why) => Outcome::NotNow {
                skip: Skip::Paused,
                again: None,
                detail: Some(why),
            },
            // checked again when the window opens: the latest data rolls then, once
            Gate::Closed { next } => {
                let wait = next
                    .and_then(|t| Duration::try_from(t.duration_since(now)).ok())
                    .unwrap_or(Duration::from_secs(3600));
                Outcome::NotNow {
                    skip: Skip::OutsideWindow,
                    again: Some(wait + WAKE_DELAY),
                    detail: next.map(|t| format!("next opening {t}")),
                }
            }
            Gate::Wait { reason, recheck } => Outcome::NotNow {
                skip: Skip::Waiting,
                again: recheck.map(|r| r + WAKE_DELAY),
                detail: Some(reason),
            },
            Gate::Held(hold) => Outcome::Held {
                hold,
                report,
                entry: None,
            },
        })
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

    /// Checks `key` (queued at `queued`), writes what is due, and settles what it decided.
    pub(super) async fn check(&self, key: &WorkloadKey, queued: Instant) -> Result<(), WriteError> {
        let outcome = self.decide(key).await?;
        self.settle(key, queued, outcome).await;
        Ok(())
    }

    /// One check: what it decided, a write included when one was due.
    async fn decide(&self, key: &WorkloadKey) -> Result<Outcome, WriteError> {
        // --namespace-selector: a namespace that is not selected now is left alone
        if !self.state.cache.namespaces().allows(&key.namespace) {
            return Ok(Outcome::not_now(Skip::NamespaceNotSelected));
        }
        let Some(entry) = self.store().get(key).cloned() else {
            // a Job deleted for a roll and not created again yet: created now
            self.writer.recreate_kept(key).await?;
            return Ok(Outcome::Recreated);
        };
        // the stored record, parsed once for the whole check
        let stored = entry.stored(&self.state.names);
        self.look_up_unseen(&entry, &stored).await?;
        let (mut result, keys) = self.stamp_with_live_keys(&entry, &stored).await;
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
            return Ok(Outcome::not_now(Skip::UpToDate));
        }
        note_key(key, &result.made_with, &keys);
        let mut ordered = false;
        if result.decision.roll {
            // the flap breaker: too soon after the last roll, the check comes back when
            // the interval ends and rolls what is then the latest
            let now = k8s_openapi::jiff::Timestamp::now();
            if let Some(left) = breaker::wait_left(interval, entry.annotations.get(LAST_ROLL), now)
            {
                return Ok(Outcome::NotNow {
                    skip: Skip::MinInterval,
                    again: Some(left),
                    detail: None,
                });
            }
            let (gate, engaged) = self.gate(&entry, &settings, &result, &keys).await;
            ordered = engaged;
            let report = self.safe.note(key, &gate);
            if let Some(mut o) = Outcome::of_gate(gate, report, now) {
                if let Outcome::Held { entry: e, .. } = &mut o {
                    *e = Some(Box::new(entry));
                }
                return Ok(o);
            }
            match self.confirmed(&entry, &stored, &keys, &result).await? {
                Some(r) => result = r,
                None => return Ok(Outcome::not_now(Skip::NotConfirmed)),
            }
        }
        // --max-concurrent-rollouts: a roll takes a slot, or waits its namespace's turn
        let capped = result.decision.roll && self.slots().enabled();
        if capped && !self.slots().take(key, k8s_openapi::jiff::Timestamp::now()) {
            // a slot freed by a timeout comes with no event: asked again after a while
            return Ok(Outcome::NotNow {
                skip: Skip::MaxConcurrentRollouts,
                again: Some(SLOT_RECHECK),
                detail: None,
            });
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
        if let Some(e) = written.entry {
            self.upsert(e);
        }
        Ok(Outcome::Wrote {
            roll: result.decision.roll,
            pause_for: written.pause_for,
        })
    }

    /// A roll is costly: each changed source confirmed with the apiserver first, and the
    /// workload stamped again; none when the roll is then no longer due.
    async fn confirmed(
        &self,
        entry: &WorkloadEntry,
        stored: &Stored,
        keys: &Arc<KeyRing>,
        result: &Stamp,
    ) -> Result<Option<Stamp>, WriteError> {
        let key = &entry.key;
        for s in result.decision.changed.iter().filter_map(Entry::source) {
            self.writer.refresh_source(&key.namespace, s).await?;
        }
        let again = self.stamp(entry, stored, keys).await;
        if again.decision.is_noop(stored) {
            return Ok(None);
        }
        self.state
            .metrics
            .workloads_matched
            .get_or_create(&crate::services::metrics::ByKind {
                kind: key.kind.as_str(),
            })
            .inc();
        Ok(Some(again))
    }

    /// The stamp of `entry`, with the keys read again first when the record was made with
    /// a key this replica does not hold (another replica may have taken a new one already;
    /// read at most every few seconds) before it is re-made with what this one holds.
    async fn stamp_with_live_keys(
        &self,
        entry: &WorkloadEntry,
        stored: &Stored,
    ) -> (Stamp, Arc<KeyRing>) {
        let keys = self.state.keys.get();
        let result = self.stamp(entry, stored, &keys).await;
        if !matches!(result.made_with, MadeWith::Lost(_)) {
            return (result, keys);
        }
        self.state
            .keys
            .reload_unless_recent(crate::services::key::LOST_KEY_RELOAD)
            .await;
        let now = self.state.keys.get();
        if Arc::ptr_eq(&now, &keys) {
            return (result, keys);
        }
        let result = self.stamp(entry, stored, &now).await;
        (result, now)
    }

    /// Turns what a check decided into metrics, log lines, Events and the next check: the
    /// one place that does.
    async fn settle(&self, key: &WorkloadKey, queued: Instant, outcome: Outcome) {
        let m = &self.state.metrics;
        match outcome {
            Outcome::Recreated => {}
            Outcome::Wrote { roll, pause_for } => {
                if roll {
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
                if let Some(p) = pause_for {
                    self.schedule(key.clone(), p, Task::Resume, 0);
                }
            }
            Outcome::NotNow {
                skip,
                again,
                detail,
            } => {
                match skip {
                    Skip::MinInterval => {
                        m.held_rolls.inc();
                    }
                    s => m.skip(s.label()),
                }
                if let Some(said) = skip.says() {
                    match &detail {
                        Some(d) => {
                            tracing::info!(workload = %key, detail = %d, next_in = ?again, "{said}")
                        }
                        None => tracing::info!(workload = %key, next_in = ?again, "{said}"),
                    }
                }
                if let Some(after) = again {
                    self.schedule_since(key.clone(), after, Task::Check, 0, queued);
                }
            }
            Outcome::Held {
                hold,
                report,
                entry,
            } => {
                m.skip(Skip::Held.label());
                if report.source {
                    m.rollout_failures
                        .get_or_create(&crate::services::metrics::BySourceKind {
                            source_kind: hold.source.kind.as_str(),
                        })
                        .inc();
                    tracing::warn!(workload = %key, source = %hold.source, failed = %hold.failed, change = %hold.change, why = %hold.why, "a rollout failed: the later waves of this change are held");
                }
                if report.workload
                    && let Some(entry) = entry
                {
                    tracing::warn!(workload = %key, hold = %hold, "roll held");
                    self.writer.warn_held(&entry, &hold, report.source).await;
                }
            }
        }
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
            .filter(|(_, v)| **v == record::State::Unseen)
            .filter_map(|(k, _)| k.source().cloned())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watcher::safe::Report;

    fn hold() -> gate::Hold {
        gate::Hold {
            source: SourceRef::configmap("cfg"),
            failed: "deployment/canary".into(),
            why: "ProgressDeadlineExceeded".into(),
            change: "abc".into(),
            since: None,
        }
    }

    /// (gate, skip, again, detail) for each answer of the gate that stops a due roll.
    #[test]
    fn each_answer_of_the_gate_is_one_outcome() {
        let now = k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let in_10s = now + k8s_openapi::jiff::SignedDuration::from_secs(10);
        let report = Report {
            workload: true,
            source: false,
        };
        let s = Duration::from_secs;
        let table: Vec<(Gate, Skip, Option<Duration>, Option<&str>)> = vec![
            (
                Gate::Paused("the switch".into()),
                Skip::Paused,
                None,
                Some("the switch"),
            ),
            (
                Gate::Closed { next: Some(in_10s) },
                Skip::OutsideWindow,
                Some(s(10) + WAKE_DELAY),
                Some("next opening"),
            ),
            // no next opening known: looked at again in an hour
            (
                Gate::Closed { next: None },
                Skip::OutsideWindow,
                Some(s(3600) + WAKE_DELAY),
                None,
            ),
            (
                Gate::Wait {
                    reason: "wave 1 rolling".into(),
                    recheck: Some(s(5)),
                },
                Skip::Waiting,
                Some(s(5) + WAKE_DELAY),
                Some("wave 1 rolling"),
            ),
            // waiting on an event (the earlier wave's rollout), not on a time
            (
                Gate::Wait {
                    reason: "wave 1 rolling".into(),
                    recheck: None,
                },
                Skip::Waiting,
                None,
                Some("wave 1 rolling"),
            ),
        ];
        for (gate, want_skip, want_again, want_detail) in table {
            let what = format!("{gate:?}");
            match Outcome::of_gate(gate, report, now) {
                Some(Outcome::NotNow {
                    skip,
                    again,
                    detail,
                }) => {
                    assert_eq!(skip, want_skip, "{what}");
                    assert_eq!(again, want_again, "{what}");
                    match want_detail {
                        Some(d) => assert!(
                            detail.as_deref().is_some_and(|t| t.contains(d)),
                            "{what}: {detail:?}"
                        ),
                        None => assert_eq!(detail, None, "{what}"),
                    }
                }
                other => panic!("{what}: {other:?}"),
            }
        }
        assert!(Outcome::of_gate(Gate::Go, report, now).is_none());
        match Outcome::of_gate(Gate::Held(hold()), report, now) {
            Some(Outcome::Held {
                hold: h,
                report: r,
                entry: None,
            }) => {
                assert_eq!(h, hold());
                assert_eq!(r, report);
            }
            other => panic!("held: {other:?}"),
        }
    }

    #[test]
    fn skip_labels_are_distinct_and_the_documented_ones_exist() {
        let all = [
            Skip::NamespaceNotSelected,
            Skip::UpToDate,
            Skip::MinInterval,
            Skip::Paused,
            Skip::OutsideWindow,
            Skip::Waiting,
            Skip::Held,
            Skip::NotConfirmed,
            Skip::MaxConcurrentRollouts,
        ];
        let labels: std::collections::BTreeSet<&str> = all.iter().map(|s| s.label()).collect();
        assert_eq!(labels.len(), all.len());
        let page = include_str!("../../../docs/src/rolling-safely.md");
        for l in [
            "paused",
            "outside_window",
            "waiting",
            "held",
            "max_concurrent_rollouts",
        ] {
            assert!(labels.contains(l), "{l}");
            assert!(page.contains(&format!("`{l}`")), "{l} not on the page");
        }
        // what a check that waits says in the log is what e2e_gates and e2e_ha read
        assert_eq!(
            Skip::OutsideWindow.says(),
            Some("roll waits for its window")
        );
        assert!(Skip::UpToDate.says().is_none());
    }
}
