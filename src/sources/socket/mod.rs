//! The plumbing of sources that listen on sockets (`syslog`, `fluent`,
//! `socket`): TCP with optional TLS, Unix stream sockets, UDP and Unix
//! datagrams. The generic `socket` source itself is in [`source`].
//!
//! [`Listen`] checks a source's `mode`, `address`, `path` and `tls`
//! together while it is built, and binds and serves whichever transport
//! they chose, so every listening source words its option errors alike.
//!
//! A source gives a *decoder* per connection (bytes → events) or one per
//! datagram; this module accepts, reads, and sends. A protocol whose
//! clients wait for an answer (fluent's acks) gives an
//! [`AnsweringDecoder`] instead: each batch it decodes may carry the bytes
//! to write back once every event of it is delivered; the answers go out
//! in order, and a batch that is not delivered closes the connection
//! unanswered, so the client sends it again. Backpressure is
//! reading: a connection whose events wait for room in the pipeline is not
//! read, so the sender's socket buffer fills and TCP slows it down (a
//! datagram socket drops in the kernel instead, as UDP does everywhere).
//! Connections are bounded (`connection_limit`; beyond it, new ones wait in
//! the kernel's backlog), and so is what each holds (its decoder bounds a
//! message). Bad input never ends more than its own connection.

pub mod source;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::components::BuildContext;
use crate::components::source::{SourceContext, SourceSender};
use crate::diagnostic::BuildError;
use crate::event::{BatchStatus, Event, notify_batch};
use crate::internal_events::{ErrorType, Stage};
use crate::options::TlsConfig;

/// How a listening source is reached (its `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP, with optional TLS.
    Tcp,
    /// UDP: one datagram at a time.
    Udp,
    /// A Unix stream socket.
    UnixStream,
    /// A Unix datagram socket.
    UnixDatagram,
}

impl Transport {
    /// Whether messages come in datagrams (else in a byte stream).
    pub fn is_datagram(self) -> bool {
        matches!(self, Self::Udp | Self::UnixDatagram)
    }

    fn is_network(self) -> bool {
        matches!(self, Self::Tcp | Self::Udp)
    }
}

/// The default `connection_limit` of the listening sources: enough for a
/// fleet of shippers, few enough to keep well under the open-file limit.
pub fn default_connection_limit() -> std::num::NonZeroUsize {
    const LIMIT: std::num::NonZeroUsize = std::num::NonZeroUsize::new(512).unwrap();
    LIMIT
}

/// The options that say where a listening source listens, as written.
pub struct ListenOptions<'a> {
    /// The transport `mode` chose.
    pub transport: Transport,
    /// The `mode` as written, for messages.
    pub mode: &'a str,
    /// `address`, for the network modes.
    pub address: Option<SocketAddr>,
    /// `path`, for the Unix modes.
    pub path: Option<&'a Path>,
    /// `tls`, for `tcp` only.
    pub tls: Option<&'a TlsConfig>,
    /// The most stream connections served at once.
    pub connection_limit: usize,
}

/// Where a source listens, checked against its mode (see [`Listen::new`]).
enum Endpoint {
    Address(SocketAddr),
    Path(PathBuf),
}

/// A listening source's transport and endpoint, checked while it is built
/// and bound when it runs.
pub struct Listen {
    transport: Transport,
    endpoint: Endpoint,
    tls: Option<tokio_rustls::TlsAcceptor>,
    connection_limit: usize,
}

