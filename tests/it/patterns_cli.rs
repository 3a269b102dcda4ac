//! `howl patterns mine | list | diff`.

use crate::common::{howl_in, write};

const BASE: &str = "\
Failed password for root from 10.0.0.1 port 22 ssh2
Accepted publickey for deploy from 10.0.0.2 port 51234 ssh2
Failed password for admin from 10.0.0.3 port 2222 ssh2
";

#[test]
fn mine_prints_one_json_object_per_line_in_order() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "in.log", BASE);
    let (code, stdout, stderr) = howl_in(
        dir.path(),
        &["patterns", "mine", "in.log", "--format", "jsonl"],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["line"], 1);
    assert_eq!(lines[2]["line"], 3);
    assert_eq!(lines[0]["new"], true);
    assert_eq!(lines[1]["new"], true);
    assert_eq!(lines[2]["new"], false);
    assert_eq!(lines[2]["id"], lines[0]["id"]);
    assert_eq!(
        lines[2]["template"],
        "Failed password for <*> from <IP> port <NUM> ssh2"
    );
    assert_eq!(
        lines[0]["template"], "Failed password for root from <IP> port <NUM> ssh2",
        "the template as it stood then"
    );
}

#[test]
fn mine_table_lists_patterns_by_count() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "in.log", BASE);
    let (code, stdout, _) = howl_in(dir.path(), &["patterns", "mine", "in.log"], &[]);
    assert_eq!(code, 0);
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.trim_start().starts_with("e.g."))
        .collect();
    assert!(rows[1].trim_start().starts_with("2 "), "{stdout}");
    assert!(rows[1].contains("Failed password for <*>"), "{stdout}");
    assert!(
        stdout.contains("e.g. Failed password for root from 10.0.0.1 port 22 ssh2"),
        "{stdout}"
    );
}

