//! Jobs and CronJobs in the writer: a Job's template cannot change, so its roll deletes
//! and creates it again (with nothing lost on the way); a CronJob's change can also run
//! a Job now.

use std::time::Duration;

use super::Writer;
use super::events::Reason;
use crate::core::kind::WorkloadKind;
use crate::core::record::Decision;
use crate::core::sync::Recover;
use crate::k8s;
use crate::watcher::batch::{manual_job, no_run_now, recreated_job};
use crate::watcher::retry::{Failed, Verb, WriteError};
use crate::watcher::workloads::{WorkloadEntry, WorkloadKey};

/// A 409 of our own making (the delete is not made): the roller re-reads the workload and
/// checks it again.
fn conflict(message: &str) -> Failed {
    let e = kube::Error::Api(
        kube::core::Status {
            code: 409,
            ..kube::core::Status::failure(message, "Conflict")
        }
        .boxed(),
    );
    Failed::new(Verb::Delete, WorkloadKind::Job, e)
}

/// Whether a 403's message is a ResourceQuota refusal over `count/jobs.batch` alone.
fn only_job_count_quota(message: &str) -> bool {
    let Some(rest) = message.split("exceeded quota:").nth(1) else {
        return false;
    };
    let limited = rest.split("limited:").nth(1).unwrap_or_default();
    let resources: Vec<&str> = limited
        .split(',')
        .filter_map(|r| r.split('=').next())
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect();
    !resources.is_empty()
        && resources
            .iter()
            .all(|r| *r == "count/jobs.batch" || *r == "count/jobs")
}

/// A Job deleted for a roll, to be created again.
#[derive(Clone)]
pub(crate) struct Recreate {
    pub entry: WorkloadEntry,
    job: kube::api::DynamicObject,
}

impl Writer {
    /// Creates the Job a change of a CronJob runs now (see `batch::manual_job`); one that
    /// exists already (a retry of the same change) is left as it is; none for a suspended
    /// CronJob or a busy one that forbids concurrency (`batch::no_run_now`).
    pub(super) async fn run_cronjob(
        &self,
        key: &WorkloadKey,
        decision: &Decision,
    ) -> Result<(), Failed> {
        let Some(token) = decision.token.as_deref() else {
            return Ok(());
        };
        let cronjobs = k8s::api::namespaced(self.client.clone(), &key.namespace, key.kind);
        let cron = cronjobs
            .get(&key.name)
            .await
            .map_err(|e| Failed::new(Verb::Get, key.kind, e))?;
        let cron = k8s::api::to_value(&cron);
        if let Some(why) = no_run_now(&cron) {
            tracing::info!(workload = %key, why, "no Job run for this change; the template takes it");
            return Ok(());
        }
        let Some(job) = manual_job(&cron, &self.state.names.token, token) else {
            tracing::warn!(workload = %key, "the CronJob has no job template; no Job run");
            return Ok(());
        };
        let create = |e| Failed::new(Verb::Create, WorkloadKind::Job, e);
        let job: kube::api::DynamicObject =
            serde_json::from_value(job).map_err(|e| create(kube::Error::SerdeError(e)))?;
        let jobs = k8s::api::namespaced(self.client.clone(), &key.namespace, WorkloadKind::Job);
        let name = job.metadata.name.clone().unwrap_or_default();
        match jobs.create(&k8s::api::post_params(), &job).await {
            Ok(_) => {
                tracing::info!(workload = %key, job = %name, "created a Job from the CronJob");
                Ok(())
            }
            Err(kube::Error::Api(a)) if a.code == 409 => {
                tracing::info!(workload = %key, job = %name, "the Job for this change exists already");
                Ok(())
            }
            Err(e) => Err(create(e)),
        }
    }

