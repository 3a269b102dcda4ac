//! A real NATS server with JetStream (Debian's `nats-server`, installed by
//! `scripts/test`): loopback ports of its own, a temporary store
//! directory, stopped when dropped. Never the system's instance on 4222.
//! Also the howls around it that the NATS and fleet tests share: a `file`
//! → `nats` publisher of numbered lines, a `nats` → `file` worker, and
//! waiting for every numbered line to arrive.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_nats::jetstream;

use super::{client, free_port};

/// A running `nats-server -js`.
pub struct NatsServer {
    child: Option<Child>,
    /// Its client port.
    pub port: u16,
    monitor: u16,
    dir: tempfile::TempDir,
    /// Arguments beside the ports and store (auth, TLS, a config file).
    extra: Vec<String>,
}

/// Debian installs the server in /usr/sbin, not on every user's PATH.
fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("nats-server");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    let debian = PathBuf::from("/usr/sbin/nats-server");
    assert!(
        debian.is_file(),
        "nats-server is not installed: `apt-get install nats-server` (scripts/test does it)"
    );
    debian
}

impl NatsServer {
    /// Creates the work-queue stream `LOGS` over `logs.>` that edges
    /// publish to (a message leaves it once a worker acknowledged it).
    pub async fn create_work_queue(&self) {
        self.jetstream()
            .await
            .create_stream(jetstream::stream::Config {
                name: "LOGS".to_string(),
                subjects: vec!["logs.>".to_string()],
                retention: jetstream::stream::RetentionPolicy::WorkQueue,
                ..Default::default()
            })
            .await
            .expect("create the work-queue stream");
    }

    /// Starts a server with JetStream on free loopback ports.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// [`Self::start`] with more arguments (`--user`, `--tls`, `-c file`).
    pub async fn start_with(extra: &[&str]) -> Self {
        let mut server = Self {
            child: None,
            port: free_port(),
            monitor: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            extra: extra.iter().map(|arg| arg.to_string()).collect(),
        };
        server.spawn().await;
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("nats.log"))
            .expect("nats.log");
        let child = Command::new(binary())
            .args(["-js", "-a", "127.0.0.1"])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-m")
            .arg(self.monitor.to_string())
            .arg("-sd")
            .arg(self.dir.path().join("store"))
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let health = format!(
            "http://127.0.0.1:{}/healthz?js-enabled-only=true",
            self.monitor
        );
        for _ in 0..200 {
            if let Ok(response) = client().get(&health).send().await
                && response.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("nats-server did not become ready:\n{}", self.log());
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
    }

    /// Stops it (SIGTERM, then SIGKILL past 5 s); its store stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill has no memory preconditions; the pid is our child's.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            for _ in 0..100 {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same ports and store.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    /// Sends it `signal` (`STOP` freezes it, `CONT` wakes it up).
    pub fn signal(&self, signal: &str) {
        crate::common::signal(self.child.as_ref().expect("running"), signal);
    }

    /// Kills it (SIGKILL: no clean shutdown), throws its store away and
    /// starts it again on the same ports: every stream and consumer gone.
    pub async fn kill_and_restart_empty(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(self.dir.path().join("store"));
        self.spawn().await;
    }

