#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match hashroll::config::Cli::try_parse() {
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
    hashroll::run_cli(cli)
}
