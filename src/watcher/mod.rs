//! The watcher: when the data of a tracked ConfigMap or Secret changes, write the new
//! record and roll token into every workload that tracks it, in one patch per workload.
//! Same pure core (`core::record::stamp_refs`) and same source cache as the webhook.

pub mod roller;
pub mod workloads;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::api::Api;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use tokio::sync::mpsc;

use crate::cache::{ChangeKind, SourceChange};
use crate::core::workload::{Workload, WorkloadKind};
use crate::state::State;
use roller::Roller;
use workloads::{WorkloadEntry, WorkloadKey};

/// Flags of the watcher.
#[derive(Debug, Clone)]
pub struct WatcherConfig {
    pub coalesce_window: Duration,
    pub max_rollouts_per_second: f64,
    /// who we are in Events
    pub instance: String,
}

/// Reads a workload object into what the watcher keeps.
fn entry_of<K>(state: &State, kind: WorkloadKind, obj: &K) -> Option<WorkloadEntry>
where
    K: kube::Resource + serde::Serialize,
{
    let ns = obj.meta().namespace.clone().unwrap_or_default();
    let value = serde_json::to_value(obj).ok()?;
    let paused = value
        .pointer("/spec/paused")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    match Workload::from_value(kind, &ns, &value) {
        Ok(w) => Some(WorkloadEntry::from_workload(
            w,
            obj.meta().resource_version.clone(),
            obj.meta().uid.clone(),
            paused,
            &state.policy.names,
            &state.names,
        )),
        Err(e) => {
            tracing::warn!(workload = %format!("{kind}/{ns}/{}", obj.meta().name.clone().unwrap_or_default()), error = %e, "cannot read workload; skipped");
            None
        }
    }
}

/// Runs the watcher until the process ends: workload watches, source changes, the roller.
pub async fn run(
    state: Arc<State>,
    client: Client,
    cfg: WatcherConfig,
    mut changes: mpsc::UnboundedReceiver<SourceChange>,
    mut selected_namespaces: mpsc::UnboundedReceiver<String>,
) {
    let roller = Arc::new(Roller::new(state.clone(), client.clone(), &cfg));
    let (synced_tx, mut synced_rx) = mpsc::unbounded_channel::<WorkloadKind>();
    for kind in WorkloadKind::ALL {
        let roller = roller.clone();
        let client = client.clone();
        let state = state.clone();
        let synced_tx = synced_tx.clone();
        tokio::spawn(async move {
            match kind {
                WorkloadKind::Deployment => {
                    watch_kind::<Deployment>(state, Api::all(client), kind, roller, synced_tx).await
                }
                WorkloadKind::DaemonSet => {
                    watch_kind::<DaemonSet>(state, Api::all(client), kind, roller, synced_tx).await
                }
                WorkloadKind::StatefulSet => {
                    watch_kind::<StatefulSet>(state, Api::all(client), kind, roller, synced_tx)
                        .await
                }
            }
        });
    }
    drop(synced_tx);
    // wait for the three initial lists and the source cache
    let mut synced: HashSet<WorkloadKind> = HashSet::new();
    while synced.len() < WorkloadKind::ALL.len() {
        match synced_rx.recv().await {
            Some(k) => {
                synced.insert(k);
            }
            None => return,
        }
    }
    while !state.cache.is_synced() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // start-up reconcile: out-of-date workloads roll once, the rest stay untouched
    let n = roller.enqueue_all(Duration::ZERO);
    roller.resume_pending_pauses();
    tracing::info!(workloads = n, "watcher synced; reconciling every workload");
    tokio::spawn(roller.clone().run());
    state
        .watcher_ready
        .store(true, std::sync::atomic::Ordering::Release);
    let mut gauges = tokio::time::interval(Duration::from_secs(5));
    let mut leadership = state.writer.subscribe();
    loop {
        tokio::select! {
            changed = leadership.changed() => {
                if changed.is_ok() && *leadership.borrow_and_update() {
                    // a new writer reconciles: rolls what is out of date, nothing else
                    let n = roller.enqueue_all(Duration::ZERO);
                    tracing::info!(workloads = n, "leader now; reconciling every workload");
                }
            }
            _ = gauges.tick() => roller.update_gauges(),
            Some(ns) = selected_namespaces.recv() => roller.enqueue_namespace(&ns),
            change = changes.recv() => {
                let Some(change) = change else { return };
                on_source_change(&roller, &cfg, change);
            }
            relisted = synced_rx.recv() => {
                if let Some(kind) = relisted {
                    tracing::info!(kind = %kind, "workloads relisted; reconciling every workload");
                    roller.enqueue_all(Duration::ZERO);
                }
            }
        }
    }
}

fn on_source_change(roller: &Roller, cfg: &WatcherConfig, change: SourceChange) {
    let affected = roller.affected(&change.namespace, &change.source);
    if affected.is_empty() {
        return;
    }
    tracing::debug!(
        source = %change.source,
        namespace = %change.namespace,
        change = ?change.kind,
        workloads = affected.len(),
        "source changed"
    );
    let delay = match change.kind {
        ChangeKind::Meta => Duration::ZERO,
        _ => cfg.coalesce_window,
    };
    for key in affected {
        roller.enqueue(key, delay);
    }
}

async fn watch_kind<K>(
    state: Arc<State>,
    api: Api<K>,
    kind: WorkloadKind,
    roller: Arc<Roller>,
    synced: mpsc::UnboundedSender<WorkloadKind>,
) where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + serde::Serialize
        + Send
        + 'static,
{
    let cfg = watcher::Config::default().page_size(500).any_semantic();
    let mut stream = watcher(api, cfg).boxed();
    let mut seen: HashSet<WorkloadKey> = HashSet::new();
    let mut initial = true;
    loop {
        match stream.try_next().await {
            Ok(Some(ev)) => match ev {
                watcher::Event::Init => seen.clear(),
                watcher::Event::InitApply(obj) | watcher::Event::Apply(obj) => {
                    let ns = obj.namespace().unwrap_or_default();
                    if !state.cache.namespaces().allows_static(&ns) {
                        continue;
                    }
                    let Some(entry) = entry_of(&state, kind, &obj) else {
                        continue;
                    };
                    let key = entry.key.clone();
                    seen.insert(key.clone());
                    let changed = roller.upsert(entry);
                    // after start-up, a workload that changed is checked at once (a workload
                    // created while the webhook was unreachable gets its record here)
                    if !initial && changed {
                        roller.enqueue(key, Duration::ZERO);
                    }
                }
                watcher::Event::InitDone => {
                    roller.retain_kind(kind, &seen);
                    seen = HashSet::new();
                    initial = false;
                    let _ = synced.send(kind);
                }
                watcher::Event::Delete(obj) => {
                    let key = WorkloadKey {
                        kind,
                        namespace: obj.namespace().unwrap_or_default(),
                        name: obj.name_any(),
                    };
                    roller.remove(&key);
                }
            },
            Ok(None) => return,
            Err(e) => {
                state.metrics.watch_restart(kind.as_str());
                tracing::warn!(kind = %kind, error = %e, "workload watch failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
