//! The slow lane: reviews that may cost more than an ordinary one are answered on a few
//! threads of their own, at the lowest CPU priority (nice 19), taken fairly from the
//! namespaces that asked (see `fair`).
//!
//! A runtime worker that spends milliseconds on one review (a maximum-size body, a regex
//! over thousands of names) holds up every other review queued on it. On these threads the
//! same work is time-sliced by the kernel, which lets the workers (and so ordinary reviews)
//! run first whenever both want a core: a hostile tenant's reviews take their time, not
//! everyone else's. Among the costly reviews themselves, one namespace's flood waits in its
//! own bounded queue and holds at most half of the threads (at least one), so another
//! namespace's review is served within a turn; a review over its namespace's bound (or the
//! bound of all) is not queued at all: [`Lane::run`] says so at once and the caller answers
//! without a patch.
//!
//! Our own code for a small thing: tokio's blocking pool would run the work off the workers
//! too, but its threads are shared (their priority cannot be lowered) and many at once.
//! Lowering a thread's priority is the `thread-priority` crate's.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::fair::{Bounds, FairQueue, Full, Waiting};
use crate::core::sync::Recover;

/// The lane's threads and bounds (`--admission-*` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneConfig {
    /// threads answering costly reviews; one namespace holds at most half of them
    pub threads: usize,
    /// costly reviews of one namespace waiting at most
    pub queue_per_namespace: usize,
    /// costly reviews waiting at most, all namespaces together
    pub queue_total: usize,
}

impl Default for LaneConfig {
    fn default() -> LaneConfig {
        LaneConfig {
            threads: 2,
            queue_per_namespace: 16,
            queue_total: 256,
        }
    }
}

/// Why a review was not answered on the lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unserved {
    /// over a bound: refused at once, nothing ran
    Refused(Full),
    /// the work panicked, or no thread of the lane runs
    Lost,
}

struct Task {
    rt: tokio::runtime::Handle,
    work: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// the caller waiting for the answer; gone when it gave up (its request timed out or
    /// its connection closed), and then the task is dropped unserved
    waiter: Weak<()>,
}

impl Waiting for Task {
    fn abandoned(&self) -> bool {
        self.waiter.strong_count() == 0
    }
}

struct Sched {
    queue: FairQueue<Task>,
    closed: bool,
}

struct Shared {
    sched: Mutex<Sched>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Sched> {
        // the lock is never held while a task runs; a panic under it left the queue whole
        self.sched.lock().recover()
    }
}

/// The slow lane of one router; its threads end when it is dropped.
pub(crate) struct Lane {
    shared: Arc<Shared>,
    threads: usize,
}

impl Lane {
    pub(crate) fn new(cfg: LaneConfig) -> Lane {
        let wanted = cfg.threads.max(1);
        let shared = Arc::new(Shared {
            sched: Mutex::new(Sched {
                queue: FairQueue::new(Bounds {
                    per_flow: cfg.queue_per_namespace,
                    total: cfg.queue_total,
                    running_per_flow: (wanted / 2).max(1),
                }),
                closed: false,
            }),
            wake: Condvar::new(),
        });
        let mut threads = 0;
        for i in 0..wanted {
            let sh = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("hashroll-slow-lane-{i}"))
                .spawn(move || serve(&sh));
            match spawned {
                Ok(_) => threads += 1,
                Err(e) => tracing::error!(error = %e, "cannot start a thread of the slow lane"),
            }
        }
        if threads == 0 {
            tracing::error!("no thread of the slow lane started; costly reviews go unanswered");
        }
        Lane { shared, threads }
    }

    /// Runs `work` on the lane in the turn of `flow` and gives its output; refused at once
    /// when `flow` (or all flows) has as many waiting as allowed.
    pub(crate) async fn run<T, F>(&self, flow: &str, work: F) -> Result<T, Unserved>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        if self.threads == 0 {
            return Err(Unserved::Lost);
        }
        let (tx, rx) = oneshot::channel();
        let waiting = Arc::new(());
        let task = Task {
            rt: tokio::runtime::Handle::current(),
            work: Box::pin(async move {
                let _ = tx.send(work.await);
            }),
            waiter: Arc::downgrade(&waiting),
        };
        let pushed = self.shared.lock().queue.push(flow, task);
        if let Err((full, task)) = pushed {
            drop(task);
            return Err(Unserved::Refused(full));
        }
        self.shared.wake.notify_one();
        let out = rx.await.map_err(|_| Unserved::Lost);
        drop(waiting);
        out
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_all();
    }
}

