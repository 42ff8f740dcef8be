//! The watcher: when the data of a tracked ConfigMap or Secret changes, write the new
//! record and roll token into every workload that tracks it, in one patch per workload.
//! Same pure core (`core::stamp::stamp_refs`) and same source cache as the webhook.
//!
//! Data path: the workload watches (one per row of the kind table) feed the store
//! (`workloads`); source changes and relists enqueue checks (`queue`); the roller works the
//! queue (`roller`: its retry step in `retry`, its Warning de-duplication in `reported`)
//! and the writer (`writer`) patches, re-reads and posts Events.

mod batch;
pub(crate) mod breaker;
#[cfg(test)]
mod parity;
pub(crate) mod queue;
mod reported;
mod retry;
pub(crate) mod roller;
pub(crate) mod safe;
pub(crate) mod workloads;
pub(crate) mod writer;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::api::DynamicObject;
use kube::runtime::watcher;
use tokio::sync::mpsc;

use crate::cache::{ChangeKind, SourceChange};
use crate::core::kind::WorkloadKind;
use crate::k8s::{self, watch::Handler};
use crate::services::state::State;
use roller::Roller;
use workloads::{WorkloadEntry, WorkloadKey};

/// Flags of the watcher.
#[derive(Debug, Clone)]
pub(crate) struct WatcherConfig {
    pub coalesce_window: Duration,
    pub max_rollouts_per_second: f64,
    /// `--cronjob-run-on-change`
    pub cronjob_run_on_change: bool,
    /// `--permanent-error-retry`
    pub permanent_error_retry: Duration,
    /// `--min-roll-interval` (0: off)
    pub min_roll_interval: Duration,
    /// `--paused`: no roll anywhere
    pub paused: bool,
    /// `--rollout-timeout`: a rollout not complete by then has failed
    pub rollout_timeout: Duration,
    /// `--max-concurrent-rollouts` (0: no limit)
    pub max_concurrent_rollouts: usize,
    /// hashroll's switch ConfigMap: (namespace, name)
    pub switch: Option<(String, String)>,
    /// `--window-namespace-label`: the Namespace label that names a window of the switch
    /// ConfigMap
    pub window_namespace_label: Option<String>,
    /// who we are in Events
    pub instance: String,
    /// a message per rollout (`ALERT_ON_RELOAD`)
    pub alerts: Option<crate::services::alert::Alerts>,
    /// Reloader's `--webhook-url`: POST instead of rolling
    pub post_instead: Option<crate::services::alert::Alerts>,
}

/// Runs the watcher until the process ends: workload watches, source changes, the roller.
pub(crate) async fn run(
    state: Arc<State>,
    client: Client,
    cfg: WatcherConfig,
    mut changes: mpsc::UnboundedReceiver<SourceChange>,
    mut selected_namespaces: mpsc::UnboundedReceiver<String>,
    live: crate::services::health::Liveness,
) {
    let roller = Arc::new(Roller::new(state.clone(), client.clone(), &cfg));
    let (waiting, mut synced_rx) = start_workload_watches(&state, &client, &roller, &live).await;
    if !first_lists_in(&state, waiting, &mut synced_rx).await {
        return;
    }
    let mut says_rx = read_switches(&state, &client, &cfg, &roller, &live).await;
    // start-up reconcile: out-of-date workloads roll once, the rest stay untouched
    let n = roller.enqueue_all();
    roller.resume_pending_pauses();
    tracing::info!(workloads = n, "watcher synced; reconciling every workload");
    live.spawn("roller", roller.clone().run());
    state
        .watcher_ready
        .store(true, std::sync::atomic::Ordering::Release);
    let mut gauges = tokio::time::interval(Duration::from_secs(5));
    let mut leadership = state.writer.subscribe();
    let mut key_changes = state.keys.subscribe();
    loop {
        tokio::select! {
            changed = key_changes.changed() => {
                if changed.is_ok() {
                    key_changes.borrow_and_update();
                    // records made with the replaced key are re-made (no roll where the
                    // data is as it was)
                    let n = roller.enqueue_all();
                    tracing::info!(workloads = n, "HMAC keys changed; checking every workload");
                }
            }
            changed = leadership.changed() => {
                if changed.is_ok() && *leadership.borrow_and_update() {
                    // a new writer reconciles: rolls what is out of date, nothing else
                    let n = roller.enqueue_all();
                    roller.resume_pending_pauses();
                    tracing::info!(workloads = n, "leader now; reconciling every workload");
                }
            }
            _ = gauges.tick() => roller.update_gauges(),
            Some(ns) = selected_namespaces.recv() => roller.enqueue_namespace(&ns),
            Some(ns) = says_rx.recv() => roller.enqueue_namespace(&ns),
            change = changes.recv() => {
                let Some(change) = change else { return };
                on_source_change(&roller, &cfg, change);
            }
            relisted = synced_rx.recv() => {
                if let Some((kind, _)) = relisted {
                    tracing::info!(kind = %kind, "workloads relisted; reconciling every workload");
                    roller.enqueue_all();
                }
            }
        }
    }
}

