//! `${NAME}` interpolation against hostile environment values: a value can
//! only ever be a value, never config structure and never VRL code.

use std::path::PathBuf;

use crate::common::{howl_in, write};

/// The hostile value of the report: valid inside a TOML string once
/// escaped for TOML, and a program of its own inside a VRL string.
const HOSTILE_TEAM: &str = r#"ops"; .leak = get_env_var!("SECRET_TOKEN"); .message = "rewritten"#;

#[test]
fn an_environment_value_never_becomes_vrl_code() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.toml",
        "[sources.in]\ntype = \"stdin\"\n\
         [transforms.t]\ntype = \"remap\"\ninputs = [\"in\"]\n\
         source = '''.team = \"${TEAM}\"'''\n\
         [sinks.out]\ntype = \"console\"\ninputs = [\"t\"]\n",
    );
    let env = [("TEAM", HOSTILE_TEAM), ("SECRET_TOKEN", "s3cr3t")];
    let (code, _, stderr) = howl_in(dir.path(), &["validate", "-c", "a.toml"], &env);
    assert_eq!(code, 78, "{stderr}");
    assert!(
        stderr.contains(
            "a.toml:6:22: transforms.t: `${TEAM}` in `source`, which holds a VRL program"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("get_env_var!(\"TEAM\")"), "{stderr}");
    // `howl run` refuses it too: nothing runs with the secret.
    let output = crate::common::run_with_input(
        &["run", "-c", "a.toml"],
        dir.path(),
        b"hello\n",
        std::time::Duration::from_secs(30),
    );
    assert_eq!(output.status.code(), Some(78));
    assert!(!String::from_utf8_lossy(&output.stdout).contains("s3cr3t"));
}

#[test]
fn dollars_in_vrl_still_work() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.toml",
        "[sources.in]\ntype = \"stdin\"\n\
         [transforms.t]\ntype = \"remap\"\ninputs = [\"in\"]\n\
         source = '''\n.price = \"$$5\"\n.ends = match(string!(.message), r'a$')\n\
         .team = get_env_var!(\"TEAM\")\n'''\n\
         [sinks.out]\ntype = \"console\"\ninputs = [\"t\"]\n",
    );
    let output = crate::common::howl()
        .args(["run", "-c", "a.toml"])
        .env("TEAM", HOSTILE_TEAM)
        .current_dir(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b"a\n")?;
            child.wait_with_output()
        })
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let event: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(event["price"], "$5");
    assert_eq!(event["ends"], true);
    assert_eq!(
        event["team"], HOSTILE_TEAM,
        "read by the program, the value stays data"
    );
    assert!(event.get("leak").is_none());
}

