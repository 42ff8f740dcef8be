//! What the watcher keeps of each workload (references with used keys, the annotations the
//! policy reads, the record), and the reverse index source → workloads.
//!
//! A large cluster has tens of thousands of opted-in workloads, so what is kept of each is
//! compact: names are shared (`Arc<str>`), the few annotations are one boxed slice (a
//! `BTreeMap` allocates a node of eleven pairs for one), and an index entry of a source
//! used by one workload is a one-key vector, not a hash set.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use kube::api::DynamicObject;

use crate::core::health::{Health, health};
use crate::core::kind::WorkloadKind;
use crate::core::names::{AFTER, AnnotationNames, Annotations, RecordNames, WAVE, reads};
use crate::core::record::{Stored, parse_record};
use crate::core::refs::{Reference, SourceKind, SourceRef, references};
use crate::core::stamp::StampInput;
use crate::core::sync::Recover;
use crate::core::workload::Workload;

/// A workload by kind, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct WorkloadKey {
    pub kind: WorkloadKind,
    pub namespace: Arc<str>,
    pub name: Arc<str>,
}

impl std::fmt::Display for WorkloadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// The annotation name `name`, shared: only the ~25 names [`reads`] accepts are ever
/// interned, so the set stays that small.
fn intern(name: &str) -> Arc<str> {
    static NAMES: OnceLock<Mutex<BTreeSet<Arc<str>>>> = OnceLock::new();
    let mut set = NAMES.get_or_init(Default::default).lock().recover();
    if let Some(n) = set.get(name) {
        return n.clone();
    }
    let n: Arc<str> = Arc::from(name);
    set.insert(n.clone());
    n
}

/// The annotations the watcher keeps of a workload: (name, value) pairs sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Kept(Box<[(Arc<str>, Box<str>)]>);

impl Kept {
    /// The pairs of `all` whose name `keep` accepts.
    fn filter(all: BTreeMap<String, String>, keep: impl Fn(&str) -> bool) -> Kept {
        Kept(
            all.into_iter()
                .filter(|(k, _)| keep(k))
                .map(|(k, v)| (intern(&k), v.into_boxed_str()))
                .collect(),
        )
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| k.as_ref().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_ref())
    }

    pub(crate) fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

impl Annotations for Kept {
    fn value(&self, name: &str) -> Option<&str> {
        self.get(name)
    }
}

/// What the watcher keeps of one workload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WorkloadEntry {
    pub key: WorkloadKey,
    pub resource_version: Option<Box<str>>,
    pub uid: Option<Box<str>>,
    /// only the annotations the policy, the record and pause-period read
    pub annotations: Kept,
    pub template_annotations: Kept,
    pub refs: Vec<Reference>,
    /// `spec.paused` (Deployments)
    pub paused: bool,
    /// has a controlling owner
    pub controlled: bool,
    /// where its rollout stands (what a later wave waits for)
    pub health: Health,
}

/// The `spec.workloadRef` of an Argo Rollout: `(kind, name)` of the object whose pod
/// template it takes.
pub(crate) fn workload_ref(obj: &DynamicObject) -> Option<(String, String)> {
    let r = obj.data.get("spec")?.get("workloadRef")?;
    Some((
        r.get("kind")?.as_str()?.to_string(),
        r.get("name")?.as_str()?.to_string(),
    ))
}

impl WorkloadEntry {
    pub(crate) fn from_workload(
        w: Workload,
        resource_version: Option<String>,
        uid: Option<String>,
        paused: bool,
        names: &AnnotationNames,
        record: &RecordNames,
    ) -> WorkloadEntry {
        let mut refs = references(&w.pod);
        refs.shrink_to_fit();
        let controlled = w.controlled;
        let keep = |k: &str| reads(names, record, k);
        WorkloadEntry {
            key: WorkloadKey {
                kind: w.kind,
                namespace: w.namespace.into(),
                name: w.name.into(),
            },
            resource_version: resource_version.map(String::into_boxed_str),
            uid: uid.map(String::into_boxed_str),
            annotations: Kept::filter(w.annotations, keep),
            template_annotations: Kept::filter(w.template_annotations, keep),
            refs,
            paused,
            controlled,
            health: Health::Complete,
        }
    }