impl Listen {
    /// Checks that the options fit together: `address` for `tcp` and
    /// `udp`, `path` for the Unix modes, `tls` only for `tcp`; each error
    /// names the option to change (`kind` names the source in an example
    /// socket path).
    pub fn new(
        options: ListenOptions<'_>,
        kind: &str,
        cx: &BuildContext,
    ) -> Result<Self, BuildError> {
        let mode = options.mode;
        let endpoint = match (
            options.transport.is_network(),
            options.address,
            options.path,
        ) {
            (true, Some(address), None) => Endpoint::Address(address),
            (false, None, Some(path)) => Endpoint::Path(path.to_path_buf()),
            (true, _, Some(_)) => {
                return Err(BuildError::new(format!(
                    "`path` is for the unix modes; mode `{mode}` listens on `address`"
                ))
                .for_option("path"));
            }
            (true, None, None) => {
                return Err(BuildError::new(format!(
                    "mode `{mode}` needs `address`, e.g. `address = \"0.0.0.0:1514\"`"
                ))
                .for_option("mode"));
            }
            (false, Some(_), _) => {
                return Err(BuildError::new(format!(
                    "`address` is for tcp and udp; mode `{mode}` listens on `path`"
                ))
                .for_option("address"));
            }
            (false, None, None) => {
                return Err(BuildError::new(format!(
                    "mode `{mode}` needs `path`, e.g. `path = \"/run/howl/{kind}.sock\"`"
                ))
                .for_option("mode"));
            }
        };
        let tls = match (options.tls, options.transport) {
            (Some(tls), Transport::Tcp) => Some(tls.acceptor(|path| cx.resolve_path(path))?),
            (Some(_), _) => {
                return Err(
                    BuildError::new(format!("`tls` is for mode `tcp`, not `{mode}`"))
                        .for_option("tls"),
                );
            }
            (None, _) => None,
        };
        Ok(Self {
            transport: options.transport,
            endpoint,
            tls,
            connection_limit: options.connection_limit,
        })
    }

    /// Binds and serves until shutdown: each stream connection read by a
    /// decoder from `stream`, each datagram turned into events by
    /// `datagram`. `what` says what is listened for, in the log.
    pub async fn serve<D: StreamDecoder>(
        self,
        cx: SourceContext,
        what: &str,
        stream: impl Fn(Peer) -> D,
        datagram: impl FnMut(&[u8], Peer, &mut Vec<Event>),
    ) -> anyhow::Result<()> {
        let at = match &self.endpoint {
            Endpoint::Address(address) => address.to_string(),
            Endpoint::Path(path) => path.display().to_string(),
        };
        enum Bound {
            Stream(StreamListener),
            Datagram(DatagramSocket),
        }
        let bound = match (self.transport, self.endpoint) {
            (Transport::Tcp, Endpoint::Address(address)) => {
                Bound::Stream(StreamListener::tcp(address, self.tls).await?)
            }
            (Transport::UnixStream, Endpoint::Path(path)) => {
                Bound::Stream(StreamListener::unix(&path)?)
            }
            (Transport::Udp, Endpoint::Address(address)) => {
                Bound::Datagram(DatagramSocket::udp(address).await?)
            }
            (Transport::UnixDatagram, Endpoint::Path(path)) => {
                Bound::Datagram(DatagramSocket::unix(&path)?)
            }
            _ => anyhow::bail!("the mode and its endpoint do not match"),
        };
        tracing::info!(component = %cx.key, at = %at, transport = ?self.transport, "listening for {what}");
        cx.ready.listening();
        match bound {
            Bound::Stream(listener) => {
                listener
                    .serve(cx.out, self.connection_limit, cx.shutdown, stream)
                    .await;
            }
            Bound::Datagram(socket) => socket.serve(cx.out, cx.shutdown, datagram).await,
        }
        Ok(())
    }
}

/// Who is at the other end of a connection or datagram.
#[derive(Debug, Clone, Copy)]
pub enum Peer {
    /// A TCP or UDP peer.
    Ip(SocketAddr),
    /// A local process on a Unix socket.
    Local,
}

/// Turns one connection's bytes into events: called after every read with
/// everything not yet consumed in `buf` (`eof` at the end), it takes what
/// it can and pushes events. It must bound what it leaves in `buf`.
pub trait StreamDecoder: Send + 'static {
    /// Takes complete messages out of `buf`.
    fn decode(&mut self, buf: &mut BytesMut, eof: bool, events: &mut Vec<Event>);
}

