//! `howl review` and `howl rules`: what changed in the pattern stores and
//! what to do about it (see [`crate::review`]), from a running howl's API
//! (`--api`, the default) or from a stopped howl's `--data-dir`.
//!
//! On a terminal, stderr shows a spinner while the review is made.
//!
//! Exit codes: 0 done, 1 the API or the store refused or could not be
//! reached (the message says why).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use reqwest::Method;

use super::progress::{self, Progress};
use super::suppress::{ApiArgs, call, finish, percent_encode_segment};
use crate::review;
use crate::state::StateStore;

/// Arguments of `howl review`.
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// Review a stopped howl's store in this directory instead of asking a
    /// running one.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Leave the review's checkpoint (the next review compares with now)
    /// and keep its suggestions for `howl rules`. Without it, the review
    /// only looks: a scheduled `review` source keeps its baseline.
    #[arg(long)]
    commit: bool,
    /// Print the digest as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    api: ApiArgs,
}

/// Arguments of `howl rules`.
#[derive(Debug, Args)]
pub struct RulesArgs {
    #[command(subcommand)]
    command: RulesCommand,
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// The suggestions of the last reviews, waiting to be applied.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Applies a suggestion by its id (`rule-...`).
    Apply {
        /// The suggestion's id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// Runs `howl review`.
pub fn review(args: ReviewArgs) -> ExitCode {
    // A spinner, not a bar: the review reads the store (or waits for the
    // API) in one step, with no count to show along the way.
    let spinner = Progress::spinner(
        match &args.data_dir {
            Some(_) => "reviewing the pattern stores",
            None => "asking howl's API for the review",
        },
        progress::stderr_is_terminal(),
    );
    let digest = match &args.data_dir {
        Some(dir) if !dir.join(crate::state::DB_FILE).is_file() => Err(format!(
            "{} holds no howl state store ({}); is it howl's `data_dir`?",
            dir.display(),
            crate::state::DB_FILE
        )),
        Some(dir) => StateStore::open(dir)
            .map_err(|e| format!("{e} (for a running howl, use --api)"))
            .and_then(|store| {
                review::review(&store, chrono::Utc::now(), args.commit).map_err(|e| e.to_string())
            })
            .and_then(|digest| serde_json::to_value(&digest).map_err(|e| e.to_string()))
            .map(|digest| serde_json::json!({ "digest": digest })),
        None => {
            let method = if args.commit {
                Method::POST
            } else {
                Method::GET
            };
            call(&args.api, method, "api/v1/review", None)
        }
    };
    spinner.finish();
    finish(digest.and_then(|answer| {
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&answer["digest"]).unwrap_or_default()
            );
            return Ok(());
        }
        let digest: review::Digest = serde_json::from_value(answer["digest"].clone())
            .map_err(|e| format!("unexpected answer: {e}"))?;
        print!("{}", review::render(&digest));
        Ok(())
    }))
}

/// Runs `howl rules`.
pub fn rules(args: RulesArgs) -> ExitCode {
    match args.command {
        RulesCommand::List { api } => finish(
            call(&api, Method::GET, "api/v1/rules", None).and_then(|answer| {
                let rules: Vec<review::Suggestion> = serde_json::from_value(answer)
                    .map_err(|e| format!("unexpected answer: {e}"))?;
                if rules.is_empty() {
                    println!("no suggestions waiting (run `howl review`)");
                }
                for rule in rules {
                    println!(
                        "{}  {:<12}  {}  {}\n    {}",
                        rule.id,
                        rule.kind.as_str(),
                        rule.pattern_id,
                        crate::diagnostic::escape_controls(&rule.template),
                        crate::diagnostic::escape_controls(&rule.reason)
                    );
                }
                Ok(())
            }),
        ),
        RulesCommand::Apply { id, api } => {
            let path = format!("api/v1/rules/{}/apply", percent_encode_segment(&id));
            finish(call(&api, Method::POST, &path, None).map(|answer| {
                if answer["applied"] == true {
                    println!(
                        "applied {id}: {} pattern {}",
                        answer["rule"]["kind"].as_str().unwrap_or_default(),
                        answer["rule"]["pattern_id"].as_str().unwrap_or_default()
                    );
                } else {
                    println!(
                        "{}\n\n{}",
                        answer["message"].as_str().unwrap_or_default(),
                        answer["config"].as_str().unwrap_or_default()
                    );
                }
            }))
        }
    }
}
