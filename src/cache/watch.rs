//! The watches that fill the cache: one per kind of source, each a handler of the one watch
//! driver, sending every change on to the watcher.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Client;
use kube::api::Api;
use tokio::sync::mpsc;

use super::{SourceCache, SourceChange, SourceEntry, idx};
use crate::core::refs::{SourceKind, SourceRef};
use crate::k8s;
use crate::k8s::watch::{Handler, WatchCounts};

/// A ConfigMap or a Secret, as the cache reads it.
trait SourceObject: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned {
    fn entry(&self, cache: &SourceCache) -> SourceEntry;
}

impl SourceObject for ConfigMap {
    fn entry(&self, cache: &SourceCache) -> SourceEntry {
        cache.configmap_entry(self)
    }
}

impl SourceObject for Secret {
    fn entry(&self, cache: &SourceCache) -> SourceEntry {
        cache.secret_entry(self)
    }
}

/// The watch of one kind of source: keeps the cache and sends every change on.
struct SourceWatch {
    cache: Arc<SourceCache>,
    counts: Arc<dyn WatchCounts>,
    kind: SourceKind,
    /// the namespace watched, or `None` for the cluster
    scope: Option<String>,
    /// this watch's first list is in
    listed: bool,
    tx: mpsc::UnboundedSender<SourceChange>,
}

impl SourceWatch {
    /// Sends a change on, once this kind's first list is in: until then the watcher has
    /// not started, and its start-up reconcile checks every workload against the whole
    /// cache anyway, so the first list (100,000 Secrets: 100,000 "created") is not queued.
    /// After it the channel is drained by a loop that only enqueues.
    fn send(&self, c: Option<SourceChange>) {
        if let Some(c) = c
            && self.cache.synced[idx(self.kind)].load(Ordering::Acquire)
        {
            let _ = self.tx.send(c);
        }
    }
}

impl<K: SourceObject> Handler<K> for SourceWatch {
    fn relist_start(&mut self) {
        self.cache.begin_list(self.kind, self.scope.as_deref());
    }
    fn apply(&mut self, obj: K) {
        let cache = &self.cache;
        let ns = obj.meta().namespace.as_deref().unwrap_or_default();
        if !cache.namespaces.allows_static(ns) {
            return;
        }
        let source = SourceRef::new(self.kind, obj.meta().name.clone().unwrap_or_default());
        self.send(cache.upsert(ns, &source, obj.entry(cache)));
    }
    fn delete(&mut self, obj: K) {
        let ns = obj.meta().namespace.as_deref().unwrap_or_default();
        let source = SourceRef::new(self.kind, obj.meta().name.clone().unwrap_or_default());
        let rv = obj
            .meta()
            .resource_version
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        self.send(self.cache.remove_deleted(ns, &source, rv));
    }
    fn relist_done(&mut self) {
        let cache = &self.cache;
        for c in cache.end_list(self.kind, self.scope.as_deref()) {
            self.send(Some(c));
        }
        if !std::mem::replace(&mut self.listed, true) && cache.first_list_done(self.kind) {
            tracing::info!(
                kind = self.kind.as_str(),
                sources = cache.len(),
                "source cache synced"
            );
        }
    }
    fn restarted(&mut self) {
        self.counts.restarted(self.kind.as_str());
    }
}

/// Watches one kind of source into the cache forever, cluster-wide (`scope` `None`) or in
/// one namespace, sending every change to `tx`.
pub(crate) async fn watch(
    cache: Arc<SourceCache>,
    counts: Arc<dyn WatchCounts>,
    client: Client,
    kind: SourceKind,
    scope: Option<String>,
    tx: mpsc::UnboundedSender<SourceChange>,
) {
    // streamed, or small pages: the list of 8 KiB Secrets is held a page at a time
    let cfg = crate::k8s::watch::initial_list(50);
    counts.started(kind.as_str());
    let ns = scope.clone();
    let mut h = SourceWatch {
        cache,
        counts,
        kind,
        scope,
        listed: false,
        tx,
    };
    match kind {
        SourceKind::ConfigMap => {
            let api: Api<ConfigMap> = k8s::scope::typed(client, ns.as_deref());
            k8s::watch::run(api, cfg, "configmaps", &mut h).await
        }
        SourceKind::Secret => {
            let api: Api<Secret> = k8s::scope::typed(client, ns.as_deref());
            k8s::watch::run(api, cfg, "secrets", &mut h).await
        }
        // a class is made of its pods' statuses: `csi::run`
        SourceKind::SecretProviderClass => {}
    }
}
