//! Progress on stderr for the commands that work through a batch: `howl
//! patterns mine` (bytes and lines of its input), `howl run` fed a file on
//! stdin (how far the `stdin` source has read it, [`StdinReading`]), and
//! `howl review` (a spinner: the review is one step, with no count to
//! show).
//!
//! Shown only when stderr is a terminal: a bar is for a person watching,
//! and in a pipe, a log file or CI its carriage returns would be noise. The
//! bar is updated in batches ([`FLUSH_BYTES`], [`FLUSH_LINES`]), as
//! indicatif reads the clock on every update and mining a line takes less
//! than a microsecond.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressState, ProgressStyle};

/// Bytes read between two updates of a bar.
pub const FLUSH_BYTES: u64 = 1 << 20;
/// Lines read between two updates of a bar.
pub const FLUSH_LINES: u64 = 8192;

/// The bar on screen now, if any, so that howl's own log lines
/// ([`super::logging`]) are written above it instead of through it.
static SHOWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Whether progress may be drawn: only for a person at a terminal.
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// A progress bar or spinner on stderr, or nothing when it is not shown.
pub struct Progress {
    bar: Option<ProgressBar>,
    lines: Arc<AtomicU64>,
    bytes: u64,
    pending_bytes: u64,
    pending_lines: u64,
}

impl Progress {
    /// Nothing on screen; every call is a no-op.
    pub fn hidden() -> Self {
        Self {
            bar: None,
            lines: Arc::new(AtomicU64::new(0)),
            bytes: 0,
            pending_bytes: 0,
            pending_lines: 0,
        }
    }

    /// A bar over `total` bytes (bytes, lines/s and ETA), or a counter of
    /// bytes and lines when the size is unknown (a pipe); drawn only when
    /// `show`.
    pub fn bytes(label: &str, total: Option<u64>, show: bool) -> Self {
        if !show {
            return Self::hidden();
        }
        let lines = Arc::new(AtomicU64::new(0));
        let template = match total {
            Some(_) => {
                "{spinner} {prefix} [{wide_bar}] {binary_bytes}/{binary_total_bytes} · \
                 {lines_per_sec} · ETA {eta}"
            }
            None => "{spinner} {prefix} {binary_bytes} · {lines} · {lines_per_sec} · {elapsed}",
        };
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ")
            .with_key("lines", {
                let lines = Arc::clone(&lines);
                move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{} lines", count(lines.load(Ordering::Relaxed)));
                }
            })
            .with_key("lines_per_sec", {
                let lines = Arc::clone(&lines);
                move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = w.write_str(&rate(lines.load(Ordering::Relaxed), state.elapsed()));
                }
            });
        let bar = match total {
            Some(total) => ProgressBar::new(total),
            None => ProgressBar::no_length(),
        };
        bar.set_style(style);
        bar.set_prefix(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        Self::show(bar, lines)
    }

    /// A spinner with a message and the time spent, for work that has no
    /// count to show; drawn only when `show`.
    pub fn spinner(message: &str, show: bool) -> Self {
        if !show {
            return Self::hidden();
        }
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(100));
        Self::show(bar, Arc::new(AtomicU64::new(0)))
    }

    fn show(bar: ProgressBar, lines: Arc<AtomicU64>) -> Self {
        bar.tick();
        if let Ok(mut shown) = SHOWN.lock() {
            *shown = Some(bar.clone());
        }
        Self {
            bar: Some(bar),
            lines,
            bytes: 0,
            pending_bytes: 0,
            pending_lines: 0,
        }
    }

    /// Changes a spinner's message (a count only the caller knows).
    pub fn message(&mut self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(message.to_string());
        }
    }

    /// Counts one line of `bytes` bytes (its newline included).
    pub fn line(&mut self, bytes: u64) {
        if self.bar.is_none() {
            return;
        }
        self.pending_bytes += bytes;
        self.pending_lines += 1;
        if self.pending_bytes >= FLUSH_BYTES || self.pending_lines >= FLUSH_LINES {
            self.flush();
        }
    }

    /// Sets how many bytes and lines were read in all (when someone else
    /// reads and counts).
    pub fn set(&mut self, bytes: u64, lines: u64) {
        if let Some(bar) = &self.bar {
            self.bytes = bytes;
            self.lines.store(lines, Ordering::Relaxed);
            bar.set_position(bytes);
        }
    }

    fn flush(&mut self) {
        if let Some(bar) = &self.bar {
            self.bytes += self.pending_bytes;
            self.lines.fetch_add(self.pending_lines, Ordering::Relaxed);
            bar.set_position(self.bytes);
        }
        self.pending_bytes = 0;
        self.pending_lines = 0;
    }

    /// Takes the bar off the screen, leaving what was printed before it.
    pub fn finish(mut self) {
        self.flush();
        self.clear();
    }

    fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            if let Ok(mut shown) = SHOWN.lock() {
                *shown = None;
            }
        }
    }
}

impl Drop for Progress {
    /// An early return (an error) takes the bar away too.
    fn drop(&mut self) {
        self.clear();
    }
}

