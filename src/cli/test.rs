//! `howl test`: run the `[[tests]]` of a config against its transforms.

use std::process::ExitCode;

use clap::Args;

use super::validate::sort_by_position;
use super::{ConfigArgs, EXIT_CONFIG, load, report, require_config};
use crate::unit_test::{self, runner};

/// Arguments of `howl test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    #[command(flatten)]
    config: ConfigArgs,
}

/// Runs every test; exit 0 when all pass, 1 when one fails, 78 when the
/// config (tests included) is invalid.
pub fn test(args: TestArgs) -> ExitCode {
    if let Err(code) = require_config(&args.config) {
        return code;
    }
    let loaded = load(&args.config);
    let (mut config, graph) = match (loaded.is_ok(), loaded.graph) {
        (true, Some(graph)) => (loaded.config, graph),
        _ => {
            report(&loaded.diagnostics);
            eprintln!("howl test: the config is invalid (see `howl validate`)");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // Warnings (e.g. unconsumed outputs) are `howl validate`'s business.
    let tests = match unit_test::prepare(&config, &graph) {
        Ok(tests) => tests,
        Err(mut diagnostics) => {
            sort_by_position(&mut diagnostics);
            report(&diagnostics);
            eprintln!("howl test: the tests are invalid");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if tests.is_empty() {
        println!("no tests: add `[[tests]]` to a config to check its transforms");
        return ExitCode::SUCCESS;
    }
    let scratch = match tempfile_dir() {
        Ok(dir) => dir,
        Err(error) => {
            eprintln!("error: cannot create a scratch data_dir for the tests: {error}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match super::runtime(None) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };

    println!("running {} test(s)", tests.len());
    let mut failed = Vec::new();
    for test in &tests {
        let outcome = runtime.block_on(runner::run(&mut config, &graph, test, &scratch));
        match outcome {
            Ok(outcome) if outcome.passed() => println!("test {} ... passed", outcome.name),
            Ok(outcome) => {
                println!("test {} ... FAILED", outcome.name);
                failed.push(outcome);
            }
            Err(mut diagnostics) => {
                sort_by_position(&mut diagnostics);
                report(&diagnostics);
                let _ = std::fs::remove_dir_all(&scratch);
                return ExitCode::from(EXIT_CONFIG);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    for outcome in &failed {
        println!("\n--- {} ---", outcome.name);
        for failure in &outcome.failures {
            println!("{failure}");
        }
    }
    println!(
        "\n{} passed, {} failed",
        tests.len() - failed.len(),
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A fresh directory under the system's temporary directory.
fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let base = std::env::temp_dir();
    for attempt in 0..100u32 {
        let dir = base.join(format!("howl-test-{}-{attempt}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(error),
        }
    }
    Err(std::io::Error::other(
        "no free name for a scratch directory",
    ))
}
