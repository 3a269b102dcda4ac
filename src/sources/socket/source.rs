//! `socket`: lines (or other frames) over TCP (optionally TLS), UDP or a
//! Unix socket, decoded as `decoding` says: Vector's `socket` source, with
//! its option names (`mode`, `address`, `path`, `decoding`, `framing`).
//!
//! Streams are cut into frames at newlines by default (any ASCII
//! character with `character_delimited`); a datagram is one frame by
//! default (`bytes`), its trailing newline dropped. Listening,
//! backpressure and connection limits are the plumbing's ([`super`]).

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use chrono::Utc;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use vrl::value::Value;

use super::{Listen, ListenOptions, Peer, StreamDecoder, Transport};
use crate::components::source::{Source, SourceConfig, SourceContext};
use crate::components::{BuildContext, ComponentFuture};
use crate::diagnostic::BuildError;
use crate::event::{Event, fields};
use crate::internal_events::ComponentMetrics;
use crate::options::TlsConfig;
use crate::sources::decoding::{
    Decoder, DecodingConfig, Framing, FramingConfig, LINES, SourceDecoder,
};
use crate::sources::lines::{DEFAULT_MAX_LINE_BYTES, LineSplitter, split_whole, trim_frame};

/// Options of the `socket` source.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SocketConfig {
    /// The transport: `tcp`, `udp`, `unix_stream` or `unix_datagram`.
    mode: Mode,
    /// The address and port to listen on, for `tcp` and `udp`, e.g.
    /// `0.0.0.0:9000`.
    #[schemars(extend("x-placeholder" = "127.0.0.1:9000"))]
    address: Option<SocketAddr>,
    /// The socket file to listen on, for `unix_stream` and
    /// `unix_datagram`. A stale socket left by a dead process is replaced;
    /// any other file there is an error.
    path: Option<PathBuf>,
    /// The longest frame kept, in bytes; a longer one is cut (at a
    /// character boundary) and counted in `source_lines_truncated_total`.
    /// It bounds the memory a connection can take.
    #[serde(default = "default_max_line_bytes")]
    max_line_bytes: NonZeroUsize,
    /// The most TCP or Unix stream connections served at once; at the
    /// limit, a new one takes the place of the one waiting longest for its
    /// next frame, and waits only when every one is busy.
    #[serde(default = "super::default_connection_limit")]
    connection_limit: NonZeroUsize,
    /// TLS for `tcp`: the server's certificate and key.
    tls: Option<TlsConfig>,
    /// How each frame becomes an event.
    #[serde(default)]
    decoding: DecodingConfig,
    /// How input is cut into frames.
    #[serde(default)]
    framing: FramingConfig,
}

/// How frames reach the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Mode {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// A Unix stream socket.
    UnixStream,
    /// A Unix datagram socket.
    UnixDatagram,
}

fn default_max_line_bytes() -> NonZeroUsize {
    DEFAULT_MAX_LINE_BYTES
}

impl SourceConfig for SocketConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        let (transport, mode) = match self.mode {
            Mode::Tcp => (Transport::Tcp, "tcp"),
            Mode::Udp => (Transport::Udp, "udp"),
            Mode::UnixStream => (Transport::UnixStream, "unix_stream"),
            Mode::UnixDatagram => (Transport::UnixDatagram, "unix_datagram"),
        };
        let datagram = transport.is_datagram();
        let default = if datagram { Framing::Whole } else { LINES };
        let framing = self.framing.resolve(default, datagram)?;
        let listen = Listen::new(
            ListenOptions {
                transport,
                mode,
                address: self.address,
                path: self.path.as_deref(),
                tls: self.tls.as_ref(),
                connection_limit: self.connection_limit.get(),
            },
            "socket",
            cx,
        )?;
        Ok(Box::new(Socket {
            listen,
            framing,
            decoder: Decoder::new(self.decoding, "socket"),
            max_line_bytes: self.max_line_bytes,
        }))
    }
}

struct Socket {
    listen: Listen,
    framing: Framing,
    decoder: Decoder,
    max_line_bytes: NonZeroUsize,
}

/// What every frame of the source is decoded with.
struct Shared {
    decoder: SourceDecoder,
    metrics: Arc<ComponentMetrics>,
    framing: Framing,
    max_line_bytes: NonZeroUsize,
    /// This machine: the `host` of frames from a Unix socket.
    local_host: Value,
}

