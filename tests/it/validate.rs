//! `howl validate`: every problem the issue names is reported, at once, with
//! the file, the component and (where it has one) the line and column; exit
//! 78 on failure and 0 on success.

use std::path::Path;

use crate::common::{howl_in, validate, write};

const SINK: &str = "\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"in\"]\n";

fn check(config: &str, expected: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.toml", config);
    let (code, _, stderr) = validate(dir.path(), &[Path::new("a.toml")]);
    assert_eq!(code, 78, "invalid config must exit 78; stderr:\n{stderr}");
    for needle in expected {
        assert!(stderr.contains(needle), "expected {needle:?} in:\n{stderr}");
    }
    stderr
}

#[test]
fn valid_config_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "a.toml",
        &format!("[sources.in]\ntype = \"stdin\"\n{SINK}"),
    );
    let (code, stdout, stderr) = validate(dir.path(), &[&path]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("valid: 1 source(s), 0 transform(s), 1 sink(s)"),
        "{stdout}"
    );
}

#[test]
fn unknown_type_names_the_alternatives() {
    check(
        &format!("[sources.in]\ntype = \"stdinn\"\n{SINK}"),
        &[
            "a.toml:2:8: sources.in: unknown source type `stdinn`",
            "did you mean `stdin`?",
        ],
    );
}

#[test]
fn every_unknown_option_is_reported_with_its_line() {
    let stderr = check(
        &format!("[sources.in]\ntype = \"stdin\"\nmax_line_byte = 5\ncolour = 1\n{SINK}"),
        &[
            "a.toml:3:1: sources.in: unknown option `max_line_byte` for source type `stdin` (did you mean `max_line_bytes`?)",
            "a.toml:4:1: sources.in: unknown option `colour`",
        ],
    );
    assert_eq!(stderr.matches("error:").count(), 2, "{stderr}");
}

#[test]
fn unknown_nested_option_is_reported() {
    check(
        &format!("[sources.in]\ntype = \"stdin\"\n{SINK}buffer.max_event = 3\n"),
        &[
            "a.toml:7:8: sinks.out: unknown option `buffer.max_event` for sink type `blackhole` (did you mean `buffer.max_events`?)",
        ],
    );
}

#[test]
fn missing_required_option_names_it() {
    check(
        "[sources.in]\ntype = \"stdin\"\n\n[sinks.out]\ntype = \"file\"\ninputs = [\"in\"]\n",
        &["a.toml:4:1: sinks.out: missing required option `path`"],
    );
}

#[test]
fn wrong_value_type_is_reported_at_the_value() {
    check(
        &format!("[sources.in]\ntype = \"stdin\"\nmax_line_bytes = \"big\"\n{SINK}"),
        &["a.toml:3:18: sources.in: invalid type"],
    );
}

#[test]
fn unknown_input_lists_available_ids() {
    check(
        "[sources.in]\ntype = \"stdin\"\n[sources.other]\ntype = \"stdin\"\n[sinks.out]\ntype = \"console\"\ninputs = [\"nope\"]\n",
        &["a.toml:7:11: sinks.out: unknown input `nope`; available: `in`, `other`"],
    );
}

#[test]
fn unknown_named_output_lists_the_outputs() {
    check(
        "[sources.in]\ntype = \"stdin\"\n[transforms.r]\ntype = \"route\"\ninputs = [\"in\"]\nroute.a = \"true\"\n[sinks.out]\ntype = \"console\"\ninputs = [\"r.b\"]\n",
        &["sinks.out: `r` has no output named `b`; its outputs: `r.a`, `r._unmatched`"],
    );
}

#[test]
fn glob_matching_nothing_is_an_error() {
    check(
        "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"console\"\ninputs = [\"app_*\"]\n",
        &["a.toml:5:11: sinks.out: input glob `app_*` matches no component output"],
    );
}

