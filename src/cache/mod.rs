//! The source cache: a digest per key of every ConfigMap and Secret (never the data), and
//! of the versions every SecretProviderClass's pods mounted (`csi`), plus the few
//! annotations the policy reads. Filled by watches (paged initial lists), shared by webhook
//! and watcher.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Client;
use kube::api::{Api, ObjectMeta};

pub(crate) mod csi;
pub mod filter;
mod view;
mod watch;
pub use view::NamespaceView;
pub(crate) use watch::watch;

use crate::core::digest::SourceDigests;
use crate::core::names::AnnotationNames;
use crate::core::refs::{SourceKind, SourceRef};
use crate::core::selector::LabelSelector;
use crate::core::source::SourceInfo;
use crate::core::sync::Recover;
use filter::NamespaceFilter;

/// What the cache keeps of one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceEntry {
    pub info: SourceInfo,
    pub digests: SourceDigests,
    /// the list generation that last saw it (entries a relist did not see are gone)
    generation: u32,
    /// its `resourceVersion` read as a number (0: not one): a read older than what the
    /// cache holds never replaces it
    resource_version: u64,
}

/// How a source changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Created,
    /// its data changed
    Data,
    /// only the annotations/labels the policy reads changed
    Meta,
    Deleted,
}

/// A change the watcher may act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceChange {
    pub namespace: String,
    pub source: SourceRef,
    pub kind: ChangeKind,
}

/// namespace → kind → name → entry: a lookup borrows its key (no allocation on the
/// admission path), and a namespace's name is stored once, not once per source. An entry
/// is its name, one shared allocation of digests and 32 bytes in a B-tree node (about 160
/// bytes a source in all: a cluster's 100,000 Secrets take 16 MiB).
type Map = BTreeMap<String, Namespace>;

/// The sources of one namespace, per kind ([`idx`]), by name.
#[derive(Default)]
struct Namespace([BTreeMap<Box<str>, SourceEntry>; KINDS]);

/// Names copied out of the cache's lock at once by `names_matching`.
const MATCH_CHUNK: usize = 256;

/// Kinds of source (rows of `refs::SOURCE_KINDS`).
const KINDS: usize = SourceKind::ALL.len();

impl Namespace {
    fn is_empty(&self) -> bool {
        self.0.iter().all(BTreeMap::is_empty)
    }
    fn len(&self) -> usize {
        self.0.iter().map(BTreeMap::len).sum()
    }
}

pub struct SourceCache {
    map: RwLock<Map>,
    synced: [AtomicBool; KINDS],
    /// per kind, the watches whose first list is not in yet (one, or one per namespace)
    unlisted: [AtomicUsize; KINDS],
    /// per kind, the generation of the current cluster-wide (re)list
    generations: [AtomicU32; KINDS],
    /// with `--namespaced`, a watch per namespace: per namespace and kind, the generation of
    /// that watch's current (re)list (an entry's generation is the sum of the two; only one
    /// of them ever moves)
    ns_generations: RwLock<HashMap<String, [u32; KINDS]>>,
    names: AnnotationNames,
    selector: LabelSelector,
    namespaces: NamespaceFilter,
    /// sources a GET found absent lately, so admission asks again only after a while
    absent: Mutex<HashMap<(String, SourceRef), Instant>>,
    /// sources deleted lately, with the resourceVersion of the deletion: a read of the
    /// object from before it (a GET that crossed the delete event) does not bring it back
    deleted: Mutex<HashMap<(String, SourceRef), (u64, Instant)>>,
    /// where a change the cache learns outside its watches (a GET by the webhook or the
    /// roller) is sent, as the watch sends its own: whichever path learns a version first
    /// announces it, and the other then finds the cache up to date (exactly once)
    announce: OnceLock<tokio::sync::mpsc::UnboundedSender<SourceChange>>,
    /// what the policy reads of each SecretProviderClass object (match, ignore, labels), by
    /// namespace and name: a class's entry exists while pods mount it, its object may come
    /// before or after
    class_info: Mutex<HashMap<(String, String), SourceInfo>>,
}

