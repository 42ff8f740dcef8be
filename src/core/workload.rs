//! The kinds hashroll handles and where their pod template lives.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::record::{Record, Stored, parse_record};
use super::refs::PodRefs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkloadKind {
    Deployment,
    DaemonSet,
    StatefulSet,
}

/// Where a kind lives in the API, the words that name it, and where it keeps its pod
/// template. Everything kind-specific in hashroll reads this table: a new kind is a row.
#[derive(Debug)]
pub struct KindRow {
    pub kind: WorkloadKind,
    pub group: &'static str,
    pub version: &'static str,
    /// the kind as the API spells it
    pub name: &'static str,
    pub plural: &'static str,
    /// what `explain` accepts besides the name and the plural
    pub short: &'static str,
    /// the path of the pod template in the object
    pub template: &'static [&'static str],
}

/// The kinds hashroll handles, in the order of [`WorkloadKind`].
pub const KINDS: [KindRow; 3] = [
    KindRow {
        kind: WorkloadKind::Deployment,
        group: "apps",
        version: "v1",
        name: "Deployment",
        plural: "deployments",
        short: "deploy",
        template: &["spec", "template"],
    },
    KindRow {
        kind: WorkloadKind::DaemonSet,
        group: "apps",
        version: "v1",
        name: "DaemonSet",
        plural: "daemonsets",
        short: "ds",
        template: &["spec", "template"],
    },
    KindRow {
        kind: WorkloadKind::StatefulSet,
        group: "apps",
        version: "v1",
        name: "StatefulSet",
        plural: "statefulsets",
        short: "sts",
        template: &["spec", "template"],
    },
];

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 3] = [
        WorkloadKind::Deployment,
        WorkloadKind::DaemonSet,
        WorkloadKind::StatefulSet,
    ];
    /// This kind's row of [`KINDS`].
    pub fn row(self) -> &'static KindRow {
        &KINDS[self as usize]
    }
    pub fn as_str(self) -> &'static str {
        self.row().name
    }
    /// From a CLI word: the kind, its plural or its short name, in any case.
    pub fn parse(s: &str) -> Option<WorkloadKind> {
        let s = s.to_ascii_lowercase();
        KINDS
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(&s) || r.plural == s || r.short == s)
            .map(|r| r.kind)
    }
    /// From an AdmissionReview's `kind` (its group, and a word [`WorkloadKind::parse`] takes).
    pub fn from_group_kind(group: &str, kind: &str) -> Option<WorkloadKind> {
        Self::parse(kind).filter(|k| k.row().group == group)
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
    /// a field hashroll reads has the wrong type; the text names it
    #[error("{0}")]
    Malformed(String),
}

impl WorkloadError {
    pub fn label(&self) -> &'static str {
        match self {
            WorkloadError::NoTemplate => "no_template",
            WorkloadError::Malformed(_) => "malformed",
        }
    }
}

/// `v` at the path of object keys `path` (a cheap `Value::pointer` for fixed paths).
pub fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

/// Which of the maps a JSON patch writes into exist on the object (an `add` needs its
/// parent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    pub metadata: bool,
    pub annotations: bool,
    pub template_metadata: bool,
    pub template_annotations: bool,
}

/// What the core reads of a workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    pub annotations: BTreeMap<String, String>,
    pub template_annotations: BTreeMap<String, String>,
    /// the fields of the pod spec that name sources
    pub pod: PodRefs,
    pub shape: Shape,
}

// The lean document a workload is read into: serde skips every other field.

#[derive(Deserialize)]
struct Doc {
    #[serde(default)]
    metadata: Option<MetaDoc>,
    #[serde(default)]
    spec: Option<SpecDoc>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetaDoc {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    generate_name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default, deserialize_with = "meta_annotations")]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct SpecDoc {
    #[serde(default)]
    template: Option<TemplateDoc>,
}

#[derive(Deserialize)]
struct TemplateDoc {
    #[serde(default)]
    metadata: Option<TemplateMetaDoc>,
    #[serde(default, deserialize_with = "pod_refs")]
    spec: Option<PodRefs>,
}