#[test]
fn globs_select_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "a.toml",
        "[sources.app_a]\ntype = \"stdin\"\n[sources.app_b]\ntype = \"stdin\"\n[sinks.out]\ntype = \"console\"\ninputs = [\"app_*\"]\n",
    );
    let (_, dot, _) = howl_in(dir.path(), &["graph", "-c", path.to_str().unwrap()], &[]);
    assert!(
        dot.contains("\"app_a\" -> \"out\"") && dot.contains("\"app_b\" -> \"out\""),
        "{dot}"
    );
}

#[test]
fn duplicate_ids_across_kinds_and_files() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.toml", "[sources.in]\ntype = \"stdin\"\n");
    write(
        dir.path(),
        "b.toml",
        "[sinks.in]\ntype = \"console\"\ninputs = [\"in\"]\n",
    );
    let (code, _, stderr) = validate(dir.path(), &[Path::new("a.toml"), Path::new("b.toml")]);
    assert_eq!(code, 78);
    assert!(
        !stderr.contains("no sinks defined"),
        "no follow-on error for the skipped duplicate:\n{stderr}"
    );
    assert!(
        stderr.contains("b.toml:1:8: sinks.in: duplicate component id `in`: already defined as sources.in at a.toml:1:10"),
        "{stderr}"
    );
}

#[test]
fn ids_with_dots_are_rejected() {
    check(
        &format!("[sources.\"my.in\"]\ntype = \"stdin\"\n[sources.in]\ntype = \"stdin\"\n{SINK}"),
        &["sources.my.in: invalid component id `my.in`"],
    );
}

#[test]
fn cycles_print_the_chain() {
    check(
        "[sources.in]\ntype = \"stdin\"\n[transforms.a]\ntype = \"filter\"\ninputs = [\"in\", \"b\"]\ncondition = \"true\"\n[transforms.b]\ntype = \"filter\"\ninputs = [\"a\"]\ncondition = \"true\"\n[sinks.out]\ntype = \"console\"\ninputs = [\"b\"]\n",
        &["cycle in the topology: a -> b -> a"],
    );
}

#[test]
fn components_without_inputs_are_rejected() {
    check(
        "[sources.in]\ntype = \"stdin\"\n[transforms.t]\ntype = \"filter\"\ncondition = \"true\"\n[sinks.out]\ntype = \"console\"\ninputs = []\n",
        &[
            "transforms.t: transform has no inputs",
            "sinks.out: sink has no inputs",
        ],
    );
}

#[test]
fn no_sources_and_no_sinks_are_errors() {
    check(
        "[transforms.t]\ntype = \"filter\"\ninputs = [\"x\"]\ncondition = \"true\"\n",
        &["no sources defined", "no sinks defined"],
    );
}

#[test]
fn unconsumed_output_is_a_warning_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.toml",
        "[sources.in]\ntype = \"stdin\"\n[sources.spare]\ntype = \"stdin\"\n[sinks.out]\ntype = \"console\"\ninputs = [\"in\"]\n",
    );
    let (code, _, stderr) = validate(dir.path(), &[Path::new("a.toml")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("warning: a.toml:3:10: sources.spare: output `spare` is not consumed"),
        "{stderr}"
    );
}

#[test]
fn vrl_errors_point_into_the_config_file() {
    let stderr = check(
        "[sources.in]\ntype = \"stdin\"\n[transforms.p]\ntype = \"remap\"\ninputs = [\"in\"]\nsource = '''\n.a = 1\n.x = parse_json(.message)\n'''\n[sinks.out]\ntype = \"console\"\ninputs = [\"p\"]\n",
        &["a.toml:8:6: transforms.p: VRL error in `source`: unhandled fallible assignment"],
    );
    assert!(
        stderr.contains("error[E103]"),
        "VRL's own diagnostic is shown:\n{stderr}"
    );
}

#[test]
fn vrl_file_errors_point_into_the_vrl_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "prog.vrl", "\n\n.x = parse_json(.message)\n");
    let config = write(
        dir.path(),
        "a.toml",
        "[sources.in]\ntype = \"stdin\"\n[transforms.p]\ntype = \"remap\"\ninputs = [\"in\"]\nfile = \"prog.vrl\"\n[sinks.out]\ntype = \"console\"\ninputs = [\"p\"]\n",
    );
    let (code, _, stderr) = validate(dir.path(), &[&config]);
    assert_eq!(code, 78);
    assert!(
        stderr.contains("prog.vrl:3:6: transforms.p: VRL error"),
        "{stderr}"
    );
}

