//! The shell's Kubernetes plumbing, one job a file: `watch` (the one watch driver every watch
//! runs through) and `api` (the table from a workload kind to its API).

pub(crate) mod api;
pub(crate) mod watch;