/// How long a deletion is remembered against stale reads (a GET takes far less).
const DELETED_TTL: Duration = Duration::from_secs(60);

/// How long a GET that found a source absent stands for admission (the watch brings a
/// source created meanwhile into the cache anyway).
const ABSENT_TTL: Duration = Duration::from_secs(30);
/// Entries of the absent-source memo before it starts over.
const ABSENT_MAX: usize = 10_000;

fn idx(kind: SourceKind) -> usize {
    kind.index()
}

impl SourceCache {
    pub fn new(
        names: AnnotationNames,
        selector: LabelSelector,
        namespaces: NamespaceFilter,
    ) -> Self {
        SourceCache {
            map: RwLock::new(BTreeMap::new()),
            synced: std::array::from_fn(|_| AtomicBool::new(false)),
            unlisted: std::array::from_fn(|_| AtomicUsize::new(1)),
            generations: std::array::from_fn(|_| AtomicU32::new(0)),
            ns_generations: RwLock::new(HashMap::new()),
            names,
            selector,
            namespaces,
            absent: Mutex::new(HashMap::new()),
            deleted: Mutex::new(HashMap::new()),
            announce: OnceLock::new(),
            class_info: Mutex::new(HashMap::new()),
        }
    }

    /// A kind that is not watched (turned off, or its API not served yet) holds nothing
    /// to wait for.
    pub fn mark_synced(&self, kind: SourceKind) {
        self.synced[idx(kind)].store(true, Ordering::Release);
    }

    /// Each kind is filled by `n` watches (one per namespace with `--namespaced`): it is
    /// synced once all of their first lists are in. Before the watches start.
    pub fn watches_per_kind(&self, n: usize) {
        for u in &self.unlisted {
            u.store(n.max(1), Ordering::Release);
        }
    }

    /// One watch of `kind` finished its first list; true when that was the last one (the
    /// kind is synced from now on).
    fn first_list_done(&self, kind: SourceKind) -> bool {
        let last =
            self.unlisted[idx(kind)]
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                == Ok(1);
        if last {
            self.synced[idx(kind)].store(true, Ordering::Release);
        }
        last
    }

    /// The generation an entry of `kind` in `namespace` is stamped with now.
    fn generation(&self, kind: SourceKind, namespace: &str) -> u32 {
        let global = self.generations[idx(kind)].load(Ordering::Acquire);
        let own = self
            .ns_generations
            .read()
            .recover()
            .get(namespace)
            .map_or(0, |g| g[idx(kind)]);
        global.wrapping_add(own)
    }

    /// Where changes learned by a GET go (the channel the watches send on).
    pub fn announce_to(&self, tx: tokio::sync::mpsc::UnboundedSender<SourceChange>) {
        let _ = self.announce.set(tx);
    }

    /// Sends a change learned outside the watches on, once that kind's first list is in
    /// (before it, the watcher's start-up reconcile reads the whole cache anyway).
    pub(crate) fn announce(&self, change: Option<SourceChange>) {
        if let Some(c) = change
            && self.synced[idx(c.source.kind)].load(Ordering::Acquire)
            && let Some(tx) = self.announce.get()
        {
            let _ = tx.send(c);
        }
    }

    /// Both initial lists are in.
    pub fn is_synced(&self) -> bool {
        self.synced.iter().all(|s| s.load(Ordering::Acquire))
    }

    pub fn namespaces(&self) -> &NamespaceFilter {
        &self.namespaces
    }