#[test]
fn conditions_must_be_boolean() {
    check(
        &format!(
            "[sources.x]\ntype = \"stdin\"\n[transforms.in]\ntype = \"filter\"\ninputs = [\"x\"]\ncondition = '.message'\n{SINK}"
        ),
        &["transforms.in: `condition` must be a VRL expression that returns a boolean"],
    );
}

#[test]
fn an_alert_mapping_with_a_vrl_error_points_into_the_config_file() {
    check(
        r#"[sources.in]
type = "alert_webhook"
address = "127.0.0.1:9095"
mapping = '''
.alert.name = "A"
.alert.summary = parse_json(.text)
'''
[sinks.out]
type = "console"
inputs = ["in"]
"#,
        &["a.toml:6:", "sources.in: VRL error in `mapping`"],
    );
}

#[test]
fn a_missing_tls_file_points_at_its_option() {
    check(
        r#"[sources.otel]
type = "opentelemetry"
http.address = "127.0.0.1:4318"
http.tls = { crt_file = "nope.pem", key_file = "nope.key" }
grpc.address = "127.0.0.1:4317"
grpc.tls = { crt_file = "gone.pem", key_file = "gone.key" }
[sources.hook]
type = "alert_webhook"
address = "127.0.0.1:9095"
tls = { crt_file = "missing.pem", key_file = "missing.key" }
[sinks.out]
type = "console"
inputs = ["otel", "hook"]
"#,
        &[
            "a.toml:4:25: sources.otel: cannot read certificates from ",
            "nope.pem",
            "a.toml:10:20: sources.hook: cannot read certificates from ",
            "missing.pem",
        ],
    );
}

#[test]
fn toml_syntax_errors_have_positions() {
    check(
        "[sources.in\ntype = \"stdin\"\n",
        &["a.toml:1:", "invalid TOML"],
    );
}

#[test]
fn every_problem_is_reported_in_one_run() {
    let stderr = check(
        "[sources.in]\ntype = \"stdin\"\nbogus = 1\n[transforms.p]\ntype = \"remap\"\ninputs = [\"nope\"]\nsource = '.x = parse_json(.message)'\n[sinks.out]\ntype = \"nothing\"\ninputs = [\"p\"]\n",
        &[
            "unknown option `bogus`",
            "unknown input `nope`",
            "VRL error in `source`",
            "unknown sink type `nothing`",
        ],
    );
    assert!(stderr.contains("howl validate: 4 error(s)"), "{stderr}");
}

#[test]
fn environment_interpolation_is_strict() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.toml",
        "[sources.in]\ntype = \"stdin\"\nmax_line_bytes = ${HOWL_TEST_UNSET_VAR}\n[sinks.out]\ntype = \"console\"\ninputs = [\"in\"]\n",
    );
    let (code, _, stderr) = validate(dir.path(), &[Path::new("a.toml")]);
    assert_eq!(code, 78);
    assert!(
        stderr.contains("a.toml:3:18: environment variable `HOWL_TEST_UNSET_VAR` is not set"),
        "{stderr}"
    );

    let (code, _, stderr) = howl_in(
        dir.path(),
        &["validate", "-c", "a.toml"],
        &[("HOWL_TEST_UNSET_VAR", "100")],
    );
    assert_eq!(code, 0, "{stderr}");

    let (code, _, stderr) = howl_in(
        dir.path(),
        &["validate", "-c", "a.toml"],
        &[("HOWL_TEST_UNSET_VAR", "1\n[sinks.evil]")],
    );
    assert_eq!(code, 78);
    assert!(stderr.contains("contains a newline"), "{stderr}");
}

