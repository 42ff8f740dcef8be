//! Why a write did not land ([`WriteError`]) and what comes next ([`next_step`]): the
//! roller's retry policy as a pure function of the error and the attempts so far (the
//! shape of kube-rs controllers' `error_policy`), so the table below is the policy.
//!
//! Every error names the call that failed ([`Verb`]: a patch, a create, a delete, a read)
//! and what it was made on, so a refused re-create of a Job reads "create of Job ns/name
//! failed", not a patch.
//!
//! The waits, per workload (the attempts are counted per queued task):
//! - a conflict (409): re-read, retry after 20 ms;
//! - refused (400, 403, 405, 422: a ResourceQuota, an admission policy, RBAC, an invalid
//!   object): 1 s doubling per attempt, capped at `--permanent-error-retry` (2 m by
//!   default), jittered. Most refusals are lifted by someone (a quota raised, a Job
//!   finished, a policy fixed), often within seconds, and the first retries come soon
//!   after; one that stays costs at most one call per workload per cap. client-go's default
//!   controller limiter starts at 5 ms: right for a conflict, but it would spend eight calls
//!   a workload in the first second against a refusal that a quota or policy does not lift
//!   that fast, and a policy that refuses a thousand workloads would make that a storm;
//! - transient (429, 5xx, timeouts, a create answered 404): 100 ms doubling to 30 s,
//!   jittered.
//!
//! client-go's overall bucket (10 qps, burst 100) is the writer's global rate limit here:
//! every write, a retry included, waits for the next slot of `--max-rollouts-per-second`,
//! so however many workloads back off at once, their retries reach the apiserver no faster
//! than their rolls would.

use std::time::Duration;

use super::queue::backoff;
use super::workloads::WorkloadKey;
use crate::core::kind::WorkloadKind;

/// The apiserver call a write made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Get,
    Patch,
    Create,
    /// a server-side dry run of a create (a Job's re-create, checked before its delete)
    DryRunCreate,
    Delete,
}

impl Verb {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Patch => "patch",
            Verb::Create => "create",
            Verb::DryRunCreate => "dry-run create",
            Verb::Delete => "delete",
        }
    }

    /// The metric and log label of a failed call (a dry run counts as a create).
    fn label(self) -> &'static str {
        match self {
            Verb::DryRunCreate => "create",
            v => v.as_str(),
        }
    }
}

impl std::fmt::Display for Verb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A call of the writer that failed: which call, on which kind (a CronJob's run creates a
/// Job), and the apiserver's answer.
#[derive(Debug)]
pub(crate) struct Failed {
    pub verb: Verb,
    pub kind: WorkloadKind,
    pub err: kube::Error,
}

impl Failed {
    pub(crate) fn new(verb: Verb, kind: WorkloadKind, err: kube::Error) -> Failed {
        Failed { verb, kind, err }
    }
}

/// Why a write did not land; the roller decides from the variant what to do next.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    /// our copy is stale (409): re-read, then retry soon
    #[error("{verb} of {target} conflicted: {err}")]
    Conflict {
        verb: Verb,
        target: String,
        err: kube::Error,
    },
    /// the workload is gone (404)
    #[error("{0} is gone")]
    Gone(String),
    /// a call refused or failed: `target` names the kind and the workload
    #[error("{verb} of {target} failed: {err}")]
    Call {
        verb: Verb,
        target: String,
        err: kube::Error,
    },
    #[error("cannot refresh source {0}: {1}")]
    Source(String, kube::Error),
    #[error("this replica does not hold the lease")]
    NotLeader,
}

