//! Stable pattern identifiers and the hash functions behind them.
//!
//! A pattern id is what downstream systems key on (Alertmanager labels, dashboards, the "new pattern"
//! alert itself), so it must never change once handed out:
//!
//! * it is assigned when the pattern is **created** and kept when the template later generalises;
//! * it is derived from the creating line's *masked* text with FNV-1a 64, a hash we implement here, so
//!   two independent instances fed the same first line produce the same id, on any Rust version
//!   (std's `DefaultHasher`/`RandomState` make no such promise);
//! * collisions are resolved deterministically: if the id is already held by a live pattern, the text
//!   is re-hashed with a counter suffix (`text \0 1`, `text \0 2`, ...) until a free id is found;
//! * the id is rendered as exactly 16 lowercase hex characters, a safe Prometheus/Alertmanager label value.
//!
//! [`fast_hash`] is a different, faster, non-persisted hash used for in-memory token identity only.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Stable identity of a mined pattern.
///
/// Why a newtype: ids travel through snapshots, alerts and APIs as 16 lowercase hex characters; keeping
/// the `u64` inside a type stops it being confused with counts or timestamps and fixes its text form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PatternId(u64);

impl PatternId {
    /// The raw 64-bit value, for callers that want to store ids compactly.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// Rebuilds an id from its raw value (e.g. one read back from a compact store).
    pub fn from_u64(v: u64) -> Self {
        PatternId(v)
    }
}

impl fmt::Display for PatternId {
    /// Always 16 lowercase hex digits, zero padded, so ids sort and compare as text too.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Error returned when a string is not a 16-character lowercase hex pattern id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsePatternIdError;

impl fmt::Display for ParsePatternIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("pattern id must be 16 lowercase hex characters")
    }
}

impl std::error::Error for ParsePatternIdError {}

impl FromStr for PatternId {
    type Err = ParsePatternIdError;

    /// Parses the canonical text form; anything else is rejected so stored ids stay canonical.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 16
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(ParsePatternIdError);
        }
        u64::from_str_radix(s, 16)
            .map(PatternId)
            .map_err(|_| ParsePatternIdError)
    }
}

impl Serialize for PatternId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PatternId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 over `bytes`. Stable forever: pattern ids depend on it.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    fnv1a64_continue(FNV_OFFSET, bytes)
}

/// Continues an FNV-1a 64 hash from state `h`.
pub(crate) fn fnv1a64_continue(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// The seed of a pattern space's ids ([`derive_id`]).
///
/// Why: suppressions and verdicts key on the id alone, so the same line in
/// two scopes (two services) must get two ids, or silencing it in one would
/// silence it in the other. The unscoped space (`""`) keeps the plain hash,
/// so its ids are those it always had; a scope's seed also hashes the scope.
/// Deterministic, so two instances (or a restart) agree.
pub(crate) fn space_seed(scope: &str) -> u64 {
    if scope.is_empty() {
        FNV_OFFSET
    } else {
        fnv1a64_continue(fnv1a64(scope.as_bytes()), b"\0")
    }
}

/// Derives the id for a pattern created in the space seeded `seed` (see
/// [`space_seed`]) by a line whose masked text is `masked`, skipping ids for
/// which `taken` returns true. The rule is deterministic so replicas agree.
pub(crate) fn derive_id(seed: u64, masked: &[u8], mut taken: impl FnMut(u64) -> bool) -> PatternId {
    let base = fnv1a64_continue(seed, masked);
    if !taken(base) {
        return PatternId(base);
    }
    let mut counter: u64 = 1;
    loop {
        // Equivalent to fnv1a64(masked ++ "\0" ++ decimal(counter)).
        let h = fnv1a64_continue(
            fnv1a64_continue(base, b"\0"),
            counter.to_string().as_bytes(),
        );
        if !taken(h) {
            return PatternId(h);
        }
        counter += 1;
    }
}

const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// Fast 64-bit hash for in-memory token identity (8 bytes per step). Not persisted, never an id.
///
/// The tail is read with overlapping fixed-size loads (as wyhash does) rather than copied into a
/// buffer, which would stall on store-to-load forwarding.
#[inline]
pub(crate) fn fast_hash(bytes: &[u8]) -> u64 {
    let n = bytes.len();
    let mut h: u64 = (n as u64).wrapping_mul(K);
    let mut i = 0;
    while i + 8 <= n {
        h = (h.rotate_left(23) ^ read8(bytes, i)).wrapping_mul(K);
        i += 8;
    }
    if i < n {
        let w = if n >= 8 {
            read8(bytes, n - 8)
        } else if n >= 4 {
            (u64::from(read4(bytes, 0)) << 32) | u64::from(read4(bytes, n - 4))
        } else {
            (u64::from(bytes[0]) << 16) | (u64::from(bytes[n / 2]) << 8) | u64::from(bytes[n - 1])
        };
        h = (h.rotate_left(23) ^ w).wrapping_mul(K);
    }
    mix(h)
}

#[inline]
fn read8(b: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(w)
}

#[inline]
fn read4(b: &[u8], i: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[i..i + 4]);
    u32::from_le_bytes(w)
}

/// Final avalanche (from splitmix64) so that nearby inputs spread over all bits.
#[inline]
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Combines an accumulated hash with one more value (order sensitive).
#[inline]
pub(crate) fn combine(h: u64, v: u64) -> u64 {
    mix(h.rotate_left(17) ^ v.wrapping_add(K))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_reference_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn id_text_is_16_lowercase_hex_and_round_trips() {
        let id = PatternId(0xab);
        assert_eq!(id.to_string(), "00000000000000ab");
        assert_eq!("00000000000000ab".parse::<PatternId>(), Ok(id));
        assert!("00000000000000AB".parse::<PatternId>().is_err());
        assert!("ab".parse::<PatternId>().is_err());
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"00000000000000ab\"");
    }

    #[test]
    fn colliding_ids_are_rehashed_deterministically() {
        let first = derive_id(FNV_OFFSET, b"x <NUM>", |_| false);
        let second = derive_id(FNV_OFFSET, b"x <NUM>", |h| h == first.0);
        assert_ne!(first, second);
        assert_eq!(second, derive_id(FNV_OFFSET, b"x <NUM>", |h| h == first.0));
    }
}
