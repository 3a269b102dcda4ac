//! Each mode as senders write it, EventTime in both encodings, gzip with
//! several members, and damaged or hostile input (bounded, never a panic).

use std::io::Write;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::*;
use crate::event::Event;

/// A tiny MessagePack writer for the tests (independent of the reader:
/// every header written by hand from the spec).
mod mp {
    pub fn str(s: &str) -> Vec<u8> {
        let mut out = match s.len() {
            len @ 0..32 => vec![0xa0 | len as u8],
            len @ 32..256 => vec![0xd9, len as u8],
            len => {
                let mut h = vec![0xdb];
                h.extend_from_slice(&(len as u32).to_be_bytes());
                h
            }
        };
        out.extend_from_slice(s.as_bytes());
        out
    }
    pub fn bin(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0xc6];
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(data);
        out
    }
    pub fn array(len: usize) -> Vec<u8> {
        if len < 16 {
            vec![0x90 | len as u8]
        } else {
            let mut h = vec![0xdd];
            h.extend_from_slice(&(len as u32).to_be_bytes());
            h
        }
    }
    pub fn map(len: usize) -> Vec<u8> {
        assert!(len < 16);
        vec![0x80 | len as u8]
    }
    pub fn uint(n: u64) -> Vec<u8> {
        let mut out = vec![0xcf];
        out.extend_from_slice(&n.to_be_bytes());
        out
    }
    pub fn int(n: i8) -> Vec<u8> {
        vec![0xd0, n as u8]
    }
    /// EventTime as fixext8.
    pub fn time(seconds: u32, nanos: u32) -> Vec<u8> {
        let mut out = vec![0xd7, 0x00];
        out.extend_from_slice(&seconds.to_be_bytes());
        out.extend_from_slice(&nanos.to_be_bytes());
        out
    }
    /// EventTime as ext8 (`C7 08 00`).
    pub fn time_ext8(seconds: u32, nanos: u32) -> Vec<u8> {
        let mut out = vec![0xc7, 0x08, 0x00];
        out.extend_from_slice(&seconds.to_be_bytes());
        out.extend_from_slice(&nanos.to_be_bytes());
        out
    }
    pub fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }
    /// `{"msg": text}`.
    pub fn record(text: &str) -> Vec<u8> {
        cat(&[map(1), str("msg"), str(text)])
    }
}

fn connection(max_message_bytes: usize) -> Connection {
    use crate::component_key::{ComponentKey, ComponentKind};
    Connection {
        maker: forward::Maker {
            source_id: Arc::from("s"),
            metrics: Arc::new(crate::internal_events::ComponentMetrics::new(
                ComponentKey::new(ComponentKind::Source, "s", "fluent"),
            )),
            max_message_bytes,
        },
        host: Value::from("192.0.2.7"),
        scan: msgpack::Scan::default(),
    }
}

/// Decodes `input` as one read (then the end of the connection).
fn decode(input: &[u8]) -> (Vec<Batch>, Result<(), String>) {
    decode_with(input, 1 << 20, input.len().max(1))
}

/// Decodes `input` arriving in reads of `step` bytes.
fn decode_with(input: &[u8], max: usize, step: usize) -> (Vec<Batch>, Result<(), String>) {
    let mut connection = connection(max);
    let mut buf = BytesMut::new();
    let mut batches = Vec::new();
    for piece in input.chunks(step) {
        buf.extend_from_slice(piece);
        if let Err(e) = connection.decode(&mut buf, false, &mut batches) {
            return (batches, Err(e));
        }
        assert!(buf.len() <= max, "a connection holds at most one message");
    }
    let end = connection.decode(&mut buf, true, &mut batches);
    (batches, end)
}

fn events(batches: &[Batch]) -> Vec<&Event> {
    batches.iter().flat_map(|b| &b.events).collect()
}

fn text(event: &Event, name: &str) -> String {
    event
        .get_field(name)
        .map(|v| v.to_string_lossy().into_owned())
        .unwrap_or_else(|| panic!("no {name} in {:?}", event.value()))
}

