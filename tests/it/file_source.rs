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
        let text = std::fs::read_to_string(path).unwrap_or_default();
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
