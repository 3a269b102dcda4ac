//! `howl test`: `[[tests]]` in a config run the real transforms (sync and
//! task-style) on inserted events; passing, failing and invalid tests are
//! told apart by exit code and report.

use std::path::Path;
use std::process::Output;

use crate::common::{howl, write};

/// A topology with a sync chain (remap → filter, with a rerouted `dropped`
/// output) and a task transform (`throttle`) behind it.
const TOPOLOGY: &str = r#"
[sources.in]
type = "stdin"

[transforms.parse]
type = "remap"
inputs = ["in"]
drop_on_error = true
reroute_dropped = true
source = '''
. |= parse_regex!(string!(.message), r'^(?P<level>[A-Z]+) (?P<host>\S+) (?P<text>.*)$')
.level = downcase(.level)
'''

[transforms.errors]
type = "filter"
inputs = ["parse"]
condition = '.level == "error"'

[transforms.limit]
type = "throttle"
inputs = ["errors"]
threshold = 1
window_secs = 60
key_field = "host"

[sinks.out]
type = "console"
inputs = ["limit", "parse.dropped"]
"#;

fn run_tests(dir: &Path, tests: &str) -> (i32, String, String) {
    write(dir, "topology.toml", TOPOLOGY);
    write(dir, "tests.toml", tests);
    let Output {
        status,
        stdout,
        stderr,
    } = howl()
        .current_dir(dir)
        .args(["test", "-c", "topology.toml", "-c", "tests.toml"])
        .output()
        .expect("run howl test");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

#[test]
fn passing_tests_exit_zero_and_use_no_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run_tests(
        dir.path(),
        r#"
[[tests]]
name = "errors pass the filter"
[[tests.inputs]]
insert_at = "parse"
value = "ERROR web-1 disk full"
[[tests.inputs]]
insert_at = "parse"
value = "INFO web-1 all good"
[[tests.outputs]]
extract_from = "errors"
[[tests.outputs.conditions]]
source = '''
assert_eq!(.level, "error")
assert_eq!(.text, "disk full")
'''

[[tests]]
name = "the throttle lets one event per host through"
[[tests.inputs]]
insert_at = "parse"
value = "ERROR web-1 first"
[[tests.inputs]]
insert_at = "parse"
value = "ERROR web-1 second"
[[tests.inputs]]
insert_at = "parse"
value = "ERROR web-2 other host"
[[tests.outputs]]
extract_from = "limit"
count = 2
[[tests.outputs.conditions]]
source = '.text == "first"'
[[tests.outputs.conditions]]
source = '.host == "web-2"'

[[tests]]
name = "unparsable lines are rerouted, not filtered"
no_outputs_from = ["errors"]
[[tests.inputs]]
insert_at = "parse"
type = "log"
log_fields = { message = "no level here", attempt = 3, origin = { zone = "eu", ids = [1, 2] } }
[[tests.outputs]]
extract_from = "parse.dropped"
[[tests.outputs.conditions]]
source = '.dropped.reason == "error" && .attempt == 3 && .origin.zone == "eu" && .origin.ids[1] == 2'
"#,
    );
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("running 3 test(s)"), "{stdout}");
    assert!(stdout.contains("test errors pass the filter ... passed"));
    assert!(stdout.contains("test the throttle lets one event per host through ... passed"));
    assert!(stdout.contains("test unparsable lines are rerouted, not filtered ... passed"));
    assert!(stdout.contains("3 passed, 0 failed"));
    assert!(
        !dir.path().join("data").exists(),
        "tests must not touch the config's data_dir"
    );
}