/// A bar of how far `howl run` has read the file given as its stdin (`howl
/// run -c ci.toml < build.log`): the file's offset, from
/// `/proc/self/fdinfo/0`, against its size, and the lines the `stdin`
/// sources counted, from the metrics. Nothing for a pipe (no size), a
/// topology without a `stdin` source, or when stderr is not a terminal.
pub struct StdinReading {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl StdinReading {
    /// Starts the bar, when there is one to show; call in the runtime.
    pub fn start(
        config: &crate::config::Config,
        metrics: metrics_exporter_prometheus::PrometheusHandle,
    ) -> Option<Self> {
        let reads_stdin = config
            .sources
            .iter()
            .any(|source| source.key.type_name() == "stdin");
        // Not when the console sink writes on the same screen: the bar
        // would draw over the events.
        if !reads_stdin || !stderr_is_terminal() || std::io::stdout().is_terminal() {
            return None;
        }
        let size = std::fs::metadata("/dev/stdin")
            .ok()
            .filter(std::fs::Metadata::is_file)?
            .len();
        let mut progress = Progress::bytes("stdin", Some(size), true);
        let stop = tokio_util::sync::CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    _ = stopped.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let offset = std::fs::read_to_string("/proc/self/fdinfo/0")
                    .ok()
                    .and_then(|text| fd_offset(&text));
                if let Some(offset) = offset {
                    progress.set(offset, stdin_lines(&metrics.render()));
                }
            }
            progress.finish();
        });
        Some(Self { stop, task })
    }

    /// Takes the bar off the screen before the run's last words.
    pub async fn finish(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// The offset of a file descriptor, from its `/proc/self/fdinfo/N` text
/// (`pos:\t12345`).
pub fn fd_offset(fdinfo: &str) -> Option<u64> {
    fdinfo
        .lines()
        .find_map(|line| line.strip_prefix("pos:"))
        .and_then(|value| value.trim().parse().ok())
}

/// The lines the `stdin` sources have read, from the Prometheus text of
/// howl's metrics.
pub fn stdin_lines(rendered: &str) -> u64 {
    rendered
        .lines()
        .filter(|line| {
            line.starts_with("component_received_events_total{")
                && line.contains("component_kind=\"source\"")
                && line.contains("component_type=\"stdin\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Runs `write` with the bar (if one is on screen) hidden, so a log line
/// does not land in the middle of it.
pub fn above_the_bar<T>(write: impl FnOnce() -> T) -> T {
    let shown = SHOWN.lock().ok().and_then(|shown| shown.clone());
    match shown {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

/// A count for people: `950`, `12.3k`, `4.5M`.
pub fn count(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// Lines per second over `elapsed`, for people; `… lines/s` until a tenth
/// of a second has passed (a rate over less is noise).
pub fn rate(lines: u64, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    if seconds < 0.1 {
        return "… lines/s".to_string();
    }
    format!("{} lines/s", count((lines as f64 / seconds).round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_as_people_write_them() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1.0k");
        assert_eq!(count(12_345), "12.3k");
        assert_eq!(count(4_500_000), "4.5M");
    }

    #[test]
    fn a_rate_waits_for_a_tenth_of_a_second() {
        assert_eq!(rate(500, Duration::from_millis(50)), "… lines/s");
        assert_eq!(rate(500, Duration::from_millis(500)), "1.0k lines/s");
        assert_eq!(rate(3_000_000, Duration::from_secs(2)), "1.5M lines/s");
        assert_eq!(rate(0, Duration::from_secs(3)), "0 lines/s");
    }

    #[test]
    fn reads_the_offset_of_a_file_descriptor() {
        let fdinfo = "pos:\t1048576\nflags:\t0100000\nmnt_id:\t25\nino:\t1234\n";
        assert_eq!(fd_offset(fdinfo), Some(1_048_576));
        assert_eq!(fd_offset("flags:\t02\n"), None);
    }

    #[test]
    fn counts_the_lines_of_stdin_sources_only() {
        let rendered = "\
# TYPE component_received_events_total counter
component_received_events_total{component_id=\"in\",component_kind=\"source\",component_type=\"stdin\"} 1200
component_received_events_total{component_id=\"in2\",component_kind=\"source\",component_type=\"stdin\"} 34
component_received_events_total{component_id=\"logs\",component_kind=\"source\",component_type=\"file\"} 99
component_received_events_total{component_id=\"f\",component_kind=\"transform\",component_type=\"filter\"} 1234
component_received_bytes_total{component_id=\"in\",component_kind=\"source\",component_type=\"stdin\"} 88000
";
        assert_eq!(stdin_lines(rendered), 1234);
        assert_eq!(stdin_lines(""), 0);
    }

    #[test]
    fn hidden_progress_counts_nothing_and_draws_nothing() {
        let mut progress = Progress::bytes("mining", Some(100), false);
        assert!(progress.bar.is_none());
        progress.line(10);
        assert_eq!((progress.pending_bytes, progress.pending_lines), (0, 0));
        assert!(SHOWN.lock().map(|s| s.is_none()).unwrap_or(true));
        progress.finish();
    }

    #[test]
    fn lines_reach_the_bar_in_batches() {
        let bar = ProgressBar::hidden();
        let mut progress = Progress {
            bar: Some(bar.clone()),
            lines: Arc::new(AtomicU64::new(0)),
            bytes: 0,
            pending_bytes: 0,
            pending_lines: 0,
        };
        for _ in 0..FLUSH_LINES - 1 {
            progress.line(10);
        }
        assert_eq!(bar.position(), 0, "not yet: one update per batch");
        progress.line(10);
        assert_eq!(bar.position(), FLUSH_LINES * 10);
        assert_eq!(progress.lines.load(Ordering::Relaxed), FLUSH_LINES);
        progress.line(FLUSH_BYTES);
        assert_eq!(
            bar.position(),
            FLUSH_LINES * 10 + FLUSH_BYTES,
            "a long line"
        );
        progress.line(5);
        progress.finish();
        assert_eq!(
            bar.position(),
            FLUSH_LINES * 10 + FLUSH_BYTES + 5,
            "the rest at the end"
        );
    }
}
