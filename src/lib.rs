//! hashroll: rolls Kubernetes workloads when the ConfigMaps and Secrets they use change.
//!
//! The pure core (`core`) decides what a workload tracks and what its record and roll token
//! are; the shell (`webhook`, `watcher`, `cache`) talks to the world and calls into it.
#![forbid(unsafe_code)]

pub mod cache;
pub mod config;
pub mod core;
pub mod metrics;
#[cfg(feature = "plane")]
pub mod plane;
pub mod watcher;
pub mod webhook;

/// Runs the parsed command line; the process's exit code.
pub fn run_cli(cli: config::Cli) -> std::process::ExitCode {
    match cli.command {
        config::Command::Run(_args) => std::process::ExitCode::from(2),
    }
}
