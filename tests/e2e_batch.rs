//! CronJobs and Jobs on the real plane (its kube-controller-manager runs the cronjob and
//! job controllers; kwok runs the pods). One table of opt-in styles, run for each kind:
//! stamped at admission; a change makes exactly one manual Job of a CronJob (its template
//! carrying the new token) or makes a Job again once; a no-op edit and a restart make
//! nothing; `--ignored-workload-types` turns a kind off.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::{Api, ListParams};
use support::*;

const TOKEN: &str = "hashroll.dev/config-hash";

/// The opt-in styles each kind is run with: annotations on the workload, and whether the
/// pod template references the ConfigMap.
const STYLES: [(&str, &str, bool); 3] = [
    ("auto", r#"reloader.stakater.com/auto: "true""#, true),
    (
        "list",
        r#"configmap.reloader.stakater.com/reload: "cfg""#,
        false,
    ),
    ("search", r#"reloader.stakater.com/search: "true""#, true),
];

fn pod(uses_cfg: bool) -> String {
    let env = if uses_cfg {
        ", envFrom: [{configMapRef: {name: cfg}}]"
    } else {
        ""
    };
    format!(
        "template:\n      spec:\n        restartPolicy: Never\n        containers: [{{name: c, image: busybox{env}}}]"
    )
}

fn cfg_yaml(v: &str, matched: bool) -> String {
    let ann = if matched {
        "\n  annotations: {reloader.stakater.com/match: \"true\"}"
    } else {
        ""
    };
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg{ann}\ndata: {{k: '{v}'}}\n")
}

fn cronjob_yaml(name: &str, ann: &str, uses_cfg: bool) -> String {
    // a schedule far away: every Job in the test is one hashroll made
    format!(
        r#"apiVersion: batch/v1
kind: CronJob
metadata:
  name: {name}
  annotations: {{{ann}}}
spec:
  schedule: "0 0 1 1 *"
  jobTemplate:
    spec:
      {}
"#,
        pod(uses_cfg).replace("\n", "\n    ")
    )
}

fn job_yaml(name: &str, ann: &str, uses_cfg: bool) -> String {
    format!(
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
  annotations: {{{ann}}}
spec:
  {}
"#,
        pod(uses_cfg).replace("\n    ", "\n  ")
    )
}
async fn jobs_owned_by(client: &kube::Client, ns: &str, cron: &str) -> Vec<Job> {
    Api::<Job>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("list jobs")
        .items
        .into_iter()
        .filter(|j| {
            j.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.kind == "CronJob" && o.name == cron)
        })
        .collect()
}

fn cron_token(c: &CronJob) -> Option<String> {
    c.spec
        .job_template
        .spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(TOKEN)
        .cloned()
}

fn job_token(j: &Job) -> Option<String> {
    j.spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(TOKEN)
        .cloned()
}

/// Asserts the CronJob's Jobs stay exactly `want` over `settle`.
async fn assert_jobs_stay(
    client: &kube::Client,
    ns: &str,
    cron: &str,
    want: usize,
    settle: Duration,
) {
    holds_for(settle, || async {
        let n = jobs_owned_by(client, ns, cron).await.len();
        assert_eq!(n, want, "Jobs of cronjob/{cron} in {ns}");
    })
    .await;
}

#[tokio::test]
async fn a_cronjob_change_runs_one_job_per_change_for_every_opt_in_style() {
    let client = client().await;
    let ns = namespace("cron");
    let mut h = Hashroll::for_namespace(&ns, &[]).await;
    let crons = Api::<CronJob>::namespaced(client.clone(), &ns);
    let mut yaml = cfg_yaml("1", true);
    for (style, ann, uses) in STYLES {
        yaml.push_str("---\n");
        yaml.push_str(&cronjob_yaml(&format!("cj-{style}"), ann, uses));
    }
    kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &yaml);
    // stamped at admission: record on the CronJob, token on its job template
    let mut first = BTreeMap::new();
    for (style, _, _) in STYLES {
        let name = format!("cj-{style}");
        let c = crons.get(&name).await.unwrap();
        let rec = record_of(c.metadata.annotations.as_ref()).unwrap_or_default();
        assert!(rec.contains_key("configmap/cfg"), "{name}: record {rec:?}");
        let token = cron_token(&c).unwrap_or_else(|| panic!("{name}: no token"));
        first.insert(name, token);
    }
    for (style, _, _) in STYLES {
        assert_jobs_stay(&client, &ns, &format!("cj-{style}"), 0, Duration::ZERO).await;
    }

    set_cfg(&ns, "2");
    for (style, _, _) in STYLES {
        let name = format!("cj-{style}");
        // hashroll creates the Job first and then patches the CronJob (a patch that meets
        // the cronjob controller's status write is retried), so the two are awaited apart:
        // no order between them is promised
        let jobs = wait_for(&format!("a Job of {name}"), DEADLINE, || async {
            let j = jobs_owned_by(&client, &ns, &name).await;
            (!j.is_empty()).then_some(j)
        })
        .await;
        let token = wait_for(&format!("the new token on {name}"), DEADLINE, || async {
            cron_token(&crons.get(&name).await.ok()?).filter(|t| Some(t) != first.get(&name))
        })
        .await;
        let job = &jobs[0];
        assert_eq!(
            job_token(job).as_deref(),
            Some(token.as_str()),
            "{name}: the Job runs the new template"
        );
        let ann = job.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(
            ann.get("cronjob.kubernetes.io/instantiate")
                .map(String::as_str),
            Some("manual")
        );
    }
    // exactly one per change: not again on a no-op edit, nor after a restart
    kubectl(&["label", "configmap", "cfg", "-n", &ns, "touched=yes"]);
    for (style, _, _) in STYLES {
        assert_jobs_stay(&client, &ns, &format!("cj-{style}"), 1, SETTLE).await;
    }
    h.restart().await;
    for (style, _, _) in STYLES {
        assert_jobs_stay(&client, &ns, &format!("cj-{style}"), 1, SETTLE).await;
    }
    // a second change: a second Job
    set_cfg(&ns, "3");
    for (style, _, _) in STYLES {
        let name = format!("cj-{style}");
        wait_for(&format!("a second Job of {name}"), DEADLINE, || async {
            (jobs_owned_by(&client, &ns, &name).await.len() >= 2).then_some(())
        })
        .await;
        assert_jobs_stay(&client, &ns, &name, 2, Duration::ZERO).await;
    }
    assert!(!h.log().contains("panicked"), "{}", h.log());
}

