//! A real PostgreSQL (Debian's `postgresql`, installed by `scripts/test`):
//! a cluster created in a temporary directory, listening on a loopback
//! port (and a Unix socket in that directory), stopped when dropped.
//!
//! PostgreSQL refuses to run as root: when the tests do (containers, CI),
//! the cluster's directory is given to the `postgres` user that Debian's
//! package creates, and `initdb` and `postgres` run as that user.
//!
//! Authentication: the superuser `postgres` is trusted on loopback (the
//! tests set tables up with it); the role `howl` must give its password
//! (SCRAM), so that a URL holding a password is what howl really uses.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgPool, PgPoolOptions};

/// The password of the role `howl`.
pub const PASSWORD: &str = "s3cret-Pg-pw";

/// A running PostgreSQL cluster.
pub struct Postgres {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

/// Where Debian puts the server's binaries: `initdb` on PATH (resolved
/// through its symlink), else the newest `/usr/lib/postgresql/*/bin`.
fn bin_dir() -> PathBuf {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let initdb = dir.join("initdb");
            if initdb.is_file()
                && let Ok(real) = std::fs::canonicalize(&initdb)
                && let Some(parent) = real.parent()
                && parent.join("postgres").is_file()
            {
                return parent.to_path_buf();
            }
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL is not installed (no initdb on PATH nor under \
             /usr/lib/postgresql/*/bin): install Debian's `postgresql` package \
             (`apt-get install postgresql`; scripts/test does it)"
        ),
    }
}

/// The uid and gid of `postgres`, when the tests run as root.
fn run_as() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    let ids = passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&"postgres"))
            .then(|| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))
            .flatten()
    });
    Some(ids.expect(
        "running as root, and PostgreSQL refuses root, but there is no `postgres` user: \
         install Debian's `postgresql` package, which creates it",
    ))
}

fn command(bin: &Path, name: &str, user: Option<(u32, u32)>) -> Command {
    let mut command = Command::new(bin.join(name));
    command.env("LC_ALL", "C").env_remove("PGDATA");
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
    command
}

fn chown_all(path: &Path, (uid, gid): (u32, u32)) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("read dir").flatten() {
            chown_all(&entry.path(), (uid, gid));
        }
    }
}

impl Postgres {
    /// Creates a cluster, starts it on a free loopback port, and creates
    /// the role `howl` (password [`PASSWORD`]) and its database `app`.
    pub async fn start() -> Self {
        let bin = bin_dir();
        let user = run_as();
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        if let Some(ids) = user {
            chown_all(dir.path(), ids);
        }
        let output = command(&bin, "initdb", user)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .args(["--locale=C"])
            .stdin(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             host all postgres 127.0.0.1/32 trust\n\
             host all all 127.0.0.1/32 scram-sha-256\n",
        )
        .expect("write pg_hba.conf");
        let port = super::free_port();
        let log = std::fs::File::create(dir.path().join("postgres.log")).expect("log file");
        if let Some(ids) = user {
            chown_all(&dir.path().join("postgres.log"), ids);
        }
        let child = command(&bin, "postgres", user)
            .arg("-D")
            .arg(&data)
            .args(["-c", "listen_addresses=127.0.0.1", "-p", &port.to_string()])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.path().display()))
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=30"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        let postgres = Self {
            child: Some(child),
            port,
            dir,
        };
        let admin = postgres.admin().await;
        for statement in [
            format!("CREATE ROLE howl LOGIN PASSWORD '{PASSWORD}'"),
            "CREATE DATABASE app OWNER howl".to_string(),
        ] {
            sqlx::query(&statement)
                .execute(&admin)
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
        admin.close().await;
        postgres
    }

    /// The URL howl connects with: role `howl`, with its password.
    pub fn url(&self) -> String {
        format!("postgres://howl:{PASSWORD}@127.0.0.1:{}/app", self.port)
    }

    /// A pool of the superuser on database `app` (once it exists) or
    /// `postgres`, waiting (bounded) until the server accepts connections.
    pub async fn admin(&self) -> PgPool {
        self.connect("postgres").await
    }

    /// The superuser on database `app`, to create and fill tables (which
    /// are then handed to `howl`).
    pub async fn app(&self) -> PgPool {
        self.connect("app").await
    }

    async fn connect(&self, database: &str) -> PgPool {
        let url = format!("postgres://postgres@127.0.0.1:{}/{database}", self.port);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match PgPoolOptions::new()
                .max_connections(2)
                .acquire_timeout(Duration::from_secs(5))
                .connect(&url)
                .await
            {
                Ok(pool) => return pool,
                Err(error) if Instant::now() < deadline => {
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!(
                    "PostgreSQL did not accept connections within 30 s: {error}\nlog:\n{}",
                    self.log()
                ),
            }
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGQUIT: immediate shutdown (the cluster is thrown away).
            // SAFETY: kill with a pid we started.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGQUIT);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
