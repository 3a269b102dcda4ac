//! Parsers for the `/proc` files `host_metrics` reads, as pure functions of
//! the files' text, so each is tested on fixed input (including the odd
//! shapes real kernels print) without touching the machine.
//!
//! They skip what they do not understand rather than fail: a kernel that
//! adds a column, or a container that hides a line, costs one value, not
//! the whole cycle.

/// Jiffies a CPU (or all of them) spent, from a `cpu` line of `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    /// Every jiffy counted (user, nice, system, idle, iowait, irq, softirq,
    /// steal; guest time is already inside user and nice).
    pub total: u64,
    /// Jiffies doing nothing: idle plus iowait (waiting on I/O is not work).
    pub idle: u64,
    /// Jiffies waiting on I/O.
    pub iowait: u64,
}

impl CpuTimes {
    /// Percent busy and percent in iowait between `earlier` and `self`, or
    /// `None` when no time passed or a counter went back (a CPU went
    /// offline and came back).
    pub fn usage_since(&self, earlier: &CpuTimes) -> Option<(f64, f64)> {
        let total = self.total.checked_sub(earlier.total)?;
        let idle = self.idle.checked_sub(earlier.idle)?;
        let iowait = self.iowait.checked_sub(earlier.iowait)?;
        if total == 0 || idle > total {
            return None;
        }
        let busy = 100.0 * (total - idle) as f64 / total as f64;
        let waiting = 100.0 * iowait as f64 / total as f64;
        Some((busy, waiting))
    }
}

/// `/proc/stat`: the machine's CPU times and each core's.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stat {
    /// The `cpu` line.
    pub total: Option<CpuTimes>,
    /// The `cpuN` lines, as (`cpuN`, times), in file order.
    pub cores: Vec<(String, CpuTimes)>,
}

/// Parses `/proc/stat`.
pub fn parse_stat(text: &str) -> Stat {
    let mut stat = Stat::default();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(label) = fields.next().filter(|l| l.starts_with("cpu")) else {
            continue;
        };
        let values: Vec<u64> = fields.map_while(|f| f.parse().ok()).collect();
        // user nice system idle [iowait irq softirq steal guest guest_nice]
        if values.len() < 4 {
            continue;
        }
        let at = |i: usize| values.get(i).copied().unwrap_or(0);
        let times = CpuTimes {
            total: values.iter().take(8).sum(),
            idle: at(3) + at(4),
            iowait: at(4),
        };
        if label == "cpu" {
            stat.total = Some(times);
        } else {
            stat.cores.push((label.to_string(), times));
        }
    }
    stat
}

/// `/proc/loadavg`: the 1, 5 and 15 minute load averages.
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut fields = text.split_ascii_whitespace().map(str::parse::<f64>);
    Some([
        fields.next()?.ok()?,
        fields.next()?.ok()?,
        fields.next()?.ok()?,
    ])
}

/// The lines of `/proc/meminfo` howl uses, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemInfo {
    /// `MemTotal`.
    pub total: Option<u64>,
    /// `MemAvailable`, or on kernels older than 3.14 (which lack it)
    /// `MemFree + Buffers + Cached`.
    pub available: Option<u64>,
    /// `SwapTotal`.
    pub swap_total: Option<u64>,
    /// `SwapFree`.
    pub swap_free: Option<u64>,
}

/// Parses `/proc/meminfo` (values are in kB, i.e. KiB).
pub fn parse_meminfo(text: &str) -> MemInfo {
    let (mut free, mut buffers, mut cached) = (None, None, None);
    let mut info = MemInfo::default();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let Some(kib) = rest
            .split_ascii_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
        else {
            continue;
        };
        let bytes = Some(kib.saturating_mul(1024));
        match name {
            "MemTotal" => info.total = bytes,
            "MemAvailable" => info.available = bytes,
            "MemFree" => free = bytes,
            "Buffers" => buffers = bytes,
            "Cached" => cached = bytes,
            "SwapTotal" => info.swap_total = bytes,
            "SwapFree" => info.swap_free = bytes,
            _ => {}
        }
    }
    if info.available.is_none() {
        info.available = free.map(|f| f + buffers.unwrap_or(0) + cached.unwrap_or(0));
    }
    info
}