/// Events decoded from a connection, and what to write back once they
/// are all delivered.
#[derive(Debug, Default)]
pub struct Batch {
    /// The events (possibly none: the answer is then written at once).
    pub events: Vec<Event>,
    /// The bytes to write back after delivery; `None`: nothing, and the
    /// batch is sent without waiting for its delivery.
    pub answer: Option<Bytes>,
}

/// Turns one connection's bytes into batches, for protocols that answer
/// (see [`Batch`]). Like [`StreamDecoder`], it must bound what it leaves
/// in `buf`; an `Err` (input it cannot find its way back from) ends the
/// connection after the batches already pushed, and is counted.
pub trait AnsweringDecoder: Send + 'static {
    /// Takes complete messages out of `buf`.
    fn decode(
        &mut self,
        buf: &mut BytesMut,
        eof: bool,
        batches: &mut Vec<Batch>,
    ) -> Result<(), String>;
}

/// A [`StreamDecoder`] as an [`AnsweringDecoder`] that never answers.
struct Unanswered<D>(D);

impl<D: StreamDecoder> AnsweringDecoder for Unanswered<D> {
    fn decode(
        &mut self,
        buf: &mut BytesMut,
        eof: bool,
        batches: &mut Vec<Batch>,
    ) -> Result<(), String> {
        let mut events = Vec::new();
        self.0.decode(buf, eof, &mut events);
        if !events.is_empty() {
            batches.push(Batch {
                events,
                answer: None,
            });
        }
        Ok(())
    }
}

/// How long answered batches wait for their delivery.
#[derive(Clone)]
pub struct AnswerWait {
    /// The longest wait for one batch; beyond it the connection is closed
    /// unanswered.
    pub timeout: Duration,
    /// Cancelled when howl stops waiting for deliveries at shutdown.
    pub shutdown_limit: CancellationToken,
}

/// How long a TLS handshake may take: a client that never finishes it must
/// not hold a connection slot.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// What one read asks for.
const READ_BYTES: usize = 64 * 1024;

/// A stream listener, bound at start.
pub enum StreamListener {
    /// TCP, with TLS when an acceptor is given.
    Tcp(tokio::net::TcpListener, Option<tokio_rustls::TlsAcceptor>),
    /// A Unix stream socket (its file is removed when the source stops).
    Unix(tokio::net::UnixListener, PathBuf),
}

impl StreamListener {
    /// Binds a TCP address.
    pub async fn tcp(
        address: SocketAddr,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {address}: {e}"))?;
        Ok(Self::Tcp(listener, tls))
    }

    /// Binds a Unix stream socket at `path`, replacing a stale socket file
    /// left by a process that died (never any other kind of file).
    pub fn unix(path: &Path) -> anyhow::Result<Self> {
        remove_stale_socket(path)?;
        let listener = tokio::net::UnixListener::bind(path)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", path.display()))?;
        Ok(Self::Unix(listener, path.to_path_buf()))
    }

    /// Accepts connections until `shutdown`, each read by a decoder from
    /// `decoder`, at most `limit` at once; returns once every connection
    /// has sent what it read.
    pub async fn serve<D: StreamDecoder>(
        self,
        out: SourceSender,
        limit: usize,
        shutdown: CancellationToken,
        decoder: impl Fn(Peer) -> D,
    ) {
        let wait = AnswerWait {
            timeout: Duration::MAX,
            shutdown_limit: CancellationToken::new(),
        };
        self.serve_answering(out, limit, shutdown, wait, |peer| Unanswered(decoder(peer)))
            .await;
    }

