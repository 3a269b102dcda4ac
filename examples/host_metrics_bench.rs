//! Cost of one `host_metrics` collection cycle (release mode), every
//! collector on, against this machine's real `/proc`: reading the files,
//! computing the samples and turning them into events, as the source does.
//! Reports CPU time per cycle (from `/proc/thread-self/schedstat`, in
//! nanoseconds), wall time per cycle, and the samples one cycle produces,
//! as the median of several runs.
//!
//! `cargo run --release --example host_metrics_bench [-- RUNS [CYCLES]]`

use std::time::Instant;

use howl::event::Event;
use howl::sources::host_metrics::{ALL_COLLECTORS, Collector};

/// CPU time this thread has used, in nanoseconds.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// One cycle as the source runs it.
fn cycle(collector: &mut Collector) -> Vec<Event> {
    let now = chrono::Utc::now();
    collector
        .collect(Instant::now())
        .into_iter()
        .filter_map(|metric| metric.tag("host", "bench").into_event(now, "host_metrics"))
        .collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().ok());
    let runs = args.next().flatten().unwrap_or(7);
    let cycles = args.next().flatten().unwrap_or(2000);
    let mut collector = Collector::new("/proc".into(), ALL_COLLECTORS);
    let mut samples = 0;
    for _ in 0..10 {
        samples = cycle(&mut collector).len();
    }
    let (mut cpu, mut wall) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let cpu_start = thread_cpu_ns();
        let start = Instant::now();
        for _ in 0..cycles {
            std::hint::black_box(cycle(&mut collector));
        }
        wall.push(start.elapsed().as_secs_f64() * 1e6 / cycles as f64);
        if let (Some(before), Some(after)) = (cpu_start, thread_cpu_ns()) {
            cpu.push((after - before) as f64 / 1e3 / cycles as f64);
        }
    }
    println!("{samples} samples per cycle; {runs} runs of {cycles} cycles");
    println!("wall time per cycle: {:.1} µs (median)", median(wall));
    if cpu.is_empty() {
        println!("CPU time per cycle: unavailable (no /proc/thread-self/schedstat)");
    } else {
        println!("CPU time per cycle:  {:.1} µs (median)", median(cpu));
    }
}
