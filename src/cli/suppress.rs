//! `howl suppress`, `howl unsuppress`, `howl suppressions`, `howl audit`:
//! one-click suppression (and its record) from a terminal, by talking to a
//! running howl's API
//! (`--api`, default `http://127.0.0.1:8686`), so the decision takes effect
//! at once in the running process and is kept in its state store.
//!
//! Exit codes: 0 done, 1 the API refused or could not be reached (the
//! message says why).

use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, ValueEnum};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::secret::Secret;
use crate::state::triage::Suppression;

/// How to reach the running howl.
#[derive(Debug, Args)]
pub(super) struct ApiArgs {
    /// The base URL of a running howl's API (`[api] address`).
    #[arg(long, env = "HOWL_API", default_value = "http://127.0.0.1:8686")]
    pub(super) api: String,
    /// The API's `[api] auth_token`, needed to change suppressions when one
    /// is set.
    #[arg(long, env = "HOWL_API_TOKEN", hide_env_values = true, value_parser = secret)]
    pub(super) token: Option<Secret>,
}

/// Arguments of `howl suppress`.
#[derive(Debug, Args)]
pub struct SuppressArgs {
    /// The pattern to suppress (the `.pattern.id` of its events).
    pattern_id: String,
    /// Why it is noise (kept as the audit trail).
    #[arg(long)]
    reason: String,
    /// How long, e.g. `7d`, `12h`; without it, until `howl unsuppress`.
    #[arg(long, value_parser = check_duration)]
    ttl: Option<String>,
    /// Who decides (default: `$USER`).
    #[arg(long, env = "USER", hide_env_values = true)]
    created_by: Option<String>,
    #[command(flatten)]
    api: ApiArgs,
}

/// Arguments of `howl unsuppress`.
#[derive(Debug, Args)]
pub struct UnsuppressArgs {
    /// The suppression's id (`sup-...`) or its pattern id.
    id: String,
    /// Who decides (default: `$USER`), for the audit trail.
    #[arg(long, env = "USER", hide_env_values = true)]
    by: Option<String>,
    #[command(flatten)]
    api: ApiArgs,
}

/// Arguments of `howl audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only decisions about this pattern.
    #[arg(long)]
    pattern: Option<String>,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    #[command(flatten)]
    api: ApiArgs,
}

/// Arguments of `howl suppressions`.
#[derive(Debug, Args)]
pub struct SuppressionsArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

/// Reads the token as a [`Secret`], so printing the arguments cannot show it.
fn secret(text: &str) -> Result<Secret, String> {
    Ok(Secret::from(text))
}

fn check_duration(text: &str) -> Result<String, String> {
    crate::options::duration::parse_duration(text).map(|_| text.to_string())
}

/// Runs `howl suppress`.
pub fn suppress(args: SuppressArgs) -> ExitCode {
    let body = json!({
        "pattern_id": args.pattern_id,
        "reason": args.reason,
        "ttl": args.ttl,
        "created_by": args.created_by.unwrap_or_else(|| "howl-cli".into()),
    });
    finish(
        call(&args.api, Method::POST, "api/v1/suppressions", Some(body)).map(|answer| {
            let until = answer["expires_at"].as_str().map_or_else(
                || "until unsuppressed".to_string(),
                |at| format!("until {at}"),
            );
            println!(
                "suppressed pattern {} ({}, {until})",
                answer["pattern_id"].as_str().unwrap_or_default(),
                answer["id"].as_str().unwrap_or_default()
            );
            report_silences(&answer);
        }),
    )
}

/// Runs `howl unsuppress`.
pub fn unsuppress(args: UnsuppressArgs) -> ExitCode {
    // One path segment, whatever the id holds (`/`, `..`, `%`).
    let mut path = format!("api/v1/suppressions/{}", percent_encode_segment(&args.id));
    if let Some(by) = args.by.filter(|by| !by.is_empty()) {
        path.push_str(&format!("?by={}", percent_encode_segment(&by)));
    }
    finish(call(&args.api, Method::DELETE, &path, None).map(|answer| {
        println!(
            "unsuppressed pattern {} ({})",
            answer["pattern_id"].as_str().unwrap_or_default(),
            answer["id"].as_str().unwrap_or_default()
        );
        report_silences(&answer);
    }))
}

