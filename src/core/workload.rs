//! The kinds hashroll handles and where their pod template lives.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::record::Stored;
use super::refs::PodRefs;

/// A kind hashroll handles: a row of [`KINDS`], or of the kinds named by
/// `--workload-kind` (registered once at start-up, see [`register_custom`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkloadKind(u16);

#[allow(non_upper_case_globals)]
impl WorkloadKind {
    pub const Deployment: WorkloadKind = WorkloadKind(0);
    pub const DaemonSet: WorkloadKind = WorkloadKind(1);
    pub const StatefulSet: WorkloadKind = WorkloadKind(2);
    pub const CronJob: WorkloadKind = WorkloadKind(3);
    pub const Job: WorkloadKind = WorkloadKind(4);
    pub const ArgoRollout: WorkloadKind = WorkloadKind(5);
}

/// How a kind is rolled once its record and token are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollout {
    /// the new token in the pod template is the roll (its controller replaces the pods)
    Template,
    /// the token updates the template of later runs; a Job is also created from the
    /// CronJob at once (unless `--cronjob-run-on-change=false`)
    TemplateAndRun,
    /// a Job's template cannot change: the Job is deleted and created again with the new
    /// token (only for a Job that opts in with its own annotations)
    Recreate,
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
    /// how a roll is done
    pub rollout: Rollout,
    /// whether `--auto-reload-all` opts this kind in (not for Jobs: deleting and creating a
    /// Job again must be asked for by the Job itself)
    pub auto_reload_all: bool,
    /// the word of `--ignored-workload-types` that turns this kind off (Reloader's words)
    pub ignore_word: Option<&'static str>,
    /// a custom resource that may not be installed: watched once discovery finds it
    pub optional: bool,
}

/// The kinds hashroll handles, in the order of [`WorkloadKind`].
pub const KINDS: [KindRow; 6] = [
    KindRow {
        kind: WorkloadKind::Deployment,
        group: "apps",
        version: "v1",
        name: "Deployment",
        plural: "deployments",
        short: "deploy",
        template: &["spec", "template"],
        rollout: Rollout::Template,
        auto_reload_all: true,
        ignore_word: None,
        optional: false,
    },
    KindRow {
        kind: WorkloadKind::DaemonSet,
        group: "apps",
        version: "v1",
        name: "DaemonSet",
        plural: "daemonsets",
        short: "ds",
        template: &["spec", "template"],
        rollout: Rollout::Template,
        auto_reload_all: true,
        ignore_word: None,
        optional: false,
    },
    KindRow {
        kind: WorkloadKind::StatefulSet,
        group: "apps",
        version: "v1",
        name: "StatefulSet",
        plural: "statefulsets",
        short: "sts",
        template: &["spec", "template"],
        rollout: Rollout::Template,
        auto_reload_all: true,
        ignore_word: None,
        optional: false,
    },
    KindRow {
        kind: WorkloadKind::CronJob,
        group: "batch",
        version: "v1",
        name: "CronJob",
        plural: "cronjobs",
        short: "cj",
        template: &["spec", "jobTemplate", "spec", "template"],
        rollout: Rollout::TemplateAndRun,
        auto_reload_all: true,
        ignore_word: Some("cronjobs"),
        optional: false,
    },
    KindRow {
        kind: WorkloadKind::Job,
        group: "batch",
        version: "v1",
        name: "Job",
        plural: "jobs",
        short: "job",
        template: &["spec", "template"],
        rollout: Rollout::Recreate,
        auto_reload_all: false,
        ignore_word: Some("jobs"),
        optional: false,
    },
    KindRow {
        kind: WorkloadKind::ArgoRollout,
        group: "argoproj.io",
        version: "v1alpha1",
        name: "Rollout",
        plural: "rollouts",
        short: "ro",
        template: &["spec", "template"],
        rollout: Rollout::Template,
        auto_reload_all: true,
        ignore_word: None,
        optional: true,
    },
];

/// The kinds named by `--workload-kind`, after the built-in ones.
static CUSTOM: std::sync::OnceLock<Vec<KindRow>> = std::sync::OnceLock::new();

