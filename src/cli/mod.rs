//! The `howl` command line: argument definitions and dispatch.
//!
//! Exit codes follow sysexits where one fits: 0 success, 78 (`EX_CONFIG`) for
//! an invalid config, 1 for a run that failed, could not shut down in time or
//! (from `stdin`) did not deliver every line, 2 for a bad command line, 130
//! for a second signal. The README lists them all.

mod generate;
mod graph;
mod logging;
mod patterns;
mod progress;
mod reload;
mod review;
mod run;
pub mod scaffold;
mod suppress;
mod tap;
mod test;
mod top;
mod train;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{self, Loaded};
use crate::diagnostic::Diagnostic;
use crate::topology;

/// Exit code for an invalid config (sysexits' `EX_CONFIG`).
pub const EXIT_CONFIG: u8 = 78;

/// howl: a log and metrics pipeline built for alerting.
#[derive(Debug, Parser)]
#[command(name = "howl", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More log output (`-v` debug, `-vv` trace). `HOWL_LOG` (a tracing
    /// filter such as `howl=debug`) overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Less log output (`-q` warnings and errors, `-qq` errors only).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    quiet: u8,
    /// Format of howl's own log lines (on stderr).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true, env = "HOWL_LOG_FORMAT")]
    log_format: LogFormat,
}

/// Format of howl's own logs.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a topology (the built-in demo when no config is given).
    Run(run::RunArgs),
    /// Check configs and report every problem at once.
    Validate(validate::ValidateArgs),
    /// Run the config's `[[tests]]`: events in, transforms run, outputs checked.
    Test(test::TestArgs),
    /// Print the topology as a graph (Graphviz dot or Mermaid).
    Graph(graph::GraphArgs),
    /// Mine, list and compare log patterns without a topology.
    Patterns(patterns::PatternsArgs),
    /// Suppress a pattern in a running howl (through its API).
    Suppress(suppress::SuppressArgs),
    /// End a pattern's suppression in a running howl.
    Unsuppress(suppress::UnsuppressArgs),
    /// List the suppressions of a running howl.
    Suppressions(suppress::SuppressionsArgs),
    /// Show the decisions a running howl recorded: who suppressed, undid
    /// or set what, the verdicts and the rules applied.
    Audit(suppress::AuditArgs),
    /// What changed in the pattern stores since the last review (new, gone
    /// quiet, spiking patterns, level shifts) and the rules it suggests.
    Review(review::ReviewArgs),
    /// List or apply the rules reviews suggested.
    Rules(review::RulesArgs),
    /// Print the events leaving a component of a running howl, as JSON
    /// lines (through its API).
    Tap(tap::TapArgs),
    /// What a running howl is doing, per component: events per second,
    /// errors, discards, buffers, delivery latency (through its API).
    Top(top::TopArgs),
    /// A topology to start from (`howl generate topology stdin,pattern,console`),
    /// shell completions and the man page.
    Generate(generate::GenerateArgs),
}

/// Config files, shared by the subcommands that read a topology.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// A TOML config file; repeat (or separate with commas in `HOWL_CONFIG`)
    /// to merge several files into one topology.
    #[arg(
        short = 'c',
        long = "config",
        env = "HOWL_CONFIG",
        value_delimiter = ','
    )]
    pub config: Vec<PathBuf>,
}

/// Parses arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose, cli.quiet, cli.log_format);
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Validate(args) => validate::validate(args),
        Command::Test(args) => test::test(args),
        Command::Graph(args) => graph::graph(args),
        Command::Patterns(args) => patterns::patterns(args),
        Command::Suppress(args) => suppress::suppress(args),
        Command::Unsuppress(args) => suppress::unsuppress(args),
        Command::Suppressions(args) => suppress::suppressions(args),
        Command::Audit(args) => suppress::audit(args),
        Command::Review(args) => review::review(args),
        Command::Rules(args) => review::rules(args),
        Command::Tap(args) => tap::tap(args),
        Command::Top(args) => top::top(args),
        Command::Generate(args) => generate::generate(args),
    }
}

/// Loads the given files, or the built-in demo when there are none.
pub(crate) fn load(config: &ConfigArgs) -> Loaded {
    if config.config.is_empty() {
        config::load_texts(
            vec![(PathBuf::from(DEMO_NAME), DEMO.to_string())],
            |name| std::env::var(name).ok(),
            &topology::REGISTRY,
        )
    } else {
        config::load_files(&config.config, &topology::REGISTRY)
    }
}

/// The built-in demo topology (the same file as `topologies/demo.toml`).
pub const DEMO: &str = include_str!("../../topologies/demo.toml");
/// How the demo is named in messages.
pub const DEMO_NAME: &str = "<built-in demo: topologies/demo.toml>";

/// For the subcommands that need a config file (no built-in demo): an
/// error exit when none was given.
pub(crate) fn require_config(config: &ConfigArgs) -> Result<(), ExitCode> {
    if config.config.is_empty() {
        eprintln!("error: give at least one config file with -c FILE (or HOWL_CONFIG)");
        return Err(ExitCode::from(EXIT_CONFIG));
    }
    Ok(())
}

/// The multi-threaded async runtime the topology runs on, with `threads`
/// workers (unset: one per core).
pub(crate) fn runtime(
    threads: Option<std::num::NonZeroUsize>,
) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = threads {
        builder.worker_threads(threads.get());
    }
    builder.enable_all().build().map_err(|error| {
        eprintln!("error: cannot start the async runtime: {error}");
        ExitCode::FAILURE
    })
}

/// Prints diagnostics to stderr; returns true when none is an error.
pub(crate) fn report(diagnostics: &[Diagnostic]) -> bool {
    for diagnostic in diagnostics {
        eprintln!("{diagnostic}");
    }
    !diagnostics.iter().any(Diagnostic::is_error)
}
