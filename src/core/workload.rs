//! What the core reads of a workload ([`Workload`]): a hand-written lean reader that takes
//! only the fields hashroll reads off an object's JSON text or value (serde skips every
//! other field) and descends to the pod template along the kind's path.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::kind::WorkloadKind;
use super::refs::PodRefs;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum WorkloadError {
    #[error("object has no pod template")]
    NoTemplate,
    /// a field hashroll reads has the wrong type; the text names it
    #[error("{0}")]
    Malformed(String),
}

/// `v` at the path of object keys `path` (a cheap `Value::pointer` for fixed paths).
pub(crate) fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

/// Which of the maps a JSON patch writes into exist on the object (an `add` needs its
/// parent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Shape {
    pub metadata: bool,
    pub annotations: bool,
    pub template_metadata: bool,
    pub template_annotations: bool,
}

/// What the core reads of a workload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Workload {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    pub annotations: BTreeMap<String, String>,
    pub template_annotations: BTreeMap<String, String>,
    /// the fields of the pod spec that name sources
    pub pod: PodRefs,
    pub shape: Shape,
    /// has a controlling owner (a Job a CronJob made: its owner is what is rolled)
    pub controlled: bool,
}

// The lean document a workload is read into: serde skips every other field, and descends
// to the pod template along the kind's path (`spec.template`, `spec.jobTemplate.spec.template`)
// without building anything on the way.

struct Doc {
    metadata: Option<MetaDoc>,
    template: Option<TemplateDoc>,
}

/// Reads a [`Doc`] whose pod template is at `path`.
struct DocAt(&'static [&'static str]);

/// Which key of a map: the one wanted, `metadata` (at the top only), or another.
enum Key {
    Wanted,
    Metadata,
    Other,
}

struct KeySeed<'a> {
    wanted: &'a str,
    top: bool,
}

impl<'de> serde::de::DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl serde::de::Visitor<'_> for KeySeed<'_> {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(if v == self.wanted {
            Key::Wanted
        } else if self.top && v == "metadata" {
            Key::Metadata
        } else {
            Key::Other
        })
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for DocAt {
    type Value = Doc;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Doc, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for DocAt {
    type Value = Doc;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Doc, A::Error> {
        let (first, rest) = self.0.split_first().expect("a template path is not empty");
        let mut doc = Doc {
            metadata: None,
            template: None,
        };
        let (mut seen_meta, mut seen_path) = (false, false);
        while let Some(key) = map.next_key_seed(KeySeed {
            wanted: first,
            top: true,
        })? {
            match key {
                Key::Metadata if seen_meta => return Err(A::Error::duplicate_field("metadata")),
                Key::Metadata => {
                    seen_meta = true;
                    doc.metadata = map.next_value()?;
                }
                Key::Wanted if seen_path => return Err(A::Error::duplicate_field(first)),
                Key::Wanted => {
                    seen_path = true;
                    doc.template = map.next_value_seed(below::<TemplateDoc>(rest))?;
                }
                Key::Other => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(doc)
    }
}

/// What is found below a field along the rest of the path (`null` anywhere: nothing).
struct Below<T>(&'static [&'static str], std::marker::PhantomData<T>);

fn below<T>(path: &'static [&'static str]) -> Below<T> {
    Below(path, std::marker::PhantomData)
}

impl<'de, T: Deserialize<'de>> serde::de::DeserializeSeed<'de> for Below<T> {
    type Value = Option<T>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        if self.0.is_empty() {
            Option::<T>::deserialize(d)
        } else {
            d.deserialize_option(self)
        }
    }
}

impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Below<T> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (first, rest) = self.0.split_first().expect("checked by the seed");
        let mut found = None;
        let mut seen = false;
        while let Some(key) = map.next_key_seed(KeySeed {
            wanted: first,
            top: false,
        })? {
            match key {
                Key::Wanted if seen => return Err(A::Error::duplicate_field(first)),
                Key::Wanted => {
                    seen = true;
                    found = map.next_value_seed(below::<T>(rest))?;
                }
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }
}

/// The pod template of an object of `kind` given as JSON text, as a JSON value (nothing
/// else of the object is built): the UPDATE comparison.
pub(crate) fn template_value(
    kind: WorkloadKind,
    text: &str,
) -> Result<Option<Value>, serde_json::Error> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_str(text);
    let v = below::<Value>(kind.row().template).deserialize(&mut de)?;
    de.end()?;
    Ok(v)
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
    #[serde(default)]
    owner_references: Option<Vec<OwnerDoc>>,
}

