//! `howl validate`: load and build every component, report all problems.

use std::process::ExitCode;

use clap::Args;

use super::{ConfigArgs, EXIT_CONFIG, load, report};
use crate::topology;

/// Arguments of `howl validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    config: ConfigArgs,
}

/// Checks the config (the built-in demo without `-c`, as `run` and
/// `graph` use it); exit 0 when valid, 78 with every problem otherwise.
pub fn validate(args: ValidateArgs) -> ExitCode {
    let loaded = load(&args.config);
    let mut diagnostics = loaded.diagnostics.clone();
    // Build whatever parsed, even when other parts are broken, so VRL and
    // template errors show up in the same round as graph errors.
    if let Err(mut errors) = topology::build(&loaded.config) {
        diagnostics.append(&mut errors);
    }
    if let Some(graph) = &loaded.graph
        && let Err(mut errors) = crate::unit_test::prepare(&loaded.config, graph)
    {
        diagnostics.append(&mut errors);
    }
    sort_by_position(&mut diagnostics);
    if report(&diagnostics) && loaded.graph.is_some() {
        let config = &loaded.config;
        println!(
            "valid: {} source(s), {} transform(s), {} sink(s){} in {}",
            config.sources.len(),
            config.transforms.len(),
            config.sinks.len(),
            match config.tests.len() {
                0 => String::new(),
                n => format!(", {n} test(s)"),
            },
            if args.config.config.is_empty() {
                super::DEMO_NAME.to_string()
            } else {
                args.config
                    .config
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        ExitCode::SUCCESS
    } else {
        let errors = diagnostics.iter().filter(|d| d.is_error()).count();
        eprintln!("howl validate: {errors} error(s)");
        ExitCode::from(EXIT_CONFIG)
    }
}

/// Orders diagnostics by file and position, keeping unpositioned ones last.
pub(crate) fn sort_by_position(diagnostics: &mut [crate::diagnostic::Diagnostic]) {
    diagnostics.sort_by(|a, b| {
        (a.file.is_none(), &a.file, a.position).cmp(&(b.file.is_none(), &b.file, b.position))
    });
}
