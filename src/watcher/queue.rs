//! The roll queue, pure: which workload is due for which task when, coalescing and
//! backoff. No I/O and no clock of its own (the caller passes `now`), so it is unit-tested
//! with tokio's paused clock.
//!
//! One entry per workload and task: a check never moves a pending resume, nor back, so a
//! backlog of checks cannot delay the end of a pause-period. An earlier schedule stands, so
//! changes within one coalesce window end in one patch. Delays come from tenants'
//! annotations (pause-period): due times are computed with `checked_add` and capped at
//! [`MAX_DELAY`], so no delay can overflow the clock.
//!
//! Tasks are kept by key and, in a second index, by due time: a wake takes what is due
//! and finds the next due time without a scan of the whole queue (thousands of tasks held
//! by a pause or the flap breaker cost nothing per wake).
//!
//! Two lanes: a walk of every workload (the start-up reconcile, a relist, a new leader, a
//! key change; [`Queue::schedule_walk`]) and everything else, fresh (a source or a
//! workload that changed, a retry). A due fresh task is taken before any due task of a
//! walk, so a change made while thousands of unchanged workloads are being checked waits
//! for none of them. A key is queued once: a fresh schedule of a key the walk holds makes
//! it fresh, so the walk does not check it a second time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

/// What to do with a workload when it is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Task {
    /// check the record, roll if due
    Check,
    /// end a pause-period: resume the Deployment
    Resume,
}

/// When a task is due, and how many attempts failed so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pending {
    pub due: Instant,
    pub attempts: u32,
    /// when it was first queued (for the queue and action latency metrics)
    pub queued: Instant,
    /// queued by a walk of every workload, and by nothing fresh since
    pub walk: bool,
}

/// The longest any task is put off (a longer delay is taken as this).
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(366 * 24 * 3600);

/// `now + delay`, with the delay capped at [`MAX_DELAY`]; never panics.
pub(crate) fn due_at(now: Instant, delay: Duration) -> Instant {
    let delay = delay.min(MAX_DELAY);
    now.checked_add(delay)
        .or_else(|| now.checked_add(Duration::from_secs(3600)))
        .unwrap_or(now)
}

/// The wait before retry number `attempts` of a failed write: 100 ms doubling, at most 30 s.
pub(crate) fn backoff(attempts: u32) -> Duration {
    let ms = 100u64.saturating_mul(1u64 << attempts.min(9));
    Duration::from_millis(ms.min(30_000))
}

/// Pending tasks by key.
#[derive(Debug)]
pub(crate) struct Queue<K> {
    pending: BTreeMap<(K, Task), Pending>,
    /// the fresh tasks by due time
    by_due: BTreeSet<(Instant, K, Task)>,
    /// the tasks of a walk by due time
    walk_by_due: BTreeSet<(Instant, K, Task)>,
}