/// One interface's counters from `/proc/net/dev`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetCounters {
    /// Bytes received.
    pub receive_bytes: u64,
    /// Receive errors.
    pub receive_errors: u64,
    /// Bytes sent.
    pub transmit_bytes: u64,
    /// Transmit errors.
    pub transmit_errors: u64,
}

/// Parses `/proc/net/dev`: (interface, counters) per interface.
pub fn parse_net_dev(text: &str) -> Vec<(String, NetCounters)> {
    text.lines()
        .filter_map(|line| {
            // "  eth0: 123 ..." and, for large counters, "eth0:123 ...".
            let (name, rest) = line.split_once(':')?;
            let values: Vec<u64> = rest
                .split_ascii_whitespace()
                .map(|v| v.parse().ok())
                .collect::<Option<_>>()?;
            // rx: bytes packets errs drop fifo frame compressed multicast,
            // then tx: bytes packets errs ...
            if values.len() < 11 {
                return None;
            }
            Some((
                name.trim().to_string(),
                NetCounters {
                    receive_bytes: values[0],
                    receive_errors: values[2],
                    transmit_bytes: values[8],
                    transmit_errors: values[10],
                },
            ))
        })
        .collect()
}

/// `/proc/uptime`: seconds since boot.
pub fn parse_uptime(text: &str) -> Option<f64> {
    text.split_ascii_whitespace().next()?.parse().ok()
}

/// A mounted filesystem worth measuring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// What is mounted (`/dev/sda1`).
    pub device: String,
    /// Where (`/`), with the kernel's octal escapes decoded.
    pub mountpoint: String,
    /// The filesystem type (`ext4`).
    pub fstype: String,
}

/// Filesystem types that hold no user data (node_exporter's default
/// exclusions, except `overlay`: a container's root is one, and it is the
/// disk that fills up), or live on another machine: `statvfs` on a dead NFS
/// server blocks, and the remote host should be measured there.
const SKIPPED_FSTYPES: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nsfs",
    "proc",
    "procfs",
    "pstore",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tracefs",
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "ceph",
    "fuse.sshfs",
];

/// Mount points at or under which only the system's own machinery, or a
/// container runtime's layers, live.
const SKIPPED_MOUNTPOINTS: &[&str] = &[
    "/dev",
    "/proc",
    "/sys",
    "/run/credentials",
    "/var/lib/docker",
    "/var/lib/containers/storage",
];

/// Parses `/proc/self/mounts`, keeping real filesystems once each (the
/// first mount of each mount point).
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    let mut mounts: Vec<Mount> = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(device), Some(mountpoint), Some(fstype)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let mountpoint = unescape_octal(mountpoint);
        let skipped_point = SKIPPED_MOUNTPOINTS.iter().any(|skip| {
            mountpoint == *skip
                || mountpoint
                    .strip_prefix(skip)
                    .is_some_and(|rest| rest.starts_with('/'))
        });
        if SKIPPED_FSTYPES.contains(&fstype)
            || skipped_point
            || mounts.iter().any(|m| m.mountpoint == mountpoint)
        {
            continue;
        }
        mounts.push(Mount {
            device: unescape_octal(device),
            mountpoint,
            fstype: fstype.to_string(),
        });
    }
    mounts
}

