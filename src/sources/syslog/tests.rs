//! Messages as real senders write them, parsed into the documented fields.

use super::*;

fn maker(max_length: usize) -> Maker {
    use crate::component_key::{ComponentKey, ComponentKind};
    Maker {
        source_id: Arc::from("s"),
        local_host: Value::from("here"),
        metrics: Arc::new(ComponentMetrics::new(ComponentKey::new(
            ComponentKind::Source,
            "s",
            "syslog",
        ))),
        max_length,
    }
}

fn peer() -> Peer {
    Peer::Ip("192.0.2.7:40000".parse().unwrap())
}

fn event(text: &str) -> Event {
    let frame = Frame {
        bytes: bytes::Bytes::copy_from_slice(text.as_bytes()),
        oversized: false,
    };
    {
        let m = maker(1000);
        m.event(&frame, &m.sender(peer()))
    }
}

fn field(event: &Event, name: &str) -> String {
    event
        .get_field(name)
        .map(|v| v.to_string_lossy().into_owned())
        .unwrap_or_else(|| panic!("no field {name} in {:?}", event.value()))
}

#[test]
fn rfc5424_gives_every_header_field_and_structured_data() {
    let e = event(
        r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 8710 ID47 [exampleSDID@32473 iut="3" eventSource="Application"] An application event"#,
    );
    assert_eq!(field(&e, "message"), "An application event");
    assert_eq!(field(&e, "host"), "mymachine.example.com");
    assert_eq!(field(&e, "hostname"), "mymachine.example.com");
    assert_eq!(field(&e, "appname"), "evntslog");
    assert_eq!(e.get_field("procid"), Some(&Value::Integer(8710)));
    assert_eq!(field(&e, "msgid"), "ID47");
    assert_eq!(field(&e, "facility"), "local4");
    assert_eq!(field(&e, "severity"), "notice");
    assert_eq!(field(&e, "level"), "info");
    assert_eq!(e.get_field("version"), Some(&Value::Integer(1)));
    assert_eq!(field(&e, "source_ip"), "192.0.2.7");
    assert_eq!(field(&e, "source_type"), "syslog");
    assert_eq!(field(&e, "timestamp"), "2003-10-11T22:14:15.003Z");
    let sd = e.get_field("exampleSDID@32473").unwrap();
    assert_eq!(
        sd.as_object().unwrap().get("eventSource"),
        Some(&Value::from("Application"))
    );
    assert!(e.get_field("syslog_error").is_none());
}

#[test]
fn rfc3164_gives_host_app_pid_and_level() {
    let e =
        event("<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed for lonvick on /dev/pts/8");
    assert_eq!(
        field(&e, "message"),
        "'su root' failed for lonvick on /dev/pts/8"
    );
    assert_eq!(field(&e, "host"), "mymachine");
    assert_eq!(field(&e, "appname"), "su");
    assert_eq!(e.get_field("procid"), Some(&Value::Integer(230)));
    assert_eq!(field(&e, "facility"), "auth");
    assert_eq!(field(&e, "severity"), "crit");
    assert_eq!(field(&e, "level"), "fatal");
}

#[test]
fn rfc5424_without_a_time_or_any_header_field_is_still_parsed() {
    let before = Utc::now();
    let e = event("<13>1 - - - - - - all fields nil");
    assert!(e.get_field("syslog_error").is_none(), "{:?}", e.value());
    assert_eq!(field(&e, "message"), "all fields nil");
    assert_eq!(e.get_field("version"), Some(&Value::Integer(1)));
    assert_eq!(field(&e, "host"), "192.0.2.7", "no hostname: the peer");
    let Some(Value::Timestamp(at)) = e.get_field("timestamp") else {
        panic!("no timestamp");
    };
    assert!(*at >= before, "no time in the message: the time it arrived");
    let e = event("<13>1 - web-1 app 42 ID7 - with a host");
    assert_eq!(field(&e, "host"), "web-1");
    assert_eq!(field(&e, "msgid"), "ID7");
}