impl<K> Default for Queue<K> {
    fn default() -> Self {
        Queue {
            pending: BTreeMap::new(),
            by_due: BTreeSet::new(),
            walk_by_due: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Clone> Queue<K> {
    /// [`Queue::schedule`] of a task first queued at `queued` (a retry keeps its age).
    pub(crate) fn schedule_since(
        &mut self,
        key: K,
        task: Task,
        now: Instant,
        delay: Duration,
        attempts: u32,
        queued: Instant,
    ) {
        self.put(key, task, due_at(now, delay), attempts, queued, false);
    }

    /// Schedules `task` for `key` now, as part of a walk of every workload: taken after
    /// every due fresh task. A key queued already keeps its lane.
    pub(crate) fn schedule_walk(&mut self, key: K, task: Task, now: Instant) {
        self.put(key, task, now, 0, now, true);
    }

    fn index(&mut self, walk: bool) -> &mut BTreeSet<(Instant, K, Task)> {
        if walk {
            &mut self.walk_by_due
        } else {
            &mut self.by_due
        }
    }

    fn put(
        &mut self,
        key: K,
        task: Task,
        due: Instant,
        attempts: u32,
        queued: Instant,
        walk: bool,
    ) {
        let k = (key, task);
        let p = match self.pending.get_mut(&k) {
            Some(p) => {
                let old = (p.due, k.0.clone(), task);
                let was_walk = p.walk;
                p.due = p.due.min(due);
                p.attempts = p.attempts.max(attempts);
                p.queued = p.queued.min(queued);
                p.walk = p.walk && walk;
                let p = *p;
                self.index(was_walk).remove(&old);
                p
            }
            None => {
                let p = Pending {
                    due,
                    attempts,
                    queued,
                    walk,
                };
                self.pending.insert(k.clone(), p);
                p
            }
        };
        self.index(p.walk).insert((p.due, k.0, task));
    }

    /// Takes the next task due at `now`: the earliest due fresh one, else the earliest
    /// due one of a walk.
    pub(crate) fn take_one_due(&mut self, now: Instant) -> Option<(K, Task, Pending)> {
        for walk in [false, true] {
            let index = self.index(walk);
            if index.first().is_some_and(|(due, _, _)| *due <= now)
                && let Some((_, key, task)) = index.pop_first()
                && let Some(p) = self.pending.remove(&(key.clone(), task))
            {
                return Some((key, task, p));
            }
        }
        None
    }

    /// How long the oldest `task` has waited since it was first queued.
    pub(crate) fn oldest(&self, task: Task, now: Instant) -> Option<Duration> {
        self.pending
            .iter()
            .filter(|((_, t), _)| *t == task)
            .map(|(_, p)| now.saturating_duration_since(p.queued))
            .max()
    }

    /// When the next task is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        let fresh = self.by_due.first().map(|(due, _, _)| *due);
        let walk = self.walk_by_due.first().map(|(due, _, _)| *due);
        fresh.into_iter().chain(walk).min()
    }

    /// Forgets every task of `key` (the workload is gone).
    pub(crate) fn remove(&mut self, key: &K) {
        for task in [Task::Check, Task::Resume] {
            if let Some(p) = self.pending.remove(&(key.clone(), task)) {
                self.index(p.walk).remove(&(p.due, key.clone(), task));
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    /// Test-only views of the type, kept out of its production impl.
    impl<K: Ord + Clone> Queue<K> {
        /// Schedules `task` for `key` after `delay`; an earlier schedule stands.
        pub(crate) fn schedule(
            &mut self,
            key: K,
            task: Task,
            now: Instant,
            delay: Duration,
            attempts: u32,
        ) {
            self.schedule_since(key, task, now, delay, attempts, now);
        }

        /// Takes every task due at `now`, the fresh ones first.
        pub(crate) fn take_due(&mut self, now: Instant) -> Vec<(K, Task, Pending)> {
            std::iter::from_fn(|| self.take_one_due(now)).collect()
        }

        pub(crate) fn is_empty(&self) -> bool {
            self.pending.is_empty()
        }

        /// The due indexes hold the same tasks as the map, each in its lane.
        fn consistent(&self) -> bool {
            let lane = |index: &BTreeSet<(Instant, K, Task)>, walk: bool| {
                index.iter().all(|(due, k, t)| {
                    self.pending
                        .get(&(k.clone(), *t))
                        .is_some_and(|p| p.due == *due && p.walk == walk)
                })
            };
            self.by_due.len() + self.walk_by_due.len() == self.pending.len()
                && lane(&self.by_due, false)
                && lane(&self.walk_by_due, true)
        }
    }

    use super::*;

    const WINDOW: Duration = Duration::from_secs(1);

    /// What the queue must do, as the whole-queue scan it replaced did it.
    fn model_take(
        m: &mut BTreeMap<(u8, Task), Pending>,
        now: Instant,
    ) -> BTreeMap<(u8, Task), Pending> {
        let due: Vec<(u8, Task)> = m
            .iter()
            .filter(|(_, p)| p.due <= now)
            .map(|(k, _)| *k)
            .collect();
        due.into_iter()
            .filter_map(|k| m.remove(&k).map(|p| (k, p)))
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn the_due_index_takes_exactly_what_a_scan_would(
            ops in proptest::collection::vec((0u8..5, 0u8..6, 0u64..5000, 0u32..4), 1..200)
        ) {
            let t0 = Instant::now();
            let mut q = Queue::default();
            let mut m: BTreeMap<(u8, Task), Pending> = BTreeMap::new();
            let mut now = t0;
            for (op, key, ms, attempts) in ops {
                let task = if key % 2 == 0 { Task::Check } else { Task::Resume };
                match op {
                    0 | 1 => {
                        let delay = Duration::from_millis(ms);
                        q.schedule_since(key, task, now, delay, attempts, now);
                        let due = due_at(now, delay);
                        m.entry((key, task))
                            .and_modify(|p| {
                                p.due = p.due.min(due);
                                p.attempts = p.attempts.max(attempts);
                                p.walk = false;
                            })
                            .or_insert(Pending { due, attempts, queued: now, walk: false });
                    }
                    4 => {
                        q.schedule_walk(key, task, now);
                        m.entry((key, task))
                            .and_modify(|p| p.due = p.due.min(now))
                            .or_insert(Pending { due: now, attempts: 0, queued: now, walk: true });
                    }
                    2 => {
                        q.remove(&key);
                        m.remove(&(key, Task::Check));
                        m.remove(&(key, Task::Resume));
                    }
                    _ => {
                        now += Duration::from_millis(ms);
                        let taken = q.take_due(now);
                        // every fresh task before any of a walk
                        let lanes: Vec<bool> = taken.iter().map(|(_, _, p)| p.walk).collect();
                        proptest::prop_assert!(lanes.is_sorted(), "{:?}", lanes);
                        let got: BTreeMap<(u8, Task), Pending> = taken
                            .into_iter()
                            .map(|(k, t, p)| ((k, t), p))
                            .collect();
                        proptest::prop_assert_eq!(got, model_take(&mut m, now));
                    }
                }
                proptest::prop_assert!(q.consistent());
                proptest::prop_assert_eq!(q.len(), m.len());
                proptest::prop_assert_eq!(q.next_due(), m.values().map(|p| p.due).min());
            }
        }
    }

    fn keys(taken: &[(&'static str, Task, Pending)]) -> Vec<(&'static str, Task)> {
        taken.iter().map(|(k, t, _)| (*k, *t)).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn changes_within_the_window_end_in_one_check() {
        let mut q = Queue::default();
        q.schedule("web", Task::Check, Instant::now(), WINDOW, 0);
        tokio::time::advance(Duration::from_millis(400)).await;
        q.schedule("web", Task::Check, Instant::now(), WINDOW, 0);
        assert_eq!(q.len(), 1);
        tokio::time::advance(Duration::from_millis(599)).await;
        assert!(
            q.take_due(Instant::now()).is_empty(),
            "not due before the first window ends"
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        let taken = q.take_due(Instant::now());
        assert_eq!(keys(&taken), [("web", Task::Check)]);
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_schedule_stands() {
        let mut q = Queue::default();
        let t0 = Instant::now();
        q.schedule("a", Task::Check, t0, Duration::from_secs(5), 0);
        q.schedule("a", Task::Check, t0, Duration::from_secs(1), 0);
        assert_eq!(q.next_due(), Some(t0 + Duration::from_secs(1)));
        q.schedule("a", Task::Check, t0, Duration::from_secs(9), 3);
        assert_eq!(q.next_due(), Some(t0 + Duration::from_secs(1)));
        tokio::time::advance(Duration::from_secs(1)).await;
        let taken = q.take_due(Instant::now());
        assert_eq!(taken[0].2.attempts, 3, "the most attempts are kept");
    }

    #[tokio::test(start_paused = true)]
    async fn a_fresh_change_is_taken_ahead_of_a_walk() {
        let mut q = Queue::default();
        let t0 = Instant::now();
        for k in 0..1000u32 {
            q.schedule_walk(k, Task::Check, t0);
        }
        tokio::time::advance(Duration::from_millis(10)).await;
        let now = Instant::now();
        // taken one at a time, as workers free up: two of the walk, then a change comes
        assert_eq!(q.take_one_due(now).map(|t| t.0), Some(0));
        assert_eq!(q.take_one_due(now).map(|t| t.0), Some(1));
        q.schedule(5000, Task::Check, now, Duration::ZERO, 0);
        // ... and one on a workload the walk holds: fresh now, and queued once
        q.schedule(700, Task::Check, now, Duration::ZERO, 0);
        assert_eq!(q.len(), 999);
        let next: Vec<u32> = (0..3)
            .filter_map(|_| q.take_one_due(now))
            .map(|t| t.0)
            .collect();
        assert_eq!(next, [700, 5000, 2]);
        // the walk still finishes, 700 not checked a second time
        let rest: Vec<u32> = q.take_due(now).into_iter().map(|t| t.0).collect();
        assert_eq!(rest.len(), 996);
        assert!(!rest.contains(&700) && rest.contains(&999));
        assert!(q.is_empty() && q.consistent());
    }

    #[tokio::test(start_paused = true)]
    async fn a_walk_does_not_demote_a_fresh_task() {
        let mut q = Queue::default();
        let t0 = Instant::now();
        q.schedule("a", Task::Check, t0, WINDOW, 0);
        q.schedule_walk("b", Task::Check, t0);
        // the walk reaches "a" while its change waits for the window: due now, still fresh
        q.schedule_walk("a", Task::Check, t0);
        assert!(q.consistent());
        let taken: Vec<(&str, bool)> = q
            .take_due(t0)
            .into_iter()
            .map(|(k, _, p)| (k, p.walk))
            .collect();
        assert_eq!(taken, [("a", false), ("b", true)]);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let waits: Vec<u64> = (0..14).map(|a| backoff(a).as_millis() as u64).collect();
        assert_eq!(&waits[..4], &[100, 200, 400, 800]);
        assert!(waits.windows(2).all(|w| w[0] <= w[1]), "{waits:?}");
        assert_eq!(backoff(9), Duration::from_secs(30));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_resume_is_not_delayed_by_a_backlog_of_checks() {
        let mut q = Queue::default();
        let t0 = Instant::now();
        q.schedule("web", Task::Resume, t0, Duration::from_secs(2), 0);
        for i in 0..100 {
            // checks keep coming, some later, some retried
            q.schedule(
                "web",
                Task::Check,
                Instant::now(),
                Duration::from_secs(5),
                i,
            );
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        let taken = q.take_due(Instant::now());
        assert_eq!(keys(&taken), [("web", Task::Resume)]);
        assert_eq!(taken[0].2.due, t0 + Duration::from_secs(2));
        assert_eq!(q.len(), 1, "the check is still pending");
    }

    #[tokio::test(start_paused = true)]
    async fn an_absurd_delay_does_not_overflow_the_clock() {
        let mut q = Queue::default();
        let now = Instant::now();
        q.schedule("x", Task::Resume, now, Duration::MAX, 0);
        q.schedule("y", Task::Check, now, Duration::from_secs(u64::MAX / 2), 0);
        assert_eq!(q.next_due(), Some(now + MAX_DELAY));
        assert!(q.take_due(now + Duration::from_secs(3600)).is_empty());
    }

    #[test]
    fn removing_a_workload_forgets_both_tasks() {
        let mut q = Queue::default();
        let now = Instant::now();
        q.schedule("a", Task::Check, now, Duration::ZERO, 0);
        q.schedule("a", Task::Resume, now, Duration::ZERO, 0);
        q.schedule("b", Task::Check, now, Duration::ZERO, 0);
        q.remove(&"a");
        assert_eq!(keys(&q.take_due(now)), [("b", Task::Check)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_keeps_the_age_of_the_first_queueing() {
        let mut q = Queue::default();
        let t0 = Instant::now();
        q.schedule("a", Task::Check, t0, Duration::ZERO, 0);
        q.schedule("r", Task::Resume, t0, Duration::from_secs(3600), 0);
        tokio::time::advance(Duration::from_secs(5)).await;
        let now = Instant::now();
        let (_, _, p) = q.take_due(now).remove(0);
        assert_eq!(q.oldest(Task::Check, now), None, "taken");
        // it failed: queued again with its first time
        q.schedule_since("a", Task::Check, now, Duration::from_secs(1), 1, p.queued);
        tokio::time::advance(Duration::from_secs(10)).await;
        let now = Instant::now();
        assert_eq!(q.oldest(Task::Check, now), Some(Duration::from_secs(15)));
        // resumes are not checks: a long pause-period is no pending roll
        assert_eq!(q.oldest(Task::Resume, now), Some(Duration::from_secs(15)));
        q.schedule("b", Task::Check, now, Duration::ZERO, 0);
        assert_eq!(q.oldest(Task::Check, now), Some(Duration::from_secs(15)));
    }
}
