//! The shell's Kubernetes plumbing, one job a file: `watch` (the one watch driver every watch
//! runs through), `api` (the table from a workload kind to its API), `crd` (waiting for a
//! kind installed later) and `scope` (the cluster or a list of namespaces).

pub(crate) mod api;
pub(crate) mod crd;
pub(crate) mod scope;
pub(crate) mod watch;