#[test]
fn a_message_naming_no_host_gets_the_peer_and_local_ones_this_machine() {
    let e = event("<13>1 2024-01-02T03:04:05Z - app - - - hello");
    assert_eq!(field(&e, "host"), "192.0.2.7");
    let frame = Frame {
        bytes: bytes::Bytes::from_static(b"<13>1 2024-01-02T03:04:05Z - app - - - hi"),
        oversized: false,
    };
    let m = maker(100);
    let local = m.event(&frame, &m.sender(Peer::Local));
    assert_eq!(field(&local, "host"), "here");
    assert!(local.get_field("source_ip").is_none());
}

#[test]
fn what_cannot_be_parsed_or_is_too_long_passes_raw_with_the_reason() {
    let e = event("<999>not syslog at all");
    assert_eq!(field(&e, "message"), "<999>not syslog at all");
    assert!(field(&e, "syslog_error").contains("neither RFC 5424 nor RFC 3164"));
    assert_eq!(field(&e, "host"), "192.0.2.7");

    let mut events = Vec::new();
    let long = format!("<13>1 2024-01-02T03:04:05Z h app - - - {}", "x".repeat(200));
    maker(50).datagram(long.as_bytes(), peer(), &mut events);
    assert_eq!(events.len(), 1);
    assert_eq!(field(&events[0], "message"), &long[..50]);
    assert!(field(&events[0], "syslog_error").contains("longer than max_length (50 bytes)"));
}

#[test]
fn a_datagram_loses_trailing_newlines_and_an_empty_one_is_nothing() {
    let mut events = Vec::new();
    maker(100).datagram(b"<13>Oct 11 22:14:15 h app: hi\n\0", peer(), &mut events);
    maker(100).datagram(b"\n", peer(), &mut events);
    assert_eq!(events.len(), 1);
    assert_eq!(field(&events[0], "message"), "hi");
}

#[test]
fn the_message_shares_the_received_bytes() {
    let frame = Frame {
        bytes: bytes::Bytes::from_static(b"<13>1 2024-01-02T03:04:05Z h app - - - shared text"),
        oversized: false,
    };
    let m = maker(100);
    let e = m.event(&frame, &m.sender(peer()));
    let Some(Value::Bytes(message)) = e.get_field("message") else {
        panic!("no message");
    };
    assert_eq!(message.as_ref(), b"shared text");
    let offset = message.as_ptr() as usize - frame.bytes.as_ptr() as usize;
    assert!(offset < frame.bytes.len(), "a slice, not a copy");
}

#[test]
fn options_name_what_is_missing_or_misplaced() {
    use crate::sources::build_error;
    assert!(build_error::<SyslogConfig>("mode = \"tcp\"").contains("needs `address`"));
    assert!(build_error::<SyslogConfig>("mode = \"unix\"").contains("needs `path`"));
    assert!(
        build_error::<SyslogConfig>("mode = \"udp\"\naddress = \"127.0.0.1:1\"\npath = \"/x\"")
            .contains("`path` is for the unix modes")
    );
    assert!(
        build_error::<SyslogConfig>("mode = \"unix\"\npath = \"/x\"\naddress = \"127.0.0.1:1\"")
            .contains("`address` is for tcp and udp")
    );
    assert!(
        build_error::<SyslogConfig>(
            "mode = \"udp\"\naddress = \"127.0.0.1:1\"\n[tls]\ncrt_file = \"/a\"\nkey_file = \"/b\""
        )
        .contains("`tls` is for mode `tcp`")
    );
    assert!(
        build_error::<SyslogConfig>(
            "mode = \"tcp\"\naddress = \"127.0.0.1:1\"\n[tls]\ncrt_file = \"/nonexistent.pem\"\nkey_file = \"/b\""
        )
        .contains("/nonexistent.pem")
    );
}

#[test]
fn the_local_form_without_a_hostname_reads_its_tag_as_the_app() {
    let frame = Frame {
        bytes: bytes::Bytes::from_static(b"<13>Dec  6 05:34:35 app4: unix stream"),
        oversized: false,
    };
    let m = maker(100);
    let e = m.event(&frame, &m.sender(Peer::Local));
    assert_eq!(field(&e, "appname"), "app4");
    assert_eq!(field(&e, "host"), "here");
    assert!(e.get_field("hostname").is_none());
    assert_eq!(field(&e, "message"), "unix stream");
    // A real hostname stays one.
    let e = event("<13>Dec  6 05:34:35 web-1 app4: text");
    assert_eq!(field(&e, "host"), "web-1");
    assert_eq!(field(&e, "appname"), "app4");
}