    /// A client of this server (for setting up and inspecting streams).
    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.url())
            .await
            .expect("test client connects to nats-server")
    }

    /// A JetStream context of a fresh client.
    pub async fn jetstream(&self) -> jetstream::Context {
        jetstream::new(self.client().await)
    }

    /// Creates a stream `name` over `subjects`.
    pub async fn create_stream(&self, name: &str, subjects: &[&str]) -> jetstream::stream::Stream {
        self.jetstream()
            .await
            .create_stream(jetstream::stream::Config {
                name: name.to_string(),
                subjects: subjects.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            })
            .await
            .expect("create stream")
    }

    /// Waits (bounded) until the number of messages stream `name` holds
    /// satisfies `check` (`what` describes it); returns that number.
    pub async fn wait_for_stream(
        &self,
        name: &str,
        what: &str,
        limit: Duration,
        check: impl Fn(u64) -> bool,
    ) -> u64 {
        let deadline = std::time::Instant::now() + limit;
        let mut last = None;
        loop {
            if let Ok(client) = async_nats::connect(self.url()).await
                && let Ok(mut stream) = jetstream::new(client).get_stream(name).await
                && let Ok(info) = stream.info().await
            {
                last = Some(info.state.messages);
            }
            if let Some(count) = last.filter(|count| check(*count)) {
                return count;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "stream {name} holds {last:?} messages after {limit:?}, not {what}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Creates bucket `bucket`'s stream by hand, as an operator might,
    /// with an age limit (which howl refuses where it keeps entries for
    /// good).
    pub async fn create_aged_bucket(&self, bucket: &str, history: i64, max_age: Duration) {
        self.jetstream()
            .await
            .create_stream(jetstream::stream::Config {
                name: format!("KV_{bucket}"),
                subjects: vec![format!("$KV.{bucket}.>")],
                max_messages_per_subject: history,
                max_age,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                ..Default::default()
            })
            .await
            .expect("create the bucket's stream");
    }

    /// Every message stored in stream `name`, in stream order, as
    /// (subject, headers' `Nats-Msg-Id`, payload).
    pub async fn stored(&self, name: &str) -> Vec<(String, Option<String>, Vec<u8>)> {
        let js = self.jetstream().await;
        let mut stream = js.get_stream(name).await.expect("stream exists");
        let info = stream.info().await.expect("stream info").state.clone();
        let mut out = Vec::new();
        for seq in info.first_sequence..=info.last_sequence {
            if info.messages == 0 {
                break;
            }
            let Ok(message) = stream.get_raw_message(seq).await else {
                continue;
            };
            let id = message
                .headers
                .get("Nats-Msg-Id")
                .map(|value| value.to_string());
            out.push((message.subject.to_string(), id, message.payload.to_vec()));
        }
        out
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Numbered plain lines `line <i>` for `range`.
pub fn numbered_lines(range: std::ops::Range<usize>) -> String {
    range.map(|i| format!("line {i}\n")).collect()
}

/// A howl that publishes `app.log` in `dir` (written with `lines`) to
/// `logs.app` on `url`: the `file` → `nats` topology of these tests, with
/// `sink_options` appended to the sink's table and `more` TOML after it.
pub async fn start_file_publisher(
    dir: &std::path::Path,
    url: &str,
    lines: std::ops::Range<usize>,
    sink_options: &str,
    more: &str,
) -> (crate::common::Running, std::path::PathBuf) {
    let api = crate::common::free_port();
    let log = dir.join("app.log");
    std::fs::write(&log, numbered_lines(lines)).expect("write log");
    let config = crate::common::write(
        dir,
        "topology.toml",
        &format!(
            "[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
             [sources.app]\ntype = \"file\"\ninclude = [\"{}\"]\n\
             [sinks.out]\ntype = \"nats\"\ninputs = [\"app\"]\nurl = \"{url}\"\nsubject = \"logs.app\"\n\
             {sink_options}{more}",
            log.display(),
        ),
    );
    let howl = crate::common::Running::start(dir, &config, api, &[]).await;
    (howl, log)
}

/// A partitioned edge: a followed file of JSON lines (`app.log` in
/// `dir`, created empty) → the `nats` sink on `logs`, partitioned by
/// `.service` into `count` partitions, onto the work-queue stream `LOGS`;
/// `sink_options` are added to the sink's table. Returns the log to append
/// to.
pub async fn start_partitioned_edge(
    server: &NatsServer,
    dir: &std::path::Path,
    count: u32,
    sink_options: &str,
) -> (crate::common::Running, std::path::PathBuf) {
    let api = free_port();
    let log = dir.join("app.log");
    std::fs::write(&log, "").expect("create log");
    let config = crate::common::write(
        dir,
        "edge.toml",
        &format!(
            "data_dir = \"state\"\n\
             [api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
             [sources.app]\ntype = \"file\"\ninclude = [\"{}\"]\ndecoding.codec = \"json\"\n\
             poll_interval_ms = 50\n\
             [sinks.out]\ntype = \"nats\"\ninputs = [\"app\"]\nurl = \"{}\"\nsubject = \"logs\"\n\
             partition = {{ key = \"{{{{ .service }}}}\", count = {count} }}\n\
             stream = {{ name = \"LOGS\", subjects = [\"logs.>\"], retention = \"work_queue\" }}\n\
             {sink_options}",
            log.display(),
            server.url()
        ),
    );
    (
        crate::common::Running::start(dir, &config, api, &[]).await,
        log,
    )
}

/// Appends numbered lines to a log a running howl follows.
pub fn append_lines(log: &std::path::Path, lines: std::ops::Range<usize>) {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(log)
        .expect("open log")
        .write_all(numbered_lines(lines).as_bytes())
        .expect("append to the log");
}

/// A consuming howl: the `nats` source (durable consumer `workers` on
/// `LOGS`, with `options`) → a `file` sink writing each `message` to
/// `path` (relative to `dir`), acknowledgements on.
pub async fn start_consumer(
    server: &NatsServer,
    dir: &std::path::Path,
    path: &str,
    options: &str,
) -> crate::common::Running {
    let api = crate::common::free_port();
    let config = crate::common::write(
        dir,
        "consumer.toml",
        &format!(
            "[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n\
             [sources.in]\ntype = \"nats\"\nurl = \"{}\"\nstream = \"LOGS\"\nconsumer = \"workers\"\n\
             nak_delay_secs = 0.2\n{options}\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"{path}\"\nencoding = \"text\"\n\
             acknowledgements.enabled = true\n",
            server.url()
        ),
    );
    crate::common::Running::start(dir, &config, api, &[]).await
}

/// The complete lines in `path` so far: a sink may be writing the last
/// one while it is read, so a line without its newline is not counted yet.
pub fn lines_in(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete.lines().map(str::to_string).collect()
}

/// Waits (bounded) until `path` holds every line `0..n` at least once;
/// returns how often each is there.
pub async fn wait_for_all_lines(path: &std::path::Path, n: usize, limit: Duration) -> Vec<u32> {
    wait_for_all_lines_in(&[path], n, limit).await
}

/// How often each numbered line `0..n` is in the files `paths` together.
pub fn count_numbered(paths: &[&std::path::Path], n: usize) -> Vec<u32> {
    let mut counts = vec![0u32; n];
    for path in paths {
        for line in lines_in(path) {
            let index: usize = line
                .strip_prefix("line ")
                .and_then(|i| i.parse().ok())
                .filter(|i| *i < n)
                .unwrap_or_else(|| panic!("not a numbered line below {n}: {line:?}"));
            counts[index] += 1;
        }
    }
    counts
}

/// [`wait_for_all_lines`] over several files (the sinks of several
/// workers): every line in one of them at least once.
pub async fn wait_for_all_lines_in(
    paths: &[&std::path::Path],
    n: usize,
    limit: Duration,
) -> Vec<u32> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let counts = count_numbered(paths, n);
        let missing = counts.iter().filter(|c| **c == 0).count();
        if missing == 0 {
            return counts;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{missing} of {n} lines still missing after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
