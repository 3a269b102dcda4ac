//! `howl tap COMPONENT[.OUTPUT]`: prints the events leaving a component of
//! a running howl, one JSON object a line, as they flow (through the API's
//! `GET /api/v1/tap`). Ends with `--limit`, Ctrl-C, or when howl stops.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use super::suppress::ApiArgs;

/// Arguments of `howl tap`.
#[derive(Debug, Args)]
pub struct TapArgs {
    /// The component (its id), or one of its named outputs (`id.output`).
    output: String,
    /// Keep one event in N.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    sample: u64,
    /// Stop after this many events.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,
    /// A VRL condition: only the events for which it is true, e.g.
    /// `.level == "error"`.
    #[arg(long)]
    filter: Option<String>,
    #[command(flatten)]
    api: ApiArgs,
}

/// Runs `howl tap`.
pub fn tap(args: TapArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(stream(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn stream(args: &TapArgs) -> Result<(), String> {
    let base = reqwest::Url::parse(&args.api.api)
        .map_err(|e| format!("--api `{}` is not a URL: {e}", args.api.api))?;
    let mut url = crate::http::api_url(&base, "api/v1/tap");
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("output", &args.output);
        query.append_pair("sample", &args.sample.to_string());
        if let Some(limit) = args.limit {
            query.append_pair("limit", &limit.to_string());
        }
        if let Some(filter) = &args.filter {
            query.append_pair("filter", filter);
        }
    }
    let client = crate::http::streaming_client().map_err(|e| e.message)?;
    let mut request = client.get(url);
    if let Some(token) = &args.api.token {
        request = request.bearer_auth(token.expose());
    }
    let mut response = request.send().await.map_err(|e| {
        format!(
            "cannot reach howl's API at {} ({}); is howl running with `[api] enabled = true`?",
            args.api.api,
            crate::http::error_chain(&e.without_url())
        )
    })?;
    let status = response.status();
    if !status.is_success() {
        let answer: serde_json::Value = response.json().await.unwrap_or_default();
        let message = answer["error"].as_str().unwrap_or("no explanation");
        return Err(format!("the API answered {status}: {message}"));
    }
    let mut parser = SseLines::default();
    let mut stdout = std::io::stdout().lock();
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return Ok(()),
            Err(error) => {
                return Err(format!(
                    "the tap ended: {}",
                    crate::http::error_chain(&error.without_url())
                ));
            }
        };
        for item in parser.push(&chunk) {
            let written = match item {
                Sse::Event(json) => writeln!(stdout, "{json}").and_then(|()| stdout.flush()),
                Sse::Dropped(count) => {
                    eprintln!(
                        "howl tap: {count} events dropped so far: this tap reads more slowly \
                         than they flow (try --sample or --filter)"
                    );
                    Ok(())
                }
            };
            if written.is_err() {
                // stdout closed (`| head`): done.
                return Ok(());
            }
        }
    }
}

/// What a tap stream says.
#[derive(Debug, PartialEq)]
enum Sse {
    /// An event, as JSON.
    Event(String),
    /// How many events were dropped so far.
    Dropped(u64),
}

/// Splits a Server-Sent Events stream into messages, across chunks.
#[derive(Default)]
struct SseLines {
    pending: Vec<u8>,
    event: Option<String>,
}

impl SseLines {
    fn push(&mut self, chunk: &[u8]) -> Vec<Sse> {
        self.pending.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            if line.is_empty() {
                self.event = None;
            } else if let Some(name) = line.strip_prefix("event: ") {
                self.event = Some(name.to_string());
            } else if let Some(data) = line.strip_prefix("data: ") {
                match self.event.as_deref() {
                    Some("dropped") => {
                        let count = serde_json::from_str::<serde_json::Value>(data)
                            .ok()
                            .and_then(|v| v["dropped"].as_u64())
                            .unwrap_or(0);
                        out.push(Sse::Dropped(count));
                    }
                    _ => out.push(Sse::Event(data.to_string())),
                }
            }
            // Comments (`: keepalive`) and other fields are ignored.
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_read_across_chunks_and_comments_skipped() {
        let mut parser = SseLines::default();
        assert!(parser.push(b": tapping\n\ndata: {\"a\"").is_empty());
        assert_eq!(
            parser.push(b":1}\n\nevent: dropped\ndata: {\"dropped\":7}\n\ndata: 2\n\n"),
            vec![
                Sse::Event("{\"a\":1}".into()),
                Sse::Dropped(7),
                Sse::Event("2".into()),
            ]
        );
    }
}