#[test]
fn several_files_merge_and_howl_config_env_works() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.toml", "[sources.in]\ntype = \"stdin\"\n");
    let b = write(dir.path(), "b.toml", SINK);
    let (code, stdout, stderr) = validate(dir.path(), &[&a, &b]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("1 source(s), 0 transform(s), 1 sink(s)"));
    let both = format!("{},{}", a.display(), b.display());
    let (code, _, stderr) = howl_in(dir.path(), &["validate"], &[("HOWL_CONFIG", &both)]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn graph_prints_dot_and_mermaid() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "a.toml",
        "[sources.in]\ntype = \"stdin\"\n[transforms.r]\ntype = \"route\"\ninputs = [\"in\"]\nroute.errors = \"true\"\n[sinks.out]\ntype = \"console\"\ninputs = [\"r.errors\", \"r._unmatched\"]\n",
    );
    let path = path.to_str().unwrap();
    let (_, dot, _) = howl_in(dir.path(), &["graph", "-c", path], &[]);
    assert!(dot.starts_with("digraph howl {"), "{dot}");
    assert!(dot.contains("\"in\" -> \"r\";"), "{dot}");
    assert!(
        dot.contains("\"r\" -> \"out\" [label=\"errors\"];"),
        "{dot}"
    );
    let (_, mermaid, _) = howl_in(
        dir.path(),
        &["graph", "--format", "mermaid", "-c", path],
        &[],
    );
    assert!(mermaid.starts_with("flowchart LR\n"), "{mermaid}");
    assert!(mermaid.contains("n1 -- \"errors\" --> n2"), "{mermaid}");
}

#[test]
fn a_missing_config_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = validate(dir.path(), &[Path::new("nope.toml")]);
    assert_eq!(code, 78);
    assert!(
        stderr.contains("nope.toml: cannot read config file"),
        "{stderr}"
    );
}

#[test]
fn chat_sinks_refuse_concurrent_requests() {
    check(
        "[sources.in]\ntype = \"stdin\"\n\
         [sinks.tg]\ntype = \"telegram\"\ninputs = [\"in\"]\nbot_token = \"123456:ABC\"\nchat_id = \"1\"\nrequest.concurrency = 4\n\
         [sinks.sl]\ntype = \"slack\"\ninputs = [\"in\"]\nwebhook_url = \"http://127.0.0.1:1/hook\"\nrequest.concurrency = 2\n",
        &[
            "sinks.tg: `request.concurrency` must be 1 for a chat sink (it is 4)",
            "sinks.sl: `request.concurrency` must be 1 for a chat sink (it is 2)",
        ],
    );
}

#[test]
fn http_server_paths_must_be_literal() {
    check(
        "[sources.in]\ntype = \"http_server\"\naddress = \"127.0.0.1:1\"\npath = \"/a/:id\"\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"in\"]\n",
        &[
            "a.toml:4:8: sources.in: `path` must be a literal path; `:` would make `/a/:id` a pattern",
        ],
    );
}

#[test]
fn demo_logs_interval_out_of_range_is_refused() {
    check(
        "[sources.in]\ntype = \"demo_logs\"\ninterval = 1e-7\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"in\"]\n",
        &[
            "a.toml:3:12: sources.in: `interval` must be 0 (as fast as possible) or between 0.000001 and 86400 seconds",
        ],
    );
}

#[test]
fn buffer_errors_point_at_the_buffer() {
    check(
        "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"in\"]\nbuffer.max_events = 0\n",
        &["a.toml:6:21: sinks.out: buffer: expected a whole number from 1 to 100000000, not 0"],
    );
}

#[test]
fn a_file_source_reports_each_problem_at_its_option() {
    // A bad glob is refused while the options are read, at the pattern
    // itself; a zero interval, found when the source is built, at its value.
    check(
        "[sources.in]\ntype = \"file\"\ninclude = [\"a.log\", \"[\"]\n\
         [sources.slow]\ntype = \"file\"\ninclude = [\"a.log\"]\npoll_interval_ms = 0\n\
         [sinks.out]\ntype = \"blackhole\"\ninputs = [\"in\", \"slow\"]\n",
        &[
            "a.toml:3:21: sources.in: invalid glob `[`",
            "a.toml:7:20: sources.slow: `poll_interval_ms` must be more than 0",
        ],
    );
}

