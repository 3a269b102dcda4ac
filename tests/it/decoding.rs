//! `decoding` and `framing` through the binary: `stdin` with `json` and
//! `logfmt`, `file` with a character delimiter, `http_server` in the table
//! form (its older string form is tested in `http_server`), and the
//! `socket` source over TCP, UDP and a Unix stream socket; a frame that
//! does not decode is kept raw and counted; option errors point at their
//! line.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Running, free_port, run_with_input, validate, wait_for, write};

/// Runs `source` (a `stdin` source `in`) into a console sink on `input`;
/// returns the events and stderr.
fn through_stdin(source: &str, input: &[u8]) -> (Vec<Value>, String) {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "topology.toml",
        &format!(
            "[sources.in]\ntype = \"stdin\"\n{source}\n\
             [sinks.out]\ntype = \"console\"\ninputs = [\"in\"]\nencoding = \"json\"\n"
        ),
    );
    let output = run_with_input(
        &["run", "-c", "topology.toml"],
        dir.path(),
        input,
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    let events = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON event"))
        .collect();
    (events, stderr)
}

#[test]
fn stdin_decodes_json_lines_and_keeps_a_line_that_is_not_json() {
    let input = b"{\"level\":\"error\",\"msg\":\"disk full\",\"n\":3}\r\n\
                  [{\"a\":1},{\"a\":2}]\n\
                  {\"timestamp\":\"2024-01-02T03:04:05Z\",\"host\":\"web-1\"}\n\
                  not json at all\n\
                  \"just text\"";
    let (events, stderr) = through_stdin("decoding.codec = \"json\"", input);
    assert_eq!(events.len(), 6, "{events:?}");
    assert_eq!(events[0]["level"], "error");
    assert_eq!(events[0]["n"], 3);
    assert_eq!(events[0]["source_type"], "stdin");
    assert!(events[0]["timestamp"].is_string());
    assert!(events[0]["host"].as_str().is_some_and(|h| !h.is_empty()));
    assert!(events[0].get("message").is_none());
    assert_eq!(
        (events[1]["a"].clone(), events[2]["a"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(events[3]["timestamp"], "2024-01-02T03:04:05Z");
    assert_eq!(events[3]["host"], "web-1");
    assert_eq!(events[4]["message"], "not json at all");
    assert_eq!(events[5]["message"], "just text");
    assert!(
        stderr.contains("invalid JSON") && stderr.contains("in"),
        "the failure is logged: {stderr}"
    );
}

#[test]
fn stdin_decodes_logfmt_between_nul_delimiters() {
    let input = b"level=warn msg=\"disk \\\"sda\\\" at 91%\" retry\0plain words\0\0user=bob";
    let (events, _) = through_stdin(
        "decoding.codec = \"logfmt\"\nframing.method = \"character_delimited\"\n\
         framing.character_delimited.delimiter = \"\\u0000\"",
        input,
    );
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[0]["level"], "warn");
    assert_eq!(events[0]["msg"], "disk \"sda\" at 91%");
    assert_eq!(events[0]["retry"], true);
    assert_eq!(events[1]["message"], "plain words");
    assert_eq!(events[2]["user"], "bob");
}

/// The events written so far to `out.log` in `dir`.
fn written(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("out.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

async fn start(dir: &Path, sources: &str) -> Running {
    let api = free_port();
    let config = write(
        dir,
        "topology.toml",
        &format!(
            "data_dir = \"state\"\n[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n{sources}\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"*\"]\npath = \"out.log\"\nencoding = \"json\"\n"
        ),
    );
    Running::start(dir, &config, api, &[]).await
}

/// Waits (bounded) until `out.log` holds `count` events.
async fn wait_for_events(dir: &Path, count: usize) -> Vec<Value> {
    wait_for(
        &format!("{count} events in out.log"),
        Duration::from_secs(20),
        || {
            let events = written(dir);
            (events.len() >= count).then_some(events)
        },
    )
    .await
}

#[tokio::test]
async fn file_source_cuts_records_at_a_character_delimiter_and_decodes_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    let log = dir.path().join("logs/app.rec");
    std::fs::write(&log, "{\"id\":1}|{\"id\":2}|{\"id\"").unwrap();
    let mut howl = start(
        dir.path(),
        "[sources.recs]\ntype = \"file\"\ninclude = [\"logs/*.rec\"]\n\
         decoding.codec = \"json\"\nframing.method = \"character_delimited\"\n\
         framing.character_delimited.delimiter = \"|\"\n",
    )
    .await;
    wait_for_events(dir.path(), 2).await;
    // The unfinished record waits for its delimiter.
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    file.write_all(b":3}|").unwrap();
    let events = wait_for_events(dir.path(), 3).await;
    let ids: Vec<&Value> = events.iter().map(|e| &e["id"]).collect();
    assert_eq!(ids, [&json!(1), &json!(2), &json!(3)]);
    assert!(
        events[0]["file"]
            .as_str()
            .unwrap()
            .ends_with("logs/app.rec")
    );
    assert_eq!(events[0]["source_type"], "file");
    howl.terminate(Duration::from_secs(20));
}

#[tokio::test]
async fn http_server_takes_the_table_form() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut howl = start(
        dir.path(),
        &format!(
            "[sources.ingest]\ntype = \"http_server\"\naddress = \"127.0.0.1:{port}\"\n\
             decoding.codec = \"logfmt\"\n"
        ),
    )
    .await;
    let client = crate::common::client();
    let url = format!("http://127.0.0.1:{port}/");
    let ok = client
        .post(&url)
        .body("level=info msg=\"a b\"\nlevel=warn")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.json::<Value>().await.unwrap(), json!({"accepted": 2}));
    let bad = client
        .post(&url)
        .body("level=info\n\"open")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let error = bad.json::<Value>().await.unwrap();
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("invalid logfmt on line 2")),
        "{error}"
    );
    let events = wait_for_events(dir.path(), 2).await;
    assert_eq!(events[0]["msg"], "a b");
    assert_eq!(events[0]["path"], "/");
    assert_eq!(events[1]["level"], "warn");
    howl.terminate(Duration::from_secs(20));
    assert_eq!(written(dir.path()).len(), 2, "nothing of the refused body");
}