impl WriteError {
    /// A short label for logs and metrics: the call that failed, or why.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            WriteError::Conflict { .. } => "conflict",
            WriteError::Gone(_) => "gone",
            WriteError::Call { verb, .. } => verb.label(),
            WriteError::Source(..) => "source",
            WriteError::NotLeader => "not_leader",
        }
    }

    /// Refused: the same request is refused again until someone changes a quota, a
    /// policy, RBAC or the object (403, 400, 405, 422).
    pub(crate) fn is_refused(&self) -> bool {
        match self {
            WriteError::Call {
                err: kube::Error::Api(a),
                ..
            } => matches!(a.code, 400 | 403 | 405 | 422),
            _ => false,
        }
    }

    /// The error of a call made for `key`, by its code: 409 a conflict, 404 gone (but of
    /// a create: the name is free, so a 404 there is the namespace's, and retried).
    pub(crate) fn of_call(key: &WorkloadKey, f: Failed) -> WriteError {
        let target = if f.kind == key.kind {
            format!("{} {}/{}", f.kind, key.namespace, key.name)
        } else {
            format!(
                "a {} for {} {}/{}",
                f.kind, key.kind, key.namespace, key.name
            )
        };
        let code = match &f.err {
            kube::Error::Api(a) => Some(a.code),
            _ => None,
        };
        match code {
            Some(409) => WriteError::Conflict {
                verb: f.verb,
                target,
                err: f.err,
            },
            Some(404) if !matches!(f.verb, Verb::Create | Verb::DryRunCreate) => {
                WriteError::Gone(key.to_string())
            }
            _ => WriteError::Call {
                verb: f.verb,
                target,
                err: f.err,
            },
        }
    }

    /// [`WriteError::of_call`] of a patch of `key` itself.
    pub(crate) fn of_patch(key: &WorkloadKey, e: kube::Error) -> WriteError {
        WriteError::of_call(key, Failed::new(Verb::Patch, key.kind, e))
    }
}

/// The first wait after a refused write.
pub(crate) const REFUSED_FIRST: Duration = Duration::from_secs(1);

