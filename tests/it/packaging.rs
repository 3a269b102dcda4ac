//! What packagers ship: the systemd unit passes `systemd-analyze verify`
//! (where it is installed) without a word, the container recipe runs the
//! demo as a non-root user, `howl generate` makes completions and a man
//! page from the command line itself (and the copies in `packaging/` are
//! what it makes today), and `cargo deb` packages all of it: the test
//! builds the .deb from the binary under test and reads it back.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

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

/// The files in `packaging/` made by `howl generate`, with the command that
/// makes each.
const GENERATED: &[(&str, &[&str])] = &[
    ("packaging/howl.1", &["generate", "man"]),
    (
        "packaging/completions/howl.bash",
        &["generate", "completions", "bash"],
    ),
    (
        "packaging/completions/_howl",
        &["generate", "completions", "zsh"],
    ),
    (
        "packaging/completions/howl.fish",
        &["generate", "completions", "fish"],
    ),
];

/// The .deb ships these files rather than making them at build time (a
/// build script would have to build howl to run it); they must be what the
/// binary makes today. `HOWL_UPDATE_DOCS=1` rewrites them.
#[test]
fn packaged_man_page_and_completions_match_the_command_line() {
    let update = std::env::var_os("HOWL_UPDATE_DOCS").is_some();
    let dir = tempfile::tempdir().unwrap();
    let mut stale = Vec::new();
    for (file, args) in GENERATED {
        let (code, made, err) = howl_in(dir.path(), args, &[]);
        assert_eq!(code, 0, "{err}");
        let path = root().join(file);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(made.as_str()) {
            if update {
                std::fs::write(&path, &made).unwrap();
            } else {
                stale.push(format!("{file} (from `howl {}`)", args.join(" ")));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "out of step with the command line: {}; run `HOWL_UPDATE_DOCS=1 cargo nextest run -E \
         'test(packaged_man_page)'` to rewrite them",
        stale.join(", ")
    );
}

/// Runs a command; returns its stdout, failing the test with its stderr.
fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Builds the .deb with `cargo deb --no-build` from the binary under test
/// (a debug build: no release build is ever started; the binary is linked
/// as `release/howl` into a target directory of its own, where cargo-deb
/// looks for it), then reads it back with `dpkg-deb`: the control fields,
/// the conffile, the maintainer scripts that register the unit (neither
/// enabled nor started on install, restarted on upgrade where it runs),
/// every file and its mode, and the files' contents against their sources.
/// The packaged binary then validates the packaged config, as the unit's
/// `ExecStartPre` does.
#[test]
fn the_deb_package_installs_the_binary_unit_config_man_page_and_completions() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let has_cargo_deb = Command::new(&cargo)
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_cargo_deb {
        eprintln!(
            "SKIPPED: cargo-deb is not installed, so the .deb is not built here \
             (`cargo install --locked cargo-deb`; scripts/test installs it)"
        );
        return;
    }
    if Command::new("dpkg-deb").arg("--version").output().is_err() {
        eprintln!(
            "SKIPPED: dpkg-deb is not installed (not a Debian system): the .deb cannot be read"
        );
        return;
    }
    let binary = Path::new(env!("CARGO_BIN_EXE_howl"));
    let target = binary
        .parent()
        .and_then(Path::parent)
        .expect("the binary lives in <target>/<profile>/");
    let staging = tempfile::Builder::new()
        .prefix("deb-test-")
        .tempdir_in(target)
        .unwrap();
    std::fs::create_dir(staging.path().join("release")).unwrap();
    let staged = staging.path().join("release/howl");
    if std::fs::hard_link(binary, &staged).is_err() {
        std::fs::copy(binary, &staged).unwrap();
    }
    let out = staging.path().join("out");
    let started = Instant::now();
    run(Command::new(&cargo)
        .args([
            "deb",
            "--locked",
            "--no-build",
            "--no-strip",
            "--no-dbgsym",
            "--fast",
            "--quiet",
            "-o",
        ])
        .arg(&out)
        .env("CARGO_TARGET_DIR", staging.path())
        .current_dir(root()));
    eprintln!("cargo deb --no-build took {:.1?}", started.elapsed());
    let debs: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    let [deb] = debs.as_slice() else {
        panic!("expected one .deb in {}: {debs:?}", out.display());
    };

    let info = run(Command::new("dpkg-deb").arg("-I").arg(deb));
    for field in [
        "Package: howl".to_string(),
        format!("Version: {}-1", env!("CARGO_PKG_VERSION")),
        "Section: admin".to_string(),
        "Depends: libc6".to_string(),
    ] {
        assert!(info.contains(&field), "{field} missing:\n{info}");
    }
    let conffiles = run(Command::new("dpkg-deb").arg("-I").arg(deb).arg("conffiles"));
    assert_eq!(conffiles.trim(), "/etc/howl/howl.toml");
    let postinst = run(Command::new("dpkg-deb").arg("-I").arg(deb).arg("postinst"));
    // Enabled on install only where it was enabled before (cargo-deb's
    // `enable = false` script), never started on install, restarted on an
    // upgrade (`$2` is the version upgraded from) only where it runs.
    assert!(
        postinst.contains("if deb-systemd-helper debian-installed howl.service; then"),
        "not enabled on install:\n{postinst}"
    );
    assert!(
        !postinst.contains("deb-systemd-invoke start"),
        "not started on install:\n{postinst}"
    );
    assert!(
        postinst
            .contains("if [ -n \"$2\" ]; then\n\t\t\tdeb-systemd-invoke try-restart howl.service"),
        "restarted on upgrade where it runs:\n{postinst}"
    );
    let prerm = run(Command::new("dpkg-deb").arg("-I").arg(deb).arg("prerm"));
    assert!(
        prerm.contains("stop howl.service"),
        "stopped on removal:\n{prerm}"
    );

    let listing = run(Command::new("dpkg-deb").arg("-c").arg(deb));
    let mode_of = |path: &str| {
        listing
            .lines()
            .find(|line| line.ends_with(&format!(" ./{path}")))
            .and_then(|line| line.split_whitespace().next())
            .map(str::to_string)
    };
    let expected = [
        ("usr/bin/howl", "-rwxr-xr-x"),
        ("usr/lib/systemd/system/howl.service", "-rw-r--r--"),
        ("etc/howl/howl.toml", "-rw-r--r--"),
        ("usr/share/man/man1/howl.1.gz", "-rw-r--r--"),
        ("usr/share/bash-completion/completions/howl", "-rw-r--r--"),
        ("usr/share/zsh/vendor-completions/_howl", "-rw-r--r--"),
        (
            "usr/share/fish/vendor_completions.d/howl.fish",
            "-rw-r--r--",
        ),
        ("usr/share/doc/howl/copyright", "-rw-r--r--"),
        ("usr/share/doc/howl/examples/demo.toml", "-rw-r--r--"),
    ];
    for (path, mode) in expected {
        assert_eq!(mode_of(path).as_deref(), Some(mode), "{path} in\n{listing}");
    }

    let root_dir = staging.path().join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root_dir));
    let read = |path: &str| std::fs::read(root_dir.join(path)).unwrap();
    let source = |path: &str| std::fs::read(root().join(path)).unwrap();
    assert_eq!(
        read("usr/lib/systemd/system/howl.service"),
        source("packaging/howl.service")
    );
    assert_eq!(read("etc/howl/howl.toml"), source("topologies/demo.toml"));
    assert_eq!(
        read("usr/share/bash-completion/completions/howl"),
        source("packaging/completions/howl.bash")
    );
    let mut man = String::new();
    flate2::read::GzDecoder::new(read("usr/share/man/man1/howl.1.gz").as_slice())
        .read_to_string(&mut man)
        .unwrap();
    assert_eq!(man.as_bytes(), source("packaging/howl.1"));
    let packaged = root_dir.join("usr/bin/howl");
    assert_eq!(
        std::fs::metadata(&packaged).unwrap().len(),
        std::fs::metadata(binary).unwrap().len(),
        "the binary under test, not another build"
    );
    let version = run(Command::new(&packaged).arg("--version"));
    assert_eq!(
        version.trim(),
        format!("howl {}", env!("CARGO_PKG_VERSION"))
    );
    let dir = tempfile::tempdir().unwrap();
    run(Command::new(&packaged)
        .args(["validate", "-c"])
        .arg(root_dir.join("etc/howl/howl.toml"))
        .current_dir(dir.path()));
}
