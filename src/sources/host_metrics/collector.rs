//! One collection cycle of `host_metrics`: read the `/proc` files of the
//! enabled collectors, compare the counters with the previous cycle (CPU
//! utilisation and network rates are deltas), and produce samples.
//!
//! The collector owns everything that carries over between cycles (the
//! previous counters, a reused read buffer, the files already reported
//! missing), and takes the time of the cycle as a parameter, so tests drive
//! it over fake `/proc` trees without waiting. It does blocking file I/O;
//! the source runs it on tokio's blocking pool.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use schemars::JsonSchema;
use serde::Deserialize;

use super::procfs::{self, NetCounters, Stat};
use super::statvfs::statvfs;
use crate::event::metric::Metric;

/// A group of metrics that can be turned on or off (`collectors = [...]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `cpu_usage_percent`, `cpu_iowait_percent`, `cpu_core_usage_percent`.
    Cpu,
    /// `load1`, `load5`, `load15`.
    Load,
    /// `memory_used_percent`, `memory_available_bytes`, `memory_total_bytes`.
    Memory,
    /// `swap_used_percent`, `swap_used_bytes`, `swap_total_bytes`.
    Swap,
    /// `filesystem_used_percent`, `filesystem_free_bytes`,
    /// `filesystem_total_bytes` per mount.
    Filesystem,
    /// `network_*_bytes_total`, `network_*_errors_total` and their
    /// `_per_second` rates, per interface.
    Network,
    /// `uptime_seconds`.
    Uptime,
}

/// Every collector, the default.
pub const ALL: &[Kind] = &[
    Kind::Cpu,
    Kind::Load,
    Kind::Memory,
    Kind::Swap,
    Kind::Filesystem,
    Kind::Network,
    Kind::Uptime,
];

/// Reads the machine's numbers, cycle after cycle.
#[derive(Debug)]
pub struct Collector {
    root: PathBuf,
    kinds: Vec<Kind>,
    previous_stat: Option<Stat>,
    previous_net: Option<(Instant, HashMap<String, NetCounters>)>,
    text: String,
    reported_missing: HashSet<&'static str>,
}

impl Collector {
    /// A collector reading the proc filesystem mounted at `root` (normally
    /// `/proc`).
    pub fn new(root: PathBuf, kinds: &[Kind]) -> Self {
        Self {
            root,
            kinds: kinds.to_vec(),
            previous_stat: None,
            previous_net: None,
            text: String::with_capacity(16 * 1024),
            reported_missing: HashSet::new(),
        }
    }

    /// Collects one cycle at time `at`. Utilisation and rates need two
    /// cycles, so the first one has no `cpu_*` or `*_per_second` samples.
    pub fn collect(&mut self, at: Instant) -> Vec<Metric> {
        let mut out = Vec::with_capacity(64);
        let kinds = std::mem::take(&mut self.kinds);
        for &kind in &kinds {
            match kind {
                Kind::Cpu => self.cpu(&mut out),
                Kind::Load => self.load(&mut out),
                Kind::Memory | Kind::Swap => self.memory(kind, &mut out),
                Kind::Filesystem => self.filesystems(&mut out),
                Kind::Network => self.network(at, &mut out),
                Kind::Uptime => self.uptime(&mut out),
            }
        }
        self.kinds = kinds;
        out
    }

    fn cpu(&mut self, out: &mut Vec<Metric>) {
        let Some(text) = self.read("stat") else {
            return;
        };
        let stat = procfs::parse_stat(text);
        if let Some(previous) = &self.previous_stat {
            if let (Some(now), Some(before)) = (stat.total, previous.total)
                && let Some((busy, iowait)) = now.usage_since(&before)
            {
                out.push(Metric::gauge("cpu_usage_percent", busy));
                out.push(Metric::gauge("cpu_iowait_percent", iowait));
            }
            for (core, now) in &stat.cores {
                let before = previous.cores.iter().find(|(name, _)| name == core);
                if let Some((busy, _)) = before.and_then(|(_, before)| now.usage_since(before)) {
                    out.push(Metric::gauge("cpu_core_usage_percent", busy).tag("cpu", core));
                }
            }
        }
        self.previous_stat = Some(stat);
    }

    fn load(&mut self, out: &mut Vec<Metric>) {
        let Some(text) = self.read("loadavg") else {
            return;
        };
        if let Some([one, five, fifteen]) = procfs::parse_loadavg(text) {
            out.push(Metric::gauge("load1", one));
            out.push(Metric::gauge("load5", five));
            out.push(Metric::gauge("load15", fifteen));
        }
    }

