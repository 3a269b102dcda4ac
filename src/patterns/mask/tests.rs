//! Unit tests of the masking lexer: one expectation per shape and per
//! trade-off named in the module docs.

use super::*;

fn m(tok: &str) -> (String, bool) {
    let mut out = Vec::new();
    let info = mask_token(
        tok.as_bytes(),
        class_of(tok.as_bytes()),
        Builtins::all(),
        &mut out,
    );
    if !info.masked {
        assert!(out.is_empty());
        return (tok.to_string(), false);
    }
    (String::from_utf8(out).unwrap(), info.var)
}

fn text(tok: &str) -> String {
    m(tok).0
}

#[test]
fn numbers_in_all_shapes_are_masked() {
    assert_eq!(m("12"), ("<NUM>".into(), true));
    assert_eq!(text("-3.5"), "<NUM>");
    assert_eq!(text("1.16"), "<NUM>");
    assert_eq!(text("6.1.7601.23505"), "<NUM>");
    assert_eq!(text("4KB"), "<NUM>");
    assert_eq!(text("50%"), "<NUM>");
    assert_eq!(text("12ms"), "<DUR>");
    // Durations of several parts, as Go prints them, are one duration.
    for d in ["1m21.567s", "2h3m4s", "3m0s", "1h0m0.5s", "5m30s,"] {
        assert_eq!(text(d).trim_end_matches(','), "<DUR>", "{d}");
    }
    // Not every letter run after a number is a part: these stay as they were.
    assert_eq!(text("1m21x"), "1m21x");
    assert_eq!(text("1h2"), "1h2");
    assert_eq!(text("<1"), "<NUM>");
    assert_eq!(text("2809)"), "<NUM>)");
    assert_eq!(text("1e-5"), "<NUM>");
    assert_eq!(text("0x1fffffffe"), "<HEX>");
    assert_eq!(text("9f4ef63"), "<HEX>");
}

#[test]
fn digits_inside_words_stay_literal_but_separated_numbers_are_masked() {
    assert_eq!(m("jk2_init()"), ("jk2_init()".into(), false));
    assert_eq!(text("ssh2"), "ssh2");
    assert_eq!(text("e820"), "e820");
    assert_eq!(text("blk_-6952295868487656571"), "blk_<NUM>");
    assert_eq!(m("node-246"), ("node-<NUM>".into(), false));
    assert_eq!(text("2nd"), "2nd");
    assert_eq!(text("HTTP/1.1"), "HTTP/<NUM>");
}

#[test]
fn network_addresses_are_masked_whole() {
    assert_eq!(text("10.250.19.102:50010"), "<IP>");
    assert_eq!(text("/10.250.19.102:50010"), "/<IP>");
    assert_eq!(text("[173.234.31.186]"), "[<IP>]");
    assert_eq!(text("fe80::1ff:fe23:4567:890a"), "<IP>");
    assert_eq!(text("0:0:0:0:0:0:0:1"), "<IP>");
    assert_eq!(text("00:11:22:33:44:55"), "<MAC>");
    assert_eq!(text("proxy.cse.cuhk.edu.hk:5070"), "<HOSTPORT>");
    assert_eq!(text("localhost:8080"), "<HOSTPORT>");
    assert_eq!(text("http://example.com/a?b=1,"), "<URL>,");
    assert_eq!(text("bob@example.com"), "<EMAIL>");
    assert_eq!(text("10.250.19.102:50010:Got"), "<IP>:Got");
    // IPv6 printed `%s:%d` without brackets: the port is the group that does not fit.
    assert_eq!(text("2001:db8:cfa7::8b63:64085"), "<IP>");
    assert_eq!(text("2a02:1e0c:b3f8:1:eaab:885f:2:b06c:51234"), "<IP>");
    assert_eq!(text("2001:db8::1:6379,"), "<IP>,");
    for not_ip in [
        "1:2:3:4:5:6:7:8:9:10",
        "2001:db8::1::80",
        "2001:db8::1:999999",
    ] {
        assert_ne!(text(not_ip), "<IP>", "{not_ip}");
    }
}