    /// A Job's template cannot change: deletes the Job the roll was decided on (guarded by
    /// that object's uid and resourceVersion, so a second check of the same Job cannot
    /// delete the one the first just made; in the background so its pods go with it) and
    /// creates it again with the record and the new token (see `batch::recreated_job`).
    ///
    /// Nothing is lost on the way: the new Job is first created as a server-side dry run
    /// (under another name), so what would refuse it (a policy, a webhook, validation)
    /// refuses before the delete, and the Job stays; once deleted, the Job to create is
    /// kept (`recreating`) until a create lands, retried like any write, with a Warning
    /// Event and `hashroll_jobs_awaiting_recreate` meanwhile. A stop waits for a write under
    /// way, so only a kill between the delete and the create can lose it.
    pub(super) async fn recreate_job(
        &self,
        entry: &WorkloadEntry,
        decision: &Decision,
    ) -> Result<Option<WorkloadEntry>, Failed> {
        let key = &entry.key;
        if let Some(r) = self.awaiting_recreate(key) {
            // deleted by an earlier try: what was kept is created, not what is decided now
            return self.create_again(&r).await;
        }
        let names = &self.state.names;
        let api = k8s::api::namespaced(self.client.clone(), &key.namespace, key.kind);
        let old = api
            .get(&key.name)
            .await
            .map_err(|e| Failed::new(Verb::Get, key.kind, e))?;
        if old.metadata.uid.as_deref() != entry.uid.as_deref()
            || old.metadata.resource_version.as_deref() != entry.resource_version.as_deref()
        {
            // not the object the roll was decided on (made again already, or changed)
            return Err(conflict(
                "the Job changed since the roll was decided; checking it again",
            ));
        }
        let record = decision.record_text();
        let token = decision.token.as_deref().unwrap_or_default();
        let Some(new) = recreated_job(
            &k8s::api::to_value(&old),
            &names.record,
            record.as_deref(),
            &names.token,
            token,
        ) else {
            tracing::warn!(workload = %key, "the Job has no template; not made again");
            return Ok(None);
        };
        let new: kube::api::DynamicObject = serde_json::from_value(new)
            .map_err(|e| Failed::new(Verb::Create, key.kind, kube::Error::SerdeError(e)))?;
        self.dry_run_create(key, &new)
            .await
            .map_err(|e| Failed::new(Verb::DryRunCreate, key.kind, e))?;
        let dp = kube::api::DeleteParams {
            propagation_policy: Some(kube::api::PropagationPolicy::Background),
            preconditions: Some(kube::api::Preconditions {
                uid: entry.uid.as_deref().map(String::from),
                resource_version: entry.resource_version.as_deref().map(String::from),
            }),
            ..Default::default()
        };
        let r = Recreate {
            entry: entry.clone(),
            job: new,
        };
        api.delete(&key.name, &dp)
            .await
            .map_err(|e| Failed::new(Verb::Delete, key.kind, e))?;
        self.keep_recreate(key, Some(r.clone()));
        self.create_again(&r).await
    }

    /// Creates the Job kept for `key` after its delete, if there is one (a retry whose
    /// workload left the store with the delete).
    pub(crate) async fn recreate_kept(&self, key: &WorkloadKey) -> Result<(), WriteError> {
        let Some(r) = self.awaiting_recreate(key) else {
            return Ok(());
        };
        let _under_way = self.state.writer.write();
        if !self.state.writer.is_leader() {
            return Err(WriteError::NotLeader);
        }
        self.limit.wait().await;
        self.create_again(&r)
            .await
            .map(|_| ())
            .map_err(|f| WriteError::of_call(key, f))
    }

    /// The Jobs kept after their delete, not created again yet.
    pub(crate) fn kept_recreates(&self) -> Vec<WorkloadKey> {
        self.recreating.lock().recover().keys().cloned().collect()
    }

    /// The Job kept for `key` after its delete, if its create has not landed yet.
    pub(crate) fn awaiting_recreate(&self, key: &WorkloadKey) -> Option<Recreate> {
        self.recreating.lock().recover().get(key).cloned()
    }

