//! `demo_logs`: realistic log lines, for the built-in demo, tests and
//! benchmarks.
//!
//! The mix resembles a small web service on a few hosts: access lines with
//! varying paths, statuses, latencies, IPs and users; health-check and SSH
//! chatter (the noise an alerting pipeline must learn to ignore); cron and
//! background-job lines; warnings; and, now and then, a burst of errors that
//! looks like a real incident. Everything varies in the places real logs
//! vary, so template mining sees realistic input. With `seed` the output is
//! reproducible (timestamps aside).

use std::fmt::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use vrl::value::Value;

use crate::components::source::{Source, SourceConfig, SourceContext};
use crate::components::{BuildContext, ComponentFuture};
use crate::diagnostic::BuildError;
use crate::event::{Event, fields};
use crate::options::Seconds;

/// Options of the `demo_logs` source.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DemoLogsConfig {
    /// The time between two lines; a plain number is seconds, and fractions
    /// are allowed (`0.001`, or `"1ms"`). `0` generates as fast as
    /// downstream accepts, for benchmarks; otherwise from `0.000001` (1 µs)
    /// to `86400` (one day).
    #[serde(default = "default_interval")]
    interval: Seconds,
    /// Stop after this many lines; unset runs until shutdown.
    count: Option<u64>,
    /// Seed of the generator: the same seed gives the same lines
    /// (timestamps aside). Unset picks one per run.
    seed: Option<u64>,
}

fn default_interval() -> Seconds {
    Seconds::from_secs(1)
}

/// The longest `interval`: a day is more than any demo needs, and far
/// longer ones would overflow the timer.
const MAX_INTERVAL: Duration = Duration::from_secs(86_400);
/// The shortest `interval` other than 0 (as fast as possible).
const MIN_INTERVAL: Duration = Duration::from_micros(1);
/// Lines per batch when generating as fast as possible.
const BATCH: u64 = 256;
/// Below this interval, several lines are emitted per tick instead of
/// waking up thousands of times a second.
const MIN_TICK: Duration = Duration::from_millis(10);

impl SourceConfig for DemoLogsConfig {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        let interval = self.interval.get();
        if !(interval.is_zero() || (MIN_INTERVAL..=MAX_INTERVAL).contains(&interval)) {
            return Err(BuildError::new(
                "`interval` must be 0 (as fast as possible) or between 0.000001 and 86400 seconds",
            )
            .for_option("interval"));
        }
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
        Ok(Box::new(DemoLogs {
            interval,
            count: self.count,
            generator: DemoGenerator::new(seed),
        }))
    }
}

struct DemoLogs {
    interval: Duration,
    count: Option<u64>,
    generator: DemoGenerator,
}

impl Source for DemoLogs {
    fn run(mut self: Box<Self>, mut cx: SourceContext) -> ComponentFuture {
        Box::pin(async move {
            let source_id = cx.key.shared_id();
            let (tick, per_tick) = ticks(self.interval);
            let mut ticker = tick.map(|t| {
                let mut ticker = tokio::time::interval(t);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticker
            });
            let mut produced: u64 = 0;
            let mut line = String::new();
            loop {
                if let Some(ticker) = ticker.as_mut() {
                    tokio::select! {
                        biased;
                        _ = cx.shutdown.cancelled() => break,
                        _ = ticker.tick() => {}
                    }
                } else if cx.shutdown.is_cancelled() {
                    break;
                }
                let wanted = match self.count {
                    Some(count) => per_tick.min(count - produced),
                    None => per_tick,
                };
                if wanted == 0 {
                    break;
                }
                let now = Utc::now();
                let mut events = Vec::with_capacity(wanted as usize);
                let mut bytes = 0;
                for _ in 0..wanted {
                    line.clear();
                    let host = self.generator.next_line(now, &mut line);
                    bytes += line.len();
                    let mut event = Event::log(line.clone().into(), now, "demo_logs")
                        .with_source_id(source_id.clone());
                    event.insert_field(fields::HOST, Value::from(host));
                    events.push(event);
                }
                produced += wanted;
                cx.out.metrics().received(events.len(), bytes);
                tokio::select! {
                    biased;
                    _ = cx.shutdown.cancelled() => break,
                    _ = cx.out.send(events) => {}
                }
            }
            Ok(())
        })
    }
}

