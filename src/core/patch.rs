//! The patches that write a [`Decision`]: a JSON patch for the webhook (against the object
//! the request carries) and a merge patch for the watcher.

use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation};
use serde_json::{Map, Value, json};

use std::collections::BTreeMap;

use super::kind::WorkloadKind;
use super::names::RecordNames;
use super::record::Decision;
use super::workload::Workload;

/// The pointer to `base` + `rest` (segments unescaped; `~` and `/` are escaped here).
fn pointer(base: &[&str], rest: &[&str]) -> jsonptr::PointerBuf {
    jsonptr::PointerBuf::from_tokens(base.iter().chain(rest).copied())
}

/// Ops that make the object at `base` (`[]` or `["spec", "template"]`) carry annotation
/// `name` = `want` (`None`: absent), creating `metadata` / `annotations` maps when the
/// object lacks them.
fn annotation_ops(
    base: &[&str],
    (has_meta, has_annotations): (bool, bool),
    annotations: &BTreeMap<String, String>,
    name: &str,
    want: Option<&str>,
    ops: &mut Vec<PatchOperation>,
) {
    let add = |path, value| PatchOperation::Add(AddOperation { path, value });
    let current = annotations.get(name);
    match want {
        Some(v) if current.map(String::as_str) == Some(v) => {}
        Some(v) => ops.push(if has_annotations {
            add(pointer(base, &["metadata", "annotations", name]), json!(v))
        } else if has_meta {
            add(
                pointer(base, &["metadata", "annotations"]),
                json!({ name: v }),
            )
        } else {
            add(
                pointer(base, &["metadata"]),
                json!({ "annotations": { name: v } }),
            )
        }),
        None if current.is_some() => ops.push(PatchOperation::Remove(RemoveOperation {
            path: pointer(base, &["metadata", "annotations", name]),
        })),
        None => {}
    }
}

/// The JSON patch that makes workload `w` (as the request carries it) carry `decision`;
/// empty when it already does.
pub(crate) fn json_patch(w: &Workload, names: &RecordNames, decision: &Decision) -> Patch {
    let mut ops = Vec::new();
    let record = decision.record_text();
    annotation_ops(
        &[],
        (w.shape.metadata, w.shape.annotations),
        &w.annotations,
        &names.record,
        record.as_deref(),
        &mut ops,
    );
    annotation_ops(
        w.kind.row().template,
        (w.shape.template_metadata, w.shape.template_annotations),
        &w.template_annotations,
        &names.token,
        decision.token.as_deref(),
        &mut ops,
    );
    Patch(ops)
}

