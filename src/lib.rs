//! hashroll: rolls Kubernetes workloads when the ConfigMaps and Secrets they use change.
//!
//! The pure core (`core`) decides what a workload tracks and what its record and roll token
//! are; the shell (`webhook`, `watcher`, `cache`, `k8s`) talks to the world and calls into
//! it. The commands (`cmd`: `cli` parses, `config` validates, `app` wires the parts
//! together) start them; the runtime services (`services`) are what they share.
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
/// key, the Lease, metrics and health, logging, alerts, namespaces, the serving certificate.
pub mod services;
/// The watcher: workload store, roll queue, writer.
pub(crate) mod watcher;
/// The mutating admission webhook.
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
