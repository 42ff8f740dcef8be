//! The one shared state of webhook, watcher and metrics server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cache::SourceCache;
use crate::core::names::RecordNames;
use crate::core::policy::PolicyConfig;
use crate::core::record::RollOptions;
use crate::services::key::LiveKeys;
use crate::services::lease::Leadership;
use crate::services::metrics::Metrics;

pub struct State {
    pub(crate) policy: PolicyConfig,
    pub(crate) names: RecordNames,
    pub(crate) roll: RollOptions,
    /// the current HMAC key, and the previous one while rotating
    pub(crate) keys: LiveKeys,
    pub(crate) cache: Arc<SourceCache>,
    pub(crate) metrics: Metrics,
    /// the watcher finished its start-up reconcile (or does not run)
    pub(crate) watcher_ready: AtomicBool,
    /// whether this replica may write (always, without --enable-ha)
    pub(crate) writer: Arc<Leadership>,
    /// where the watches look: the cluster, or each of `--namespaced`'s namespaces
    pub(crate) scope: crate::k8s::scope::WatchScope,
}

impl State {
    pub fn ready(&self) -> bool {
        self.cache.is_synced() && self.watcher_ready.load(Ordering::Acquire)
    }
}

/// The watches below the state (the cache's) count their starts and restarts on its metrics.
impl crate::k8s::watch::WatchCounts for State {
    fn started(&self, resource: &'static str) {
        self.metrics.watch_started(resource);
    }
    fn restarted(&self, resource: &'static str) {
        self.metrics.watch_restart(resource);
    }
}
