//! `stdin`: one event per line of standard input (or per frame, decoded,
//! as `framing` and `decoding` say: [`super::decoding`]).
//!
//! This is how CI pipelines use howl (`cat build.log | howl run -c ci.toml`):
//! the source ends at end of input, the topology drains, and howl exits 0.
//!
//! A dedicated thread does the blocking reads and hands 64 KiB chunks to the
//! source task through a channel two chunks deep: when downstream is full the
//! task stops taking chunks, the thread stops reading, and the writer of the
//! pipe blocks (backpressure reaches the producer of the input). On shutdown
//! the task stops reading, turns what was already read into events (the
//! queued chunks, then the unfinished last line: stdin cannot be read again)
//! and returns; the thread may stay blocked in `read` on an idle terminal,
//! which is why it is detached rather than joined.
//!
//! Each batch carries a notifier, and at the end the source waits until
//! every sink has finished with every line: the exit status says whether
//! all of them were delivered. Lines a sink gave up on or that a
//! destination refused, or still undelivered at the graceful shutdown
//! limit, make the source fail with their count, so `howl run` exits 1 (a CI
//! step notices).

use std::io::Read;
use std::num::NonZeroUsize;

use bytes::BytesMut;
use chrono::Utc;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::sync::mpsc;
use vrl::value::Value;

use super::decoding::{Decoder, DecodingConfig, FramingConfig, SourceDecoder};
use super::lines::{DEFAULT_MAX_LINE_BYTES, LineSplitter};
use crate::components::source::{Source, SourceConfig, SourceContext};
use crate::components::{BuildContext, ComponentFuture};
use crate::diagnostic::BuildError;
use crate::event::acks::{AckQueue, Completed};
use crate::event::{fields, notify_batch};
use crate::internal_events::{ErrorType, Stage};

/// Options of the `stdin` source.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StdinConfig {
    /// The longest line kept, in bytes; longer lines are cut to this length
    /// (at a character boundary) and counted in
    /// `source_lines_truncated_total`. It bounds the memory one line can
    /// take, whatever the input.
    #[serde(default = "default_max_line_bytes")]
    max_line_bytes: NonZeroUsize,
    /// How each line becomes an event.
    #[serde(default)]
    decoding: DecodingConfig,
    /// How input is cut into frames.
    #[serde(default)]
    framing: FramingConfig,
}

fn default_max_line_bytes() -> NonZeroUsize {
    DEFAULT_MAX_LINE_BYTES
}

/// Size of one read from stdin.
const CHUNK_BYTES: usize = 64 * 1024;

impl SourceConfig for StdinConfig {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        Ok(Box::new(Stdin {
            max_line_bytes: self.max_line_bytes,
            delimiter: self.framing.stream_delimiter()?,
            decoder: Decoder::new(self.decoding, "stdin"),
        }))
    }
}

struct Stdin {
    max_line_bytes: NonZeroUsize,
    delimiter: u8,
    decoder: Decoder,
}