    /// Reads a watched (or patched) object; `None`, with a log line, for one hashroll cannot
    /// read.
    pub(crate) fn from_object(
        kind: WorkloadKind,
        obj: &DynamicObject,
        names: &AnnotationNames,
        record: &RecordNames,
    ) -> Option<WorkloadEntry> {
        match crate::k8s::api::workload(kind, obj) {
            Ok((w, paused)) => {
                let mut e = WorkloadEntry::from_workload(
                    w,
                    obj.metadata.resource_version.clone(),
                    obj.metadata.uid.clone(),
                    paused,
                    names,
                    record,
                );
                e.health = health(kind.as_str(), &obj.data, obj.metadata.generation);
                Some(e)
            }
            Err(crate::core::workload::WorkloadError::NoTemplate)
                if workload_ref(obj).is_some() =>
            {
                // an Argo Rollout whose template is a Deployment's: that Deployment is what
                // is stamped and rolled
                tracing::debug!(rollout = ?obj.metadata.name, "template from a Deployment; rolled through it");
                None
            }
            Err(e) => {
                let ns = obj.metadata.namespace.as_deref().unwrap_or_default();
                let name = obj.metadata.name.as_deref().unwrap_or_default();
                tracing::warn!(workload = %format!("{kind}/{ns}/{name}"), error = %e, "cannot read workload; skipped");
                None
            }
        }
    }

    /// This workload as the stamp reads it.
    pub(crate) fn input(&self) -> StampInput<'_> {
        StampInput {
            kind: self.key.kind,
            controlled: self.controlled,
            namespace: &self.key.namespace,
            annotations: &self.annotations,
            template_annotations: &self.template_annotations,
            refs: &self.refs,
        }
    }

    pub(crate) fn stored(&self, names: &RecordNames) -> Stored {
        Stored::from_annotations(
            self.annotations.get(&names.record),
            self.template_annotations.get(&names.token),
        )
    }

    /// Sources this workload might track: what it references, plus plain names in its
    /// reload lists (a regex entry is handled by `has_lists`), plus its record's sources.
    fn index_keys(&self, names: &AnnotationNames, record: &RecordNames) -> BTreeSet<SourceRef> {
        let mut out: BTreeSet<SourceRef> = self.refs.iter().map(|r| r.source.clone()).collect();
        for ann in [&self.annotations, &self.template_annotations] {
            for kind in SourceKind::ALL {
                if let Some(list) = ann.get(names.reload_of(kind)) {
                    out.extend(
                        crate::core::lists::list_entries(list).map(|e| SourceRef::new(kind, e)),
                    );
                }
            }
        }
        if let Some(r) = self.annotations.get(&record.record).and_then(parse_record) {
            out.extend(r.sources().cloned());
        }
        out
    }

    /// Whether it takes part in a roll order: a wave or an `after` list, on itself or its
    /// pod template.
    pub(crate) fn ordered(&self) -> bool {
        [WAVE, AFTER]
            .iter()
            .any(|a| self.annotations.contains_key(a) || self.template_annotations.contains_key(a))
    }

    pub(crate) fn has_lists(&self, names: &AnnotationNames) -> bool {
        [&self.annotations, &self.template_annotations]
            .iter()
            .any(|a| {
                SourceKind::ALL
                    .iter()
                    .any(|k| a.contains_key(names.reload_of(*k)))
            })
    }
}

/// Past this many workloads, an index entry is a hash set instead of a vector.
const FEW: usize = 16;

/// The workloads of one index entry: a vector while few (most sources are used by one
/// workload or a handful; one key costs 48 bytes, a hash set of one 200), a hash set past
/// [`FEW`] (a ConfigMap every workload of a big namespace uses), so adding and removing
/// stay cheap.
#[derive(Debug)]
enum KeySet {
    Few(Vec<WorkloadKey>),
    Many(HashSet<WorkloadKey>),
}

impl Default for KeySet {
    fn default() -> Self {
        KeySet::Few(Vec::new())
    }
}

