//! `howl top`: what a running howl is doing, per component, from its own
//! `/metrics`: events in and out per second, errors, discards, events
//! waiting in its buffer, and a sink's delivery latency. A terminal view
//! refreshed every second (`q` quits, `s` changes the sort), or with
//! `--once` one plain-text snapshot for scripts.
//!
//! It reads the same Prometheus text an operator's scraper reads, so it
//! shows nothing the metrics do not, and needs no endpoint of its own.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind};
use ratatui::layout::Constraint;
use ratatui::style::{Modifier, Style};
use ratatui::widgets::{Block, Cell, Row, Table};

use super::suppress::ApiArgs;

/// Arguments of `howl top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// Print one snapshot (rates over one second) as plain text and exit.
    #[arg(long)]
    once: bool,
    /// Seconds between refreshes (and the window of `--once`'s rates).
    #[arg(long, default_value_t = 1.0, value_parser = interval)]
    interval: f64,
    #[command(flatten)]
    api: ApiArgs,
}

fn interval(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if (0.1..=3600.0).contains(&seconds) => Ok(seconds),
        _ => Err("a number of seconds from 0.1 to 3600".into()),
    }
}

/// One component's counters, as read at one moment.
#[derive(Debug, Default, Clone, PartialEq)]
struct Sample {
    kind: String,
    type_name: String,
    received: f64,
    sent: f64,
    errors: f64,
    discarded: f64,
    waiting: f64,
    latency_sum: f64,
    latency_count: f64,
}

/// Every component's counters, by id, from a `/metrics` text.
fn parse(text: &str) -> BTreeMap<String, Sample> {
    let mut samples: BTreeMap<String, Sample> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.trim_end_matches('}')),
            None => (series, ""),
        };
        let label = |key: &str| -> Option<&str> {
            let start = labels.find(&format!("{key}=\""))? + key.len() + 2;
            let rest = &labels[start..];
            Some(&rest[..rest.find('"')?])
        };
        let Some(id) = label("component_id") else {
            continue;
        };
        let sample = samples.entry(id.to_string()).or_default();
        if let Some(kind) = label("component_kind") {
            sample.kind = kind.to_string();
        }
        if let Some(type_name) = label("component_type") {
            sample.type_name = type_name.to_string();
        }
        match name {
            "component_received_events_total" => sample.received += value,
            "component_sent_events_total" => sample.sent += value,
            "component_errors_total" => sample.errors += value,
            "component_discarded_events_total" => sample.discarded += value,
            "buffer_events" => sample.waiting += value,
            "http_client_request_duration_seconds_sum" => sample.latency_sum += value,
            "http_client_request_duration_seconds_count" => sample.latency_count += value,
            _ => {}
        }
    }
    samples
}

/// One line of the view: rates between two samples.
#[derive(Debug, Clone, PartialEq)]
struct Line {
    id: String,
    kind: String,
    type_name: String,
    in_per_sec: f64,
    out_per_sec: f64,
    errors: f64,
    discarded: f64,
    waiting: f64,
    /// Mean delivery latency over the window (or since start when nothing
    /// was delivered in it), in milliseconds; `None` for non-HTTP sinks.
    latency_ms: Option<f64>,
}

fn lines(
    before: &BTreeMap<String, Sample>,
    now: &BTreeMap<String, Sample>,
    seconds: f64,
) -> Vec<Line> {
    let seconds = seconds.max(1e-3);
    now.iter()
        .map(|(id, sample)| {
            let prev = before.get(id).cloned().unwrap_or_default();
            let rate = |now: f64, before: f64| ((now - before).max(0.0)) / seconds;
            let window_count = sample.latency_count - prev.latency_count;
            let latency_ms = if window_count > 0.0 {
                Some((sample.latency_sum - prev.latency_sum) / window_count * 1000.0)
            } else if sample.latency_count > 0.0 {
                Some(sample.latency_sum / sample.latency_count * 1000.0)
            } else {
                None
            };
            Line {
                id: id.clone(),
                kind: sample.kind.clone(),
                type_name: sample.type_name.clone(),
                in_per_sec: rate(sample.received, prev.received),
                out_per_sec: rate(sample.sent, prev.sent),
                errors: sample.errors,
                discarded: sample.discarded,
                waiting: sample.waiting,
                latency_ms,
            }
        })
        .collect()
}

/// The orders the view cycles through with `s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    /// Sources, transforms, sinks; then by id.
    Topology,
    /// Busiest first (events in per second).
    Busiest,
    /// Most errors first.
    Errors,
    /// Fullest buffer first.
    Waiting,
}

impl Sort {
    fn next(self) -> Self {
        match self {
            Self::Topology => Self::Busiest,
            Self::Busiest => Self::Errors,
            Self::Errors => Self::Waiting,
            Self::Waiting => Self::Topology,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Topology => "kind",
            Self::Busiest => "events in/s",
            Self::Errors => "errors",
            Self::Waiting => "waiting",
        }
    }

