//! Logging: text (plain off a terminal) or JSON on stderr, filtered by `--log-level`.

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid --log-level: {0}")]
    Level(String),
    #[error("cannot set up logging: {0}")]
    Logging(String),
}

/// Sets up logging as `hashroll run` does (the bench server uses it too).
pub fn init(format: &str, level: &str) -> Result<(), TelemetryError> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .map_err(|e| TelemetryError::Level(format!("{level:?}: {e}")))?;
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
    res.map_err(|e| TelemetryError::Logging(e.to_string()))
}