#[tokio::test]
async fn socket_decodes_json_over_tcp_udp_and_a_unix_stream() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let unix = dir.path().join("in.sock");
    let howl = start(
        dir.path(),
        &format!(
            "[sources.tcp]\ntype = \"socket\"\nmode = \"tcp\"\naddress = \"127.0.0.1:{port}\"\n\
             decoding.codec = \"json\"\nmax_line_bytes = 64\n\
             [sources.udp]\ntype = \"socket\"\nmode = \"udp\"\naddress = \"127.0.0.1:{port}\"\n\
             decoding.codec = \"json\"\n\
             [sources.unix]\ntype = \"socket\"\nmode = \"unix_stream\"\npath = \"{}\"\n\
             decoding.codec = \"json\"\n",
            unix.display()
        ),
    )
    .await;
    wait_for("the unix socket", Duration::from_secs(10), || {
        unix.exists().then_some(())
    })
    .await;

    // A record split over two writes (most likely two reads), a line that
    // is not JSON, and one longer than max_line_bytes.
    let mut tcp = crate::common::tcp::connect(&format!("127.0.0.1:{port}"))
        .await
        .into_std()
        .unwrap();
    tcp.set_nonblocking(false).unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.write_all(b"{\"via\":\"tcp\",\"n\":1}\r\n{\"via\":")
        .unwrap();
    tcp.write_all(b"\"tcp\",\"n\":2}\nnot json\n").unwrap();
    tcp.write_all(format!("{{\"via\":\"tcp\",\"pad\":\"{}\"}}\n", "x".repeat(100)).as_bytes())
        .unwrap();
    drop(tcp);
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(b"{\"via\":\"udp\",\"list\":[1,2]}\n", ("127.0.0.1", port))
        .unwrap();
    let mut stream = std::os::unix::net::UnixStream::connect(&unix).unwrap();
    stream.write_all(b"{\"via\":\"unix\"}").unwrap();
    drop(stream);

    let events = wait_for_events(dir.path(), 6).await;
    let via = |name: &str| -> Vec<&Value> { events.iter().filter(|e| e["via"] == name).collect() };
    let tcp = via("tcp");
    assert_eq!(tcp.len(), 2, "{events:?}");
    assert_eq!(
        (tcp[0]["n"].clone(), tcp[1]["n"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(tcp[0]["source_type"], "socket");
    assert_eq!(tcp[0]["host"], "127.0.0.1");
    assert!(tcp[0]["port"].is_u64());
    let raw: Vec<&Value> = events
        .iter()
        .filter(|e| e.get("message").is_some())
        .collect();
    assert_eq!(
        raw.len(),
        2,
        "the line that is not JSON and the cut one: {raw:?}"
    );
    assert!(raw.iter().any(|e| e["message"] == "not json"));
    assert!(
        raw.iter()
            .any(|e| e["message"].as_str().is_some_and(|m| m.len() == 64))
    );
    let udp = via("udp");
    assert_eq!(udp.len(), 1);
    assert_eq!(udp[0]["list"], json!([1, 2]));
    let unix = via("unix");
    assert_eq!(unix.len(), 1, "the last frame, without a newline");
    assert!(unix[0]["host"].as_str().is_some_and(|h| !h.is_empty()));
    assert!(unix[0].get("port").is_none());

    howl.wait_for_metric(
        "component_errors_total",
        &[
            "component_id=\"tcp\"",
            "error_type=\"decode_failed\"",
            "stage=\"receiving\"",
        ],
        2.0,
    )
    .await;
    howl.wait_for_metric(
        "source_lines_truncated_total",
        &["component_id=\"tcp\""],
        1.0,
    )
    .await;
}

/// The kernel cuts a datagram longer than the buffer it is read into
/// without a word; a Unix datagram may be longer than 64 KiB (a UDP one
/// cannot), and must then be counted as cut, not shortened unseen.
#[tokio::test]
async fn a_unix_datagram_longer_than_the_buffer_is_counted_as_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.sock");
    let howl = start(
        dir.path(),
        &format!(
            "[sources.dgram]\ntype = \"socket\"\nmode = \"unix_datagram\"\npath = \"{}\"\n",
            path.display()
        ),
    )
    .await;
    wait_for("the unix socket", Duration::from_secs(10), || {
        path.exists().then_some(())
    })
    .await;
    let client = std::os::unix::net::UnixDatagram::unbound().unwrap();
    // Larger than the default send buffer allows is refused by the
    // sender's kernel: 90 KB fits it.
    client.send_to(&vec![b'a'; 90_000], &path).unwrap();
    client.send_to(b"small", &path).unwrap();
    let events = wait_for_events(dir.path(), 2).await;
    assert_eq!(events[0]["message"].as_str().map(str::len), Some(65_536));
    assert_eq!(events[1]["message"], "small");
    howl.wait_for_metric(
        "source_lines_truncated_total",
        &["component_id=\"dgram\""],
        1.0,
    )
    .await;
}

#[test]
fn bad_decoding_and_framing_options_are_reported_at_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "codec.toml",
            "decoding.codec = \"yaml\"",
            "codec.toml:3:18",
            "unknown variant `yaml`",
        ),
        (
            "delimiter.toml",
            "framing.method = \"character_delimited\"\nframing.character_delimited.delimiter = \"ab\"",
            "delimiter.toml:4:41",
            "one ASCII character",
        ),
        (
            "stream.toml",
            "framing.method = \"bytes\"",
            "stream.toml:3:18",
            "`framing.method = \"bytes\"` takes a message that arrives whole",
        ),
        (
            "missing.toml",
            "framing.method = \"character_delimited\"",
            "missing.toml:3:18",
            "needs `framing.character_delimited.delimiter`",
        ),
    ];
    for (name, options, at, message) in cases {
        let path = write(
            dir.path(),
            name,
            &format!(
                "[sources.in]\ntype = \"stdin\"\n{options}\n\
                 [sinks.out]\ntype = \"blackhole\"\ninputs = [\"in\"]\n"
            ),
        );
        let (code, stdout, stderr) = validate(dir.path(), &[&path]);
        let said = format!("{stdout}{stderr}");
        assert_ne!(code, 0, "{name}: {said}");
        assert!(said.contains(at), "{name}: expected {at} in {said}");
        assert!(
            said.contains(message),
            "{name}: expected {message:?} in {said}"
        );
    }
}
