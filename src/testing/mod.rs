//! What the bench, the fuzz target and the unit tests build hashroll's parts with: a state
//! without a cluster, a client that reaches nothing, a source view from a map. Nothing in
//! hashroll runs on it: the folder ranks above every other (`layers.rs`), so no layer can
//! use it, and production impls carry no test-only constructor.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::cache::SourceCache;
use crate::core::digest::KeyRing;
use crate::core::names::RecordNames;
use crate::core::policy::PolicyConfig;
use crate::core::record::RollOptions;
use crate::services::key::LiveKeys;
use crate::services::lease::Leadership;
use crate::services::metrics::Metrics;
use crate::services::state::State;

/// A state without a cluster: the default policy and names, fixed keys, no client, always
/// the writer, the watcher ready. What the unit tests, the bench and the fuzz target decide
/// and admit on.
pub fn offline_state(keys: KeyRing, cache: Arc<SourceCache>) -> State {
    State {
        policy: PolicyConfig::default(),
        names: RecordNames::default(),
        roll: RollOptions::default(),
        keys: LiveKeys::fixed(keys),
        cache,
        metrics: Metrics::new(),
        watcher_ready: AtomicBool::new(true),
        writer: Leadership::always(),
        scope: Default::default(),
    }
}

#[cfg(test)]
mod unit;
#[cfg(test)]
pub(crate) use unit::{FakeSources, nowhere_client, offline_watcher_state};
