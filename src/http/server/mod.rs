//! The server loop both of howl's HTTP servers run: the `http_server`
//! source and the API. Each hands [`serve`] its router and its
//! [`ServerLimits`] (the `connections.*` options, [`ConnectionsConfig`]);
//! this module decides how connections are accepted, timed and closed, so
//! the two servers resist slow and abusive clients the same way:
//!
//! - at most `connections.max` connections are open; beyond it, the one
//!   that has waited longest for a request is closed to make room, or, if
//!   every one is handling a request, the new one is answered 503 and
//!   closed (`connections`). A flood of connections therefore never
//!   takes the file descriptors the rest of howl needs;
//! - a new connection must send its request head within
//!   `header_read_timeout_secs`, and a kept-alive one its next head within
//!   `idle_timeout_secs` of the previous answer; heads are at most
//!   `max_header_bytes`, and a connection carries at most
//!   `max_requests_per_connection` requests;
//! - when accepting fails (out of file descriptors, above all), the loop
//!   backs off, up to a second between tries, and logs once a minute
//!   rather than once per failure;
//! - on shutdown it stops accepting, closes the connections that are not
//!   handling a request, lets the others finish theirs, and returns once
//!   all are closed.
//!
//! `axum::serve` does none of this (it has no timeouts and no limit, and
//! logs every failed accept), hence this loop around hyper's HTTP/1
//! connection. HTTP/2 is served only where a protocol needs it (OTLP/gRPC,
//! [`Protocol::H2c`]: HTTP/2 with prior knowledge, or by ALPN over TLS,
//! the streams of one connection counted as its requests); the other
//! clients (log shippers, probes, Prometheus) speak HTTP/1.1. With a TLS
//! identity, the handshake is made in the connection's own task, within
//! `header_read_timeout_secs`, so a client that stalls it holds a slot no
//! longer than one that sends no request.

mod connections;
mod limits;

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use connections::{Admission, Connections, Phase, Ticket};
pub use limits::{API_MAX_CONNECTIONS, ConnectionsConfig, SOURCE_MAX_CONNECTIONS, ServerLimits};

/// How often a recurring problem (failed accepts, a full server) is logged
/// at most; the line says how often it happened in between.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// The first pause after a failed accept; it doubles up to [`LONGEST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(10);
/// The longest pause between two accepts that fail.
const LONGEST_PAUSE: Duration = Duration::from_secs(1);
/// Streams one HTTP/2 connection may have open at once (hyper's default
/// is 200): each may hold a body of up to the source's limit while it
/// arrives.
const H2_MAX_STREAMS: u32 = 8;
/// What a connection refused for lack of room is told.
const FULL_MESSAGE: &str = "too many connections; retry later";

/// Serves `router` on `listener` within `limits` until `shutdown` is
/// cancelled, then waits for the open connections to finish their
/// requests. `name` says which server this is in logs (`sources.in`,
/// `[api]`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    name: &str,
    shutdown: CancellationToken,
) {
    serve_protocol(
        listener,
        router,
        limits,
        name,
        shutdown,
        Protocol::Http1,
        None,
    )
    .await;
}

/// The HTTP version a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2: with prior knowledge in cleartext, or negotiated by ALPN
    /// over TLS (what gRPC clients send to an
    /// `http://` endpoint).
    H2c,
}

impl Protocol {
    /// What the server offers in TLS's ALPN: gRPC clients refuse a server
    /// that does not agree on `h2`.
    fn alpn(self) -> Vec<Vec<u8>> {
        match self {
            Self::Http1 => vec![b"http/1.1".to_vec()],
            Self::H2c => vec![b"h2".to_vec()],
        }
    }
}