/// Decodes the `\040`-style escapes the kernel writes for spaces, tabs,
/// newlines and backslashes in mount fields.
fn unescape_octal(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_string();
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = bytes.get(i + 1..i + 4).filter(|_| bytes[i] == b'\\');
        match escape.and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok()) {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "\
cpu  4705 150 1120 16250 520 0 25 0 0 0
cpu0 2355 75 560 8125 260 0 13 0 0 0
cpu1 2350 75 560 8125 260 0 12 0 0 0
intr 114930548 113199788 3 0 5 263 0 4 [... lots more numbers ...]
ctxt 1990473
btime 1062191376
";

    #[test]
    fn stat_gives_total_and_per_core_times() {
        let stat = parse_stat(STAT);
        let total = stat.total.unwrap();
        assert_eq!(total.total, 4705 + 150 + 1120 + 16250 + 520 + 25);
        assert_eq!((total.idle, total.iowait), (16250 + 520, 520));
        let names: Vec<&str> = stat.cores.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["cpu0", "cpu1"]);
    }

    #[test]
    fn old_kernels_with_four_cpu_columns_still_parse() {
        let stat = parse_stat("cpu 10 0 10 80\n");
        assert_eq!(
            stat.total,
            Some(CpuTimes {
                total: 100,
                idle: 80,
                iowait: 0
            })
        );
    }

    #[test]
    fn usage_is_the_busy_share_of_the_jiffies_between_two_reads() {
        let before = CpuTimes {
            total: 1000,
            idle: 800,
            iowait: 100,
        };
        let after = CpuTimes {
            total: 1200,
            idle: 850,
            iowait: 110,
        };
        let (busy, iowait) = after.usage_since(&before).unwrap();
        assert!((busy - 75.0).abs() < 1e-9, "{busy}");
        assert!((iowait - 5.0).abs() < 1e-9, "{iowait}");
        assert_eq!(before.usage_since(&before), None, "no time passed");
        assert_eq!(before.usage_since(&after), None, "counters went back");
    }

    #[test]
    fn meminfo_in_bytes_with_a_fallback_for_old_kernels() {
        let info = parse_meminfo(
            "MemTotal:        2000 kB\nMemFree:          500 kB\nMemAvailable:    1500 kB\n\
             SwapTotal:       1000 kB\nSwapFree:         250 kB\n",
        );
        assert_eq!(info.total, Some(2000 * 1024));
        assert_eq!(info.available, Some(1500 * 1024));
        assert_eq!(info.swap_free, Some(250 * 1024));
        let old =
            parse_meminfo("MemTotal: 2000 kB\nMemFree: 500 kB\nBuffers: 100 kB\nCached: 300 kB\n");
        assert_eq!(old.available, Some(900 * 1024));
        assert_eq!(parse_meminfo("garbage\n:\n"), MemInfo::default());
    }

    #[test]
    fn net_dev_reads_both_spacings_and_skips_the_header() {
        let text = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:   12345     100    0    0    0     0          0         0    12345     100    0    0    0     0       0          0
  eth0:98765432109 7000    3    0    0     0          0         0 555 6000    2    0    0     0       0          0
";
        let devices = parse_net_dev(text);
        assert_eq!(devices.len(), 2);
        assert_eq!(devices[1].0, "eth0");
        assert_eq!(
            devices[1].1,
            NetCounters {
                receive_bytes: 98_765_432_109,
                receive_errors: 3,
                transmit_bytes: 555,
                transmit_errors: 2,
            }
        );
    }

    #[test]
    fn loadavg_and_uptime() {
        assert_eq!(
            parse_loadavg("0.25 1.50 2.00 1/345 6789\n"),
            Some([0.25, 1.5, 2.0])
        );
        assert_eq!(parse_loadavg("0.25\n"), None);
        assert_eq!(parse_uptime("350735.47 234388.90\n"), Some(350_735.47));
    }

    #[test]
    fn mounts_keep_real_filesystems_once_with_escapes_decoded() {
        let text = "\
sysfs /sys sysfs rw,nosuid 0 0
proc /proc proc rw 0 0
/dev/sda1 / ext4 rw,relatime 0 0
tmpfs /run tmpfs rw 0 0
/dev/sdb1 /mnt/my\\040disk ext4 rw 0 0
/dev/sda1 / ext4 rw,relatime 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw 0 0
/dev/sdc1 /sys/kernel/x ext4 rw 0 0
server:/export /mnt/nfs nfs4 rw 0 0
overlay /var/lib/docker/overlay2/x/merged overlay rw 0 0
";
        let mounts = parse_mounts(text);
        let points: Vec<&str> = mounts.iter().map(|m| m.mountpoint.as_str()).collect();
        assert_eq!(points, ["/", "/run", "/mnt/my disk"]);
        assert_eq!(mounts[0].device, "/dev/sda1");
        assert_eq!(mounts[0].fstype, "ext4");
    }
}