#[tokio::test]
async fn cronjob_run_can_be_turned_off_and_cronjobs_ignored() {
    let client = client().await;
    let ns = namespace("cronoff");
    let h = Hashroll::for_namespace(&ns, &["--cronjob-run-on-change=false"]).await;
    let yaml = format!(
        "{}---\n{}",
        cfg_yaml("1", false),
        cronjob_yaml("quiet", r#"reloader.stakater.com/auto: "true""#, true)
    );
    kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &yaml);
    let crons = Api::<CronJob>::namespaced(client.clone(), &ns);
    let t1 = cron_token(&crons.get("quiet").await.unwrap()).expect("stamped");
    set_cfg(&ns, "2");
    wait_for("the template's new token", DEADLINE, || async {
        cron_token(&crons.get("quiet").await.ok()?).filter(|t| *t != t1)
    })
    .await;
    assert_jobs_stay(&client, &ns, "quiet", 0, SETTLE).await;
    drop(h);

    // a suspended CronJob gets the new template but runs no Job
    let ns = namespace("cronsusp");
    let _h = Hashroll::for_namespace(&ns, &[]).await;
    let yaml = format!(
        "{}---\n{}",
        cfg_yaml("1", false),
        cronjob_yaml("asleep", r#"reloader.stakater.com/auto: "true""#, true)
            .replace("  schedule:", "  suspend: true\n  schedule:")
    );
    kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &yaml);
    let crons = Api::<CronJob>::namespaced(client.clone(), &ns);
    let t1 = cron_token(&crons.get("asleep").await.unwrap()).expect("stamped");
    set_cfg(&ns, "2");
    wait_for("the suspended CronJob's new token", DEADLINE, || async {
        cron_token(&crons.get("asleep").await.ok()?).filter(|t| *t != t1)
    })
    .await;
    assert_jobs_stay(&client, &ns, "asleep", 0, SETTLE).await;

    // --ignored-workload-types=cronjobs: neither stamped nor rolled
    let ns = namespace("cronign");
    let _h = Hashroll::for_namespace(&ns, &["--ignored-workload-types=jobs,cronjobs"]).await;
    let yaml = format!(
        "{}---\n{}",
        cfg_yaml("1", false),
        cronjob_yaml("ignored", r#"reloader.stakater.com/auto: "true""#, true)
    );
    kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &yaml);
    let crons = Api::<CronJob>::namespaced(client.clone(), &ns);
    assert_eq!(cron_token(&crons.get("ignored").await.unwrap()), None);
    set_cfg(&ns, "2");
    assert_jobs_stay(&client, &ns, "ignored", 0, SETTLE).await;
    let c = crons.get("ignored").await.unwrap();
    assert_eq!(record_of(c.metadata.annotations.as_ref()), None);
}