/// [`serve`], in the given protocol, over TLS when `tls` is given (the
/// server's identity; the ALPN offered follows the protocol).
pub async fn serve_protocol(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    name: &str,
    shutdown: CancellationToken,
    protocol: Protocol,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    warn_if_above_file_limit(name, limits.max_connections);
    let tls = tls.map(|identity| {
        let mut config = (*identity).clone();
        config.alpn_protocols = protocol.alpn();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    });
    let serving = Arc::new(Serving {
        router,
        limits,
        shutdown: shutdown.clone(),
        protocol,
        tls,
        name: name.to_string(),
        failed_handshakes: std::sync::Mutex::new(Throttled::default()),
    });
    let connections = Connections::new(limits.max_connections);
    let tasks = TaskTracker::new();
    let mut failures = AcceptFailures::default();
    let mut made_room = Throttled::default();
    let mut refused = Throttled::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                failures.succeeded();
                stream
            }
            // The client gave up before it was accepted: nothing to do.
            Err(error) if concerns_one_client(&error) => continue,
            Err(error) => {
                let pause = failures.failed(name, &error);
                tokio::select! {
                    () = tokio::time::sleep(pause) => continue,
                    () = shutdown.cancelled() => break,
                }
            }
        };
        match connections.admit() {
            Admission::Admitted { ticket, evicted } => {
                if let Some(evicted) = evicted {
                    if let Some(count) = made_room.note() {
                        tracing::warn!(
                            "{name}: `connections.max` ({}) reached: closed {count} connection(s) \
                             waiting for a request, to make room for new ones (counted since the \
                             last report; reported at most once a minute)",
                            limits.max_connections
                        );
                    }
                    // Bounded, though its task closes it as soon as it runs.
                    let _ = tokio::time::timeout(LONGEST_PAUSE, evicted.closed()).await;
                }
                tasks.spawn(serve_connection(stream, ticket, Arc::clone(&serving)));
            }
            Admission::Full => {
                if let Some(count) = refused.note() {
                    tracing::warn!(
                        "{name}: `connections.max` ({}) reached, every connection handling a \
                         request: refused {count} new connection(s) (503, or closed over TLS and \
                         HTTP/2; counted since the last report; reported at most once a minute)",
                        limits.max_connections
                    );
                }
                // Over TLS or HTTP/2, an HTTP/1.1 answer would be noise to
                // the client: closing says the same (gRPC clients take it
                // as UNAVAILABLE and retry).
                if serving.tls.is_none() && protocol == Protocol::Http1 {
                    refuse(&stream);
                }
            }
        }
    }
    drop(listener);
    tasks.close();
    tasks.wait().await;
}

