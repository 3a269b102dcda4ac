//! howl's two HTTP servers (an `http_server` source and the API) against
//! slow and abusive clients: partial heads by the hundred ("slowloris"),
//! silent and idle connections, more connections than allowed, and a
//! process out of file descriptors. Both run the same server loop
//! (`http::server`), with the same `connections.*` options.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::common::tcp::{self, PARTIAL_HEAD};
use crate::common::{Running, cpu_seconds, free_port, wait_for, write};

/// A running howl with the API and an `http_server` source, and their
/// addresses. Bind every field: one left to `..` is dropped at once (the
/// directory deleted, the process killed).
struct Setup {
    _dir: tempfile::TempDir,
    howl: Running,
    source: String,
    api: String,
}

/// Starts howl with the API and an `http_server` source (into a
/// `blackhole`), whose tables end with `api_extra` and `source_extra`; its
/// open-file limit lowered to `file_limit` when set.
async fn start(api_extra: &str, source_extra: &str, file_limit: Option<u32>) -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let (api, http) = (free_port(), free_port());
    let config = write(
        dir.path(),
        "topology.toml",
        &format!(
            "[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n{api_extra}\n\
             [sources.in]\ntype = \"http_server\"\naddress = \"127.0.0.1:{http}\"\n{source_extra}\n\
             [sinks.out]\ntype = \"blackhole\"\ninputs = [\"in\"]\n"
        ),
    );
    let howl = match file_limit {
        Some(limit) => Running::start_with_file_limit(dir.path(), &config, api, limit).await,
        None => Running::start(dir.path(), &config, api, &[]).await,
    };
    // The API answers before every source listens.
    let source = format!("127.0.0.1:{http}");
    wait_for_listener(&source).await;
    Setup {
        _dir: dir,
        howl,
        source,
        api: format!("127.0.0.1:{api}"),
    }
}

