//! The watches of namespaces. With `--namespace-selector`, the namespaces a watch finds
//! selected now, kept in the set the namespace filter (`cache::filter`, with the fixed lists
//! `--namespaces` and `--namespaces-to-ignore`) reads. A namespace that becomes selected is
//! sent on, so its workloads are reconciled. And what a Namespace says of the rolls in it
//! (its pause annotation, the roll window its label names): a namespace whose say changed
//! is sent on the same way.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::watcher;
use tokio::sync::mpsc;

use crate::cache::filter::Selected;
use crate::core::sync::Recover;
use crate::k8s::watch::{self, Handler};

/// Keeps the selected set; a relist replaces it whole.
struct Selection {
    set: Selected,
    /// what the (re)list in progress has seen, if one is
    listing: Option<HashSet<String>>,
    added: mpsc::UnboundedSender<String>,
}

impl Selection {
    fn set(&self) -> std::sync::RwLockWriteGuard<'_, HashSet<String>> {
        self.set.write().recover()
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
pub(crate) async fn watch(
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

/// What a Namespace says of the rolls in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NamespaceSay {
    /// `hashroll.dev/paused: "true"` on the Namespace
    pub paused: bool,
    /// the value of its `--window-namespace-label` label: the name of a roll window in
    /// hashroll's switch ConfigMap (`window.<name>`)
    pub window: Option<String>,
}

/// By namespace, what the ones that say anything say (kept by [`watch_says`]).
pub(crate) type NamespaceSays = Arc<RwLock<HashMap<String, NamespaceSay>>>;

/// Reads what `ns` says; a pause value that is neither true nor false is logged and taken
/// as false.
pub(crate) fn say_of(ns: &Namespace, window_label: Option<&str>) -> NamespaceSay {
    let annotations = ns.metadata.annotations.as_ref();
    let paused = match annotations.and_then(|a| a.get(crate::core::names::PAUSED)) {
        None => false,
        Some(v) => crate::core::syntax::parse_bool(v).unwrap_or_else(|| {
            tracing::warn!(
                namespace = %ns.name_any(),
                value = %v.chars().take(64).collect::<String>(),
                "{} on the namespace is not true or false; taken as false",
                crate::core::names::PAUSED
            );
            false
        }),
    };
    let window = window_label.and_then(|l| {
        ns.metadata
            .labels
            .as_ref()
            .and_then(|m| m.get(l))
            .filter(|v| !v.is_empty())
            .cloned()
    });
    NamespaceSay { paused, window }
}

/// Keeps what namespaces say; a relist replaces it whole.
struct Says {
    says: NamespaceSays,
    window_label: Option<String>,
    listing: Option<HashMap<String, NamespaceSay>>,
    changed: mpsc::UnboundedSender<String>,
}

impl Says {
    fn map(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, NamespaceSay>> {
        self.says.write().recover()
    }

    fn set(&self, name: String, say: NamespaceSay) {
        let mut map = self.map();
        let old = map.get(&name).cloned().unwrap_or_default();
        if old == say {
            return;
        }
        tracing::info!(namespace = %name, paused = say.paused, window = ?say.window,
            "what the namespace says of its rolls changed");
        if say == NamespaceSay::default() {
            map.remove(&name);
        } else {
            map.insert(name.clone(), say);
        }
        let _ = self.changed.send(name);
    }
}

impl Handler<Namespace> for Says {
    fn relist_start(&mut self) {
        self.listing = Some(HashMap::new());
    }
    fn apply(&mut self, ns: Namespace) {
        let say = say_of(&ns, self.window_label.as_deref());
        match &mut self.listing {
            Some(listing) => {
                if say != NamespaceSay::default() {
                    listing.insert(ns.name_any(), say);
                }
            }
            None => self.set(ns.name_any(), say),
        }
    }
    fn delete(&mut self, ns: Namespace) {
        self.map().remove(&ns.name_any());
    }
    fn relist_done(&mut self) {
        let mut new = self.listing.take().unwrap_or_default();
        let old: Vec<String> = self.map().keys().cloned().collect();
        for name in old {
            let say = new.remove(&name).unwrap_or_default();
            self.set(name, say);
        }
        for (name, say) in new {
            self.set(name, say);
        }
    }
}

/// Lists what every namespace says into `says` once (a failure is logged; the watch then
/// brings it).
pub(crate) async fn read_says(
    client: &kube::Client,
    window_label: Option<&str>,
    says: &NamespaceSays,
) {
    let api: Api<Namespace> = Api::all(client.clone());
    match api.list(&Default::default()).await {
        Ok(list) => {
            let mut map = says.write().recover();
            for ns in list {
                let say = say_of(&ns, window_label);
                if say != NamespaceSay::default() {
                    map.insert(ns.name_any(), say);
                }
            }
        }
        Err(e) => tracing::warn!(
            error = %e,
            "cannot list namespaces for their pause and window; the watch will bring them"
        ),
    }
}

/// Watches what every namespace says of its rolls into `says` forever (`window_label`:
/// `--window-namespace-label`); each namespace whose say changed is sent to `changed`.
pub(crate) async fn watch_says(
    client: kube::Client,
    window_label: Option<String>,
    says: NamespaceSays,
    changed: mpsc::UnboundedSender<String>,
) {
    let api: Api<Namespace> = Api::all(client);
    let mut h = Says {
        says,
        window_label,
        listing: None,
        changed,
    };
    watch::run(
        api,
        watcher::Config::default(),
        "namespace switches",
        &mut h,
    )
    .await;
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

    #[test]
    fn a_namespace_says_its_pause_and_window_and_each_change_is_announced() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let says: NamespaceSays = Default::default();
        let mut h = Says {
            says: says.clone(),
            window_label: Some("rolls".into()),
            listing: None,
            changed: tx,
        };
        let with = |name: &str, paused: Option<&str>, label: Option<&str>| {
            let mut n = ns(name);
            if let Some(p) = paused {
                n.metadata.annotations =
                    Some([(crate::core::names::PAUSED.to_string(), p.to_string())].into());
            }
            if let Some(l) = label {
                n.metadata.labels = Some([("rolls".to_string(), l.to_string())].into());
            }
            n
        };
        h.relist_start();
        h.apply(with("a", Some("true"), None));
        h.apply(with("b", None, Some("night")));
        h.apply(with("c", Some("yes please"), None));
        h.apply(ns("d"));
        h.relist_done();
        let mut got = vec![rx.try_recv().unwrap(), rx.try_recv().unwrap()];
        got.sort();
        assert_eq!(got, ["a", "b"], "a bad value says nothing");
        assert!(rx.try_recv().is_err());
        let get = |n: &str| says.read().unwrap().get(n).cloned().unwrap_or_default();
        assert!(get("a").paused && get("a").window.is_none());
        assert_eq!(get("b").window.as_deref(), Some("night"));
        assert_eq!(get("c"), NamespaceSay::default());
        h.apply(with("a", Some("true"), None));
        assert!(rx.try_recv().is_err(), "the same say is not announced");
        h.apply(with("a", Some("false"), None));
        assert_eq!(rx.try_recv().unwrap(), "a", "a pause lifted is announced");
        assert_eq!(get("a"), NamespaceSay::default());
        // a relist that no longer sees b's label lets it go
        h.relist_start();
        h.apply(ns("b"));
        h.relist_done();
        assert_eq!(rx.try_recv().unwrap(), "b");
        assert!(says.read().unwrap().is_empty());
    }
}
