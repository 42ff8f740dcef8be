//! What the unit tests share: a state without a cluster, a client whose every call fails (it
//! points at a port nothing listens on, so a test that passes made none), and a namespace's
//! sources from a map.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::cache::SourceCache;
use crate::cache::filter::NamespaceFilter;
use crate::core::digest::{DigestKey, KeyRing, SourceDigests};
use crate::core::names::AnnotationNames;
use crate::core::refs::{SourceKind, SourceRef};
use crate::core::selector::LabelSelector;
use crate::core::source::{SourceInfo, SourceView};
use crate::services::state::State;

/// A state on an empty cache acting in the namespaces `filter` allows.
pub(crate) fn offline_watcher_state(filter: NamespaceFilter) -> Arc<State> {
    let cache = Arc::new(SourceCache::new(
        AnnotationNames::default(),
        LabelSelector::default(),
        filter,
    ));
    let key = DigestKey::new(b"watcher-test-key-0123456789".to_vec()).expect("a key");
    Arc::new(super::offline_state(KeyRing::single(key), cache))
}

/// A client whose every call fails with a connection error (built lazily: within a runtime).
pub(crate) fn nowhere_client() -> kube::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let nowhere = kube::Config::new("http://127.0.0.1:9".parse().expect("a URI"));
    kube::Client::try_from(nowhere).expect("a client")
}

/// A namespace's sources for tests: name → info.
#[derive(Default)]
pub(crate) struct FakeSources(pub BTreeMap<SourceRef, SourceInfo>);

impl SourceView for FakeSources {
    fn digests(&self, source: &SourceRef) -> Option<SourceDigests> {
        self.0.contains_key(source).then(SourceDigests::default)
    }
    fn info(&self, source: &SourceRef) -> Option<SourceInfo> {
        self.0.get(source).copied()
    }
    fn names_matching(&self, kind: SourceKind, matches: &dyn Fn(&str) -> bool) -> Vec<String> {
        self.0
            .keys()
            .filter(|s| s.kind == kind && matches(&s.name))
            .map(|s| s.name.clone())
            .collect()
    }
}
