//! Running one prepared test: the config's transforms, fed by a source per
//! `insert_at` and read by a capturing sink per checked output.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{PreparedOutput, PreparedTest};
use crate::buffer::BufferConfig;
use crate::component_key::{ComponentKey, ComponentKind};
use crate::components::ComponentFuture;
use crate::components::sink::{Sink, SinkContext};
use crate::components::source::{Source, SourceContext};
use crate::config::{Config, Edge, Graph, OutputId};
use crate::diagnostic::Diagnostic;
use crate::event::Event;
use crate::shared::Shared;
use crate::sinks::encoding::Encoding;
use crate::topology::{self, Built, BuiltSink, RunOptions};
use crate::vrl_program::VrlRunner;

/// How long one test may run before it is stopped and reported as failed
/// (a transform that never finishes, e.g. waiting on a network).
const TEST_TIME_LIMIT: Duration = Duration::from_secs(60);

/// What one test found.
#[derive(Debug)]
pub struct Outcome {
    /// The test's name.
    pub name: String,
    /// Why it failed; empty when it passed.
    pub failures: Vec<String>,
}

impl Outcome {
    /// True when every check held.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Runs `test` on the transforms of `config`, in a fresh `data_dir` under
/// `scratch` (each test starts from empty state, and a config's real state
/// is never touched). Build errors of the transforms come back as
/// diagnostics.
pub async fn run(
    config: &mut Config,
    graph: &Graph,
    test: &PreparedTest,
    scratch: &Path,
) -> Result<Outcome, Vec<Diagnostic>> {
    let data_dir = scratch.join(sanitize(&test.name));
    config.data_dir = data_dir.clone();
    let transforms = topology::build_transforms(config)?;

    // The transforms keep their edges among themselves; the test's sources
    // and sinks replace the config's.
    let is_transform = |id: &str| transforms.iter().any(|(key, _, _)| key.id() == id);
    let mut edges: Vec<Edge> = graph
        .edges
        .iter()
        .filter(|edge| is_transform(&edge.from.component) && is_transform(&edge.to))
        .cloned()
        .collect();
    let mut sources: Vec<(ComponentKey, Box<dyn Source>)> = Vec::new();
    for (index, (target, events)) in test.inputs.iter().enumerate() {
        let id = format!("(test input {index})");
        edges.push(Edge {
            from: OutputId {
                component: id.clone(),
                output: None,
            },
            to: target.clone(),
        });
        sources.push((
            ComponentKey::new(ComponentKind::Source, &id, "test"),
            Box::new(Inject(events.clone())),
        ));
    }
    let mut sinks: Vec<BuiltSink> = Vec::new();
    let mut captures: Vec<(OutputId, Captured)> = Vec::new();
    for output in test
        .outputs
        .iter()
        .map(|output| &output.id)
        .chain(&test.silent)
    {
        if captures.iter().any(|(id, _)| id == output) {
            continue;
        }
        let id = format!("(test output {output})");
        edges.push(Edge {
            from: output.clone(),
            to: id.clone(),
        });
        let captured = Captured::default();
        sinks.push(BuiltSink {
            key: ComponentKey::new(ComponentKind::Sink, &id, "test"),
            sink: Box::new(Capture(captured.clone())),
            buffer: BufferConfig::default(),
            acknowledgements: false,
        });
        captures.push((output.clone(), captured));
    }
    let test_graph = Graph {
        nodes: graph.nodes.clone(),
        edges,
    };
    let built = Built::from_parts(sources, transforms, sinks);
    let options = RunOptions {
        graceful_shutdown_limit: Duration::from_secs(5),
        // One copy per transform: events come out in a reproducible order.
        transform_concurrency: 1,
    };
    let stop = CancellationToken::new();
    let timer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(TEST_TIME_LIMIT).await;
            stop.cancel();
        })
    };
    let shared = Shared::new(data_dir.clone());
    let report = topology::run(config, &test_graph, built, options, shared, stop.clone()).await;
    timer.abort();
    let _ = std::fs::remove_dir_all(&data_dir);

    let mut failures = Vec::new();
    if stop.is_cancelled() {
        failures.push(format!(
            "the transforms did not finish within {}s of their input ending; stopped",
            TEST_TIME_LIMIT.as_secs()
        ));
    }
    for failed in &report.failed {
        failures.push(format!("{failed} failed (see the log above)"));
    }
    let events_of = |output: &OutputId| {
        captures
            .iter()
            .find(|(id, _)| id == output)
            .map(|(_, captured)| captured.take())
            .unwrap_or_default()
    };
    for PreparedOutput {
        id: output,
        conditions,
        count,
    } in &test.outputs
    {
        let events = events_of(output);
        if events.is_empty() && *count != Some(0) {
            failures.push(format!("no events came out of `{output}`"));
            continue;
        }
        if let Some(count) = count
            && events.len() != *count
        {
            failures.push(format!(
                "`{output}` produced {} event(s), {count} expected:\n{}",
                events.len(),
                render(&events)
            ));
        }
        for (source, program) in conditions {
            if let Err(why) = check(program, &events) {
                failures.push(format!(
                    "condition on `{output}` held for none of its {} event(s): {why}\n  condition:\n{}\n  events:\n{}",
                    events.len(),
                    indent(source),
                    render(&events)
                ));
            }
        }
    }
    for output in &test.silent {
        let events = events_of(output);
        if !events.is_empty() {
            failures.push(format!(
                "`{output}` was to produce nothing but produced {} event(s):\n{}",
                events.len(),
                render(&events)
            ));
        }
    }
    Ok(Outcome {
        name: test.name.clone(),
        failures,
    })
}

