//! `console`: write events to stdout (or stderr), one per line.
//!
//! howl's own logs go to stderr, so stdout carries only events and can be
//! piped. When the reader of stdout goes away (`howl run | head`), the sink
//! stops quietly and asks the whole topology to shut down, as command-line
//! tools do on a closed pipe.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::encoding::Encoding;
use crate::components::sink::{Sink, SinkConfig, SinkContext};
use crate::components::{BuildContext, ComponentFuture};
use crate::diagnostic::BuildError;
use crate::event::{EventStatus, finalize_all};
use crate::internal_events::{ErrorType, Stage};

/// Options of the `console` sink.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// How each event is written, one per line: `json` (the whole event as
    /// one JSON object) or `text` (its `message` field as is; the whole
    /// event as JSON when it has none).
    #[serde(default)]
    encoding: Encoding,
    /// Where to write: `stdout` (howl's own logs go to stderr, so stdout
    /// carries only events and can be piped) or `stderr`.
    #[serde(default)]
    target: Target,
}

/// The stream the console sink writes to.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Target {
    #[default]
    Stdout,
    Stderr,
}

impl SinkConfig for ConsoleConfig {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        Ok(Box::new(Console {
            encoding: self.encoding,
            target: self.target,
        }))
    }
}

struct Console {
    encoding: Encoding,
    target: Target,
}

impl Sink for Console {
    fn run(self: Box<Self>, cx: SinkContext) -> ComponentFuture {
        Box::pin(async move {
            match self.target {
                Target::Stdout => self.write_all(cx, tokio::io::stdout()).await,
                Target::Stderr => self.write_all(cx, tokio::io::stderr()).await,
            }
        })
    }
}

impl Console {
    async fn write_all(
        &self,
        mut cx: SinkContext,
        mut out: impl AsyncWrite + Unpin,
    ) -> anyhow::Result<()> {
        let mut buffer = Vec::with_capacity(64 * 1024);
        while let Some(mut events) = cx.input.recv().await {
            buffer.clear();
            for event in &events {
                self.encoding.encode(event, &mut buffer);
            }
            let written = async {
                out.write_all(&buffer).await?;
                out.flush().await
            }
            .await;
            match written {
                Ok(()) => {
                    finalize_all(&mut events, EventStatus::Delivered);
                    cx.metrics.sent(None, events.len());
                    cx.metrics.sent_bytes(buffer.len());
                }
                Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {
                    tracing::info!(component = %cx.key, "output closed by its reader; shutting down");
                    finalize_all(&mut events, EventStatus::Errored);
                    cx.stop_topology.cancel();
                    return Ok(());
                }
                Err(error) => {
                    cx.metrics.error(
                        ErrorType::WriteFailed,
                        Stage::Sending,
                        &format_args!("cannot write events: {error}"),
                    );
                    cx.metrics.discarded_on_error(events.len(), &"write failed");
                    finalize_all(&mut events, EventStatus::Errored);
                }
            }
        }
        Ok(())
    }
}
