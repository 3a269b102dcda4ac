//! Persisting and restoring a miner.
//!
//! Why: a restart must neither re-announce known patterns as new nor change their ids. A snapshot holds
//! exactly what cannot be recomputed: each pattern's id, its shapes (template tokens, with their kind),
//! counters, timestamps, samples and level, in least-recently-seen order so eviction continues where
//! it left off. The prefix tree, hash indexes and the exact-repeat cache are rebuilt on restore (the
//! routing keys are a pure function of the stored templates).
//!
//! The format is versioned ([`SNAPSHOT_VERSION`]); [`Miner::restore`] refuses versions it does not know
//! rather than guessing. The configuration is *not* part of the snapshot (as in Drain3), but a
//! fingerprint of what tokenised its templates is (howl's built-in rules, the masks, the token cap):
//! restored under another one (an upgrade, a mask added), the patterns whose samples no longer fit
//! their templates are refitted from those samples and keep their ids (`Miner::refit_to_samples`).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::config::{ConfigError, MinerConfig};
use super::id::PatternId;
use super::level::Level;
use super::miner::{Miner, PatternView, template_route};
use super::template::{Slot, TTok};

/// Current snapshot format version.
pub const SNAPSHOT_VERSION: u32 = 1;

/// Serializable state of a [`Miner`] (serde; JSON via `serde_json` works well and stays readable).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MinerSnapshot {
    version: u32,
    /// What tokenised the stored templates (see `Miner::tokenizer_fingerprint`); 0 in stores
    /// written before it was kept, which are checked as if the rules had changed.
    #[serde(default)]
    tokenizer: u64,
    evictions: u64,
    /// Next shape sequence number.
    next_seq: u64,
    /// Least recently seen first.
    patterns: Vec<PatternSnapshot>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct PatternSnapshot {
    id: PatternId,
    /// For humans reading the file; recomputed on restore.
    template: String,
    shapes: Vec<ShapeSnapshot>,
    count: u64,
    first_seen_ms: i64,
    last_seen_ms: i64,
    samples: Vec<String>,
    level: Level,
    /// The pattern this one split off from (absent in stores written before splits existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parent: Option<PatternId>,
    /// Patterns split off this one so far.
    #[serde(default, skip_serializing_if = "is_zero")]
    splits: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct ShapeSnapshot {
    /// Creation order among all shapes (ties in matching are broken by it).
    seq: u64,
    tokens: Vec<SnapToken>,
    /// Lines that joined the shape: how long its words have held. Older stores lack it; their
    /// shapes start from 0, so they generalise as before until they have held again.
    #[serde(default)]
    count: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum SnapToken {
    /// Literal token.
    C(String),
    /// `key=value` token whose value has been one word so far: the masked text and that word's
    /// token (`["user=<*>", "user=root"]`), see `Miner::frozen`.
    K(String, String),
    /// Variable token (placeholders and punctuation).
    V(String),
    /// Generalised position.
    W,
}

impl MinerSnapshot {
    /// Format version of this snapshot.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Number of patterns stored.
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// True when the snapshot holds no pattern.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The saved patterns, as a restored miner would show them: for reading
    /// a store (the API's `GET /api/v1/patterns`) without rebuilding miners,
    /// which needs the writer's miner options.
    pub fn views(&self) -> impl Iterator<Item = PatternView<'_>> {
        self.patterns.iter().map(|p| PatternView {
            id: p.id,
            template: &p.template,
            count: p.count,
            first_seen_ms: p.first_seen_ms,
            last_seen_ms: p.last_seen_ms,
            samples: &p.samples,
            level: p.level,
            parent: p.parent,
        })
    }
}

/// Why a snapshot could not be restored.
#[derive(Clone, Debug, PartialEq)]
pub enum RestoreError {
    /// The configuration passed to [`Miner::restore`] is invalid.
    Config(ConfigError),
    /// The snapshot was written by an unknown (newer) format version.
    UnsupportedVersion(u32),
    /// The snapshot is internally inconsistent (duplicate ids, a pattern without shapes, ...).
    Corrupt(String),
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreError::Config(e) => write!(f, "invalid configuration: {e}"),
            RestoreError::UnsupportedVersion(v) => {
                write!(
                    f,
                    "unsupported snapshot version {v} (this build reads {SNAPSHOT_VERSION})"
                )
            }
            RestoreError::Corrupt(m) => write!(f, "corrupt snapshot: {m}"),
        }
    }
}