async fn wait_for_listener(address: &str) {
    for _ in 0..250 {
        if TcpStream::connect(address).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("nothing listens at {address}");
}

/// A POST of one line to the source, whole.
const POST: &str = "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 6\r\n\r\nhello\n";
/// A GET of the API's `/health`.
const HEALTH: &str = "GET /health HTTP/1.1\r\nhost: x\r\n\r\n";

/// A client that gives up after 5 s (howl's own, with a timeout).
fn client() -> reqwest::Client {
    // Installs the TLS provider reqwest needs.
    let _ = crate::common::client();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

#[tokio::test]
async fn a_slowloris_flood_leaves_health_and_posts_answering() {
    // 400 partial heads at a howl allowed 256 open files: without a limit
    // on connections, accepting fails with "Too many open files" and
    // neither server answers any more.
    let Setup {
        _dir,
        mut howl,
        source,
        api,
    } = start("connections.max = 40", "connections.max = 100", Some(256)).await;
    let started = Instant::now();
    let _at_source = tcp::stalled(&source, 300, PARTIAL_HEAD).await;
    let _at_api = tcp::stalled(&api, 100, PARTIAL_HEAD).await;

    let client = client();
    let health = client
        .get(format!("http://{api}/health"))
        .send()
        .await
        .expect("/health answers during the flood");
    assert_eq!(health.status(), 200);
    let metrics = client
        .get(format!("http://{api}/metrics"))
        .send()
        .await
        .expect("/metrics answers during the flood");
    assert_eq!(metrics.status(), 200);
    let post = client
        .post(format!("http://{source}/"))
        .body("hello\n")
        .send()
        .await
        .expect("a POST gets through during the flood");
    assert_eq!(post.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let stderr = howl.stderr();
    assert!(!stderr.contains("Too many open files"), "{stderr}");
    assert!(
        stderr.contains("sources.in: `connections.max` (100) reached: closed")
            && stderr.contains("[api]: `connections.max` (40) reached: closed"),
        "the evictions are reported: {stderr}"
    );

    // Heads that never end hold up no shutdown.
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || howl.terminate(Duration::from_secs(30)))
        .await
        .expect("terminate");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown waited {:?} for stalled heads",
        started.elapsed()
    );
}

#[tokio::test]
async fn both_servers_close_stalled_silent_and_idle_connections_on_time() {
    let limits = "connections.header_read_timeout_secs = 1\n\
                  connections.idle_timeout_secs = 2\n\
                  connections.max_requests_per_connection = 2";
    let Setup {
        _dir,
        howl: _howl,
        source,
        api,
    } = start(limits, limits, None).await;
    // Over the default `max_header_bytes` (16 KiB).
    let big_head = format!(
        "GET /health HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(17_000)
    );
    for (address, request) in [(&source, POST), (&api, HEALTH)] {
        let mut partial = tcp::send(address, PARTIAL_HEAD).await;
        let mut silent = TcpStream::connect(address).await.expect("connect");
        let mut kept = tcp::send(address, request.as_bytes()).await;
        assert_eq!(
            tcp::read_status(&mut kept, Duration::from_secs(5)).await,
            200
        );
        let limit = Duration::from_secs(6);
        let (partial, silent, kept) = tokio::join!(
            tcp::until_closed(&mut partial, limit),
            tcp::until_closed(&mut silent, limit),
            tcp::until_closed(&mut kept, limit),
        );
        let after = |closed: Option<tcp::Closed>, what: &str| {
            closed
                .unwrap_or_else(|| panic!("{address}: a {what} connection stayed open"))
                .after
        };
        let (partial, silent, kept) = (
            after(partial, "partial-head"),
            after(silent, "silent"),
            after(kept, "kept-alive"),
        );
        let header_timeout = Duration::from_millis(800)..Duration::from_secs(4);
        assert!(header_timeout.contains(&partial), "{address}: {partial:?}");
        assert!(header_timeout.contains(&silent), "{address}: {silent:?}");
        assert!(
            (Duration::from_millis(1800)..Duration::from_secs(5)).contains(&kept),
            "{address}: idle for {kept:?}, not the header timeout"
        );

        // Two requests on one connection: the second answer closes it.
        let mut twice = tcp::send(address, format!("{request}{request}").as_bytes()).await;
        let closed = tcp::until_closed(&mut twice, Duration::from_secs(1))
            .await
            .unwrap_or_else(|| panic!("{address}: not closed after its second request"));
        assert_eq!(
            closed.received.matches(" 200 OK").count(),
            2,
            "{}",
            closed.received
        );
        assert!(
            closed
                .received
                .to_ascii_lowercase()
                .contains("connection: close"),
            "{}",
            closed.received
        );

        assert_eq!(
            tcp::status(address, big_head.as_bytes(), Duration::from_secs(5)).await,
            431,
            "{address}: a head over max_header_bytes"
        );
        assert_eq!(
            tcp::status(address, request.as_bytes(), Duration::from_secs(5)).await,
            200
        );
    }
}

#[tokio::test]
async fn beyond_the_limit_connections_are_refused_while_the_open_ones_still_work() {
    let Setup {
        _dir,
        howl,
        source,
        api: _,
    } = start("", "connections.max = 2", None).await;
    let head = "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 6\r\n\r\n";
    let limit = Duration::from_secs(5);
    // Two requests whose bodies are still on their way: both connections
    // are handling a request, so neither may be closed to make room.
    let mut first = tcp::send(&source, format!("{head}hel").as_bytes()).await;
    let mut second = tcp::send(&source, format!("{head}hel").as_bytes()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut third = TcpStream::connect(&source).await.expect("connect");
    let refused = tcp::until_closed(&mut third, limit)
        .await
        .expect("a connection beyond the limit is closed at once");
    assert!(
        refused.received.starts_with("HTTP/1.1 503")
            && refused.received.contains("retry-after: 1")
            && refused.received.contains("too many connections"),
        "{}",
        refused.received
    );
    assert!(
        refused.after < Duration::from_secs(1),
        "{:?}",
        refused.after
    );

    first.write_all(b"lo\n").await.expect("write");
    assert_eq!(tcp::read_status(&mut first, limit).await, 200);
    // `first` now waits for its next request: a new connection takes its
    // place, while `second` is left to finish.
    let mut fourth = tcp::send(&source, POST.as_bytes()).await;
    assert_eq!(tcp::read_status(&mut fourth, limit).await, 200);
    assert!(
        tcp::until_closed(&mut first, limit).await.is_some(),
        "the idle connection made room"
    );
    second.write_all(b"lo\n").await.expect("write");
    assert_eq!(tcp::read_status(&mut second, limit).await, 200);

    let stderr = howl.stderr();
    assert!(
        stderr.contains("every connection handling a request: refused 1 new connection(s) (503"),
        "{stderr}"
    );
}

#[tokio::test]
async fn out_of_file_descriptors_the_server_backs_off_logs_once_and_recovers() {
    // `connections.max` above what 64 open files allow, on purpose.
    let Setup {
        _dir,
        howl,
        source,
        api: _,
    } = start("", "connections.max = 1000", Some(64)).await;
    let pid = howl.child.as_ref().expect("running").id();
    assert!(
        howl.stderr()
            .contains("`connections.max` (1000) is more than half of howl's open-file limit (64)"),
        "{}",
        howl.stderr()
    );
    let stalled = tcp::stalled(&source, 100, PARTIAL_HEAD).await;
    wait_for("accepting to fail", Duration::from_secs(5), || {
        howl.stderr().contains("Too many open files").then_some(())
    })
    .await;

    let cpu_before = cpu_seconds(pid).expect("cpu time");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu = cpu_seconds(pid).expect("cpu time") - cpu_before;
    assert!(cpu < 0.5, "the accept loop spins: {cpu}s of CPU in 2s");
    let failures = |stderr: String| stderr.matches("Too many open files").count();
    assert_eq!(failures(howl.stderr()), 1, "{}", howl.stderr());

    drop(stalled);
    let client = client();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = client
            .post(format!("http://{source}/"))
            .body("hello\n")
            .timeout(Duration::from_secs(1))
            .send()
            .await;
        if answer.is_ok_and(|a| a.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "the source never recovered");
    }
    assert_eq!(failures(howl.stderr()), 1, "{}", howl.stderr());
}
