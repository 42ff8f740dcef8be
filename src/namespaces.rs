//! Which namespaces hashroll acts in: the fixed lists (`--namespaces`,
//! `--namespaces-to-ignore`) and, with `--namespace-selector`, the namespaces a watch finds
//! selected now. A namespace that becomes selected is sent on, so its workloads are
//! reconciled.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::watcher;
use tokio::sync::mpsc;

use crate::k8s::watch::{self, Handler};

/// The namespaces `--namespace-selector` selects now.
pub type Selected = Arc<RwLock<HashSet<String>>>;

/// Which namespaces hashroll acts in.
#[derive(Debug, Clone, Default)]
pub struct NamespaceFilter {
    pub only: Vec<String>,
    pub ignore: Vec<String>,
    /// with `--namespace-selector`: the namespaces it selects now (kept by [`watch`])
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
            && self.selected.as_ref().is_none_or(|s| {
                s.read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .contains(ns)
            })
    }
}

/// Keeps the selected set; a relist replaces it whole.
struct Selection {
    set: Selected,
    /// what the (re)list in progress has seen, if one is
    listing: Option<HashSet<String>>,
    added: mpsc::UnboundedSender<String>,
}

impl Selection {
    fn set(&self) -> std::sync::RwLockWriteGuard<'_, HashSet<String>> {
        self.set
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Handler<Namespace> for Selection {
    fn relist_start(&mut self) {
        self.listing = Some(HashSet::new());
    }
    fn apply(&mut self, ns: Namespace) {
        let name = ns.name_any();
        if let Some(listing) = &mut self.listing {
            listing.insert(name);
        } else if self.set().insert(name.clone()) {
            tracing::info!(namespace = %name, "namespace selected");
            let _ = self.added.send(name);
        }
    }
    fn delete(&mut self, ns: Namespace) {
        self.set().remove(&ns.name_any());
    }
    fn relist_done(&mut self) {
        let new = self.listing.take().unwrap_or_default();
        let mut cur = self.set();
        for n in new.difference(&cur) {
            let _ = self.added.send(n.clone());
        }
        *cur = new;
    }
}

/// Watches the namespaces `selector` selects into `set` forever; each newly selected one is
/// sent to `added`.
pub async fn watch(
    client: kube::Client,
    selector: String,
    set: Selected,
    added: mpsc::UnboundedSender<String>,
) {
    let api: Api<Namespace> = Api::all(client);
    let mut h = Selection {
        set,
        listing: None,
        added,
    };
    let cfg = watcher::Config::default().labels(&selector);
    watch::run(api, cfg, "namespaces", &mut h).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(name: &str) -> Namespace {
        let mut n = Namespace::default();
        n.metadata.name = Some(name.into());
        n
    }

    #[test]
    fn a_relist_replaces_the_set_and_announces_only_new_namespaces() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let set: Selected = Default::default();
        let mut h = Selection {
            set: set.clone(),
            listing: None,
            added: tx,
        };
        h.relist_start();
        h.apply(ns("a"));
        h.apply(ns("b"));
        assert!(
            rx.try_recv().is_err(),
            "nothing announced before the list ends"
        );
        h.relist_done();
        let mut got = vec![rx.try_recv().unwrap(), rx.try_recv().unwrap()];
        got.sort();
        assert_eq!(got, ["a", "b"]);
        h.apply(ns("c"));
        assert_eq!(rx.try_recv().unwrap(), "c");
        h.apply(ns("c"));
        assert!(
            rx.try_recv().is_err(),
            "a known namespace is not announced again"
        );
        h.delete(ns("a"));
        h.relist_start();
        h.apply(ns("b"));
        h.apply(ns("d"));
        h.relist_done();
        assert_eq!(rx.try_recv().unwrap(), "d");
        let mut now: Vec<_> = set.read().unwrap().iter().cloned().collect();
        now.sort();
        assert_eq!(now, ["b", "d"]);
    }
}