#[derive(Deserialize)]
struct OwnerDoc {
    #[serde(default)]
    controller: Option<bool>,
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

/// Stands for the kind's template path in the texts below; replaced when the error is made.
const TEMPLATE: &str = "<template>";

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
    named(d, "<template>.metadata.annotations is not a map of strings")
}

fn pod_refs<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PodRefs>, D::Error> {
    named(d, "<template>.spec is not a valid pod spec")
}

/// A read error, its text naming the kind's template path.
fn malformed(kind: WorkloadKind, e: serde_json::Error) -> WorkloadError {
    WorkloadError::Malformed(
        e.to_string()
            .replace(TEMPLATE, &kind.row().template.join(".")),
    )
}

impl Workload {
    /// Reads a workload of `kind` given as JSON. `namespace` is the request's namespace when
    /// the object does not carry one (CREATE with generateName).
    pub(crate) fn from_value(
        kind: WorkloadKind,
        namespace: &str,
        obj: &Value,
    ) -> Result<Workload, WorkloadError> {
        use serde::de::DeserializeSeed;
        let doc = DocAt(kind.row().template)
            .deserialize(obj)
            .map_err(|e| malformed(kind, e))?;
        Self::from_doc(kind, namespace, doc)
    }

    /// [`Workload::from_value`] straight from JSON text: only the fields hashroll reads are
    /// built (the admission path).
    pub(crate) fn from_json(
        kind: WorkloadKind,
        namespace: &str,
        text: &str,
    ) -> Result<Workload, WorkloadError> {
        use serde::de::DeserializeSeed;
        let mut de = serde_json::Deserializer::from_str(text);
        let doc = DocAt(kind.row().template)
            .deserialize(&mut de)
            .and_then(|d| de.end().map(|()| d))
            .map_err(|e| malformed(kind, e))?;
        Self::from_doc(kind, namespace, doc)
    }

