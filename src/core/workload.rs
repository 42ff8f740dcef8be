//! The kinds hashroll handles and where their pod template lives.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::PodSpec;
use serde::Deserialize;
use serde_json::Value;

use super::record::{Record, Stored, parse_record};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkloadKind {
    Deployment,
    DaemonSet,
    StatefulSet,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 3] = [
        WorkloadKind::Deployment,
        WorkloadKind::DaemonSet,
        WorkloadKind::StatefulSet,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::StatefulSet => "StatefulSet",
        }
    }
    /// From an AdmissionReview's `kind.kind` (group `apps`) or a CLI word.
    pub fn parse(s: &str) -> Option<WorkloadKind> {
        match s.to_ascii_lowercase().as_str() {
            "deployment" | "deployments" | "deploy" => Some(WorkloadKind::Deployment),
            "daemonset" | "daemonsets" | "ds" => Some(WorkloadKind::DaemonSet),
            "statefulset" | "statefulsets" | "sts" => Some(WorkloadKind::StatefulSet),
            _ => None,
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WorkloadError {
    #[error("object has no spec.template")]
    NoTemplate,
    #[error("spec.template.spec is not a valid PodSpec: {0}")]
    BadPodSpec(String),
    #[error("{0} is not a map of strings")]
    BadAnnotations(&'static str),
}

impl WorkloadError {
    pub fn label(&self) -> &'static str {
        match self {
            WorkloadError::NoTemplate => "no_template",
            WorkloadError::BadPodSpec(_) => "bad_pod_spec",
            WorkloadError::BadAnnotations(_) => "bad_annotations",
        }
    }
}

/// `v` at the path of object keys `path` (a cheap `Value::pointer` for fixed paths).
pub fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

/// What the core reads of a workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    pub annotations: BTreeMap<String, String>,
    pub template_annotations: BTreeMap<String, String>,
    pub pod_spec: PodSpec,
}

fn string_map(
    v: Option<&Value>,
    what: &'static str,
) -> Result<BTreeMap<String, String>, WorkloadError> {
    match v {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(v) => {
            serde_json::from_value(v.clone()).map_err(|_| WorkloadError::BadAnnotations(what))
        }
    }
}

impl Workload {
    /// Reads a Deployment, DaemonSet or StatefulSet given as JSON. `namespace` is the
    /// request's namespace when the object does not carry one (CREATE with generateName).
    pub fn from_value(
        kind: WorkloadKind,
        namespace: &str,
        obj: &Value,
    ) -> Result<Workload, WorkloadError> {
        let template = at(obj, &["spec", "template"])
            .filter(|t| t.is_object())
            .ok_or(WorkloadError::NoTemplate)?;
        // deserialized from the borrowed value: no copy of the template
        let pod_spec = match template.get("spec") {
            Some(spec) => PodSpec::deserialize(spec),
            None => PodSpec::deserialize(&Value::Object(Default::default())),
        }
        .map_err(|e| WorkloadError::BadPodSpec(e.to_string()))?;
        let meta = obj.get("metadata");
        let s = |p: &str| {
            meta.and_then(|m| m.get(p))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let ns = s("namespace");
        let name = match s("name") {
            n if n.is_empty() => s("generateName"),
            n => n,
        };
        Ok(Workload {
            kind,
            namespace: if ns.is_empty() {
                namespace.to_string()
            } else {
                ns
            },
            name,
            annotations: string_map(
                meta.and_then(|m| m.get("annotations")),
                "metadata.annotations",
            )?,
            template_annotations: string_map(
                at(template, &["metadata", "annotations"]),
                "spec.template.metadata.annotations",
            )?,
            pod_spec,
        })
    }

    /// The record and token this workload carries (a malformed record counts as none).
    pub fn stored(&self, record_annotation: &str, token_annotation: &str) -> Stored {
        Stored {
            record: self
                .annotations
                .get(record_annotation)
                .and_then(|t| parse_record(t)),
            token: self.template_annotations.get(token_annotation).cloned(),
        }
    }
}

/// Reads the stored record and token straight off a JSON object.
pub fn stored_of(obj: &Value, record_annotation: &str, token_annotation: &str) -> Stored {
    let ann = |v: Option<&Value>, k: &str| {
        v.and_then(|a| a.get(k))
            .and_then(Value::as_str)
            .map(String::from)
    };
    Stored {
        record: ann(at(obj, &["metadata", "annotations"]), record_annotation)
            .and_then(|t| parse_record(&t))
            .map(|r: Record| r),
        token: ann(
            at(obj, &["spec", "template", "metadata", "annotations"]),
            token_annotation,
        ),
    }
}

/// Whether the pod template differs between two objects, ignoring the roll token (and
/// treating an empty annotation map like a missing one).
pub fn template_changed(old: &Value, new: &Value, token_annotation: &str) -> bool {
    let norm = |obj: &Value| -> Value {
        let mut t = at(obj, &["spec", "template"])
            .cloned()
            .unwrap_or(Value::Null);
        if let Some(meta) = t.get_mut("metadata").and_then(Value::as_object_mut) {
            if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                ann.remove(token_annotation);
                if ann.is_empty() {
                    meta.remove("annotations");
                }
            }
            if meta.is_empty()
                && let Some(o) = t.as_object_mut()
            {
                o.remove("metadata");
            }
        }
        t
    };
    norm(old) != norm(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TOKEN: &str = "hashroll.dev/config-hash";

    #[test]
    fn reads_a_deployment() {
        let obj = json!({"metadata": {"name": "web", "annotations": {"a": "b"}},
            "spec": {"template": {"metadata": {"annotations": {"t": "u"}}, "spec": {"containers": [{"name": "c"}]}}}});
        let w = Workload::from_value(WorkloadKind::Deployment, "ns1", &obj).unwrap();
        assert_eq!(w.namespace, "ns1");
        assert_eq!(w.name, "web");
        assert_eq!(w.annotations["a"], "b");
        assert_eq!(w.template_annotations["t"], "u");
    }

    #[test]
    fn bad_objects_are_errors_not_panics() {
        let cases = [
            (
                json!({"metadata": {"name": "x"}}),
                WorkloadError::NoTemplate,
            ),
            (json!({"spec": {"template": 3}}), WorkloadError::NoTemplate),
            (
                json!({"metadata": {"annotations": {"a": 1}}, "spec": {"template": {"spec": {"containers": []}}}}),
                WorkloadError::BadAnnotations("metadata.annotations"),
            ),
        ];
        for (obj, want) in cases {
            assert_eq!(
                Workload::from_value(WorkloadKind::DaemonSet, "n", &obj).unwrap_err(),
                want
            );
        }
        assert!(matches!(
            Workload::from_value(
                WorkloadKind::DaemonSet,
                "n",
                &json!({"spec": {"template": {"spec": {"containers": "no"}}}})
            ),
            Err(WorkloadError::BadPodSpec(_))
        ));
    }

    #[test]
    fn template_change_ignores_the_token() {
        let a = json!({"spec": {"template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c"}]}}}});
        let mut b = a.clone();
        b["spec"]["template"]["metadata"]["annotations"] = json!({TOKEN: "abc"});
        assert!(!template_changed(&a, &b, TOKEN));
        let mut c = b.clone();
        c["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        assert!(template_changed(&b, &c, TOKEN));
        let mut d = b.clone();
        d["spec"]["template"]["metadata"]["annotations"]["other"] = json!("x");
        assert!(template_changed(&b, &d, TOKEN));
        // replicas are not the template
        let mut e = a.clone();
        e["spec"]["replicas"] = json!(3);
        assert!(!template_changed(&a, &e, TOKEN));
    }

    #[test]
    fn stored_reads_record_and_token() {
        let obj = json!({"metadata": {"annotations": {"hashroll.dev/sources": "{\"configmap/a\":\"absent\"}"}},
            "spec": {"template": {"metadata": {"annotations": {TOKEN: "t1"}}}}});
        let s = stored_of(&obj, "hashroll.dev/sources", TOKEN);
        assert_eq!(s.record.unwrap()["configmap/a"], "absent");
        assert_eq!(s.token.as_deref(), Some("t1"));
        let s = stored_of(&json!({}), "hashroll.dev/sources", TOKEN);
        assert_eq!(s, Stored::default());
    }
}
