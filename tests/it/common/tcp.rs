//! Raw TCP clients, for tests of how howl's servers treat clients that an
//! HTTP library would never be: partial request heads, stalled bodies,
//! silent connections. Every read is bounded.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The start of a request head that never ends: the classic slowloris.
pub const PARTIAL_HEAD: &[u8] = b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: ";

/// `127.0.0.1:PORT` of an `http://127.0.0.1:PORT/...` URL.
pub fn authority(url: &str) -> String {
    url.trim_start_matches("http://")
        .split('/')
        .next()
        .expect("a URL")
        .to_string()
}

/// Connects to `address`. A refused connection is tried again for up to
/// 10 s: `/health` waits for sources to bind at start, but a source that a
/// reload adds binds just after the reload answers.
pub async fn connect(address: &str) -> TcpStream {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match TcpStream::connect(address).await {
            Ok(stream) => return stream,
            Err(error)
                if error.kind() == std::io::ErrorKind::ConnectionRefused
                    && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(error) => panic!("connect to {address}: {error}"),
        }
    }
}

/// Opens a connection to `address` ([`connect`]) and writes `bytes` on it.
pub async fn send(address: &str, bytes: &[u8]) -> TcpStream {
    let mut stream = connect(address).await;
    stream.write_all(bytes).await.expect("write");
    stream
}

/// Opens `count` connections that each send `bytes` and then nothing.
pub async fn stalled(address: &str, count: usize, bytes: &[u8]) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(count);
    for _ in 0..count {
        streams.push(send(address, bytes).await);
    }
    streams
}

/// The status code of the answer read from `stream` within `limit` (0 when
/// the connection closed, or stayed silent, without one). Reads one chunk:
/// howl writes an answer's head in one piece.
pub async fn read_status(stream: &mut TcpStream, limit: Duration) -> u16 {
    let mut answer = vec![0; 1024];
    let read = tokio::time::timeout(limit, stream.read(&mut answer))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    String::from_utf8_lossy(&answer[..read])
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// Sends `request` on a new connection and returns the status answered
/// within `limit` (see [`read_status`]).
pub async fn status(address: &str, request: &[u8], limit: Duration) -> u16 {
    let mut stream = send(address, request).await;
    read_status(&mut stream, limit).await
}

/// What a server sent on a connection before closing it, and when.
pub struct Closed {
    /// How long after the call the connection was closed.
    pub after: Duration,
    /// Everything received meanwhile.
    pub received: String,
}

/// Reads `stream` until the server closes it, or `None` if it was still
/// open after `limit`.
pub async fn until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Closed> {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = vec![0; 4096];
    loop {
        let left = limit.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => {
                return Some(Closed {
                    after: started.elapsed(),
                    received: String::from_utf8_lossy(&received).into_owned(),
                });
            }
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
        }
    }
}