#[test]
fn ids_dates_times_and_paths_are_masked() {
    assert_eq!(text("123e4567-e89b-12d3-a456-426614174000"), "<UUID>");
    assert_eq!(
        text("req-123e4567-e89b-12d3-a456-426614174000"),
        "req-<UUID>"
    );
    assert_eq!(text("2015-07-29"), "<TIME>");
    assert_eq!(text("2015-07-29T17:41:44.747Z"), "<TIME>");
    assert_eq!(text("17:41:44,747"), "<TIME>");
    assert_eq!(text("00:02"), "<TIME>");
    assert_eq!(text("[17/Jun/2005:07:07:00"), "[<TIME>");
    assert_eq!(text("/user/root/rand/part-00590."), "<PATH>.");
    assert_eq!(text("Path:/hbase/a"), "Path:<PATH>");
    assert_eq!(text("C:\\Windows\\x.dll"), "<PATH>");
    assert_eq!(text("'/udev/tty2'"), "'<PATH>'");
}

#[test]
fn key_values_mask_the_value_whatever_its_type() {
    assert_eq!(text("uid=0"), "uid=<*>");
    assert_eq!(text("user=root"), "user=<*>");
    assert_eq!(text("ruser="), "ruser=");
    assert_eq!(text("a=1,b=0x2,c=true"), "a=<*>,b=<*>,c=<*>");
    assert_eq!(text("Surface(name=com.a/b.C)"), "Surface(name=<*>)");
    assert_eq!(text("tag=\"View Lock\","), "tag=<*>,");
    assert_eq!(text("a==b"), "a==b");
    // key:value only when the value is recognisably variable
    assert_eq!(text("ret:false"), "ret:<BOOL>");
    assert_eq!(text("index:3,"), "index:<NUM>,");
    assert_eq!(text("pam_unix(sshd:auth):"), "pam_unix(sshd:auth):");
    assert_eq!(text("setLightsOn(true)"), "setLightsOn(<BOOL>)");
}

#[test]
fn plain_words_are_untouched() {
    for w in [
        "hello",
        "Failed",
        "error:",
        "(has",
        "extras)",
        "****",
        "-",
        "NameSystem.delete:",
        "sure",
        "falsey",
    ] {
        assert_eq!(m(w), (w.to_string(), false), "{w}");
    }
}

#[test]
fn dotted_names_with_three_parts_are_masked() {
    assert_eq!(text("java.io.IOException:"), "<FQN>:");
    assert_eq!(
        text("action:android.intent.action.SCREEN_ON"),
        "action:<FQN>"
    );
    assert_eq!(text("ns.marryaldkfaczcz.com"), "<FQN>");
    assert_eq!(
        text("NameSystem.addStoredBlock:"),
        "NameSystem.addStoredBlock:"
    );
    assert_eq!(text("mice.c(1234)]:"), "mice.c(<NUM>)]:");
}

#[test]
fn user_placeholders_are_variables() {
    assert_eq!(m("<ORDER>"), ("<ORDER>".into(), true));
    assert_eq!(m("id:<ORDER>,"), ("id:<ORDER>,".into(), false));
    assert_eq!(m("<ok>"), ("<ok>".into(), false));
}

#[test]
fn disabled_builtins_are_not_applied() {
    let b = Builtins::all().without(["num", "kv"]).unwrap();
    let mut out = Vec::new();
    let info = mask_token(b"uid=42", class_of(b"uid=42"), b, &mut out);
    assert!(!info.masked && out.is_empty(), "unchanged");
    out.clear();
    mask_token(b"10.0.0.1", class_of(b"10.0.0.1"), b, &mut out);
    assert_eq!(out, b"<IP>");
    assert_eq!(Builtins::all().without(["nope"]), Err("nope".to_string()));
}