    /// [`serve`](Self::serve) for decoders that answer: as it, and each
    /// answered batch waits (`wait`) for its delivery before its answer is
    /// written and the connection read on.
    pub async fn serve_answering<D: AnsweringDecoder>(
        self,
        out: SourceSender,
        limit: usize,
        shutdown: CancellationToken,
        wait: AnswerWait,
        decoder: impl Fn(Peer) -> D,
    ) {
        let slots = Arc::new(Semaphore::new(limit));
        let idle = Idle::default();
        let mut connections = JoinSet::new();
        loop {
            let accepted = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                accepted = self.accept() => accepted,
            };
            // At the limit, the connection that has waited longest for
            // its next message makes room (as the HTTP sources do), so
            // clients that connect and send nothing cannot lock others
            // out. Only when every connection is busy does this one wait.
            if slots.available_permits() == 0 {
                idle.evict_longest();
            }
            let slot = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                slot = Arc::clone(&slots).acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
            };
            while connections.try_join_next().is_some() {}
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, mostly: wait, do not spin.
                    out.metrics().warn_limited(
                        "accept_failed",
                        &format_args!("cannot accept a connection: {error}"),
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (out, mut decoder) = (out.clone(), decoder(peer));
            let (shutdown, wait) = (shutdown.clone(), wait.clone());
            let idle = idle.register();
            let tls = match &self {
                Self::Tcp(_, tls) => tls.clone(),
                Self::Unix(..) => None,
            };
            connections.spawn(async move {
                let _slot = slot;
                match (stream, tls) {
                    (Accepted::Tcp(stream), Some(tls)) => {
                        let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream));
                        match handshake.await {
                            Ok(Ok(stream)) => {
                                read(stream, &mut decoder, out, shutdown, wait, idle).await
                            }
                            Ok(Err(error)) => out.metrics().warn_limited(
                                "tls_handshake_failed",
                                &format_args!("TLS handshake with {peer:?} failed: {error}"),
                            ),
                            Err(_) => out.metrics().warn_limited(
                                "tls_handshake_failed",
                                &format_args!("TLS handshake with {peer:?} timed out"),
                            ),
                        }
                    }
                    (Accepted::Tcp(stream), None) => {
                        read(stream, &mut decoder, out, shutdown, wait, idle).await
                    }
                    (Accepted::Unix(stream), _) => {
                        read(stream, &mut decoder, out, shutdown, wait, idle).await
                    }
                }
            });
        }
        drop(out);
        while connections.join_next().await.is_some() {}
        if let Self::Unix(_, path) = &self {
            let _ = std::fs::remove_file(path);
        }
    }

    async fn accept(&self) -> std::io::Result<(Accepted, Peer)> {
        match self {
            Self::Tcp(listener, _) => {
                let (stream, peer) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                Ok((Accepted::Tcp(stream), Peer::Ip(peer)))
            }
            Self::Unix(listener, _) => {
                let (stream, _) = listener.accept().await?;
                Ok((Accepted::Unix(stream), Peer::Local))
            }
        }
    }
}

/// The stream connections waiting for their next message, and since when:
/// the one waiting longest is closed when a new one needs its slot.
#[derive(Clone, Default)]
struct Idle {
    connections: Arc<std::sync::Mutex<IdleState>>,
}

#[derive(Default)]
struct IdleState {
    next_id: u64,
    /// Per connection: since when it waits between messages (`None` while
    /// it is in the middle of one, or busy), and how to close it.
    entries: std::collections::HashMap<u64, (Option<tokio::time::Instant>, CancellationToken)>,
}

impl Idle {
    fn lock(&self) -> std::sync::MutexGuard<'_, IdleState> {
        self.connections.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn register(&self) -> IdleTicket {
        let mut state = self.lock();
        state.next_id += 1;
        let id = state.next_id;
        let evict = CancellationToken::new();
        state.entries.insert(id, (None, evict.clone()));
        IdleTicket {
            idle: self.clone(),
            id,
            evict,
        }
    }

    /// Closes the connection that has waited longest between messages, if
    /// any waits.
    fn evict_longest(&self) {
        let state = self.lock();
        let longest = state
            .entries
            .values()
            .filter_map(|(since, evict)| since.map(|since| (since, evict)))
            .min_by_key(|(since, _)| *since);
        if let Some((_, evict)) = longest {
            evict.cancel();
        }
    }
}