/// One thread of the lane: the next task by the fair queue's turn, run on the runtime of
/// the review that sent it (its timers and the client's connections serve it as they
/// would on a worker), charged the time it took.
fn serve(shared: &Shared) {
    if let Err(e) =
        thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min)
    {
        tracing::warn!(error = ?e, "cannot lower the slow lane's priority");
    }
    loop {
        let (flow, task) = {
            let mut s = shared.lock();
            loop {
                if s.closed {
                    return;
                }
                if let Some(next) = s.queue.pop() {
                    break next;
                }
                s = shared.wake.wait(s).recover();
            }
        };
        let t0 = Instant::now();
        let Task { rt, work, .. } = task;
        // a panic is that review's alone
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(work)));
        if ran.is_err() {
            tracing::error!("a review on the slow lane panicked");
        }
        shared.lock().queue.done(&flow, t0.elapsed());
        // a flow under its share of the threads again: another idle thread may serve it
        shared.wake.notify_all();
    }
}

/// At most one log line a second for refused reviews, with how many were refused since
/// the last line: a flood of them is a flood of answers, not of log lines.
pub(crate) fn refusal_to_log() -> Option<u64> {
    static REFUSED: AtomicU64 = AtomicU64::new(0);
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    REFUSED.fetch_add(1, Ordering::Relaxed);
    let mut last = LAST.lock().recover();
    if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
        return None;
    }
    *last = Some(Instant::now());
    Some(REFUSED.swap(0, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lane(threads: usize, per_flow: usize) -> Lane {
        Lane::new(LaneConfig {
            threads,
            queue_per_namespace: per_flow,
            queue_total: 64,
        })
    }

    #[tokio::test]
    async fn work_runs_on_a_lane_thread_and_gives_its_output() {
        let l = lane(2, 4);
        let name = l
            .run("ns", async {
                std::thread::current().name().map(str::to_string)
            })
            .await
            .unwrap()
            .unwrap();
        assert!(name.starts_with("hashroll-slow-lane-"), "{name}");
        // the lane goes on after a job
        assert_eq!(l.run("ns", async { 2 + 2 }).await, Ok(4));
    }

    #[tokio::test]
    async fn a_panicking_job_is_its_own_loss() {
        let l = lane(1, 4);
        let lost: Result<(), _> = l.run("ns", async { panic!("boom") }).await;
        assert_eq!(lost, Err(Unserved::Lost));
        assert_eq!(l.run("ns", async { 7 }).await, Ok(7));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flooding_namespace_is_refused_at_once_and_another_is_served_meanwhile() {
        let l = Arc::new(lane(2, 2));
        // the flood: one in service (its share of two threads), two waiting, held until
        // released
        let (release, hold) = tokio::sync::watch::channel(false);
        let (started, mut first_runs) = tokio::sync::mpsc::unbounded_channel();
        let mut flood = Vec::new();
        for i in 0..3 {
            let (l, mut hold, started) = (l.clone(), hold.clone(), started.clone());
            flood.push(tokio::spawn(async move {
                l.run("flood", async move {
                    let _ = started.send(());
                    let _ = hold.wait_for(|r| *r).await;
                })
                .await
            }));
            if i == 0 {
                // the first is in service before the others come
                first_runs.recv().await.unwrap();
            }
        }
        let full = || async {
            let l = l.clone();
            tokio::time::timeout(Duration::from_secs(20), async move {
                loop {
                    if l.shared.lock().queue.waiting() == 2 {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await
            .expect("the flood queued");
        };
        full().await;
        // over its bound: refused, and at once
        let t = Instant::now();
        assert_eq!(
            l.run("flood", async {}).await,
            Err(Unserved::Refused(Full::Flow))
        );
        assert!(t.elapsed() < Duration::from_secs(1));
        // another namespace is served while the flood waits
        let calm = tokio::time::timeout(Duration::from_secs(20), l.run("calm", async { 1 }))
            .await
            .expect("calm served while the flood holds its thread");
        assert_eq!(calm, Ok(1));
        release.send(true).unwrap();
        for f in flood {
            assert_eq!(f.await.unwrap(), Ok(()));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_review_given_up_while_waiting_is_never_run() {
        let l = Arc::new(lane(1, 4));
        let (release, hold) = tokio::sync::watch::channel(false);
        let (started, runs) = tokio::sync::oneshot::channel();
        let busy = {
            let (l, mut hold) = (l.clone(), hold.clone());
            tokio::spawn(async move {
                l.run("ns", async move {
                    let _ = started.send(());
                    let _ = hold.wait_for(|r| *r).await;
                })
                .await
            })
        };
        runs.await.unwrap();
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let r = ran.clone();
        // its caller stops waiting (a request timeout) before its turn
        let gave_up = tokio::time::timeout(
            Duration::from_millis(100),
            l.run("other", async move { r.store(true, Ordering::SeqCst) }),
        )
        .await;
        assert!(gave_up.is_err());
        release.send(true).unwrap();
        assert_eq!(busy.await.unwrap(), Ok(()));
        // the lane takes the next one; the abandoned one was dropped, not run
        assert_eq!(l.run("other", async { 3 }).await, Ok(3));
        assert!(!ran.load(Ordering::SeqCst));
    }
}
