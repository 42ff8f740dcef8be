//! Why a write did not land ([`WriteError`]) and what comes next ([`next_step`]): the
//! roller's retry policy as a pure function of the error and the attempts so far (the
//! shape of kube-rs controllers' `error_policy`), so the table below is the policy.

use std::time::Duration;

use super::queue::backoff;
use super::workloads::WorkloadKey;

/// Why a write did not land; the roller decides from the variant what to do next.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    /// our copy is stale (409): re-read, then retry soon
    #[error("patch of {0} conflicted: {1}")]
    Conflict(String, kube::Error),
    /// the workload is gone (404)
    #[error("{0} is gone")]
    Gone(String),
    #[error("patch of {0} failed: {1}")]
    Patch(String, kube::Error),
    #[error("cannot refresh source {0}: {1}")]
    Source(String, kube::Error),
    #[error("this replica does not hold the lease")]
    NotLeader,
}

impl WriteError {
    /// A short label for logs and metrics.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            WriteError::Conflict(..) => "conflict",
            WriteError::Gone(_) => "gone",
            WriteError::Patch(..) => "patch",
            WriteError::Source(..) => "source",
            WriteError::NotLeader => "not_leader",
        }
    }

    /// Refused for good: the same request will be refused again until someone changes
    /// RBAC, a policy or the object (403, 400, 405, 422).
    pub(crate) fn is_permanent(&self) -> bool {
        match self {
            WriteError::Patch(_, kube::Error::Api(a)) => matches!(a.code, 400 | 403 | 405 | 422),
            _ => false,
        }
    }

    pub(super) fn of_patch(key: &WorkloadKey, e: kube::Error) -> WriteError {
        match &e {
            kube::Error::Api(a) if a.code == 409 => WriteError::Conflict(key.to_string(), e),
            kube::Error::Api(a) if a.code == 404 => WriteError::Gone(key.to_string()),
            _ => WriteError::Patch(key.to_string(), e),
        }
    }
}

/// What the roller does after a failed task.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Next {
    /// the workload is gone: forget it
    Forget,
    /// not ours to do (a follower): whoever leads next reconciles everything
    Leave,
    /// try again after `delay`; `refresh` first when our copy is stale
    Retry { delay: Duration, refresh: bool },
}

/// After `e` on attempt `attempts` (1 for the first failure): what comes next. `jitter`
/// (0.75 to 1.25, drawn by the caller) spreads the backoff of transient errors so retries
/// do not march together; `permanent_retry` is `--permanent-error-retry`.
pub(crate) fn next_step(
    e: &WriteError,
    attempts: u32,
    permanent_retry: Duration,
    jitter: f64,
) -> Next {
    match e {
        WriteError::Gone(_) => Next::Forget,
        WriteError::NotLeader => Next::Leave,
        // our copy is stale: read the workload again, then retry at once
        WriteError::Conflict(..) => Next::Retry {
            delay: Duration::from_millis(20),
            refresh: true,
        },
        // refused for good (RBAC, a policy, an invalid object): asked again slowly, never
        // dropped while the workload exists
        e if e.is_permanent() => Next::Retry {
            delay: permanent_retry,
            refresh: false,
        },
        // 429, 5xx, timeouts: capped backoff, jittered
        WriteError::Patch(..) | WriteError::Source(..) => Next::Retry {
            delay: backoff(attempts).mul_f64(jitter.clamp(0.75, 1.25)),
            refresh: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            message: "m".into(),
            ..Default::default()
        }))
    }

    #[test]
    fn the_retry_policy() {
        let perm = Duration::from_secs(300);
        let retry = |ms: u64, refresh| Next::Retry {
            delay: Duration::from_millis(ms),
            refresh,
        };
        let w = || "deployment/ns/w".to_string();
        let table: Vec<(WriteError, u32, f64, Next)> = vec![
            (WriteError::Gone(w()), 1, 1.0, Next::Forget),
            (WriteError::NotLeader, 5, 1.0, Next::Leave),
            (WriteError::Conflict(w(), api(409)), 1, 1.0, retry(20, true)),
            (
                WriteError::Conflict(w(), api(409)),
                9,
                1.25,
                retry(20, true),
            ),
            // refused for good: the slow retry, whatever the attempts
            (
                WriteError::Patch(w(), api(403)),
                1,
                1.0,
                retry(300_000, false),
            ),
            (
                WriteError::Patch(w(), api(422)),
                30,
                0.75,
                retry(300_000, false),
            ),
            (
                WriteError::Patch(w(), api(400)),
                2,
                1.0,
                retry(300_000, false),
            ),
            // transient: 100 ms doubling, capped at 30 s, times the jitter
            (WriteError::Patch(w(), api(500)), 1, 1.0, retry(200, false)),
            (WriteError::Patch(w(), api(429)), 3, 1.0, retry(800, false)),
            (WriteError::Patch(w(), api(503)), 3, 0.75, retry(600, false)),
            (
                WriteError::Patch(w(), api(500)),
                40,
                1.25,
                retry(37_500, false),
            ),
            (WriteError::Source(w(), api(500)), 1, 1.0, retry(200, false)),
            // a jitter out of range is clamped
            (WriteError::Source(w(), api(500)), 1, 9.0, retry(250, false)),
        ];
        for (e, attempts, jitter, want) in table {
            assert_eq!(
                next_step(&e, attempts, perm, jitter),
                want,
                "{e} on attempt {attempts}"
            );
        }
    }

    #[test]
    fn a_patch_error_is_read_by_its_code() {
        let k = WorkloadKey {
            kind: crate::core::kind::WorkloadKind::Deployment,
            namespace: "ns".into(),
            name: "w".into(),
        };
        assert!(matches!(
            WriteError::of_patch(&k, api(409)),
            WriteError::Conflict(..)
        ));
        assert!(matches!(
            WriteError::of_patch(&k, api(404)),
            WriteError::Gone(_)
        ));
        assert!(WriteError::of_patch(&k, api(403)).is_permanent());
        assert!(!WriteError::of_patch(&k, api(500)).is_permanent());
        assert_eq!(WriteError::of_patch(&k, api(500)).label(), "patch");
    }
}