/// A kind named by `--workload-kind GROUP/VERSION/KIND=PATH` (`PATH` the pod template, dot
/// separated; `GROUP` empty for the core group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomKind {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub template: Vec<String>,
}

/// At most this many kinds by flag.
pub const MAX_CUSTOM_KINDS: usize = 32;

impl std::str::FromStr for CustomKind {
    type Err = String;
    fn from_str(s: &str) -> Result<CustomKind, String> {
        let (gvk, path) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected GROUP/VERSION/KIND=PATH"))?;
        let parts: Vec<&str> = gvk.split('/').collect();
        let [group, version, kind] = parts[..] else {
            return Err(format!("{gvk:?}: expected GROUP/VERSION/KIND"));
        };
        let word = |w: &str| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        };
        if !word(version) || !word(kind) || !(group.is_empty() || word(group)) {
            return Err(format!("{gvk:?}: not a group, version and kind"));
        }
        let template: Vec<String> = path.split('.').map(str::to_string).collect();
        if template.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "{path:?}: expected a dotted path such as spec.template"
            ));
        }
        Ok(CustomKind {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            template,
        })
    }
}

/// The plural kubectl would guess for a kind (the API's own is found by discovery when
/// the kind is installed; this names it before).
pub fn guess_plural(kind: &str) -> String {
    let k = kind.to_ascii_lowercase();
    if k.ends_with('s') || k.ends_with('x') || k.ends_with("ch") || k.ends_with("sh") {
        format!("{k}es")
    } else if k.ends_with('y') && !k.ends_with("ay") && !k.ends_with("ey") && !k.ends_with("oy") {
        format!("{}ies", &k[..k.len() - 1])
    } else {
        format!("{k}s")
    }
}

/// Registers the kinds named by flag; once, before any kind is used. A kind that is
/// already a row (built in or named twice) is an error.
pub fn register_custom(kinds: &[CustomKind]) -> Result<(), String> {
    if kinds.len() > MAX_CUSTOM_KINDS {
        return Err(format!("at most {MAX_CUSTOM_KINDS} kinds by flag"));
    }
    let leak = |s: &str| -> &'static str { Box::leak(s.to_string().into_boxed_str()) };
    let mut rows: Vec<KindRow> = Vec::new();
    for (i, c) in kinds.iter().enumerate() {
        let taken = KINDS
            .iter()
            .chain(&rows)
            .any(|r| r.group == c.group && r.name == c.kind);
        if taken {
            return Err(format!("{}/{} is named twice", c.group, c.kind));
        }
        let template: Vec<&'static str> = c.template.iter().map(|p| leak(p)).collect();
        rows.push(KindRow {
            kind: WorkloadKind((KINDS.len() + i) as u16),
            group: leak(&c.group),
            version: leak(&c.version),
            name: leak(&c.kind),
            plural: leak(&guess_plural(&c.kind)),
            short: "",
            template: Box::leak(template.into_boxed_slice()),
            rollout: Rollout::Template,
            auto_reload_all: true,
            ignore_word: None,
            optional: true,
        });
    }
    CUSTOM
        .set(rows)
        .map_err(|_| "the kinds by flag are registered once".to_string())
}

fn custom() -> &'static [KindRow] {
    CUSTOM.get().map(Vec::as_slice).unwrap_or_default()
}

