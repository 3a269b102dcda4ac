//! A topology while it runs: its tasks, the buffers between them, and the
//! handles a reload uses to change it without stopping what did not change.
//!
//! The running topology holds a sender to every transform's and sink's
//! buffer, so that a reload can wire a new producer to an existing consumer.
//! It lets go of them when shutdown starts, or once every source has ended,
//! so that buffers close in topology order as before (see the module docs of
//! [`super`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::reload::{
    BufferChange, Node, Plan, ReloadOutcome, ReloadRefused, ReloadReport, ReloadRequest, nodes_of,
};
use super::{
    Built, BuiltSink, BuiltTransform, RunOptions, RunReport, SAVE_GRACE, SHUTDOWN_PROGRESS_EVERY,
    TRANSFORM_BUFFER_EVENTS, lock, transform_task,
};
use crate::buffer::fanout::{Fanout, Rewire};
use crate::buffer::handover::{Detach, Input};
use crate::buffer::{BufferConfig, BufferReceiver, BufferSender, WhenFull};
use crate::component_key::{ComponentKey, ComponentKind};
use crate::components::sink::{SinkContext, SinkInput};
use crate::components::source::{Source, SourceContext, SourceSender};
use crate::components::transform::{TaskContext, Transform, TransformInput, TransformOutputs};
use crate::components::{ComponentFuture, OutputSpec};
use crate::config::{Config, Graph, OutputId};
use crate::internal_events::ComponentMetrics;
use crate::readiness::ReadyToken;
use crate::shared::Shared;

type TaskResult = (String, anyhow::Result<()>);

/// How long a reload watches the sources it started, so that one that
/// fails at once (a port taken) is named in its answer.
const SOURCE_START_GRACE: Duration = Duration::from_millis(250);

/// A source's two stop signals.
struct SourceStop {
    shutdown: CancellationToken,
    limit: CancellationToken,
}

/// A running component's handles.
struct Handles {
    /// Cancelled when its task has ended, however it ended.
    done: CancellationToken,
    /// Set when it ended with an error (before `done`).
    failed: Arc<AtomicBool>,
    abort: AbortHandle,
}

pub(super) struct Running {
    data_dir: std::path::PathBuf,
    host: Arc<str>,
    shared: Shared,
    stop: CancellationToken,
    options: RunOptions,
    graph: Graph,
    nodes: BTreeMap<String, Node>,
    /// Outputs offered by each transform (sources offer the default one).
    outputs: HashMap<String, Vec<OutputSpec>>,
    /// A sender to each transform's and sink's buffer; `None` once the
    /// topology lets go of them (shutdown, or every source ended).
    senders: Option<HashMap<String, BufferSender>>,
    rewires: HashMap<OutputId, Rewire>,
    detaches: HashMap<String, Detach>,
    source_stops: HashMap<String, SourceStop>,
    handles: HashMap<String, Handles>,
    metrics: HashMap<String, Arc<ComponentMetrics>>,
    /// Every sink that ran, for the report of what was not delivered.
    sink_metrics: BTreeMap<String, (ComponentKey, Arc<ComponentMetrics>)>,
    live_sources: Arc<AtomicUsize>,
    /// Set while a reload applies: what it starts is remembered in
    /// `started_by_reload`.
    in_reload: bool,
    /// Components a reload started (by name): if one fails, howl runs on
    /// without it (a reload must not take down what ran well before it).
    started_by_reload: BTreeSet<String>,
    /// A component a reload started has failed: howl waits for a reload
    /// that fixes it, even with no source left.
    awaiting_fix: bool,
    tasks: JoinSet<TaskResult>,
    names: HashMap<tokio::task::Id, String>,
    running: Arc<Mutex<BTreeSet<String>>>,
    shutdown_limit: CancellationToken,
}

/// Ends a component's bookkeeping however its task ends (return, panic or
/// abort).
struct DoneGuard {
    done: CancellationToken,
    live_sources: Option<Arc<AtomicUsize>>,
}

