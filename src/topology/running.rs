//! A topology while it runs: its tasks, the buffers between them, and the
//! handles a reload uses to change it without stopping what did not change.
//!
//! The running topology holds a sender to every transform's and sink's
//! buffer, so that a reload can wire a new producer to an existing consumer.
//! It lets go of them when shutdown starts, or once every source has ended,
//! so that buffers close in topology order as before (see the module docs of
//! [`super`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::reload::{
    BufferChange, Node, Plan, ReloadOutcome, ReloadReport, ReloadRequest, nodes_of,
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
use crate::shared::Shared;

type TaskResult = (String, anyhow::Result<()>);

/// A source's two stop signals.
struct SourceStop {
    shutdown: CancellationToken,
    limit: CancellationToken,
}

/// A running component's handles.
struct Handles {
    /// Cancelled when its task has ended, however it ended.
    done: CancellationToken,
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
        let Some(senders) = &self.senders else {
            return Vec::new();
        };
        self.graph
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
        let abort = self.tasks.spawn(async move {
            let _guard = guard;
            let result = future.await;
            lock(&running).remove(&task_name);
            (task_name, result)
        });
        self.names.insert(abort.id(), name);
        self.handles
            .insert(key.id().to_string(), Handles { done, abort });
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
        let cx = SourceContext {
            key: key.clone(),
            out: SourceSender::new(self.fanout(&id, None), m),
            shutdown: stop.shutdown.clone(),
            shutdown_limit: stop.limit.clone(),
            state: self.shared.state.clone(),
            host: Arc::clone(&self.host),
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
                    if self.live_sources.load(Ordering::Acquire) == 0 && self.senders.is_some() {
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
    async fn reload(&mut self, config: Config, graph: Graph, built: Built) -> ReloadOutcome {
        let new_nodes = nodes_of(&config);
        let plan = Plan::new(&self.nodes, &new_nodes);
        let mut report = ReloadReport::default();

        // Consumers whose producers change, for the report.
        let consumers_before = self.consumer_map();

        // New buffers first, so rewired fanouts have somewhere to send.
        let mut new_receivers: HashMap<String, BufferReceiver> = HashMap::new();
        let built_sinks: HashMap<String, &BuiltSink> = built
            .sinks
            .iter()
            .map(|s| (s.key.id().to_string(), s))
            .collect();
        for id in &plan.added {
            let Some(node) = new_nodes.get(id) else {
                continue;
            };
            let opened = match node.key.kind() {
                ComponentKind::Transform => Ok(self.open_transform_buffer(&node.key)),
                ComponentKind::Sink => match built_sinks.get(id) {
                    Some(sink) => self.open_sink_buffer(&sink.key, &sink.buffer),
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
                    return Err(super::reload::ReloadRefused(vec![format!(
                        "{}: cannot open its buffer: {error}",
                        node.key
                    )]));
                }
            }
        }
        for (id, change) in &plan.rebuilt {
            let Some(sink) = built_sinks.get(id) else {
                continue;
            };
            match change {
                BufferChange::Keep => {}
                BufferChange::AtRestart => report.warnings.push(format!(
                    "{}: the new buffer options apply at the next restart (a disk buffer is \
                     not switched while howl runs); it keeps its current buffer",
                    sink.key
                )),
                BufferChange::Switch => match self.open_sink_buffer(&sink.key, &sink.buffer) {
                    Ok(rx) => {
                        new_receivers.insert(id.clone(), rx);
                    }
                    Err(error) => report.warnings.push(format!(
                        "{}: cannot open the new buffer ({error}); it keeps its current one",
                        sink.key
                    )),
                },
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
        self.graph = graph;
        let outputs: Vec<OutputId> = self.rewires.keys().cloned().collect();
        for output in outputs {
            if plan.removed.contains(&output.component) {
                continue;
            }
            let targets = self.targets(&output);
            if let Some(rewire) = self.rewires.get(&output) {
                rewire.set(targets);
            }
        }

        // Stop what goes or changes: sources first, then the rest.
        let mut stopping: Vec<(String, CancellationToken)> = Vec::new();
        for (id, node) in &self.nodes {
            if !plan.stops(id) {
                continue;
            }
            let switched = new_receivers.contains_key(id) && plan.rebuilt.contains_key(id);
            match node.key.kind() {
                ComponentKind::Source => {
                    if let Some(stop) = self.source_stops.get(id) {
                        stop.shutdown.cancel();
                    }
                }
                _ => {
                    if let Some(detach) = self.detaches.get(id) {
                        if plan.removed.contains(id) || switched {
                            detach.drain();
                        } else {
                            detach.hand_over();
                        }
                    }
                }
            }
            if let Some(handles) = self.handles.get(id) {
                stopping.push((id.clone(), handles.done.clone()));
            }
        }
        self.await_stopped(&stopping).await;

        // Start what is new or changed, consumers before producers.
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
        for id in &plan.removed {
            self.shared.taps.remove_component(id);
        }
        for id in plan.removed.iter().chain(plan.rebuilt.keys()) {
            self.handles.remove(id);
            self.source_stops.remove(id);
            self.outputs.remove(id);
            self.rewires.retain(|output, _| &output.component != id);
            if let Some(detach) = self.detaches.remove(id) {
                // A handed-over buffer goes to the new instance.
                if !new_receivers.contains_key(id)
                    && plan.rebuilt.contains_key(id)
                    && let Some(rx) = detach.take()
                {
                    new_receivers.insert(id.clone(), rx);
                }
            }
        }
        let starting: Vec<&String> = plan.added.iter().chain(plan.rebuilt.keys()).collect();
        for id in &starting {
            if let Some(sink) = built_sinks.remove(*id) {
                match new_receivers.remove(*id) {
                    Some(rx) => self.spawn_sink(sink, Input::detachable(rx)),
                    None => report
                        .warnings
                        .push(format!("{}: its buffer was lost; not started", sink.key)),
                }
            }
        }
        for id in &starting {
            if let Some(transform) = built_transforms.remove(*id) {
                match new_receivers.remove(*id) {
                    Some(rx) => self.spawn_transform(transform, Input::detachable(rx)),
                    None => report
                        .warnings
                        .push(format!("{}: its buffer was lost; not started", transform.0)),
                }
            }
        }
        for id in &starting {
            if let Some((key, source)) = built_sources.remove(*id) {
                self.spawn_source(key, source);
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
    async fn await_stopped(&mut self, stopping: &[(String, CancellationToken)]) {
        let all = async {
            for (_, done) in stopping {
                done.cancelled().await;
            }
        };
        if tokio::time::timeout(self.options.graceful_shutdown_limit, all)
            .await
            .is_ok()
        {
            return;
        }
        for (id, done) in stopping {
            if done.is_cancelled() {
                continue;
            }
            if let Some(stop) = self.source_stops.get(id) {
                stop.limit.cancel();
            }
        }
        let sources = async {
            for (_, done) in stopping {
                done.cancelled().await;
            }
        };
        let _ = tokio::time::timeout(SAVE_GRACE, sources).await;
        for (id, done) in stopping {
            if done.is_cancelled() {
                continue;
            }
            tracing::error!(
                component = %id,
                limit_secs = self.options.graceful_shutdown_limit.as_secs(),
                "reload: still busy after the graceful shutdown limit; stopping it (what it held in hand is lost)"
            );
            if let Some(handles) = self.handles.get(id) {
                handles.abort.abort();
            }
            done.cancelled().await;
        }
    }
}