#[test]
fn a_bad_scrape_endpoint_is_reported_at_its_item() {
    check(
        &format!(
            "[sources.in]\ntype = \"prometheus_scrape\"\n\
             endpoints = [\"http://a/metrics\", \"localhost:9100\"]\n{SINK}"
        ),
        &["a.toml:3:34: sources.in: `localhost:9100` is not an http(s) URL"],
    );
}

#[test]
fn an_empty_api_token_is_refused() {
    check(
        "[api]\nenabled = true\nauth_token = \"\"\n[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"in\"]\n",
        &["api: `auth_token` is empty"],
    );
}

#[test]
fn connection_limits_are_checked_at_their_value_in_the_api_and_the_source() {
    check(
        &format!(
            "[api]\nenabled = true\nconnections.idle_timeout_secs = 0\n\
             [sources.in]\ntype = \"http_server\"\naddress = \"127.0.0.1:1\"\n\
             connections.max_header_bytes = 10\n{SINK}"
        ),
        &[
            "a.toml:3:33: api: must be more than 0",
            "a.toml:7:32: sources.in: expected a number of bytes from 1024 to 262144, not 10",
        ],
    );
}

#[test]
fn ids_with_slashes_are_rejected() {
    check(
        "[sources.in]\ntype = \"stdin\"\n[transforms.\"p/q\"]\ntype = \"filter\"\ninputs = [\"in\"]\ncondition = 'true'\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"p/q\"]\n",
        &["invalid component id `p/q`", "`/` (used in state keys)"],
    );
}

#[test]
fn the_readme_shows_what_validate_prints_for_bad_values() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    // The example file is the README's own `# agent.toml` block.
    let config = readme
        .split("```toml\n# agent.toml (invalid on purpose)\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the README shows agent.toml");
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "agent.toml",
        &format!("# agent.toml (invalid on purpose)\n{config}"),
    );
    let (code, _, stderr) = validate(dir.path(), &[Path::new("agent.toml")]);
    assert_eq!(code, 78, "{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: agent.toml:"))
        .collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    for line in lines {
        assert!(readme.contains(line), "the README does not show:\n{line}");
    }
}

#[test]
fn every_unknown_key_in_a_list_of_tables_is_reported_with_its_item() {
    let stderr = check(
        "[sources.in]\ntype = \"stdin\"\n\
         [transforms.th]\ntype = \"threshold\"\ninputs = [\"in\"]\n\
         [[transforms.th.rules]]\nname = \"cpu\"\nconditon = \"> 90\"\nfor_sec = 60\n\
         [[transforms.th.rules]]\nname = \"mem\"\ncondition = \"> 90\"\ngroup_bye = [\"host\"]\n\
         [transforms.p]\ntype = \"pattern\"\ninputs = [\"in\"]\n\
         masks = [{ name = \"order\", patern = \"ORD-\\\\d+\" }]\n\
         [sinks.out]\ntype = \"blackhole\"\ninputs = [\"th\", \"p\"]\n",
        &[
            "unknown option `rules[0].conditon` for transform type `threshold` (did you mean `rules[0].condition`?)",
            "unknown option `rules[0].for_sec`",
            "unknown option `rules[1].group_bye`",
            "unknown option `masks[0].patern` for transform type `pattern` (did you mean `masks[0].pattern`?)",
        ],
    );
    assert!(stderr.contains("a.toml:8:1:"), "at the key: {stderr}");
    assert!(
        stderr.contains("missing required option `rules[0].metric`"),
        "a missing option names its item: {stderr}"
    );
}

#[test]
fn a_list_where_a_table_belongs_is_refused() {
    check(
        "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"webhook\"\ninputs = [\"in\"]\n\
         uri = \"http://127.0.0.1:9/h\"\nretry = []\n",
        &["a.toml:7:9: sinks.out: `retry` must be a table"],
    );
}

