//! `howl patterns train -c CONFIG --since 24h [--until ...]`: learn what
//! routine looks like from a past window, before the first `howl run`.
//!
//! It runs the config's sources that can read a past window (those that
//! query a store: `loki_query`, `sql` with a timestamp cursor) over
//! `[since, until)`, through the transforms that lead from them to the
//! `pattern` transforms and those transforms themselves: no sinks, no
//! alerts, nothing downstream of the patterns. The `pattern` transforms
//! save what they learnt in the config's `data_dir` as they do in a run,
//! so the next `howl run` knows those patterns and alerts only on what is
//! new. The sources' own cursors are neither read nor moved: training
//! reads its window, and `howl run` goes on from where it was.
//!
//! It prints what it learnt: patterns in all, new since the last training
//! (or run), and the most frequent templates of each level.

use std::collections::{BTreeMap, HashSet};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::progress::{Progress, stderr_is_terminal};
use super::{ConfigArgs, EXIT_CONFIG, report};
use crate::buffer::BufferConfig;
use crate::component_key::{ComponentKey, ComponentKind};
use crate::components::sink::{Sink, SinkContext};
use crate::components::source::{Source, TimeWindow};
use crate::components::{BuildContext, ComponentFuture};
use crate::config::{Edge, Graph, OutputId};
use crate::patterns::{Miner, MinerConfig, PatternView};
use crate::shared::Shared;
use crate::state::StateStore;
use crate::state::patterns::{load_spaces, restore};
use crate::topology::{self, Built, BuiltSink, RunOptions};

/// Arguments of `howl patterns train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Where the window starts: this long ago, e.g. `24h`, `7d`.
    #[arg(long, value_parser = super::patterns::parse_duration)]
    since: Duration,
    /// Where it ends: this long ago (`1h`) or an RFC 3339 time; now when
    /// unset.
    #[arg(long, value_parser = parse_until)]
    until: Option<Until>,
    /// How many templates of each level the summary shows.
    #[arg(long, default_value_t = 5)]
    top: usize,
}

/// The end of the window as written.
#[derive(Debug, Clone, Copy)]
enum Until {
    Ago(Duration),
    At(DateTime<Utc>),
}

fn parse_until(text: &str) -> Result<Until, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(Until::At(at.with_timezone(&Utc)));
    }
    super::patterns::parse_duration(text)
        .map(Until::Ago)
        .map_err(|_| format!("`{text}` is neither a duration (`1h`) nor an RFC 3339 time"))
}

/// The component id of the sink that counts what the patterns saw.
const COUNTER: &str = "(train)";

