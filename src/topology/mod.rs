//! Running a topology: build the components, connect them with bounded
//! buffers, run each as a task, and shut down in order.
//!
//! Shutdown needs no coordinator. When the sources stop (end of input, or the
//! `stop` token on SIGTERM), they drop their senders; a buffer closes once
//! all its senders are gone and it is empty; the component behind it then
//! finishes its work, flushes, and drops *its* senders. So buffers drain in
//! topology order and sinks flush last, by construction. The only timer is
//! the graceful shutdown limit, which names whoever is still busy.

mod transform_task;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::buffer::fanout::Fanout;
use crate::buffer::{BufferConfig, BufferSender, WhenFull};
use crate::component_key::ComponentKey;
use crate::components::sink::{Sink, SinkContext, SinkInput};
use crate::components::source::{Source, SourceContext, SourceSender};
use crate::components::transform::{TaskContext, Transform, TransformInput, TransformOutputs};
use crate::components::{BuildContext, OutputSpec, Registry};
use crate::config::{Config, Graph, OutputId};
use crate::diagnostic::{Diagnostic, SourceFile};
use crate::internal_events::{ComponentMetrics, Undelivered};
use crate::shared::Shared;

/// Every component type howl knows: what a config is parsed against.
pub static REGISTRY: Registry = Registry {
    sources: crate::sources::TYPES,
    transforms: crate::transforms::TYPES,
    sinks: crate::sinks::TYPES,
};

/// How long sources get, once the graceful shutdown limit is reached, to
/// save what was acknowledged before every task is stopped.
const SAVE_GRACE: Duration = Duration::from_secs(1);
/// How often a shutdown that takes its time says what it waits for.
const SHUTDOWN_PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Events that may wait in front of each transform (sinks configure theirs).
const TRANSFORM_BUFFER_EVENTS: usize = 1000;

/// Every component, built and ready to run.
pub struct Built {
    sources: Vec<(ComponentKey, Box<dyn Source>)>,
    transforms: Vec<BuiltTransform>,
    sinks: Vec<BuiltSink>,
}

/// A sink, built, with what the topology puts in front of it.
pub struct BuiltSink {
    /// Which sink.
    pub key: ComponentKey,
    /// The sink.
    pub sink: Box<dyn Sink>,
    /// Its input buffer.
    pub buffer: BufferConfig,
    /// Whether sources wait for its deliveries.
    pub acknowledgements: bool,
}

/// Builds every component of `config`, reporting every failure.
pub fn build(config: &Config) -> Result<Built, Vec<Diagnostic>> {
    let mut diagnostics = Vec::new();
    let mut built = Built {
        sources: Vec::new(),
        transforms: Vec::new(),
        sinks: Vec::new(),
    };
    let context = |key: &ComponentKey, file: &Arc<SourceFile>| BuildContext {
        key: key.clone(),
        file: Arc::clone(file),
        data_dir: config.data_dir.clone(),
    };
    for def in &config.sources {
        match def.options.build(&context(&def.key, &def.file)) {
            Ok(source) => built.sources.push((def.key.clone(), source)),
            Err(error) => diagnostics.push(error.into_diagnostic(
                &def.key,
                &def.file,
                &def.span,
                &def.option_spans,
            )),
        }
    }
    match build_transforms(config) {
        Ok(transforms) => built.transforms = transforms,
        Err(mut errors) => diagnostics.append(&mut errors),
    }
    for sink in &config.sinks {
        let def = &sink.component;
        match def.options.build(&context(&def.key, &def.file)) {
            Ok(built_sink) => built.sinks.push(BuiltSink {
                key: def.key.clone(),
                sink: built_sink,
                buffer: sink.buffer.clone(),
                acknowledgements: sink.acknowledgements,
            }),
            Err(error) => diagnostics.push(error.into_diagnostic(
                &def.key,
                &def.file,
                &def.span,
                &def.option_spans,
            )),
        }
    }
    if diagnostics.is_empty() {
        Ok(built)
    } else {
        Err(diagnostics)
    }
}