#[test]
fn failures_are_reported_with_the_events_and_exit_one() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, _) = run_tests(
        dir.path(),
        r#"
[[tests]]
name = "wrong expectation"
[[tests.inputs]]
insert_at = "parse"
value = "ERROR web-1 disk full"
[[tests.outputs]]
extract_from = "parse"
[[tests.outputs.conditions]]
source = 'assert_eq!(.level, "warn", "level should be warn")'

[[tests]]
name = "nothing comes out"
[[tests.inputs]]
insert_at = "parse"
value = "INFO web-1 fine"
[[tests.outputs]]
extract_from = "errors"

[[tests]]
name = "something comes out"
no_outputs_from = ["limit"]
[[tests.inputs]]
insert_at = "errors"
type = "log"
log_fields = { level = "error", host = "h" }

[[tests]]
name = "too many"
[[tests.inputs]]
insert_at = "errors"
type = "log"
log_fields = { level = "error", host = "h" }
[[tests.inputs]]
insert_at = "errors"
type = "log"
log_fields = { level = "error", host = "h" }
[[tests.outputs]]
extract_from = "errors"
count = 1

[[tests]]
name = "the one that passes"
[[tests.inputs]]
insert_at = "errors"
type = "log"
log_fields = { level = "error", host = "h" }
[[tests.outputs]]
extract_from = "errors"
"#,
    );
    assert_eq!(code, 1, "a failed test exits 1:\n{stdout}");
    for needle in [
        "test wrong expectation ... FAILED",
        "level should be warn",
        r#""message":"ERROR web-1 disk full""#,
        "test nothing comes out ... FAILED",
        "no events came out of `errors`",
        "test something comes out ... FAILED",
        "`limit` was to produce nothing but produced 1 event(s)",
        "test too many ... FAILED",
        "`errors` produced 2 event(s), 1 expected",
        "test the one that passes ... passed",
        "1 passed, 4 failed",
    ] {
        assert!(stdout.contains(needle), "expected {needle:?} in:\n{stdout}");
    }
}

#[test]
fn invalid_tests_are_all_reported_with_positions_and_exit_78() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run_tests(
        dir.path(),
        r#"
[[tests]]
name = "bad"
[[tests.inputs]]
insert_at = "pars"
value = "x"
[[tests.inputs]]
insert_at = "parse"
type = "log"
value = "x"
[[tests.outputs]]
extract_from = "parse.nope"
[[tests.outputs.conditions]]
source = '.level =='
[[tests.outputs]]
extract_from = "errors"
[[tests.outputs.conditions]]
source = '.level'

[[tests]]
name = "bad"
[[tests.outputs]]
extract_from = "in"
"#,
    );
    assert_eq!(code, 78, "{stderr}");
    for needle in [
        "tests.toml:5:13: tests[bad]: `insert_at` names `pars`, which is not a transform",
        "(did you mean `parse`?)",
        "tests.toml:8:13: tests[bad]: a `type = \"log\"` input takes `log_fields`",
        "tests.toml:12:16: tests[bad]: transform `parse` has no output `parse.nope`; it offers `parse`, `parse.dropped`",
        "tests.toml:14:20: tests[bad]: VRL error in `conditions.source`",
        "tests.toml:18:10: tests[bad]: `conditions.source` must be a VRL expression that returns a boolean",
        "duplicate test name `bad`",
        "a test needs at least one `[[tests.inputs]]`",
        "`output` names `in`, which is not a transform",
    ] {
        assert!(stderr.contains(needle), "expected {needle:?} in:\n{stderr}");
    }

    // `howl validate` reports the same problems.
    let output = howl()
        .current_dir(dir.path())
        .args(["validate", "-c", "topology.toml", "-c", "tests.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&output.stderr).contains("duplicate test name `bad`"));
}

#[test]
fn unknown_test_options_are_rejected_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run_tests(dir.path(), "[[tests]]\nname = \"t\"\nexpect = 1\n");
    assert_eq!(code, 78, "{stderr}");
    assert!(
        stderr.contains("tests.toml:3:1: tests[0]: unknown option `expect`"),
        "{stderr}"
    );
}

#[test]
fn a_config_without_tests_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, _) = run_tests(dir.path(), "");
    assert_eq!(code, 0);
    assert!(stdout.contains("no tests"), "{stdout}");
}

#[test]
fn example_topologies_pass_their_own_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies");
    let mut tested = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if !text.contains("[[tests]]") {
            continue;
        }
        let output = howl()
            .args(["test", "-c"])
            .arg(&path)
            .output()
            .expect("run howl test");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}:\n{stdout}\n{}",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains(" 0 failed"), "{stdout}");
        tested += 1;
    }
    assert!(tested >= 1, "at least one example topology carries tests");
}
