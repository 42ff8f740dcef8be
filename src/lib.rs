//! hashroll: rolls Kubernetes workloads when the ConfigMaps and Secrets they use change.
//!
//! The folders of `src/` are layers, lowest first. A module uses its own folder and the
//! folders below it, never one above or beside it; `layers.rs` reads every `use` and holds
//! the order.
//!
//! 1. `core`: pure, no I/O, no async. What a workload uses and tracks, its record and roll
//!    token, the patch that writes them.
//! 2. `k8s`: the plumbing every talk with the API server goes through: the one watch
//!    driver, the table from a workload kind to its API, the scope the watches look in.
//! 3. `cache`: the digests of every ConfigMap and Secret (never their data), the watches
//!    that fill them, and the namespace filter the cache and everything above it read.
//! 4. `services`: what a running replica shares: the state (which holds the cache), the
//!    key, the Lease, metrics and health, alerts, the namespace watches, logging.
//! 5. `webhook` and `watcher`: the two ways a workload is stamped, at admission and after a
//!    change. Both build on the shared state and the core; neither uses the other.
//! 6. `cmd`: the commands: the command line, its settings, `run`'s wiring of all of the
//!    above, `explain` and `migrate` with their one-shot reads. The root's `Error` is theirs.
//! 7. `testing`: what the bench, the fuzz target and the unit tests build hashroll's parts
//!    with (a state without a cluster, fixtures). Above everything, so nothing runs on it.
//!
//! Why this order: each layer is made of the ones below it and is unknown to them. The core
//! decides and everything calls it; the cache is read through the state, so it sits below
//! the services; webhook and watcher both read that state; only the commands know every
//! part, because they start them. A lower layer that needs something of a higher one is
//! handed it (the cache's watches count restarts through `k8s::watch::WatchCounts`, not on
//! the metrics), so the arrows never turn.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

/// Digests of every ConfigMap and Secret (never their data), shared by webhook and watcher.
pub mod cache;
/// The commands: the command line, its settings, `run`'s wiring, `explain`, `migrate`.
pub mod cmd;
/// The pure core: references, policy, digests, record, stamp, patch, workload kinds.
pub mod core;
/// The shell's Kubernetes plumbing: the one watch driver and the per-kind API table.
pub(crate) mod k8s;
#[cfg(test)]
mod layers;
/// What a running hashroll is made of besides webhook and watcher: the shared state, the
/// key, the Lease, metrics and health, logging, alerts, the namespace watches.
pub mod services;
/// What the bench, the fuzz target and the tests build on; nothing in hashroll uses it.
#[doc(hidden)]
pub mod testing;
/// The watcher: workload store, roll queue, writer.
pub(crate) mod watcher;
/// The mutating admission webhook, its TLS server and its self-managed certificate.
pub mod webhook;

/// Why hashroll could not start or stopped; `cli` turns it into an exit code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error(transparent)]
    Config(#[from] cmd::config::ConfigError),
    #[error(transparent)]
    Explain(#[from] cmd::explain::ExplainError),
    #[error(transparent)]
    Migrate(#[from] cmd::migrate::MigrateError),
    #[error(transparent)]
    Alert(#[from] services::alert::AlertConfigError),
    #[error(transparent)]
    Telemetry(#[from] services::telemetry::TelemetryError),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot build a Kubernetes client (KUBECONFIG or in-cluster config): {0}")]
    Client(kube::Error),
    #[error(transparent)]
    Key(#[from] services::key::KeyError),
    #[error(transparent)]
    SelfCert(#[from] webhook::selfcert::SelfCertError),
    #[error(transparent)]
    Tls(#[from] webhook::tls::TlsError),
    #[error("cannot listen on {0}: {1}")]
    Listen(std::net::SocketAddr, std::io::Error),
    #[error("{0}: {1}")]
    Serve(&'static str, std::io::Error),
}

impl Error {
    /// 2 for what the flags or files got wrong, 1 for a failure at run time.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Alert(_) | Error::Telemetry(_) => 2,
            _ => 1,
        }
    }
}
