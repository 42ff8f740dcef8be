//! The slow lane: reviews that may cost more than an ordinary one are answered on one
//! thread of their own, at the lowest CPU priority (nice 19), one at a time.
//!
//! A runtime worker that spends milliseconds on one review (a maximum-size body, a regex
//! over thousands of names) holds up every other review queued on it. On this thread the
//! same work is time-sliced by the kernel, which lets the workers (and so ordinary reviews)
//! run first whenever both want a core: a hostile tenant's reviews take their time, not
//! everyone else's. The queue to the lane is bounded; a request waits for room (within the
//! server's request timeout) rather than taking memory.
//!
//! Our own code for a small thing: tokio's blocking pool would run the work off the workers
//! too, but its threads are shared (their priority cannot be lowered) and many at once.
//! Lowering one thread's priority is the `thread-priority` crate's.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;

use tokio::sync::{mpsc, oneshot};

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Reviews waiting for the lane at most; more wait to be queued.
const QUEUE: usize = 16;

struct Lane {
    jobs: mpsc::Sender<(tokio::runtime::Handle, Job)>,
}

fn lane() -> &'static Lane {
    static LANE: OnceLock<Lane> = OnceLock::new();
    LANE.get_or_init(|| {
        let (jobs, mut rx) = mpsc::channel::<(tokio::runtime::Handle, Job)>(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("hashroll-slow-lane".into())
            .spawn(move || {
                if let Err(e) = thread_priority::set_current_thread_priority(
                    thread_priority::ThreadPriority::Min,
                ) {
                    tracing::warn!(error = ?e, "cannot lower the slow lane's priority");
                }
                while let Some((rt, job)) = rx.blocking_recv() {
                    // the runtime's handle: its timers and the client's connections serve
                    // the job as they would on a worker; a panic is that review's alone
                    let ran =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(job)));
                    if ran.is_err() {
                        tracing::error!("a review on the slow lane panicked");
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the slow lane; such reviews go unanswered");
        }
        Lane { jobs }
    })
}

/// Runs `work` on the slow lane and gives its output; `None` when the job panicked or the
/// lane could not start.
pub(crate) async fn run<T, F>(work: F) -> Option<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let job: Job = Box::pin(async move {
        let _ = tx.send(work.await);
    });
    let rt = tokio::runtime::Handle::current();
    lane().jobs.send((rt, job)).await.ok()?;
    rx.await.ok()
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn work_runs_on_the_lane_thread_and_gives_its_output() {
        let name = super::run(async { std::thread::current().name().map(str::to_string) }).await;
        assert_eq!(name, Some(Some("hashroll-slow-lane".to_string())));
        // the lane goes on after a job
        assert_eq!(super::run(async { 2 + 2 }).await, Some(4));
    }

    #[tokio::test]
    async fn a_panicking_job_is_its_own_loss() {
        let lost: Option<()> = super::run(async { panic!("boom") }).await;
        assert_eq!(lost, None);
        assert_eq!(super::run(async { 7 }).await, Some(7));
    }
}