/// The wait before retry number `attempts` (1 for the first) of a refused write: 1 s
/// doubling, at most `cap`.
pub(crate) fn refused_backoff(attempts: u32, cap: Duration) -> Duration {
    let shift = attempts.saturating_sub(1).min(20);
    REFUSED_FIRST.saturating_mul(1 << shift).min(cap)
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
/// (0.75 to 1.25, drawn by the caller) spreads the backoffs so retries do not march
/// together; `refused_cap` is `--permanent-error-retry`, the longest wait of a refused
/// write.
pub(crate) fn next_step(e: &WriteError, attempts: u32, refused_cap: Duration, jitter: f64) -> Next {
    let jitter = jitter.clamp(0.75, 1.25);
    match e {
        WriteError::Gone(_) => Next::Forget,
        WriteError::NotLeader => Next::Leave,
        // our copy is stale: read the workload again, then retry at once
        WriteError::Conflict { .. } => Next::Retry {
            delay: Duration::from_millis(20),
            refresh: true,
        },
        // refused (a quota, a policy, RBAC, an invalid object): soon at first, then
        // slower, never dropped while the workload exists
        e if e.is_refused() => Next::Retry {
            delay: refused_backoff(attempts, refused_cap)
                .mul_f64(jitter)
                .min(refused_cap),
            refresh: false,
        },
        // 429, 5xx, timeouts: capped backoff, jittered
        WriteError::Call { .. } | WriteError::Source(..) => Next::Retry {
            delay: backoff(attempts).mul_f64(jitter),
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

    fn call(verb: Verb, code: u16) -> WriteError {
        WriteError::Call {
            verb,
            target: "Deployment ns/w".into(),
            err: api(code),
        }
    }

    #[test]
    fn the_retry_policy() {
        let cap = Duration::from_secs(120);
        let retry = |ms: u64, refresh| Next::Retry {
            delay: Duration::from_millis(ms),
            refresh,
        };
        let w = || "deployment/ns/w".to_string();
        let conflict = || WriteError::Conflict {
            verb: Verb::Patch,
            target: w(),
            err: api(409),
        };
        let table: Vec<(WriteError, u32, f64, Next)> = vec![
            (WriteError::Gone(w()), 1, 1.0, Next::Forget),
            (WriteError::NotLeader, 5, 1.0, Next::Leave),
            (conflict(), 1, 1.0, retry(20, true)),
            (conflict(), 9, 1.25, retry(20, true)),
            // refused (a quota, a policy): 1 s doubling, capped at the flag
            (call(Verb::Create, 403), 1, 1.0, retry(1_000, false)),
            (call(Verb::Create, 403), 2, 1.0, retry(2_000, false)),
            (call(Verb::Create, 403), 3, 1.0, retry(4_000, false)),
            (call(Verb::Patch, 422), 4, 0.75, retry(6_000, false)),
            (call(Verb::Patch, 400), 5, 1.25, retry(20_000, false)),
            (call(Verb::Patch, 405), 7, 1.0, retry(64_000, false)),
            (call(Verb::Create, 403), 8, 1.0, retry(120_000, false)),
            // the jitter never takes a wait past the cap
            (call(Verb::Create, 403), 8, 1.25, retry(120_000, false)),
            (
                call(Verb::DryRunCreate, 403),
                30,
                1.0,
                retry(120_000, false),
            ),
            (call(Verb::Patch, 403), u32::MAX, 1.0, retry(120_000, false)),
            // transient: 100 ms doubling, capped at 30 s, times the jitter
            (call(Verb::Patch, 500), 1, 1.0, retry(200, false)),
            (call(Verb::Patch, 429), 3, 1.0, retry(800, false)),
            (call(Verb::Create, 503), 3, 0.75, retry(600, false)),
            (call(Verb::Patch, 500), 40, 1.25, retry(37_500, false)),
            // a create answered 404 (its namespace going): retried, not forgotten
            (call(Verb::Create, 404), 1, 1.0, retry(200, false)),
            (WriteError::Source(w(), api(500)), 1, 1.0, retry(200, false)),
            // a jitter out of range is clamped
            (WriteError::Source(w(), api(500)), 1, 9.0, retry(250, false)),
        ];
        for (e, attempts, jitter, want) in table {
            assert_eq!(
                next_step(&e, attempts, cap, jitter),
                want,
                "{e} on attempt {attempts}"
            );
        }
    }

    #[test]
    fn a_short_cap_bounds_the_first_refused_wait_too() {
        let cap = Duration::from_millis(1_500);
        let waits: Vec<u128> = (1..5)
            .map(|a| refused_backoff(a, cap).as_millis())
            .collect();
        assert_eq!(waits, [1_000, 1_500, 1_500, 1_500]);
    }

    #[test]
    fn an_error_is_read_by_its_code_and_names_its_call() {
        use crate::core::kind::WorkloadKind;
        let k = WorkloadKey {
            kind: WorkloadKind::Job,
            namespace: "ns".into(),
            name: "w".into(),
        };
        let of = |verb, kind, code| WriteError::of_call(&k, Failed::new(verb, kind, api(code)));
        let job = WorkloadKind::Job;
        assert!(matches!(
            of(Verb::Patch, job, 409),
            WriteError::Conflict { .. }
        ));
        assert!(matches!(of(Verb::Patch, job, 404), WriteError::Gone(_)));
        assert!(matches!(of(Verb::Get, job, 404), WriteError::Gone(_)));
        assert!(matches!(
            of(Verb::Create, job, 404),
            WriteError::Call { .. }
        ));
        assert!(of(Verb::Create, job, 403).is_refused());
        assert!(!of(Verb::Create, job, 500).is_refused());
        assert!(!of(Verb::Patch, job, 409).is_refused());
        let refused = of(Verb::Create, job, 403);
        assert_eq!(refused.label(), "create");
        assert!(
            refused.to_string().starts_with("create of Job ns/w failed"),
            "{refused}"
        );
        assert_eq!(of(Verb::Patch, job, 500).label(), "patch");
        assert_eq!(of(Verb::DryRunCreate, job, 403).label(), "create");
        // a CronJob's run creates a Job: the message names both
        let cron = WorkloadKey {
            kind: WorkloadKind::CronJob,
            ..k.clone()
        };
        let run = WriteError::of_call(&cron, Failed::new(Verb::Create, job, api(403)));
        assert!(
            run.to_string()
                .starts_with("create of a Job for CronJob ns/w failed"),
            "{run}"
        );
    }
}
