//! Helpers shared by the integration tests: run the real `howl` binary,
//! feed it, and read its metrics over its own API. Network traffic stays on
//! loopback and every wait is bounded.

pub mod alertmanager;
pub mod capture;
pub mod fake_llm;
pub mod fake_loki;
pub mod nats;
pub mod postgres;
pub mod prometheus;
pub mod relay;
pub mod tcp;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// An HTTP client for talking to howl and to test servers (howl's reqwest is
/// built without a default TLS crypto provider; tests install the same one
/// howl uses).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// GETs `url` and reads the answer as JSON: what most API checks do, in one
/// call that names the URL when it fails.
pub async fn get_json<T: serde::de::DeserializeOwned>(url: impl AsRef<str>) -> T {
    let url = url.as_ref();
    client()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not the JSON expected: {e}"))
}

/// The binary under test.
pub fn howl() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_howl"));
    without_howl_env(&mut command);
    command
}

/// Keeps the test's own `HOWL_*` settings away from the howl it runs.
fn without_howl_env(command: &mut Command) {
    command.env_remove("HOWL_CONFIG").env_remove("HOWL_LOG");
}

/// The complete lines of a file that howl may be writing: a read can
/// catch a write half done (the kernel copies it page by page), so text
/// after the last newline is not yet a line. Empty when the file is absent.
pub fn complete_lines(path: &Path) -> String {
    let mut text = std::fs::read_to_string(path).unwrap_or_default();
    text.truncate(text.rfind('\n').map_or(0, |end| end + 1));
    text
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    path
}

/// A topology reading JSON lines on stdin, each parsed into the event by
/// the transform `parse`, followed by `rest` (which consumes `parse`).
pub fn stdin_json(rest: &str) -> String {
    format!(
        "[sources.in]\ntype = \"stdin\"\n\
         [transforms.parse]\ntype = \"remap\"\ninputs = [\"in\"]\n\
         source = '. = parse_json!(string!(.message))'\n\
         {rest}"
    )
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Runs `howl` with `args`, feeding `input` on stdin, and waits (bounded).
pub fn run_with_input(args: &[&str], dir: &Path, input: &[u8], limit: Duration) -> Output {
    let mut child = howl()
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn howl");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = wait_with_limit(child, limit);
    let _ = writer.join();
    output
}

/// Runs the topology `config` (written to a temporary directory, which is
/// also the working directory) on `input` until it exits, asserts that it
/// exited 0, and returns the directory (for files it wrote) and stdout.
pub fn run_topology(config: &str, input: &[u8]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "topology.toml", config);
    let output = run_with_input(
        &["run", "-c", "topology.toml"],
        dir.path(),
        input,
        Duration::from_secs(60),
    );
    assert!(
        output.status.success(),
        "howl run failed ({:?}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("utf-8 stdout");
    (dir, stdout)
}

/// Waits for a child while reading its output (so it never blocks on a
/// full pipe), killing it and failing the test past `limit`.
pub fn wait_with_limit(child: Child, limit: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(output) => output.expect("wait for howl"),
        Err(_) => {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            let output = rx.recv_timeout(Duration::from_secs(10));
            let stderr = output
                .ok()
                .and_then(Result::ok)
                .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                .unwrap_or_default();
            panic!("howl did not exit within {limit:?}\nstderr:\n{stderr}");
        }
    }
}

/// A running `howl run` with the API enabled, killed when dropped.
pub struct Running {
    pub child: Option<Child>,
    pub api: String,
    pub dir: PathBuf,
}

impl Running {
    /// Starts `howl run -c config` in `dir` (the config must enable the API
    /// at `api_port`) and waits until `/health` answers.
    pub async fn start(dir: &Path, config: &Path, api_port: u16, extra: &[&str]) -> Self {
        let mut command = howl();
        command.arg("run").arg("-c").arg(config).args(extra);
        Self::start_command(dir, command, api_port).await
    }

    /// [`Self::start`] with environment variables set (for a topology
    /// that reads `${VAR}`s).
    pub async fn start_with_env(
        dir: &Path,
        config: &Path,
        api_port: u16,
        env: &[(&str, &str)],
    ) -> Self {
        let mut command = howl();
        command
            .arg("run")
            .arg("-c")
            .arg(config)
            .envs(env.iter().copied());
        Self::start_command(dir, command, api_port).await
    }

