//! Running a topology: build the components, connect them with bounded
//! buffers, run each as a task, and shut down in order.
//!
//! Shutdown needs no coordinator. When the sources stop (end of input, or the
//! `stop` token on SIGTERM), they drop their senders; a buffer closes once
//! all its senders are gone and it is empty; the component behind it then
//! finishes its work, flushes, and drops *its* senders. So buffers drain in
//! topology order and sinks flush last, by construction. The only timer is
//! the graceful shutdown limit, which names whoever is still busy.

pub mod reload;
mod running;
mod transform_task;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::buffer::BufferConfig;
use crate::component_key::ComponentKey;
use crate::components::sink::Sink;
use crate::components::source::Source;
use crate::components::transform::Transform;
use crate::components::{BuildContext, OutputSpec, Registry};
use crate::config::{Config, Graph};
use crate::diagnostic::{Diagnostic, SourceFile};
use crate::internal_events::Undelivered;
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
    let (_no_reloads, reloads) = tokio::sync::mpsc::channel(1);
    run_reloadable(config, graph, built, options, shared, stop, reloads).await
}

/// [`run`], applying the reloads that arrive on `reloads` (validated
/// configs; see [`reload`]) while it runs.
pub async fn run_reloadable(
    config: &Config,
    graph: &Graph,
    built: Built,
    options: RunOptions,
    shared: Shared,
    stop: CancellationToken,
    reloads: tokio::sync::mpsc::Receiver<reload::ReloadRequest>,
) -> RunReport {
    debug_assert_eq!(shared.state.data_dir(), config.data_dir.as_path());
    warn_of_orphaned_disk_buffers(config, &built.sinks);
    match running::Running::start(config, graph, built, options, shared, stop) {
        Ok(running) => running.run(reloads).await,
        Err(report) => report,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loads `components` (a topology without its `data_dir`) into a
    /// fresh data directory and starts it: its sources are spawned, none
    /// has run yet on a current-thread runtime.
    fn start(
        components: &str,
    ) -> (
        tempfile::TempDir,
        Shared,
        CancellationToken,
        running::Running,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().display().to_string().replace('\\', "/");
        let text = format!("data_dir = '{data_dir}'\n{components}");
        let loaded = crate::config::load_texts(vec![("t.toml".into(), text)], |_| None, &REGISTRY);
        assert!(loaded.is_ok(), "{:?}", loaded.diagnostics);
        let graph = loaded.graph.clone().unwrap();
        let built = build(&loaded.config).unwrap();
        let shared = Shared::new(loaded.config.data_dir.clone());
        assert!(
            !shared.readiness.is_ready(),
            "ready before any source was spawned"
        );
        let stop = CancellationToken::new();
        let Ok(running) = running::Running::start(
            &loaded.config,
            &graph,
            built,
            RunOptions::default(),
            shared.clone(),
            stop.clone(),
        ) else {
            panic!("the topology did not start");
        };
        (dir, shared, stop, running)
    }

    /// `/health` relies on this: a listening source is counted as pending
    /// when the topology spawns it, before its task has run at all, and
    /// counted as ready once it takes connections; a source that does not
    /// listen is never waited for.
    #[tokio::test(flavor = "current_thread")]
    async fn listening_sources_are_pending_from_their_spawn_until_bound() {
        let address = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let (_dir, shared, stop, running) = start(&format!(
            "[sources.in]\ntype = 'socket'\nmode = 'tcp'\naddress = '{address}'\n\
             [sources.demo]\ntype = 'demo_logs'\ninterval = 1\n\
             [sinks.out]\ntype = 'blackhole'\ninputs = ['in', 'demo']\n"
        ));
        // Nothing has run yet on this one thread: the socket is not bound.
        assert!(!shared.readiness.is_ready());
        let (_no_reloads, reloads) = tokio::sync::mpsc::channel(1);
        let run = tokio::spawn(running.run(reloads));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !shared.readiness.is_ready() {
            assert!(std::time::Instant::now() < deadline, "never ready");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::net::TcpStream::connect(address)
            .await
            .expect("ready, so the socket takes connections");
        stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(20), run).await;
    }

    /// `howl run` serves its API before the topology starts (opening its
    /// buffers first: a disk buffer reads its segments back), so before
    /// the topology has spawned its sources no listening source has taken
    /// its token yet: `/health` must say `starting` then, not `ok` (`start`
    /// checks it). Once they are spawned and none listens, howl is ready.
    #[tokio::test(flavor = "current_thread")]
    async fn not_ready_before_the_topology_has_spawned_its_sources() {
        let (_dir, shared, stop, running) = start(
            "[sources.demo]\ntype = 'demo_logs'\ninterval = 1\n\
             [sinks.out]\ntype = 'blackhole'\ninputs = ['demo']\n",
        );
        assert!(shared.readiness.is_ready(), "no source listens");
        stop.cancel();
        let (_no_reloads, reloads) = tokio::sync::mpsc::channel(1);
        let _ = tokio::time::timeout(Duration::from_secs(20), running.run(reloads)).await;
    }
}
