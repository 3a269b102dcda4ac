//! The `fluent` source with real clients: Python's `fluent-logger`
//! (`FluentSender`, Message mode, over TCP and a Unix socket, with integer
//! seconds and EventTime), the `msgpack` package it brings (PackedForward
//! as Fluentd sends it, CompressedPackedForward with two gzip members,
//! acks read back), and bytes built here for the ack contract: answered
//! only after the sink delivered, never when it failed; garbage counted;
//! an ack over TLS (Python's ssl).
//!
//! The Python comes from `target/venv` (scripts/test creates it with
//! `python3 -m venv` and `pip install fluent-logger`), or `HOWL_TEST_PYTHON`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::capture::{Capture, Reply};
use crate::common::{Running, free_port, wait_for, write};

/// The Python that has `fluent-logger`.
fn python() -> PathBuf {
    let path = std::env::var_os("HOWL_TEST_PYTHON").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/venv/bin/python"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "no Python with fluent-logger at {}: run scripts/test, which creates target/venv \
         (`python3 -m venv target/venv && target/venv/bin/pip install fluent-logger`), \
         or set HOWL_TEST_PYTHON",
        path.display()
    );
    path
}

/// Runs a Python script (bounded), failing with its output.
async fn run_python(dir: &Path, script: &str, args: &[&str]) {
    let script = write(dir, "client.py", script);
    let mut child = Command::new(python());
    child.arg(&script).args(args);
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || child.output().expect("run python")),
    )
    .await
    .expect("the Python client finished within 30 s")
    .unwrap();
    assert!(
        output.status.success(),
        "the Python client failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn events(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("out.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// Waits (bounded) for an event whose `msg` is `msg`.
async fn event_with(dir: &Path, msg: &str) -> Value {
    wait_for(
        &format!("an event with msg {msg:?}"),
        Duration::from_secs(10),
        || events(dir).into_iter().find(|e| e["msg"] == msg),
    )
    .await
}

async fn start(dir: &Path, sources: &str, sink: &str) -> Running {
    let api = free_port();
    let config = write(
        dir,
        "fluent.toml",
        &format!("[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n{sources}\n{sink}\n"),
    );
    Running::start(dir, &config, api, &[]).await
}

const FILE_SINK: &str =
    "[sinks.out]\ntype = \"file\"\ninputs = [\"*\"]\npath = \"out.log\"\nencoding = \"json\"\n";

/// Waits until the TCP port takes connections.
async fn listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const FLUENT_LOGGER: &str = r#"
import sys
from fluent import sender

port, path = int(sys.argv[1]), sys.argv[2]
tcp = sender.FluentSender("app", host="127.0.0.1", port=port)
for i in range(3):
    ok = tcp.emit("access", {"msg": "tcp %d" % i, "n": i, "nested": {"k": [1, "two"]}})
    assert ok, tcp.last_error
assert tcp.emit_with_time("old", 1700000000, {"msg": "integer time"}), tcp.last_error
tcp.close()

precise = sender.FluentSender("app", host="127.0.0.1", port=port, nanosecond_precision=True)
assert precise.emit_with_time("precise", 1700000000.25, {"msg": "event time"}), precise.last_error
precise.close()

unix = sender.FluentSender("local", host="unix://" + path)
assert unix.emit("x", {"msg": "over unix"}), unix.last_error
unix.close()
"#;

#[tokio::test]
async fn receives_what_fluent_logger_sends_over_tcp_and_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let socket = dir.path().join("fluent.sock");
    let _howl = start(
        dir.path(),
        &format!(
            "[sources.tcp]\ntype = \"fluent\"\naddress = \"127.0.0.1:{port}\"\n\
             [sources.unix]\ntype = \"fluent\"\nmode = \"unix\"\npath = \"{}\"\n",
            socket.display()
        ),
        FILE_SINK,
    )
    .await;
    listening(port).await;
    wait_for("the unix socket", Duration::from_secs(10), || {
        socket.exists().then_some(())
    })
    .await;
    run_python(
        dir.path(),
        FLUENT_LOGGER,
        &[&port.to_string(), &socket.to_string_lossy()],
    )
    .await;

    for i in 0..3 {
        let e = event_with(dir.path(), &format!("tcp {i}")).await;
        assert_eq!(e["tag"], "app.access");
        assert_eq!(e["n"], i);
        assert_eq!(e["nested"]["k"], serde_json::json!([1, "two"]));
        assert_eq!(e["host"], "127.0.0.1");
        assert_eq!(e["source_type"], "fluent");
        assert!(e["timestamp"].as_str().is_some(), "{e}");
    }
    let e = event_with(dir.path(), "integer time").await;
    assert_eq!(e["tag"], "app.old");
    assert_eq!(e["timestamp"], "2023-11-14T22:13:20Z");
    let e = event_with(dir.path(), "event time").await;
    assert_eq!(e["tag"], "app.precise");
    assert_eq!(e["timestamp"], "2023-11-14T22:13:20.250Z");
    let e = event_with(dir.path(), "over unix").await;
    assert_eq!(e["tag"], "local.x");
    assert!(
        e["host"]
            .as_str()
            .is_some_and(|h| !h.is_empty() && h != "127.0.0.1"),
        "a Unix socket's events name this machine: {e}"
    );
}

