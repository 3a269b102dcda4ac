//! `howl generate`: files for packaging and for shells, made from the
//! command line's own definition so they never drift from it: shell
//! completions and a man page.

use std::process::ExitCode;

use clap::{Args, CommandFactory, Subcommand};
use clap_complete::Shell;

use super::Cli;

/// Arguments of `howl generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    what: Generated,
}

#[derive(Debug, Subcommand)]
enum Generated {
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
        Generated::Completions { shell } => {
            clap_complete::generate(shell, &mut command, "howl", &mut out);
            Ok(())
        }
        Generated::Man => clap_mangen::Man::new(command).render(&mut out),
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