impl WorkloadKind {
    /// Every kind: the built-in ones, then those named by flag.
    pub fn all() -> impl Iterator<Item = WorkloadKind> {
        KINDS.iter().chain(custom()).map(|r| r.kind)
    }
    /// This kind's row.
    pub fn row(self) -> &'static KindRow {
        let i = self.0 as usize;
        KINDS
            .get(i)
            .or_else(|| custom().get(i - KINDS.len()))
            .expect("a WorkloadKind is made from a row")
    }
    pub fn as_str(self) -> &'static str {
        self.row().name
    }
    /// From a CLI word: the kind, its plural or its short name, in any case.
    pub fn parse(s: &str) -> Option<WorkloadKind> {
        let s = s.to_ascii_lowercase();
        KINDS
            .iter()
            .chain(custom())
            .find(|r| {
                r.name.eq_ignore_ascii_case(&s)
                    || r.plural == s
                    || (!r.short.is_empty() && r.short == s)
            })
            .map(|r| r.kind)
    }
    /// From an AdmissionReview's `kind` (its group and kind name).
    pub fn from_group_kind(group: &str, kind: &str) -> Option<WorkloadKind> {
        KINDS
            .iter()
            .chain(custom())
            .find(|r| r.group == group && r.name == kind)
            .map(|r| r.kind)
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WorkloadError {
    #[error("object has no pod template")]
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
pub fn template_value(kind: WorkloadKind, text: &str) -> Result<Option<Value>, serde_json::Error> {
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
    pub fn from_value(
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
    pub fn from_json(
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

    /// The record and token this workload carries (a malformed record counts as none).
    pub fn stored(&self, record_annotation: &str, token_annotation: &str) -> Stored {
        Stored::from_annotations(
            self.annotations.get(record_annotation).map(String::as_str),
            self.template_annotations
                .get(token_annotation)
                .map(String::as_str),
        )
    }
}

/// Reads the stored record and token straight off a JSON object of `kind`.
pub fn stored_of(
    kind: WorkloadKind,
    obj: &Value,
    record_annotation: &str,
    token_annotation: &str,
) -> Stored {
    let ann = |v: Option<&Value>, k: &str| {
        v.and_then(|a| a.get(k))
            .and_then(Value::as_str)
            .map(String::from)
    };
    Stored::from_annotations(
        ann(at(obj, &["metadata", "annotations"]), record_annotation).as_deref(),
        ann(
            at(obj, kind.row().template).and_then(|t| at(t, &["metadata", "annotations"])),
            token_annotation,
        )
        .as_deref(),
    )
}

/// Whether the pod template differs between two objects, ignoring the roll token (and
/// treating an empty annotation map like a missing one).
pub fn template_changed(
    kind: WorkloadKind,
    old: &Value,
    new: &Value,
    token_annotation: &str,
) -> bool {
    let path = kind.row().template;
    templates_differ(at(old, path), at(new, path), token_annotation)
}

/// [`template_changed`] given the two pod templates.
/// Drops, at every depth, what means the same as a field left out: `null`, `{}` and `[]`.
/// A controller that writes a workload back through its typed client adds them (Go's
/// `creationTimestamp: null`, `resources: {}`); they are not a change of the template.
fn drop_empty(v: &mut Value) {
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    match v {
        Value::Object(m) => {
            for x in m.values_mut() {
                drop_empty(x);
            }
            m.retain(|_, x| !empty(x));
        }
        Value::Array(a) => a.iter_mut().for_each(drop_empty),
        _ => {}
    }
}

pub fn templates_differ(old: Option<&Value>, new: Option<&Value>, token_annotation: &str) -> bool {
    // the common case: equal as sent, token included
    if old == new {
        return false;
    }
    let norm = |t: Option<&Value>| -> Value {
        let mut t = t.cloned().unwrap_or(Value::Null);
        if let Some(ann) = t
            .get_mut("metadata")
            .and_then(|m| m.get_mut("annotations"))
            .and_then(Value::as_object_mut)
        {
            ann.remove(token_annotation);
        }
        drop_empty(&mut t);
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
        assert_eq!(
            stored_of(WorkloadKind::CronJob, &cron, "r", TOKEN)
                .token
                .as_deref(),
            Some("t")
        );
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
        register_custom(std::slice::from_ref(&widget)).unwrap();
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

    #[test]
    fn stored_reads_record_and_token() {
        let obj = json!({"metadata": {"annotations": {"hashroll.dev/sources": "{\"configmap/a\":\"absent\"}"}},
            "spec": {"template": {"metadata": {"annotations": {TOKEN: "t1"}}}}});
        let s = stored_of(
            WorkloadKind::Deployment,
            &obj,
            "hashroll.dev/sources",
            TOKEN,
        );
        assert_eq!(s.record.unwrap()["configmap/a"], "absent");
        assert_eq!(s.token.as_deref(), Some("t1"));
        let s = stored_of(
            WorkloadKind::Deployment,
            &json!({}),
            "hashroll.dev/sources",
            TOKEN,
        );
        assert_eq!(s, Stored::default());
    }
}