impl Drop for DoneGuard {
    fn drop(&mut self) {
        if let Some(live) = &self.live_sources {
            live.fetch_sub(1, Ordering::AcqRel);
        }
        self.done.cancel();
    }
}

impl Running {
    /// Opens every buffer and starts every component; `Err` names a buffer
    /// that cannot be opened (nothing was started then).
    pub fn start(
        config: &Config,
        graph: &Graph,
        built: Built,
        options: RunOptions,
        shared: Shared,
        stop: CancellationToken,
    ) -> Result<Self, RunReport> {
        let mut running = Self {
            data_dir: config.data_dir.clone(),
            host: crate::components::source::hostname(),
            shared,
            stop,
            options,
            graph: graph.clone(),
            nodes: nodes_of(config),
            outputs: HashMap::new(),
            senders: Some(HashMap::new()),
            rewires: HashMap::new(),
            detaches: HashMap::new(),
            source_stops: HashMap::new(),
            handles: HashMap::new(),
            metrics: HashMap::new(),
            sink_metrics: BTreeMap::new(),
            live_sources: Arc::new(AtomicUsize::new(0)),
            in_reload: false,
            started_by_reload: BTreeSet::new(),
            awaiting_fix: false,
            tasks: JoinSet::new(),
            names: HashMap::new(),
            running: Arc::new(Mutex::new(BTreeSet::new())),
            shutdown_limit: CancellationToken::new(),
        };
        let mut receivers = HashMap::new();
        for (key, _, outputs) in &built.transforms {
            let rx = running.open_transform_buffer(key);
            receivers.insert(key.id().to_string(), rx);
            running
                .outputs
                .insert(key.id().to_string(), outputs.clone());
        }
        for sink in &built.sinks {
            match running.open_sink_buffer(&sink.key, &sink.buffer) {
                Ok(rx) => {
                    receivers.insert(sink.key.id().to_string(), rx);
                }
                Err(error) => {
                    tracing::error!(component = %sink.key, "cannot open its buffer: {error}");
                    return Err(RunReport {
                        failed: vec![format!("{} (cannot open its buffer: {error})", sink.key)],
                        ..RunReport::default()
                    });
                }
            }
        }
        for sink in built.sinks {
            if let Some(rx) = receivers.remove(sink.key.id()) {
                running.spawn_sink(sink, Input::detachable(rx));
            }
        }
        for transform in built.transforms {
            if let Some(rx) = receivers.remove(transform.0.id()) {
                running.spawn_transform(transform, Input::detachable(rx));
            }
        }
        for (key, source) in built.sources {
            running.spawn_source(key, source);
        }
        // Each listening source holds its readiness token now: `/health`
        // may go by their count (it said `starting` until here).
        running.shared.readiness.sources_spawned();
        Ok(running)
    }

    fn metrics_for(&mut self, key: &ComponentKey) -> Arc<ComponentMetrics> {
        let entry = self
            .metrics
            .entry(key.id().to_string())
            .or_insert_with(|| Arc::new(ComponentMetrics::new(key.clone())));
        if entry.key() != key {
            *entry = Arc::new(ComponentMetrics::new(key.clone()));
        }
        Arc::clone(entry)
    }

    fn open_transform_buffer(&mut self, key: &ComponentKey) -> BufferReceiver {
        let m = self.metrics_for(key);
        let (tx, rx) = crate::buffer::channel(TRANSFORM_BUFFER_EVENTS, WhenFull::Block, m);
        if let Some(senders) = &mut self.senders {
            senders.insert(key.id().to_string(), tx);
        }
        rx
    }

    fn open_sink_buffer(
        &mut self,
        key: &ComponentKey,
        buffer: &BufferConfig,
    ) -> std::io::Result<BufferReceiver> {
        let m = self.metrics_for(key);
        let (tx, rx) = crate::buffer::open(buffer, &self.data_dir, key.id(), Arc::clone(&m))?;
        self.sink_metrics
            .insert(key.id().to_string(), (key.clone(), m));
        if let Some(senders) = &mut self.senders {
            senders.insert(key.id().to_string(), tx);
        }
        Ok(rx)
    }

