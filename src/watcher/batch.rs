//! The two kinds whose roll is more than a new token: the Job a CronJob runs at once on a
//! change, and a Job made again. Pure: object in, object to create out; the writer sends.

use serde_json::{Map, Value, json};

/// The annotation `kubectl create job --from=cronjob/NAME` puts on the Job it makes.
pub(crate) const INSTANTIATE: &str = "cronjob.kubernetes.io/instantiate";

/// Labels the apiserver puts on a Job and its pod template; a Job made again must not carry
/// the old ones (they name the old Job's uid).
const GENERATED_LABELS: [&str; 4] = [
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "job-name",
    "batch.kubernetes.io/job-name",
];

/// The name of the Job run for a change: the CronJob's name (at most 52 characters) and
/// the start of the new token, so the same change always names the same Job and a retry,
/// a restart or a failover finds it instead of making a second.
pub(crate) fn manual_job_name(cronjob: &str, token: &str) -> String {
    let tail: String = token
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        .take(10)
        .collect();
    let head: String = cronjob.chars().take(63 - 1 - tail.len()).collect();
    format!("{}-{tail}", head.trim_end_matches(['-', '.']))
}

fn set_token(template: &mut Value, token_annotation: &str, token: &str) {
    if !template.is_object() {
        *template = json!({});
    }
    let meta = template
        .as_object_mut()
        .map(|t| t.entry("metadata").or_insert_with(|| json!({})))
        .filter(|m| m.is_object());
    if let Some(meta) = meta.and_then(Value::as_object_mut) {
        let ann = meta.entry("annotations").or_insert_with(|| json!({}));
        if !ann.is_object() {
            *ann = json!({});
        }
        ann[token_annotation] = json!(token);
    }
}

/// The Job to run now for a CronJob (`cronjob` is the whole object): what `kubectl create
/// job --from=cronjob/NAME` makes (the CronJob's job template, the `instantiate: manual`
/// annotation, the CronJob as controlling owner), named by [`manual_job_name`], its pod
/// template carrying the new token. `None` when the CronJob has no name, uid or job template.
pub(crate) fn manual_job(cronjob: &Value, token_annotation: &str, token: &str) -> Option<Value> {
    let meta = cronjob.get("metadata")?;
    let name = meta.get("name")?.as_str()?;
    let uid = meta.get("uid")?.as_str()?;
    let namespace = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
    let jt = cronjob.get("spec")?.get("jobTemplate")?;
    let mut spec = jt.get("spec")?.clone();
    set_token(spec.get_mut("template")?, token_annotation, token);
    let jt_meta = jt.get("metadata");
    let mut annotations = jt_meta
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    annotations.insert(INSTANTIATE.into(), json!("manual"));
    let labels = jt_meta
        .and_then(|m| m.get("labels"))
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    Some(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": manual_job_name(name, token),
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "name": name,
                "uid": uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": spec,
    }))
}

/// Why a change of `cronjob` (the whole object) runs no Job now, if it does not: a
/// suspended CronJob runs nothing (its next runs, once resumed, take the new template), and
/// one with `concurrencyPolicy: Forbid` runs nothing beside a Job still active (the same).
pub(crate) fn no_run_now(cronjob: &Value) -> Option<&'static str> {
    let spec = cronjob.get("spec");
    if spec.and_then(|s| s.get("suspend")).and_then(Value::as_bool) == Some(true) {
        return Some("the CronJob is suspended");
    }
    let forbid = spec
        .and_then(|s| s.get("concurrencyPolicy"))
        .and_then(Value::as_str)
        == Some("Forbid");
    let active = cronjob
        .get("status")
        .and_then(|s| s.get("active"))
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    (forbid && active).then_some("concurrencyPolicy is Forbid and a Job is still active")
}

fn drop_generated(labels: Option<&mut Value>) {
    if let Some(l) = labels.and_then(Value::as_object_mut) {
        for k in GENERATED_LABELS {
            l.remove(k);
        }
    }
}

