//! hashroll: rolls Kubernetes workloads when the ConfigMaps and Secrets they use change.
//!
//! The pure core (`core`) decides what a workload tracks and what its record and roll token
//! are; the shell (`webhook`, `watcher`, `cache`, `k8s`) talks to the world and calls into
//! it. `cli` parses, `config` validates, `app` wires the parts together.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

/// Alerts of rollouts and held rolls to Slack, Teams, Google Chat or a webhook, queued
/// and never waited for.
pub mod alert;
/// Wiring of `hashroll run`: client, key, caches, watches, roller, servers.
pub(crate) mod app;
/// Digests of every ConfigMap and Secret (never their data), shared by webhook and watcher.
pub mod cache;
/// The command line: flags, subcommands, exit codes.
pub mod cli;
/// Flags validated into settings; every start-up check.
pub(crate) mod config;
/// The pure core: references, policy, digests, record, stamp, patch, workload kinds.
pub mod core;
/// `hashroll explain`: what a workload tracks and why, what a source change would roll.
pub(crate) mod explain;
/// `/metrics`, `/healthz`, `/readyz` on plain HTTP.
pub(crate) mod health;
/// The shell's Kubernetes plumbing: the one watch driver and the per-kind API table.
pub(crate) mod k8s;
/// The installation's HMAC key (file or Secret).
pub mod key;
#[cfg(test)]
mod layers;
/// Who may write (HA): a Lease.
pub mod lease;
/// The Prometheus registry.
pub mod metrics;
/// `hashroll migrate --from-reloader`: what Reloader left in pod templates, and its removal.
pub(crate) mod migrate;
/// Which namespaces hashroll acts in, and the watch of `--namespace-selector`.
pub mod namespaces;
/// The self-managed serving certificate and the webhook's caBundle.
pub(crate) mod selfcert;
/// The one shared state of webhook, watcher and health server.
pub mod state;
/// Logging set-up.
pub mod telemetry;
/// The watcher: workload store, roll queue, writer.
pub(crate) mod watcher;
/// The mutating admission webhook.
pub mod webhook;

/// Why hashroll could not start or stopped; `cli` turns it into an exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Explain(#[from] explain::ExplainError),
    #[error(transparent)]
    Migrate(#[from] migrate::MigrateError),
    #[error(transparent)]
    Alert(#[from] alert::AlertConfigError),
    #[error(transparent)]
    Telemetry(#[from] telemetry::TelemetryError),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot build a Kubernetes client (KUBECONFIG or in-cluster config): {0}")]
    Client(kube::Error),
    #[error(transparent)]
    Key(#[from] key::KeyError),
    #[error(transparent)]
    SelfCert(#[from] selfcert::SelfCertError),
    #[error(transparent)]
    Tls(#[from] webhook::tls::TlsError),
    #[error("cannot listen on {0}: {1}")]
    Listen(std::net::SocketAddr, std::io::Error),
    #[error("{0}: {1}")]
    Serve(&'static str, std::io::Error),
}

impl Error {
    /// 2 for what the flags or files got wrong, 1 for a failure at run time.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Alert(_) | Error::Telemetry(_) => 2,
            _ => 1,
        }
    }
}