fn timestamp(event: &Event) -> DateTime<Utc> {
    match event.get_field("timestamp") {
        Some(Value::Timestamp(at)) => *at,
        other => panic!("timestamp {other:?}"),
    }
}

fn at(seconds: i64, nanos: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, nanos).unwrap()
}

fn ack(chunk: &[u8]) -> Bytes {
    Bytes::from([&b"\x81\xa3ack"[..], chunk].concat())
}

#[test]
fn message_mode_gives_one_event_with_tag_time_host_and_the_record_at_the_root() {
    let input = mp::cat(&[
        mp::array(3),
        mp::str("app.access"),
        mp::uint(1_700_000_000),
        mp::map(3),
        mp::str("msg"),
        mp::str("hello"),
        mp::str("n"),
        mp::int(-5),
        mp::str("raw"),
        mp::bin(b"\xff\x00"),
    ]);
    let (batches, end) = decode(&input);
    assert_eq!(end, Ok(()));
    let events = events(&batches);
    assert_eq!(events.len(), 1);
    let e = events[0];
    assert_eq!(text(e, "msg"), "hello");
    assert_eq!(e.get_field("n"), Some(&Value::Integer(-5)));
    assert_eq!(
        e.get_field("raw"),
        Some(&Value::Bytes(Bytes::from_static(b"\xff\x00")))
    );
    assert_eq!(text(e, "tag"), "app.access");
    assert_eq!(text(e, "source_type"), "fluent");
    assert_eq!(text(e, "host"), "192.0.2.7");
    assert_eq!(timestamp(e), at(1_700_000_000, 0));
    assert!(batches[0].answer.is_none(), "no chunk, no answer");
}

#[test]
fn forward_mode_reads_event_time_in_both_encodings_and_answers_the_chunk() {
    let input = mp::cat(&[
        mp::array(3),
        mp::str("t"),
        mp::array(3),
        mp::array(2),
        mp::time(1_700_000_001, 123_456_789),
        mp::record("a"),
        mp::array(2),
        mp::time_ext8(1_700_000_002, 5),
        mp::record("b"),
        // Fluent Bit's retained metadata: [[time, metadata], record].
        mp::array(2),
        mp::cat(&[mp::array(2), mp::time(1_700_000_003, 0), mp::map(0)]),
        mp::record("c"),
        mp::map(2),
        mp::str("size"),
        mp::int(3),
        mp::str("chunk"),
        mp::str("0123456789abcdef"),
    ]);
    let (batches, end) = decode(&input);
    assert_eq!(end, Ok(()));
    let events = events(&batches);
    let msgs: Vec<_> = events.iter().map(|e| text(e, "msg")).collect();
    assert_eq!(msgs, ["a", "b", "c"]);
    assert_eq!(timestamp(events[0]), at(1_700_000_001, 123_456_789));
    assert_eq!(timestamp(events[1]), at(1_700_000_002, 5));
    assert_eq!(timestamp(events[2]), at(1_700_000_003, 0));
    assert_eq!(
        batches[0].answer.as_deref(),
        Some(&ack(&mp::str("0123456789abcdef"))[..])
    );
}

fn entries() -> Vec<u8> {
    mp::cat(&[
        mp::array(2),
        mp::time(1_700_000_010, 0),
        mp::record("one"),
        mp::array(2),
        mp::uint(1_700_000_011),
        mp::record("two"),
    ])
}