/// Accept errors that concern one client only (it reset the connection
/// before it was accepted), not the server.
fn concerns_one_client(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

/// Answers 503 on a connection there is no room for, and closes it. The
/// answer is small enough for a fresh socket's send buffer, so it is
/// written without waiting; if it cannot be, the client sees the
/// connection close, which says the same.
fn refuse(stream: &TcpStream) {
    let body = serde_json::json!({ "error": FULL_MESSAGE }).to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(answer.as_bytes());
}

/// The same answer, for a request that arrived on a connection just closed
/// to make room.
fn refused_response() -> Response {
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(serde_json::json!({ "error": FULL_MESSAGE })),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// What every connection of one server shares.
struct Serving {
    router: Router,
    limits: ServerLimits,
    shutdown: CancellationToken,
    protocol: Protocol,
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// The server's name in logs.
    name: String,
    /// Failed TLS handshakes, logged at most once a minute.
    failed_handshakes: std::sync::Mutex<Throttled>,
}

impl Serving {
    /// Logs a failed handshake (a client speaking plain HTTP to a TLS
    /// port, or not trusting howl's certificate): at most once a minute,
    /// as a client that retries would otherwise flood the log.
    fn handshake_failed(&self, peer: Option<std::net::SocketAddr>, why: &str) {
        let count = self
            .failed_handshakes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .note();
        if let Some(count) = count {
            let peer = peer.map_or_else(|| "a client".to_string(), |p| p.to_string());
            tracing::warn!(
                "{}: TLS handshake with {peer} failed: {why} ({count} failed since the last \
                 report; reported at most once a minute)",
                self.name
            );
        }
    }
}

/// Serves one connection: the TLS handshake first, when the server has
/// one, within the time allowed for the first request head (so a client
/// that never finishes it holds its slot no longer than a silent one).
async fn serve_connection(stream: TcpStream, ticket: Ticket, serving: Arc<Serving>) {
    // Answers are small and written at once: no reason to hold them back.
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = &serving.tls else {
        return serve_stream(stream, ticket, &serving).await;
    };
    let peer = stream.peer_addr().ok();
    let mut phase = ticket.watch();
    let handshake =
        tokio::time::timeout(serving.limits.header_read_timeout, acceptor.accept(stream));
    let outcome = tokio::select! {
        outcome = handshake => outcome,
        _ = phase.wait_for(|phase| *phase == Phase::Evicted) => return,
        () = serving.shutdown.cancelled() => return,
    };
    match outcome {
        Ok(Ok(stream)) => serve_stream(stream, ticket, &serving).await,
        Ok(Err(error)) => {
            let mut why = error.to_string();
            if why.contains("InvalidContentType") {
                why.push_str(" (a client speaking plain HTTP to this TLS port?)");
            }
            serving.handshake_failed(peer, &why);
        }
        Err(_) => serving.handshake_failed(peer, "it did not finish in time"),
    }
}

/// Serves requests on one connection until the client closes, a deadline
/// passes, the connection is evicted, or shutdown (after the request in
/// progress).
async fn serve_stream<S>(stream: S, ticket: Ticket, serving: &Serving)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (limits, protocol) = (serving.limits, serving.protocol);
    let mut phase = ticket.watch();
    let ticket = Arc::new(ticket);
    let router = serving.router.clone();
    let served = Arc::new(AtomicUsize::new(0));
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let router = router.clone();
        let ticket = Arc::clone(&ticket);
        let last = served.fetch_add(1, Ordering::Relaxed) + 1 >= limits.max_requests_per_connection;
        async move {
            let Some(_in_request) = ticket.begin_request() else {
                return Ok::<_, Infallible>(refused_response());
            };
            let Ok(mut response) = router.oneshot(request.map(Body::new)).await;
            if last && protocol == Protocol::Http1 {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response)
        }
    });
    let mut connection: std::pin::Pin<Box<dyn Connection>> = match protocol {
        Protocol::Http1 => Box::pin(
            hyper::server::conn::http1::Builder::new()
                .max_header_size(limits.max_header_bytes)
                // The deadlines are kept below, with the phases that also
                // decide which connection makes room.
                .header_read_timeout(None)
                .serve_connection(TokioIo::new(stream), service),
        ),
        Protocol::H2c => Box::pin(
            hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .max_header_list_size(limits.max_header_bytes as u32)
                // Each stream may hold a body up to the limit while it
                // arrives: few streams, so one connection cannot hold
                // hundreds of bodies (hyper's default is 200). Exporters
                // send a handful of requests at once.
                .max_concurrent_streams(H2_MAX_STREAMS)
                .serve_connection(TokioIo::new(stream), service),
        ),
    };
    let mut shutting_down = false;
    loop {
        let deadline = match *phase.borrow_and_update() {
            Phase::Opening { since } => Some(since + limits.header_read_timeout),
            Phase::Idle { since } => Some(since + limits.idle_timeout),
            Phase::Busy => None,
            Phase::Evicted => return,
        };
        tokio::select! {
            _ = connection.as_mut() => return,
            changed = phase.changed() => if changed.is_err() { return },
            () = sleep_until(deadline) => {
                tracing::debug!("closed a connection whose next request did not arrive in time");
                return;
            }
            () = serving.shutdown.cancelled(), if !shutting_down => {
                shutting_down = true;
                if !is_busy(&phase) {
                    return;
                }
                // Finish the request in progress, then close.
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// An HTTP/1 or HTTP/2 connection being served.
trait Connection: std::future::Future<Output = hyper::Result<()>> + Send {
    fn graceful_shutdown(self: std::pin::Pin<&mut Self>);
}

impl<I, S, B> Connection for hyper::server::conn::http1::Connection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send,
    S: hyper::service::HttpService<Incoming, ResBody = B> + Send,
    S::Future: Send,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful_shutdown(self: std::pin::Pin<&mut Self>) {
        hyper::server::conn::http1::Connection::graceful_shutdown(self);
    }
}

impl<I, S, B, E> Connection for hyper::server::conn::http2::Connection<I, S, E>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = B> + Send,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B> + Send,
{
    fn graceful_shutdown(self: std::pin::Pin<&mut Self>) {
        hyper::server::conn::http2::Connection::graceful_shutdown(self);
    }
}

fn is_busy(phase: &watch::Receiver<Phase>) -> bool {
    *phase.borrow() == Phase::Busy
}

/// Waits until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Failed accepts in a row: the pause before the next try, and the log.
struct AcceptFailures {
    pause: Duration,
    log: Throttled,
}

impl Default for AcceptFailures {
    fn default() -> Self {
        Self {
            pause: FIRST_PAUSE,
            log: Throttled::default(),
        }
    }
}

impl AcceptFailures {
    /// Notes an accept that worked: the next failure pauses briefly again.
    fn succeeded(&mut self) {
        self.pause = FIRST_PAUSE;
    }

    /// Notes a failed accept and returns how long to pause: the pending
    /// connection stays queued, and trying again at once would only fail
    /// again (and spin).
    fn failed(&mut self, name: &str, error: &io::Error) -> Duration {
        if let Some(count) = self.log.note() {
            let hint = if matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                ": howl is out of file descriptors; raise its open-file limit (`ulimit -n`, \
                 systemd's `LimitNOFILE`) or lower `connections.max`"
            } else {
                ""
            };
            tracing::error!(
                "{name}: cannot accept connections ({count} failed since the last report): \
                 {error}{hint}; retrying, at most once a second"
            );
        }
        let pause = self.pause;
        self.pause = (self.pause * 2).min(LONGEST_PAUSE);
        pause
    }
}

/// Counts occurrences of a recurring problem and says when to log it: the
/// first time, then at most once per [`LOG_EVERY`].
#[derive(Default)]
struct Throttled {
    last: Option<Instant>,
    count: u64,
}

impl Throttled {
    /// Counts one occurrence; `Some(count since the last report)` when it
    /// is time to log.
    fn note(&mut self) -> Option<u64> {
        self.count += 1;
        let now = Instant::now();
        if self.last.is_some_and(|last| now < last + LOG_EVERY) {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.count))
    }
}