#[tokio::test]
async fn an_opted_in_job_is_made_again_once_per_change() {
    let client = client().await;
    let ns = namespace("job");
    let mut h = Hashroll::for_namespace(&ns, &[]).await;
    let jobs = Api::<Job>::namespaced(client.clone(), &ns);
    let mut yaml = cfg_yaml("1", true);
    for (style, ann, uses) in STYLES {
        yaml.push_str("---\n");
        yaml.push_str(&job_yaml(&format!("job-{style}"), ann, uses));
    }
    // a Job that does not opt in is never touched
    yaml.push_str("---\n");
    yaml.push_str(&job_yaml("job-plain", "", true));
    kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &yaml);
    let uid = |j: &Job| j.metadata.uid.clone().unwrap_or_default();
    let mut before = BTreeMap::new();
    for (style, _, _) in STYLES {
        let name = format!("job-{style}");
        let j = jobs.get(&name).await.unwrap();
        assert!(job_token(&j).is_some(), "{name}: stamped at admission");
        before.insert(name, (uid(&j), job_token(&j)));
    }
    let plain = uid(&jobs.get("job-plain").await.unwrap());

    set_cfg(&ns, "2");
    let mut after = BTreeMap::new();
    for (style, _, _) in STYLES {
        let name = format!("job-{style}");
        let old = before[&name].0.clone();
        let j = wait_for(&format!("{name} made again"), DEADLINE, || async {
            jobs.get(&name).await.ok().filter(|j| uid(j) != old)
        })
        .await;
        assert_ne!(job_token(&j), before[&name].1, "{name}: a new token");
        // what the apiserver generated for the old Job is not carried over
        let labels = j
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .clone()
            .unwrap_or_default();
        assert!(
            labels
                .get("batch.kubernetes.io/controller-uid")
                .map(String::as_str)
                != Some(old.as_str())
        );
        after.insert(name, uid(&j));
    }
    // once: a no-op edit and a restart leave every Job as it is
    kubectl(&["label", "configmap", "cfg", "-n", &ns, "touched=yes"]);
    h.restart().await;
    holds_for(SETTLE, || async {
        for (name, u) in &after {
            assert_eq!(
                &uid(&jobs.get(name).await.unwrap()),
                u,
                "{name} made again twice"
            );
        }
        assert_eq!(uid(&jobs.get("job-plain").await.unwrap()), plain);
    })
    .await;
    assert!(!h.log().contains("panicked"), "{}", h.log());
}

/// A ValidatingAdmissionPolicy (and its binding) refusing every Job create in `ns`.
fn no_new_jobs(ns: &str) -> String {
    format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: no-jobs-{ns}}}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - {{apiGroups: [batch], apiVersions: [v1], operations: [CREATE], resources: [jobs]}}
    namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {ns}}}}}
  validations:
  - {{expression: "false", message: "no new Jobs in {ns}"}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: no-jobs-{ns}}}
spec: {{policyName: no-jobs-{ns}, validationActions: [Deny]}}
"#
    )
}

#[tokio::test]
async fn a_job_whose_new_copy_would_be_refused_is_not_deleted_and_comes_back_later() {
    let client = client().await;
    let ns = namespace("job-refused");
    let _h = Hashroll::for_namespace(&ns, &["--permanent-error-retry=3s"]).await;
    let jobs = Api::<Job>::namespaced(client.clone(), &ns);
    let mut yaml = cfg_yaml("1", true);
    yaml.push_str("---\n");
    yaml.push_str(&job_yaml(
        "job",
        r#"reloader.stakater.com/auto: "true""#,
        true,
    ));
    kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &yaml);
    let first = jobs.get("job").await.unwrap();
    let uid = |j: &Job| j.metadata.uid.clone().unwrap_or_default();
    // creates of Jobs are refused in the namespace (once the policy is in force)
    let policy = no_new_jobs(&ns);
    kubectl_stdin(&["apply", "-f", "-"], &policy);
    let probe = job_yaml("probe", "", false);
    wait_for("the policy to refuse Job creates", DEADLINE, || async {
        plane()
            .kubectl_stdin(
                &["create", "-n", &ns, "--dry-run=server", "-f", "-"],
                &probe,
            )
            .is_err()
            .then_some(())
    })
    .await;
    set_cfg(&ns, "2");
    // the roll is refused before the delete: a ReloadFail Event, and the Job stays
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), &ns);
    wait_for("a ReloadFail Event on the Job", DEADLINE, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("ReloadFail")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("job")
            })
            .then_some(())
    })
    .await;
    holds_for(SETTLE, || async {
        let j = jobs.get("job").await.expect("the Job is still there");
        assert_eq!(uid(&j), uid(&first), "the Job was deleted");
    })
    .await;
    // creates allowed again: the Job is made again, once, with the new token
    kubectl_stdin(&["delete", "-f", "-"], &policy);
    let again = wait_for("the Job made again", DEADLINE, || async {
        jobs.get("job").await.ok().filter(|j| uid(j) != uid(&first))
    })
    .await;
    assert_ne!(job_token(&again), job_token(&first));
}