/// The Job to create in place of `job` (the whole object): the same name, labels,
/// annotations and spec, without what the apiserver generated (uid, resourceVersion,
/// status, the selector unless `manualSelector`, the controller-uid and job-name labels),
/// carrying the record and the new token.
pub(crate) fn recreated_job(
    job: &Value,
    record_annotation: &str,
    record: Option<&str>,
    token_annotation: &str,
    token: &str,
) -> Option<Value> {
    let meta = job.get("metadata")?;
    let mut new_meta = Map::new();
    for k in [
        "name",
        "namespace",
        "labels",
        "annotations",
        "ownerReferences",
    ] {
        if let Some(v) = meta.get(k) {
            new_meta.insert(k.into(), v.clone());
        }
    }
    let mut new_meta = Value::Object(new_meta);
    drop_generated(new_meta.get_mut("labels"));
    if !new_meta.get("annotations").is_some_and(Value::is_object) {
        new_meta["annotations"] = json!({});
    }
    match record {
        Some(r) => new_meta["annotations"][record_annotation] = json!(r),
        None => {
            if let Some(a) = new_meta["annotations"].as_object_mut() {
                a.remove(record_annotation);
            }
        }
    }
    let mut spec = job.get("spec")?.clone();
    let manual = spec.get("manualSelector").and_then(Value::as_bool) == Some(true);
    if let Some(s) = spec.as_object_mut()
        && !manual
    {
        s.remove("selector");
    }
    let template = spec.get_mut("template")?;
    drop_generated(
        template
            .get_mut("metadata")
            .and_then(|m| m.get_mut("labels")),
    );
    set_token(template, token_annotation, token);
    Some(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": new_meta,
        "spec": spec,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "hashroll.dev/config-hash";

    #[test]
    fn a_suspended_or_forbidding_busy_cronjob_runs_no_job_now() {
        let cases = [
            (json!({"spec": {}}), None),
            (json!({"spec": {"suspend": false}}), None),
            (
                json!({"spec": {"suspend": true}}),
                Some("the CronJob is suspended"),
            ),
            (
                json!({"spec": {"concurrencyPolicy": "Forbid"}, "status": {"active": []}}),
                None,
            ),
            (
                json!({"spec": {"concurrencyPolicy": "Forbid"}, "status": {"active": [{"name": "j"}]}}),
                Some("concurrencyPolicy is Forbid and a Job is still active"),
            ),
            (
                json!({"spec": {"concurrencyPolicy": "Allow"}, "status": {"active": [{"name": "j"}]}}),
                None,
            ),
        ];
        for (cron, want) in cases {
            assert_eq!(no_run_now(&cron), want, "{cron}");
        }
    }

    #[test]
    fn a_manual_job_is_what_kubectl_create_job_from_makes() {
        let cron = json!({"metadata": {"name": "nightly", "namespace": "ns", "uid": "u-1",
                "annotations": {"reloader.stakater.com/auto": "true"}},
            "spec": {"schedule": "0 0 * * *", "jobTemplate": {
                "metadata": {"labels": {"team": "a"}, "annotations": {"note": "x"}},
                "spec": {"backoffLimit": 2, "template": {"metadata": {"annotations": {TOKEN: "old"}},
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}}}});
        let job = manual_job(&cron, TOKEN, "0123456789abcdef").unwrap();
        assert_eq!(job["metadata"]["name"], "nightly-0123456789");
        assert_eq!(job["metadata"]["namespace"], "ns");
        assert_eq!(job["metadata"]["annotations"][INSTANTIATE], "manual");
        assert_eq!(job["metadata"]["annotations"]["note"], "x");
        // the CronJob's own annotations stay on the CronJob
        assert!(
            job["metadata"]["annotations"]
                .get("reloader.stakater.com/auto")
                .is_none()
        );
        assert_eq!(job["metadata"]["labels"]["team"], "a");
        let owner = &job["metadata"]["ownerReferences"][0];
        assert_eq!(
            (&owner["kind"], &owner["uid"], &owner["controller"]),
            (&json!("CronJob"), &json!("u-1"), &json!(true))
        );
        assert_eq!(job["spec"]["backoffLimit"], 2);
        assert_eq!(
            job["spec"]["template"]["metadata"]["annotations"][TOKEN],
            "0123456789abcdef"
        );
        // the same change names the same Job; another names another
        assert_eq!(
            manual_job(&cron, TOKEN, "0123456789abcdef").unwrap()["metadata"]["name"],
            job["metadata"]["name"]
        );
        assert_ne!(
            manual_job(&cron, TOKEN, "fedcba9876543210").unwrap()["metadata"]["name"],
            job["metadata"]["name"]
        );
        // no uid (not read from the apiserver) or no template: nothing to make
        let mut no_uid = cron.clone();
        no_uid["metadata"].as_object_mut().unwrap().remove("uid");
        assert!(manual_job(&no_uid, TOKEN, "t").is_none());
        assert!(manual_job(&json!({"metadata": {"name": "a", "uid": "u"}}), TOKEN, "t").is_none());
    }

    #[test]
    fn manual_job_names_fit_a_label_value() {
        let long = "a".repeat(52);
        for token in ["0123456789abcdef", "Z!", ""] {
            let n = manual_job_name(&long, token);
            assert!(n.len() <= 63, "{n}");
            assert!(!n.ends_with('.'));
        }
        assert_eq!(manual_job_name("x", "AB-12cd"), "x-12cd");
    }

    #[test]
    fn a_recreated_job_drops_what_the_apiserver_made() {
        let job = json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "migrate", "namespace": "ns", "uid": "u-1", "resourceVersion": "7",
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"app": "m", "controller-uid": "u-1", "batch.kubernetes.io/controller-uid": "u-1",
                    "job-name": "migrate", "batch.kubernetes.io/job-name": "migrate"},
                "annotations": {"reloader.stakater.com/auto": "true", "hashroll.dev/sources": "old"}},
            "spec": {"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}},
                "backoffLimit": 1,
                "template": {"metadata": {"labels": {"app": "m", "controller-uid": "u-1",
                    "batch.kubernetes.io/controller-uid": "u-1", "job-name": "migrate",
                    "batch.kubernetes.io/job-name": "migrate"}},
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "c"}]}}},
            "status": {"succeeded": 1}});
        let new = recreated_job(&job, "hashroll.dev/sources", Some("new"), TOKEN, "t2").unwrap();
        let m = &new["metadata"];
        assert_eq!(m["name"], "migrate");
        for k in ["uid", "resourceVersion", "creationTimestamp"] {
            assert!(m.get(k).is_none(), "{k}");
        }
        assert!(new.get("status").is_none());
        assert_eq!(m["labels"], json!({"app": "m"}));
        assert_eq!(m["annotations"]["hashroll.dev/sources"], "new");
        assert_eq!(m["annotations"]["reloader.stakater.com/auto"], "true");
        assert!(new["spec"].get("selector").is_none());
        assert_eq!(new["spec"]["backoffLimit"], 1);
        assert_eq!(
            new["spec"]["template"]["metadata"]["labels"],
            json!({"app": "m"})
        );
        assert_eq!(
            new["spec"]["template"]["metadata"]["annotations"][TOKEN],
            "t2"
        );
        // a manual selector is the user's: kept
        let mut manual = job.clone();
        manual["spec"]["manualSelector"] = json!(true);
        let new = recreated_job(&manual, "r", None, TOKEN, "t").unwrap();
        assert!(new["spec"]["selector"].is_object());
    }
}