    /// Memory and swap share `/proc/meminfo`; with both collectors on it
    /// is read twice, which costs microseconds and keeps them independent.
    fn memory(&mut self, kind: Kind, out: &mut Vec<Metric>) {
        let Some(text) = self.read("meminfo") else {
            return;
        };
        let info = procfs::parse_meminfo(text);
        if kind == Kind::Memory {
            if let Some(total) = info.total {
                out.push(Metric::gauge("memory_total_bytes", total as f64));
            }
            if let Some(available) = info.available {
                out.push(Metric::gauge("memory_available_bytes", available as f64));
            }
            if let (Some(total), Some(available)) = (info.total, info.available)
                && total > 0
            {
                let used = total.saturating_sub(available);
                out.push(Metric::gauge(
                    "memory_used_percent",
                    100.0 * used as f64 / total as f64,
                ));
            }
        } else if let (Some(total), Some(free)) = (info.swap_total, info.swap_free) {
            let used = total.saturating_sub(free);
            out.push(Metric::gauge("swap_total_bytes", total as f64));
            out.push(Metric::gauge("swap_used_bytes", used as f64));
            if total > 0 {
                out.push(Metric::gauge(
                    "swap_used_percent",
                    100.0 * used as f64 / total as f64,
                ));
            }
        }
    }

    fn filesystems(&mut self, out: &mut Vec<Metric>) {
        let Some(text) = self.read("self/mounts") else {
            return;
        };
        for mount in procfs::parse_mounts(text) {
            let space = match statvfs(Path::new(&mount.mountpoint)) {
                Ok(space) if space.total > 0 => space,
                Ok(_) => continue,
                Err(error) => {
                    tracing::debug!(mountpoint = %mount.mountpoint, "skipping filesystem: {error}");
                    continue;
                }
            };
            let tagged = |metric: Metric| {
                metric
                    .tag("mountpoint", &mount.mountpoint)
                    .tag("device", &mount.device)
                    .tag("fstype", &mount.fstype)
            };
            if let Some(used) = space.used_percent() {
                out.push(tagged(Metric::gauge("filesystem_used_percent", used)));
            }
            out.push(tagged(Metric::gauge(
                "filesystem_free_bytes",
                space.available as f64,
            )));
            out.push(tagged(Metric::gauge(
                "filesystem_total_bytes",
                space.total as f64,
            )));
        }
    }

    fn network(&mut self, at: Instant, out: &mut Vec<Metric>) {
        let Some(text) = self.read("net/dev") else {
            return;
        };
        let devices: HashMap<String, NetCounters> =
            procfs::parse_net_dev(text).into_iter().collect();
        let previous = self.previous_net.take();
        for (device, now) in &devices {
            let counters = [
                ("network_receive_bytes", now.receive_bytes),
                ("network_receive_errors", now.receive_errors),
                ("network_transmit_bytes", now.transmit_bytes),
                ("network_transmit_errors", now.transmit_errors),
            ];
            for (name, value) in counters {
                out.push(
                    Metric::counter(format!("{name}_total"), value as f64).tag("device", device),
                );
            }
            let Some((then, before)) = previous
                .as_ref()
                .and_then(|(then, all)| Some((then, all.get(device)?)))
            else {
                continue;
            };
            let seconds = at.saturating_duration_since(*then).as_secs_f64();
            if seconds <= 0.0 {
                continue;
            }
            let deltas = [
                (
                    "network_receive_bytes",
                    now.receive_bytes,
                    before.receive_bytes,
                ),
                (
                    "network_receive_errors",
                    now.receive_errors,
                    before.receive_errors,
                ),
                (
                    "network_transmit_bytes",
                    now.transmit_bytes,
                    before.transmit_bytes,
                ),
                (
                    "network_transmit_errors",
                    now.transmit_errors,
                    before.transmit_errors,
                ),
            ];
            for (name, now, before) in deltas {
                // A counter that went back was reset (driver reload): no rate
                // this cycle rather than a huge negative one.
                if let Some(delta) = now.checked_sub(before) {
                    out.push(
                        Metric::gauge(format!("{name}_per_second"), delta as f64 / seconds)
                            .tag("device", device),
                    );
                }
            }
        }
        self.previous_net = Some((at, devices));
    }

    fn uptime(&mut self, out: &mut Vec<Metric>) {
        let Some(text) = self.read("uptime") else {
            return;
        };
        if let Some(seconds) = procfs::parse_uptime(text) {
            out.push(Metric::gauge("uptime_seconds", seconds));
        }
    }