    /// [`Self::start`] with howl's open-file limit lowered to `limit` (a
    /// soft limit, lowered only: never above the test's own), so that a
    /// test reaches "too many open files" with a few hundred connections.
    pub async fn start_with_file_limit(
        dir: &Path,
        config: &Path,
        api_port: u16,
        limit: u32,
    ) -> Self {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -Sn {limit} && exec \"$0\" run -c \"$1\""))
            .arg(env!("CARGO_BIN_EXE_howl"))
            .arg(config);
        without_howl_env(&mut command);
        Self::start_command(dir, command, api_port).await
    }

    /// Runs `command` (a `howl run`) in `dir` and waits until `/health`
    /// answers at `api_port`.
    async fn start_command(dir: &Path, mut command: Command, api_port: u16) -> Self {
        let child = command
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("howl.stderr")).expect("stderr file"))
            .spawn()
            .expect("spawn howl");
        let running = Self {
            child: Some(child),
            api: format!("http://127.0.0.1:{api_port}"),
            dir: dir.to_path_buf(),
        };
        let client = client();
        for _ in 0..300 {
            if let Ok(response) = client.get(format!("{}/health", running.api)).send().await
                && response.status().is_success()
            {
                return running;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("howl's API did not come up at {}", running.api);
    }

    /// Starts howl with the API on and an `http_server` source `in`
    /// (accepting POSTs on `/`); `rest` holds the other components. Returns
    /// the directory (keep it alive), the process, and the source's URL.
    pub async fn with_http_source(rest: &str) -> (tempfile::TempDir, Self, String) {
        let dir = tempfile::tempdir().expect("temp dir");
        let (api, http) = (free_port(), free_port());
        let config = write(
            dir.path(),
            "topology.toml",
            &format!(
                "[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
                 [sources.in]\ntype = \"http_server\"\naddress = \"127.0.0.1:{http}\"\n\
                 {rest}"
            ),
        );
        let howl = Self::start(dir.path(), &config, api, &[]).await;
        (dir, howl, format!("http://127.0.0.1:{http}/"))
    }

    /// The current `/metrics` text.
    pub async fn metrics(&self) -> String {
        client()
            .get(format!("{}/metrics", self.api))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body")
    }

    /// Waits (bounded) until the sample of `name` with `labels` reaches
    /// `at_least`, and returns it: how a test knows a sink has finished with
    /// an event without sleeping.
    pub async fn wait_for_metric(&self, name: &str, labels: &[&str], at_least: f64) -> f64 {
        let mut last = String::new();
        for _ in 0..500 {
            last = self.metrics().await;
            if let Some(value) = metric(&last, name, labels).filter(|v| *v >= at_least) {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{name}{labels:?} never reached {at_least}; metrics:\n{last}");
    }

    /// howl's stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("howl.stderr")).unwrap_or_default()
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    pub fn terminate(&mut self, limit: Duration) -> Output {
        let child = self.child.take().expect("running");
        signal(&child, "TERM");
        self.finish(child, limit)
    }

    /// [`Self::terminate`], asserting that howl exited successfully (its
    /// stderr in the failure message).
    pub fn terminate_cleanly(&mut self, limit: Duration) {
        let output = self.terminate(limit);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Waits (bounded) for a child taken out of `self`; its stderr (written
    /// to a file, so a chatty howl never blocks on a full pipe) is returned
    /// in the output.
    pub fn finish(&self, child: Child, limit: Duration) -> Output {
        let mut output = wait_with_limit(child, limit);
        output.stderr = std::fs::read(self.dir.join("howl.stderr")).unwrap_or_default();
        output
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `check` every 20 ms until it returns `Some`, failing the test
/// after `limit` with `what` in the message.
pub async fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// POSTs `events` as a JSON array to an `http_server` source and checks
/// that all were delivered (the source answers once its sinks are done).
pub async fn post_events(url: &str, events: &serde_json::Value) {
    let response = post_when_listening(url, events).await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
}

/// POSTs `events`, trying again (for up to 5 s) while the connection is
/// refused: `/health` waits for sources to bind at start, but a source that
/// a reload adds binds just after the reload answers.
async fn post_when_listening(url: &str, events: &serde_json::Value) -> reqwest::Response {
    let mut attempts = 0;
    loop {
        match client().post(url).json(events).send().await {
            Ok(response) => return response,
            Err(error) if error.is_connect() && attempts < 250 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("POST events: {error:?}"),
        }
    }
}

/// POSTs `events` and checks that they entered the pipeline, whatever a
/// sink then made of them: 200, or the 503 that says a sink could not
/// deliver them (for tests of failing destinations).
pub async fn post_events_accepted(url: &str, events: &serde_json::Value) {
    let response = post_when_listening(url, events).await;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let undelivered = status == 503 && (text.contains("a sink") || text.contains("not delivered"));
    assert!(
        status == 200 || undelivered,
        "the events must enter the pipeline: {status} {text}"
    );
}

/// Sends a signal by name to a child.
pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
}

/// The value of the first sample of `name` whose labels contain every one
/// of `labels` (`key="value"` strings), if present.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']))
        .filter(|line| labels.iter().all(|l| line.contains(l)))
        .find_map(|line| line.rsplit(' ').next()?.parse().ok())
}

/// The resident set size of a process in KiB, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The CPU time a process has used (user and system), from /proc, in
/// seconds (at Linux's 100 ticks a second).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces: state is the
    // first, utime the 12th and stime the 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Runs `howl ARGS...` in `dir` with extra environment variables, to
/// completion; returns (exit code, stdout, stderr).
pub fn howl_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let output = howl()
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .expect("run howl");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs `howl validate -c FILE...` in `dir`; returns (exit code, stdout,
/// stderr).
pub fn validate(dir: &Path, files: &[&Path]) -> (i32, String, String) {
    let mut args = vec!["validate"];
    for file in files {
        args.push("-c");
        args.push(file.to_str().expect("utf-8 path"));
    }
    howl_in(dir, &args, &[])
}