    /// The consumers of `output` of `component` in the current graph, with
    /// a sender to each.
    fn targets(&self, id: &OutputId) -> Vec<(String, BufferSender)> {
        self.targets_in(&self.graph, id)
    }

    /// The consumers of `id` in `graph`, with a sender to each that runs.
    fn targets_in(&self, graph: &Graph, id: &OutputId) -> Vec<(String, BufferSender)> {
        let Some(senders) = &self.senders else {
            return Vec::new();
        };
        graph
            .consumers(id)
            .filter_map(|consumer| {
                senders
                    .get(consumer)
                    .map(|sender| (consumer.to_string(), sender.clone()))
            })
            .collect()
    }

    /// A fanout for one output, which later reloads can rewire.
    fn fanout(&mut self, component: &str, output: Option<&str>) -> Fanout {
        let id = OutputId {
            component: component.to_string(),
            output: output.map(str::to_string),
        };
        let name = match output {
            Some(output) => format!("{component}.{output}"),
            None => component.to_string(),
        };
        let (fanout, rewire) = Fanout::rewirable(self.targets(&id));
        self.rewires.insert(id, rewire);
        fanout.with_tap(self.shared.taps.point(&name))
    }

    fn spawn(&mut self, key: &ComponentKey, future: ComponentFuture, source: bool) {
        let name = key.to_string();
        if self.in_reload {
            self.started_by_reload.insert(name.clone());
        }
        lock(&self.running).insert(name.clone());
        let running = Arc::clone(&self.running);
        let task_name = name.clone();
        let done = CancellationToken::new();
        let live_sources = source.then(|| {
            self.live_sources.fetch_add(1, Ordering::AcqRel);
            Arc::clone(&self.live_sources)
        });
        let guard = DoneGuard {
            done: done.clone(),
            live_sources,
        };
        let failed = Arc::new(AtomicBool::new(false));
        let failure = Arc::clone(&failed);
        let abort = self.tasks.spawn(async move {
            let _guard = guard;
            let result = future.await;
            failure.store(result.is_err(), Ordering::Release);
            lock(&running).remove(&task_name);
            (task_name, result)
        });
        self.names.insert(abort.id(), name);
        self.handles.insert(
            key.id().to_string(),
            Handles {
                done,
                failed,
                abort,
            },
        );
    }

    fn spawn_sink(&mut self, sink: BuiltSink, (input, detach): (Input, Detach)) {
        let m = self.metrics_for(&sink.key);
        self.detaches.insert(sink.key.id().to_string(), detach);
        let cx = SinkContext {
            key: sink.key.clone(),
            input: SinkInput::new(input, Arc::clone(&m), sink.acknowledgements),
            metrics: m,
            state: self.shared.state.clone(),
            stop_topology: self.stop.clone(),
            shared: self.shared.clone(),
        };
        let future = sink.sink.run(cx);
        self.spawn(&sink.key, future, false);
    }

    fn spawn_transform(
        &mut self,
        (key, transform, outputs): BuiltTransform,
        (input, detach): (Input, Detach),
    ) {
        let id = key.id().to_string();
        let m = self.metrics_for(&key);
        self.detaches.insert(id.clone(), detach);
        self.outputs.insert(id.clone(), outputs.clone());
        let mut default = Fanout::default();
        let mut named = Vec::new();
        for output in &outputs {
            match &output.name {
                None => default = self.fanout(&id, None),
                Some(name) => named.push((name.clone(), self.fanout(&id, Some(name)))),
            }
        }
        let input = TransformInput::new(input, Arc::clone(&m));
        let outputs = TransformOutputs::new(default, named, Arc::clone(&m));
        let future: ComponentFuture = match transform {
            Transform::Sync(transform) => Box::pin(transform_task::run_sync(
                transform,
                input,
                outputs,
                Arc::clone(&m),
                self.options.transform_concurrency,
            )),
            Transform::Task(transform) => transform.run(TaskContext {
                key: key.clone(),
                input,
                outputs,
                metrics: m,
                state: self.shared.state.clone(),
                shutdown: self.stop.child_token(),
                suppressions: self.shared.suppressions.clone(),
                links: self.shared.links.clone(),
            }),
        };
        self.spawn(&key, future, false);
    }