/// One connection's place in [`Idle`]; leaves it when dropped.
struct IdleTicket {
    idle: Idle,
    id: u64,
    evict: CancellationToken,
}

impl IdleTicket {
    fn waiting(&self, between_messages: bool) {
        if let Some(entry) = self.idle.lock().entries.get_mut(&self.id) {
            entry.0 = between_messages.then(tokio::time::Instant::now);
        }
    }

    async fn evicted(&self) {
        self.evict.cancelled().await;
    }
}

impl Drop for IdleTicket {
    fn drop(&mut self) {
        self.idle.lock().entries.remove(&self.id);
    }
}

enum Accepted {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// Reads one connection to its end (or shutdown), sending each read's
/// events before reading on, and writing the answers of answered batches
/// once they are delivered.
async fn read<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    decoder: &mut impl AnsweringDecoder,
    out: SourceSender,
    shutdown: CancellationToken,
    wait: AnswerWait,
    idle: IdleTicket,
) {
    let metrics = Arc::clone(out.metrics());
    let mut out = Some(out);
    let mut buf = BytesMut::with_capacity(READ_BYTES);
    loop {
        if buf.capacity() - buf.len() < READ_BYTES / 4 {
            buf.reserve(READ_BYTES);
        }
        // Between messages, the connection may be evicted to make room.
        idle.waiting(buf.is_empty());
        let read = tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            () = idle.evicted() => return,
            read = stream.read_buf(&mut buf) => read,
        };
        idle.waiting(false);
        let (bytes, eof) = match read {
            Ok(0) => (0, true),
            Ok(n) => (n, false),
            Err(error) => {
                metrics.warn_limited(
                    "connection_failed",
                    &format_args!("a connection failed: {error}"),
                );
                (0, true)
            }
        };
        let mut batches = Vec::new();
        let decoded = decoder.decode(&mut buf, eof, &mut batches);
        let events = batches.iter().map(|batch| batch.events.len()).sum();
        metrics.received(events, bytes);
        for Batch { mut events, answer } in batches {
            let Some(sender) = out.as_mut() else {
                return;
            };
            let Some(answer) = answer else {
                if !events.is_empty() {
                    sender.send(events).await;
                }
                continue;
            };
            if !events.is_empty() {
                let status = notify_batch(&mut events);
                sender.send(events).await;
                if let Err(why) = delivered(status, &wait, &shutdown, &mut out).await {
                    metrics.warn_limited(
                        "answer_withheld",
                        &format_args!("{why}: the connection is closed unanswered, so the client sends them again"),
                    );
                    return;
                }
            }
            let written = async {
                stream.write_all(&answer).await?;
                stream.flush().await
            };
            if let Err(error) = written.await {
                metrics.warn_limited(
                    "connection_failed",
                    &format_args!("cannot answer a client: {error}"),
                );
                return;
            }
        }
        if let Err(why) = decoded {
            metrics.error(
                ErrorType::DecodeFailed,
                Stage::Receiving,
                &format_args!("{why}; the connection is closed"),
            );
            return;
        }
        if eof {
            return;
        }
    }
}

/// Waits for a batch's delivery. At shutdown it lets go of the output (so
/// the pipeline can drain and deliver) and goes on waiting, until the
/// shutdown limit.
async fn delivered(
    status: crate::event::BatchStatusReceiver,
    wait: &AnswerWait,
    shutdown: &CancellationToken,
    out: &mut Option<SourceSender>,
) -> Result<(), &'static str> {
    let deadline = tokio::time::sleep(wait.timeout.min(Duration::from_secs(86_400 * 365)));
    tokio::pin!(deadline, status);
    loop {
        let status = tokio::select! {
            biased;
            status = &mut status => status.unwrap_or(BatchStatus::Errored),
            () = shutdown.cancelled(), if out.is_some() => {
                *out = None;
                continue;
            }
            () = &mut deadline => return Err("events were not delivered in time"),
            () = wait.shutdown_limit.cancelled() => {
                return Err("howl stopped before events were delivered");
            }
        };
        return match status {
            BatchStatus::Delivered => Ok(()),
            BatchStatus::Errored => Err("a sink could not deliver events"),
            BatchStatus::Rejected => Err("a sink's destination refused events"),
        };
    }
}