/// A watch of every workload kind hashroll handles, per watched namespace (a kind not
/// installed: watched once its CRD is). The watches whose first list is waited for, and
/// where each says its list (first, or again after a relist) is in.
async fn start_workload_watches(
    state: &Arc<State>,
    client: &Client,
    roller: &Arc<Roller>,
    live: &crate::services::health::Liveness,
) -> (HashSet<Listed>, mpsc::UnboundedReceiver<Listed>) {
    let (synced_tx, synced_rx) = mpsc::unbounded_channel::<Listed>();
    // the watches whose first list is waited for: one per kind, or per kind and namespace
    let mut waiting: HashSet<Listed> = HashSet::new();
    let scopes = state.scope.watches();
    for kind in WorkloadKind::all() {
        if !state.policy.handles(kind) {
            continue;
        }
        // a custom resource not installed (yet): watched once its CRD is, and not waited
        // for at start-up
        let probe = state.scope.probe();
        let optional = kind.row().optional;
        if optional
            && !k8s::api::served(client, &k8s::api::resource(kind), kind.as_str(), probe).await
        {
            let crd = k8s::crd::crd_name(&k8s::api::resource(kind));
            tracing::info!(kind = %kind, crd = %crd, "not installed; watching for its CRD");
            let w = KindWatch::new(state, client, kind, roller, &synced_tx);
            live.spawn(kind.row().plural, discover_then_watch(w, scopes.clone()));
            continue;
        }
        for scope in &scopes {
            waiting.insert((kind, scope.clone()));
            let w = KindWatch::new(state, client, kind, roller, &synced_tx);
            live.spawn(kind.row().plural, w.run(scope.clone(), true));
        }
    }
    (waiting, synced_rx)
}