    pub fn len(&self) -> usize {
        self.map.read().recover().values().map(Namespace::len).sum()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn entry_of(&self, meta: &ObjectMeta, digests: SourceDigests) -> SourceEntry {
        SourceEntry {
            info: SourceInfo::from_annotations(
                &self.names,
                meta.annotations.as_ref(),
                self.selector.matches(meta.labels.as_ref()),
            ),
            digests,
            generation: 0,
            resource_version: meta
                .resource_version
                .as_deref()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        }
    }

    /// Digests of a ConfigMap's `data` and `binaryData`.
    pub fn configmap_entry(&self, cm: &ConfigMap) -> SourceEntry {
        let d = SourceDigests::from_data(
            cm.data
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_bytes())),
            cm.binary_data
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.0.as_slice())),
        );
        self.entry_of(&cm.metadata, d)
    }

    /// Digests of a Secret's `data` (and `stringData`, which a GET never returns).
    pub fn secret_entry(&self, s: &Secret) -> SourceEntry {
        let d = SourceDigests::from_data(
            s.string_data
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_bytes())),
            s.data
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.0.as_slice())),
        );
        self.entry_of(&s.metadata, d)
    }

    /// Stores an entry; the change it makes, if any.
    pub fn upsert(
        &self,
        namespace: &str,
        source: &SourceRef,
        entry: SourceEntry,
    ) -> Option<SourceChange> {
        let mut entry = entry;
        entry.generation = self.generation(source.kind, namespace);
        if self.deleted_after(namespace, source, entry.resource_version) {
            return None;
        }
        let mut map = self.map.write().recover();
        if !map.contains_key(namespace) {
            map.insert(namespace.to_string(), Namespace::default());
        }
        let map = &mut map.get_mut(namespace).expect("inserted above").0[idx(source.kind)];
        let kind = match map.get_mut(source.name.as_str()) {
            // older than what is here (a GET and a watch event crossing): kept, and still
            // seen by this list
            Some(old)
                if entry.resource_version != 0 && entry.resource_version < old.resource_version =>
            {
                old.generation = entry.generation;
                return None;
            }
            None => ChangeKind::Created,
            Some(old) if old.digests != entry.digests => ChangeKind::Data,
            Some(old) if old.info != entry.info => ChangeKind::Meta,
            Some(old) => {
                old.generation = entry.generation;
                return None;
            }
        };
        map.insert(source.name.as_str().into(), entry);
        Some(SourceChange {
            namespace: namespace.to_string(),
            source: source.clone(),
            kind,
        })
    }

    /// Whether `source` was deleted at a resourceVersion at or after `rv` (lately).
    fn deleted_after(&self, namespace: &str, source: &SourceRef, rv: u64) -> bool {
        if rv == 0 {
            return false;
        }
        let memo = self.deleted.lock().recover();
        memo.get(&(namespace.to_string(), source.clone()))
            .is_some_and(|(at_rv, at)| *at_rv >= rv && at.elapsed() < DELETED_TTL)
    }

    /// A delete event: the entry goes, and reads of the object from before the deletion
    /// (resourceVersion `rv` and older) are refused for a while.
    pub fn remove_deleted(
        &self,
        namespace: &str,
        source: &SourceRef,
        rv: u64,
    ) -> Option<SourceChange> {
        if rv > 0 {
            let mut memo = self.deleted.lock().recover();
            if memo.len() >= ABSENT_MAX {
                memo.retain(|_, (_, at)| at.elapsed() < DELETED_TTL);
                if memo.len() >= ABSENT_MAX {
                    memo.clear();
                }
            }
            memo.insert(
                (namespace.to_string(), source.clone()),
                (rv, Instant::now()),
            );
        }
        self.remove(namespace, source)
    }

    pub fn remove(&self, namespace: &str, source: &SourceRef) -> Option<SourceChange> {
        let mut map = self.map.write().recover();
        let sources = map.get_mut(namespace)?;
        let removed = sources.0[idx(source.kind)].remove(source.name.as_str());
        if sources.is_empty() {
            map.remove(namespace);
        }
        removed.map(|_| SourceChange {
            namespace: namespace.to_string(),
            source: source.clone(),
            kind: ChangeKind::Deleted,
        })
    }

    /// A (re)list of `kind` starts, cluster-wide (`None`) or in one namespace: entries it
    /// does not see again are gone at its end.
    fn begin_list(&self, kind: SourceKind, scope: Option<&str>) {
        match scope {
            None => {
                self.generations[idx(kind)].fetch_add(1, Ordering::AcqRel);
            }
            Some(ns) => {
                let mut g = self.ns_generations.write().recover();
                let own = &mut g.entry(ns.to_string()).or_default()[idx(kind)];
                *own = own.wrapping_add(1);
            }
        }
    }

    /// After a (re)list cluster-wide (`None`) or in one namespace: drops the entries of
    /// `kind` it did not see.
    fn end_list(&self, kind: SourceKind, scope: Option<&str>) -> Vec<SourceChange> {
        let mut map = self.map.write().recover();
        let mut gone = Vec::new();
        map.retain(|namespace, sources| {
            if scope.is_some_and(|ns| ns != namespace) {
                return true;
            }
            let current = self.generation(kind, namespace);
            sources.0[idx(kind)].retain(|name, e| {
                let stale = e.generation != current;
                if stale {
                    gone.push(SourceChange {
                        namespace: namespace.clone(),
                        source: SourceRef::new(kind, name.as_ref()),
                        kind: ChangeKind::Deleted,
                    });
                }
                !stale
            });
            !sources.is_empty()
        });
        gone
    }

    pub fn get(&self, namespace: &str, source: &SourceRef) -> Option<SourceEntry> {
        self.map.read().recover().get(namespace)?.0[idx(source.kind)]
            .get(source.name.as_str())
            .cloned()
    }

    /// Whether a GET found `source` absent within the last [`ABSENT_TTL`].
    pub fn recently_absent(&self, namespace: &str, source: &SourceRef) -> bool {
        let memo = self.absent.lock().recover();
        memo.get(&(namespace.to_string(), source.clone()))
            .is_some_and(|at| at.elapsed() < ABSENT_TTL)
    }

    fn note_absent(&self, namespace: &str, source: &SourceRef) {
        let mut memo = self.absent.lock().recover();
        if memo.len() >= ABSENT_MAX {
            memo.retain(|_, at| at.elapsed() < ABSENT_TTL);
            if memo.len() >= ABSENT_MAX {
                memo.clear();
            }
        }
        memo.insert((namespace.to_string(), source.clone()), Instant::now());
    }

    /// A miss may only mean the source is newer than the cache: one GET decides. Found
    /// sources go into the cache. Returns whether it exists.
    pub async fn confirm_miss(
        &self,
        client: &Client,
        namespace: &str,
        source: &SourceRef,
    ) -> Result<bool, kube::Error> {
        if !source.kind.row().gettable {
            // known only through its watch (a class through its pods' statuses)
            return Ok(self.get(namespace, source).is_some());
        }
        let entry = match source.kind {
            SourceKind::ConfigMap => Api::<ConfigMap>::namespaced(client.clone(), namespace)
                .get_opt(&source.name)
                .await?
                .map(|cm| self.configmap_entry(&cm)),
            SourceKind::Secret => Api::<Secret>::namespaced(client.clone(), namespace)
                .get_opt(&source.name)
                .await?
                .map(|s| self.secret_entry(&s)),
            SourceKind::SecretProviderClass => None,
        };
        Ok(match entry {
            Some(e) => {
                // a newer version than the watch has brought: the other workloads that
                // track it must hear of it now, not at the next relist
                let change = self.upsert(namespace, source, e);
                self.announce(change);
                true
            }
            None => {
                self.note_absent(namespace, source);
                false
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::source::SourceView;
    use std::collections::BTreeMap;

    fn cm(ns: &str, name: &str, data: &[(&str, &str)], ann: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                annotations: Some(
                    ann.iter()
                        .map(|(a, b)| (a.to_string(), b.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            data: Some(
                data.iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn a_version_learned_by_a_get_is_announced_once_whichever_path_is_first() {
        let c = SourceCache::new(
            AnnotationNames::default(),
            LabelSelector::default(),
            NamespaceFilter::default(),
        );
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        c.announce_to(tx);
        for s in &c.synced {
            s.store(true, Ordering::Release);
        }
        let s = SourceRef::configmap("a");
        let at = |rv: &str, v: &str| {
            let mut o = cm("ns", "a", &[("k", v)], &[]);
            o.metadata.resource_version = Some(rv.into());
            c.configmap_entry(&o)
        };
        assert!(c.upsert("ns", &s, at("1", "old")).is_some());
        // what confirm_miss does with a newer version a GET brought
        let change = c.upsert("ns", &s, at("2", "new"));
        c.announce(change);
        let got = rx.try_recv().expect("announced");
        assert_eq!((got.source, got.kind), (s.clone(), ChangeKind::Data));
        // the watch event of the same version changes nothing and sends nothing
        assert!(c.upsert("ns", &s, at("2", "new")).is_none());
        c.announce(None);
        assert!(rx.try_recv().is_err(), "announced twice");
        // a removal learned by a GET (the roller's refresh) is announced too
        let gone = c.remove("ns", &s);
        c.announce(gone);
        assert_eq!(rx.try_recv().map(|g| g.source).ok(), Some(s));
    }

    #[test]
    fn a_stale_read_never_replaces_a_newer_one_nor_undoes_a_deletion() {
        let c = SourceCache::new(
            AnnotationNames::default(),
            LabelSelector::default(),
            NamespaceFilter::default(),
        );
        let s = SourceRef::configmap("a");
        let at = |rv: &str, v: &str| {
            let mut o = cm("ns", "a", &[("k", v)], &[]);
            o.metadata.resource_version = Some(rv.into());
            c.configmap_entry(&o)
        };
        let up = |e: SourceEntry| c.upsert("ns", &s, e).map(|x| x.kind);
        assert_eq!(up(at("10", "new")), Some(ChangeKind::Created));
        // an older read (a GET crossing a watch event): ignored
        assert_eq!(up(at("9", "old")), None);
        assert_eq!(c.get("ns", &s).unwrap().resource_version, 10);
        // a relist that saw the entry only at an older version keeps it (not gone at its end)
        c.begin_list(SourceKind::ConfigMap, None);
        assert_eq!(up(at("9", "old")), None);
        assert!(c.end_list(SourceKind::ConfigMap, None).is_empty());
        assert!(c.get("ns", &s).is_some());
        // deleted at 11: a read from before does not bring it back; a re-creation does
        assert_eq!(
            c.remove_deleted("ns", &s, 11).map(|x| x.kind),
            Some(ChangeKind::Deleted)
        );
        assert_eq!(up(at("10", "new")), None);
        assert!(c.get("ns", &s).is_none());
        assert_eq!(up(at("12", "again")), Some(ChangeKind::Created));
    }

    #[test]
    fn a_namespace_relist_drops_only_its_own_namespaces_unseen_entries() {
        let c = SourceCache::new(
            AnnotationNames::default(),
            LabelSelector::default(),
            NamespaceFilter::default(),
        );
        c.watches_per_kind(2);
        let put = |ns: &str, name: &str| {
            let e = c.configmap_entry(&cm(ns, name, &[("k", "v")], &[]));
            c.upsert(ns, &SourceRef::configmap(name), e)
        };
        // two watches, one per namespace, each with its first list
        for ns in ["a", "b"] {
            c.begin_list(SourceKind::ConfigMap, Some(ns));
            put(ns, "x");
            put(ns, "y");
            assert!(c.end_list(SourceKind::ConfigMap, Some(ns)).is_empty());
        }
        assert!(!c.first_list_done(SourceKind::ConfigMap));
        assert!(!c.synced[idx(SourceKind::ConfigMap)].load(Ordering::Acquire));
        assert!(c.first_list_done(SourceKind::ConfigMap));
        assert!(c.synced[idx(SourceKind::ConfigMap)].load(Ordering::Acquire));
        // a's watch relists and no longer sees y: a/y goes, b is left alone (its entries
        // were stamped by b's own list, which did not start again)
        c.begin_list(SourceKind::ConfigMap, Some("a"));
        put("a", "x");
        let gone = c.end_list(SourceKind::ConfigMap, Some("a"));
        assert_eq!(gone.len(), 1, "{gone:?}");
        assert_eq!(
            (gone[0].namespace.as_str(), gone[0].source.name.as_str()),
            ("a", "y")
        );
        for (ns, name) in [("a", "x"), ("b", "x"), ("b", "y")] {
            assert!(
                c.get(ns, &SourceRef::configmap(name)).is_some(),
                "{ns}/{name}"
            );
        }
        // b's relist sees nothing: both of b go, a's stay
        c.begin_list(SourceKind::ConfigMap, Some("b"));
        assert_eq!(c.end_list(SourceKind::ConfigMap, Some("b")).len(), 2);
        assert!(c.get("a", &SourceRef::configmap("x")).is_some());
    }

    #[test]
    fn changes_are_classified() {
        let c = SourceCache::new(
            AnnotationNames::default(),
            LabelSelector::default(),
            NamespaceFilter::default(),
        );
        let s = SourceRef::configmap("a");
        let up = |o: &ConfigMap| c.upsert("ns", &s, c.configmap_entry(o)).map(|x| x.kind);
        assert_eq!(
            up(&cm("ns", "a", &[("k", "1")], &[])),
            Some(ChangeKind::Created)
        );
        assert_eq!(up(&cm("ns", "a", &[("k", "1")], &[])), None);
        assert_eq!(
            up(&cm("ns", "a", &[("k", "1")], &[("unrelated", "x")])),
            None
        );
        assert_eq!(
            up(&cm(
                "ns",
                "a",
                &[("k", "1")],
                &[("reloader.stakater.com/match", "true")]
            )),
            Some(ChangeKind::Meta)
        );
        assert_eq!(
            up(&cm(
                "ns",
                "a",
                &[("k", "2")],
                &[("reloader.stakater.com/match", "true")]
            )),
            Some(ChangeKind::Data)
        );
        assert_eq!(
            c.remove("ns", &s).map(|x| x.kind),
            Some(ChangeKind::Deleted)
        );
        assert_eq!(c.remove("ns", &s), None);
    }

    #[test]
    fn view_lists_names_of_one_namespace_and_kind() {
        let c = SourceCache::new(
            AnnotationNames::default(),
            LabelSelector::default(),
            NamespaceFilter::default(),
        );
        for (ns, name) in [("a", "x"), ("a", "y"), ("b", "z")] {
            c.upsert(
                ns,
                &SourceRef::configmap(name),
                c.configmap_entry(&cm(ns, name, &[], &[])),
            );
        }
        c.upsert(
            "a",
            &SourceRef::secret("s"),
            c.configmap_entry(&cm("a", "s", &[], &[])),
        );
        let all = |_: &str| true;
        assert_eq!(
            c.view("a").names_matching(SourceKind::ConfigMap, &all),
            vec!["x", "y"]
        );
        assert_eq!(
            c.view("a").names_matching(SourceKind::Secret, &all),
            vec!["s"]
        );
        assert_eq!(
            c.view("b").names_matching(SourceKind::ConfigMap, &all),
            vec!["z"]
        );
        assert_eq!(
            c.view("a")
                .names_matching(SourceKind::ConfigMap, &|n| n == "y"),
            vec!["y"]
        );
        assert!(c.view("a").digests(&SourceRef::configmap("z")).is_none());
    }

    /// Audit 9: a reload-list regex ran under the cache's read lock, so a tenant's costly
    /// list held up the watches' writes. The matcher now runs with the lock free, and every
    /// name is still seen once across the chunks.
    #[test]
    fn names_are_matched_outside_the_lock() {
        let c = SourceCache::new(
            AnnotationNames::default(),
            LabelSelector::default(),
            NamespaceFilter::default(),
        );
        let n = MATCH_CHUNK * 3 + 7;
        for i in 0..n {
            let name = format!("cm-{i:05}");
            c.upsert(
                "a",
                &SourceRef::configmap(&name),
                c.configmap_entry(&cm("a", &name, &[], &[])),
            );
        }
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let got = c.view("a").names_matching(SourceKind::ConfigMap, &|name| {
            calls.fetch_add(1, Ordering::Relaxed);
            assert!(c.map.try_write().is_ok(), "matched under the lock");
            name.ends_with('7')
        });
        assert_eq!(calls.load(Ordering::Relaxed), n);
        let want: Vec<String> = (0..n)
            .map(|i| format!("cm-{i:05}"))
            .filter(|s| s.ends_with('7'))
            .collect();
        assert_eq!(got, want);
    }
}
