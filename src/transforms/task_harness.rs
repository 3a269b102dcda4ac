//! Drives a task transform in unit tests: builds it from TOML options,
//! feeds its input and collects each output, with bounded waits.
//!
//! Meant for `#[tokio::test(start_paused = true)]`: with the clock paused,
//! tokio advances time only when every task is idle, so [`Harness::settle`]
//! returns once the transform has handled everything sent so far, and
//! windows of an hour close without anyone waiting an hour.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::buffer::fanout::Fanout;
use crate::buffer::{BufferReceiver, BufferSender, WhenFull, channel};
use crate::component_key::{ComponentKey, ComponentKind};
use crate::components::transform::{
    TaskContext, TaskTransform, Transform, TransformConfig, TransformInput, TransformOutputs,
};
use crate::components::{BuildContext, OutputSpec};
use crate::diagnostic::SourceFile;
use crate::event::Event;
use crate::internal_events::ComponentMetrics;
use crate::shared::Shared;
use crate::state::StateHandle;

/// The longest any harness wait may take (virtual time when paused).
const LIMIT: Duration = Duration::from_secs(7 * 24 * 3600);

/// A running task transform with its input and outputs.
pub struct Harness {
    input: Option<BufferSender>,
    /// `None` for the default output, else the name; only consumed outputs.
    outputs: Vec<(Option<String>, BufferReceiver)>,
    task: JoinHandle<anyhow::Result<()>>,
    /// The state directory of [`Self::start`], removed when the harness is.
    _state_dir: Option<tempfile::TempDir>,
}

/// Everything a transform emitted, per output.
pub struct Outputs {
    /// The default output.
    pub default: Vec<Event>,
    /// The consumed named outputs.
    pub named: HashMap<String, Vec<Event>>,
}

/// The build context of a test transform (id `t`).
pub fn context(options: &str) -> BuildContext {
    BuildContext {
        key: ComponentKey::new(ComponentKind::Transform, "t", "test"),
        file: Arc::new(SourceFile::new(
            PathBuf::from("test.toml"),
            options.to_string(),
        )),
        data_dir: std::env::temp_dir(),
    }
}

/// Parses options as TOML.
pub fn parse<C: DeserializeOwned>(options: &str) -> C {
    toml::from_str(options).unwrap_or_else(|e| panic!("options do not parse: {e}"))
}

pub use crate::options::parse_error;

/// The build error the options give, as text.
pub fn build_error<C: TransformConfig + DeserializeOwned>(options: &str) -> String {
    match parse::<C>(options).build(&context(options)) {
        Ok(_) => panic!("options build: {options}"),
        Err(error) => error.message,
    }
}

impl Harness {
    /// Builds the transform of type `C` from `options` and runs it; the
    /// named outputs listed in `consumed` get a consumer, the others none.
    /// A transform that keeps state gets a fresh directory of its own.
    pub fn start<C: TransformConfig + DeserializeOwned>(options: &str, consumed: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("a temporary state directory");
        let state = StateHandle::new(dir.path().to_path_buf());
        Self {
            _state_dir: Some(dir),
            ..Self::start_with_state::<C>(options, consumed, state)
        }
    }

    /// Like [`Self::start`], with the state store in `state`: for
    /// transforms that persist (each test its own directory, so parallel
    /// tests never share a store, and a second harness on the same
    /// directory is a restart).
    pub fn start_with_state<C: TransformConfig + DeserializeOwned>(
        options: &str,
        consumed: &[&str],
        state: StateHandle,
    ) -> Self {
        let config: C = parse(options);
        let Transform::Task(transform) = config.build(&context(options)).expect("options build")
        else {
            panic!("not a task transform")
        };
        Self::run(
            transform,
            config.outputs(),
            consumed,
            Shared::with_state(state),
        )
    }