impl Shared {
    /// The fields of who sent a frame: Vector's `host` (the peer's IP, or
    /// this machine for a Unix socket) and `port`.
    fn sender(&self, peer: Peer) -> Vec<(&'static str, Value)> {
        match peer {
            Peer::Ip(address) => vec![
                (fields::HOST, Value::from(address.ip().to_string())),
                ("port", Value::from(i64::from(address.port()))),
            ],
            Peer::Local => vec![(fields::HOST, self.local_host.clone())],
        }
    }

    /// One datagram's events.
    fn datagram(&self, datagram: &[u8], peer: Peer, events: &mut Vec<Event>) {
        let now = Utc::now();
        let sender = self.sender(peer);
        let max = self.max_line_bytes.get();
        let mut truncated = 0;
        match self.framing {
            Framing::Whole => {
                let text = datagram.strip_suffix(b"\n").unwrap_or(datagram);
                let frame = trim_frame(Bytes::copy_from_slice(text), false, b'\n', max);
                if let Some((frame, cut)) = frame {
                    truncated += usize::from(cut);
                    self.decoder.decode(frame, now, &sender, events);
                }
            }
            Framing::Delimited(delimiter) => {
                let datagram = Bytes::copy_from_slice(datagram);
                split_whole(&datagram, delimiter, max, |_, (frame, cut)| {
                    truncated += usize::from(cut);
                    self.decoder.decode(frame, now, &sender, events);
                });
            }
        }
        self.metrics.truncated(truncated, max);
    }
}

/// One stream connection: its splitter, and who is at the other end.
struct Connection {
    shared: Arc<Shared>,
    sender: Vec<(&'static str, Value)>,
    splitter: LineSplitter,
}

impl StreamDecoder for Connection {
    fn decode(&mut self, buf: &mut BytesMut, eof: bool, events: &mut Vec<Event>) {
        let now = Utc::now();
        let mut truncated = 0;
        let (shared, sender) = (&self.shared, &self.sender);
        let mut make = |(frame, cut): (Bytes, bool)| {
            truncated += usize::from(cut);
            shared.decoder.decode(frame, now, sender, events);
        };
        if !buf.is_empty() {
            self.splitter.push(buf.split().freeze(), &mut make);
        }
        if eof {
            self.splitter.finish(&mut make);
        }
        shared
            .metrics
            .truncated(truncated, shared.max_line_bytes.get());
    }
}

impl Source for Socket {
    fn listens(&self) -> bool {
        true
    }

    fn run(self: Box<Self>, cx: SourceContext) -> ComponentFuture {
        Box::pin(async move {
            let metrics = Arc::clone(cx.out.metrics());
            let shared = Arc::new(Shared {
                decoder: SourceDecoder::new(self.decoder, cx.key.shared_id(), Arc::clone(&metrics)),
                metrics,
                framing: self.framing,
                max_line_bytes: self.max_line_bytes,
                local_host: Value::from(cx.host.as_ref()),
            });
            let delimiter = match self.framing {
                Framing::Delimited(delimiter) => delimiter,
                Framing::Whole => b'\n',
            };
            let datagrams = Arc::clone(&shared);
            let max_line_bytes = self.max_line_bytes;
            self.listen
                .serve(
                    cx,
                    "frames",
                    |peer| Connection {
                        sender: shared.sender(peer),
                        splitter: LineSplitter::with_delimiter(max_line_bytes, delimiter),
                        shared: Arc::clone(&shared),
                    },
                    |datagram, peer, events| datagrams.datagram(datagram, peer, events),
                )
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::{build_failure, parse_error};

    #[test]
    fn bytes_framing_is_for_datagrams_only_and_errors_name_their_option() {
        let error = build_failure::<SocketConfig>(
            "mode = \"tcp\"\naddress = \"127.0.0.1:1\"\nframing.method = \"bytes\"",
        );
        assert!(error.message.contains("reads a stream"), "{error}");
        assert_eq!(error.option.as_deref(), Some("framing.method"));
        let config: SocketConfig =
            toml::from_str("mode = \"udp\"\naddress = \"127.0.0.1:1\"\nframing.method = \"bytes\"")
                .unwrap();
        assert!(config.build(&crate::sources::test_context("")).is_ok());
        let error = build_failure::<SocketConfig>("mode = \"unix_stream\"");
        assert!(error.message.contains("needs `path`"), "{error}");
        assert!(error.message.contains("/run/howl/socket.sock"), "{error}");
        let (message, at) =
            parse_error::<SocketConfig>("mode = \"tcp\"\ndecoding.codec = \"yaml\"");
        assert!(message.contains("unknown variant `yaml`"), "{message}");
        assert_eq!(at, "\"yaml\"");
    }
}