/// A datagram socket, bound at start.
pub enum DatagramSocket {
    /// UDP.
    Udp(tokio::net::UdpSocket),
    /// A Unix datagram socket (its file is removed when the source stops).
    Unix(tokio::net::UnixDatagram, PathBuf),
}

/// The largest datagram kept (a UDP payload is at most 65,507 bytes; a
/// Unix datagram may be larger, and is then cut, and counted as a cut
/// line).
const DATAGRAM_BYTES: usize = 65_536;
/// Datagrams already waiting that are read into one batch.
const DATAGRAMS_PER_BATCH: usize = 256;

impl DatagramSocket {
    /// Binds a UDP address.
    pub async fn udp(address: SocketAddr) -> anyhow::Result<Self> {
        let socket = tokio::net::UdpSocket::bind(address)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {address} (UDP): {e}"))?;
        Ok(Self::Udp(socket))
    }

    /// Binds a Unix datagram socket at `path` (see [`StreamListener::unix`]).
    pub fn unix(path: &Path) -> anyhow::Result<Self> {
        remove_stale_socket(path)?;
        let socket = tokio::net::UnixDatagram::bind(path)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", path.display()))?;
        Ok(Self::Unix(socket, path.to_path_buf()))
    }

    /// Receives datagrams until `shutdown`; `decode` turns each into
    /// events.
    pub async fn serve(
        self,
        mut out: SourceSender,
        shutdown: CancellationToken,
        mut decode: impl FnMut(&[u8], Peer, &mut Vec<Event>),
    ) {
        // One byte more than is kept: the kernel cuts a datagram longer
        // than the buffer without a word, so a full buffer is how a cut
        // one shows.
        let mut buf = vec![0u8; DATAGRAM_BYTES + 1];
        loop {
            let first = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                first = self.recv(&mut buf) => first,
            };
            let mut events = Vec::new();
            let mut bytes = 0;
            let mut next = first;
            for _ in 0..DATAGRAMS_PER_BATCH {
                match next {
                    Ok((len, peer)) => {
                        bytes += len;
                        let kept = if len > DATAGRAM_BYTES {
                            out.metrics().truncated(1, DATAGRAM_BYTES);
                            crate::sources::lines::utf8_boundary(&buf[..DATAGRAM_BYTES])
                        } else {
                            len
                        };
                        decode(&buf[..kept], peer, &mut events);
                    }
                    Err(error) => {
                        out.metrics().error(
                            ErrorType::ReadFailed,
                            Stage::Receiving,
                            &format_args!("cannot receive a datagram: {error}"),
                        );
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        break;
                    }
                }
                next = match self.try_recv(&mut buf) {
                    Some(next) => next,
                    None => break,
                };
            }
            out.metrics().received(events.len(), bytes);
            if !events.is_empty() {
                out.send(events).await;
            }
        }
        if let Self::Unix(_, path) = &self {
            let _ = std::fs::remove_file(path);
        }
    }

    async fn recv(&self, buf: &mut [u8]) -> std::io::Result<(usize, Peer)> {
        match self {
            Self::Udp(socket) => {
                let (len, peer) = socket.recv_from(buf).await?;
                Ok((len, Peer::Ip(peer)))
            }
            Self::Unix(socket, _) => Ok((socket.recv(buf).await?, Peer::Local)),
        }
    }

    /// A datagram already waiting, without waiting for one.
    fn try_recv(&self, buf: &mut [u8]) -> Option<std::io::Result<(usize, Peer)>> {
        let got = match self {
            Self::Udp(socket) => socket
                .try_recv_from(buf)
                .map(|(len, peer)| (len, Peer::Ip(peer))),
            Self::Unix(socket, _) => socket.try_recv(buf).map(|len| (len, Peer::Local)),
        };
        match got {
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => None,
            got => Some(got),
        }
    }
}

