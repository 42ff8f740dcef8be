//! The command line: flags (Reloader's names where Reloader has one), the subcommands, and
//! the one path from an error to an exit code (2: bad flags or files, 1: failed at run time).
//! The clap types are `args` (shared flags, `explain`, `migrate`) and `run_args` (`run`);
//! this file holds the command enum and dispatches.

use std::process::ExitCode;

use crate::Error;
use crate::cmd::config::Settings;

pub(crate) mod args;
pub(crate) mod reloader;
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
    // Reloader's environment names, where hashroll's own are not set; a flag given twice
    // takes its last value, as in Reloader (pflag)
    let (cmd, reloader_env) = reloader::with_reloader_env(cmd, |k| std::env::var(k).ok());
    let cmd = cmd.mut_subcommand("run", |r| r.args_override_self(true));
    let definition = cmd.clone();
    let matches = cmd.try_get_matches_from(argv);
    // the Reloader names whose value was taken (not a flag given on the command line)
    let reloader_env: Vec<(String, &'static str)> = match &matches {
        Ok(m) => m
            .subcommand_matches("run")
            .map(|run| reloader::taken_from_env(&definition, run, reloader_env))
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let parsed = matches.and_then(|m| <Cli as clap::FromArgMatches>::from_arg_matches(&m));
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
    let mut custom = match &cli.command {
        Command::Explain(a) => a.workload_kinds.clone(),
        Command::Run(a) => a.workload_kinds.clone(),
        Command::Migrate(a) => a.workload_kinds.clone(),
    };
    if let Command::Run(a) = &cli.command
        && a.is_openshift == Some(true)
    {
        custom.push(reloader::openshift_kind());
    }
    if let Err(why) = crate::core::kind::register_custom(&custom) {
        eprintln!("hashroll: --workload-kind: {why}");
        return ExitCode::from(2);
    }
    let (who, result) = match cli.command {
        Command::Explain(args) => ("hashroll explain", explain(*args)),
        Command::Migrate(args) => ("hashroll migrate", migrate(*args)),
        Command::Run(args) => ("hashroll", run(*args, &reloader_env)),
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

fn run(args: RunArgs, reloader_env: &[(String, &'static str)]) -> Result<(), Error> {
    // everything that can be checked before starting is checked here: exit code 2
    let check = args.check;
    let notices = reloader::replaced_notices(&args);
    let settings = Settings::from_args(args)?;
    let notices = notices.into_iter().chain(
        reloader_env
            .iter()
            .map(|(var, flag)| format!("read Reloader's {var} as --{flag}")),
    );
    if check {
        notices.for_each(|n| println!("hashroll: {n}"));
        println!("hashroll: flags and files are good");
        return Ok(());
    }
    crate::services::telemetry::init(&settings.log.format, &settings.log.level)?;
    notices.for_each(|n| tracing::info!("{n}"));
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