/// Every option that holds VRL refuses references, at their position,
/// including options inside maps and lists of tables, and `[[tests]]`.
#[test]
fn every_vrl_option_refuses_references() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "remap source",
            "[transforms.t]\ntype = \"remap\"\ninputs = [\"in\"]\nsource = '.a = \"${X}\"'\n",
            "`${X}` in `source`, which holds a VRL program",
        ),
        (
            "filter condition",
            "[transforms.t]\ntype = \"filter\"\ninputs = [\"in\"]\ncondition = \".a == \\\"${X}\\\"\"\n",
            "`${X}` in `condition`, which holds a VRL condition",
        ),
        (
            "route",
            "[transforms.t]\ntype = \"route\"\ninputs = [\"in\"]\nroute.errors = '.a == \"${X:-b}\"'\n",
            "`${X:-b}` in `route.errors`",
        ),
        (
            "threshold rule",
            "[transforms.t]\ntype = \"threshold\"\ninputs = [\"in\"]\n\
             [[transforms.t.rules]]\nname = \"ok\"\nmetric = \"m\"\nvrl = '.v > 1'\n\
             [[transforms.t.rules]]\nname = \"high\"\nmetric = \"m\"\nvrl = '.v > ${X}'\n",
            "`${X}` in `rules[1].vrl`",
        ),
        (
            "llm_suppress when",
            "[transforms.t]\ntype = \"llm_suppress\"\ninputs = [\"in\"]\nprovider = \"builtin\"\n\
             when = '.a == \"${X}\"'\n",
            "`${X}` in `when`",
        ),
        (
            "llm_suppress always_alert",
            "[transforms.t]\ntype = \"llm_suppress\"\ninputs = [\"in\"]\nprovider = \"builtin\"\n\
             always_alert = '''\n.a == \"${X}\"'''\n",
            "`${X}` in `always_alert`",
        ),
        (
            "webhook payload",
            "[sinks.w]\ntype = \"webhook\"\ninputs = [\"in\"]\nuri = \"http://127.0.0.1:9/\"\n\
             payload = '{\"team\": \"${X}\"}'\n",
            "`${X}` in `payload`",
        ),
        (
            "a test condition",
            "[[tests]]\nname = \"t\"\n[[tests.inputs]]\ninsert_at = \"in\"\nvalue = \"a\"\n\
             [[tests.outputs]]\nextract_from = \"in\"\n\
             [[tests.outputs.conditions]]\nsource = '.a == \"x\"'\n\
             [[tests.outputs.conditions]]\nsource = '.a == \"${X}\"'\n",
            "`${X}` in `outputs[0].conditions[1].source`",
        ),
    ];
    for (name, snippet, expected) in cases {
        let text = format!(
            "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"*\"]\n{snippet}"
        );
        let loaded = howl::config::load_texts(
            vec![(PathBuf::from("a.toml"), text.clone())],
            |name| (name == "X").then(|| "1".to_string()),
            &howl::topology::REGISTRY,
        );
        let line = text.lines().position(|line| line.contains("${X")).unwrap() + 1;
        let column = text.lines().nth(line - 1).unwrap().find("${X").unwrap() + 1;
        let errors: Vec<String> = loaded.diagnostics.iter().map(|d| d.to_string()).collect();
        assert!(
            errors
                .iter()
                .any(|e| e.contains(&format!("a.toml:{line}:{column}: ")) && e.contains(expected)),
            "{name}: expected {expected:?} at {line}:{column} in {errors:#?}"
        );
        assert!(!loaded.is_ok(), "{name}");
    }
}

/// Options that hold no VRL take references as before, next to VRL options
/// that may hold a `$$`.
#[test]
fn other_options_still_take_references() {
    let text = "[sources.in]\ntype = \"stdin\"\n\
                [transforms.t]\ntype = \"remap\"\ninputs = [\"in\"]\nsource = '.p = \"$${X}\"'\n\
                [sinks.out]\ntype = \"file\"\ninputs = [\"t\"]\npath = \"/tmp/${X}.log\"\n";
    let loaded = howl::config::load_texts(
        vec![(PathBuf::from("a.toml"), text.to_string())],
        |name| (name == "X").then(|| "x".to_string()),
        &howl::topology::REGISTRY,
    );
    let errors: Vec<String> = loaded.diagnostics.iter().map(|d| d.to_string()).collect();
    // `$$` is a literal `$`, so `$${X}` is the text `${X}`: no reference.
    assert!(loaded.is_ok(), "{errors:#?}");
}

/// TOML lets a multi-line string end with one or two extra quotes
/// (`'''it's''''` holds `it's'`): interpolation must still know that the
/// next reference stands outside any string, where a value with quotes
/// and `=` is refused rather than read as more headers.
#[test]
fn a_multi_line_string_closed_by_four_quotes_does_not_hide_the_next_reference() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.toml",
        "[sources.in]\ntype = \"stdin\"\n\
         [sinks.out]\ntype = \"webhook\"\ninputs = [\"in\"]\nuri = \"http://127.0.0.1:9/\"\n\
         headers = { X-Note = '''it's'''', X-Team = ${TEAM} }\n",
    );
    let env = [("TEAM", r#""ops", X-Injected = "yes""#)];
    let (code, _, stderr) = howl_in(dir.path(), &["validate", "-c", "a.toml"], &env);
    assert_eq!(code, 78, "{stderr}");
    assert!(
        stderr.contains("a.toml:7:44: environment variable `TEAM` contains `\"`"),
        "{stderr}"
    );
}