#[derive(Deserialize)]
struct TemplateMetaDoc {
    #[serde(default, deserialize_with = "template_annotations")]
    annotations: Option<BTreeMap<String, String>>,
}

/// Reads a field, naming it in the error.
fn named<'de, D, T>(d: D, what: &str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map_err(|e| D::Error::custom(format!("{what}: {e}")))
}

fn meta_annotations<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    named(d, "metadata.annotations is not a map of strings")
}

fn template_annotations<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    named(
        d,
        "spec.template.metadata.annotations is not a map of strings",
    )
}

fn pod_refs<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PodRefs>, D::Error> {
    named(d, "spec.template.spec is not a valid pod spec")
}

impl Workload {
    /// Reads a Deployment, DaemonSet or StatefulSet given as JSON. `namespace` is the
    /// request's namespace when the object does not carry one (CREATE with generateName).
    pub fn from_value(
        kind: WorkloadKind,
        namespace: &str,
        obj: &Value,
    ) -> Result<Workload, WorkloadError> {
        let doc = Doc::deserialize(obj).map_err(|e| WorkloadError::Malformed(e.to_string()))?;
        Self::from_doc(kind, namespace, doc)
    }

    /// [`Workload::from_value`] straight from JSON text: only the fields hashroll reads are
    /// built (the admission path).
    pub fn from_json(
        kind: WorkloadKind,
        namespace: &str,
        text: &str,
    ) -> Result<Workload, WorkloadError> {
        let doc: Doc =
            serde_json::from_str(text).map_err(|e| WorkloadError::Malformed(e.to_string()))?;
        Self::from_doc(kind, namespace, doc)
    }

