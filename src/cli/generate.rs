//! `howl generate`: files made from howl's own definitions, so they never
//! drift from them: a topology to start from (from the component types'
//! option schemas, see [`super::scaffold`]), and, for packaging and shells,
//! shell completions and a man page (from the command line's definition).
//!
//! Exit codes: 0 written, 2 an expression that names no valid topology
//! (as for any bad command line), 1 when writing failed or, for a bug, the
//! topology made does not validate.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Subcommand};
use clap_complete::Shell;

use super::{Cli, report, scaffold};
use crate::topology;

/// Arguments of `howl generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    what: Generated,
}

#[derive(Debug, Subcommand)]
enum Generated {
    /// A topology to start from, on stdout, e.g. `howl generate topology
    /// stdin,pattern,llm_suppress,telegram > howl.toml`.
    ///
    /// Name component types in the order events flow: sources first, then
    /// transforms (chained in order), then sinks; each reads the one
    /// before. A type that is both a source and a sink (`file`) is read by
    /// its place, or say which with `source:file` or `sink:file`. Vector's
    /// form works too: `stdin/pattern,llm_suppress/telegram`. Every option
    /// a component needs is set to a placeholder that validates (marked `#
    /// <- replace`), the others are listed commented out with their
    /// default, each with its description. An unknown type is a usage
    /// error (exit 2) that lists the known ones.
    Topology {
        /// Comma-separated component types, e.g. `stdin,pattern,console`.
        expression: String,
    },
    /// Shell completions on stdout, e.g. `howl generate completions bash >
    /// /usr/share/bash-completion/completions/howl`.
    Completions {
        /// The shell.
        shell: Shell,
    },
    /// The man page (roff) on stdout, e.g. `howl generate man > howl.1`.
    Man,
}

/// Runs `howl generate`.
pub fn generate(args: GenerateArgs) -> ExitCode {
    let mut command = Cli::command();
    let mut out = std::io::stdout().lock();
    let written = match args.what {
        Generated::Topology { expression } => {
            match scaffold::scaffold(&expression, &topology::REGISTRY) {
                Ok(text) => {
                    if let Err(code) = check(&text) {
                        return code;
                    }
                    out.write_all(text.as_bytes())
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::from(2);
                }
            }
        }
        Generated::Completions { shell } => {
            clap_complete::generate(shell, &mut command, "howl", &mut out);
            Ok(())
        }
        Generated::Man => clap_mangen::Man::new(command).render(&mut out),
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Validates a generated topology as `howl validate` would, so a
/// placeholder that stopped being valid is caught here and not in the
/// user's first `howl validate`.
fn check(text: &str) -> Result<(), ExitCode> {
    let loaded = crate::config::load_texts(
        vec![(PathBuf::from("<generated>"), text.to_string())],
        |_| None,
        &topology::REGISTRY,
    );
    let mut errors: Vec<_> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .cloned()
        .collect();
    if let Err(mut build) = topology::build(&loaded.config) {
        errors.append(&mut build);
    }
    if errors.is_empty() {
        return Ok(());
    }
    report(&errors);
    eprintln!(
        "error: the generated topology does not validate; this is a bug in howl (a \
         placeholder of the options above), please report it"
    );
    Err(ExitCode::FAILURE)
}