/// Runs `howl patterns train`.
pub fn train(args: TrainArgs) -> anyhow::Result<ExitCode> {
    if let Err(code) = super::require_config(&args.config) {
        return Ok(code);
    }
    let now = Utc::now();
    let ago = |duration: Duration| {
        chrono::Duration::from_std(duration)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
            .ok_or_else(|| anyhow::anyhow!("{duration:?} is too far back"))
    };
    let since = ago(args.since)?;
    let until = match args.until {
        None => now,
        Some(Until::Ago(duration)) => ago(duration)?,
        Some(Until::At(at)) => at,
    };
    if since >= until {
        anyhow::bail!("the window is empty: --since ({since}) is not before --until ({until})");
    }
    let window = TimeWindow { since, until };

    let loaded = super::load(&args.config);
    let (mut config, graph) = match (loaded.is_ok(), loaded.graph) {
        (true, Some(graph)) => {
            report(&loaded.diagnostics);
            (loaded.config, graph)
        }
        _ => {
            report(&loaded.diagnostics);
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };

    // The sources that can read the window.
    let mut sources: Vec<(ComponentKey, Box<dyn Source>)> = Vec::new();
    let mut left_out = Vec::new();
    let mut diagnostics = Vec::new();
    for def in &config.sources {
        let cx = BuildContext {
            key: def.key.clone(),
            file: Arc::clone(&def.file),
            data_dir: config.data_dir.clone(),
        };
        match def.options.build_window(&cx, window) {
            None => left_out.push(format!("{} ({})", def.key.id(), def.key.type_name())),
            Some(Ok(source)) => sources.push((def.key.clone(), source)),
            Some(Err(error)) => diagnostics.push(error.into_diagnostic(
                &def.key,
                &def.file,
                &def.span,
                &def.option_spans,
            )),
        }
    }
    if !diagnostics.is_empty() {
        report(&diagnostics);
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    if sources.is_empty() {
        anyhow::bail!(
            "no source of the config can read a past window (that takes `loki_query`, or \
             `sql` with a timestamp cursor); left out: {}",
            left_out.join(", ")
        );
    }
    if !left_out.is_empty() {
        eprintln!(
            "note: sources that cannot read a past window are left out: {}",
            left_out.join(", ")
        );
    }

    // The transforms between those sources and the pattern transforms.
    let pulled: HashSet<&str> = sources.iter().map(|(key, _)| key.id()).collect();
    let patterns: HashSet<&str> = config
        .transforms
        .iter()
        .filter(|t| t.key.type_name() == "pattern")
        .map(|t| t.key.id())
        .collect();
    let keep = on_paths(&graph, &pulled, &patterns);
    let kept_patterns: Vec<String> = patterns
        .iter()
        .filter(|id| keep.contains(**id))
        .map(|id| id.to_string())
        .collect();
    if kept_patterns.is_empty() {
        anyhow::bail!(
            "no `pattern` transform reads from the sources that can read a window ({}): \
             there is nothing to train",
            pulled.iter().copied().collect::<Vec<_>>().join(", ")
        );
    }
    let mut edges: Vec<Edge> = graph
        .edges
        .iter()
        .filter(|e| {
            (pulled.contains(e.from.component.as_str()) || keep.contains(&e.from.component))
                && keep.contains(&e.to)
        })
        .cloned()
        .collect();
    let keep_ids = keep.clone();
    config.transforms.retain(|t| keep_ids.contains(t.key.id()));
    let transforms = match topology::build_transforms(&config) {
        Ok(transforms) => transforms,
        Err(diagnostics) => {
            report(&diagnostics);
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    for pattern in &kept_patterns {
        edges.push(Edge {
            from: OutputId {
                component: pattern.clone(),
                output: None,
            },
            to: COUNTER.to_string(),
        });
    }
    let seen = Arc::new(AtomicU64::new(0));
    let sinks = vec![BuiltSink {
        key: ComponentKey::new(ComponentKind::Sink, COUNTER, "train"),
        sink: Box::new(Count(Arc::clone(&seen))),
        buffer: BufferConfig::default(),
        acknowledgements: false,
    }];
    let train_graph = Graph {
        nodes: graph.nodes.clone(),
        edges,
    };
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create data_dir `{}`: {e}",
            config.data_dir.display()
        )
    })?;
    let shared = Shared::new(config.data_dir.clone());
    let store = shared.state.store()?;
    let before = pattern_ids(&store, &kept_patterns)?;

    let runtime = match super::runtime(None) {
        Ok(runtime) => runtime,
        Err(code) => return Ok(code),
    };
    let built = Built::from_parts(sources, transforms, sinks);
    let interrupted = Arc::new(AtomicBool::new(false));
    let report = runtime.block_on(async {
        let stop = CancellationToken::new();
        let signals = tokio::spawn(stop_on_signal(stop.clone(), Arc::clone(&interrupted)));
        let mut progress = Progress::spinner("training", stderr_is_terminal());
        let watched = Arc::clone(&seen);
        let counting = async {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                progress.message(&format!(
                    "training: {} lines",
                    watched.load(Ordering::Relaxed)
                ));
            }
        };
        let options = RunOptions::default();
        let run = topology::run(&config, &train_graph, built, options, shared, stop);
        let report = tokio::select! {
            report = run => report,
            () = counting => unreachable!("counting never ends"),
        };
        signals.abort();
        progress.finish();
        report
    });
    if !report.is_clean() {
        eprintln!(
            "error: training did not finish: {}",
            report
                .failed
                .iter()
                .chain(&report.still_running)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(ExitCode::FAILURE);
    }
    let lines = seen.load(Ordering::Relaxed);
    let interrupted = interrupted.load(Ordering::Relaxed);
    print_summary(
        &store,
        &kept_patterns,
        &before,
        lines,
        window,
        interrupted,
        args.top,
    )?;
    if interrupted {
        // What was learnt is saved, but the window was not read to its
        // end: a script must not take it for a finished training.
        eprintln!("error: training was interrupted before the end of the window");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The transforms on some path from `from` (sources) to one of `to`
/// (transforms), `to`'s own reachable members included.
fn on_paths(graph: &Graph, from: &HashSet<&str>, to: &HashSet<&str>) -> HashSet<String> {
    let reach = |starts: Vec<String>, forward: bool| {
        let mut seen: HashSet<String> = starts.iter().cloned().collect();
        let mut queue = starts;
        while let Some(node) = queue.pop() {
            for edge in &graph.edges {
                let (a, b) = if forward {
                    (edge.from.component.as_str(), edge.to.as_str())
                } else {
                    (edge.to.as_str(), edge.from.component.as_str())
                };
                if a == node && seen.insert(b.to_string()) {
                    queue.push(b.to_string());
                }
            }
        }
        seen
    };
    let downstream = reach(from.iter().map(|s| s.to_string()).collect(), true);
    let upstream = reach(to.iter().map(|s| s.to_string()).collect(), false);
    downstream
        .intersection(&upstream)
        .filter(|id| !from.contains(id.as_str()))
        .cloned()
        .collect()
}

/// The pattern spaces of these transforms in the store: (namespace,
/// scope, miner).
fn learnt(
    store: &StateStore,
    namespaces: &[String],
) -> anyhow::Result<Vec<(String, String, Miner)>> {
    let reading = super::patterns::reading(MinerConfig::default());
    let mut spaces = Vec::new();
    for namespace in namespaces {
        for saved in load_spaces(store, Some(namespace))? {
            let scope = saved.scope.clone();
            spaces.push((namespace.clone(), scope, restore(&reading, saved)?));
        }
    }
    Ok(spaces)
}

/// Every pattern id the store holds for these transforms.
fn pattern_ids(store: &StateStore, namespaces: &[String]) -> anyhow::Result<HashSet<String>> {
    Ok(learnt(store, namespaces)?
        .iter()
        .flat_map(|(namespace, scope, miner)| {
            miner
                .patterns()
                .map(move |p| format!("{namespace}/{scope}/{}", p.id))
        })
        .collect())
}

fn print_summary(
    store: &StateStore,
    namespaces: &[String],
    before: &HashSet<String>,
    lines: u64,
    window: TimeWindow,
    interrupted: bool,
    top: usize,
) -> anyhow::Result<()> {
    let mut total = 0;
    let mut new = 0;
    let mut by_level: BTreeMap<String, Vec<(u64, String, String)>> = BTreeMap::new();
    for (namespace, scope, miner) in learnt(store, namespaces)? {
        for pattern in miner.patterns() {
            total += 1;
            if !before.contains(&format!("{namespace}/{scope}/{}", pattern.id)) {
                new += 1;
            }
            by_level
                .entry(pattern.level.to_string())
                .or_default()
                .push(row(&pattern, &scope));
        }
    }
    println!(
        "trained on {lines} lines from {} to {}{}",
        window
            .since
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        window
            .until
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        if interrupted {
            " (interrupted: not to the end)"
        } else {
            ""
        }
    );
    println!("patterns: {total} in all, {new} new since the last training or run");
    for (level, mut rows) in by_level {
        rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        println!("\ntop {level} templates:");
        for (count, id, template) in rows.into_iter().take(top) {
            println!("  {count:>9}  {id}  {template}");
        }
    }
    Ok(())
}

fn row(pattern: &PatternView<'_>, scope: &str) -> (u64, String, String) {
    let template = if scope.is_empty() {
        pattern.template.to_string()
    } else {
        format!("[{scope}] {}", pattern.template)
    };
    (pattern.count, pattern.id.to_string(), template)
}

/// Stops the run on Ctrl-C or SIGTERM, and says so in `interrupted`: the
/// patterns learnt so far are saved.
async fn stop_on_signal(stop: CancellationToken, interrupted: Arc<AtomicBool>) {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    interrupted.store(true, Ordering::Relaxed);
    stop.cancel();
}

/// Counts what reaches it (the lines the patterns saw).
struct Count(Arc<AtomicU64>);

impl Sink for Count {
    fn run(self: Box<Self>, mut cx: SinkContext) -> ComponentFuture {
        Box::pin(async move {
            while let Some(events) = cx.input.recv().await {
                self.0.fetch_add(events.len() as u64, Ordering::Relaxed);
            }
            Ok(())
        })
    }
}