#[test]
fn positions_after_an_interpolated_value_are_those_of_the_file_on_disk() {
    let config = "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"webhook\"\ninputs = [\"in\"]\n\
                  uri = \"http://127.0.0.1:9/x\"\n\
                  retry = { initial_backoff_secs = \"${BACKOFF:-1s}\", max_duration_secs = \"soon\" }\n";
    let column = config.lines().nth(6).unwrap().find("\"soon\"").unwrap() + 1;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.toml", config);
    for backoff in ["250ms", "1w1d1h1m1s100ms"] {
        let (code, _, stderr) = howl_in(
            dir.path(),
            &["validate", "-c", "a.toml"],
            &[("BACKOFF", backoff)],
        );
        assert_eq!(code, 78);
        assert!(
            stderr.contains(&format!(
                "a.toml:7:{column}: sinks.out: invalid duration `soon`"
            )),
            "{backoff}: {stderr}"
        );
    }
}

#[test]
fn a_toml_syntax_error_is_reported_alone() {
    let stderr = check(
        "[sources.in]\ntype = \"stdin\"\ntype = \"file\"\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"in\"]\n",
        &["a.toml:3:1: invalid TOML"],
    );
    assert!(!stderr.contains("no sources defined"), "{stderr}");
    assert!(stderr.contains("howl validate: 1 error(s)"), "{stderr}");
}

#[test]
fn control_characters_never_reach_the_terminal() {
    let stderr = check(
        "[sources.in]\ntype = \"stdin\"\n[transforms.t]\ntype = \"throttle\"\ninputs = [\"in\"]\n\
         threshold = 1\nwindow_secs = \"5\\u0000m\\u001b[31m\\u202e\"\n\
         [sinks.out]\ntype = \"blackhole\"\ninputs = [\"t\"]\n",
        &["\\u{0000}", "\\u{001b}", "\\u{202e}"],
    );
    assert!(
        !stderr.contains(['\u{0}', '\u{1b}', '\u{202e}']),
        "raw control characters: {stderr:?}"
    );
}

#[test]
fn ids_with_spaces_or_control_characters_are_refused() {
    for id in ["\"x\\u0000\"", "\" \"", "\"a b\""] {
        check(
            &format!(
                "[sources.{id}]\ntype = \"stdin\"\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"*\"]\n"
            ),
            &["invalid component id"],
        );
    }
}

#[test]
fn a_vrl_program_over_the_size_limit_is_refused_at_its_option() {
    // 300 KiB in one string: quick to compile, so without the limit this
    // config would be valid.
    let program = format!(".a = \"{}\"", "x".repeat(300 * 1024));
    let started = std::time::Instant::now();
    check(
        &format!(
            "[sources.in]\ntype = \"stdin\"\n[transforms.t]\ntype = \"remap\"\ninputs = [\"in\"]\n\
             source = '''{program}'''\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"t\"]\n"
        ),
        &[
            "a.toml:6:10: transforms.t: the program in `source` is 301 KiB: the limit for one VRL program is 256 KiB",
        ],
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn invalid_utf8_is_reported_at_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.toml"),
        b"[sources.in]\ntype = \"stdin\"\n# caf\xC3\xA9 \xFF\n",
    )
    .unwrap();
    let (code, _, stderr) = validate(dir.path(), &[Path::new("a.toml")]);
    assert_eq!(code, 78, "{stderr}");
    assert!(
        stderr.contains(
            "a.toml:3:8: cannot read config file: invalid UTF-8 (byte 0xFF); the file must be saved as UTF-8"
        ),
        "{stderr}"
    );
}