    /// The text of `root/file`, or `None` (with one debug log per file for
    /// the life of the source) when it cannot be read: containers and
    /// hardened kernels hide some of these files, and that is not an error.
    fn read(&mut self, file: &'static str) -> Option<&str> {
        self.text.clear();
        let path = self.root.join(file);
        let read = std::fs::File::open(&path).and_then(|mut f| f.read_to_string(&mut self.text));
        match read {
            Ok(_) => Some(&self.text),
            Err(error) => {
                if self.reported_missing.insert(file) {
                    tracing::debug!(path = %path.display(), "skipping unreadable file: {error}");
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn names(metrics: &[Metric]) -> Vec<&str> {
        metrics.iter().map(|m| m.name.as_str()).collect()
    }

    fn value(metrics: &[Metric], name: &str) -> f64 {
        metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", names(metrics)))
            .value
    }

    #[test]
    fn cpu_usage_comes_from_the_difference_between_two_reads_of_stat() {
        let root = tempfile::tempdir().unwrap();
        let stat = |user: u64, idle: u64, core0: (u64, u64)| {
            format!(
                "cpu  {user} 0 0 {idle} 0 0 0 0 0 0\ncpu0 {} 0 0 {} 0 0 0 0 0 0\n",
                core0.0, core0.1
            )
        };
        std::fs::write(root.path().join("stat"), stat(100, 900, (50, 450))).unwrap();
        let mut collector = Collector::new(root.path().into(), &[Kind::Cpu]);
        let start = Instant::now();
        assert!(
            collector.collect(start).is_empty(),
            "one read gives no utilisation"
        );
        // 300 of 400 new jiffies busy: 75 %; core 0: 10 of 100: 10 %.
        std::fs::write(root.path().join("stat"), stat(400, 1000, (60, 540))).unwrap();
        let metrics = collector.collect(start + Duration::from_secs(15));
        assert_eq!(value(&metrics, "cpu_usage_percent"), 75.0);
        assert_eq!(value(&metrics, "cpu_iowait_percent"), 0.0);
        let core = metrics
            .iter()
            .find(|m| m.name == "cpu_core_usage_percent")
            .unwrap();
        assert_eq!((core.value, core.tags["cpu"].as_str()), (10.0, "cpu0"));
    }

    #[test]
    fn network_rates_are_per_second_over_the_time_between_cycles() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("net")).unwrap();
        let dev = |rx: u64, errors: u64| {
            format!("header\nheader\n  eth0: {rx} 1 {errors} 0 0 0 0 0 500 1 0 0 0 0 0 0\n")
        };
        std::fs::write(root.path().join("net/dev"), dev(1000, 0)).unwrap();
        let mut collector = Collector::new(root.path().into(), &[Kind::Network]);
        let start = Instant::now();
        let first = collector.collect(start);
        assert_eq!(value(&first, "network_receive_bytes_total"), 1000.0);
        assert!(!names(&first).contains(&"network_receive_bytes_per_second"));
        std::fs::write(root.path().join("net/dev"), dev(6000, 4)).unwrap();
        let second = collector.collect(start + Duration::from_secs(10));
        assert_eq!(value(&second, "network_receive_bytes_per_second"), 500.0);
        assert_eq!(value(&second, "network_receive_errors_per_second"), 0.4);
        assert_eq!(value(&second, "network_transmit_bytes_per_second"), 0.0);
        assert!(second.iter().all(|m| m.tags["device"] == "eth0"));
    }

    #[test]
    fn missing_files_are_skipped_and_the_rest_is_collected() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("loadavg"), "0.5 0.25 0.125 1/2 3\n").unwrap();
        let mut collector = Collector::new(root.path().into(), ALL);
        let now = Instant::now();
        let metrics = collector.collect(now);
        assert_eq!(names(&metrics), ["load1", "load5", "load15"]);
        assert_eq!(
            names(&collector.collect(now + Duration::from_secs(1))),
            ["load1", "load5", "load15"]
        );
    }

    #[test]
    fn memory_and_swap_in_percent_and_bytes() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(
            root.path().join("meminfo"),
            "MemTotal: 1000 kB\nMemAvailable: 150 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n",
        )
        .unwrap();
        let metrics =
            Collector::new(root.path().into(), &[Kind::Memory, Kind::Swap]).collect(Instant::now());
        assert_eq!(value(&metrics, "memory_used_percent"), 85.0);
        assert_eq!(value(&metrics, "memory_available_bytes"), 150.0 * 1024.0);
        assert_eq!(value(&metrics, "swap_total_bytes"), 0.0);
        assert!(
            !names(&metrics).contains(&"swap_used_percent"),
            "no swap: no percentage"
        );
    }

    /// The real `/proc` of the machine running the tests.
    #[test]
    fn values_from_this_machine_are_within_their_ranges() {
        let mut collector = Collector::new("/proc".into(), ALL);
        let start = Instant::now();
        collector.collect(start);
        // The kernel counts CPU time in ticks of 10 ms or less; collect
        // again until one has passed (bounded).
        let deadline = start + Duration::from_secs(5);
        let metrics = loop {
            let metrics = collector.collect(Instant::now());
            if names(&metrics).contains(&"cpu_usage_percent") || Instant::now() > deadline {
                break metrics;
            }
            std::hint::spin_loop();
        };
        let percent = |name: &str| {
            let v = value(&metrics, name);
            assert!((0.0..=100.0).contains(&v), "{name} = {v}");
        };
        percent("cpu_usage_percent");
        percent("memory_used_percent");
        for metric in metrics.iter().filter(|m| m.name.ends_with("_percent")) {
            assert!(
                (0.0..=100.0).contains(&metric.value),
                "{} {:?} = {}",
                metric.name,
                metric.tags,
                metric.value
            );
        }
        assert!(value(&metrics, "load1") >= 0.0);
        assert!(value(&metrics, "uptime_seconds") > 0.0);
        assert!(value(&metrics, "memory_total_bytes") > 0.0);
        assert!(
            metrics.iter().any(|m| m.name == "filesystem_used_percent"),
            "the root filesystem at least: {:?}",
            names(&metrics)
        );
        assert!(metrics.iter().all(|m| m.value.is_finite()));
    }
}