/// A transform, built, with the outputs it offers.
pub type BuiltTransform = (ComponentKey, Transform, Vec<OutputSpec>);

/// Builds only the transforms of `config` (what `howl test` exercises),
/// reporting every failure.
pub fn build_transforms(config: &Config) -> Result<Vec<BuiltTransform>, Vec<Diagnostic>> {
    let mut transforms = Vec::new();
    let mut diagnostics = Vec::new();
    for def in &config.transforms {
        let cx = BuildContext {
            key: def.key.clone(),
            file: Arc::clone(&def.file),
            data_dir: config.data_dir.clone(),
        };
        match def.options.build(&cx) {
            Ok(transform) => transforms.push((def.key.clone(), transform, def.options.outputs())),
            Err(error) => diagnostics.push(error.into_diagnostic(
                &def.key,
                &def.file,
                &def.span,
                &def.option_spans,
            )),
        }
    }
    if diagnostics.is_empty() {
        Ok(transforms)
    } else {
        Err(diagnostics)
    }
}

impl Built {
    /// A topology assembled from parts rather than from a config: `howl
    /// test` runs a config's transforms between its own input sources and
    /// capturing sinks.
    pub fn from_parts(
        sources: Vec<(ComponentKey, Box<dyn Source>)>,
        transforms: Vec<BuiltTransform>,
        sinks: Vec<BuiltSink>,
    ) -> Self {
        Self {
            sources,
            transforms,
            sinks,
        }
    }
}

/// How a run ended.
#[derive(Debug, Default)]
pub struct RunReport {
    /// Components whose task returned an error or panicked.
    pub failed: Vec<String>,
    /// Components still busy when the graceful shutdown limit passed.
    pub still_running: Vec<String>,
    /// Sinks that stopped with events they had not delivered (the graceful
    /// shutdown limit, or a failure), by name.
    pub undelivered: Vec<(String, Undelivered)>,
}

impl RunReport {
    /// True when everything finished cleanly.
    pub fn is_clean(&self) -> bool {
        self.failed.is_empty() && self.still_running.is_empty()
    }
}

/// Knobs of a run that are not part of the topology.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// How long shutdown may take once requested.
    pub graceful_shutdown_limit: Duration,
    /// Copies of each pure transform working at once.
    pub transform_concurrency: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            graceful_shutdown_limit: Duration::from_secs(60),
            transform_concurrency: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// Events left in a disk buffer that no sink reads any more are not lost,
/// but nobody delivers them: say so, loudly, at every start.
fn warn_of_orphaned_disk_buffers(config: &Config, sinks: &[BuiltSink]) {
    let in_use: Vec<&str> = sinks
        .iter()
        .filter(|sink| sink.buffer.kind == crate::buffer::BufferKind::Disk)
        .map(|sink| sink.key.id())
        .collect();
    let dir = config.data_dir.join("buffers");
    for (id, bytes) in crate::buffer::disk::orphans(&dir, &in_use) {
        tracing::error!(
            buffer = %dir.join(&id).display(),
            bytes,
            "a disk buffer holds events that no sink reads: sink `{id}` was renamed, removed, or given a memory buffer; give a sink the id `{id}` and `buffer.type = \"disk\"` to deliver them, or delete the directory"
        );
    }
}

