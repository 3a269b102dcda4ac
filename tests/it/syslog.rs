//! The `syslog` source with the real client: util-linux's `logger` over
//! TCP (newline and octet-counted framing), UDP and both kinds of Unix
//! socket, in RFC 3164 and RFC 5424; damaged input passed on raw and
//! counted; TLS with a certificate from files.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::tcp::connect;
use crate::common::{Running, free_port, metric, wait_for, write};

/// The JSON events written so far to `out.log` in `dir`.
fn events(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("out.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// Waits (bounded) for an event whose `message` is `message`.
async fn event_with(dir: &Path, message: &str) -> Value {
    let limit = Duration::from_secs(10);
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(event) = events(dir).into_iter().find(|e| e["message"] == message) {
            return event;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no event {message:?} within {limit:?}; got {:?}",
            events(dir)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn logger(args: &[&str]) {
    let status = Command::new("logger")
        .args(args)
        .status()
        .expect("run logger (util-linux, Debian's bsdutils)");
    assert!(status.success(), "logger {args:?} failed");
}

async fn start(dir: &Path, sources: &str) -> Running {
    let api = free_port();
    let config = write(
        dir,
        "syslog.toml",
        &format!(
            "[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n{sources}\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"*\"]\npath = \"out.log\"\nencoding = \"json\"\n"
        ),
    );
    Running::start(dir, &config, api, &[]).await
}

#[tokio::test]
async fn receives_what_logger_sends_over_every_transport() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (stream, datagram) = (
        dir.path().join("stream.sock"),
        dir.path().join("dgram.sock"),
    );
    let _howl = start(
        dir.path(),
        &format!(
            "[sources.tcp]\ntype = \"syslog\"\nmode = \"tcp\"\naddress = \"127.0.0.1:{port}\"\n\
             [sources.udp]\ntype = \"syslog\"\nmode = \"udp\"\naddress = \"127.0.0.1:{port}\"\n\
             [sources.unix]\ntype = \"syslog\"\nmode = \"unix\"\npath = \"{}\"\n\
             [sources.dgram]\ntype = \"syslog\"\nmode = \"unix_datagram\"\npath = \"{}\"\n",
            stream.display(),
            datagram.display()
        ),
    )
    .await;
    wait_for("the unix sockets", Duration::from_secs(10), || {
        (stream.exists() && datagram.exists()).then_some(())
    })
    .await;
    let port = port.to_string();
    let server = ["--server", "127.0.0.1", "--port", &port];

    logger(&[&server[..], &["--tcp", "-t", "app1", "tcp newline framed"]].concat());
    let e = event_with(dir.path(), "tcp newline framed").await;
    assert_eq!(e["appname"], "app1");
    assert_eq!(e["facility"], "user");
    assert_eq!(e["severity"], "notice");
    assert_eq!(e["level"], "info");
    assert_eq!(e["source_ip"], "127.0.0.1");
    assert_eq!(e["source_type"], "syslog");
    assert!(e["host"].as_str().is_some_and(|h| !h.is_empty()));

    logger(
        &[
            &server[..],
            &[
                "--tcp",
                "--octet-count",
                "--rfc5424",
                "--msgid",
                "ID47",
                "--sd-id",
                "zoo@123",
                "--sd-param",
                "tiger=\"hungry\"",
                "-p",
                "local3.err",
                "-t",
                "app2",
                "octet counted\nsecond line of it",
            ],
        ]
        .concat(),
    );
    let e = event_with(dir.path(), "octet counted\nsecond line of it").await;
    assert_eq!(e["appname"], "app2");
    assert_eq!(e["msgid"], "ID47");
    assert_eq!(e["facility"], "local3");
    assert_eq!(e["severity"], "err");
    assert_eq!(e["level"], "error");
    assert_eq!(e["version"], 1);
    assert_eq!(e["zoo@123"]["tiger"], "hungry");

    // UDP is fire and forget: resend (bounded) until the source is seen
    // to have it.
    for _ in 0..50 {
        logger(
            &[
                &server[..],
                &["--udp", "--rfc5424", "-t", "app3", "over udp"],
            ]
            .concat(),
        );
        if events(dir.path())
            .iter()
            .any(|e| e["message"] == "over udp")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let e = event_with(dir.path(), "over udp").await;
    assert_eq!(e["appname"], "app3");
    assert_eq!(e["source_ip"], "127.0.0.1");

    let stream = stream.to_string_lossy();
    logger(&["--socket", &stream, "--tcp", "-t", "app4", "unix stream"]);
    let e = event_with(dir.path(), "unix stream").await;
    assert_eq!(e["appname"], "app4", "the local form names no host: {e}");
    assert!(e.get("source_ip").is_none());

    let datagram = datagram.to_string_lossy();
    logger(&[
        "--socket",
        &datagram,
        "--udp",
        "-i",
        "-t",
        "app5",
        "unix datagram",
    ]);
    let e = event_with(dir.path(), "unix datagram").await;
    assert_eq!(e["appname"], "app5");
    assert!(e["procid"].is_u64(), "{e}");
}

#[tokio::test]
async fn damaged_and_oversized_messages_pass_raw_with_the_reason_and_are_counted() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let howl = start(
        dir.path(),
        &format!(
            "[sources.tcp]\ntype = \"syslog\"\nmode = \"tcp\"\naddress = \"127.0.0.1:{port}\"\nmax_length = 64\n"
        ),
    )
    .await;
    let mut stream = connect(&format!("127.0.0.1:{port}")).await;
    let long = format!("<13>1 2024-01-02T03:04:05Z h app - - - {}", "x".repeat(100));
    let frames = format!(
        "<999>no such priority\n{} {long}<13>1 2024-01-02T03:04:05Z h app - - - fine after it\n",
        long.len()
    );
    stream.write_all(frames.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap();

    let raw = event_with(dir.path(), "<999>no such priority").await;
    assert!(
        raw["syslog_error"]
            .as_str()
            .unwrap()
            .contains("neither RFC 5424 nor RFC 3164"),
        "{raw}"
    );
    assert_eq!(raw["host"], "127.0.0.1");
    let cut = event_with(dir.path(), &long[..64]).await;
    assert!(
        cut["syslog_error"]
            .as_str()
            .unwrap()
            .contains("longer than max_length (64 bytes)")
    );
    // The stream goes on after an oversized message.
    event_with(dir.path(), "fine after it").await;
    let errors = howl
        .wait_for_metric(
            "component_errors_total",
            &["component_id=\"tcp\"", "error_type=\"parse_failed\""],
            2.0,
        )
        .await;
    assert_eq!(errors, 2.0);
    let received = metric(
        &howl.metrics().await,
        "component_received_events_total",
        &["component_id=\"tcp\""],
    );
    assert_eq!(received, Some(3.0));
}

#[tokio::test]
async fn tls_uses_the_certificate_and_key_from_files() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let port = free_port();
    let _howl = start(
        dir.path(),
        &format!(
            "[sources.tls]\ntype = \"syslog\"\nmode = \"tcp\"\naddress = \"127.0.0.1:{port}\"\n\
             tls.crt_file = \"crt.pem\"\ntls.key_file = \"key.pem\"\n"
        ),
    )
    .await;

    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(dir.path().join("ca.pem")).unwrap()
    {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = connect(&format!("127.0.0.1:{port}")).await;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    tls.write_all(b"<13>1 2024-01-02T03:04:05Z h app - - - over tls\n")
        .await
        .unwrap();
    tls.shutdown().await.unwrap();
    let e = event_with(dir.path(), "over tls").await;
    assert_eq!(e["appname"], "app");

    // A client speaking plain text to the TLS port gets nothing in.
    let mut plain = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    plain
        .write_all(b"<13>1 2024-01-02T03:04:05Z h app - - - plain text\n")
        .await
        .unwrap();
    drop(plain);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !events(dir.path())
            .iter()
            .any(|e| e["message"] == "plain text")
    );
}

/// A test CA (`ca.pem`) and a server certificate it signed for localhost
/// and 127.0.0.1 (`crt.pem`, `key.pem`), made with the openssl command.
pub fn make_certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    write(
        dir,
        "ext.cnf",
        // What strict verifiers (Python 3.13's default) require of a leaf.
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nauthorityKeyIdentifier=keyid,issuer\n\
         basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    );
    let steps: [Vec<&str>; 3] = [
        [
            &["req", "-x509"][..],
            &ec,
            &[
                "-days",
                "1",
                "-subj",
                "/CN=howl test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        ]
        .concat(),
        [
            &["req"][..],
            &ec,
            &[
                "-subj",
                "/CN=localhost",
                "-keyout",
                "key.pem",
                "-out",
                "leaf.csr",
            ],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
            "-out",
            "crt.pem",
        ],
    ];
    for args in steps {
        let status = Command::new("openssl")
            .args(&args)
            .current_dir(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run openssl");
        assert!(status.success(), "openssl {args:?}");
    }
}

#[tokio::test]
async fn clients_that_connect_and_send_nothing_cannot_lock_others_out() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _howl = start(
        dir.path(),
        &format!(
            "[sources.tcp]\ntype = \"syslog\"\nmode = \"tcp\"\naddress = \"127.0.0.1:{port}\"\nconnection_limit = 2\n"
        ),
    )
    .await;
    // Two clients take every slot and say nothing.
    let mut squatters = Vec::new();
    for _ in 0..2 {
        squatters.push(crate::common::tcp::connect(&format!("127.0.0.1:{port}")).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let port = port.to_string();
    logger(&[
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--tcp",
        "-t",
        "app",
        "gets in",
    ]);
    let e = event_with(dir.path(), "gets in").await;
    assert_eq!(e["appname"], "app");
    drop(squatters);
}
