//! What packagers ship: the systemd unit passes `systemd-analyze verify`
//! (where it is installed) without a word, the container recipe runs the
//! demo as a non-root user, and `howl generate` makes completions and a man
//! page from the command line itself.

use std::path::Path;
use std::process::Command;

use crate::common::howl_in;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_systemd_unit_verifies_cleanly() {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed: the unit is not verified here");
        return;
    };
    assert!(probe.status.success());
    let unit = std::fs::read_to_string(root().join("packaging/howl.service")).unwrap();
    for hardening in [
        "DynamicUser=yes",
        "StateDirectory=howl",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
    ] {
        assert!(unit.contains(hardening), "{hardening} missing");
    }
    // Verified with the binary under test in place of /usr/bin/howl.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("howl.service");
    std::fs::write(
        &path,
        unit.replace("/usr/bin/howl", env!("CARGO_BIN_EXE_howl")),
    )
    .unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{said}");
    assert!(
        !said.contains("howl.service"),
        "systemd-analyze has something to say about the unit: {said}"
    );
}

#[test]
fn the_container_recipe_runs_the_demo_as_a_user() {
    let recipe = std::fs::read_to_string(root().join("packaging/Containerfile")).unwrap();
    assert!(recipe.contains("USER howl"), "not root");
    assert!(recipe.contains("CMD [\"run\"]"), "the demo by default");
    assert!(
        recipe.contains("FROM rust:") && recipe.contains("AS build"),
        "multi-stage"
    );
}

#[test]
fn completions_and_the_man_page_come_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, err) = howl_in(dir.path(), &["generate", "completions", shell], &[]);
        assert_eq!(code, 0, "{err}");
        for subcommand in ["validate", "review", "audit"] {
            assert!(out.contains(subcommand), "{shell}: {subcommand} missing");
        }
    }
    let (code, man, err) = howl_in(dir.path(), &["generate", "man"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(man.contains(".TH howl 1"), "{man}");
    assert!(man.contains("validate"), "{man}");
    let (code, _, err) = howl_in(dir.path(), &["generate", "completions", "tcsh"], &[]);
    assert_eq!(code, 2, "an unknown shell is a usage error: {err}");
}