/// Runs `howl suppressions`.
pub fn suppressions(args: SuppressionsArgs) -> ExitCode {
    finish(
        call(&args.api, Method::GET, "api/v1/suppressions", None).and_then(|answer| {
            let list: Vec<Suppression> = serde_json::from_value(answer.clone())
                .map_err(|e| format!("unexpected answer from the API: {e}"))?;
            match args.format {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&answer).unwrap_or_default()
                ),
                Format::Table => print_table(&list),
            }
            Ok(())
        }),
    )
}

/// Runs `howl audit`.
pub fn audit(args: AuditArgs) -> ExitCode {
    let mut path = format!("api/v1/audit?limit={}", args.limit);
    if let Some(pattern) = &args.pattern {
        path.push_str(&format!("&pattern_id={}", percent_encode_segment(pattern)));
    }
    finish(
        call(&args.api, Method::GET, &path, None).and_then(|answer| {
            let records: Vec<crate::state::audit::AuditRecord> =
                serde_json::from_value(answer.clone())
                    .map_err(|e| format!("unexpected answer from the API: {e}"))?;
            match args.format {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&answer).unwrap_or_default()
                ),
                Format::Table => {
                    println!(
                        "{:<20}  {:<13}  {:<16}  {:<24}  {:<10}  why",
                        "at", "action", "pattern", "who", "via"
                    );
                    for r in records {
                        println!(
                            "{:<20}  {:<13}  {:<16}  {:<24}  {:<10}  {}",
                            time(r.at),
                            r.action,
                            r.pattern_id,
                            crate::diagnostic::escape_controls(&r.who),
                            r.via,
                            crate::diagnostic::escape_controls(&r.why)
                        );
                    }
                }
            }
            Ok(())
        }),
    )
}

fn print_table(list: &[Suppression]) {
    println!(
        "{:<16}  {:<16}  {:<20}  {:<12}  reason",
        "id", "pattern", "until", "by"
    );
    for s in list {
        println!(
            "{:<16}  {:<16}  {:<20}  {:<12}  {}",
            s.id,
            s.pattern_id,
            s.expires_at.map_or_else(|| "-".to_string(), time),
            s.created_by,
            s.reason
        );
    }
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn report_silences(answer: &Value) {
    for silence in answer["silences"].as_array().into_iter().flatten() {
        println!(
            "  Alertmanager silence {} at {}",
            silence["id"].as_str().unwrap_or_default(),
            silence["url"].as_str().unwrap_or_default()
        );
    }
    for error in answer["silence_errors"].as_array().into_iter().flatten() {
        eprintln!("warning: {}", error.as_str().unwrap_or_default());
    }
}

pub(super) fn finish(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// One request to the API; the answer's JSON, or a message saying what
/// went wrong in the API's own words.
pub(super) fn call(
    api: &ApiArgs,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let base = reqwest::Url::parse(&api.api)
        .map_err(|e| format!("--api `{}` is not a URL: {e}", api.api))?;
    // The query (already percent-encoded) goes as it is, not into the path.
    let (path, query) = path
        .split_once('?')
        .map_or((path, None), |(p, q)| (p, Some(q)));
    let mut url = crate::http::api_url(&base, path);
    url.set_query(query);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let client =
            crate::http::http_client(Duration::from_secs(30)).map_err(|e| e.to_string())?;
        let mut request = client.request(method, url);
        if let Some(token) = &api.token {
            request = request.bearer_auth(token.expose());
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| {
            format!(
                "cannot reach howl's API at {} ({}); is howl running with `[api] enabled = true`?",
                api.api,
                crate::http::error_chain(&e.without_url())
            )
        })?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(answer);
        }
        let message = answer["error"].as_str().unwrap_or("no explanation");
        Err(match status {
            StatusCode::UNAUTHORIZED => format!(
                "the API needs its auth token: pass --token or set HOWL_API_TOKEN ({message})"
            ),
            _ => format!("the API answered {status}: {message}"),
        })
    })
}

/// Percent-encodes everything but unreserved characters (RFC 3986), so the
/// text is one path segment.
pub(super) fn percent_encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_always_one_path_segment() {
        assert_eq!(
            percent_encode_segment("3f9a0c1d2e4b5a69"),
            "3f9a0c1d2e4b5a69"
        );
        assert_eq!(percent_encode_segment("a/b"), "a%2Fb");
        assert_eq!(percent_encode_segment(".."), "%2E%2E");
        assert_eq!(percent_encode_segment("50%"), "50%25");
    }
}
