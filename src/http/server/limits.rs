//! `connections.*`: how many connections one of howl's HTTP servers keeps
//! open, and how long and how much each may take. One table, written the
//! same way in an `http_server` source and in `[api]`.

use std::num::NonZeroUsize;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

use crate::options::Seconds;

/// Limits on the connections of a server (`connections.*`), so that slow
/// or abusive clients cannot hold it, or howl's file descriptors.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionsConfig {
    /// The most connections open at once. When all are open, a new
    /// connection takes the place of the one that has waited longest for a
    /// request (a connection in the middle of a request is never closed);
    /// when every one is in the middle of a request, the new one is
    /// answered 503 with `Retry-After: 1` and closed (over TLS or HTTP/2, only
    /// closed: clients retry both). Each connection is a
    /// file descriptor: keep the sum over howl's servers well under the
    /// open-file limit (`ulimit -n`, systemd's `LimitNOFILE`); howl warns at
    /// start when one server's limit is above half of it.
    #[schemars(extend("x-default" = "`512` for `http_server`, `128` for `[api]`"))]
    pub max: Option<NonZeroUsize>,
    /// A new connection must send its first request head (the request line
    /// and headers) within this long, or it is closed: a client that
    /// trickles its headers ("slowloris") cannot hold a connection. More
    /// than 0.
    #[serde(default = "default_header_read_timeout", deserialize_with = "positive")]
    pub header_read_timeout_secs: Seconds,
    /// A kept-alive connection is closed when the head of its next request
    /// has not arrived within this long of the previous answer (a client
    /// that reads an answer this slowly is closed too). More than 0.
    #[serde(default = "default_idle_timeout", deserialize_with = "positive")]
    pub idle_timeout_secs: Seconds,
    /// How many requests one connection may carry: the answer to the last
    /// one says `Connection: close`, and the client opens a new connection.
    #[serde(default = "default_max_requests")]
    pub max_requests_per_connection: NonZeroUsize,
    /// The largest request head (request line and headers) accepted, in
    /// bytes, from 1024 to 262144; a larger one is answered 431 and its
    /// connection closed.
    #[serde(
        default = "default_max_header_bytes",
        deserialize_with = "header_bytes"
    )]
    #[schemars(range(min = 1024, max = 262_144))]
    pub max_header_bytes: usize,
}

/// The default `connections.max` of an `http_server` source.
pub const SOURCE_MAX_CONNECTIONS: NonZeroUsize = NonZeroUsize::new(512).unwrap();
/// The default `connections.max` of the API: its clients (probes,
/// Prometheus, an operator) need few, and it shares howl's file descriptors
/// with the sources.
pub const API_MAX_CONNECTIONS: NonZeroUsize = NonZeroUsize::new(128).unwrap();

const MIN_HEADER_BYTES: usize = 1024;
const MAX_HEADER_BYTES: usize = 256 * 1024;

fn default_header_read_timeout() -> Seconds {
    Seconds::from_secs(10)
}

fn default_idle_timeout() -> Seconds {
    Seconds::from_secs(60)
}

fn default_max_requests() -> NonZeroUsize {
    const THOUSAND: NonZeroUsize = NonZeroUsize::new(1000).unwrap();
    THOUSAND
}

fn default_max_header_bytes() -> usize {
    16 * 1024
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        Self {
            max: None,
            header_read_timeout_secs: default_header_read_timeout(),
            idle_timeout_secs: default_idle_timeout(),
            max_requests_per_connection: default_max_requests(),
            max_header_bytes: default_max_header_bytes(),
        }
    }
}

impl ConnectionsConfig {
    /// The limits in their runtime form; `default_max` is the server's own
    /// default for `connections.max`.
    pub fn limits(&self, default_max: NonZeroUsize) -> ServerLimits {
        ServerLimits {
            max_connections: self.max.unwrap_or(default_max).get(),
            header_read_timeout: self.header_read_timeout_secs.get(),
            idle_timeout: self.idle_timeout_secs.get(),
            max_requests_per_connection: self.max_requests_per_connection.get(),
            max_header_bytes: self.max_header_bytes,
        }
    }
}

/// What [`serve`](super::serve) enforces, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// From a connection's opening to the end of its first request head.
    pub header_read_timeout: Duration,
    /// From an answer to the end of the next request head.
    pub idle_timeout: Duration,
    /// Requests one connection carries.
    pub max_requests_per_connection: usize,
    /// The size of a request head.
    pub max_header_bytes: usize,
}

/// A timeout, refused when zero (it would close every connection at once)
/// while the file is read, so the error points at the value.
fn positive<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Seconds, D::Error> {
    let value = Seconds::deserialize(deserializer)?;
    if value.get().is_zero() {
        return Err(serde::de::Error::custom(
            "must be more than 0 (a timeout of 0 would close every connection at once)",
        ));
    }
    Ok(value)
}

/// `max_header_bytes`: below 1 KiB ordinary requests would be refused;
/// above 256 KiB a head is no longer a head.
fn header_bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    let value = u64::deserialize(deserializer)?;
    usize::try_from(value)
        .ok()
        .filter(|v| (MIN_HEADER_BYTES..=MAX_HEADER_BYTES).contains(v))
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "expected a number of bytes from {MIN_HEADER_BYTES} to {MAX_HEADER_BYTES}, not {value}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::parse_error;

    #[test]
    fn defaults_and_each_server_s_own_maximum() {
        let config: ConnectionsConfig = toml::from_str("").unwrap();
        assert_eq!(config, ConnectionsConfig::default());
        let limits = config.limits(API_MAX_CONNECTIONS);
        assert_eq!(limits.max_connections, 128);
        assert_eq!(limits.header_read_timeout, Duration::from_secs(10));
        assert_eq!(limits.idle_timeout, Duration::from_secs(60));
        assert_eq!(limits.max_requests_per_connection, 1000);
        assert_eq!(limits.max_header_bytes, 16 * 1024);
        let set: ConnectionsConfig = toml::from_str("max = 3").unwrap();
        assert_eq!(set.limits(SOURCE_MAX_CONNECTIONS).max_connections, 3);
    }

    #[test]
    fn zero_and_out_of_range_values_are_refused_at_the_value() {
        for (text, expected, at) in [
            ("header_read_timeout_secs = 0", "more than 0", "0"),
            ("idle_timeout_secs = \"0s\"", "more than 0", "\"0s\""),
            ("max = 0", "nonzero", "0"),
            ("max_header_bytes = 100", "from 1024 to 262144", "100"),
            ("max_header_bytes = 300000", "from 1024 to 262144", "300000"),
        ] {
            let (message, found) = parse_error::<ConnectionsConfig>(text);
            assert!(message.contains(expected), "{text}: {message}");
            assert_eq!(found, at, "{text}");
        }
    }
}
