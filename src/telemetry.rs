//! Logging: text (plain off a terminal) or JSON on stderr, filtered by `--log-level`.

use crate::config::ConfigError;

/// Sets up logging as `hashroll run` does (the bench server uses it too).
pub fn init(format: &str, level: &str) -> Result<(), ConfigError> {
    let filter =
        tracing_subscriber::EnvFilter::try_new(level).map_err(|e| ConfigError::Invalid {
            what: "--log-level",
            why: format!("{level:?}: {e}"),
        })?;
    // colours only on a terminal: log files and collectors get plain text
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let res = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    res.map_err(|e| ConfigError::Logging(e.to_string()))
}