/// A ResourceQuota allowing `jobs` Jobs in `ns`.
fn job_quota(jobs: u32) -> String {
    format!(
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {{name: jobs}}\nspec: {{hard: {{count/jobs.batch: \"{jobs}\"}}}}\n"
    )
}

#[tokio::test]
async fn a_job_whose_re_create_is_refused_by_a_quota_comes_back_soon_after_it_is_lifted() {
    let client = client().await;
    let ns = namespace("job-quota");
    // the default --permanent-error-retry (2m): the first retries of a refusal still come
    // within seconds
    let h = Hashroll::for_namespace(&ns, &[]).await;
    let jobs = Api::<Job>::namespaced(client.clone(), &ns);
    let mut yaml = cfg_yaml("1", true);
    yaml.push_str("---\n");
    yaml.push_str(&job_yaml(
        "job",
        r#"reloader.stakater.com/auto: "true""#,
        true,
    ));
    kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &yaml);
    let first = jobs.get("job").await.unwrap();
    let uid = |j: &Job| j.metadata.uid.clone().unwrap_or_default();
    // no new Job in the namespace. The plane runs no quota controller: its status (what
    // quota admission reads) is set here as the controller would, counting the one Job
    kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &job_quota(0));
    kubectl(&[
        "patch",
        "resourcequota",
        "jobs",
        "-n",
        &ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status": {"hard": {"count/jobs.batch": "0"}, "used": {"count/jobs.batch": "1"}}}"#,
    ]);
    let probe = job_yaml("probe", "", false);
    wait_for("the quota to refuse Job creates", DEADLINE, || async {
        let refused = plane().kubectl_stdin(
            &["create", "-n", &ns, "--dry-run=server", "-f", "-"],
            &probe,
        );
        refused
            .err()
            .filter(|e| e.to_string().contains("exceeded quota"))
            .map(|_| ())
    })
    .await;
    set_cfg(&ns, "2");
    // a Job-count quota alone does not keep the Job (the delete frees what the create
    // takes): deleted, its create refused and kept, retried soon and more than once
    let failed = "cannot create it again yet";
    wait_for(
        "three refused creates of the kept Job",
        DEADLINE,
        || async { (h.log().matches(failed).count() >= 3).then_some(()) },
    )
    .await;
    let log = h.log();
    assert!(jobs.get_opt("job").await.unwrap().is_none(), "{log}");
    // the error names the call that failed
    assert!(
        log.contains(&format!("create of Job {ns}/job failed")),
        "{log}"
    );
    assert!(!log.contains(&format!("patch of Job {ns}/job")), "{log}");
    // the quota lifted: the Job is back within seconds, once, with the new token
    kubectl(&["delete", "resourcequota", "jobs", "-n", &ns]);
    let lifted = Instant::now();
    let again = wait_for("the Job made again", DEADLINE, || async {
        jobs.get_opt("job")
            .await
            .ok()
            .flatten()
            .filter(|j| uid(j) != uid(&first))
    })
    .await;
    let took = lifted.elapsed();
    assert!(
        took <= Duration::from_secs(15),
        "the Job came back {took:?} after the quota was lifted"
    );
    assert_ne!(job_token(&again), job_token(&first));
    holds_for(SETTLE, || async {
        let j = jobs.get("job").await.expect("the Job stays");
        assert_eq!(uid(&j), uid(&again), "the Job was made again twice");
    })
    .await;
    assert!(!h.log().contains("panicked"), "{}", h.log());
}