#[test]
fn the_vrl_program_limit_is_configurable_and_checked() {
    let program = format!(".a = 1\n{}", "# padding\n".repeat(300));
    let topology = |limit: &str| {
        format!(
            "{limit}\n[sources.in]\ntype = \"stdin\"\n[transforms.t]\ntype = \"remap\"\ninputs = [\"in\"]\n\
             source = '''\n{program}'''\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"t\"]\n"
        )
    };
    let out = check(
        &topology("vrl_max_program_bytes = 2048"),
        &[
            "the limit for one VRL program is 2 KiB",
            "vrl_max_program_bytes",
        ],
    );
    assert!(out.contains("transforms.t"), "{out}");
    check(
        &topology("vrl_max_program_bytes = 10"),
        &["`vrl_max_program_bytes` must be a whole number of bytes from 1024"],
    );
    let dir = tempfile::tempdir().unwrap();
    let config = crate::common::write(dir.path(), "ok.toml", &topology(""));
    let output = crate::common::howl()
        .arg("validate")
        .arg("-c")
        .arg(&config)
        .output()
        .unwrap();
    assert!(output.status.success(), "3 KiB is under the default limit");
}

#[test]
fn without_a_config_validate_checks_the_demo_as_run_and_graph_use_it() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = crate::common::howl_in(dir.path(), &["validate"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("valid:") && stdout.contains("built-in demo"),
        "{stdout}"
    );
    let (code, graph, _) = crate::common::howl_in(dir.path(), &["graph"], &[]);
    assert_eq!(code, 0);
    assert!(graph.contains("digraph"), "{graph}");
}

#[test]
fn reading_one_output_of_a_component_is_a_choice_not_a_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let patterns = "[sources.in]\ntype = \"stdin\"\n[transforms.patterns]\ntype = \"pattern\"\ninputs = [\"in\"]\n";
    for (sink_inputs, warned) in [
        (r#""patterns.new", "patterns.storm""#, false),
        (r#""patterns""#, false),
        (r#""in""#, true),
    ] {
        write(
            dir.path(),
            "a.toml",
            &format!("{patterns}[sinks.out]\ntype = \"console\"\ninputs = [{sink_inputs}]\n"),
        );
        let (code, _, stderr) = validate(dir.path(), &[Path::new("a.toml")]);
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(
            stderr.contains("is not consumed"),
            warned,
            "reading {sink_inputs}: {stderr}"
        );
    }
}

/// Storms hold new patterns back from `new` and announce them on `storm`:
/// reading `new` alone would lose them without a word.
#[test]
fn reading_new_patterns_without_their_storms_is_warned() {
    let dir = tempfile::tempdir().unwrap();
    for (storm_threshold, warned) in [("", true), ("storm_threshold = 0\n", false)] {
        write(
            dir.path(),
            "a.toml",
            &format!(
                "[sources.in]\ntype = \"stdin\"\n[transforms.patterns]\ntype = \"pattern\"\n\
                 inputs = [\"in\"]\n{storm_threshold}[sinks.out]\ntype = \"console\"\n\
                 inputs = [\"patterns.new\"]\n"
            ),
        );
        let (code, _, stderr) = validate(dir.path(), &[Path::new("a.toml")]);
        assert_eq!(code, 0, "{stderr}");
        let warning = "output `patterns.storm` is not consumed, but `patterns.new` is";
        assert_eq!(
            stderr.contains(warning),
            warned,
            "{storm_threshold}: {stderr}"
        );
        if warned {
            assert!(stderr.contains("a.toml:3:"), "names where: {stderr}");
        }
    }
}

#[test]
fn shared_state_options_are_checked_at_load() {
    let pipeline =
        "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"in\"]\n";
    check(
        &format!(
            "[state.shared.nats]\nurl = \"nats://127.0.0.1:4222\"\nbucket = \"howl.state\"\n{pipeline}"
        ),
        &["a.toml:3:10: state.shared.nats: `bucket` \"howl.state\" is not a bucket name"],
    );
    check(
        &format!("[state.shared.nats]\nurl = \"nats://me:secret@127.0.0.1:4222\"\n{pipeline}"),
        &["a.toml:2:7: state.shared.nats: `url` holds credentials"],
    );
    check(
        &format!(
            "[state.shared.nats]\nurl = \"nats://127.0.0.1:4222\"\nbuckets = \"x\"\n{pipeline}"
        ),
        &["a.toml:3:1: state: unknown option `buckets`"],
    );
}
