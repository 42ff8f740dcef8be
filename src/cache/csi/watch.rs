//! The watches that feed [`Classes`] and the cache: the driver's pod statuses and the
//! classes themselves (for their annotations and labels), started once the driver's CRDs
//! are served.

use std::collections::HashSet;
use std::sync::Arc;

use kube::Client;
use kube::api::{Api, DynamicObject, ObjectMeta};
use kube::runtime::watcher;
use tokio::sync::mpsc;

use super::{ClassEvent, Classes, class_resource, read_status, status_resource};
use crate::cache::{SourceCache, SourceChange, SourceEntry, idx};
use crate::core::refs::{SourceKind, SourceRef};
use crate::core::source::SourceInfo;
use crate::core::sync::Recover;
use crate::k8s;
use crate::k8s::watch::{Handler, WatchCounts};

impl SourceCache {
    /// What the policy reads of a class: its object's, or an object's without annotations
    /// or labels while none is known.
    fn class_info_of(&self, namespace: &str, class: &str) -> SourceInfo {
        let memo = self.class_info.lock().recover();
        memo.get(&(namespace.to_string(), class.to_string()))
            .copied()
            .unwrap_or_else(|| {
                SourceInfo::from_annotations(&self.names, None, self.selector.matches(None))
            })
    }

    /// Applies what [`Classes`] found; the change it makes, if any.
    pub(crate) fn apply_class(&self, event: ClassEvent) -> Option<SourceChange> {
        match event {
            ClassEvent::Set {
                namespace,
                class,
                versions,
            } => {
                let entry = SourceEntry {
                    info: self.class_info_of(&namespace, &class),
                    digests: versions,
                    generation: 0,
                    resource_version: 0,
                };
                let source = SourceRef::new(SourceKind::SecretProviderClass, class);
                self.upsert(&namespace, &source, entry)
            }
            ClassEvent::Gone { namespace, class } => self.remove(
                &namespace,
                &SourceRef::new(SourceKind::SecretProviderClass, class),
            ),
        }
    }

    /// A SecretProviderClass object was seen (`Some`) or deleted (`None`): what the policy
    /// reads of it changes the entry of its class, if mounted.
    pub(crate) fn set_class_object(
        &self,
        namespace: &str,
        class: &str,
        meta: Option<&ObjectMeta>,
    ) -> Option<SourceChange> {
        let k = (namespace.to_string(), class.to_string());
        {
            let mut memo = self.class_info.lock().recover();
            match meta {
                Some(m) => {
                    let info = SourceInfo::from_annotations(
                        &self.names,
                        m.annotations.as_ref(),
                        self.selector.matches(m.labels.as_ref()),
                    );
                    memo.insert(k, info);
                }
                None => {
                    memo.remove(&k);
                }
            }
        }
        let source = SourceRef::new(SourceKind::SecretProviderClass, class);
        let mut entry = self.get(namespace, &source)?;
        entry.info = self.class_info_of(namespace, class);
        self.upsert(namespace, &source, entry)
    }

    /// The classes whose objects were not seen again by a relist of them are forgotten.
    fn retain_class_objects(&self, seen: &HashSet<(String, String)>) -> Vec<SourceChange> {
        let stale: Vec<(String, String)> = {
            let memo = self.class_info.lock().recover();
            memo.keys()
                .filter(|k| !seen.contains(*k))
                .cloned()
                .collect()
        };
        stale
            .iter()
            .filter_map(|(ns, class)| self.set_class_object(ns, class, None))
            .collect()
    }
}

/// Sends a change on once the class kind's first list is in (see `watch::SourceWatch`).
fn send(cache: &SourceCache, tx: &mpsc::UnboundedSender<SourceChange>, c: Option<SourceChange>) {
    if let Some(c) = c
        && cache.synced[idx(SourceKind::SecretProviderClass)]
            .load(std::sync::atomic::Ordering::Acquire)
    {
        let _ = tx.send(c);
    }
}

/// The watch of the statuses.
struct StatusWatch {
    cache: Arc<SourceCache>,
    counts: Arc<dyn WatchCounts>,
    tx: mpsc::UnboundedSender<SourceChange>,
    classes: Classes,
}

impl StatusWatch {
    fn apply_event(&self, e: Option<ClassEvent>) {
        if let Some(e) = e {
            send(&self.cache, &self.tx, self.cache.apply_class(e));
        }
    }
}