    fn from_doc(kind: WorkloadKind, namespace: &str, doc: Doc) -> Result<Workload, WorkloadError> {
        let template = doc
            .spec
            .and_then(|s| s.template)
            .ok_or(WorkloadError::NoTemplate)?;
        let template_meta = template.metadata;
        let meta = doc.metadata;
        let mut shape = Shape {
            metadata: meta.is_some(),
            template_metadata: template_meta.is_some(),
            ..Shape::default()
        };
        let (name, ns, annotations) = match meta {
            Some(m) => {
                shape.annotations = m.annotations.is_some();
                let name = m.name.filter(|n| !n.is_empty());
                (
                    name.or(m.generate_name).unwrap_or_default(),
                    m.namespace.filter(|n| !n.is_empty()),
                    m.annotations.unwrap_or_default(),
                )
            }
            None => (String::new(), None, BTreeMap::new()),
        };
        let template_annotations = match template_meta {
            Some(m) => {
                shape.template_annotations = m.annotations.is_some();
                m.annotations.unwrap_or_default()
            }
            None => BTreeMap::new(),
        };
        Ok(Workload {
            kind,
            namespace: ns.unwrap_or_else(|| namespace.to_string()),
            name,
            annotations,
            template_annotations,
            pod: template.spec.unwrap_or_default(),
            shape,
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
    templates_differ(
        at(old, &["spec", "template"]),
        at(new, &["spec", "template"]),
        token_annotation,
    )
}

/// [`template_changed`] given the two `spec.template` values.
pub fn templates_differ(old: Option<&Value>, new: Option<&Value>, token_annotation: &str) -> bool {
    // the common case: equal as sent, token included
    if old == new {
        return false;
    }
    let norm = |t: Option<&Value>| -> Value {
        let mut t = t.cloned().unwrap_or(Value::Null);
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
    fn the_kind_table_is_in_enum_order_and_parses_each_word() {
        for (i, k) in WorkloadKind::ALL.iter().enumerate() {
            assert_eq!(KINDS[i].kind, *k);
            for w in [k.row().name, k.row().plural, k.row().short] {
                assert_eq!(WorkloadKind::parse(w), Some(*k), "{w}");
            }
            assert_eq!(WorkloadKind::from_group_kind("apps", k.as_str()), Some(*k));
            assert_eq!(WorkloadKind::from_group_kind("", k.as_str()), None);
        }
        assert_eq!(
            WorkloadKind::parse("DEPLOYMENT"),
            Some(WorkloadKind::Deployment)
        );
        assert_eq!(WorkloadKind::parse("pod"), None);
    }

    #[test]
    fn reads_a_deployment() {
        let obj = json!({"metadata": {"name": "web", "annotations": {"a": "b"}},
            "spec": {"template": {"metadata": {"annotations": {"t": "u"}}, "spec": {"containers": [{"name": "c"}]}}}});
        let w = Workload::from_value(WorkloadKind::Deployment, "ns1", &obj).unwrap();
        assert_eq!(w.namespace, "ns1");
        assert_eq!(w.name, "web");
        assert_eq!(w.annotations["a"], "b");
        assert_eq!(w.template_annotations["t"], "u");
        // generateName stands in for a name not yet given; the object's namespace wins
        let obj = json!({"metadata": {"generateName": "web-", "namespace": "own"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "cm"}}]}]}}}});
        let w = Workload::from_json(WorkloadKind::Deployment, "req", &obj.to_string()).unwrap();
        assert_eq!((w.name.as_str(), w.namespace.as_str()), ("web-", "own"));
        assert_eq!(crate::core::refs::references(&w.pod).len(), 1);
    }

    #[test]
    fn bad_objects_are_errors_not_panics() {
        let cases = [
            (
                json!({"metadata": {"name": "x"}}),
                WorkloadError::NoTemplate,
            ),
            (
                json!({"spec": {"template": null}}),
                WorkloadError::NoTemplate,
            ),
        ];
        for (obj, want) in cases {
            assert_eq!(
                Workload::from_value(WorkloadKind::DaemonSet, "n", &obj).unwrap_err(),
                want
            );
            assert_eq!(
                Workload::from_json(WorkloadKind::DaemonSet, "n", &obj.to_string()).unwrap_err(),
                want
            );
        }
        // a field hashroll reads with the wrong type: the error names it
        let malformed = [
            (
                json!({"spec": {"template": 3}}),
                "invalid type: integer `3`",
            ),
            (
                json!({"metadata": {"annotations": {"a": 1}}, "spec": {"template": {"spec": {"containers": []}}}}),
                "metadata.annotations is not a map of strings",
            ),
            (
                json!({"spec": {"template": {"metadata": {"annotations": ["x"]}}}}),
                "spec.template.metadata.annotations is not a map of strings",
            ),
            (
                json!({"spec": {"template": {"spec": {"containers": "no"}}}}),
                "spec.template.spec is not a valid pod spec",
            ),
            (
                json!({"spec": {"template": {"spec": {"volumes": [{"configMap": {"items": [{"key": 7}]}}]}}}}),
                "spec.template.spec is not a valid pod spec",
            ),
        ];
        for (obj, want) in malformed {
            for err in [
                Workload::from_value(WorkloadKind::DaemonSet, "n", &obj).unwrap_err(),
                Workload::from_json(WorkloadKind::DaemonSet, "n", &obj.to_string()).unwrap_err(),
            ] {
                match err {
                    WorkloadError::Malformed(text) => {
                        assert!(text.contains(want), "{obj}: {text:?} lacks {want:?}")
                    }
                    other => panic!("{obj}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn shape_says_which_maps_exist() {
        let read = |v: serde_json::Value| {
            let w = Workload::from_json(WorkloadKind::Deployment, "n", &v.to_string()).unwrap();
            assert_eq!(
                w,
                Workload::from_value(WorkloadKind::Deployment, "n", &v).unwrap()
            );
            w.shape
        };
        assert_eq!(read(json!({"spec": {"template": {}}})), Shape::default());
        assert_eq!(
            read(json!({"metadata": {"name": "a"}, "spec": {"template": {"metadata": {}}}})),
            Shape {
                metadata: true,
                template_metadata: true,
                ..Shape::default()
            }
        );
        assert_eq!(
            read(
                json!({"metadata": {"annotations": {}}, "spec": {"template": {"metadata": {"annotations": null}}}})
            ),
            Shape {
                metadata: true,
                annotations: true,
                template_metadata: true,
                template_annotations: false,
            }
        );
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