    fn apply(self, lines: &mut [Line]) {
        let kind_rank = |kind: &str| match kind {
            "source" => 0,
            "transform" => 1,
            _ => 2,
        };
        lines.sort_by(|a, b| {
            let by = match self {
                Self::Topology => kind_rank(&a.kind).cmp(&kind_rank(&b.kind)),
                Self::Busiest => b.in_per_sec.total_cmp(&a.in_per_sec),
                Self::Errors => b.errors.total_cmp(&a.errors),
                Self::Waiting => b.waiting.total_cmp(&a.waiting),
            };
            by.then_with(|| a.id.cmp(&b.id))
        });
    }
}

const HEADERS: [&str; 8] = [
    "COMPONENT",
    "KIND",
    "TYPE",
    "IN/S",
    "OUT/S",
    "ERRORS",
    "DISCARDED",
    "WAITING",
];

fn cells(line: &Line) -> [String; 9] {
    [
        line.id.clone(),
        line.kind.clone(),
        line.type_name.clone(),
        format!("{:.1}", line.in_per_sec),
        format!("{:.1}", line.out_per_sec),
        format!("{}", line.errors),
        format!("{}", line.discarded),
        format!("{}", line.waiting),
        line.latency_ms
            .map_or_else(|| "-".to_string(), |ms| format!("{ms:.1}")),
    ]
}

