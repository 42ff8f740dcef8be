//! The commands: what `hashroll` does when started, and what it needs to start.

/// Wiring of `hashroll run`: client, key, caches, watches, roller, servers.
pub(crate) mod app;
/// The command line: flags, subcommands, exit codes.
pub mod cli;
/// Flags validated into settings; every start-up check.
pub(crate) mod config;
/// `hashroll explain`: what a workload tracks and why, what a source change would roll.
pub(crate) mod explain;
/// `hashroll migrate --from-reloader`: what Reloader left in pod templates, and its removal.
pub(crate) mod migrate;
/// `hashroll migrate --from-reloader --chart-values`: Reloader's configuration as hashroll's
/// chart values.
pub(crate) mod migrate_values;
/// The one-shot reads `explain` and `migrate` make of a cluster.
pub(crate) mod objects;
/// The generated reference pages (`make reference`), and the test that they are current.
#[cfg(test)]
mod reference;
