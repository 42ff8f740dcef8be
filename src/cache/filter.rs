//! Which namespaces hashroll acts in, as the cache and everything above it read it: the
//! fixed lists and, with `--namespace-selector`, the set its watch
//! (`services::namespaces::watch`) keeps.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use crate::core::sync::Recover;

/// The namespaces `--namespace-selector` selects now.
pub type Selected = Arc<RwLock<HashSet<String>>>;

/// Which namespaces hashroll acts in.
#[derive(Debug, Clone, Default)]
pub struct NamespaceFilter {
    pub only: Vec<String>,
    pub ignore: Vec<String>,
    /// with `--namespace-selector`: the namespaces it selects now (kept by
    /// `services::namespaces::watch`)
    pub selected: Option<Selected>,
}

impl NamespaceFilter {
    /// The fixed lists only: what is worth caching.
    pub fn allows_static(&self, ns: &str) -> bool {
        (self.only.is_empty() || self.only.iter().any(|n| n == ns))
            && !self.ignore.iter().any(|n| n == ns)
    }

    /// Whether hashroll acts in `ns` now.
    pub fn allows(&self, ns: &str) -> bool {
        self.allows_static(ns)
            && self
                .selected
                .as_ref()
                .is_none_or(|s| s.read().recover().contains(ns))
    }
}