/// How often to wake up (`None`: never wait) and how many lines to emit
/// each time, for one line every `interval`.
fn ticks(interval: Duration) -> (Option<Duration>, u64) {
    if interval.is_zero() {
        (None, BATCH)
    } else if interval < MIN_TICK {
        let per_tick = (MIN_TICK.as_secs_f64() / interval.as_secs_f64()).round();
        (Some(MIN_TICK), per_tick.max(1.0) as u64)
    } else {
        (Some(interval), 1)
    }
}

/// A small, fast, seedable PRNG (SplitMix64): good enough for fake logs, and
/// no dependency.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// True with probability `per_mille`/1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

const HOSTS: &[&str] = &[
    "web-01",
    "web-02",
    "web-03",
    "api-01",
    "api-02",
    "db-01",
    "worker-01",
    "worker-02",
];
const USERS: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
];
const SCANNED_USERS: &[&str] = &[
    "admin", "root", "test", "oracle", "ubuntu", "postgres", "git", "pi",
];
const PATHS: &[&str] = &[
    "/api/v1/orders",
    "/api/v1/users",
    "/api/v2/search",
    "/api/v1/cart/items",
    "/api/v1/payments",
    "/login",
];
const METHODS: &[&str] = &["GET", "GET", "GET", "GET", "POST", "POST", "PUT", "DELETE"];
const STATUSES: &[u16] = &[
    200, 200, 200, 200, 200, 200, 200, 201, 204, 304, 400, 401, 404, 404, 429,
];
const SERVICES: &[&str] = &["payments", "inventory", "search", "auth", "shipping"];
const TABLES: &[&str] = &["orders", "users", "line_items", "payments", "sessions"];

/// What an ongoing incident burst prints.
#[derive(Debug, Clone, Copy)]
enum Incident {
    DatabaseDown,
    UpstreamTimeouts,
    OutOfMemory,
}

/// Generates demo lines.
#[derive(Debug, Clone)]
pub struct DemoGenerator {
    rng: SplitMix64,
    burst: Option<(Incident, u32)>,
}

impl DemoGenerator {
    /// A generator; the same seed gives the same lines (timestamps aside).
    pub fn new(seed: u64) -> Self {
        Self {
            rng: SplitMix64(seed),
            burst: None,
        }
    }

