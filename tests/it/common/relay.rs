//! A loopback TCP relay whose answers can be held back: what a client sends
//! reaches the server at once, what the server sends back waits while the
//! relay is held (a congested or half-broken link, where a request is
//! carried out but its reply arrives too late for the client).

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running relay to one server (stops with the test's runtime).
pub struct Relay {
    /// The port clients connect to.
    pub port: u16,
    held: Arc<watch::Sender<bool>>,
}

impl Relay {
    /// Relays every connection to `127.0.0.1:upstream`.
    pub async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let held = Arc::new(watch::channel(false).0);
        let holding = Arc::clone(&held);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pipe(client_read, server_write, None));
                tokio::spawn(pipe(server_read, client_write, Some(holding.subscribe())));
            }
        });
        Self { port, held }
    }

    /// Holds the server's answers back (`true`) or lets them through,
    /// those held first.
    pub fn hold(&self, held: bool) {
        self.held.send_replace(held);
    }
}

/// Copies `from` to `to`; while `held` says so, what was read waits.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut held: Option<watch::Receiver<bool>>,
) {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if let Some(held) = &mut held
            && held.wait_for(|held| !*held).await.is_err()
        {
            return;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