impl KeySet {
    fn insert(&mut self, key: WorkloadKey) {
        match self {
            KeySet::Few(v) if v.contains(&key) => {}
            KeySet::Few(v) if v.len() < FEW => {
                if v.is_empty() {
                    v.reserve_exact(1);
                }
                v.push(key);
            }
            KeySet::Few(v) => {
                let mut set: HashSet<WorkloadKey> = v.drain(..).collect();
                set.insert(key);
                *self = KeySet::Many(set);
            }
            KeySet::Many(set) => {
                set.insert(key);
            }
        }
    }

    fn remove(&mut self, key: &WorkloadKey) {
        match self {
            KeySet::Few(v) => {
                if let Some(i) = v.iter().position(|k| k == key) {
                    v.swap_remove(i);
                }
            }
            KeySet::Many(set) => {
                set.remove(key);
            }
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            KeySet::Few(v) => v.is_empty(),
            KeySet::Many(set) => set.is_empty(),
        }
    }

    fn keys(&self) -> Box<dyn Iterator<Item = &WorkloadKey> + '_> {
        match self {
            KeySet::Few(v) => Box::new(v.iter()),
            KeySet::Many(set) => Box::new(set.iter()),
        }
    }
}

/// All workloads and the index source → workloads.
#[derive(Debug, Default)]
pub(crate) struct WorkloadStore {
    entries: HashMap<WorkloadKey, WorkloadEntry>,
    index: HashMap<(Arc<str>, SourceRef), KeySet>,
    /// per namespace, the workloads with reload lists (their regexes may match any source)
    listers: HashMap<Arc<str>, HashSet<WorkloadKey>>,
    /// per namespace, how many workloads take part in a roll order (a wave or an `after`
    /// list): where there are none, a roll asks nothing of the others
    ordered: HashMap<Arc<str>, usize>,
    names: AnnotationNames,
    record: RecordNames,
}

impl WorkloadStore {
    pub(crate) fn new(names: AnnotationNames, record: RecordNames) -> Self {
        WorkloadStore {
            names,
            record,
            ..Default::default()
        }
    }

    fn unindex(&mut self, e: &WorkloadEntry) {
        for s in e.index_keys(&self.names, &self.record) {
            let k = (e.key.namespace.clone(), s);
            if let Some(set) = self.index.get_mut(&k) {
                set.remove(&e.key);
                if set.is_empty() {
                    self.index.remove(&k);
                }
            }
        }
        if let Some(set) = self.listers.get_mut(&e.key.namespace) {
            set.remove(&e.key);
            if set.is_empty() {
                self.listers.remove(&e.key.namespace);
            }
        }
        if e.ordered()
            && let Some(n) = self.ordered.get_mut(&e.key.namespace)
        {
            *n -= 1;
            if *n == 0 {
                self.ordered.remove(&e.key.namespace);
            }
        }
    }

    pub(crate) fn upsert(&mut self, e: WorkloadEntry) {
        if let Some(old) = self.entries.remove(&e.key) {
            self.unindex(&old);
        }
        for s in e.index_keys(&self.names, &self.record) {
            self.index
                .entry((e.key.namespace.clone(), s))
                .or_default()
                .insert(e.key.clone());
        }
        if e.has_lists(&self.names) {
            self.listers
                .entry(e.key.namespace.clone())
                .or_default()
                .insert(e.key.clone());
        }
        if e.ordered() {
            *self.ordered.entry(e.key.namespace.clone()).or_default() += 1;
        }
        self.entries.insert(e.key.clone(), e);
    }

    /// Whether a workload of `namespace` takes part in a roll order.
    pub(crate) fn has_ordered(&self, namespace: &str) -> bool {
        self.ordered.contains_key(namespace)
    }

    pub(crate) fn remove(&mut self, key: &WorkloadKey) -> Option<WorkloadEntry> {
        let e = self.entries.remove(key)?;
        self.unindex(&e);
        Some(e)
    }

