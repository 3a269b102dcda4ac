//! howl's own logs: `tracing` to stderr, so stdout carries only events.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use super::LogFormat;

/// Installs the global subscriber. `HOWL_LOG` (a tracing filter) wins over
/// `-v`/`-q`.
pub fn init(verbose: u8, quiet: u8, format: LogFormat) {
    let level = match i16::from(verbose) - i16::from(quiet) {
        i16::MIN..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("HOWL_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,howl={level}")));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_target(false);
    let installed = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    // A subscriber may already be installed (tests); that one is kept.
    let _ = installed;
}