/// Warns when `max_connections` could take more than half of the
/// process's file descriptors: a flood of connections would then leave
/// too few for files, sinks and the other server.
fn warn_if_above_file_limit(name: &str, max_connections: usize) {
    let Some(limit) = open_file_limit() else {
        return;
    };
    if max_connections as u64 > limit / 2 {
        tracing::warn!(
            "{name}: `connections.max` ({max_connections}) is more than half of howl's open-file \
             limit ({limit}): a flood of connections could leave howl without file descriptors; \
             raise the limit (`ulimit -n`, systemd's `LimitNOFILE`) or lower `connections.max`"
        );
    }
}

/// The soft limit on open files, from `/proc/self/limits` (Linux), when it
/// is known and finite.
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_recurring_problem_is_logged_once_a_minute_with_its_count() {
        let mut throttled = Throttled::default();
        assert_eq!(throttled.note(), Some(1));
        assert_eq!(throttled.note(), None);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(throttled.note(), None);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(throttled.note(), Some(3));
    }

    #[tokio::test(start_paused = true)]
    async fn failed_accepts_back_off_to_a_second() {
        let mut failures = AcceptFailures::default();
        let error = io::Error::from_raw_os_error(libc::EMFILE);
        let pauses: Vec<_> = (0..10).map(|_| failures.failed("test", &error)).collect();
        assert_eq!(pauses[0], FIRST_PAUSE);
        assert_eq!(pauses[1], FIRST_PAUSE * 2);
        assert_eq!(pauses[9], LONGEST_PAUSE);
    }

    #[test]
    fn reads_the_open_file_limit() {
        assert!(open_file_limit().is_some_and(|limit| limit > 0));
    }
}
