//! Throughput of the miner (release mode): the eight fixtures' messages (16,000 lines) cycled to at
//! least 1,000,000 lines, all built-in masks on, one core. Reports the median of several runs and the
//! pattern counts after the first pass and at the end (they must be equal: replays create nothing).
//!
//! `cargo run --release --example pattern_bench [-- RUNS [LINES]]` (or `scripts/bench-patterns`)

#[path = "../src/patterns/loghub.rs"]
#[allow(dead_code)]
mod loghub;

use std::time::Instant;

use howl::patterns::{Miner, MinerConfig};

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(7);
    let lines: Vec<String> = loghub::DATASETS
        .iter()
        .flat_map(|d| loghub::load(d).contents)
        .collect();
    let target: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let passes = target.div_ceil(lines.len());
    let total = passes * lines.len();
    println!(
        "input: {} distinct lines x {passes} passes = {total} lines",
        lines.len()
    );

    let mut rates = Vec::new();
    let mut counts = (0, 0, 0u64);
    for run in 0..runs {
        let mut miner = Miner::new(MinerConfig::default()).expect("default config");
        let mut after_first = 0;
        let mut new_after_first = 0u64;
        let start = Instant::now();
        let mut checksum = 0u64;
        for pass in 0..passes {
            for (i, line) in lines.iter().enumerate() {
                let obs = miner.observe(line, None, (pass * lines.len() + i) as i64);
                checksum = checksum.wrapping_add(obs.id.as_u64());
                if pass > 0 && obs.is_new {
                    new_after_first += 1;
                }
            }
            if pass == 0 {
                after_first = miner.len();
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let rate = total as f64 / secs;
        rates.push(rate);
        counts = (after_first, miner.len(), new_after_first);
        println!(
            "run {run}: {:>10.0} lines/s  ({secs:.3} s, checksum {checksum:x})",
            rate
        );
    }
    rates.sort_by(|a, b| a.total_cmp(b));
    println!("median: {:.0} lines/s", rates[rates.len() / 2]);
    println!(
        "patterns after first pass: {}, after {total} lines: {}, new patterns after the first pass: {}",
        counts.0, counts.1, counts.2
    );
}
