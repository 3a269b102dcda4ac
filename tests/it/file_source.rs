//! The `file` source follows appends, picks up new files, and resumes from
//! its checkpoint after a restart without re-reading or skipping lines.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{Running, free_port, write};

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// A topology reading files with the `file` source options `source` into
/// `out.log` (one line per event), with the API on `api`.
fn topology(api: u16, source: &str) -> String {
    format!(
        "data_dir = \"state\"\n[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
         [sources.logs]\ntype = \"file\"\n{source}\
         [sinks.out]\ntype = \"file\"\ninputs = [\"logs\"]\npath = \"out.log\"\nencoding = \"text\"\n"
    )
}

/// Waits (bounded) until `path` has `lines` lines.
async fn wait_for_lines(path: &Path, lines: usize) -> String {
    let start = Instant::now();
    loop {
        let text = crate::common::complete_lines(path);
        if text.lines().count() >= lines || start.elapsed() > Duration::from_secs(20) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn follows_appends_and_resumes_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    append(&logs.join("a.log"), "a1\na2\n");
    let api = free_port();
    let config = write(
        dir.path(),
        "a.toml",
        &topology(api, "include = [\"logs/*.log\"]\npoll_interval_ms = 50\n"),
    );
    let out = dir.path().join("out.log");

    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    wait_for_lines(&out, 2).await;
    append(&logs.join("a.log"), "a3\npartial");
    append(&logs.join("b.log"), "b1\n");
    let text = wait_for_lines(&out, 4).await;
    let output = howl.terminate(Duration::from_secs(20));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut seen: Vec<&str> = text.lines().collect();
    seen.sort();
    assert_eq!(
        seen,
        ["a1", "a2", "a3", "b1"],
        "the partial line waits for its newline"
    );

    // While howl is down, the partial line is completed and more is written.
    append(&logs.join("a.log"), " done\na4\n");
    append(&logs.join("b.log"), "b2\n");
    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    let text = wait_for_lines(&out, 7).await;
    let output = howl.terminate(Duration::from_secs(20));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut seen: Vec<&str> = text.lines().collect();
    seen.sort();
    assert_eq!(
        seen,
        ["a1", "a2", "a3", "a4", "b1", "b2", "partial done"],
        "a restart neither re-reads nor skips lines"
    );
}

#[tokio::test]
async fn read_from_end_skips_existing_lines() {
    let dir = tempfile::tempdir().unwrap();
    append(&dir.path().join("app.log"), "old\n");
    let api = free_port();
    let config = write(
        dir.path(),
        "a.toml",
        &topology(
            api,
            "include = [\"app.log\"]\nread_from = \"end\"\npoll_interval_ms = 50\n",
        ),
    );
    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    append(&dir.path().join("app.log"), "new\n");
    let text = wait_for_lines(&dir.path().join("out.log"), 1).await;
    let output = howl.terminate(Duration::from_secs(20));
    assert!(output.status.success());
    assert_eq!(text, "new\n");
}

/// Runs howl on `include`, writes lines, rotates like logrotate (rename,
/// then a new file at the old name, with lines written to the old file just
/// before and to the new one just after), and returns every line read.
async fn rotate_by_rename(include: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let log = logs.join("app.log");
    append(&log, "1\n2\n");
    let api = free_port();
    let config = write(
        dir.path(),
        "a.toml",
        &topology(
            api,
            &format!("include = [\"{include}\"]\npoll_interval_ms = 200\n"),
        ),
    );
    let out = dir.path().join("out.log");
    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    wait_for_lines(&out, 2).await;
    for round in 0..3 {
        // The last lines before the rename, then the rename and the new file,
        // all within one poll interval.
        append(&log, &format!("before-{round}\n"));
        std::fs::rename(&log, logs.join(format!("app.log.{round}"))).unwrap();
        append(&log, &format!("after-{round}\n"));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let text = wait_for_lines(&out, 8).await;
    // Room for a duplicate to show up.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let output = howl.terminate(Duration::from_secs(20));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&out).unwrap_or(text);
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

const ROTATED: [&str; 8] = [
    "1", "2", "after-0", "after-1", "after-2", "before-0", "before-1", "before-2",
];

#[tokio::test]
async fn rotation_by_rename_loses_nothing_when_only_the_live_name_matches() {
    assert_eq!(rotate_by_rename("logs/app.log").await, ROTATED);
}

#[tokio::test]
async fn rotation_by_rename_repeats_nothing_when_rotated_names_match_too() {
    assert_eq!(rotate_by_rename("logs/app.log*").await, ROTATED);
}

#[tokio::test]
async fn exclude_matches_paths_as_include_does() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(logs.join("sub")).unwrap();
    append(&logs.join("top.log"), "top\n");
    append(&logs.join("sub").join("deep.log"), "deep\n");
    let api = free_port();
    let config = write(
        dir.path(),
        "a.toml",
        &topology(
            api,
            "include = [\"logs/**/*.log\"]\nexclude = [\"./logs/*.log\"]\npoll_interval_ms = 50\n",
        ),
    );
    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    let text = wait_for_lines(&dir.path().join("out.log"), 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let output = howl.terminate(Duration::from_secs(20));
    assert!(output.status.success());
    let text = std::fs::read_to_string(dir.path().join("out.log")).unwrap_or(text);
    assert_eq!(
        text, "deep\n",
        "`./logs/*.log` excludes logs/top.log (despite the `./`) and not logs/sub/deep.log (`*` stops at `/`)"
    );
}

#[tokio::test]
async fn a_file_truncated_while_howl_was_down_is_read_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, "old line one\nold line two\n");
    let api = free_port();
    let config = write(
        dir.path(),
        "a.toml",
        &topology(
            api,
            "include = [\"app.log\"]\nread_from = \"end\"\npoll_interval_ms = 50\n",
        ),
    );
    let out = dir.path().join("out.log");
    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    append(&log, "a long line appended while running\n");
    wait_for_lines(&out, 1).await;
    let output = howl.terminate(Duration::from_secs(20));
    assert!(output.status.success());

    // Truncated in place (same inode) and rewritten, shorter, while down.
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .unwrap();
    append(&log, "new\n");
    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    let text = wait_for_lines(&out, 2).await;
    let output = howl.terminate(Duration::from_secs(20));
    assert!(output.status.success());
    assert_eq!(text, "a long line appended while running\nnew\n");
}

/// `count` numbered lines `{tag}-{n}`, from `from`.
fn numbered(tag: &str, from: usize, count: usize) -> String {
    (from..from + count)
        .map(|n| format!("{tag}-{n:05} some text\n"))
        .collect()
}

/// Stops howl and checks it stopped cleanly.
fn stop(howl: &mut Running) {
    let output = howl.terminate(Duration::from_secs(20));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The lines of `out`, once it has `lines` and a little longer (room for
/// a duplicate to show up), sorted.
async fn settled_lines(out: &Path, lines: usize) -> Vec<String> {
    wait_for_lines(out, lines).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut seen: Vec<String> = std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    seen.sort();
    seen
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

#[tokio::test]
async fn a_file_truncated_while_howl_was_down_and_regrown_past_its_checkpoint_is_read_from_its_start()
 {
    // The same inode, and longer than the checkpoint: only its first bytes
    // tell that it holds other lines.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, &numbered("old", 0, 100));
    let api = free_port();
    let config = write(
        dir.path(),
        "a.toml",
        &topology(api, "include = [\"app.log\"]\npoll_interval_ms = 50\n"),
    );
    let out = dir.path().join("out.log");
    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    wait_for_lines(&out, 100).await;
    stop(&mut howl);

    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .unwrap();
    append(&log, &numbered("new", 0, 200));
    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    let seen = settled_lines(&out, 300).await;
    stop(&mut howl);
    let expected = sorted_lines(&(numbered("old", 0, 100) + &numbered("new", 0, 200)));
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn a_file_truncated_and_regrown_within_one_poll_is_read_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, &numbered("old", 0, 100));
    let api = free_port();
    let config = write(
        dir.path(),
        "a.toml",
        &topology(api, "include = [\"app.log\"]\npoll_interval_ms = 3000\n"),
    );
    let out = dir.path().join("out.log");
    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    wait_for_lines(&out, 100).await;
    // Well within the 3 s before the next poll.
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .unwrap();
    append(&log, &numbered("new", 0, 200));
    let seen = settled_lines(&out, 300).await;
    stop(&mut howl);
    let expected = sorted_lines(&(numbered("old", 0, 100) + &numbered("new", 0, 200)));
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn a_file_renamed_while_howl_was_down_goes_on_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let log = logs.join("app.log");
    append(&log, &numbered("first", 0, 100));
    let api = free_port();
    let config = write(
        dir.path(),
        "a.toml",
        &topology(
            api,
            "include = [\"logs/app.log*\"]\npoll_interval_ms = 50\n",
        ),
    );
    let out = dir.path().join("out.log");
    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    wait_for_lines(&out, 100).await;
    stop(&mut howl);

    // Rotated while down: the last lines of the old file, then a new one.
    append(&log, &numbered("first", 100, 10));
    std::fs::rename(&log, logs.join("app.log.1")).unwrap();
    append(&log, &numbered("second", 0, 50));
    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    let seen = settled_lines(&out, 160).await;
    stop(&mut howl);
    let expected = sorted_lines(&(numbered("first", 0, 110) + &numbered("second", 0, 50)));
    assert_eq!(seen, expected, "app.log.1 is not read again from its start");
}

#[tokio::test]
async fn read_from_end_reads_a_file_that_replaced_a_followed_one_while_howl_was_down() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let log = logs.join("app.log");
    append(&log, &numbered("before", 0, 20));
    let api = free_port();
    let config = write(
        dir.path(),
        "a.toml",
        &topology(
            api,
            "include = [\"logs/app.log\", \"logs/other.log\"]\nread_from = \"end\"\npoll_interval_ms = 50\n",
        ),
    );
    let out = dir.path().join("out.log");
    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    append(&log, &numbered("running", 0, 30));
    wait_for_lines(&out, 30).await;
    stop(&mut howl);

    // While down: rotated, a new app.log written; and a file never seen
    // before, at a path without a checkpoint.
    std::fs::rename(&log, logs.join("app.log.1")).unwrap();
    append(&log, &numbered("rotated-in", 0, 40));
    append(&logs.join("other.log"), &numbered("other", 0, 5));
    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    let seen = settled_lines(&out, 70).await;
    stop(&mut howl);
    let expected = sorted_lines(&(numbered("running", 0, 30) + &numbered("rotated-in", 0, 40)));
    assert_eq!(
        seen, expected,
        "the new app.log is read whole; other.log (no checkpoint at its path) from its end"
    );
}

#[tokio::test]
async fn a_copy_of_a_truncated_file_goes_on_from_where_the_original_was() {
    // logrotate's `copytruncate` under a glob that matches the copy.
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let log = logs.join("app.log");
    append(&log, &numbered("old", 0, 100));
    let api = free_port();
    let config = write(
        dir.path(),
        "a.toml",
        &topology(
            api,
            "include = [\"logs/app.log*\"]\npoll_interval_ms = 200\n",
        ),
    );
    let out = dir.path().join("out.log");
    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    wait_for_lines(&out, 100).await;
    append(&log, &numbered("old", 100, 10));
    std::fs::copy(&log, logs.join("app.log.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .unwrap();
    append(&log, &numbered("new", 0, 20));
    let seen = settled_lines(&out, 130).await;
    stop(&mut howl);
    let expected = sorted_lines(&(numbered("old", 0, 110) + &numbered("new", 0, 20)));
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn a_listing_that_fails_for_want_of_file_descriptors_reads_nothing_again() {
    use crate::common::tcp::{self, PARTIAL_HEAD};
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let log = logs.join("app.log");
    append(&log, &numbered("a", 0, 100));
    let (api, http) = (free_port(), free_port());
    let config = write(
        dir.path(),
        "a.toml",
        &format!(
            "{}[sources.in]\ntype = \"http_server\"\naddress = \"127.0.0.1:{http}\"\n\
             connections.max = 1000\nconnections.header_read_timeout_secs = 60\n\
             [sinks.null]\ntype = \"blackhole\"\ninputs = [\"in\"]\n",
            topology(api, "include = [\"logs/*.log\"]\npoll_interval_ms = 50\n")
        ),
    );
    let out = dir.path().join("out.log");
    let mut howl = Running::start_with_file_limit(dir.path(), &config, api, 64).await;
    wait_for_lines(&out, 100).await;
    // Every file descriptor taken by connections that never finish a head:
    // listing `logs/` fails (EMFILE) for a while.
    let held = tcp::stalled(&format!("127.0.0.1:{http}"), 120, PARTIAL_HEAD).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(held);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    append(&log, &numbered("a", 100, 10));
    let seen = settled_lines(&out, 110).await;
    let stderr = howl.stderr();
    stop(&mut howl);
    assert_eq!(
        seen,
        sorted_lines(&numbered("a", 0, 110)),
        "app.log was not taken for gone, nor read again: {stderr}"
    );
    assert!(
        stderr.contains("cannot list"),
        "the listing did fail: {stderr}"
    );
}

/// A glob that matches nothing is said at once (and every minute), and
/// each file followed is logged at info level: a typo or a missing log
/// must not look like a quiet one.
#[tokio::test]
async fn a_glob_that_matches_nothing_is_said_and_files_followed_are_logged() {
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let config = write(
        dir.path(),
        "a.toml",
        &topology(api, "include = [\"logs/*.log\"]\npoll_interval_ms = 50\n"),
    );
    let howl = Running::start(dir.path(), &config, api, &[]).await;
    crate::common::wait_for("the warning", Duration::from_secs(10), || {
        howl.stderr()
            .contains("no file matches `include` (logs/*.log); nothing to read yet")
            .then_some(())
    })
    .await;
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    append(&dir.path().join("logs/app.log"), "hello\n");
    wait_for_lines(&dir.path().join("out.log"), 1).await;
    let stderr = howl.stderr();
    assert!(
        stderr.contains("INFO")
            && stderr.contains("following file")
            && stderr.contains("logs/app.log"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("no file matches").count(),
        1,
        "not repeated within the minute: {stderr}"
    );
}

/// Reading pauses while 16 MiB read are unacknowledged (backpressure). A
/// frame still unfinished, and frames that make no event (blank lines, a
/// JSON `[]`), have nothing to be acknowledged by: were they counted, a
/// line longer than that (a misconfigured delimiter makes the whole file
/// one) or that many blank lines would stop the file for good.
#[tokio::test]
async fn a_line_or_blank_lines_past_the_unacknowledged_limit_do_not_stop_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let seventeen_mib = 17 * 1024 * 1024;
    let mut long = "x".repeat(seventeen_mib);
    long.push_str("\nafter the long line\n");
    append(&logs.join("long.log"), &long);
    let mut blank = "\n".repeat(seventeen_mib);
    blank.push_str("after the blank lines\n");
    append(&logs.join("blank.log"), &blank);
    let mut empty_arrays = "[]|".repeat(seventeen_mib / 3);
    empty_arrays.push_str("{\"message\":\"after the empty arrays\"}|");
    append(&logs.join("arrays.rec"), &empty_arrays);
    let api = free_port();
    let config = write(
        dir.path(),
        "a.toml",
        &format!(
            "{}[sources.recs]\ntype = \"file\"\ninclude = [\"logs/*.rec\"]\npoll_interval_ms = 50\n\
             decoding.codec = \"json\"\nframing.method = \"character_delimited\"\n\
             framing.character_delimited.delimiter = \"|\"\n",
            topology(api, "include = [\"logs/*.log\"]\npoll_interval_ms = 50\n")
        )
        .replace("inputs = [\"logs\"]", "inputs = [\"logs\", \"recs\"]"),
    );
    let mut howl = Running::start(dir.path(), &config, api, &[]).await;
    let text = wait_for_lines(&dir.path().join("out.log"), 4).await;
    stop(&mut howl);
    let mut lines: Vec<&str> = text.lines().filter(|line| !line.starts_with('x')).collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "after the blank lines",
            "after the empty arrays",
            "after the long line"
        ]
    );
    assert_eq!(
        text.lines().filter(|line| line.starts_with('x')).count(),
        1,
        "the long line, cut: {} bytes",
        text.len()
    );
}