/// Ok when at least one event satisfies the condition; otherwise the reason
/// the first event did not (an `assert!` message says the most).
fn check(program: &Arc<vrl::compiler::Program>, events: &[Event]) -> Result<(), String> {
    let mut runner = VrlRunner::new(Arc::clone(program));
    let mut first_reason = None;
    for event in events {
        let mut value = event.value().clone();
        let reason = match runner.run(&mut value) {
            Ok(vrl::value::Value::Boolean(true)) => return Ok(()),
            Ok(_) => "it returned false".to_string(),
            Err(error) => error.to_string(),
        };
        first_reason.get_or_insert(reason);
    }
    Err(first_reason.unwrap_or_default())
}

/// At most this many events are shown per failure.
const SHOWN_EVENTS: usize = 10;

/// Events as JSON lines, indented, for a failure report.
fn render(events: &[Event]) -> String {
    let mut lines = Vec::new();
    for event in events.iter().take(SHOWN_EVENTS) {
        let mut line = Vec::new();
        Encoding::Json.encode(event, &mut line);
        lines.push(String::from_utf8_lossy(&line).trim_end().to_string());
    }
    if events.len() > SHOWN_EVENTS {
        lines.push(format!("... and {} more", events.len() - SHOWN_EVENTS));
    }
    indent(&lines.join("\n"))
}

/// Indents every line of `text` under a heading of the report.
fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("    {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A directory name for a test.
fn sanitize(name: &str) -> PathBuf {
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    PathBuf::from(safe)
}

/// Sends the test's events, in order, then ends (which closes the graph).
struct Inject(Vec<Event>);

impl Source for Inject {
    fn run(self: Box<Self>, mut cx: SourceContext) -> ComponentFuture {
        Box::pin(async move {
            cx.out.send(self.0).await;
            Ok(())
        })
    }
}

/// The events one output produced.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<Event>>>);

impl Captured {
    fn push(&self, events: Vec<Event>) {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend(events);
    }

    fn take(&self) -> Vec<Event> {
        std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }
}

/// Keeps everything it receives.
struct Capture(Captured);

impl Sink for Capture {
    fn run(self: Box<Self>, mut cx: SinkContext) -> ComponentFuture {
        Box::pin(async move {
            while let Some(events) = cx.input.recv().await {
                self.0.push(events);
            }
            Ok(())
        })
    }
}
