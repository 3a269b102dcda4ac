//! `fluent`: receive the Fluent forward protocol (v1) over TCP (optionally
//! TLS) or a Unix socket, as Fluent Bit's and Fluentd's `forward` outputs
//! and the fluent-logger libraries send it.
//!
//! Options follow Vector's `fluent` source (`address`, `mode`, `path`,
//! `connection_limit`, `tls.*`), so a Vector config ports unchanged. The
//! stream is MessagePack values back to back, with no framing: each is
//! scanned as it arrives ([`msgpack::Scan`]), bounded by
//! `max_message_bytes`, then read as one of the four modes ([`forward`]).
//! A message carrying a `chunk` option is answered `{"ack": chunk}` only
//! once its events are delivered ([`socket::AnsweringDecoder`]); one that
//! is not delivered closes the connection unanswered, so the client sends
//! it again. The shared-key handshake is not implemented (nor is it in
//! Vector).

mod forward;
mod msgpack;

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::BytesMut;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use vrl::value::Value;

use super::socket::{AnswerWait, AnsweringDecoder, Batch, Peer, StreamListener};
use crate::components::source::{Source, SourceConfig, SourceContext};
use crate::components::{BuildContext, ComponentFuture};
use crate::diagnostic::BuildError;
use crate::options::Seconds;
use crate::options::TlsConfig;

/// Options of the `fluent` source.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FluentConfig {
    /// The transport: `tcp`, or `unix` (a Unix stream socket).
    #[serde(default)]
    mode: Mode,
    /// The address and port to listen on, for `tcp`; unset, Vector's
    /// default `0.0.0.0:24224` (Fluent's usual port).
    #[serde(default)]
    address: Option<SocketAddr>,
    /// The socket file to listen on, for `unix`. A stale socket left by a
    /// dead process is replaced; any other file there is an error.
    path: Option<PathBuf>,
    /// The largest forward message accepted, in bytes, as sent and (for
    /// compressed ones) once decompressed. A message that declares more
    /// closes its connection (nothing of it is allocated beyond the
    /// limit); a compressed one that decompresses to more is ignored; both
    /// are counted in `component_errors_total{error_type="decode_failed"}`.
    /// It bounds the memory a connection holds; Fluentd's default chunk
    /// limit is 8 MiB.
    #[serde(default = "default_max_message_bytes")]
    max_message_bytes: NonZeroUsize,
    /// The most connections served at once; at the limit, a new one takes
    /// the place of the one waiting longest for its next message, and
    /// waits only when every one is in the middle of one.
    #[serde(default = "crate::sources::socket::default_connection_limit")]
    connection_limit: NonZeroUsize,
    /// How long a message that asks for an ack (`chunk`) waits for its
    /// events' delivery; without it by then, the connection is closed
    /// unanswered and the client sends the message again (the events may
    /// still be delivered, so a resend may duplicate them).
    #[serde(default = "default_ack_timeout")]
    ack_timeout_secs: Seconds,
    /// TLS for `tcp`: the server's certificate and key.
    tls: Option<TlsConfig>,
}

/// How the forward protocol reaches howl.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Mode {
    /// TCP (`address`, by default `0.0.0.0:24224`).
    #[default]
    Tcp,
    /// A Unix stream socket (`path`).
    Unix,
}

fn default_max_message_bytes() -> NonZeroUsize {
    const LIMIT: NonZeroUsize = NonZeroUsize::new(8 << 20).unwrap();
    LIMIT
}

fn default_ack_timeout() -> Seconds {
    Seconds::from_secs(60)
}

/// Where Vector's (and Fluent's) forward receivers listen by default.
const DEFAULT_ADDRESS: &str = "0.0.0.0:24224";