#[test]
fn a_store_makes_replays_quiet_and_diff_gates_on_new_patterns() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "main.log", BASE);
    write(
        dir.path(),
        "build.log",
        &format!(
            "{BASE}Failed password for guest from 10.9.9.9 port 2200 ssh2\nKernel panic - not syncing: VFS unable to mount root fs\n"
        ),
    );
    let (code, _, stderr) = howl_in(
        dir.path(),
        &["patterns", "mine", "main.log", "--data-dir", "main"],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let (_, replay, _) = howl_in(
        dir.path(),
        &[
            "patterns",
            "mine",
            "main.log",
            "--data-dir",
            "main",
            "--format",
            "jsonl",
        ],
        &[],
    );
    assert!(
        !replay.contains("\"new\":true"),
        "replaying into the store announces nothing: {replay}"
    );

    let (_, mined, _) = howl_in(
        dir.path(),
        &[
            "patterns",
            "mine",
            "build.log",
            "--data-dir",
            "build",
            "--format",
            "jsonl",
        ],
        &[],
    );
    assert_eq!(mined.lines().count(), 5);
    let (code, stdout, stderr) = howl_in(
        dir.path(),
        &[
            "patterns",
            "diff",
            "--baseline",
            "main",
            "--current",
            "build",
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(code, 1, "something is new: {stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let new: Vec<&str> = report["new"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["template"].as_str().unwrap())
        .collect();
    assert_eq!(
        new,
        vec!["Kernel panic - not syncing: VFS unable to mount root fs"],
        "{report:#}"
    );
    assert!(report["gone"].as_array().unwrap().is_empty(), "{report:#}");

    let (code, stdout, _) = howl_in(
        dir.path(),
        &[
            "patterns",
            "diff",
            "--baseline",
            "main",
            "--current",
            "main",
        ],
        &[],
    );
    assert_eq!(code, 0, "nothing new against itself: {stdout}");
    assert_eq!(
        stdout, "new patterns: 0\n\ngone patterns: 0\n\nspiking patterns: 0\n",
        "an empty diff has no empty tables"
    );
    assert!(stdout.starts_with("new patterns: 0"), "{stdout}");
}

#[test]
fn list_filters_by_age_and_diff_needs_a_store() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "in.log", BASE);
    howl_in(
        dir.path(),
        &["patterns", "mine", "in.log", "--data-dir", "store"],
        &[],
    );
    let (code, stdout, _) = howl_in(
        dir.path(),
        &[
            "patterns",
            "list",
            "--data-dir",
            "store",
            "--new-since",
            "1h",
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(code, 0);
    let listed: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["count"], 2);
    let (code, _, stderr) = howl_in(
        dir.path(),
        &[
            "patterns",
            "diff",
            "--baseline",
            "missing",
            "--current",
            "store",
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("no pattern store in missing"), "{stderr}");
}

#[test]
fn mine_takes_the_transform_options_from_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "in.log",
        "order ORD-123 shipped\norder ORD-456 shipped\n",
    );
    write(
        dir.path(),
        "p.toml",
        "masks = [{ name = \"order\", pattern = \"ORD-\\\\d+\" }]\n",
    );
    let (code, stdout, stderr) = howl_in(
        dir.path(),
        &[
            "patterns", "mine", "in.log", "--config", "p.toml", "--format", "jsonl",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout
            .lines()
            .next()
            .unwrap()
            .contains("order <ORDER> shipped"),
        "{stdout}"
    );
    write(
        dir.path(),
        "bad.toml",
        "maskz = []\nmax_patern = 3\nsimilarity = 2\n",
    );
    let (code, _, stderr) = howl_in(
        dir.path(),
        &["patterns", "mine", "in.log", "--config", "bad.toml"],
        &[],
    );
    assert_eq!(code, 78, "a bad options file is a bad config: {stderr}");
    for expected in [
        "bad.toml:1:1: transforms.options: unknown option `maskz` for transform type `pattern` (did you mean `masks`?)",
        "bad.toml:2:1: transforms.options: unknown option `max_patern`",
        "bad.toml:3:14: transforms.options: `similarity` must be more than 0 and at most 1",
    ] {
        assert!(
            stderr.contains(expected),
            "every problem, at its place: {stderr}"
        );
    }
}

/// `n` distinct constant two-word lines (each its own pattern).
fn distinct_lines(n: usize) -> String {
    let word = |mut i: usize| {
        let mut w = String::new();
        for _ in 0..4 {
            w.push((b'a' + (i % 26) as u8) as char);
            i /= 26;
        }
        w
    };
    (0..n)
        .map(|i| format!("{} {}\n", word(i), word(i * 7 + 3)))
        .collect()
}

#[test]
fn list_and_diff_read_a_store_bigger_than_the_default_max_patterns_whole() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "many.log", &distinct_lines(12_000));
    write(dir.path(), "big.toml", "max_patterns = 20000\n");
    let (code, _, stderr) = howl_in(
        dir.path(),
        &[
            "patterns",
            "mine",
            "many.log",
            "--config",
            "big.toml",
            "--data-dir",
            "big",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = howl_in(
        dir.path(),
        &["patterns", "list", "--data-dir", "big", "--format", "json"],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let listed: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listed.len(), 12_000, "nothing evicted while reading");
    let (code, _, stderr) = howl_in(
        dir.path(),
        &["patterns", "diff", "--baseline", "big", "--current", "big"],
        &[],
    );
    assert_eq!(code, 0, "a store has nothing new against itself: {stderr}");
}

#[test]
fn a_closed_output_neither_loses_the_store_nor_changes_the_verdict() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "many.log", &distinct_lines(5_000));
    // `howl patterns mine ... | head -1`
    let mut child = crate::common::howl()
        .current_dir(dir.path())
        .args([
            "patterns",
            "mine",
            "many.log",
            "--format",
            "jsonl",
            "--data-dir",
            "cur",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("\"line\":1"));
    assert!(child.wait().unwrap().success());
    let (code, stdout, _) = howl_in(
        dir.path(),
        &["patterns", "list", "--data-dir", "cur", "--format", "json"],
        &[],
    );
    assert_eq!(code, 0);
    let listed: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listed.len(), 5_000, "every line was mined and saved");

    // `howl patterns diff ... | true`: still exit 1, something is new.
    write(dir.path(), "one.log", "nothing like the others here\n");
    howl_in(
        dir.path(),
        &["patterns", "mine", "one.log", "--data-dir", "base"],
        &[],
    );
    let mut child = crate::common::howl()
        .current_dir(dir.path())
        .args(["patterns", "diff", "--baseline", "base", "--current", "cur"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    assert_eq!(child.wait().unwrap().code(), Some(1));
}

#[test]
fn the_command_line_never_writes_into_a_transform_named_mine() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "t.toml",
        "data_dir = \"store\"\n\
         [sources.in]\ntype = \"stdin\"\n\
         [transforms.mine]\ntype = \"pattern\"\ninputs = [\"in\"]\n\
         [sinks.out]\ntype = \"blackhole\"\ninputs = [\"mine\"]\n",
    );
    let output = crate::common::run_with_input(
        &["run", "-c", "t.toml"],
        dir.path(),
        b"alpha started worker 1\nalpha started worker 2\n",
        std::time::Duration::from_secs(30),
    );
    assert!(output.status.success(), "{output:?}");
    // A line the transform already knows is new to the command line: it
    // never reads the transform's space.
    write(
        dir.path(),
        "other.log",
        "alpha started worker 3\nbeta stopped queue 7\n",
    );
    let (code, stdout, stderr) = howl_in(
        dir.path(),
        &[
            "patterns",
            "mine",
            "other.log",
            "--data-dir",
            "store",
            "--format",
            "jsonl",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout
            .lines()
            .next()
            .is_some_and(|l| l.contains("\"new\":true")),
        "{stdout}"
    );

    let (code, stdout, stderr) = howl_in(
        dir.path(),
        &[
            "patterns",
            "list",
            "--data-dir",
            "store",
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let listed: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    let in_space = |space: &str| -> Vec<String> {
        listed
            .iter()
            .filter(|p| p["space"] == space)
            .map(|p| p["template"].as_str().unwrap().to_string())
            .collect()
    };
    let transform = in_space("mine");
    assert_eq!(
        transform.len(),
        1,
        "the transform's space is its own: {listed:?}"
    );
    assert!(transform[0].starts_with("alpha"), "{transform:?}");
    let cli = in_space("patterns.mine");
    assert!(
        cli.iter().any(|t| t.starts_with("beta")),
        "the command line keeps its own space: {listed:?}"
    );
}

#[test]
fn a_pattern_split_off_another_names_its_parent_in_mine_and_list() {
    let dir = tempfile::tempdir().unwrap();
    let mut input: String = (0..70)
        .map(|i| format!("Session {i}_1 initialized by client alpha\n"))
        .collect();
    input.push_str("Session 99_1 initialized by client beta\n");
    write(dir.path(), "in.log", &input);
    let (code, stdout, stderr) = howl_in(
        dir.path(),
        &[
            "patterns",
            "mine",
            "in.log",
            "--format",
            "jsonl",
            "--data-dir",
            "d",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines[0].get("parent").is_none());
    let last = &lines[70];
    assert_eq!(last["new"], true);
    assert_eq!(last["parent"], lines[0]["id"]);
    let (code, stdout, stderr) = howl_in(
        dir.path(),
        &["patterns", "list", "--data-dir", "d", "--format", "json"],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let listed: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    let child = listed
        .iter()
        .find(|p| p["id"] == last["id"])
        .expect("the split-off pattern is stored");
    assert_eq!(child["parent"], lines[0]["id"]);
    let (_, table, _) = howl_in(dir.path(), &["patterns", "list", "--data-dir", "d"], &[]);
    assert!(
        table.contains(&format!("split from {}", lines[0]["id"].as_str().unwrap())),
        "{table}"
    );
}