impl Handler<DynamicObject> for StatusWatch {
    fn relist_start(&mut self) {
        self.classes.relist_start();
        self.cache.begin_list(SourceKind::SecretProviderClass, None);
    }
    fn apply(&mut self, obj: DynamicObject) {
        let ns = obj.metadata.namespace.as_deref().unwrap_or_default();
        if !self.cache.namespaces.allows_static(ns) {
            return;
        }
        let name = obj.metadata.name.as_deref().unwrap_or_default();
        let view = read_status(&obj).unwrap_or_else(|why| {
            tracing::warn!(
                namespace = ns,
                status = name,
                why,
                "SecretProviderClassPodStatus not read; taken as not mounted"
            );
            None
        });
        let e = self.classes.apply(ns, name, view);
        self.apply_event(e);
    }
    fn delete(&mut self, obj: DynamicObject) {
        let ns = obj.metadata.namespace.as_deref().unwrap_or_default();
        let name = obj.metadata.name.as_deref().unwrap_or_default();
        let e = self.classes.delete(ns, name);
        self.apply_event(e);
    }
    fn relist_done(&mut self) {
        let cache = &self.cache;
        for e in self.classes.relist_done() {
            // refreshes what the relist saw (a change only where it is one)
            send(&self.cache, &self.tx, cache.apply_class(e));
        }
        for c in cache.end_list(SourceKind::SecretProviderClass, None) {
            send(&self.cache, &self.tx, Some(c));
        }
        let kind = idx(SourceKind::SecretProviderClass);
        if !cache.synced[kind].swap(true, std::sync::atomic::Ordering::AcqRel) {
            tracing::info!(
                classes = self.classes.len(),
                "SecretProviderClass statuses synced"
            );
        }
    }
    fn restarted(&mut self) {
        self.counts.restarted("secretproviderclasspodstatus");
    }
}

/// The watch of the SecretProviderClass objects (what `match` and `ignore` say).
struct ClassWatch {
    cache: Arc<SourceCache>,
    counts: Arc<dyn WatchCounts>,
    tx: mpsc::UnboundedSender<SourceChange>,
    listing: Option<HashSet<(String, String)>>,
}

impl Handler<DynamicObject> for ClassWatch {
    fn relist_start(&mut self) {
        self.listing = Some(HashSet::new());
    }
    fn apply(&mut self, obj: DynamicObject) {
        let ns = obj.metadata.namespace.as_deref().unwrap_or_default();
        if !self.cache.namespaces.allows_static(ns) {
            return;
        }
        let name = obj.metadata.name.as_deref().unwrap_or_default();
        if let Some(l) = &mut self.listing {
            l.insert((ns.to_string(), name.to_string()));
        }
        let c = self.cache.set_class_object(ns, name, Some(&obj.metadata));
        send(&self.cache, &self.tx, c);
    }
    fn delete(&mut self, obj: DynamicObject) {
        let ns = obj.metadata.namespace.as_deref().unwrap_or_default();
        let name = obj.metadata.name.as_deref().unwrap_or_default();
        let c = self.cache.set_class_object(ns, name, None);
        send(&self.cache, &self.tx, c);
    }
    fn relist_done(&mut self) {
        if let Some(seen) = self.listing.take() {
            for c in self.cache.retain_class_objects(&seen) {
                send(&self.cache, &self.tx, Some(c));
            }
        }
    }
    fn restarted(&mut self) {
        self.counts.restarted("secretproviderclass");
    }
}

/// Whether the API serves the driver's statuses.
async fn installed(client: &Client) -> bool {
    crate::k8s::api::served(
        client,
        &status_resource(),
        "SecretProviderClassPodStatus",
        None,
    )
    .await
}

/// Watches the driver's statuses and classes into the cache, once its CRDs are served: at
/// start (the watcher waits for the first list) or later (found by a watch of the
/// statuses' CRD, `k8s::crd`; until then nothing is mounted, and the first list's classes
/// are sent on as they come).
pub(crate) async fn run(
    cache: Arc<SourceCache>,
    counts: Arc<dyn WatchCounts>,
    client: Client,
    tx: mpsc::UnboundedSender<SourceChange>,
) {
    if !installed(&client).await {
        cache.mark_synced(SourceKind::SecretProviderClass);
        tracing::info!(
            "SecretProviderClassPodStatus not served; watching for the CSI driver's CRDs"
        );
        let what = "SecretProviderClassPodStatus";
        crate::k8s::crd::until_served(&client, &status_resource(), what, None).await;
        tracing::info!("SecretProviderClassPodStatus now served; watching it");
    }
    let cfg = || watcher::Config::default().page_size(100).any_semantic();
    counts.started("secretproviderclasspodstatus");
    counts.started("secretproviderclass");
    let mut classes = ClassWatch {
        cache: cache.clone(),
        counts: counts.clone(),
        tx: tx.clone(),
        listing: None,
    };
    let objects: Api<DynamicObject> = Api::all_with(client.clone(), &class_resource());
    let class_watch = async move {
        k8s::watch::run(objects, cfg(), "secretproviderclasses", &mut classes).await;
    };
    let mut statuses = StatusWatch {
        cache,
        counts,
        tx,
        classes: Classes::default(),
    };
    let api: Api<DynamicObject> = Api::all_with(client, &status_resource());
    let status_watch = async move {
        k8s::watch::run(api, cfg(), "secretproviderclasspodstatuses", &mut statuses).await;
    };
    futures::future::join(class_watch, status_watch).await;
}
