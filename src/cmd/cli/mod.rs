//! The command line: flags (Reloader's names where Reloader has one), the subcommands, and
//! the one path from an error to an exit code (2: bad flags or files, 1: failed at run time).
//! The clap types are `args` (shared flags, `explain`, `migrate`) and `run_args` (`run`);
//! this file holds the command enum and dispatches.

use std::process::ExitCode;

use crate::Error;
use crate::cmd::config::Settings;

pub(crate) mod args;
pub(crate) mod run_args;

use clap::{Parser, Subcommand};

use args::{ExplainArgs, MigrateArgs};
use run_args::RunArgs;

/// The binary's entry: parse, then run the command; every error leaves through one place.
pub fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // installed as `kubectl-hashroll`, kubectl runs it as `kubectl hashroll ...`: the help
    // and errors say so
    let as_plugin = argv
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("kubectl-"));
    let mut cmd = <Cli as clap::CommandFactory>::command();
    if as_plugin {
        cmd = cmd.bin_name("kubectl hashroll");
    }
    let parsed = cmd
        .try_get_matches_from(argv)
        .and_then(|m| <Cli as clap::FromArgMatches>::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // one crypto provider, installed explicitly, before any TLS is set up
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        eprintln!("hashroll: a rustls crypto provider was already installed");
    }
    // the kinds named by flag join the kind table before anything reads it
    let custom = match &cli.command {
        Command::Explain(a) => &a.workload_kinds,
        Command::Run(a) => &a.workload_kinds,
        Command::Migrate(a) => &a.workload_kinds,
    };
    if let Err(why) = crate::core::kind::register_custom(custom) {
        eprintln!("hashroll: --workload-kind: {why}");
        return ExitCode::from(2);
    }
    let (who, result) = match cli.command {
        Command::Explain(args) => ("hashroll explain", explain(*args)),
        Command::Migrate(args) => ("hashroll migrate", migrate(*args)),
        Command::Run(args) => ("hashroll", run(*args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{who}: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn runtime(multi_thread: bool) -> Result<tokio::runtime::Runtime, Error> {
    let mut b = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    b.enable_all().build().map_err(Error::Runtime)
}

fn explain(args: ExplainArgs) -> Result<(), Error> {
    let text = runtime(false)?.block_on(crate::cmd::explain::command(args))?;
    print!("{text}");
    Ok(())
}

fn migrate(args: MigrateArgs) -> Result<(), Error> {
    let text = runtime(false)?.block_on(crate::cmd::migrate::command(args))?;
    print!("{text}");
    Ok(())
}

fn run(args: RunArgs) -> Result<(), Error> {
    // everything that can be checked before starting is checked here: exit code 2
    let check = args.check;
    let settings = Settings::from_args(args)?;
    if check {
        println!("hashroll: flags and files are good");
        return Ok(());
    }
    crate::services::telemetry::init(&settings.log.format, &settings.log.level)?;
    let res = runtime(true)?.block_on(crate::cmd::app::run(settings));
    if let Err(e) = &res {
        tracing::error!(error = %e, "hashroll stopped");
    }
    res
}

#[derive(Debug, Parser)]
#[command(
    name = "hashroll",
    version,
    about = "Rolls workloads when the ConfigMaps and Secrets they use change (Reloader-compatible)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the admission webhook and the watcher.
    Run(Box<RunArgs>),
    /// Explain what a workload tracks and why, or what a change to a source would roll.
    Explain(Box<ExplainArgs>),
    /// Remove what Reloader left in pod templates (a dry run unless --apply).
    Migrate(Box<MigrateArgs>),
}