#[test]
fn packed_forward_is_read_from_bin_and_from_str() {
    for packed in [mp::bin(&entries()), {
        // Fluentd's out_forward sends the entries as a str (not UTF-8).
        let data = entries();
        let mut s = vec![0xdb];
        s.extend_from_slice(&(data.len() as u32).to_be_bytes());
        s.extend_from_slice(&data);
        s
    }] {
        let input = mp::cat(&[mp::array(2), mp::str("packed"), packed]);
        let (batches, end) = decode(&input);
        assert_eq!(end, Ok(()));
        let events = events(&batches);
        let msgs: Vec<_> = events.iter().map(|e| text(e, "msg")).collect();
        assert_eq!(msgs, ["one", "two"]);
        assert_eq!(timestamp(events[1]), at(1_700_000_011, 0));
        assert_eq!(text(events[0], "tag"), "packed");
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn compressed_packed_forward_reads_every_gzip_member_and_echoes_a_bin_chunk() {
    let data = entries();
    let (first, second) = data.split_at(7);
    let members = [gzip(first), gzip(second)].concat();
    let input = mp::cat(&[
        mp::array(3),
        mp::str("gz"),
        mp::bin(&members),
        mp::map(2),
        mp::str("compressed"),
        mp::str("gzip"),
        mp::str("chunk"),
        mp::bin(b"\x01\x02"),
    ]);
    let (batches, end) = decode(&input);
    assert_eq!(end, Ok(()));
    let msgs: Vec<_> = events(&batches).iter().map(|e| text(e, "msg")).collect();
    assert_eq!(msgs, ["one", "two"]);
    assert_eq!(
        batches[0].answer.as_deref(),
        Some(&ack(&mp::bin(b"\x01\x02"))[..])
    );
}

#[test]
fn a_gzip_bomb_stops_at_max_message_bytes() {
    let big = mp::cat(&[mp::array(2), mp::uint(1), mp::record(&"x".repeat(100_000))]);
    let input = mp::cat(&[
        mp::array(3),
        mp::str("gz"),
        mp::bin(&gzip(&big)),
        mp::map(1),
        mp::str("compressed"),
        mp::str("gzip"),
    ]);
    let (batches, end) = decode_with(&input, 10_000, 4096);
    assert_eq!(
        end,
        Ok(()),
        "the message is ignored, the connection goes on"
    );
    assert!(events(&batches).is_empty());
}

#[test]
fn keepalives_and_values_that_are_not_arrays_are_skipped() {
    let input = mp::cat(&[
        vec![0xc0],
        mp::str("not an array"),
        mp::map(1),
        mp::str("k"),
        mp::int(1),
        mp::array(1),
        mp::str("short"),
        mp::array(3),
        mp::int(7),
        mp::int(1),
        mp::record("tag is not a string"),
        vec![0xc0],
        mp::array(3),
        mp::str("ok"),
        mp::uint(1),
        mp::record("kept"),
    ]);
    let (batches, end) = decode(&input);
    assert_eq!(end, Ok(()));
    let msgs: Vec<_> = events(&batches).iter().map(|e| text(e, "msg")).collect();
    assert_eq!(msgs, ["kept"]);
}

#[test]
fn values_arriving_byte_by_byte_decode_the_same() {
    let input = mp::cat(&[
        mp::array(2),
        mp::str("p"),
        mp::bin(&entries()),
        vec![0xc0],
        mp::array(4),
        mp::str("m"),
        mp::time(5, 6),
        mp::record("three"),
        mp::map(1),
        mp::str("chunk"),
        mp::str("c1"),
    ]);
    let (batches, end) = decode_with(&input, 1 << 20, 1);
    assert_eq!(end, Ok(()));
    let msgs: Vec<_> = events(&batches).iter().map(|e| text(e, "msg")).collect();
    assert_eq!(msgs, ["one", "two", "three"]);
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[1].answer.as_deref(), Some(&ack(&mp::str("c1"))[..]));
}

#[test]
fn huge_declared_lengths_close_the_connection_without_allocating() {
    for header in [
        vec![0xc6, 0xff, 0xff, 0xff, 0xff],       // bin32 of 4 GiB
        vec![0xdb, 0xff, 0xff, 0xff, 0xff],       // str32 of 4 GiB
        vec![0xdd, 0xff, 0xff, 0xff, 0xff],       // array32 of 4 G items
        vec![0xdf, 0xff, 0xff, 0xff, 0xff],       // map32 of 4 G pairs
        vec![0xc9, 0xff, 0xff, 0xff, 0xff, 0x00], // ext32
        mp::cat(&[
            mp::array(3),
            mp::str("t"),
            vec![0xc6, 0x7f, 0xff, 0xff, 0xff],
        ]),
    ] {
        let (batches, end) = decode_with(&header, 1 << 20, 1);
        assert!(batches.is_empty());
        let why = end.expect_err("a declared length over the limit ends the connection");
        assert!(why.contains("over the limit"), "{why}");
    }
}

#[test]
fn huge_lengths_inside_packed_entries_are_ignored_and_counted() {
    let packed = mp::cat(&[
        mp::array(2),
        mp::uint(1),
        mp::record("fine"),
        vec![0xdd, 0xff, 0xff, 0xff, 0xff],
    ]);
    let input = mp::cat(&[mp::array(2), mp::str("t"), mp::bin(&packed)]);
    let (batches, end) = decode(&input);
    assert_eq!(end, Ok(()));
    let msgs: Vec<_> = events(&batches).iter().map(|e| text(e, "msg")).collect();
    assert_eq!(msgs, ["fine"]);
}

#[test]
fn deep_nesting_and_reserved_bytes_close_the_connection() {
    let deep = vec![0x91; 1000];
    let (_, end) = decode(&deep);
    assert!(end.unwrap_err().contains("nested deeper"));
    let (_, end) = decode(&[0xc1]);
    assert!(end.unwrap_err().contains("0xc1"));
}

#[test]
fn a_connection_cut_inside_a_message_is_an_error_after_what_came_before() {
    let whole = mp::cat(&[mp::array(3), mp::str("t"), mp::uint(1), mp::record("whole")]);
    let cut = mp::cat(&[mp::array(3), mp::str("t"), mp::uint(1)]);
    let (batches, end) = decode(&[whole, cut].concat());
    assert_eq!(events(&batches).len(), 1);
    assert!(end.unwrap_err().contains("ended inside a message"));
}

#[test]
fn random_bytes_never_panic_and_stay_bounded() {
    let mut rng = fastrand::Rng::with_seed(7);
    let valid = mp::cat(&[mp::array(2), mp::str("p"), mp::bin(&entries())]);
    for round in 0..2000 {
        let mut input = if round % 2 == 0 {
            valid.clone()
        } else {
            (0..rng.usize(1..300)).map(|_| rng.u8(..)).collect()
        };
        // Damage a valid message in a few places.
        for _ in 0..rng.usize(0..4) {
            let i = rng.usize(..input.len());
            input[i] = rng.u8(..);
        }
        let _ = decode_with(&input, 4096, rng.usize(1..64));
    }
}

#[test]
fn options_point_at_what_is_wrong() {
    use crate::sources::build_error;
    assert!(
        build_error::<FluentConfig>("mode = \"unix\"").contains("needs `path`"),
        "unix without a path"
    );
    assert!(
        build_error::<FluentConfig>("path = \"/tmp/x.sock\"").contains("`path` is for mode `unix`")
    );
    assert!(
        build_error::<FluentConfig>(
            "mode = \"unix\"\npath = \"/tmp/x.sock\"\naddress = \"127.0.0.1:1\""
        )
        .contains("`address` is for mode `tcp`")
    );
}

#[test]
fn a_message_of_more_entries_than_allowed_is_ignored_and_counted() {
    use super::forward::MAX_ENTRIES_PER_MESSAGE;
    // Packed: 200,001 entries of an empty map each, 3 bytes apiece.
    let one = mp::cat(&[mp::array(2), mp::uint(1), mp::map(0)]);
    let packed = one.repeat(MAX_ENTRIES_PER_MESSAGE + 1);
    let input = mp::cat(&[mp::array(2), mp::str("t"), mp::bin(&packed)]);
    let (batches, end) = decode_with(&input, 8 << 20, input.len());
    assert_eq!(end, Ok(()), "the connection goes on");
    assert!(
        batches.is_empty(),
        "nothing of it is taken (nor acknowledged)"
    );
    // One entry fewer is taken whole.
    let packed = one.repeat(MAX_ENTRIES_PER_MESSAGE);
    let input = mp::cat(&[mp::array(2), mp::str("t"), mp::bin(&packed)]);
    let (batches, end) = decode_with(&input, 8 << 20, input.len());
    assert_eq!(end, Ok(()));
    assert_eq!(events(&batches).len(), MAX_ENTRIES_PER_MESSAGE);
}
