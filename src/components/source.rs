//! The contract of a source: options that build into a running task that
//! pushes batches into its output, waiting (backpressure) when downstream is
//! full.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{BuildContext, ComponentFuture};
use crate::buffer::fanout::{Backpressured, Fanout};
use crate::component_key::ComponentKey;
use crate::diagnostic::BuildError;
use crate::event::Event;
use crate::internal_events::ComponentMetrics;
use crate::readiness::ReadyToken;
use crate::state::StateHandle;

/// The options of one source type.
pub trait SourceConfig: Debug + Send + Sync {
    /// Checks the options and prepares the source, without touching the
    /// outside world (no sockets bound, no files opened).
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError>;

    /// For `howl patterns train`: a source that reads the past `window`
    /// once and ends, saving no cursor. `None` for sources that cannot go
    /// back in time (those that listen, or follow files): train refuses
    /// them by name.
    fn build_window(
        &self,
        _cx: &BuildContext,
        _window: TimeWindow,
    ) -> Option<Result<Box<dyn Source>, BuildError>> {
        None
    }
}

/// A past time window to read (`howl patterns train --since --until`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    /// The first instant read.
    pub since: chrono::DateTime<chrono::Utc>,
    /// Where reading stops (excluded).
    pub until: chrono::DateTime<chrono::Utc>,
}

/// A built source, ready to run.
pub trait Source: Send {
    /// Produces events until the input ends or `cx.shutdown` is cancelled.
    fn run(self: Box<Self>, cx: SourceContext) -> ComponentFuture;

    /// Whether the source listens on an address or a socket. Such a source
    /// must call `cx.ready.listening()` once it is bound: `/health` says
    /// `starting` until every listening source has (see `readiness`).
    fn listens(&self) -> bool {
        false
    }
}

/// What a running source works with.
pub struct SourceContext {
    /// Which source this is.
    pub key: ComponentKey,
    /// Where its events go.
    pub out: SourceSender,
    /// Cancelled when howl shuts down: stop reading, drop `out` (so the
    /// pipeline can drain), wait for the acknowledgements still due, save,
    /// return.
    pub shutdown: CancellationToken,
    /// Cancelled when the graceful shutdown limit is reached: stop waiting
    /// for acknowledgements, save what was acknowledged (the rest is read
    /// again next start), return at once.
    pub shutdown_limit: CancellationToken,
    /// The state store (checkpoints).
    pub state: StateHandle,
    /// The name of this machine, for the `host` field.
    pub host: Arc<str>,
    /// A listening source marks this once bound (see [`Source::listens`]);
    /// other sources get a token that counts for nothing.
    pub ready: ReadyToken,
}

/// The output of a source: counts what it sends and fans it out.
#[derive(Clone)]
pub struct SourceSender {
    fanout: Fanout,
    metrics: Arc<ComponentMetrics>,
}

impl SourceSender {
    /// An output delivering to `fanout`, reporting into `metrics`.
    pub fn new(fanout: Fanout, metrics: Arc<ComponentMetrics>) -> Self {
        Self { fanout, metrics }
    }

    /// The source's metrics (for received bytes, errors, truncations).
    pub fn metrics(&self) -> &Arc<ComponentMetrics> {
        &self.metrics
    }

    /// Sends a batch, waiting while downstream is full.
    pub async fn send(&mut self, events: Vec<Event>) {
        let count = events.len();
        self.fanout.send(events).await;
        self.metrics.sent(None, count);
    }

    /// Sends a batch to every consumer or none, waiting at most `wait` for
    /// room: for sources that can ask their client to come back later.
    pub async fn send_or_backpressure(
        &mut self,
        events: Vec<Event>,
        wait: Duration,
    ) -> Result<(), Backpressured> {
        let count = events.len();
        self.fanout.send_all_or_nothing(events, wait).await?;
        self.metrics.sent(None, count);
        Ok(())
    }
}

/// The host name, read once (the `host` field of log events).
pub fn hostname() -> Arc<str> {
    let from_file = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let name = from_file("/proc/sys/kernel/hostname")
        .or_else(|| from_file("/etc/hostname"))
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string());
    Arc::from(name)
}