const MSGPACK_CLIENT: &str = r#"
import gzip, socket, struct, sys
import msgpack

def ack(conn):
    unpacker = msgpack.Unpacker(raw=False)
    while True:
        data = conn.recv(4096)
        assert data, "the connection closed without an ack"
        unpacker.feed(data)
        for answer in unpacker:
            return answer

conn = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
# A keepalive, then PackedForward as Fluentd sends it: entries as a str.
entries = b"".join(msgpack.packb([1700000000 + i, {"msg": "packed %d" % i}]) for i in range(3))
conn.sendall(b"\xc0" + msgpack.packb(["fluentd.packed", entries, {"size": 3, "chunk": "c1"}], use_bin_type=False))
assert ack(conn) == {"ack": "c1"}
# CompressedPackedForward, two gzip members; EventTime entries.
et = lambda s, ns: msgpack.ExtType(0, struct.pack(">II", s, ns))
entries = [msgpack.packb([et(1700000000, 7), {"msg": "gz %d" % i}]) for i in range(4)]
members = gzip.compress(b"".join(entries[:2])) + gzip.compress(b"".join(entries[2:]))
conn.sendall(msgpack.packb(["bit.gz", members, {"compressed": "gzip", "chunk": "c2"}]))
assert ack(conn) == {"ack": "c2"}
# Forward mode, no chunk: nothing comes back.
conn.sendall(msgpack.packb(["bit.fwd", [[et(1700000001, 0), {"msg": "forward"}]]]))
conn.close()
"#;

#[tokio::test]
async fn packed_and_compressed_messages_from_python_msgpack_are_acked() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _howl = start(
        dir.path(),
        &format!("[sources.in]\ntype = \"fluent\"\naddress = \"127.0.0.1:{port}\"\n"),
        FILE_SINK,
    )
    .await;
    listening(port).await;
    run_python(dir.path(), MSGPACK_CLIENT, &[&port.to_string()]).await;
    for i in 0..3 {
        let e = event_with(dir.path(), &format!("packed {i}")).await;
        assert_eq!(e["tag"], "fluentd.packed");
    }
    for i in 0..4 {
        let e = event_with(dir.path(), &format!("gz {i}")).await;
        assert_eq!(e["tag"], "bit.gz");
        assert_eq!(e["timestamp"], "2023-11-14T22:13:20.000000007Z");
    }
    let e = event_with(dir.path(), "forward").await;
    assert_eq!(e["tag"], "bit.fwd");
}

/// MessagePack written by hand for the Rust-side tests.
fn str(s: &[u8]) -> Vec<u8> {
    let mut out = vec![0xdb];
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
    out
}

fn bin(s: &[u8]) -> Vec<u8> {
    let mut out = vec![0xc6];
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
    out
}

/// `[time, {"msg": msg}]` entries back to back.
fn entries(msgs: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for msg in msgs {
        out.extend_from_slice(&[0x92, 0xce]);
        out.extend_from_slice(&1_700_000_000u32.to_be_bytes());
        out.push(0x81);
        out.extend_from_slice(&str(b"msg"));
        out.extend_from_slice(&str(msg.as_bytes()));
    }
    out
}

/// `[tag, payload, {"chunk": chunk, ...}]`.
fn message(tag: &str, payload: Vec<u8>, chunk: &str, gzip: bool) -> Vec<u8> {
    let mut out = vec![0x93];
    out.extend_from_slice(&str(tag.as_bytes()));
    out.extend_from_slice(&payload);
    out.push(if gzip { 0x82 } else { 0x81 });
    if gzip {
        out.extend_from_slice(&str(b"compressed"));
        out.extend_from_slice(&str(b"gzip"));
    }
    out.extend_from_slice(&str(b"chunk"));
    out.extend_from_slice(&str(chunk.as_bytes()));
    out
}