impl std::error::Error for RestoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RestoreError::Config(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ConfigError> for RestoreError {
    fn from(e: ConfigError) -> Self {
        RestoreError::Config(e)
    }
}

impl Miner {
    /// Captures the learned state for persistence.
    pub fn snapshot(&self) -> MinerSnapshot {
        let patterns = self
            .lru_order()
            .into_iter()
            .map(|p| {
                let pat = &self.pats[p as usize];
                PatternSnapshot {
                    id: pat.id,
                    template: pat.template.clone(),
                    shapes: pat
                        .shapes
                        .iter()
                        .map(|&si| {
                            let shape = &self.shapes[si as usize];
                            ShapeSnapshot {
                                seq: shape.seq,
                                count: shape.count,
                                tokens: shape
                                    .toks
                                    .iter()
                                    .map(|t| match t.slot {
                                        Slot::Const => match &t.word_text {
                                            Some(word) => {
                                                SnapToken::K(t.text.to_string(), word.to_string())
                                            }
                                            None => SnapToken::C(t.text.to_string()),
                                        },
                                        Slot::Var => SnapToken::V(t.text.to_string()),
                                        Slot::Wild => SnapToken::W,
                                    })
                                    .collect(),
                            }
                        })
                        .collect(),
                    count: pat.count,
                    first_seen_ms: pat.first_seen,
                    last_seen_ms: pat.last_seen,
                    samples: pat.samples.clone(),
                    level: pat.level,
                    parent: pat.parent,
                    splits: pat.splits,
                }
            })
            .collect();
        MinerSnapshot {
            version: SNAPSHOT_VERSION,
            tokenizer: self.tokenizer_fingerprint(),
            evictions: self.evictions,
            next_seq: self.next_seq,
            patterns,
        }
    }

    /// Rebuilds a miner from a snapshot: same ids, counters and templates, so known patterns are not
    /// announced again. If `cfg.max_patterns` is smaller than the snapshot, the least recently seen
    /// patterns are evicted (and counted).
    pub fn restore(cfg: MinerConfig, snap: MinerSnapshot) -> Result<Miner, RestoreError> {
        if snap.version != SNAPSHOT_VERSION {
            return Err(RestoreError::UnsupportedVersion(snap.version));
        }
        let mut m = Miner::new(cfg)?;
        let kv_on = m.kv_masking();
        let tokenized_otherwise = snap.tokenizer != m.tokenizer_fingerprint();
        m.evictions = snap.evictions;
        // Patterns first (least recently seen first, which rebuilds the LRU list), then all shapes in
        // creation order, which rebuilds every leaf in its original order.
        let mut shapes = Vec::new();
        for ps in snap.patterns {
            if m.get(ps.id).is_some() {
                return Err(RestoreError::Corrupt(format!(
                    "duplicate pattern id {}",
                    ps.id
                )));
            }
            if ps.shapes.is_empty() {
                return Err(RestoreError::Corrupt(format!(
                    "pattern {} has no shape",
                    ps.id
                )));
            }
            let p = m.alloc_pattern(ps.id);
            let pat = &mut m.pats[p as usize];
            pat.template = ps.template;
            pat.count = ps.count;
            pat.first_seen = ps.first_seen_ms;
            pat.last_seen = ps.last_seen_ms;
            pat.samples = ps.samples;
            pat.level = ps.level;
            pat.parent = ps.parent;
            pat.splits = ps.splits;
            shapes.extend(ps.shapes.into_iter().map(|s| (s.seq, p, s.tokens, s.count)));
        }
        shapes.sort_by_key(|(seq, _, _, _)| *seq);
        if shapes.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(RestoreError::Corrupt(
                "duplicate shape sequence number".into(),
            ));
        }
        for (seq, p, tokens, count) in shapes {
            let toks: Vec<TTok> = tokens
                .into_iter()
                .map(|t| match t {
                    SnapToken::C(s) => TTok::from_text(s, Slot::Const, kv_on),
                    SnapToken::K(s, word) => TTok::from_text(s, Slot::Const, kv_on).with_word(word),
                    SnapToken::V(s) => TTok::from_text(s, Slot::Var, kv_on),
                    SnapToken::W => TTok::wild(),
                })
                .collect();
            let route = template_route(&toks);
            m.next_seq = seq;
            let si = m.alloc_shape(p, toks, route);
            m.shapes[si as usize].count = count;
            m.pats[p as usize].shapes.push(si);
        }
        m.next_seq = m.next_seq.max(snap.next_seq);
        let slots: Vec<u32> = (0..m.pats.len() as u32)
            .filter(|&p| m.pats[p as usize].alive)
            .collect();
        for p in slots {
            m.rerender(p);
        }
        if tokenized_otherwise {
            m.refit_to_samples();
        }
        m.evict_over_capacity();
        Ok(m)
    }
}