    pub(super) fn keep_recreate(&self, key: &WorkloadKey, r: Option<Recreate>) {
        let mut m = self.recreating.lock().recover();
        match r {
            Some(r) => m.insert(key.clone(), r),
            None => m.remove(key),
        };
        self.state
            .metrics
            .jobs_awaiting_recreate
            .set(m.len() as i64);
    }

    /// A server-side dry run of creating `job` under a name of its own (the real name is
    /// still taken): refused, the Job is not deleted. A refusal by a Job-count quota alone
    /// is not one (the delete frees what the create takes).
    pub(super) async fn dry_run_create(
        &self,
        key: &WorkloadKey,
        job: &kube::api::DynamicObject,
    ) -> Result<(), kube::Error> {
        let api = k8s::api::namespaced(self.client.clone(), &key.namespace, key.kind);
        let mut probe = job.clone();
        let name = probe.metadata.name.clone().unwrap_or_default();
        let head: String = name.chars().take(63 - 9).collect();
        probe.metadata.name = Some(format!("{}-hr-check", head.trim_end_matches(['-', '.'])));
        let pp = kube::api::PostParams {
            dry_run: true,
            ..k8s::api::post_params()
        };
        match api.create(&pp, &probe).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(a)) if a.code == 409 => Ok(()),
            Err(kube::Error::Api(a)) if a.code == 403 && only_job_count_quota(&a.message) => Ok(()),
            Err(e) => {
                tracing::warn!(workload = %key, error = %e, "the Job would not be created again; not deleted");
                Err(e)
            }
        }
    }

    /// Creates the kept Job (the name is free once the old object is gone: a few tries
    /// while it goes); forgets it once created. Refused (a quota, a policy), it stays kept
    /// and the roller retries it, soon at first (`retry`).
    pub(super) async fn create_again(&self, r: &Recreate) -> Result<Option<WorkloadEntry>, Failed> {
        let key = &r.entry.key;
        let api = k8s::api::namespaced(self.client.clone(), &key.namespace, key.kind);
        let mut delay = Duration::from_millis(50);
        let mut attempt = 0;
        loop {
            match api.create(&k8s::api::post_params(), &r.job).await {
                Ok(o) => {
                    tracing::info!(workload = %key, "deleted the Job and created it again");
                    self.keep_recreate(key, None);
                    return Ok(self.entry_of(key.kind, &o));
                }
                Err(kube::Error::Api(a)) if a.code == 409 && attempt < 20 => {
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                Err(e) => {
                    tracing::error!(workload = %key, error = %e, "deleted the Job but cannot create it again yet; kept, will retry");
                    let note = format!(
                        "The Job was deleted for a roll and cannot be created again yet (kept by hashroll, retrying): {e}"
                    );
                    if self.first_failure(key, &note) {
                        self.event(&r.entry, Reason::RecreateFail, note).await;
                    }
                    // a create's 404 is never taken as "gone" (`WriteError::of_call`): the
                    // roller retries until it lands
                    return Err(Failed::new(Verb::Create, key.kind, e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_job_count_quota_refusal_lets_a_job_be_deleted_for_its_recreate() {
        let count = "jobs.batch \"web-hr-check\" is forbidden: exceeded quota: q, requested: count/jobs.batch=1, used: count/jobs.batch=1, limited: count/jobs.batch=1";
        assert!(only_job_count_quota(count));
        let cpu = "exceeded quota: q, requested: count/jobs.batch=1,requests.cpu=1, used: count/jobs.batch=0,requests.cpu=2, limited: count/jobs.batch=5,requests.cpu=2";
        assert!(!only_job_count_quota(cpu));
        assert!(!only_job_count_quota(
            "denied by policy no-jobs: no new Jobs here"
        ));
        assert!(!only_job_count_quota("exceeded quota: q, limited: "));
    }
}
