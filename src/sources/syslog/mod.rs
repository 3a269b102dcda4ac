//! `syslog`: receive syslog messages over TCP (optionally TLS), UDP or a
//! Unix socket, as rsyslog, syslog-ng, journald forwarding, network gear
//! and `logger` send them.
//!
//! Options follow Vector's `syslog` source (`mode`, `address`, `path`,
//! `max_length`, `connection_limit`, `tls.*`), so a Vector config ports
//! unchanged. Messages are RFC 5424 or RFC 3164 (told apart per message);
//! TCP framing is newline or octet counting (RFC 6587), also per message
//! ([`framing`]). A message that cannot be parsed, or is longer than
//! `max_length`, is passed on as raw text with `syslog_error` saying why,
//! and counted: never dropped silently.

mod framing;

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::BytesMut;
use chrono::{Datelike, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use vrl::value::{KeyString, ObjectMap, Value};

use self::framing::{Frame, Framer};
use super::socket::{Listen, ListenOptions, Peer, StreamDecoder, Transport};
use crate::components::source::{Source, SourceConfig, SourceContext};
use crate::components::{BuildContext, ComponentFuture};
use crate::diagnostic::BuildError;
use crate::event::{Event, fields};
use crate::internal_events::{ComponentMetrics, ErrorType, Stage};
use crate::options::TlsConfig;
use crate::patterns::Level;

/// Options of the `syslog` source.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// The transport: `tcp`, `udp`, `unix` (a Unix stream socket, as
    /// Vector's) or `unix_datagram` (a datagram socket, like `/dev/log`).
    mode: Mode,
    /// The address and port to listen on, for `tcp` and `udp`, e.g.
    /// `0.0.0.0:514` (port 514 needs root or `CAP_NET_BIND_SERVICE`; 1514 or
    /// 6514 do not).
    #[schemars(extend("x-placeholder" = "127.0.0.1:1514"))]
    address: Option<SocketAddr>,
    /// The socket file to listen on, for `unix` and `unix_datagram`. A
    /// stale socket left by a dead process is replaced; any other file
    /// there is an error.
    path: Option<PathBuf>,
    /// The longest message kept, in bytes; a longer one keeps its first
    /// `max_length` bytes, is passed on unparsed with `syslog_error`, and is
    /// counted in `component_errors_total{error_type="parse_failed"}`. It
    /// bounds the memory a connection can take.
    #[serde(default = "default_max_length")]
    max_length: NonZeroUsize,
    /// The most TCP or Unix stream connections served at once; at the limit,
    /// a new one takes the place of the one waiting longest for its next
    /// message, and waits only when every one is in the middle of one.
    #[serde(default = "crate::sources::socket::default_connection_limit")]
    connection_limit: NonZeroUsize,
    /// TLS for `tcp`: the server's certificate and key.
    tls: Option<TlsConfig>,
}

/// How syslog reaches howl.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Mode {
    /// TCP, newline or octet-counting framing.
    Tcp,
    /// UDP, one message per datagram.
    Udp,
    /// A Unix stream socket, framed as TCP.
    Unix,
    /// A Unix datagram socket, one message per datagram.
    UnixDatagram,
}

fn default_max_length() -> NonZeroUsize {
    super::lines::DEFAULT_MAX_LINE_BYTES
}

impl SourceConfig for SyslogConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        let (transport, mode) = match self.mode {
            Mode::Tcp => (Transport::Tcp, "tcp"),
            Mode::Udp => (Transport::Udp, "udp"),
            Mode::Unix => (Transport::UnixStream, "unix"),
            Mode::UnixDatagram => (Transport::UnixDatagram, "unix_datagram"),
        };
        let listen = Listen::new(
            ListenOptions {
                transport,
                mode,
                address: self.address,
                path: self.path.as_deref(),
                tls: self.tls.as_ref(),
                connection_limit: self.connection_limit.get(),
            },
            "syslog",
            cx,
        )?;
        Ok(Box::new(Syslog {
            listen,
            max_length: self.max_length.get(),
        }))
    }
}

struct Syslog {
    listen: Listen,
    max_length: usize,
}

/// What every message of the source is made with.
#[derive(Clone)]
struct Maker {
    source_id: Arc<str>,
    /// This machine, the `host` of messages from a Unix socket that name
    /// no host.
    local_host: Value,
    metrics: Arc<ComponentMetrics>,
    max_length: usize,
}

impl Source for Syslog {
    fn listens(&self) -> bool {
        true
    }