/// Removes a socket file a dead process left, so binding works again;
/// refuses to touch a socket a live process listens on, or a file of any
/// other kind.
fn remove_stale_socket(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            // A socket someone still listens on is not stale: taking it
            // over would cut that process off from its senders.
            let stream = stream_listened(path).map_err(|e| {
                anyhow::anyhow!("cannot check whether {} is in use: {e}", path.display())
            })?;
            let live = stream
                || std::os::unix::net::UnixDatagram::unbound()
                    .and_then(|socket| socket.connect(path))
                    .is_ok();
            if live {
                anyhow::bail!(
                    "{} is in use by another process; howl will not take it over",
                    path.display()
                );
            }
            std::fs::remove_file(path)
                .map_err(|e| anyhow::anyhow!("cannot replace {}: {e}", path.display()))
        }
        Ok(_) => anyhow::bail!(
            "{} exists and is not a socket; howl will not replace it",
            path.display()
        ),
        Err(_) => Ok(()),
    }
}

/// Whether a process listens on the stream socket at `path`: a connect
/// that does not wait succeeds, or finds the backlog full (`EAGAIN`: a
/// process listens, and does not keep up). Why not wait: a blocking connect
/// waits for room for as long as that process does not accept, which holds
/// a runtime thread and keeps the source from ever starting.
fn stream_listened(path: &Path) -> std::io::Result<bool> {
    use socket2::{Domain, SockAddr, Socket, Type};
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    Ok(match socket.connect(&SockAddr::unix(path)?) {
        Ok(()) => true,
        Err(error) => {
            error.kind() == std::io::ErrorKind::WouldBlock
                || error.raw_os_error() == Some(libc::EINPROGRESS)
        }
    })
}

#[cfg(test)]
mod stale_socket_tests {
    use super::remove_stale_socket;

    #[test]
    fn only_a_dead_socket_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let live = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let error = remove_stale_socket(&path).unwrap_err().to_string();
        assert!(error.contains("in use by another process"), "{error}");
        assert!(path.exists());
        drop(live);
        remove_stale_socket(&path).unwrap();
        assert!(!path.exists(), "a dead socket is removed");

        let live = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        assert!(
            remove_stale_socket(&path).is_err(),
            "a live datagram socket too"
        );
        drop(live);
        remove_stale_socket(&path).unwrap();

        std::fs::write(&path, "not a socket").unwrap();
        let error = remove_stale_socket(&path).unwrap_err().to_string();
        assert!(error.contains("is not a socket"), "{error}");
    }

    /// A process that listens but does not accept (hung, or just busy)
    /// fills its backlog; a connect that waits for room then waits for as
    /// long as that process does: the source never binds, a runtime thread
    /// is stuck, and `/health` says `starting` for ever. The socket is in
    /// use: say so at once.
    #[test]
    fn a_socket_whose_backlog_is_full_is_in_use_at_once() {
        use socket2::{Domain, SockAddr, Socket, Type};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let busy = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
        busy.bind(&SockAddr::unix(&path).unwrap()).unwrap();
        busy.listen(0).unwrap();
        // A backlog of 0 holds one connection that nobody accepts.
        let _waiting = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let checked = path.clone();
        std::thread::spawn(move || {
            let _ = tx.send(remove_stale_socket(&checked).map_err(|e| e.to_string()));
        });
        let outcome = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("the check waited for the busy listener");
        let error = outcome.expect_err("a listened socket is not stale");
        assert!(error.contains("in use by another process"), "{error}");
        assert!(path.exists());
    }
}