impl Source for Stdin {
    fn run(self: Box<Self>, mut cx: SourceContext) -> ComponentFuture {
        Box::pin(async move {
            let (tx, mut rx) = mpsc::channel(2);
            std::thread::Builder::new()
                .name("howl-stdin".into())
                .spawn(move || read_stdin(tx))?;
            let mut splitter = LineSplitter::with_delimiter(self.max_line_bytes, self.delimiter);
            let metrics = cx.out.metrics().clone();
            let decoder = SourceDecoder::new(self.decoder, cx.key.shared_id(), metrics.clone());
            let host = [(fields::HOST, Value::from(cx.host.as_ref()))];
            // On shutdown, what was already read is still turned into events
            // (stdin cannot be read again): the queued chunks, then the
            // unfinished last line.
            let mut stopping = false;
            // Positions are counts of lines sent.
            let mut acks = AckQueue::new(0);
            let mut outcome = Completed::default();
            let mut sent: u64 = 0;
            loop {
                let chunk = if stopping {
                    rx.try_recv().ok()
                } else {
                    tokio::select! {
                        biased;
                        _ = cx.shutdown.cancelled() => {
                            stopping = true;
                            rx.try_recv().ok()
                        }
                        chunk = rx.recv() => chunk,
                    }
                };
                let (chunk, at_end) = match chunk {
                    Some(Ok(chunk)) => (Some(chunk), false),
                    Some(Err(error)) => {
                        metrics.error(
                            ErrorType::ReadFailed,
                            Stage::Receiving,
                            &format_args!("cannot read stdin: {error}"),
                        );
                        (None, true)
                    }
                    None => (None, true),
                };
                let now = Utc::now();
                let mut events = Vec::new();
                let (mut bytes, mut truncated) = (0, 0);
                let mut make = |(line, cut): (bytes::Bytes, bool)| {
                    bytes += line.len();
                    truncated += usize::from(cut);
                    decoder.decode(line, now, &host, &mut events);
                };
                match chunk {
                    Some(chunk) => splitter.push(chunk, &mut make),
                    None => splitter.finish(&mut make),
                }
                metrics.received(events.len(), bytes);
                metrics.truncated(truncated, self.max_line_bytes.get());
                if !events.is_empty() {
                    sent += events.len() as u64;
                    let count = events.len();
                    let status = notify_batch(&mut events);
                    cx.out.send(events).await;
                    acks.push(sent, count, status);
                    outcome.add(acks.poll());
                }
                if at_end {
                    break;
                }
            }
            // Let the pipeline drain, then see what became of every line.
            drop(cx.out);
            loop {
                tokio::select! {
                    biased;
                    _ = cx.shutdown_limit.cancelled() => break,
                    completed = acks.next() => match completed {
                        Some(completed) => outcome.add(completed),
                        None => break,
                    },
                }
            }
            let pending = acks.pending_events();
            if !outcome.all_delivered() || pending > 0 {
                let mut what = outcome.describe_failures("lines");
                if pending > 0 {
                    if !what.is_empty() {
                        what.push_str(", ");
                    }
                    what.push_str(&format!(
                        "{pending} lines still in flight at the graceful shutdown limit"
                    ));
                }
                anyhow::bail!("not every line of the {sent} read was delivered: {what}");
            }
            Ok(())
        })
    }
}

/// Reads stdin until EOF or until the source stops listening.
///
/// Events are slices of the chunk they were read in and keep it alive, so a
/// small read (a pipe delivering a line at a time) is copied into a chunk of
/// its own size rather than pinning a whole 64 KiB buffer per line.
fn read_stdin(tx: mpsc::Sender<std::io::Result<bytes::Bytes>>) {
    let stdin = std::io::stdin();
    let mut stdin = stdin.lock();
    let mut buffer = BytesMut::zeroed(CHUNK_BYTES);
    loop {
        let read = match stdin.read(&mut buffer) {
            Ok(0) => return,
            Ok(n) => n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => {
                let _ = tx.blocking_send(Err(error));
                return;
            }
        };
        let chunk = if read >= CHUNK_BYTES / 4 {
            let mut full = std::mem::replace(&mut buffer, BytesMut::zeroed(CHUNK_BYTES));
            full.truncate(read);
            full.freeze()
        } else {
            bytes::Bytes::copy_from_slice(&buffer[..read])
        };
        if tx.blocking_send(Ok(chunk)).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::parse_error;

    #[test]
    fn a_zero_line_limit_is_refused_while_reading() {
        let (message, at) = parse_error::<StdinConfig>("max_line_bytes = 0");
        assert!(message.contains("nonzero"), "{message}");
        assert_eq!(at, "0");
        let config: StdinConfig = toml::from_str("").unwrap();
        assert_eq!(config.max_line_bytes, DEFAULT_MAX_LINE_BYTES);
    }
}