/// The merge patch the watcher sends: record and token in one write, guarded by
/// `resourceVersion` so a concurrent change makes it fail with a conflict.
pub(crate) fn merge_patch(
    kind: WorkloadKind,
    resource_version: Option<&str>,
    names: &RecordNames,
    decision: &Decision,
) -> Value {
    let mut meta = Map::new();
    if let Some(rv) = resource_version {
        meta.insert("resourceVersion".into(), json!(rv));
    }
    meta.insert(
        "annotations".into(),
        json!({ names.record.clone(): decision.record_text() }),
    );
    // the token, nested along the kind's template path
    let token = json!({"metadata": {"annotations": {
        names.token.clone(): decision.token.clone()
    }}});
    let mut body = kind
        .row()
        .template
        .iter()
        .rev()
        .fold(token, |inner, k| json!({ *k: inner }));
    body["metadata"] = Value::Object(meta);
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::record::Record;

    fn decision(record: Option<&[(&str, &str)]>, token: Option<&str>) -> Decision {
        Decision {
            record: record.map(|r| {
                r.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<Record>()
            }),
            token: token.map(String::from),
            roll: false,
            changed: vec![],
            key_id: "0123abcd".into(),
        }
    }

    fn json_patch(obj: &Value, names: &RecordNames, d: &Decision) -> Patch {
        let w = Workload::from_value(crate::core::kind::WorkloadKind::Deployment, "n", obj)
            .expect("a workload");
        super::json_patch(&w, names, d)
    }

    fn apply(obj: &Value, p: &Patch) -> Value {
        let mut o = obj.clone();
        json_patch::patch(&mut o, p).expect("patch applies");
        o
    }

    #[test]
    fn patch_table() {
        let names = RecordNames::default();
        let d = decision(Some(&[("configmap/a", "absent")]), Some("tok"));
        let cases = [
            (
                "no_metadata_maps",
                json!({"spec": {"template": {"spec": {}}}}),
            ),
            (
                "no_annotations",
                json!({"metadata": {"name": "x"}, "spec": {"template": {"metadata": {"labels": {"a": "b"}}}}}),
            ),
            (
                "existing_annotations",
                json!({"metadata": {"annotations": {"o": "1"}}, "spec": {"template": {"metadata": {"annotations": {"p": "2"}}}}}),
            ),
            (
                "stale_values",
                json!({"metadata": {"annotations": {"hashroll.dev/sources": "{}"}}, "spec": {"template": {"metadata": {"annotations": {"hashroll.dev/config-hash": "old"}}}}}),
            ),
        ];
        for (name, obj) in cases {
            let p = json_patch(&obj, &names, &d);
            assert!(!p.0.is_empty(), "case {name}");
            let out = apply(&obj, &p);
            assert_eq!(
                out["metadata"]["annotations"]["hashroll.dev/sources"],
                json!(r#"{"@key":"0123abcd","configmap/a":"absent"}"#),
                "case {name}"
            );
            assert_eq!(
                out["spec"]["template"]["metadata"]["annotations"]["hashroll.dev/config-hash"],
                json!("tok"),
                "case {name}"
            );
            // other annotations survive
            if name == "existing_annotations" {
                assert_eq!(out["metadata"]["annotations"]["o"], json!("1"));
                assert_eq!(
                    out["spec"]["template"]["metadata"]["annotations"]["p"],
                    json!("2")
                );
            }
            // applied again: nothing left to do
            assert!(
                json_patch(&out, &names, &d).0.is_empty(),
                "case {name} not idempotent"
            );
        }
    }

    #[test]
    fn slash_in_key_is_escaped() {
        let names = RecordNames::default();
        let obj = json!({"metadata": {"annotations": {}}, "spec": {"template": {"metadata": {"annotations": {}}}}});
        let p = json_patch(&obj, &names, &decision(Some(&[]), Some("t")));
        let text = serde_json::to_string(&p).unwrap();
        assert!(
            text.contains("/metadata/annotations/hashroll.dev~1sources"),
            "{text}"
        );
    }

    #[test]
    fn removing_the_record() {
        let names = RecordNames::default();
        let obj = json!({"metadata": {"annotations": {"hashroll.dev/sources": "{}"}}, "spec": {"template": {}}});
        let out = apply(&obj, &json_patch(&obj, &names, &decision(None, None)));
        assert_eq!(out["metadata"]["annotations"], json!({}));
    }

    #[test]
    fn merge_patch_carries_both_and_the_version() {
        let names = RecordNames::default();
        let m = merge_patch(
            WorkloadKind::Deployment,
            Some("42"),
            &names,
            &decision(Some(&[("secret/s", "absent")]), Some("t2")),
        );
        assert_eq!(m["metadata"]["resourceVersion"], json!("42"));
        assert_eq!(
            m["metadata"]["annotations"]["hashroll.dev/sources"],
            json!(r#"{"@key":"0123abcd","secret/s":"absent"}"#)
        );
        assert_eq!(
            m["spec"]["template"]["metadata"]["annotations"]["hashroll.dev/config-hash"],
            json!("t2")
        );
    }

    #[test]
    fn a_cronjob_carries_its_token_in_the_job_template() {
        let names = RecordNames::default();
        let d = decision(Some(&[("configmap/c", "absent")]), Some("t3"));
        let m = merge_patch(WorkloadKind::CronJob, None, &names, &d);
        assert_eq!(
            m["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["annotations"]["hashroll.dev/config-hash"],
            json!("t3")
        );
        assert!(m["metadata"]["annotations"]["hashroll.dev/sources"].is_string());
        let obj = json!({"metadata": {"name": "c"}, "spec": {"schedule": "* * * * *",
            "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}});
        let w = Workload::from_value(WorkloadKind::CronJob, "n", &obj).unwrap();
        let out = apply(&obj, &super::json_patch(&w, &names, &d));
        assert_eq!(
            out["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["annotations"]["hashroll.dev/config-hash"],
            json!("t3")
        );
        assert_eq!(out["spec"]["schedule"], json!("* * * * *"));
    }
}