    /// Runs an already built task transform with `outputs` (as its config
    /// declares them) and the process-wide handles `shared` (a test that
    /// keeps state gives each run its own directory).
    pub fn run(
        transform: Box<dyn TaskTransform>,
        outputs_spec: Vec<OutputSpec>,
        consumed: &[&str],
        shared: Shared,
    ) -> Self {
        let key = ComponentKey::new(ComponentKind::Transform, "t", "test");
        let metrics = Arc::new(ComponentMetrics::new(key.clone()));
        let (input, rx) = channel(1000, WhenFull::Block, Arc::clone(&metrics));
        let mut outputs = Vec::new();
        let mut default = Fanout::default();
        let mut named = Vec::new();
        for spec in outputs_spec {
            let wanted = spec
                .name
                .as_deref()
                .is_none_or(|name| consumed.contains(&name));
            let mut fanout = Fanout::default();
            if wanted {
                let (tx, rx) = channel(100_000, WhenFull::Block, Arc::clone(&metrics));
                fanout.add("consumer", tx);
                outputs.push((spec.name.clone(), rx));
            }
            match spec.name {
                None => default = fanout,
                Some(name) => named.push((name, fanout)),
            }
        }
        let task = transform.run(TaskContext {
            key,
            input: TransformInput::new(rx, Arc::clone(&metrics)),
            outputs: TransformOutputs::new(default, named, Arc::clone(&metrics)),
            metrics,
            state: shared.state,
            shutdown: CancellationToken::new(),
            suppressions: shared.suppressions,
            links: shared.links,
        });
        Self {
            input: Some(input),
            outputs,
            task: tokio::spawn(task),
            _state_dir: None,
        }
    }

    /// Sends one batch to the transform.
    pub async fn send(&self, events: Vec<Event>) {
        let input = self.input.as_ref().expect("input open");
        assert!(input.send(events).await.is_ok(), "the transform stopped");
    }

    /// Returns once the transform is idle (see the module docs); a
    /// millisecond of virtual time passes.
    pub async fn settle(&self) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    fn receiver(&mut self, output: Option<&str>) -> &mut BufferReceiver {
        self.outputs
            .iter_mut()
            .find(|(name, _)| name.as_deref() == output)
            .map(|(_, rx)| rx)
            .unwrap_or_else(|| panic!("output {output:?} is not consumed"))
    }

    /// What `output` (`None` = default) holds now, without waiting.
    pub fn take(&mut self, output: Option<&str>) -> Vec<Event> {
        let rx = self.receiver(output);
        let mut events = Vec::new();
        while let Some(batch) = rx.try_recv() {
            events.extend(batch);
        }
        events
    }

    /// The next batch on `output`, waiting for it (bounded).
    pub async fn next(&mut self, output: Option<&str>) -> Vec<Event> {
        let rx = self.receiver(output);
        match tokio::time::timeout(LIMIT, rx.recv()).await {
            Ok(Some(batch)) => batch,
            Ok(None) => panic!("output {output:?} closed"),
            Err(_) => panic!("nothing on {output:?} within {LIMIT:?}"),
        }
    }

    /// Stops the transform where it is, as a `kill -9` would: it neither
    /// flushes nor saves anything more. Returns once its task is gone (and
    /// with it its hold on the state store).
    pub async fn crash(self) {
        self.task.abort();
        let _ = tokio::time::timeout(LIMIT, self.task).await;
    }

    /// Closes the input, waits (bounded) for the transform to finish, and
    /// returns everything its outputs still hold.
    pub async fn finish(mut self) -> Outputs {
        self.input = None;
        match tokio::time::timeout(LIMIT, &mut self.task).await {
            Ok(Ok(result)) => result.expect("the transform succeeds"),
            Ok(Err(join)) => panic!("the transform panicked: {join}"),
            Err(_) => panic!("the transform did not finish after its input closed"),
        }
        let mut outputs = Outputs {
            default: Vec::new(),
            named: HashMap::new(),
        };
        for (name, mut rx) in self.outputs {
            let mut events = Vec::new();
            while let Some(batch) = rx.recv().await {
                events.extend(batch);
            }
            match name {
                None => outputs.default = events,
                Some(name) => {
                    outputs.named.insert(name, events);
                }
            }
        }
        outputs
    }
}

/// A log event with a `message` and a `service`.
pub fn event(message: &str, service: &str) -> Event {
    Event::from_value(vrl::value!({"message": message, "service": service}))
}

/// The `message` of each event.
pub fn messages(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            e.get_field("message")
                .and_then(|m| m.to_str_lossy())
                .map(|m| m.into_owned())
                .unwrap_or_default()
        })
        .collect()
}