    pub(crate) fn get(&self, key: &WorkloadKey) -> Option<&WorkloadEntry> {
        self.entries.get(key)
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = &WorkloadEntry> {
        self.entries.values()
    }

    /// The workloads a change of `source` in `namespace` may concern.
    pub(crate) fn affected(&self, namespace: &str, source: &SourceRef) -> Vec<WorkloadKey> {
        let mut out: HashSet<WorkloadKey> = self
            .index
            .get(&(Arc::from(namespace), source.clone()))
            .map(|set| set.keys().cloned().collect())
            .unwrap_or_default();
        if let Some(l) = self.listers.get(namespace) {
            out.extend(l.iter().cloned());
        }
        let mut v: Vec<_> = out.into_iter().collect();
        v.sort();
        v
    }

    pub(crate) fn keys(&self) -> Vec<WorkloadKey> {
        let mut v: Vec<_> = self.entries.keys().cloned().collect();
        v.sort();
        v
    }

    /// Keeps only the workloads of `kind` in `seen` (after a relist).
    /// After a relist of `kind` cluster-wide (`scope` `None`) or in one namespace: drops the
    /// entries in its reach it did not see.
    pub(crate) fn retain_kind(
        &mut self,
        kind: WorkloadKind,
        scope: Option<&str>,
        seen: &HashSet<WorkloadKey>,
    ) {
        let gone: Vec<WorkloadKey> = self
            .entries
            .keys()
            .filter(|k| k.kind == kind && scope.is_none_or(|ns| &*k.namespace == ns))
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        for k in gone {
            self.remove(&k);
        }
    }
    /// (sources indexed, workloads with a record)
    pub(crate) fn counts(&self) -> (usize, usize) {
        let tracked = self
            .entries
            .values()
            .filter(|e| e.annotations.contains_key(&self.record.record))
            .count();
        (self.index.len(), tracked)
    }
}

#[cfg(test)]
mod tests {
    /// Test-only views of the type, kept out of its production impl.
    impl WorkloadStore {
        pub(crate) fn is_empty(&self) -> bool {
            self.entries.is_empty()
        }
    }

    use super::*;
    use serde_json::json;

    fn entry(name: &str, ann: serde_json::Value, spec: serde_json::Value) -> WorkloadEntry {
        let obj = json!({"metadata": {"name": name, "namespace": "ns", "annotations": ann},
            "spec": {"template": {"spec": spec}}});
        let w = Workload::from_value(WorkloadKind::Deployment, "ns", &obj).unwrap();
        WorkloadEntry::from_workload(
            w,
            Some("1".into()),
            None,
            false,
            &AnnotationNames::default(),
            &RecordNames::default(),
        )
    }

    #[test]
    fn a_huge_reload_list_indexes_no_more_than_the_policy_reads() {
        // 256 KiB of names: the policy reads 64 of them, and so does the index
        let list: Vec<String> = (0..40_000).map(|i| format!("c{i}")).collect();
        let e = entry(
            "huge",
            json!({"configmap.reloader.stakater.com/reload": list.join(",")}),
            json!({"containers": [{"name": "c"}]}),
        );
        let keys = e.index_keys(&AnnotationNames::default(), &RecordNames::default());
        assert_eq!(keys.len(), crate::core::limits::MAX_LIST_ENTRIES);
        assert!(keys.contains(&SourceRef::configmap("c0")));
        assert!(!keys.contains(&SourceRef::configmap("c64")));
    }

