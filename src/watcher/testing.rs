//! What the watcher's unit tests share: a state without a cluster and a client whose every
//! call fails (it points at a port nothing listens on), so a test that passes made none.

use std::sync::Arc;

use crate::cache::SourceCache;
use crate::cache::filter::NamespaceFilter;
use crate::core::digest::{DigestKey, KeyRing};
use crate::core::names::AnnotationNames;
use crate::core::selector::LabelSelector;
use crate::services::state::State;

/// A state on an empty cache acting in the namespaces `filter` allows.
pub(crate) fn offline_state(filter: NamespaceFilter) -> Arc<State> {
    let cache = Arc::new(SourceCache::new(
        AnnotationNames::default(),
        LabelSelector::default(),
        filter,
    ));
    let key = DigestKey::new(b"watcher-test-key-0123456789".to_vec()).expect("a key");
    Arc::new(State::offline(KeyRing::single(key), cache))
}

/// A client whose every call fails with a connection error (built lazily: within a runtime).
pub(crate) fn nowhere_client() -> kube::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let nowhere = kube::Config::new("http://127.0.0.1:9".parse().expect("a URI"));
    kube::Client::try_from(nowhere).expect("a client")
}
