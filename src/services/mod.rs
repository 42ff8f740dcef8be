//! The runtime services: what webhook and watcher share and what keeps a replica running.

/// Alerts of rollouts and held rolls to Slack, Teams, Google Chat or a webhook, queued
/// and never waited for.
pub(crate) mod alert;
/// `/metrics`, `/healthz`, `/readyz` on plain HTTP.
pub(crate) mod health;
/// The installation's HMAC key (file or Secret).
pub(crate) mod key;
/// Who may write (HA): a Lease.
pub(crate) mod lease;
/// The Prometheus registry.
pub(crate) mod metrics;
/// The watches of namespaces: `--namespace-selector`'s, and what a Namespace says of its
/// rolls.
pub(crate) mod namespaces;
/// `--enable-pprof`: CPU profiles in pprof's format.
pub(crate) mod pprof;
/// The one shared state of webhook, watcher and health server.
pub mod state;
/// Logging set-up.
pub mod telemetry;