impl SourceConfig for FluentConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        let endpoint = match (self.mode, &self.address, &self.path) {
            (Mode::Tcp, _, Some(_)) => {
                return Err(BuildError::new(
                    "`path` is for mode `unix`; mode `tcp` listens on `address`",
                )
                .for_option("path"));
            }
            (Mode::Tcp, address, None) => Endpoint::Address(
                address
                    .unwrap_or_else(|| DEFAULT_ADDRESS.parse().expect("a valid default address")),
            ),
            (Mode::Unix, Some(_), _) => {
                return Err(BuildError::new(
                    "`address` is for mode `tcp`; mode `unix` listens on `path`",
                )
                .for_option("address"));
            }
            (Mode::Unix, None, Some(path)) => Endpoint::Path(path.clone()),
            (Mode::Unix, None, None) => {
                return Err(BuildError::new(
                    "mode `unix` needs `path`, e.g. `path = \"/run/howl/fluent.sock\"`",
                )
                .for_option("mode"));
            }
        };
        let tls = match (&self.tls, self.mode) {
            (Some(tls), Mode::Tcp) => Some(tls.acceptor(|path| cx.resolve_path(path))?),
            (Some(_), Mode::Unix) => {
                return Err(
                    BuildError::new("`tls` is for mode `tcp`, not `unix`").for_option("tls")
                );
            }
            (None, _) => None,
        };
        Ok(Box::new(Fluent {
            endpoint,
            max_message_bytes: self.max_message_bytes.get(),
            connection_limit: self.connection_limit.get(),
            ack_timeout: self.ack_timeout_secs.positive("ack_timeout_secs")?,
            tls,
        }))
    }
}

enum Endpoint {
    Address(SocketAddr),
    Path(PathBuf),
}

struct Fluent {
    endpoint: Endpoint,
    max_message_bytes: usize,
    connection_limit: usize,
    ack_timeout: std::time::Duration,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Source for Fluent {
    fn listens(&self) -> bool {
        true
    }

    fn run(self: Box<Self>, cx: SourceContext) -> ComponentFuture {
        Box::pin(async move {
            let maker = forward::Maker {
                source_id: cx.key.shared_id(),
                metrics: Arc::clone(cx.out.metrics()),
                max_message_bytes: self.max_message_bytes,
            };
            let local_host = Value::from(cx.host.as_ref());
            let wait = AnswerWait {
                timeout: self.ack_timeout,
                shutdown_limit: cx.shutdown_limit.clone(),
            };
            let listener = match &self.endpoint {
                Endpoint::Address(address) => {
                    let listener = StreamListener::tcp(*address, self.tls).await?;
                    tracing::info!(component = %cx.key, %address, "listening for fluent forward (tcp)");
                    listener
                }
                Endpoint::Path(path) => {
                    let listener = StreamListener::unix(path)?;
                    tracing::info!(component = %cx.key, path = %path.display(), "listening for fluent forward (unix)");
                    listener
                }
            };
            cx.ready.listening();
            listener
                .serve_answering(cx.out, self.connection_limit, cx.shutdown, wait, |peer| {
                    let host = match peer {
                        Peer::Ip(address) => Value::from(address.ip().to_string()),
                        Peer::Local => local_host.clone(),
                    };
                    Connection {
                        maker: maker.clone(),
                        host,
                        scan: msgpack::Scan::default(),
                    }
                })
                .await;
            Ok(())
        })
    }
}

/// One connection: the values it is in the middle of, and its peer.
struct Connection {
    maker: forward::Maker,
    /// The `host` of its events.
    host: Value,
    scan: msgpack::Scan,
}

impl AnsweringDecoder for Connection {
    fn decode(
        &mut self,
        buf: &mut BytesMut,
        eof: bool,
        batches: &mut Vec<Batch>,
    ) -> Result<(), String> {
        while !buf.is_empty() {
            match self.scan.run(buf, self.maker.max_message_bytes) {
                Ok(Some(len)) => {
                    let message = buf.split_to(len).freeze();
                    if let Some(batch) = self.maker.message(message, &self.host) {
                        batches.push(batch);
                    }
                }
                Ok(None) if eof => {
                    return Err(format!(
                        "the connection ended inside a message ({} bytes of it)",
                        buf.len()
                    ));
                }
                Ok(None) => return Ok(()),
                Err(invalid) => {
                    return Err(format!(
                        "the stream is not forward protocol (max_message_bytes = {}): {invalid}",
                        self.maker.max_message_bytes
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
