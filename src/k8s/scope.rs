//! Where the watches and lists look: the whole cluster, or each namespace of a fixed list
//! (`--namespaced`: a Role in each is all hashroll needs, so nothing cluster-scoped is read).

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::{Client, Resource};

/// The cluster, or a list of namespaces each watched on its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum WatchScope {
    #[default]
    Cluster,
    /// `--namespaced`: these namespaces, never empty
    Namespaces(Vec<String>),
}

impl WatchScope {
    /// One entry per watch of a kind: `None` is one cluster-wide watch.
    pub(crate) fn watches(&self) -> Vec<Option<String>> {
        match self {
            WatchScope::Cluster => vec![None],
            WatchScope::Namespaces(list) => list.iter().cloned().map(Some).collect(),
        }
    }

    pub(crate) fn is_namespaced(&self) -> bool {
        matches!(self, WatchScope::Namespaces(_))
    }

    /// Where a one-off list (is a kind served?) may look: the first namespace, or the
    /// cluster.
    pub(crate) fn probe(&self) -> Option<&str> {
        match self {
            WatchScope::Cluster => None,
            WatchScope::Namespaces(list) => list.first().map(String::as_str),
        }
    }

    /// "cluster" or "namespaced", for the log, the metrics and `explain`.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            WatchScope::Cluster => "cluster",
            WatchScope::Namespaces(_) => "namespaced",
        }
    }
}

/// The API of a namespaced type in `ns`, or cluster-wide for `None`.
pub(crate) fn typed<K>(client: Client, ns: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
{
    match ns {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    }
}

/// The API of a dynamic resource in `ns`, or cluster-wide for `None`.
pub(crate) fn dynamic(
    client: Client,
    ns: Option<&str>,
    resource: &ApiResource,
) -> Api<DynamicObject> {
    match ns {
        Some(ns) => Api::namespaced_with(client, ns, resource),
        None => Api::all_with(client, resource),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_watch_for_the_cluster_one_per_namespace_otherwise() {
        assert_eq!(WatchScope::Cluster.watches(), vec![None]);
        let s = WatchScope::Namespaces(vec!["a".into(), "b".into()]);
        assert_eq!(s.watches(), vec![Some("a".into()), Some("b".into())]);
        assert_eq!(s.probe(), Some("a"));
        assert!(s.is_namespaced() && !WatchScope::Cluster.is_namespaced());
        assert_eq!(WatchScope::Cluster.probe(), None);
    }
}