    #[test]
    fn index_finds_referencing_listing_and_recorded_workloads() {
        let mut s = WorkloadStore::new(AnnotationNames::default(), RecordNames::default());
        s.upsert(entry(
            "uses",
            json!({"reloader.stakater.com/auto": "true", "unrelated": "x"}),
            json!({"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "cfg"}}]}]}),
        ));
        s.upsert(entry(
            "lists",
            json!({"configmap.reloader.stakater.com/reload": "other, cfg-.*"}),
            json!({"containers": [{"name": "c"}]}),
        ));
        s.upsert(entry(
            "recorded",
            json!({"hashroll.dev/sources": "{\"secret/old\":\"absent\"}"}),
            json!({"containers": [{"name": "c"}]}),
        ));
        s.upsert(entry(
            "none",
            json!({}),
            json!({"containers": [{"name": "c"}]}),
        ));
        let names = |v: Vec<WorkloadKey>| {
            v.into_iter()
                .map(|k| k.name.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(s.affected("ns", &SourceRef::configmap("cfg"))),
            vec!["lists", "uses"]
        );
        assert_eq!(
            names(s.affected("ns", &SourceRef::configmap("other"))),
            vec!["lists"]
        );
        assert_eq!(
            names(s.affected("ns", &SourceRef::secret("old"))),
            vec!["lists", "recorded"]
        );
        assert!(
            s.affected("elsewhere", &SourceRef::configmap("cfg"))
                .is_empty()
        );
        // unrelated annotations are not kept
        let k = WorkloadKey {
            kind: WorkloadKind::Deployment,
            namespace: "ns".into(),
            name: "uses".into(),
        };
        assert!(!s.get(&k).unwrap().annotations.contains_key("unrelated"));
        // an update that drops the reference drops it from the index
        s.upsert(entry(
            "uses",
            json!({"reloader.stakater.com/auto": "true"}),
            json!({"containers": [{"name": "c"}]}),
        ));
        assert_eq!(
            names(s.affected("ns", &SourceRef::configmap("cfg"))),
            vec!["lists"]
        );
        s.remove(&WorkloadKey {
            name: "lists".into(),
            ..k.clone()
        });
        assert!(s.affected("ns", &SourceRef::configmap("cfg")).is_empty());
        s.retain_kind(WorkloadKind::Deployment, None, &HashSet::new());
        assert!(s.is_empty());
    }

    #[test]
    fn a_namespace_relist_drops_only_that_namespaces_workloads() {
        let mut s = WorkloadStore::new(AnnotationNames::default(), RecordNames::default());
        s.upsert(entry(
            "web",
            json!({"reloader.stakater.com/auto": "true"}),
            json!({"containers": [{"name": "c"}]}),
        ));
        // another namespace's watch relisted and saw nothing: "ns" is not in its reach
        s.retain_kind(WorkloadKind::Deployment, Some("other"), &HashSet::new());
        assert!(!s.is_empty());
        s.retain_kind(WorkloadKind::Deployment, Some("ns"), &HashSet::new());
        assert!(s.is_empty());
    }

    #[test]
    fn a_source_used_by_many_workloads_indexes_them_all() {
        let mut s = WorkloadStore::new(AnnotationNames::default(), RecordNames::default());
        let uses = json!({"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "shared"}}]}]});
        let auto = json!({"reloader.stakater.com/auto": "true"});
        // past the vector's size, into the hash set, and back down by removals
        for i in 0..(FEW + 5) {
            s.upsert(entry(&format!("w{i:02}"), auto.clone(), uses.clone()));
        }
        // an update of one does not count it twice
        s.upsert(entry("w00", auto.clone(), uses.clone()));
        let shared = SourceRef::configmap("shared");
        assert_eq!(s.affected("ns", &shared).len(), FEW + 5);
        for i in 0..(FEW + 5) {
            if i % 2 == 0 {
                s.remove(&WorkloadKey {
                    kind: WorkloadKind::Deployment,
                    namespace: "ns".into(),
                    name: format!("w{i:02}").into(),
                });
            }
        }
        let left: Vec<String> = s
            .affected("ns", &shared)
            .into_iter()
            .map(|k| k.name.to_string())
            .collect();
        let want: Vec<String> = (0..(FEW + 5))
            .filter(|i| i % 2 == 1)
            .map(|i| format!("w{i:02}"))
            .collect();
        assert_eq!(left, want);
    }

    #[test]
    fn kept_annotations_read_like_the_map() {
        let e = entry(
            "w",
            json!({"reloader.stakater.com/auto": "true", "other": "x",
                "hashroll.dev/sources": "{}"}),
            json!({"containers": [{"name": "c"}]}),
        );
        assert_eq!(
            e.annotations.get("reloader.stakater.com/auto"),
            Some("true")
        );
        assert_eq!(e.annotations.get("hashroll.dev/sources"), Some("{}"));
        assert!(!e.annotations.contains_key("other"));
        assert!(e.annotations.get("").is_none());
        assert_eq!(e.annotations.0.len(), 2);
        assert!(e.template_annotations.0.is_empty());
        // names are shared between workloads
        let f = entry(
            "f",
            json!({"reloader.stakater.com/auto": "true"}),
            json!({"containers": []}),
        );
        let name_of = |e: &WorkloadEntry| {
            e.annotations
                .0
                .iter()
                .find(|(k, _)| &**k == "reloader.stakater.com/auto")
                .map(|(k, _)| k.clone())
                .expect("kept")
        };
        assert!(Arc::ptr_eq(&name_of(&e), &name_of(&f)));
    }
}