    fn run(self: Box<Self>, cx: SourceContext) -> ComponentFuture {
        Box::pin(async move {
            let maker = Maker {
                source_id: cx.key.shared_id(),
                local_host: Value::from(cx.host.as_ref()),
                metrics: Arc::clone(cx.out.metrics()),
                max_length: self.max_length,
            };
            self.listen
                .serve(
                    cx,
                    "syslog",
                    |peer| Connection::new(maker.clone(), peer),
                    |datagram, peer, events| maker.datagram(datagram, peer, events),
                )
                .await
        })
    }
}

/// Who sent a message, as the field values its events carry: made once
/// per connection (or datagram), not once per message.
struct Sender {
    /// `source_ip`, for TCP and UDP.
    ip: Option<Value>,
    /// `host` when the message names none: the IP, or this machine.
    host: Value,
}

/// One stream connection: its framer, and who is at the other end.
struct Connection {
    maker: Maker,
    sender: Sender,
    framer: Framer,
}

impl Connection {
    fn new(maker: Maker, peer: Peer) -> Self {
        let framer = Framer::new(maker.max_length);
        let sender = maker.sender(peer);
        Self {
            maker,
            sender,
            framer,
        }
    }
}

impl StreamDecoder for Connection {
    fn decode(&mut self, buf: &mut BytesMut, eof: bool, events: &mut Vec<Event>) {
        while let Some(frame) = self.framer.next(buf, eof) {
            events.push(self.maker.event(&frame, &self.sender));
        }
    }
}

impl Maker {
    fn datagram(&self, datagram: &[u8], peer: Peer, events: &mut Vec<Event>) {
        let mut text = datagram;
        while let [rest @ .., b'\n' | b'\r' | 0] = text {
            text = rest;
        }
        if text.is_empty() {
            return;
        }
        let oversized = text.len() > self.max_length;
        let kept = if oversized {
            let cut = &text[..self.max_length];
            &cut[..super::lines::utf8_boundary(cut)]
        } else {
            text
        };
        let frame = Frame {
            bytes: bytes::Bytes::copy_from_slice(kept),
            oversized,
        };
        events.push(self.event(&frame, &self.sender(peer)));
    }

    fn sender(&self, peer: Peer) -> Sender {
        match peer {
            Peer::Ip(address) => {
                let ip = Value::from(address.ip().to_string());
                Sender {
                    ip: Some(ip.clone()),
                    host: ip,
                }
            }
            Peer::Local => Sender {
                ip: None,
                host: self.local_host.clone(),
            },
        }
    }

    /// The event for one message: parsed, or raw with `syslog_error`.
    fn event(&self, frame: &Frame, sender: &Sender) -> Event {
        let parsed = if frame.oversized {
            Err(format!(
                "the message is longer than max_length ({} bytes) and was cut",
                self.max_length
            ))
        } else {
            parse(&frame.bytes, "syslog", Some(&sender.host)).map_err(|error| error.to_string())
        };
        let mut event = match parsed {
            Ok(event) => event,
            Err(why) => {
                self.metrics.error(
                    ErrorType::ParseFailed,
                    Stage::Receiving,
                    &format_args!("{why}; passed on as raw text with `syslog_error`"),
                );
                let mut event = Event::log(frame.bytes.clone(), Utc::now(), "syslog");
                event.insert_field("syslog_error", why);
                event.insert_field(fields::HOST, sender.host.clone());
                event
            }
        };
        if let Some(ip) = &sender.ip {
            event.insert_field("source_ip", ip.clone());
        }
        event.with_source_id(Arc::clone(&self.source_id))
    }
}

/// Why a message is not syslog.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the message is neither RFC 5424 nor RFC 3164 syslog")]
pub struct NotSyslog;

/// One syslog message (RFC 5424 or RFC 3164, told apart by the message) as
/// an event with the `syslog` source's fields, its `message` a slice of
/// `bytes` where it can be; `host` is the message's hostname, else `host`
/// (who sent it), if known. Shared with the `syslog` codec of `decoding`, so a
/// message read by any source has the same fields.
pub(in crate::sources) fn parse(
    bytes: &bytes::Bytes,
    source_type: &'static str,
    host: Option<&Value>,
) -> Result<Event, NotSyslog> {
    let text = String::from_utf8_lossy(bytes);
    // RFC 5424 allows `-` (no time) where the parser wants a time: a
    // stand-in time is parsed, and dropped again below.
    let stand_in = nil_timestamp(&text);
    let input: &str = stand_in.as_deref().unwrap_or(&text);
    let mut message =
        syslog_loose::parse_message_with_year_exact(input, year_of, syslog_loose::Variant::Either)
            .map_err(|_| NotSyslog)?;
    if stand_in.is_some() {
        message.timestamp = None;
    }
    let message = tag_without_hostname(message, input);
    let text_bytes = bytes_of(bytes, message.msg);
    Ok(parsed(message, text_bytes, source_type, host))
}