fn ack(chunk: &str) -> Vec<u8> {
    [&b"\x81\xa3ack"[..], &str(chunk.as_bytes())].concat()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// Reads `len` bytes, or what came before the connection closed.
async fn read_answer(stream: &mut tokio::net::TcpStream, len: usize) -> Vec<u8> {
    let mut answer = vec![0; len];
    let mut got = 0;
    while got < len {
        let n = tokio::time::timeout(Duration::from_secs(15), stream.read(&mut answer[got..]))
            .await
            .expect("an answer or a close within 15 s")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        got += n;
    }
    answer.truncate(got);
    answer
}

#[tokio::test]
async fn acks_come_only_after_the_sink_delivered_and_never_for_a_failed_delivery() {
    let delay = Duration::from_millis(800);
    let receiver = Capture::start(vec![
        Reply::status(200).delay(delay),
        Reply::status(200),
        // Refused for good: the source must not ack.
        Reply::status(400),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let howl = start(
        dir.path(),
        &format!("[sources.in]\ntype = \"fluent\"\naddress = \"127.0.0.1:{port}\"\n"),
        &format!(
            "[sinks.hook]\ntype = \"webhook\"\ninputs = [\"in\"]\nuri = \"{}/in\"\n\
             encoding = \"ndjson\"\nbatch.timeout_secs = 0\n",
            receiver.base
        ),
    )
    .await;
    listening(port).await;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();

    // PackedForward: the ack waits for the receiver's (delayed) answer.
    let sent = Instant::now();
    stream
        .write_all(&message(
            "rust.packed",
            bin(&entries(&["a", "b"])),
            "k1",
            false,
        ))
        .await
        .unwrap();
    assert_eq!(read_answer(&mut stream, ack("k1").len()).await, ack("k1"));
    let acked = Instant::now();
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1, "the events were sent before the ack");
    assert!(
        acked >= requests[0].at + delay && acked - sent >= delay,
        "the ack came {:?} after sending, before the receiver answered",
        acked - sent
    );
    let body = requests[0].text();
    assert!(
        body.contains("\"msg\":\"a\"") && body.contains("\"msg\":\"b\""),
        "{body}"
    );

    // CompressedPackedForward, two gzip members.
    let data = entries(&["c", "d", "e"]);
    let members = [gzip(&data[..9]), gzip(&data[9..])].concat();
    stream
        .write_all(&message("rust.gz", bin(&members), "k2", true))
        .await
        .unwrap();
    assert_eq!(read_answer(&mut stream, ack("k2").len()).await, ack("k2"));
    let body = receiver.requests()[1].text();
    for msg in ["c", "d", "e"] {
        assert!(body.contains(&format!("\"msg\":\"{msg}\"")), "{body}");
    }

    // The receiver refuses: no ack, the connection is closed.
    stream
        .write_all(&message("rust.refused", bin(&entries(&["f"])), "k3", false))
        .await
        .unwrap();
    assert_eq!(
        read_answer(&mut stream, ack("k3").len()).await,
        Vec::<u8>::new(),
        "a refused delivery is never acked"
    );
    assert_eq!(receiver.requests().len(), 3);

    // Bytes that are not MessagePack end their connection, counted.
    let mut garbage = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    garbage.write_all(&[0xc1, 0x00]).await.unwrap();
    assert_eq!(read_answer(&mut garbage, 1).await, Vec::<u8>::new());
    howl.wait_for_metric(
        "component_errors_total",
        &["component_id=\"in\"", "error_type=\"decode_failed\""],
        1.0,
    )
    .await;
}

const TLS_CLIENT: &str = r#"
import socket, ssl, sys
import msgpack

context = ssl.create_default_context(cafile=sys.argv[2])
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as raw:
    with context.wrap_socket(raw, server_hostname="localhost") as conn:
        conn.sendall(msgpack.packb(["tls.tag", 1700000000, {"msg": "over tls"}, {"chunk": "t1"}]))
        unpacker = msgpack.Unpacker(raw=False)
        answer = None
        while answer is None:
            data = conn.recv(4096)
            assert data, "the connection closed without an ack"
            unpacker.feed(data)
            for answer in unpacker:
                break
        assert answer == {"ack": "t1"}, answer
"#;

#[tokio::test]
async fn tls_carries_messages_and_their_acks() {
    let dir = tempfile::tempdir().unwrap();
    crate::syslog::make_certificates(dir.path());
    let port = free_port();
    let _howl = start(
        dir.path(),
        &format!(
            "[sources.tls]\ntype = \"fluent\"\naddress = \"127.0.0.1:{port}\"\n\
             tls.crt_file = \"crt.pem\"\ntls.key_file = \"key.pem\"\n"
        ),
        FILE_SINK,
    )
    .await;
    listening(port).await;
    let ca = dir.path().join("ca.pem");
    run_python(
        dir.path(),
        TLS_CLIENT,
        &[&port.to_string(), &ca.to_string_lossy()],
    )
    .await;
    let e = event_with(dir.path(), "over tls").await;
    assert_eq!(e["tag"], "tls.tag");
}