#[test]
fn very_long_tokens_become_long() {
    let t = "x".repeat(100_000);
    assert_eq!(m(&t), ("<LONG>".into(), true));
}

#[test]
fn relative_paths_need_three_segments() {
    assert_eq!(m("src/main/App.java"), ("<PATH>".into(), true));
    assert_eq!(text("Library/Caches/com.apple.x,"), "<PATH>,");
    assert_eq!(text("read/write"), "read/write");
    assert_eq!(text("TCP/IP"), "TCP/IP");
    assert_eq!(text("HTTP/1.1"), "HTTP/<NUM>");
}

#[test]
fn a_value_with_a_query_keeps_its_ampersands() {
    assert_eq!(
        text("path=/v1/logs?follow=true&offset=5&origin=end"),
        "path=<*>"
    );
    assert_eq!(text("url=http://x/y?a=1&b=2,"), "url=<*>,");
    // Without a query, `&` still ends a value.
    assert_eq!(text("a=1&b=2"), "a=<*>&b=<*>");
}

#[test]
fn dotted_keys_are_key_paths() {
    assert_eq!(m("java.home=/usr/lib/jvm"), ("<FQN>=<*>".into(), true));
    assert_eq!(
        m("environment:os.name=Linux"),
        ("environment:<FQN>=<*>".into(), false)
    );
    assert_eq!(
        text("NameSystem.addStoredBlock:"),
        "NameSystem.addStoredBlock:"
    );
    assert_eq!(text("mice.c"), "mice.c");
}

#[test]
fn a_duration_has_at_most_one_part_per_unit() {
    assert_eq!(text("1h2m3s4ms5us6ns"), "<DUR>");
    // A chain of more parts is no duration: each word start after a `.` would scan the rest of
    // the chain again (quadratic: a 64 KiB token took 20 s with the `long` mask off).
    assert_eq!(text("1h1m1s1h1m1s1h"), "1h1m1s1h1m1s1h");
    let chain = format!("{}x", "1h1.".repeat(16 * 1024));
    let b = Builtins::all().without(["long"]).unwrap();
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    mask_token(chain.as_bytes(), class_of(chain.as_bytes()), b, &mut out);
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(2), "{took:?}");
}

#[test]
fn a_message_key_keeps_its_first_word() {
    // `msg="Started server"` and `msg="Stopped server"` are two events: the first word of a
    // logfmt message is the message's, not a value of the key.
    assert_eq!(text("msg=\"RunPodSandbox"), "msg=\"RunPodSandbox");
    assert_eq!(text("message=Stopped"), "message=Stopped");
    assert_eq!(text("MSG=started"), "MSG=started");
    // The masks of values still apply to it, and other keys' values are still values.
    assert_eq!(text("msg=10.0.0.1"), "msg=<IP>");
    assert_eq!(text("user=bob"), "user=<*>");
    assert_eq!(text("msgs=5"), "msgs=<*>");
}

#[test]
fn a_long_token_is_key_value_only_where_the_kv_mask_reads_a_key() {
    // Base64 with its padding (`…==`, `…=`) ends in `=` but has no value: over 256 bytes it is
    // one `<LONG>`, not a 300-byte "key" kept as text (a new pattern per line).
    let blob = "aB3_-".repeat(60);
    assert_eq!(text(&format!("{blob}==")), "<LONG>");
    assert_eq!(text(&format!("{blob}=")), "<LONG>");
    // A key with a long value keeps its key, as before.
    assert_eq!(text(&format!("data={blob}")), "data=<*>");
}

#[test]
fn only_the_key_of_a_message_keeps_its_value() {
    // `msg=` keeps its message's first word; a `key=value` inside that word is still a value.
    assert_eq!(text("msg=\"user=bob"), "msg=\"user=<*>");
    assert_eq!(text("msg=user=dave"), "msg=user=<*>");
    assert_eq!(text("msg=\"Started"), "msg=\"Started");
}
