//! howl's own logs: `tracing` to stderr, so stdout carries only events.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use super::LogFormat;
use super::progress::above_the_bar;

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
        .with_writer(|| LossyStderr)
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

/// stderr that never fails: when whoever read it went away (`howl run 2>&1
/// | head -1`), logs are dropped instead of failing the write, which the
/// subscriber would report with a panicking `eprintln!`. A line is written
/// above a progress bar on screen, not through it.
struct LossyStderr;

impl std::io::Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(above_the_bar(|| std::io::stderr().write(buf)).unwrap_or(buf.len()))
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let _ = above_the_bar(|| std::io::stderr().write_all(buf));
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}