/// Runs a built topology until it finishes (every source ended and every
/// buffer drained) or `stop` is cancelled and it drains. `shared` holds the
/// state store and suppressions the process shares with its API; its
/// `data_dir` must be the config's.
pub async fn run(
    config: &Config,
    graph: &Graph,
    built: Built,
    options: RunOptions,
    shared: Shared,
    stop: CancellationToken,
) -> RunReport {
    let state = shared.state.clone();
    debug_assert_eq!(state.data_dir(), config.data_dir.as_path());
    let host = crate::components::source::hostname();

    // One input buffer per transform and sink.
    let mut inputs: HashMap<String, BufferSender> = HashMap::new();
    let mut receivers = HashMap::new();
    let mut metrics: HashMap<String, Arc<ComponentMetrics>> = HashMap::new();
    for (key, _) in &built.sources {
        metrics.insert(
            key.id().to_string(),
            Arc::new(ComponentMetrics::new(key.clone())),
        );
    }
    for (key, _, _) in &built.transforms {
        let m = Arc::new(ComponentMetrics::new(key.clone()));
        let (tx, rx) =
            crate::buffer::channel(TRANSFORM_BUFFER_EVENTS, WhenFull::Block, Arc::clone(&m));
        inputs.insert(key.id().to_string(), tx);
        receivers.insert(key.id().to_string(), rx);
        metrics.insert(key.id().to_string(), m);
    }
    warn_of_orphaned_disk_buffers(config, &built.sinks);
    let mut sink_metrics = Vec::new();
    for BuiltSink { key, buffer, .. } in &built.sinks {
        let m = Arc::new(ComponentMetrics::new(key.clone()));
        sink_metrics.push((key.clone(), Arc::clone(&m)));
        let (tx, rx) = match crate::buffer::open(buffer, &config.data_dir, key.id(), Arc::clone(&m))
        {
            Ok(ends) => ends,
            Err(error) => {
                // Nothing has started yet: stop here, saying why.
                tracing::error!(component = %key, "cannot open its buffer: {error}");
                return RunReport {
                    failed: vec![format!("{key} (cannot open its buffer: {error})")],
                    ..RunReport::default()
                };
            }
        };
        inputs.insert(key.id().to_string(), tx);
        receivers.insert(key.id().to_string(), rx);
        metrics.insert(key.id().to_string(), m);
    }
    let fanout_for = |component: &str, output: Option<&str>| {
        let id = OutputId {
            component: component.to_string(),
            output: output.map(str::to_string),
        };
        let mut fanout = Fanout::default();
        for consumer in graph.consumers(&id) {
            if let Some(sender) = inputs.get(consumer) {
                fanout.add(consumer, sender.clone());
            }
        }
        fanout
    };

    let running = Arc::new(Mutex::new(BTreeSet::new()));
    let mut tasks = JoinSet::new();
    // Task ids to component names, so a panic can be reported by name.
    let mut names: HashMap<tokio::task::Id, String> = HashMap::new();
    let mut spawn = |key: &ComponentKey, future: crate::components::ComponentFuture| {
        let name = key.to_string();
        lock(&running).insert(name.clone());
        let running = Arc::clone(&running);
        let task_name = name.clone();
        let handle = tasks.spawn(async move {
            let result = future.await;
            lock(&running).remove(&task_name);
            (task_name, result)
        });
        names.insert(handle.id(), name);
    };

    for BuiltSink {
        key,
        sink,
        acknowledgements,
        ..
    } in built.sinks
    {
        let id = key.id().to_string();
        let (Some(rx), Some(m)) = (receivers.remove(&id), metrics.get(&id)) else {
            continue;
        };
        let cx = SinkContext {
            key: key.clone(),
            input: SinkInput::new(rx, Arc::clone(m), acknowledgements),
            metrics: Arc::clone(m),
            state: state.clone(),
            stop_topology: stop.clone(),
            shared: shared.clone(),
        };
        spawn(&key, sink.run(cx));
    }
    for (key, transform, outputs) in built.transforms {
        let id = key.id().to_string();
        let (Some(rx), Some(m)) = (receivers.remove(&id), metrics.get(&id)) else {
            continue;
        };
        let mut default = Fanout::default();
        let mut named = Vec::new();
        for output in &outputs {
            match &output.name {
                None => default = fanout_for(&id, None),
                Some(name) => named.push((name.clone(), fanout_for(&id, Some(name)))),
            }
        }
        let input = TransformInput::new(rx, Arc::clone(m));
        let outputs = TransformOutputs::new(default, named, Arc::clone(m));
        let future: crate::components::ComponentFuture = match transform {
            Transform::Sync(transform) => Box::pin(transform_task::run_sync(
                transform,
                input,
                outputs,
                Arc::clone(m),
                options.transform_concurrency,
            )),
            Transform::Task(transform) => transform.run(TaskContext {
                key: key.clone(),
                input,
                outputs,
                metrics: Arc::clone(m),
                state: state.clone(),
                shutdown: stop.child_token(),
                suppressions: shared.suppressions.clone(),
                links: shared.links.clone(),
            }),
        };
        spawn(&key, future);
    }
    let shutdown_limit = CancellationToken::new();
    for (key, source) in built.sources {
        let id = key.id().to_string();
        let Some(m) = metrics.get(&id) else { continue };
        let cx = SourceContext {
            key: key.clone(),
            out: SourceSender::new(fanout_for(&id, None), Arc::clone(m)),
            shutdown: stop.child_token(),
            shutdown_limit: shutdown_limit.clone(),
            state: state.clone(),
            host: Arc::clone(&host),
        };
        spawn(&key, source.run(cx));
    }
    // Only the fanouts may hold senders now, or buffers would never close.
    drop(inputs);

    let mut report = RunReport::default();
    let mut deadline: Option<tokio::time::Instant> = None;
    // While draining: when to say which components are still busy.
    let mut next_progress: Option<tokio::time::Instant> = None;
    loop {
        let progress = async {
            match next_progress {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let next = async {
            match deadline {
                Some(at) => tokio::time::timeout_at(at, tasks.join_next()).await.ok(),
                None => Some(tasks.join_next().await),
            }
        };
        tokio::select! {
            _ = stop.cancelled(), if deadline.is_none() => {
                tracing::info!(limit_secs = options.graceful_shutdown_limit.as_secs(), "shutting down: stopping sources and draining buffers");
                deadline = Some(tokio::time::Instant::now() + options.graceful_shutdown_limit);
                next_progress = Some(tokio::time::Instant::now() + SHUTDOWN_PROGRESS_EVERY);
            }
            () = progress => {
                let mut busy: Vec<String> = lock(&running).iter().cloned().collect();
                busy.sort();
                let left = deadline.map_or(0, |at| at.saturating_duration_since(tokio::time::Instant::now()).as_secs());
                tracing::warn!(
                    "still shutting down: waiting for {} to finish (delivering, or retrying a \
                     destination that is down); at most {left}s more. Press Ctrl-C again to \
                     quit at once (what they hold is then lost, or kept by disk buffers)",
                    busy.join(", ")
                );
                next_progress = Some(tokio::time::Instant::now() + SHUTDOWN_PROGRESS_EVERY);
            }
            joined = next => match joined {
                None if !shutdown_limit.is_cancelled() => {
                    // The limit: sources stop waiting for acknowledgements
                    // and save what was acknowledged; give them a moment.
                    shutdown_limit.cancel();
                    deadline = Some(tokio::time::Instant::now() + SAVE_GRACE);
                }
                None => {
                    report.still_running = lock(&running).iter().cloned().collect();
                    tasks.abort_all();
                    // Let the aborted tasks go (and their buffers count
                    // what they held) before saying what was lost.
                    while tasks.join_next().await.is_some() {}
                    break;
                }
                Some(None) => break,
                Some(Some(Ok((name, Ok(()))))) => tracing::debug!(component = %name, "finished"),
                Some(Some(Ok((name, Err(error))))) => {
                    tracing::error!(component = %name, "component failed: {error:#}");
                    report.failed.push(name);
                    stop.cancel();
                    // What the failed component held never reached its
                    // destination: sources must not wait for it, nor take
                    // its loss for delivery. They save what was
                    // acknowledged; the rest is read again next start.
                    shutdown_limit.cancel();
                }
                Some(Some(Err(join_error))) => {
                    let name = names
                        .get(&join_error.id())
                        .cloned()
                        .unwrap_or_else(|| "(an unknown component)".to_string());
                    lock(&running).remove(&name);
                    tracing::error!(component = %name, "component panicked: {join_error}");
                    report.failed.push(format!("{name} (panicked)"));
                    stop.cancel();
                    shutdown_limit.cancel();
                }
            }
        }
    }
    for (key, m) in &sink_metrics {
        let undelivered = m.undelivered();
        if undelivered.lost() > 0 || undelivered.on_disk > 0 {
            report.undelivered.push((key.to_string(), undelivered));
        }
    }
    report
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
