//! Partitions: how a fleet routes each scope (a service, a host) to one
//! worker at a time.
//!
//! The `nats` sink with `partition.*` publishes each event on
//! `<subject>.<index>`, where `index` is [`partition_of`] its rendered
//! `partition.key`; the `nats` source with `partitions.*` consumes the
//! partitions it holds a lease on (`sources::nats::partitions`). Both
//! sides must agree on `count`, and on the function, so it is defined once,
//! here, and pinned by a test: it must never change between versions,
//! platforms or processes (a change would send a scope to two owners during
//! a rolling upgrade).
//!
//! The function, for other tools to compute it:
//!
//! 1. `h` = FNV-1a, 64 bits, over the key's UTF-8 bytes (offset basis
//!    `0xcbf29ce484222325`, prime `0x100000001b3`);
//! 2. `h` mixed by MurmurHash3's 64-bit finalizer (`fmix64`): `h ^= h >> 33;
//!    h *= 0xff51afd7ed558ccd; h ^= h >> 33; h *= 0xc4ceb9fe1a85ec53;
//!    h ^= h >> 33` (wrapping multiplications);
//! 3. `index = h % count`.
//!
//! FNV-1a alone is not enough: modulo a power of two its low bits depend
//! only on the low bits of each byte, so `a` and `q` would always share a
//! partition; the finalizer spreads every input bit over the low bits.

use std::num::NonZeroU32;

use crate::diagnostic::BuildError;

/// The most partitions a fleet may have: each is a durable consumer and a
/// lease; beyond this the per-partition cost (pull requests, renewals)
/// outweighs any balance gained.
pub const MAX_PARTITIONS: u32 = 1024;

/// The partition of `key` among `count`: see the module docs for the
/// exact function, which never changes.
pub fn partition_of(key: &[u8], count: NonZeroU32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key {
        h ^= u64::from(*byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    // The remainder is below `count`, a u32.
    (h % u64::from(count.get())) as u32
}

/// Checks a partition `count` option (1 to [`MAX_PARTITIONS`]); `option`
/// names it in the error.
pub fn check_count(count: u32, option: &str) -> Result<NonZeroU32, BuildError> {
    NonZeroU32::new(count)
        .filter(|count| count.get() <= MAX_PARTITIONS)
        .ok_or_else(|| {
            BuildError::new(format!(
                "`{option}` is {count}; it must be 1 to {MAX_PARTITIONS}, and the same on \
                 every edge and worker of a fleet"
            ))
            .for_option(option)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).expect("non-zero")
    }

    /// These values are a contract with every edge and worker already
    /// deployed, and with tools outside howl: they must never change.
    /// They were computed by an independent Python transcription of the
    /// module docs' three steps, not by this code.
    #[test]
    fn the_partition_function_is_pinned() {
        let pinned: [(&str, u32, u32); 8] = [
            ("", 16, 6),
            ("api", 16, 3),
            ("auth", 16, 8),
            ("billing", 16, 3),
            ("a", 16, 11),
            ("q", 16, 12),
            ("api", 1024, 211),
            ("ünï code", 7, 5),
        ];
        for (key, n, index) in pinned {
            assert_eq!(
                partition_of(key.as_bytes(), count(n)),
                index,
                "partition of {key:?} among {n}"
            );
        }
        assert_eq!(partition_of(b"anything", count(1)), 0);
    }

    #[test]
    fn keys_spread_evenly_over_the_partitions() {
        for (prefix, n) in [("service-", 16), ("host", 16), ("", 10), ("svc.", 64)] {
            let mut per = vec![0u32; n as usize];
            let keys = 10_000;
            for i in 0..keys {
                per[partition_of(format!("{prefix}{i}").as_bytes(), count(n)) as usize] += 1;
            }
            let mean = f64::from(keys) / f64::from(n);
            for (index, got) in per.iter().enumerate() {
                let off = (f64::from(*got) - mean).abs() / mean;
                assert!(
                    off <= 0.30,
                    "{prefix}*: partition {index} of {n} got {got}, mean {mean}"
                );
            }
        }
    }

    #[test]
    fn counts_outside_one_to_the_maximum_are_refused() {
        assert!(check_count(1, "partition.count").is_ok());
        assert!(check_count(MAX_PARTITIONS, "partition.count").is_ok());
        for bad in [0, MAX_PARTITIONS + 1] {
            let error = check_count(bad, "partition.count").expect_err("refused");
            assert_eq!(error.option.as_deref(), Some("partition.count"));
        }
    }
}