    /// Writes one line into `out` and returns the host it claims to be from.
    pub fn next_line(&mut self, now: DateTime<Utc>, out: &mut String) -> &'static str {
        let host = *self.rng.pick(HOSTS);
        if self.burst.is_none() && self.rng.chance(3) {
            let incident = *self.rng.pick(&[
                Incident::DatabaseDown,
                Incident::UpstreamTimeouts,
                Incident::OutOfMemory,
            ]);
            self.burst = Some((incident, 8 + self.rng.below(18) as u32));
        }
        if let Some((incident, left)) = self.burst {
            self.burst = (left > 1).then_some((incident, left - 1));
            self.incident_line(incident, now, host, out);
            return host;
        }
        let roll = self.rng.below(100);
        match roll {
            0..=29 => self.access_line(now, host, out),
            30..=41 => self.health_check(now, host, out),
            42..=55 => self.ssh_line(now, host, out),
            56..=63 => self.cron_line(now, host, out),
            64..=84 => self.job_line(now, host, out),
            85..=96 => self.warning_line(now, host, out),
            _ => self.error_line(now, host, out),
        }
        host
    }

    fn iso(&self, now: DateTime<Utc>, host: &str, level: &str, thread: &str, out: &mut String) {
        let _ = write!(
            out,
            "{} {host} {level} [{thread}] ",
            now.format("%Y-%m-%dT%H:%M:%S%.3fZ")
        );
    }

    fn syslog(&self, now: DateTime<Utc>, host: &str, daemon: &str, pid: u64, out: &mut String) {
        let _ = write!(
            out,
            "{} {host} {daemon}[{pid}]: ",
            now.format("%b %e %H:%M:%S")
        );
    }

    fn ip(&mut self) -> String {
        match self.rng.below(4) {
            0 | 1 => format!(
                "10.{}.{}.{}",
                self.rng.below(256),
                self.rng.below(256),
                1 + self.rng.below(254)
            ),
            2 => format!(
                "192.168.{}.{}",
                self.rng.below(256),
                1 + self.rng.below(254)
            ),
            _ => format!(
                "{}.{}.{}.{}",
                1 + self.rng.below(223),
                self.rng.below(256),
                self.rng.below(256),
                1 + self.rng.below(254)
            ),
        }
    }

    fn worker(&mut self) -> String {
        format!("http-worker-{}", self.rng.below(16))
    }

    fn access_line(&mut self, now: DateTime<Utc>, host: &str, out: &mut String) {
        let thread = self.worker();
        self.iso(now, host, "INFO", &thread, out);
        let method = *self.rng.pick(METHODS);
        let path = *self.rng.pick(PATHS);
        let id = self.rng.below(100_000);
        let status = *self.rng.pick(STATUSES);
        let duration = 1 + self.rng.below(900);
        let ip = self.ip();
        let user = *self.rng.pick(USERS);
        let _ = write!(
            out,
            "{method} {path}/{id} {status} {duration}ms ip={ip} user={user}"
        );
    }

    fn health_check(&mut self, now: DateTime<Utc>, host: &str, out: &mut String) {
        let thread = self.worker();
        self.iso(now, host, "INFO", &thread, out);
        let _ = write!(
            out,
            "GET /health 200 {}ms ip=10.0.0.{} user=kube-probe",
            self.rng.below(3),
            1 + self.rng.below(9)
        );
    }

    fn ssh_line(&mut self, now: DateTime<Utc>, host: &str, out: &mut String) {
        let pid = 1000 + self.rng.below(60_000);
        self.syslog(now, host, "sshd", pid, out);
        let ip = self.ip();
        let port = 1024 + self.rng.below(64_000);
        match self.rng.below(10) {
            0..=4 => {
                let user = *self.rng.pick(SCANNED_USERS);
                let _ = write!(
                    out,
                    "Failed password for invalid user {user} from {ip} port {port} ssh2"
                );
            }
            5..=6 => {
                let _ = write!(
                    out,
                    "Connection closed by authenticating user root {ip} port {port} [preauth]"
                );
            }
            7..=8 => {
                let user = *self.rng.pick(USERS);
                let _ = write!(
                    out,
                    "Accepted publickey for {user} from {ip} port {port} ssh2: ED25519 SHA256:{:016x}",
                    self.rng.next()
                );
            }
            _ => {
                let _ = write!(
                    out,
                    "error: kex_exchange_identification: Connection reset by peer"
                );
            }
        }
    }

    fn cron_line(&mut self, now: DateTime<Utc>, host: &str, out: &mut String) {
        let pid = 1000 + self.rng.below(60_000);
        self.syslog(now, host, "CRON", pid, out);
        let job = *self.rng.pick(&[
            "run-parts /etc/cron.hourly",
            "/usr/local/bin/backup.sh --incremental",
            "logrotate /etc/logrotate.conf",
        ]);
        let _ = write!(out, "(root) CMD ({job})");
    }

    fn job_line(&mut self, now: DateTime<Utc>, host: &str, out: &mut String) {
        match self.rng.below(4) {
            0 => {
                self.iso(now, host, "DEBUG", "scheduler", out);
                let _ = write!(
                    out,
                    "job cleanup-sessions finished in {}ms removed={}",
                    5 + self.rng.below(500),
                    self.rng.below(300)
                );
            }
            1 => {
                self.iso(now, host, "INFO", "kafka-consumer", out);
                let _ = write!(
                    out,
                    "committed offset {} partition={}",
                    self.rng.below(10_000_000),
                    self.rng.below(12)
                );
            }
            2 => {
                self.iso(now, host, "INFO", "cache", out);
                let _ = write!(
                    out,
                    "cache hit ratio {:.2} keys={}",
                    0.5 + self.rng.below(50) as f64 / 100.0,
                    1000 + self.rng.below(90_000)
                );
            }
            _ => {
                let user = *self.rng.pick(USERS);
                self.iso(now, host, "INFO", "auth", out);
                let _ = write!(
                    out,
                    "user {user} logged in from {} session={:08x}",
                    self.ip(),
                    self.rng.next() as u32
                );
            }
        }
    }

    fn warning_line(&mut self, now: DateTime<Utc>, host: &str, out: &mut String) {
        match self.rng.below(3) {
            0 => {
                let pool = format!("db-pool-{}", 1 + self.rng.below(2));
                self.iso(now, host, "WARN", &pool, out);
                let table = *self.rng.pick(TABLES);
                let _ = write!(
                    out,
                    "slow query took {}ms table={table} rows={}",
                    1000 + self.rng.below(4000),
                    self.rng.below(50_000)
                );
            }
            1 => {
                let thread = self.worker();
                self.iso(now, host, "WARN", &thread, out);
                let service = *self.rng.pick(SERVICES);
                let _ = write!(
                    out,
                    "retrying request to {service} attempt={}/5 backoff={}ms",
                    1 + self.rng.below(4),
                    100 * (1 + self.rng.below(20))
                );
            }
            _ => {
                self.iso(now, host, "WARN", "gc", out);
                let _ = write!(
                    out,
                    "GC pause {}ms heap={}MB",
                    200 + self.rng.below(800),
                    900 + self.rng.below(1100)
                );
            }
        }
    }

    fn error_line(&mut self, now: DateTime<Utc>, host: &str, out: &mut String) {
        self.iso(now, host, "ERROR", "payment-worker", out);
        let code = *self
            .rng
            .pick(&["card_declined", "insufficient_funds", "expired_card"]);
        let _ = write!(
            out,
            "charge failed order={} code={code}",
            self.rng.below(1_000_000)
        );
    }

    fn incident_line(
        &mut self,
        incident: Incident,
        now: DateTime<Utc>,
        host: &str,
        out: &mut String,
    ) {
        match incident {
            Incident::DatabaseDown => {
                let pool = format!("db-pool-{}", 1 + self.rng.below(2));
                self.iso(now, host, "ERROR", &pool, out);
                let _ = write!(
                    out,
                    "connection to postgres://db-01:5432/orders refused: FATAL: sorry, too many clients already (active={})",
                    95 + self.rng.below(10)
                );
            }
            Incident::UpstreamTimeouts => {
                let thread = self.worker();
                self.iso(now, host, "ERROR", &thread, out);
                let service = *self.rng.pick(SERVICES);
                let _ = write!(
                    out,
                    "upstream {service} timed out after 30000ms request_id={:016x}",
                    self.rng.next()
                );
            }
            Incident::OutOfMemory => {
                self.iso(now, host, "FATAL", "main", out);
                let _ = write!(
                    out,
                    "java.lang.OutOfMemoryError: Java heap space (heap={}MB limit=2048MB)",
                    2040 + self.rng.below(8)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::build_failure;

    #[test]
    fn the_interval_takes_units_and_plain_seconds_within_its_range() {
        let interval = |options: &str| {
            toml::from_str::<DemoLogsConfig>(options)
                .unwrap()
                .interval
                .get()
        };
        assert_eq!(interval("interval = 0.1"), Duration::from_millis(100));
        assert_eq!(interval("interval = \"250ms\""), Duration::from_millis(250));
        assert_eq!(interval(""), Duration::from_secs(1));
        for options in ["interval = 1e-7", "interval = \"2d\""] {
            let error = build_failure::<DemoLogsConfig>(options);
            assert!(
                error.message.contains("between 0.000001 and 86400"),
                "{error}"
            );
            assert_eq!(error.option.as_deref(), Some("interval"));
        }
    }

    #[test]
    fn short_intervals_emit_several_lines_per_tick() {
        assert_eq!(ticks(Duration::ZERO), (None, BATCH));
        assert_eq!(ticks(Duration::from_millis(1)), (Some(MIN_TICK), 10));
        assert_eq!(
            ticks(Duration::from_millis(500)),
            (Some(Duration::from_millis(500)), 1)
        );
    }

    #[test]
    fn same_seed_same_lines() {
        let now = Utc::now();
        let mut a = DemoGenerator::new(7);
        let mut b = DemoGenerator::new(7);
        for _ in 0..200 {
            let (mut x, mut y) = (String::new(), String::new());
            a.next_line(now, &mut x);
            b.next_line(now, &mut y);
            assert_eq!(x, y);
        }
    }

    #[test]
    fn mix_contains_noise_warnings_and_errors() {
        let now = Utc::now();
        let mut generator = DemoGenerator::new(1);
        let mut all = String::new();
        for _ in 0..5000 {
            generator.next_line(now, &mut all);
            all.push('\n');
        }
        for needle in [
            "GET /health",
            "Failed password",
            " WARN ",
            " ERROR ",
            "CRON[",
        ] {
            assert!(all.contains(needle), "demo logs lack {needle:?}");
        }
    }
}