/// The snapshot as plain text (`--once`).
fn render_text(lines: &[Line]) -> String {
    let mut rows: Vec<[String; 9]> = vec![{
        let mut header: [String; 9] = Default::default();
        for (cell, name) in header
            .iter_mut()
            .zip(HEADERS.iter().chain(["LATENCY_MS"].iter()))
        {
            *cell = (*name).to_string();
        }
        header
    }];
    rows.extend(lines.iter().map(cells));
    let mut widths = [0usize; 9];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (cell, width))| {
                if i < 3 {
                    format!("{cell:<width$}")
                } else {
                    format!("{cell:>width$}")
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Runs `howl top`.
pub fn top(args: TopArgs) -> ExitCode {
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
    let client = match crate::http::http_client(Duration::from_secs(5)) {
        Ok(client) => client,
        Err(error) => {
            eprintln!("error: {}", error.message);
            return ExitCode::FAILURE;
        }
    };
    let fetch = || runtime.block_on(fetch(&client, &args.api));
    let window = Duration::from_secs_f64(args.interval);
    let result = if args.once {
        once(fetch, window)
    } else {
        interactive(fetch, window)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn fetch(
    client: &reqwest::Client,
    api: &ApiArgs,
) -> Result<BTreeMap<String, Sample>, String> {
    let base = reqwest::Url::parse(&api.api)
        .map_err(|e| format!("--api `{}` is not a URL: {e}", api.api))?;
    let url = crate::http::api_url(&base, "metrics");
    let response = client.get(url).send().await.map_err(|e| {
        format!(
            "cannot reach howl's API at {} ({}); is howl running with `[api] enabled = true`?",
            api.api,
            crate::http::error_chain(&e.without_url())
        )
    })?;
    if !response.status().is_success() {
        return Err(format!("GET /metrics answered {}", response.status()));
    }
    let text = response.text().await.map_err(|e| e.to_string())?;
    Ok(parse(&text))
}

fn once(
    fetch: impl Fn() -> Result<BTreeMap<String, Sample>, String>,
    window: Duration,
) -> Result<(), String> {
    let started = Instant::now();
    let before = fetch()?;
    std::thread::sleep(window);
    let now = fetch()?;
    let mut lines = lines(&before, &now, started.elapsed().as_secs_f64());
    Sort::Topology.apply(&mut lines);
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(render_text(&lines).as_bytes());
    Ok(())
}

fn interactive(
    fetch: impl Fn() -> Result<BTreeMap<String, Sample>, String>,
    window: Duration,
) -> Result<(), String> {
    let mut before = fetch()?;
    let mut taken = Instant::now();
    let mut shown: Vec<Line> = lines(&before, &before, 1.0);
    let mut sort = Sort::Topology;
    let mut status = String::new();
    let mut terminal = ratatui::try_init().map_err(|e| format!("cannot use the terminal: {e}"))?;
    let result = loop {
        sort.apply(&mut shown);
        let title = format!(
            " howl top · {} · sorted by {} (s) · q quits {status}",
            chrono::Local::now().format("%H:%M:%S"),
            sort.name()
        );
        let drawn = terminal.draw(|frame| {
            let header = Row::new(
                HEADERS
                    .iter()
                    .chain(["LATENCY ms"].iter())
                    .map(|h| Cell::from(*h)),
            )
            .style(Style::default().add_modifier(Modifier::BOLD | Modifier::REVERSED));
            let rows = shown
                .iter()
                .map(|line| Row::new(cells(line).map(Cell::from)));
            let widths = [
                Constraint::Min(16),
                Constraint::Length(9),
                Constraint::Length(14),
                Constraint::Length(10),
                Constraint::Length(10),
                Constraint::Length(8),
                Constraint::Length(10),
                Constraint::Length(8),
                Constraint::Length(10),
            ];
            let table = Table::new(rows, widths)
                .header(header)
                .block(Block::bordered().title(title.clone()));
            frame.render_widget(table, frame.area());
        });
        if let Err(error) = drawn {
            break Err(format!("cannot draw: {error}"));
        }
        // Wait for a key until the next refresh is due.
        let due = taken + window;
        let mut quit = false;
        while let Some(left) = due.checked_duration_since(Instant::now()) {
            match event::poll(left) {
                Ok(true) => {
                    if let Ok(Event::Key(key)) = event::read()
                        && key.kind == KeyEventKind::Press
                    {
                        match key.code {
                            KeyCode::Char('q') | KeyCode::Esc => quit = true,
                            KeyCode::Char('s') => sort = sort.next(),
                            _ => {}
                        }
                        break;
                    }
                }
                Ok(false) => break,
                Err(_) => {
                    quit = true;
                    break;
                }
            }
        }
        if quit {
            break Ok(());
        }
        if Instant::now() >= due {
            match fetch() {
                Ok(now) => {
                    shown = lines(&before, &now, taken.elapsed().as_secs_f64());
                    before = now;
                    status.clear();
                }
                Err(error) => status = format!("· {error}"),
            }
            taken = Instant::now();
        }
    };
    ratatui::restore();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = r#"# TYPE component_received_events_total counter
component_received_events_total{component_id="in",component_kind="source",component_type="stdin"} 100
component_sent_events_total{component_id="in",component_kind="source",component_type="stdin",output="_default"} 100
component_received_events_total{component_id="hook",component_kind="sink",component_type="webhook"} 90
http_client_request_duration_seconds_sum{component_id="hook",component_kind="sink",component_type="webhook"} 1.5
http_client_request_duration_seconds_count{component_id="hook",component_kind="sink",component_type="webhook"} 10
"#;

    const NOW: &str = r#"component_received_events_total{component_id="in",component_kind="source",component_type="stdin"} 300
component_sent_events_total{component_id="in",component_kind="source",component_type="stdin",output="_default"} 250
component_received_events_total{component_id="hook",component_kind="sink",component_type="webhook"} 290
component_errors_total{component_id="hook",component_kind="sink",component_type="webhook",error_type="request_rejected",stage="sending"} 2
component_discarded_events_total{component_id="hook",component_kind="sink",component_type="webhook",intentional="false"} 3
buffer_events{component_id="hook",component_kind="sink",component_type="webhook"} 40
http_client_request_duration_seconds_sum{component_id="hook",component_kind="sink",component_type="webhook"} 2.5
http_client_request_duration_seconds_count{component_id="hook",component_kind="sink",component_type="webhook"} 20
"#;

    #[test]
    fn rates_errors_buffer_and_latency_come_from_two_samples_of_the_metrics() {
        let mut lines = lines(&parse(BEFORE), &parse(NOW), 2.0);
        Sort::Topology.apply(&mut lines);
        assert_eq!(lines[0].id, "in");
        assert_eq!(lines[0].in_per_sec, 100.0);
        assert_eq!(lines[0].out_per_sec, 75.0);
        let hook = &lines[1];
        assert_eq!(
            (hook.kind.as_str(), hook.type_name.as_str()),
            ("sink", "webhook")
        );
        assert_eq!(hook.in_per_sec, 100.0);
        assert_eq!(
            (hook.errors, hook.discarded, hook.waiting),
            (2.0, 3.0, 40.0)
        );
        // 10 requests took 1 s in the window: 100 ms each.
        assert_eq!(hook.latency_ms.map(|ms| ms.round()), Some(100.0));
        assert_eq!(lines[0].latency_ms, None);
    }

    #[test]
    fn the_sorts_put_the_busiest_or_the_failing_first() {
        let mut lines = lines(&parse(BEFORE), &parse(NOW), 2.0);
        Sort::Errors.apply(&mut lines);
        assert_eq!(lines[0].id, "hook");
        Sort::Topology.apply(&mut lines);
        assert_eq!(lines[0].id, "in");
        assert_eq!(Sort::Waiting.next(), Sort::Topology);
    }

    #[test]
    fn the_text_snapshot_is_a_table_with_a_header() {
        let lines = lines(&parse(BEFORE), &parse(NOW), 2.0);
        let text = render_text(&lines);
        let mut rows = text.lines();
        let header = rows.next().unwrap();
        assert!(
            header.starts_with("COMPONENT") && header.ends_with("LATENCY_MS"),
            "{text}"
        );
        assert!(text.contains("webhook"), "{text}");
        assert_eq!(text.lines().count(), 3, "{text}");
    }
}