    fn spawn_source(&mut self, key: ComponentKey, source: Box<dyn Source>) {
        let id = key.id().to_string();
        let m = self.metrics_for(&key);
        let stop = SourceStop {
            shutdown: self.stop.child_token(),
            limit: self.shutdown_limit.child_token(),
        };
        let ready = if source.listens() {
            self.shared.readiness.pending()
        } else {
            ReadyToken::default()
        };
        let cx = SourceContext {
            key: key.clone(),
            out: SourceSender::new(self.fanout(&id, None), m),
            shutdown: stop.shutdown.clone(),
            shutdown_limit: stop.limit.clone(),
            state: self.shared.state.clone(),
            host: Arc::clone(&self.host),
            ready,
        };
        self.source_stops.insert(id, stop);
        let future = source.run(cx);
        self.spawn(&key, future, true);
    }

    /// Lets go of the buffers' senders, so buffers close once their
    /// producers finish: the topology drains.
    fn release(&mut self) {
        if self.senders.take().is_some() {
            self.rewires.clear();
        }
    }

    /// Runs until every task has finished (or the graceful shutdown limit
    /// stopped them), applying reloads as they come.
    pub async fn run(mut self, mut reloads: mpsc::Receiver<ReloadRequest>) -> RunReport {
        let stop = self.stop.clone();
        let mut report = RunReport::default();
        let mut deadline: Option<tokio::time::Instant> = None;
        // While draining: when to say which components are still busy.
        let mut next_progress: Option<tokio::time::Instant> = None;
        let mut reloads_open = true;
        if self.live_sources.load(Ordering::Acquire) == 0 {
            self.release();
        }
        loop {
            let progress = async {
                match next_progress {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let next = async {
                match deadline {
                    Some(at) => tokio::time::timeout_at(at, self.tasks.join_next())
                        .await
                        .ok(),
                    None => Some(self.tasks.join_next().await),
                }
            };
            tokio::select! {
                _ = stop.cancelled(), if deadline.is_none() => {
                    tracing::info!(limit_secs = self.options.graceful_shutdown_limit.as_secs(), "shutting down: stopping sources and draining buffers");
                    deadline = Some(tokio::time::Instant::now() + self.options.graceful_shutdown_limit);
                    next_progress = Some(tokio::time::Instant::now() + SHUTDOWN_PROGRESS_EVERY);
                    self.release();
                    reloads.close();
                }
                request = reloads.recv(), if reloads_open && deadline.is_none() => match request {
                    Some(request) => {
                        self.awaiting_fix = false;
                        let outcome = self.reload(request.config, request.graph, request.built).await;
                        let _ = request.reply.send(outcome);
                    }
                    None => reloads_open = false,
                },
                () = progress => {
                    let mut busy: Vec<String> = lock(&self.running).iter().cloned().collect();
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
                joined = next => {
                    match joined {
                        None if !self.shutdown_limit.is_cancelled() => {
                            // The limit: sources stop waiting for acknowledgements
                            // and save what was acknowledged; give them a moment.
                            self.shutdown_limit.cancel();
                            deadline = Some(tokio::time::Instant::now() + SAVE_GRACE);
                        }
                        None => {
                            report.still_running = lock(&self.running).iter().cloned().collect();
                            self.tasks.abort_all();
                            // Let the aborted tasks go (and their buffers count
                            // what they held) before saying what was lost.
                            while self.tasks.join_next().await.is_some() {}
                            break;
                        }
                        Some(None) => break,
                        Some(Some(Ok((name, Ok(()))))) => tracing::debug!(component = %name, "finished"),
                        Some(Some(Ok((name, Err(error))))) if self.started_by_reload.contains(&name) => {
                            tracing::error!(component = %name, "component failed: {error:#}; it was started by a reload, so howl runs on without it: fix the config and reload");
                            // Even when it was the last source: wait for
                            // the fix rather than drain and exit.
                            self.awaiting_fix = true;
                            report.failed.push(name);
                        }
                        Some(Some(Err(join_error))) if join_error.is_cancelled() => {
                            // Stopped on purpose (a reload, past its limit).
                            let name = self.names.get(&join_error.id()).cloned().unwrap_or_default();
                            lock(&self.running).remove(&name);
                            tracing::debug!(component = %name, "stopped");
                        }
                        Some(Some(Ok((name, Err(error))))) => {
                            tracing::error!(component = %name, "component failed: {error:#}");
                            report.failed.push(name);
                            stop.cancel();
                            // What the failed component held never reached its
                            // destination: sources must not wait for it, nor take
                            // its loss for delivery. They save what was
                            // acknowledged; the rest is read again next start.
                            self.shutdown_limit.cancel();
                        }
                        Some(Some(Err(join_error))) => {
                            let name = self
                                .names
                                .get(&join_error.id())
                                .cloned()
                                .unwrap_or_else(|| "(an unknown component)".to_string());
                            lock(&self.running).remove(&name);
                            tracing::error!(component = %name, "component panicked: {join_error}");
                            report.failed.push(format!("{name} (panicked)"));
                            stop.cancel();
                            self.shutdown_limit.cancel();
                        }
                    }
                    if self.live_sources.load(Ordering::Acquire) == 0
                        && self.senders.is_some()
                        && !self.awaiting_fix
                    {
                        // Every source has ended: the input is over, drain.
                        self.release();
                        reloads.close();
                    }
                }
            }
        }
        for (key, m) in self.sink_metrics.values() {
            let undelivered = m.undelivered();
            if undelivered.lost() > 0 || undelivered.on_disk > 0 {
                report.undelivered.push((key.to_string(), undelivered));
            }
        }
        report
    }

    /// Switches to a new config: stops what was removed or changed (each
    /// flushing as at shutdown), rewires what stays, and starts what is new
    /// or changed. Unchanged components run on untouched, with their state
    /// and buffers; a rebuilt transform or sink keeps its buffer.
    ///
    /// The order matters for acknowledgements and state. Sources stop
    /// first, while everything downstream still runs, so what they sent is
    /// delivered (and acknowledged) before they save their checkpoints.
    /// Then transforms and sinks are detached: a rebuilt one stops reading
    /// at once and its buffer goes to its new instance (a sink's new
    /// instance starts as soon as the old one stops reading; a transform's
    /// once the old one has finished, so its saved state is the latest); a
    /// removed one drains what is queued, its buffer refusing new batches
    /// (which go to a replacement, if any). New sources start last.
    async fn reload(&mut self, config: Config, graph: Graph, built: Built) -> ReloadOutcome {
        self.in_reload = true;
        let outcome = self.apply(config, graph, built).await;
        self.in_reload = false;
        outcome
    }

    async fn apply(&mut self, config: Config, graph: Graph, built: Built) -> ReloadOutcome {
        let mut new_nodes = nodes_of(&config);
        let plan = Plan::new(&self.nodes, &new_nodes);
        let mut report = ReloadReport::default();
        let consumers_before = self.consumer_map();

        // New buffers first, so rewired fanouts have somewhere to send.
        let mut new_receivers: HashMap<String, BufferReceiver> = HashMap::new();
        let built_sink_buffers: HashMap<String, (ComponentKey, BufferConfig)> = built
            .sinks
            .iter()
            .map(|s| (s.key.id().to_string(), (s.key.clone(), s.buffer.clone())))
            .collect();
        for id in &plan.added {
            let Some(node) = new_nodes.get(id) else {
                continue;
            };
            let opened = match node.key.kind() {
                ComponentKind::Transform => Ok(self.open_transform_buffer(&node.key)),
                ComponentKind::Sink => match built_sink_buffers.get(id) {
                    Some((key, buffer)) => self.open_sink_buffer(key, buffer),
                    None => continue,
                },
                ComponentKind::Source => continue,
            };
            match opened {
                Ok(rx) => {
                    new_receivers.insert(id.clone(), rx);
                }
                Err(error) => {
                    // Nothing is stopped yet: refuse the whole reload.
                    if let Some(senders) = &mut self.senders {
                        for id in new_receivers.keys() {
                            senders.remove(id);
                        }
                    }
                    return Err(ReloadRefused(vec![format!(
                        "{}: cannot open its buffer: {error}",
                        node.key
                    )]));
                }
            }
        }
        let mut switched: BTreeSet<String> = BTreeSet::new();
        for (id, change) in &plan.rebuilt {
            let Some((key, buffer)) = built_sink_buffers.get(id) else {
                continue;
            };
            match change {
                BufferChange::Keep => {}
                BufferChange::AtRestart => {
                    report.warnings.push(format!(
                        "{key}: the new buffer options apply at the next restart (a disk buffer \
                         is not switched while howl runs); it keeps its current buffer"
                    ));
                    // What runs is the old buffer: compare with it next time.
                    if let (Some(old), Some(new)) = (self.nodes.get(id), new_nodes.get_mut(id))
                        && let (Some((old_buffer, _)), Some((new_buffer, _))) =
                            (&old.sink, &mut new.sink)
                    {
                        *new_buffer = old_buffer.clone();
                    }
                }
                BufferChange::Switch => match self.open_sink_buffer(key, buffer) {
                    Ok(rx) => {
                        new_receivers.insert(id.clone(), rx);
                        switched.insert(id.clone());
                    }
                    Err(error) => report.warnings.push(format!(
                        "{key}: cannot open the new buffer ({error}); it keeps its current one"
                    )),
                },
            }
        }
        for id in &plan.added {
            if let Some(removed) = plan.removed.iter().find(|r| {
                self.nodes.get(*r).is_some_and(|old| {
                    old.key.kind() == ComponentKind::Source
                        && new_nodes.get(id).is_some_and(|new| {
                            new.key.kind() == ComponentKind::Source
                                && new.key.type_name() == old.key.type_name()
                        })
                })
            }) && removed != id
            {
                report.warnings.push(format!(
                    "source `{id}` replaces `{removed}`: checkpoints belong to a source's id, so \
                     `{id}` starts without `{removed}`'s (a `file` source reads its files again \
                     from `read_from`); keep the old id to go on where it was"
                ));
            }
        }
        if let Some(senders) = &mut self.senders {
            for id in &plan.removed {
                if !plan.added.contains(id) {
                    senders.remove(id);
                }
            }
        }

        // Rewire: every output that stays now feeds its new consumers. The
        // old instances of rebuilt components flush into these too.
        let old_graph = std::mem::replace(&mut self.graph, graph);
        let outputs: Vec<OutputId> = self.rewires.keys().cloned().collect();
        for output in outputs {
            let targets = if plan.removed.contains(&output.component) {
                // A removed component keeps its consumers (those that
                // remain, with their current buffers) while it drains, so
                // what it still emits reaches them.
                self.targets_in(&old_graph, &output)
            } else {
                self.targets(&output)
            };
            if let Some(rewire) = self.rewires.get(&output) {
                rewire.set(targets);
            }
        }

        // 1. Sources that go or change stop, while all downstream runs.
        let sources: Vec<(String, CancellationToken)> = self
            .nodes
            .iter()
            .filter(|(id, node)| plan.stops(id) && node.key.kind() == ComponentKind::Source)
            .filter_map(|(id, _)| {
                let stop = self.source_stops.get(id)?;
                stop.shutdown.cancel();
                Some((id.clone(), self.handles.get(id)?.done.clone()))
            })
            .collect();
        let interrupted = !self.await_sources(&sources).await;

        // 2. Transforms and sinks that go or change are detached.
        let mut handing: Vec<(String, ComponentKind)> = Vec::new();
        for (id, node) in &self.nodes {
            if !plan.stops(id) || node.key.kind() == ComponentKind::Source {
                continue;
            }
            let Some(detach) = self.detaches.get(id) else {
                continue;
            };
            if plan.removed.contains(id) || switched.contains(id) {
                detach.drain();
            } else {
                detach.hand_over();
                handing.push((id.clone(), node.key.kind()));
            }
        }
        for id in plan.removed.iter().filter(|id| !plan.added.contains(*id)) {
            self.shared.taps.remove_component(id);
        }
        let mut detaches: HashMap<String, Detach> = HashMap::new();
        let mut old_done: HashMap<String, CancellationToken> = HashMap::new();
        let mut old_abort: HashMap<String, AbortHandle> = HashMap::new();
        for id in plan.removed.iter().chain(plan.rebuilt.keys()) {
            if let Some(handles) = self.handles.remove(id) {
                old_done.insert(id.clone(), handles.done);
                old_abort.insert(id.clone(), handles.abort);
            }
            self.source_stops.remove(id);
            self.outputs.remove(id);
            self.rewires.retain(|output, _| &output.component != id);
            if let Some(detach) = self.detaches.remove(id) {
                detaches.insert(id.clone(), detach);
            }
        }

        // 3. New instances, consumers before producers.
        let mut built_sinks: HashMap<String, BuiltSink> = built
            .sinks
            .into_iter()
            .map(|s| (s.key.id().to_string(), s))
            .collect();
        let mut built_transforms: HashMap<String, BuiltTransform> = built
            .transforms
            .into_iter()
            .map(|t| (t.0.id().to_string(), t))
            .collect();
        let mut built_sources: HashMap<String, (ComponentKey, Box<dyn Source>)> = built
            .sources
            .into_iter()
            .map(|s| (s.0.id().to_string(), s))
            .collect();
        // Sinks and transforms with a buffer of their own start now.
        let fresh: Vec<String> = new_receivers.keys().cloned().collect();
        for id in fresh {
            let Some(rx) = new_receivers.remove(&id) else {
                continue;
            };
            if let Some(sink) = built_sinks.remove(&id) {
                self.spawn_sink(sink, Input::detachable(rx));
            } else if let Some(transform) = built_transforms.remove(&id) {
                self.spawn_transform(transform, Input::detachable(rx));
            }
        }
        // Those that take over a buffer start once it is handed over (a
        // transform: once its old instance has finished).
        let deadline = tokio::time::Instant::now() + self.options.graceful_shutdown_limit;
        let mut waiting = handing;
        loop {
            let stopping = self.stop.is_cancelled();
            let late = tokio::time::Instant::now() >= deadline;
            let mut left = Vec::new();
            for (id, kind) in waiting {
                let (Some(detach), done) = (detaches.get(&id), old_done.get(&id)) else {
                    continue;
                };
                let finished = done.is_none_or(CancellationToken::is_cancelled);
                let ready = match kind {
                    ComponentKind::Sink => true,
                    _ => finished || late || stopping,
                };
                let receiver = if ready { detach.take() } else { None };
                match receiver {
                    Some(rx) => {
                        if kind == ComponentKind::Transform && !finished {
                            report.warnings.push(format!(
                                "transforms.{id}: its old instance was still flushing after the \
                                 graceful shutdown limit; the new one started beside it"
                            ));
                        }
                        if let Some(sink) = built_sinks.remove(&id) {
                            self.spawn_sink(sink, Input::detachable(rx));
                        } else if let Some(transform) = built_transforms.remove(&id) {
                            self.spawn_transform(transform, Input::detachable(rx));
                        }
                    }
                    None if finished && !detach.is_handed() => {
                        report.warnings.push(format!(
                            "{id}: its buffer could not be taken over; not started"
                        ));
                    }
                    None => left.push((id, kind)),
                }
            }
            waiting = left;
            if waiting.is_empty() {
                break;
            }
            if late || stopping {
                // Still reading after the limit: stop them (what they hold
                // in hand is lost), so their buffers can be handed over.
                for (id, _) in &waiting {
                    if let Some(abort) = old_abort.remove(id) {
                        tracing::error!(component = %id, "reload: still busy after the graceful shutdown limit; stopping it (what it held in hand is lost)");
                        abort.abort();
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        // 4. New sources, last.
        let mut started_sources = Vec::new();
        if !self.stop.is_cancelled() {
            for id in plan.added.iter().chain(plan.rebuilt.keys()) {
                if let Some((key, source)) = built_sources.remove(id) {
                    self.spawn_source(key, source);
                    if let Some(handles) = self.handles.get(id) {
                        started_sources.push((
                            id.clone(),
                            handles.done.clone(),
                            Arc::clone(&handles.failed),
                        ));
                    }
                }
            }
        }
        // A source that cannot start (a port taken) stops at once: say so
        // in the answer, not only in the log.
        if !started_sources.is_empty() {
            tokio::time::sleep(SOURCE_START_GRACE).await;
        }
        for (id, done, failed) in started_sources {
            if done.is_cancelled() && failed.load(Ordering::Acquire) {
                // Set now, not when its end is joined: the old instance's
                // end, joined first, must not find no source and drain.
                self.awaiting_fix = true;
                report.warnings.push(format!(
                    "sources.{id} stopped right after it started (see the log); howl runs on \
                     without it: fix the config and reload"
                ));
            }
        }

        let consumers_after = self.consumer_map();
        report.added = plan
            .added
            .iter()
            .filter(|id| !plan.removed.contains(*id))
            .cloned()
            .collect();
        report.removed = plan
            .removed
            .iter()
            .filter(|id| !plan.added.contains(*id))
            .cloned()
            .collect();
        report.rebuilt = plan
            .rebuilt
            .keys()
            .chain(plan.added.intersection(&plan.removed))
            .cloned()
            .collect();
        report.rewired = consumers_after
            .iter()
            .filter(|(id, consumers)| {
                !plan.stops(id)
                    && !plan.added.contains(*id)
                    && consumers_before.get(*id) != Some(consumers)
            })
            .map(|(id, _)| id.clone())
            .collect();
        self.nodes = new_nodes;
        if interrupted || self.stop.is_cancelled() {
            // Not applied: what changed was stopped, and howl is stopping.
            let mut reasons = vec![format!(
                "howl began shutting down during the reload; it stopped what changed ({report}) \
                 and started no source again"
            )];
            reasons.append(&mut report.warnings);
            return Err(ReloadRefused(reasons));
        }
        Ok(report)
    }

    /// Each component's consumers, as wired now (sorted).
    fn consumer_map(&self) -> BTreeMap<String, Vec<String>> {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (output, rewire) in &self.rewires {
            let entry = map.entry(output.component.clone()).or_default();
            for consumer in rewire.consumers() {
                let label = match &output.output {
                    Some(name) => format!("{name}→{consumer}"),
                    None => consumer,
                };
                entry.push(label);
            }
        }
        for consumers in map.values_mut() {
            consumers.sort();
        }
        map
    }

    /// Waits for the components stopped by a reload, at most the graceful
    /// shutdown limit; then sources save what was acknowledged, and what is
    /// still busy is aborted (a transform's or sink's buffer is kept for its
    /// new instance; only what it held in hand is lost, and said so).
    /// Waits for sources stopped by a reload, at most the graceful
    /// shutdown limit (then they save what was acknowledged); false when
    /// shutdown began meanwhile.
    async fn await_sources(&self, stopping: &[(String, CancellationToken)]) -> bool {
        let all = async {
            for (_, done) in stopping {
                done.cancelled().await;
            }
        };
        tokio::select! {
            () = self.stop.cancelled() => return false,
            finished = tokio::time::timeout(self.options.graceful_shutdown_limit, all) => {
                if finished.is_ok() {
                    return true;
                }
            }
        }
        for (id, done) in stopping {
            if !done.is_cancelled()
                && let Some(stop) = self.source_stops.get(id)
            {
                stop.limit.cancel();
            }
        }
        let saved = async {
            for (_, done) in stopping {
                done.cancelled().await;
            }
        };
        let _ = tokio::time::timeout(SAVE_GRACE, saved).await;
        for (id, done) in stopping {
            if !done.is_cancelled() {
                tracing::error!(component = %id, "reload: source still busy after the graceful shutdown limit; stopping it");
                if let Some(handles) = self.handles.get(id) {
                    handles.abort.abort();
                }
            }
        }
        !self.stop.is_cancelled()
    }
}
