//! The shell's Kubernetes plumbing, one job a file: `watch` (the one watch driver every watch
//! runs through), `api` (the table from a workload kind to its API) and `objects` (the
//! one-shot reads of the commands).

pub(crate) mod api;
pub(crate) mod objects;
pub(crate) mod watch;
