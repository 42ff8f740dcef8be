//! Where a workload's rollout stands, read off the fields its controller writes: what a
//! later wave waits for and what stops one.

use serde_json::Value;

/// Where a workload's rollout stands, as its controller reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Health {
    /// complete (or a kind whose roll is done once written: a Job, a CronJob)
    #[default]
    Complete,
    Progressing,
    /// the controller gave up (a Deployment's ProgressDeadlineExceeded, a Rollout Degraded)
    Failed,
}

fn int(v: &Value, path: &[&str]) -> Option<i64> {
    path.iter().try_fold(v, |v, p| v.get(*p))?.as_i64()
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, p| v.get(*p))?.as_str()
}

/// The rollout health of an object of `kind` (as named in the kind table: `Deployment`,
/// `StatefulSet`, `DaemonSet`, `Rollout`; anything else is complete once written) from its
/// fields (`spec`, `status`) and `metadata.generation`.
pub(crate) fn health(kind: &str, data: &Value, generation: Option<i64>) -> Health {
    let status = data.get("status").unwrap_or(&Value::Null);
    let observed = int(status, &["observedGeneration"]).unwrap_or(0);
    let caught_up = generation.is_none_or(|g| observed >= g);
    let replicas = int(data, &["spec", "replicas"]).unwrap_or(1);
    let n = |k: &str| int(status, &[k]).unwrap_or(0);
    match kind {
        "Deployment" => {
            let deadline = status
                .get("conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|c| {
                    text(c, &["type"]) == Some("Progressing")
                        && text(c, &["reason"]) == Some("ProgressDeadlineExceeded")
                });
            if deadline {
                Health::Failed
            } else if caught_up
                && n("updatedReplicas") >= replicas
                && n("replicas") <= replicas
                && n("availableReplicas") >= replicas
            {
                Health::Complete
            } else {
                Health::Progressing
            }
        }
        "StatefulSet" => {
            let revisions = text(status, &["updateRevision"])
                .is_none_or(|u| text(status, &["currentRevision"]) == Some(u));
            if caught_up && revisions && n("readyReplicas") >= replicas {
                Health::Complete
            } else {
                Health::Progressing
            }
        }
        "DaemonSet" => {
            let desired = n("desiredNumberScheduled");
            if caught_up
                && n("updatedNumberScheduled") >= desired
                && n("numberAvailable") >= desired
            {
                Health::Complete
            } else {
                Health::Progressing
            }
        }
        "Rollout" => match text(status, &["phase"]) {
            Some("Healthy") => Health::Complete,
            Some("Degraded") => Health::Failed,
            _ => Health::Progressing,
        },
        _ => Health::Complete,
    }
}