/// Waits for the first list of every watch in `waiting` and for the source cache; false
/// when the watches ended first.
async fn first_lists_in(
    state: &State,
    mut waiting: HashSet<Listed>,
    synced_rx: &mut mpsc::UnboundedReceiver<Listed>,
) -> bool {
    while !waiting.is_empty() {
        match synced_rx.recv().await {
            Some(listed) => {
                waiting.remove(&listed);
            }
            None => return false,
        }
    }
    while !state.cache.is_synced() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// The pause switches and what the Namespaces say of their rolls, read once before the
/// start-up reconcile (so a paused cluster rolls nothing then) and watched from then on;
/// the receiver names each namespace whose say changed.
async fn read_switches(
    state: &State,
    client: &Client,
    cfg: &WatcherConfig,
    roller: &Arc<Roller>,
    live: &crate::services::health::Liveness,
) -> mpsc::UnboundedReceiver<String> {
    if let Some((ns, name)) = cfg.switch.clone() {
        let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
            kube::Api::namespaced(client.clone(), &ns);
        if let Ok(Some(cm)) = api.get_opt(&name).await {
            roller
                .safe
                .set_switches(safe::SwitchState::from_configmap(&cm));
        }
        live.spawn("switches", watch_switches(api, name, roller.clone()));
    }
    // not with --namespaced: a Role cannot grant a read of Namespaces
    let (says_tx, says_rx) = mpsc::unbounded_channel();
    let (says, label) = (roller.safe.says(), cfg.window_namespace_label.clone());
    if state.scope.is_namespaced() {
        tracing::info!(
            "--namespaced: Namespaces are not read, so their pause annotation and roll-window label do not apply"
        );
    } else {
        crate::services::namespaces::read_says(client, label.as_deref(), &says).await;
        live.spawn(
            "namespace switches",
            crate::services::namespaces::watch_says(client.clone(), label, says, says_tx),
        );
    }
    says_rx
}

fn on_source_change(roller: &Roller, cfg: &WatcherConfig, change: SourceChange) {
    let affected = roller.affected(&change.namespace, &change.source);
    roller.count_change(&change, &affected);
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

/// The watch of one workload kind: keeps the store; after start-up, a workload that changed
/// is checked at once (one created while the webhook was unreachable gets its record here).
struct WorkloadWatch {
    state: Arc<State>,
    kind: WorkloadKind,
    /// the namespace watched, or `None` for the cluster
    scope: Option<String>,
    roller: Arc<Roller>,
    synced: mpsc::UnboundedSender<Listed>,
    seen: HashSet<WorkloadKey>,
    initial: bool,
}

/// A watch whose (re)list is in: its kind, and its namespace (`None`: cluster-wide).
type Listed = (WorkloadKind, Option<String>);

impl Handler<DynamicObject> for WorkloadWatch {
    fn relist_start(&mut self) {
        self.seen.clear();
    }
    fn apply(&mut self, obj: DynamicObject) {
        let ns = obj.metadata.namespace.as_deref().unwrap_or_default();
        if !self.state.cache.namespaces().allows_static(ns) {
            return;
        }
        let names = (&self.state.policy.names, &self.state.names);
        let Some(entry) = WorkloadEntry::from_object(self.kind, &obj, names.0, names.1) else {
            return;
        };
        let key = entry.key.clone();
        // only a workload that opts in, or carries a record to take back, is kept: the
        // others (most of a large cluster) cost nothing but this check per event
        let policy = &self.state.policy;
        if !crate::core::policy::opted_in(policy, &entry.annotations, &entry.template_annotations)
            && !entry.annotations.contains_key(&self.state.names.record)
        {
            if self.roller.contains(&key) {
                self.roller.remove(&key);
            }
            return;
        }
        self.seen.insert(key.clone());
        if self.roller.upsert(entry) && !self.initial {
            self.roller.enqueue(key, Duration::ZERO);
        }
    }
    fn delete(&mut self, obj: DynamicObject) {
        self.roller.remove(&WorkloadKey {
            kind: self.kind,
            namespace: obj.metadata.namespace.unwrap_or_default().into(),
            name: obj.metadata.name.unwrap_or_default().into(),
        });
    }
    fn relist_done(&mut self) {
        let seen = std::mem::take(&mut self.seen);
        self.roller
            .retain_kind(self.kind, self.scope.as_deref(), &seen);
        self.initial = false;
        let _ = self.synced.send((self.kind, self.scope.clone()));
    }
    fn restarted(&mut self) {
        self.state.metrics.watch_restart(self.kind.as_str());
    }
}

/// The watch of hashroll's switch ConfigMap: a switch turned off checks what it held.
struct SwitchWatch {
    roller: Arc<Roller>,
    /// the (re)list in progress saw the ConfigMap
    seen: bool,
}

impl SwitchWatch {
    fn set(&self, state: safe::SwitchState) {
        match self.roller.safe.set_switches(state) {
            None => {
                let n = self.roller.enqueue_all();
                tracing::info!(
                    workloads = n,
                    "rolls no longer paused; checking every workload"
                );
            }
            Some(namespaces) => {
                for ns in namespaces {
                    tracing::info!(namespace = %ns, "rolls in the namespace no longer paused");
                    self.roller.enqueue_namespace(&ns);
                }
            }
        }
    }
}

impl Handler<k8s_openapi::api::core::v1::ConfigMap> for SwitchWatch {
    fn relist_start(&mut self) {
        self.seen = false;
    }
    fn apply(&mut self, cm: k8s_openapi::api::core::v1::ConfigMap) {
        self.seen = true;
        self.set(safe::SwitchState::from_configmap(&cm));
    }
    fn delete(&mut self, _: k8s_openapi::api::core::v1::ConfigMap) {
        self.set(safe::SwitchState::default());
    }
    fn relist_done(&mut self) {
        if !self.seen {
            self.set(safe::SwitchState::default());
        }
    }
}

async fn watch_switches(
    api: kube::Api<k8s_openapi::api::core::v1::ConfigMap>,
    name: String,
    roller: Arc<Roller>,
) {
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut h = SwitchWatch {
        roller,
        seen: false,
    };
    k8s::watch::run(api, cfg, "switches", &mut h).await;
}

/// What a watch of one workload kind needs (one is made per namespace with `--namespaced`).
#[derive(Clone)]
struct KindWatch {
    state: Arc<State>,
    client: Client,
    kind: WorkloadKind,
    roller: Arc<Roller>,
    synced: mpsc::UnboundedSender<Listed>,
}

impl KindWatch {
    fn new(
        state: &Arc<State>,
        client: &Client,
        kind: WorkloadKind,
        roller: &Arc<Roller>,
        synced: &mpsc::UnboundedSender<Listed>,
    ) -> KindWatch {
        KindWatch {
            state: state.clone(),
            client: client.clone(),
            kind,
            roller: roller.clone(),
            synced: synced.clone(),
        }
    }

    /// The watch of the kind in `scope` (a namespace, or the cluster); `initial`: its first
    /// list is the start-up one (reconciled at once by the caller, not workload by workload).
    async fn run(self, scope: Option<String>, initial: bool) {
        // pages of 100: a page is held as JSON values while it is read, and 500 Deployments'
        // values were most of the peak RSS at start (scale bench, 5,000 Secrets and 2,000
        // Deployments: 44 MiB with 500, 24 MiB with 100)
        let cfg = crate::k8s::watch::initial_list(100);
        let KindWatch {
            state,
            client,
            kind,
            roller,
            synced,
        } = self;
        state.metrics.watch_started(kind.as_str());
        let api = k8s::api::watched(client, scope.as_deref(), kind);
        let mut h = WorkloadWatch {
            state,
            kind,
            scope,
            roller,
            synced,
            seen: HashSet::new(),
            initial,
        };
        k8s::watch::run(api, cfg, kind.row().plural, &mut h).await;
    }
}

/// Waits for a kind's CRD (`k8s::crd`: a watch of it by name, a slow poll as the backstop;
/// the poll alone with `--namespaced`); once the kind is served, watches it in each of
/// `scopes` (its first list reconciles its workloads like a relist).
async fn discover_then_watch(w: KindWatch, scopes: Vec<Option<String>>) {
    let (kind, probe) = (w.kind, w.state.scope.probe().map(String::from));
    k8s::crd::until_served(
        &w.client,
        &k8s::api::resource(kind),
        kind.as_str(),
        probe.as_deref(),
    )
    .await;
    tracing::info!(kind = %kind, "now installed; watching it");
    // found after start-up: what it lists is checked like a workload that changed
    let watches = scopes.into_iter().map(|scope| w.clone().run(scope, false));
    futures::future::join_all(watches).await;
}