fn parsed(
    message: syslog_loose::Message<&str>,
    text: bytes::Bytes,
    source_type: &'static str,
    host: Option<&Value>,
) -> Event {
    let timestamp = message
        .timestamp
        .map_or_else(Utc::now, |at| at.with_timezone(&Utc));
    let mut event = Event::log(text, timestamp, source_type);
    let host = match message.hostname {
        Some(hostname) => {
            event.insert_field("hostname", hostname);
            Some(Value::from(hostname))
        }
        None => host.cloned(),
    };
    if let Some(host) = host {
        event.insert_field(fields::HOST, host);
    }
    if let Some(appname) = message.appname {
        event.insert_field("appname", appname);
    }
    match message.procid {
        Some(syslog_loose::ProcId::PID(pid)) => event.insert_field("procid", i64::from(pid)),
        Some(syslog_loose::ProcId::Name(name)) => event.insert_field("procid", name),
        None => {}
    }
    if let Some(msgid) = message.msgid {
        event.insert_field("msgid", msgid);
    }
    if let Some(facility) = message.facility {
        event.insert_field("facility", facility.as_str());
    }
    if let Some(severity) = message.severity {
        event.insert_field("severity", severity.as_str());
        let level = Level::parse_value(&(severity as u8).to_string()).unwrap_or_default();
        event.insert_field("level", level.as_str());
    }
    if let syslog_loose::Protocol::RFC5424(version) = message.protocol {
        event.insert_field("version", i64::from(version));
    }
    // Structured data: one object per element, at the root as Vector
    // puts it; an element named like a field above never replaces it.
    for element in &message.structured_data {
        if event.get_field(element.id).is_some() {
            continue;
        }
        let params: ObjectMap = element
            .params()
            .map(|(name, value): (&&str, String)| (KeyString::from(*name), Value::from(value)))
            .collect();
        event.insert_field(element.id, Value::Object(params));
    }
    event
}

/// `<PRI>1 - rest` (RFC 5424 with no time) with a stand-in time in place of
/// the `-`, for a parser that requires one; `None` for any other text.
fn nil_timestamp(text: &str) -> Option<String> {
    let close = text.strip_prefix('<')?.find('>')? + 1;
    let rest = text[close + 1..].strip_prefix("1 - ")?;
    Some(format!("{}1 1970-01-01T00:00:00Z {rest}", &text[..=close]))
}

/// The local form of RFC 3164 (`<13>Dec  6 05:34:35 app: text`, what
/// `logger` and libc's `syslog()` write to a Unix socket) names no host,
/// but a parser reads its tag as the hostname. A hostname is never
/// followed by `:`, so such a "hostname" is the tag (the app name).
fn tag_without_hostname<'a>(
    mut message: syslog_loose::Message<&'a str>,
    text: &str,
) -> syslog_loose::Message<&'a str> {
    if message.protocol != syslog_loose::Protocol::RFC3164 || message.appname.is_some() {
        return message;
    }
    let Some(hostname) = message.hostname else {
        return message;
    };
    let start = (hostname.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
    if text.as_bytes().get(start.wrapping_add(hostname.len())) == Some(&b':') {
        message.appname = Some(hostname);
        message.hostname = None;
    }
    message
}

/// `part` (a piece of the text parsed from `whole`) as bytes: a slice of
/// `whole` when the text was `whole` itself (valid UTF-8), else a copy.
fn bytes_of(whole: &bytes::Bytes, part: &str) -> bytes::Bytes {
    let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
    if start <= whole.len() && part.len() <= whole.len() - start {
        whole.slice(start..start + part.len())
    } else {
        bytes::Bytes::copy_from_slice(part.as_bytes())
    }
}

/// The year of an RFC 3164 timestamp (which has none): this year, or last
/// year for a December message read in January.
fn year_of((month, ..): syslog_loose::IncompleteDate) -> i32 {
    let now = Utc::now();
    if month == 12 && now.month() == 1 {
        now.year() - 1
    } else {
        now.year()
    }
}

#[cfg(test)]
mod tests;