    fn from_doc(kind: WorkloadKind, namespace: &str, doc: Doc) -> Result<Workload, WorkloadError> {
        let template = doc.template.ok_or(WorkloadError::NoTemplate)?;
        let template_meta = template.metadata;
        let meta = doc.metadata;
        let mut shape = Shape {
            metadata: meta.is_some(),
            template_metadata: template_meta.is_some(),
            ..Shape::default()
        };
        let mut controlled = false;
        let (name, ns, annotations) = match meta {
            Some(m) => {
                shape.annotations = m.annotations.is_some();
                controlled = m
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.controller == Some(true));
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
            controlled,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::kind::*;
    use crate::core::template::*;
    use serde_json::json;

    const TOKEN: &str = "hashroll.dev/config-hash";

    #[test]
    fn the_kind_table_is_in_enum_order_and_parses_each_word() {
        for (i, k) in WorkloadKind::all().enumerate().take(KINDS.len()) {
            let k = &k;
            assert_eq!(KINDS[i].kind, *k);
            for w in [k.row().name, k.row().plural, k.row().short] {
                assert_eq!(WorkloadKind::parse(w), Some(*k), "{w}");
            }
            assert_eq!(
                WorkloadKind::from_group_kind(k.row().group, k.as_str()),
                Some(*k)
            );
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
        assert!(!template_changed(WorkloadKind::Deployment, &a, &b, TOKEN));
        let mut c = b.clone();
        c["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        assert!(template_changed(WorkloadKind::Deployment, &b, &c, TOKEN));
        let mut d = b.clone();
        d["spec"]["template"]["metadata"]["annotations"]["other"] = json!("x");
        assert!(template_changed(WorkloadKind::Deployment, &b, &d, TOKEN));
        // what a typed client adds when it writes the object back is not a change
        let mut f = b.clone();
        f["spec"]["template"]["metadata"]["creationTimestamp"] = json!(null);
        f["spec"]["template"]["spec"]["containers"][0]["resources"] = json!({});
        f["spec"]["template"]["spec"]["volumes"] = json!([]);
        assert!(!template_changed(WorkloadKind::Deployment, &b, &f, TOKEN));
        // replicas are not the template
        let mut e = a.clone();
        e["spec"]["replicas"] = json!(3);
        assert!(!template_changed(WorkloadKind::Deployment, &a, &e, TOKEN));
    }

    #[test]
    fn each_kind_is_read_at_its_template_path() {
        let pod = json!({"metadata": {"annotations": {TOKEN: "t"}},
            "spec": {"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "cm"}}]}]}});
        let cron = json!({"metadata": {"name": "nightly", "annotations": {"a": "b"}},
            "spec": {"schedule": "0 0 * * *", "template": {"spec": {"containers": "not here"}},
                "jobTemplate": {"metadata": {"labels": {"x": "y"}}, "spec": {"template": pod.clone()}}}});
        for w in [
            Workload::from_value(WorkloadKind::CronJob, "n", &cron).unwrap(),
            Workload::from_json(WorkloadKind::CronJob, "n", &cron.to_string()).unwrap(),
        ] {
            assert_eq!(w.name, "nightly");
            assert_eq!(w.template_annotations[TOKEN], "t");
            assert_eq!(crate::core::refs::references(&w.pod).len(), 1);
        }
        let mut other = cron.clone();
        other["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"] =
            json!("x:2");
        assert!(template_changed(
            WorkloadKind::CronJob,
            &cron,
            &other,
            TOKEN
        ));
        // the schedule is not the template
        let mut other = cron.clone();
        other["spec"]["schedule"] = json!("1 0 * * *");
        assert!(!template_changed(
            WorkloadKind::CronJob,
            &cron,
            &other,
            TOKEN
        ));
        assert_eq!(
            template_value(WorkloadKind::CronJob, &cron.to_string()).unwrap(),
            Some(pod)
        );
        // a missing or null step on the way: no template; a wrong type: an error naming it
        for (obj, want) in [
            (json!({"spec": {"jobTemplate": null}}), None),
            (json!({"spec": {"jobTemplate": {"spec": {}}}}), None),
            (
                json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": 1}}}}}}),
                Some("spec.jobTemplate.spec.template.spec is not a valid pod spec"),
            ),
            (json!({"spec": {"jobTemplate": 5}}), Some("invalid type")),
        ] {
            let got = Workload::from_json(WorkloadKind::CronJob, "n", &obj.to_string());
            match (got, want) {
                (Err(WorkloadError::NoTemplate), None) => {}
                (Err(WorkloadError::Malformed(t)), Some(w)) => assert!(t.contains(w), "{t}"),
                (other, _) => panic!("{obj}: {other:?}"),
            }
        }
        // a duplicate key on the path is refused, as serde's derive does
        let dup = r#"{"spec": {"template": {}, "template": {}}}"#;
        assert!(Workload::from_json(WorkloadKind::Deployment, "n", dup).is_err());
    }

    #[test]
    fn kinds_by_flag_parse_register_once_and_read_at_their_path() {
        let ok: CustomKind = "apps.kruise.io/v1alpha1/CloneSet=spec.template"
            .parse()
            .unwrap();
        assert_eq!(ok.template, vec!["spec", "template"]);
        let core: CustomKind = "/v1/ReplicationController=spec.template".parse().unwrap();
        assert_eq!(core.group, "");
        for bad in [
            "apps/v1/Deployment",
            "v1/Thing=spec.template",
            "a/b/c=spec..template",
            "a/b/c d=spec.template",
            "a/b/C=",
        ] {
            assert!(bad.parse::<CustomKind>().is_err(), "{bad}");
        }
        assert_eq!(guess_plural("CloneSet"), "clonesets");
        assert_eq!(guess_plural("Policy"), "policies");
        assert_eq!(guess_plural("Gateway"), "gateways");
        assert_eq!(guess_plural("Box"), "boxes");
        // a built-in kind again is refused before anything is registered
        let dup: CustomKind = "apps/v1/Deployment=spec.template".parse().unwrap();
        assert!(register_custom(&[dup]).is_err());
        let widget: CustomKind = "example.dev/v1/Widget=spec.workload.podTemplate"
            .parse()
            .unwrap();
        crate::core::kind::register_test_kinds();
        assert!(register_custom(&[widget]).is_err(), "once");
        let k = WorkloadKind::from_group_kind("example.dev", "Widget").unwrap();
        assert_eq!(WorkloadKind::parse("widgets"), Some(k));
        assert!(WorkloadKind::all().any(|x| x == k));
        assert!(k.row().optional);
        let obj = json!({"metadata": {"name": "w"}, "spec": {"workload": {"podTemplate": {
            "metadata": {"annotations": {TOKEN: "t"}}, "spec": {"containers": []}}}}});
        let w = Workload::from_value(k, "n", &obj).unwrap();
        assert_eq!(w.template_annotations[TOKEN], "t");
    }
}
