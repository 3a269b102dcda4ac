//! Progress bars are for a person at a terminal: with stderr a pipe (a log
//! file, CI), `howl patterns mine`, `howl run` on a file and `howl review`
//! write no bar, no carriage return and no escape sequence; with stderr a
//! terminal (a pseudo-terminal from util-linux's `script`), the bar shows
//! bytes and lines per second.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{howl, howl_in, write};

/// A log of `lines` lines, enough that a bar would be drawn several times.
fn log(dir: &Path, lines: usize) -> PathBuf {
    let text: String = (0..lines)
        .map(|i| {
            format!(
                "2024-05-01 12:00:00 INFO user {i} logged in from 10.0.{}.{}\n",
                i % 250,
                i % 7
            )
        })
        .collect();
    write(dir, "app.log", &text)
}

/// What a drawn bar leaves behind, whatever the terminal.
fn bar_traces(stderr: &str) -> Vec<&'static str> {
    [
        ("\r", "a carriage return"),
        ("\x1b[", "an escape sequence"),
        ("lines/s", "a rate"),
        ("ETA", "an ETA"),
    ]
    .into_iter()
    .filter(|(needle, _)| stderr.contains(needle))
    .map(|(_, what)| what)
    .collect()
}

const CI: &str = r#"
[sources.log]
type = "stdin"

[sinks.out]
type = "blackhole"
inputs = ["log"]
"#;

#[test]
fn no_progress_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let log = log(dir.path(), 60_000);
    let log_arg = log.to_str().unwrap();

    let (code, out, err) = howl_in(dir.path(), &["patterns", "mine", log_arg], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("logged in from"),
        "the table is printed: {out}"
    );
    assert!(
        bar_traces(&err).is_empty(),
        "patterns mine: {:?} in {err:?}",
        bar_traces(&err)
    );

    // `howl run` with the file as stdin: the case that gets a bar on a terminal.
    let config = write(dir.path(), "ci.toml", CI);
    let output = howl()
        .args(["-q", "run", "-c"])
        .arg(&config)
        .current_dir(dir.path())
        .stdin(Stdio::from(std::fs::File::open(&log).unwrap()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{err}");
    assert!(
        bar_traces(&err).is_empty(),
        "run: {:?} in {err:?}",
        bar_traces(&err)
    );

    // `howl review` of a store `patterns mine` made.
    let data = dir.path().join("data");
    let (code, _, err) = howl_in(
        dir.path(),
        &[
            "patterns",
            "mine",
            log_arg,
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = howl_in(
        dir.path(),
        &["review", "--data-dir", data.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!out.is_empty(), "the digest is printed");
    assert!(
        bar_traces(&err).is_empty(),
        "review: {:?} in {err:?}",
        bar_traces(&err)
    );
}

/// Runs a shell command line with stderr (and stdout, unless redirected) on
/// a pseudo-terminal; returns what the terminal showed.
fn on_a_terminal(command: &str) -> String {
    let output = Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{command}: {screen}");
    screen
}

/// The control: the same commands with stderr on a pseudo-terminal draw a
/// bar (a spinner for the review), so the test above would see one if the
/// check were missing.
#[test]
fn a_progress_bar_when_stderr_is_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("util-linux's `script` is not installed: no pseudo-terminal to test the bar on");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = log(dir.path(), 60_000);
    let howl = env!("CARGO_BIN_EXE_howl");
    let table = dir.path().join("table.txt");
    let data = dir.path().join("data");

    let screen = on_a_terminal(&format!(
        "'{howl}' patterns mine '{}' --data-dir '{}' > '{}'",
        log.display(),
        data.display(),
        table.display()
    ));
    assert!(screen.contains("mining ["), "a bar: {screen:?}");
    assert!(
        screen.contains("MiB") || screen.contains("KiB"),
        "bytes: {screen:?}"
    );
    assert!(
        screen.contains("lines/s") && screen.contains("ETA"),
        "{screen:?}"
    );
    assert!(screen.contains('\r'), "redrawn in place: {screen:?}");
    let table = std::fs::read_to_string(&table).unwrap();
    assert!(
        table.contains("logged in from"),
        "stdout keeps the table alone: {table}"
    );
    assert!(!table.contains("lines/s"), "{table}");

    let config = write(dir.path(), "ci.toml", CI);
    let events = dir.path().join("events.out");
    let screen = on_a_terminal(&format!(
        "'{howl}' -q run -c '{}' < '{}' > '{}'",
        config.display(),
        log.display(),
        events.display()
    ));
    assert!(
        screen.contains("stdin ["),
        "a bar of the run's stdin: {screen:?}"
    );
    assert!(screen.contains("lines/s"), "{screen:?}");
    // With the events on the same screen, no bar draws over them.
    let screen = on_a_terminal(&format!(
        "'{howl}' -q run -c '{}' < '{}'",
        config.display(),
        log.display()
    ));
    assert!(
        !screen.contains("stdin ["),
        "no bar over the events: {screen:?}"
    );

    let screen = on_a_terminal(&format!(
        "'{howl}' review --data-dir '{}' > /dev/null",
        data.display()
    ));
    assert!(
        screen.contains("reviewing the pattern stores"),
        "a spinner: {screen:?}"
    );
}
