//! The streaming miner: routing, matching, merging, creating, evicting.
//!
//! Per line ([`Miner::observe`]):
//!
//! 1. Detect the level (`level.rs`), tokenise and mask (`tokenize.rs`, `mask.rs`).
//! 2. **Exact-repeat cache.** The hash of the masked token sequence is looked up in a map to the shape
//!    it joined last time. In steady state almost every line stops here: one hash lookup.
//! 3. **Prefix tree** (Drain). Shapes live in leaves keyed by *token count + first two tokens*; a token
//!    that is variable or contains a digit routes to the wildcard key, so ids and numbers in leading
//!    positions cannot explode the tree, while `Link error`/`Link ok` or `boot (command 1)`/`wait
//!    (command 1)` never meet (short lines group by their constant text). The tree is flattened into
//!    one hash map from the combined key to a small vector of shapes. The best-scoring shape (see
//!    `template.rs`) above the similarity threshold is merged with the line (differing positions
//!    become `<*>`).
//! 4. **Length-varying match** (slow path, only when 3 found nothing): shapes with the same first
//!    routing token and a length within [`MAX_GAPS`] are aligned with the line,
//!    allowing gaps over variable tokens only. A hit adds a new *shape* to that *pattern*: same id, not
//!    new.
//! 5. **Open tails** (slow path, see `tail.rs`): a line whose words after a label (`client:`) differ
//!    from a shape that agrees with it up to that label, at any length, joins it, the shape's tail
//!    becoming one `<*>` of any number of words. (A shape already open takes a line before step 4.)
//! 6. Otherwise a new pattern is created, with an id derived from the masked line (`id.rs`).
//!
//! **Patterns vs shapes.** A pattern (what users see: id, template, count) owns one or more shapes
//! (positional templates of one length each). Routing and similarity work on shapes; ids, counts,
//! samples and eviction work on patterns. The displayed template of a multi-shape pattern is the
//! alignment of its shapes, with optional tokens shown as `<*>`.
//!
//! **Memory bounds.** At most `max_patterns` patterns (least-recently-seen eviction through an intrusive
//! doubly-linked list, O(1) per line), at most [`MAX_SHAPES`] shapes per pattern, at most
//! `max_tokens` tokens of at most 256 bytes per template, `max_samples` samples of at most 512 bytes
//! per pattern, and an exact-repeat cache that is simply cleared when it reaches its cap. There is no
//! global token interner (that would grow without bound on unmasked ids): tokens are identified by a
//! 64-bit hash of their text and templates keep their own text. An evicted pattern that comes back is
//! announced as new again; its id is content-derived, so it usually gets the same id back.
//!
//! **Determinism.** The outcome depends only on the configuration and the sequence of lines, never on
//! time, addresses or hash seeds, so two instances (or a restarted one) agree.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::config::{ConfigError, MinerConfig};
use super::id::{PatternId, combine, derive_id, fast_hash, space_seed};
use super::level::Level;
use super::mask::Masker;
use super::middle;
use super::tail::{self, Cut};
use super::template::{self, MAX_GAPS, Score, Slot, TTok};
use super::tokenize::{
    LineBuf, NONE_KEY, Row, Tok, cut_line, has_placeholder, is_anchor_text, literal_has_digit,
};
use super::traceback::Traceback;

/// Most shapes (distinct token counts) one pattern may collect through length-varying matches.
pub(crate) const MAX_SHAPES: usize = 16;
/// Raw sample lines are cut to this many bytes.
const SAMPLE_BYTES: usize = 512;
/// Shapes with fewer constant tokens never take part in length-varying matches (too little evidence).
const MIN_CONSTS_FOR_ALIGN: u32 = 3;
const NIL: u32 = u32::MAX;
/// Route key of a leading token that is not an anchor.
const ANY_KEY: u64 = 0x2a2a_2a2a_2a2a_2a2a;
/// Per length, at most this many (most recent) shapes are tried by the length-varying slow path.
const MAX_ALIGN_CANDIDATES: usize = 64;
/// Most words by which two lines' texts between a label and their fields may differ for them to
/// open a middle (see `Miner::open_middle`): the lengths of shapes the slow path looks at.
const MAX_MIDDLE: usize = 8;
/// Shapes a line must resemble before a differing second token counts as a
/// variable (see `Miner::variable_second_token`).
const MIN_SIBLINGS: usize = 2;
/// Version of the built-in rules that turn a line into tokens (tokenising, masking, joining).
/// Raise it whenever a change makes some line tokenise differently: a store written under other
/// rules has its patterns refitted on restore (see [`Miner::refit_to_samples`]), so they keep
/// their ids instead of every line of theirs starting a new pattern. 3: a duration of several
/// parts (`1m21.567s`) is one `<DUR>`. 4: error texts, statements, exception lines, stack
/// frames, described names, braced values, setting lines, methods before paths and IPv6
/// addresses with ports are values; logfmt `msg` words are words. 5: a label right after the
/// time keeps its text's words, an error text in a quoted message ends with the quote, and a
/// dotted logger name is no exception class. 6: a name and its description are one value only
/// for a service manager's unit on a line that ends with a dot, a brace that holds JSON members
/// or opens the line keeps its words, and so does a JSON or dict message (`"message": "…"`).
/// 7: each member of a compact JSON line is one `key=value` token, and a `key=value` value runs
/// on past the `&`s of a URL's query. 8: a quoted value runs past the quotes it escapes, and a
/// quoted message that opens a structured line (klog's `"Message" key="…"`) keeps its words.
/// 9: a JavaScript stack frame (one name and a script's place), or a .NET one with its file,
/// after `at` is one value, `at <*>`, and so is a PHP frame with its file's path after its
/// number, `#<NUM> <*>`. 10: the first word of a logfmt message (`msg="Started server"`) is a
/// word, not a value of the key. 11: a `key="…"` value runs up to 4096 bytes to its closing
/// quote, and a `key=value` token longer than 256 bytes keeps its key (`err=<*>`, not `<LONG>`).
/// 12: parenthesised text is one value up to 1024 bytes (was 256). 13: a `key=value` inside a
/// message's first word is a value (`msg="user=<*>`), and a long token ending in `=` with no
/// value (base64's padding) is `<LONG>`, not a key.
pub(crate) const TOKEN_RULES: u64 = 13;
/// Lines a constant word must have held before a line differing there starts a pattern of its own
/// instead of generalising it (see `frozen`). A variable with two equally likely values shows one
/// value eight times in a row once in 128 runs.
const FREEZE_AFTER: u64 = 64;
/// Patterns that may split off one pattern before its frozen words generalise after all: a position
/// that showed this many values besides the first is a variable.
const MAX_SPLITS: u32 = 4;

/// Keys in our maps are already well-mixed 64-bit hashes; re-hashing them would only cost time.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

pub(crate) type FastMap<V> = HashMap<u64, V, BuildHasherDefault<IdentityHasher>>;

#[derive(Debug)]
pub(crate) struct Shape {
    pub alive: bool,
    pub pat: u32,
    pub toks: Vec<TTok>,
    pub consts: u32,
    pub leaf: u64,
    pub first: u64,
    /// Creation order: leaves keep their shapes in this order (it breaks ties), so a restore rebuilds
    /// them in the same order.
    pub seq: u64,
    /// Lines that joined this shape: how long its constant words have held (see `Miner::frozen`).
    pub count: u64,
}

#[derive(Debug)]
pub(crate) struct Pat {
    pub alive: bool,
    pub id: PatternId,
    pub shapes: Vec<u32>,
    pub template: String,
    pub count: u64,
    pub first_seen: i64,
    pub last_seen: i64,
    pub samples: Vec<String>,
    pub level: Level,
    /// The pattern this one split off from (see `frozen`), if any.
    pub parent: Option<PatternId>,
    /// Patterns split off this one so far (see `frozen`).
    pub splits: u32,
    prev: u32,
    next: u32,
}

/// Result of observing one line.
///
/// Why borrowed: the template string lives in the miner; borrowing avoids an allocation per line on the
/// hot path. Copy what you need before the next `observe`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation<'a> {
    /// Stable id of the pattern the line belongs to.
    pub id: PatternId,
    /// True only for the line that created the pattern: the "new pattern" alert signal.
    pub is_new: bool,
    /// True when this line generalised the pattern's template (known pattern, new variant); report it
    /// separately from `is_new`.
    pub changed: bool,
    /// The pattern's current template: tokens joined by single spaces, with typed placeholders for
    /// masked variables (`<NUM>`, `<DUR>`, `<HEX>`, `<IP>`, `<MAC>`, `<UUID>`, `<URL>`, `<PATH>`,
    /// `<TIME>`, `<EMAIL>`, `<HOSTPORT>`, `<BOOL>`, `<FQN>` for dotted names, `<LONG>` for
    /// over-long tokens, `<ORDER>` for a user mask named `order`) and `<*>` for key=value values and
    /// for positions that were generalised or are optional.
    pub template: &'a str,
    /// Lines seen for this pattern so far, including this one.
    pub count: u64,
    /// Caller-supplied timestamp (unix ms) of the pattern's first line.
    pub first_seen_ms: i64,
    /// Level of this line (hint, else detected from its header).
    pub level: Level,
    /// The pattern this one split off from, if it did: a line differed from that pattern only in
    /// words that had held over many lines, so it became a pattern of its own (see "How patterns
    /// refine" on the `pattern` page). The parent keeps its id and template.
    pub parent: Option<PatternId>,
    /// The pattern's index among the miner's live patterns, below
    /// [`Miner::slots`]: callers keeping per-pattern state (rates) index a
    /// `Vec` with it instead of hashing the id for every line. A slot is
    /// reused after its pattern is evicted, so such state keeps the id to
    /// notice (see [`Miner::id_at`]).
    pub slot: u32,
}

/// Read-only view of one pattern, for listing and persistence by the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatternView<'a> {
    /// Stable id.
    pub id: PatternId,
    /// Current template (see [`Observation::template`]).
    pub template: &'a str,
    /// Lines seen.
    pub count: u64,
    /// Caller-supplied timestamp (unix ms) of the first line.
    pub first_seen_ms: i64,
    /// Caller-supplied timestamp (unix ms) of the most recent line.
    pub last_seen_ms: i64,
    /// Up to `max_samples` raw lines (each cut to 512 bytes), the first distinct ones seen.
    pub samples: &'a [String],
    /// Most severe level seen among the pattern's lines.
    pub level: Level,
    /// The pattern this one split off from (see [`Observation::parent`]).
    pub parent: Option<PatternId>,
}

enum Found {
    /// Joined an existing shape; `bool` = the line still differs from it (needs a merge).
    Shape(u32, bool),
    /// Aligned with a shape of another length: add a new shape to that shape's pattern.
    Align(u32),
    /// Joins a shape open after a label, at the line's end or before its first field (see
    /// `Miner::open_tail`, `Miner::open_middle`), once the line's words of the cut are collapsed
    /// to one token.
    Tail(u32, Cut),
    /// Opens the shape at its cut (the first), then joins it like `Tail` (the line's cut).
    Open(u32, Cut, Cut),
    /// No pattern fits; `Some(p)` when pattern slot `p` would have, but its constant words had held
    /// too long to generalise (the new pattern is split off from it).
    None(Option<u32>),
}

/// Streaming log-template miner. See the module docs for the algorithm.
///
/// Why one struct owning all state: the pipeline runs one miner per stream (or per source), feeds it
/// lines in order and persists it with [`Miner::snapshot`]; there is no internal locking or threading.
#[derive(Debug)]
pub struct Miner {
    pub(crate) cfg: MinerConfig,
    masker: Masker,
    lb: LineBuf,
    tmp: Vec<u8>,
    pub(crate) shapes: Vec<Shape>,
    free_shapes: Vec<u32>,
    pub(crate) pats: Vec<Pat>,
    free_pats: Vec<u32>,
    live: usize,
    head: u32,
    tail: u32,
    leaves: FastMap<Vec<u32>>,
    by_first: FastMap<Vec<u32>>,
    /// Exact-repeat cache: masked-line hash to the shape a search found for that line, and the
    /// [`Miner::epoch`] it was found at.
    exact: FastMap<(u32, u32)>,
    /// Counts the changes to what a search can find: a shape created, freed, generalised or
    /// opened, or a shape's words starting to hold. An exact-repeat entry is trusted only at the
    /// epoch it was recorded at, and only entries of searches that changed nothing are recorded,
    /// so the cache answers what a search would. Why: a restored miner starts with an empty
    /// cache and searches; had the cache kept a line on a shape a search no longer picks (a
    /// newer shape in the line's own leaf that takes it as it is), the restored miner gave that
    /// line another id than the live one.
    epoch: u32,
    ids: FastMap<u32>,
    pub(crate) evictions: u64,
    exact_cap: usize,
    pub(crate) next_seq: u64,
    /// Seeds the ids of new patterns (see [`Miner::in_scope`]).
    id_seed: u64,
    /// Where the last line observed left a stack trace: a Python frame's code and a Go frame's
    /// function are one value, told apart by the line before them (see `traceback.rs`). Not
    /// saved: after a restart the first line is read on its own.
    traceback: Traceback,
}

impl Miner {
    /// Creates an empty miner, validating the configuration and compiling user masks once.
    pub fn new(cfg: MinerConfig) -> Result<Miner, ConfigError> {
        let masker = cfg.build_masker()?;
        let exact_cap = cfg.max_patterns.saturating_mul(8).clamp(4096, 1 << 20);
        Ok(Miner {
            cfg,
            masker,
            lb: LineBuf::default(),
            tmp: Vec::new(),
            shapes: Vec::new(),
            free_shapes: Vec::new(),
            pats: Vec::new(),
            free_pats: Vec::new(),
            live: 0,
            head: NIL,
            tail: NIL,
            leaves: FastMap::default(),
            by_first: FastMap::default(),
            exact: FastMap::default(),
            epoch: 0,
            ids: FastMap::default(),
            evictions: 0,
            exact_cap,
            next_seq: 0,
            id_seed: space_seed(""),
            traceback: Traceback::None,
        })
    }

    /// Makes this the miner of scope `scope` (a pattern space of the
    /// `pattern` transform): its new patterns get ids that no other scope
    /// mints for the same line, so a suppression or verdict made for a
    /// pattern of one service does not apply to another service's. The
    /// empty scope keeps the ids of an unscoped miner.
    pub fn in_scope(mut self, scope: &str) -> Miner {
        self.id_seed = space_seed(scope);
        self
    }

    /// What turns a line into tokens here: [`TOKEN_RULES`], the built-in masks in use, the user's
    /// masks and the token cap. Stored with a snapshot; a restore under another fingerprint
    /// refits the stored patterns (see [`Miner::refit_to_samples`]).
    pub(crate) fn tokenizer_fingerprint(&self) -> u64 {
        self.fingerprint_under(TOKEN_RULES)
    }

    /// [`Miner::tokenizer_fingerprint`] under built-in rules of version `rules`.
    pub(crate) fn fingerprint_under(&self, rules: u64) -> u64 {
        let mut h = combine(rules, u64::from(self.masker.builtins.bits()));
        h = combine(h, self.cfg.max_tokens as u64);
        for mask in &self.cfg.masks {
            h = combine(h, fast_hash(mask.name.as_bytes()));
            h = combine(h, fast_hash(mask.pattern.as_bytes()));
        }
        h
    }

    /// Rebuilds the shapes of every pattern whose samples no longer fit them, from those samples,
    /// keeping its id, counters and samples. Why: a store written under other tokenising rules
    /// (an upgrade of howl, a mask added or removed) holds templates whose tokens lines no longer
    /// produce; without this, every line of such a pattern would start a new pattern, announced as
    /// new, with a new id, and its silences and suppressions would stop applying. Samples cut at
    /// their size limit are not used (their tail would be missing), and a pattern without a usable
    /// sample keeps its old shapes. Refitted shapes start young (their words have held for 0
    /// lines), so they generalise again as lines arrive. Two old patterns whose samples now give
    /// one template stay two patterns; lines go to the older one: patterns are refitted in the
    /// order they were created (slots are in least-recently-seen order after a restore, which
    /// gave the lines to the rarest one).
    pub(crate) fn refit_to_samples(&mut self) {
        let mut slots: Vec<u32> = (0..self.pats.len() as u32)
            .filter(|&p| self.pats[p as usize].alive)
            .collect();
        let created = |p: u32| {
            let shapes = &self.pats[p as usize].shapes;
            shapes.iter().map(|&si| self.shapes[si as usize].seq).min()
        };
        slots.sort_by_key(|&p| created(p));
        let mut lb = std::mem::take(&mut self.lb);
        for p in slots {
            let samples: Vec<String> = self.pats[p as usize]
                .samples
                .iter()
                .filter(|s| s.len() < SAMPLE_BYTES)
                .cloned()
                .collect();
            if samples.is_empty()
                || self.is_lone_value(p)
                || samples.iter().all(|s| self.fits(p, s, &mut lb))
            {
                continue;
            }
            for si in std::mem::take(&mut self.pats[p as usize].shapes) {
                self.free_shape(si);
            }
            for sample in &samples {
                lb.fill(sample, &self.masker, self.cfg.max_tokens);
                let own = self.pats[p as usize].shapes.clone();
                let same_length = own
                    .into_iter()
                    .find(|&si| self.shapes[si as usize].toks.len() == lb.toks.len());
                match same_length {
                    Some(si) => {
                        self.changed();
                        template::merge(&mut self.shapes[si as usize].toks, &lb.toks);
                        let s = &mut self.shapes[si as usize];
                        s.consts = template::consts(&s.toks);
                        self.reroute(si);
                    }
                    None if self.pats[p as usize].shapes.len() < MAX_SHAPES => {
                        self.add_shape(p, &lb);
                    }
                    None => {}
                }
            }
            self.rerender(p);
        }
        self.lb = lb;
    }

    /// Whether pattern `p` is one bare value and nothing else (`<*>`): no rule reads words in it,
    /// and its samples may be lines that were one value only by the line before them (a Python
    /// frame's code, see `traceback.rs`), which on their own no longer fit it.
    fn is_lone_value(&self, p: u32) -> bool {
        let bare = |t: &TTok| t.slot != Slot::Const && &*t.text == "<*>";
        self.pats[p as usize]
            .shapes
            .iter()
            .all(|&si| matches!(self.shapes[si as usize].toks.as_slice(), [t] if bare(t)))
    }

    /// Whether `sample` still matches one of pattern `p`'s shapes under the current rules.
    /// A longer sample fits an open shape as a line would join it (see `tail::joins_open`).
    fn fits(&self, p: u32, sample: &str, lb: &mut LineBuf) -> bool {
        lb.fill(sample, &self.masker, self.cfg.max_tokens);
        // The sample must also find the pattern as a line would: a shape it is alike to but
        // whose route it no longer takes (a word of the stored template that is a value under
        // the new rules) takes none of its lines.
        let found = match self.find(lb) {
            Found::Shape(si, _) | Found::Align(si) | Found::Tail(si, _) | Found::Open(si, ..) => {
                Some(self.shapes[si as usize].pat)
            }
            Found::None(_) => None,
        };
        if found != Some(p) {
            return false;
        }
        let n = lb.toks.len();
        let max_mism = ((1.0 - self.cfg.similarity) * n as f64 + 1e-9).floor() as u32;
        let mut collapsed = Vec::new();
        let wording = lb.wording();
        let row = lb.row();
        self.pats[p as usize].shapes.iter().any(|&si| {
            let toks = &self.shapes[si as usize].toks;
            if tail::joins_open(toks, lb, &mut collapsed)
                || middle::joins_open(toks, lb, &mut collapsed)
            {
                true
            } else if toks.len() == n {
                template::compare(toks, &lb.toks, max_mism, row)
                    .is_some_and(|score| score.accepts(self.cfg.similarity))
            } else {
                template::align(toks, &lb.toks, &wording).is_some_and(|score| score.mism == 0)
            }
        })
    }

    /// Whether key=value masking is on (changes how `=` tokens compare).
    pub(crate) fn kv_masking(&self) -> bool {
        self.masker.builtins.has(super::mask::bits::KV)
    }

    /// The configuration this miner runs with.
    pub fn config(&self) -> &MinerConfig {
        &self.cfg
    }

    /// Number of live patterns.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when no pattern has been learned (or all were evicted).
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Patterns evicted so far to stay within `max_patterns` (a metric worth alerting on: a steadily
    /// rising count means masking misses a variable and every line looks new).
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Observes one line: finds or creates its pattern and learns from it.
    ///
    /// `level_hint` is the value of the user's level field, if any; `now_ms` is the caller's clock
    /// (unix ms), used for first/last-seen so the pipeline controls time (and tests are deterministic).
    pub fn observe(
        &mut self,
        line: &str,
        level_hint: Option<&str>,
        now_ms: i64,
    ) -> Observation<'_> {
        let mut lb = std::mem::take(&mut self.lb);
        // Read as far as the tokens are: a line over the byte cap is not scanned to its end.
        let (frame, traceback) = self.traceback.next(cut_line(line));
        self.traceback = traceback;
        if frame {
            lb.fill_value(line);
        } else {
            lb.fill(line, &self.masker, self.cfg.max_tokens);
        }
        let level = level_hint
            .and_then(Level::parse_value)
            .unwrap_or_else(|| lb.level(line));
        let epoch = self.epoch;
        let (si, is_new, changed) = match self.find(&lb) {
            Found::Shape(si, differs) => {
                let changed = differs && self.merge_into(si, &lb);
                (si, false, changed)
            }
            Found::Align(other) => {
                let p = self.shapes[other as usize].pat;
                let si = self.add_shape(p, &lb);
                let changed = self.rerender(p);
                (si, false, changed)
            }
            Found::Tail(si, cut) => {
                tail::collapse_line(&mut lb, cut);
                (si, false, self.merge_into(si, &lb))
            }
            Found::Open(si, shape_cut, line_cut) => {
                self.open_shape(si, shape_cut);
                tail::collapse_line(&mut lb, line_cut);
                self.merge_into(si, &lb);
                (si, false, self.rerender(self.shapes[si as usize].pat))
            }
            Found::None(parent) => {
                let parent = parent.map(|p| {
                    let pat = &mut self.pats[p as usize];
                    pat.splits += 1;
                    pat.id
                });
                let si = self.create_pattern(&lb);
                let p = self.shapes[si as usize].pat;
                self.pats[p as usize].parent = parent;
                (si, true, false)
            }
        };
        if self.epoch == epoch {
            if self.exact.len() >= self.exact_cap {
                self.exact.clear();
            }
            self.exact.insert(lb.hash, (si, epoch));
        }
        self.lb = lb;
        let shape = &mut self.shapes[si as usize];
        shape.count += 1;
        if shape.count == FREEZE_AFTER {
            // Its words hold from now on (see `holds`): searches may end elsewhere.
            self.changed();
        }
        let p = self.shapes[si as usize].pat;
        self.touch(p);
        let max_samples = self.cfg.max_samples;
        let pat = &mut self.pats[p as usize];
        pat.count += 1;
        if is_new {
            pat.first_seen = now_ms;
        }
        pat.last_seen = now_ms;
        pat.level = pat.level.max(level);
        if pat.samples.len() < max_samples {
            let sample = cut(line, SAMPLE_BYTES);
            if !pat.samples.iter().any(|s| s == sample) {
                pat.samples.push(sample.to_string());
            }
        }
        if is_new && self.live > self.cfg.max_patterns {
            self.evict_lru();
        }
        let pat = &self.pats[p as usize];
        Observation {
            id: pat.id,
            is_new,
            changed,
            template: &pat.template,
            count: pat.count,
            first_seen_ms: pat.first_seen,
            level,
            parent: pat.parent,
            slot: p,
        }
    }

    /// Classifies a line against the known patterns **without learning**: no pattern is created or
    /// changed and no counter moves. Useful for "would this be new?" checks and for a frozen miner.
    /// The line is read on its own: a Python frame's code is one value only to `observe`, which
    /// saw the line before it (see `traceback.rs`).
    pub fn lookup(&mut self, line: &str) -> Option<PatternView<'_>> {
        let mut lb = std::mem::take(&mut self.lb);
        lb.fill(line, &self.masker, self.cfg.max_tokens);
        let found = self.find(&lb);
        self.lb = lb;
        let si = match found {
            Found::Shape(si, _) | Found::Align(si) | Found::Tail(si, _) | Found::Open(si, ..) => si,
            Found::None(_) => return None,
        };
        let p = self.shapes[si as usize].pat;
        Some(self.view(p))
    }

    /// All live patterns, in unspecified order.
    pub fn patterns(&self) -> impl Iterator<Item = PatternView<'_>> + '_ {
        self.pats
            .iter()
            .enumerate()
            .filter(|(_, p)| p.alive)
            .map(|(i, _)| self.view(i as u32))
    }

    /// The id of the live pattern in `slot` (see [`Observation::slot`]).
    pub fn id_at(&self, slot: u32) -> Option<PatternId> {
        self.pats
            .get(slot as usize)
            .filter(|pat| pat.alive)
            .map(|pat| pat.id)
    }

    /// The slot of a live pattern (see [`Observation::slot`]).
    pub fn slot_of(&self, id: PatternId) -> Option<u32> {
        self.ids.get(&id.as_u64()).copied()
    }

    /// The number of slots: every [`Observation::slot`] is below it.
    pub fn slots(&self) -> usize {
        self.pats.len()
    }

    /// One pattern by id.
    pub fn get(&self, id: PatternId) -> Option<PatternView<'_>> {
        self.ids.get(&id.as_u64()).map(|&p| self.view(p))
    }

    fn view(&self, p: u32) -> PatternView<'_> {
        let pat = &self.pats[p as usize];
        PatternView {
            id: pat.id,
            template: &pat.template,
            count: pat.count,
            first_seen_ms: pat.first_seen,
            last_seen_ms: pat.last_seen,
            samples: &pat.samples,
            level: pat.level,
            parent: pat.parent,
        }
    }

    fn find(&self, lb: &LineBuf) -> Found {
        // The key hashes every token and every held `key=word` value of the line, so an entry of
        // the current epoch is what a search found for this very line, in this very state.
        if let Some(&(si, epoch)) = self.exact.get(&lb.hash)
            && epoch == self.epoch
        {
            return Found::Shape(si, false);
        }
        let toks = &lb.toks;
        let n = toks.len();
        let row = lb.row();
        let threshold = self.cfg.similarity;
        let max_mism = ((1.0 - threshold) * n as f64 + 1e-9).floor() as u32;
        let mut best: Option<(u32, Score)> = None;
        let mut blocked: Option<u32> = None;
        let route = line_route(toks);
        // The line's own leaf first; then the leaves where shapes whose
        // leading tokens generalised to `<*>` now live (see `reroute`).
        for key in route.probes(n) {
            if let Some(leaf) = self.leaves.get(&key) {
                for &si in leaf {
                    let s = &self.shapes[si as usize];
                    if let Some(score) = template::compare(&s.toks, toks, max_mism, row)
                        && score.accepts(threshold)
                        && best.is_none_or(|(b, bs)| self.better(si, score, b, bs))
                        && !changes_label(&s.toks, toks)
                    {
                        if (score.mism > 0 || score.words > 0) && self.frozen(s, toks) {
                            blocked.get_or_insert(s.pat);
                            continue;
                        }
                        best = Some((si, score));
                    }
                }
            }
            // A perfect match ends the search. One that must generalise does not, nor one whose
            // `key=word` value differs from the word the shape holds there: a shape in a
            // wildcard leaf may take the line as it is, and must, for the line to find the
            // pattern it joined before once the exact-repeat cache has forgotten it (a restart).
            if best.is_some_and(|(_, score)| score.mism == 0 && score.words == 0) {
                break;
            }
        }
        if best.is_none() {
            best = self.variable_second_token(
                &route,
                (toks, row),
                (max_mism, threshold),
                &mut blocked,
            );
        }
        // An open shape that takes the line as it is beats one that must generalise to take
        // it (a word, or the word a `key=word` field held), and any shape of another length: a
        // line that joined an open shape once must find it again when the exact-repeat cache
        // no longer knows the line (after a restart, or once the cache was cleared), not a
        // shape of its length created since.
        if best.is_none_or(|(_, score)| score.mism > 0 || score.words > 0)
            && let Some(found) = self
                .join_open(lb, &mut blocked)
                .or_else(|| self.join_middle(lb, &mut blocked))
        {
            return found;
        }
        if let Some((si, score)) = best {
            let s = &self.shapes[si as usize];
            let differs = score.mism > 0 || template::needs_merge(&s.toks, toks);
            return Found::Shape(si, differs);
        }
        if n == 0 {
            return Found::None(blocked);
        }
        if let Some(si) = self.align_other_lengths(lb, &route, &mut blocked) {
            return Found::Align(si);
        }
        if let Some(found) = self.open_tail(lb, &mut blocked) {
            return found;
        }
        if let Some(found) = self.open_middle(lb, &mut blocked) {
            return found;
        }
        Found::None(blocked)
    }

    /// The shape of another length that takes the line by aligning with it (see
    /// `template::align`), if one does: the slow path, for lines no shape of their length took.
    /// Kept out of `find` so that the common path stays small.
    #[cold]
    #[inline(never)]
    fn align_other_lengths(
        &self,
        lb: &LineBuf,
        route: &Route,
        blocked: &mut Option<u32>,
    ) -> Option<u32> {
        let toks = &lb.toks;
        let n = toks.len();
        let mut best: Option<(u32, Score)> = None;
        // Read on the first shape that needs it (see `template::align`).
        let mut wording: Option<Vec<bool>> = None;
        let lens = (n.saturating_sub(MAX_GAPS)..=n + MAX_GAPS).filter(|&l| l != n);
        let cands = lens.filter_map(|l| self.by_first.get(&first_key(route.anchor, l)));
        // The most recent shapes of each length suffice; the cap bounds the slow path.
        for &si in cands.flat_map(|v| v.iter().rev().take(MAX_ALIGN_CANDIDATES)) {
            let s = &self.shapes[si as usize];
            if s.consts < MIN_CONSTS_FOR_ALIGN {
                continue;
            }
            if self.pats[s.pat as usize].shapes.len() >= MAX_SHAPES {
                continue;
            }
            let wording = wording.get_or_insert_with(|| lb.wording());
            if let Some(score) = template::align(&s.toks, toks, wording) {
                // Across lengths only optional *variables* may differ: every literal must agree,
                // and so must the words that held (see `frozen`). A line that a shape of the
                // pattern keeps out for its held words is another event: no other shape of
                // that pattern takes it either.
                if score.mism != 0 || *blocked == Some(s.pat) {
                    continue;
                }
                if score.words > 0 && holds(s, self.pats[s.pat as usize].splits) {
                    blocked.get_or_insert(s.pat);
                    continue;
                }
                if best.is_none_or(|(_, b)| score.rank() > b.rank()) {
                    best = Some((si, score));
                }
            }
        }
        best.map(|(si, _)| si)
    }

    /// The last resort before a new pattern: free text after a label. `Reading from client:
    /// Connection reset by peer` and `Reading from client: Connection timed out` are one event
    /// whose last field is a message of any number of words (an error string, a reason). Once two
    /// lines agree on every token up to a label (a word ending in `:`) and differ after it, the
    /// shape's tail becomes one `<*>` that takes any number of words: the shape is *open* (see
    /// [`tail::open_at`]). A shape already open after one of the line's labels is tried first
    /// (see `join_open`, called earlier in `find`); this opens one.
    ///
    /// Why it needs the second line, not a rule on the first: text after a label is as often a
    /// fixed part of the message (`pam_unix(sshd:session): session opened`), so only two lines
    /// that share the whole prefix and differ after it show that the tail is a value. A prefix
    /// of fewer than [`tail::MIN_PREFIX`] tokens is too little evidence, and a tail that held over
    /// [`FREEZE_AFTER`] lines is a template word like any other (the line splits off instead).
    fn open_tail(&self, lb: &LineBuf, blocked: &mut Option<u32>) -> Option<Found> {
        let n = lb.toks.len();
        let lens = n.saturating_sub(MAX_GAPS)..=n + MAX_GAPS;
        let shared = |t: &[TTok]| tail::shared_prefix(t, lb).map(|p| (p, ()));
        let (si, p, ()) = self.shape_to_open(lb, lens, shared, blocked)?;
        let shape_end = self.shapes[si as usize].toks.len();
        Some(Found::Open(si, (p, shape_end), (p, n)))
    }

    /// The shape a line opens (see `open_tail`, `open_middle`): among the most recent shapes with
    /// the line's routing anchor and a length in `lens`, the one that `shared` opens at the
    /// latest label (the longest prefix, the strongest evidence), with what `shared` found there.
    /// Not a shape whose words held (see `holds`): the line splits off from its pattern instead.
    fn shape_to_open<C>(
        &self,
        lb: &LineBuf,
        lens: std::ops::RangeInclusive<usize>,
        shared: impl Fn(&[TTok]) -> Option<(usize, C)>,
        blocked: &mut Option<u32>,
    ) -> Option<(u32, usize, C)> {
        let anchor = line_route(&lb.toks).anchor;
        let mut best: Option<(u32, usize, C)> = None;
        for len in lens {
            let Some(group) = self.by_first.get(&first_key(anchor, len)) else {
                continue;
            };
            for &si in group.iter().rev().take(MAX_ALIGN_CANDIDATES) {
                let s = &self.shapes[si as usize];
                let Some((p, found)) = shared(&s.toks) else {
                    continue;
                };
                if holds(s, self.pats[s.pat as usize].splits) {
                    blocked.get_or_insert(s.pat);
                    continue;
                }
                if best.as_ref().is_none_or(|&(_, bp, _)| p > bp) {
                    best = Some((si, p, found));
                }
            }
        }
        best
    }

    /// The open shape the line joins once its tail after one of its labels is collapsed to one
    /// token (see `open_tail`), if any: the latest label first. Not a pattern that keeps the
    /// line out for its held words (`blocked`, see `frozen`): an open tail takes any number of
    /// words after its label, not another value where a word held.
    fn join_open(&self, lb: &LineBuf, blocked: &mut Option<u32>) -> Option<Found> {
        let toks = &lb.toks;
        let mut collapsed = Vec::with_capacity(toks.len());
        for p in tail::labels(lb).filter(|&p| p + 2 < toks.len()) {
            let cut = (p, toks.len());
            tail::collapse(toks, cut, &mut collapsed);
            let open_here = |t: &[TTok]| tail::open_at(t) == Some(p);
            if let Some(si) = self.join_collapsed(&collapsed, open_here, blocked) {
                return Some(Found::Tail(si, cut));
            }
        }
        None
    }

    /// The shape open at the line's cut (`open_here`) that takes the line, its text there
    /// already `collapsed` to one token (see `join_open`, `join_middle`): the best by rank, not
    /// one of a pattern that keeps the line out for its held words.
    fn join_collapsed(
        &self,
        collapsed: &[Tok],
        open_here: impl Fn(&[TTok]) -> bool,
        blocked: &mut Option<u32>,
    ) -> Option<u32> {
        let mut best: Option<(u32, Score)> = None;
        for key in line_route(collapsed).probes(collapsed.len()) {
            for &si in self.leaves.get(&key).into_iter().flatten() {
                let s = &self.shapes[si as usize];
                if open_here(&s.toks)
                    && *blocked != Some(s.pat)
                    && let Some(score) = template::compare(&s.toks, collapsed, 0, None)
                    && best.is_none_or(|(_, b)| score.rank() > b.rank())
                {
                    // A held word keeps the line out, as at one length (see `frozen`).
                    if score.words > 0 && holds(s, self.pats[s.pat as usize].splits) {
                        blocked.get_or_insert(s.pat);
                        continue;
                    }
                    best = Some((si, score));
                }
            }
        }
        best.map(|(si, _)| si)
    }

    /// A line whose second token differs from every shape's: `user bob
    /// logged in` against `user alice logged in`. Drain never compares them
    /// (they route to different leaves), so every user name would be a new
    /// pattern. But two shapes differing there are usually two events
    /// (`Failed password ...` / `Failed none ...`), so the line joins one
    /// only when it resembles at least `MIN_SIBLINGS` same-length shapes
    /// with the same first token: a position that took that many values is
    /// a variable. Bounded by `MAX_ALIGN_CANDIDATES`, and only reached when
    /// nothing else matched.
    fn variable_second_token(
        &self,
        route: &Route,
        (toks, row): (&[Tok], Option<Row>),
        (max_mism, threshold): (u32, f64),
        blocked: &mut Option<u32>,
    ) -> Option<(u32, Score)> {
        let group = self.by_first.get(&first_key(route.anchor, toks.len()))?;
        let mut siblings = 0;
        let mut best: Option<(u32, Score)> = None;
        for &si in group.iter().rev().take(MAX_ALIGN_CANDIDATES) {
            let s = &self.shapes[si as usize];
            if let Some(score) = template::compare(&s.toks, toks, max_mism, row)
                && score.accepts(threshold)
                && !changes_label(&s.toks, toks)
            {
                siblings += 1;
                if (score.mism > 0 || score.words > 0) && self.frozen(s, toks) {
                    blocked.get_or_insert(s.pat);
                    continue;
                }
                if best.is_none_or(|(_, b)| score.rank() > b.rank()) {
                    best = Some((si, score));
                }
            }
        }
        best.filter(|_| siblings >= MIN_SIBLINGS)
    }

    fn frozen(&self, s: &Shape, line: &[Tok]) -> bool {
        frozen(s, self.pats[s.pat as usize].splits, line)
    }

    /// Whether shape `a` taking the line with `sa` beats shape `b` taking it with `sb`: the better
    /// rank, and on a tie the older shape. Why the age: a tie must not go to whichever shape
    /// comes first in its leaf, an order that once differed in a restored miner (shapes that
    /// moved leaves were appended; see `insert_in_creation_order`), giving a line another id.
    fn better(&self, a: u32, sa: Score, b: u32, sb: Score) -> bool {
        let (ra, rb) = (sa.rank(), sb.rank());
        ra > rb || (ra == rb && self.shapes[a as usize].seq < self.shapes[b as usize].seq)
    }

    /// The last resort before a new pattern, after `open_tail`: free text between a label and
    /// `key=value` fields. `Disconnected: Logged out in=209 out=89573` and `Disconnected:
    /// Connection closed (IDLE running) in=12 out=3482` are one event whose message between the
    /// label and the fields has any number of words. Once two lines agree through a label and on
    /// every field after their texts, and differ in between, the shape's middle becomes one `<*>`
    /// (see [`middle::open_at`]); a shape already open there is joined earlier in `find` (see
    /// `join_middle`). The evidence is as for a tail (see `open_tail`), the fields after the text
    /// counting with the words before it; the texts may differ by up to [`MAX_MIDDLE`] words.
    #[cold]
    #[inline(never)]
    fn open_middle(&self, lb: &LineBuf, blocked: &mut Option<u32>) -> Option<Found> {
        // The earliest label bounds the shortest shape: a label, a word and a field after it.
        let (earliest, _) = middle::opening_labels(lb).last()?;
        let n = lb.toks.len();
        let lens = n.saturating_sub(MAX_MIDDLE).max(earliest + 3)..=n + MAX_MIDDLE;
        let shared = |t: &[TTok]| middle::shared_label(t, lb).map(|(p, tq, lq)| (p, (tq, lq)));
        let (si, p, (tq, lq)) = self.shape_to_open(lb, lens, shared, blocked)?;
        Some(Found::Open(si, (p, tq), (p, lq)))
    }

    /// The shape open in the middle that the line joins once its words between one of its labels
    /// and its first field are collapsed to one token (see `open_middle`), if any: the latest
    /// label first. A shape keeping the line out for its held words does not take it (see
    /// `join_open`).
    fn join_middle(&self, lb: &LineBuf, blocked: &mut Option<u32>) -> Option<Found> {
        let mut collapsed = Vec::with_capacity(lb.toks.len());
        for cut in middle::join_labels(lb) {
            tail::collapse(&lb.toks, cut, &mut collapsed);
            let open_here = |t: &[TTok]| middle::open_at(t) == Some(cut.0);
            if let Some(si) = self.join_collapsed(&collapsed, open_here, blocked) {
                return Some(Found::Tail(si, cut));
            }
        }
        None
    }

    /// Notes a change to what a search can find (see [`Miner::epoch`]). A wrapped epoch clears
    /// the cache, so that no entry of 2^32 changes ago passes for a fresh one.
    fn changed(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.exact.clear();
        }
    }

    /// Makes shape `si` open at `cut` (see `open_tail`, `open_middle`): its words after the label
    /// up to the cut's end (its own end, or its first field) become one `<*>`, and the shape
    /// moves to the leaf of its new length.
    fn open_shape(&mut self, si: u32, (p, q): Cut) {
        self.changed();
        let s = &mut self.shapes[si as usize];
        s.toks.splice(p + 1..q, [TTok::wild()]);
        s.consts = template::consts(&s.toks);
        self.reroute(si);
    }

    /// Generalises shape `si` with the line; returns whether the pattern's template text changed.
    fn merge_into(&mut self, si: u32, lb: &LineBuf) -> bool {
        let s = &mut self.shapes[si as usize];
        if !template::merge(&mut s.toks, &lb.toks) {
            return false;
        }
        self.changed();
        let s = &mut self.shapes[si as usize];
        s.consts = template::consts(&s.toks);
        let p = s.pat;
        self.reroute(si);
        self.rerender(p)
    }

    /// Moves a shape whose leading tokens generalised to the leaf its
    /// template now routes to, so that lines with other values there (the
    /// next user name) find it through the wildcard probes in `find`.
    fn reroute(&mut self, si: u32) {
        let route = template_route(&self.shapes[si as usize].toks);
        let (old_leaf, old_first) = {
            let s = &self.shapes[si as usize];
            (s.leaf, s.first)
        };
        if route.leaf == old_leaf && route.first == old_first {
            return;
        }
        remove_from(&mut self.leaves, old_leaf, si);
        remove_from(&mut self.by_first, old_first, si);
        let s = &mut self.shapes[si as usize];
        s.leaf = route.leaf;
        s.first = route.first;
        insert_in_creation_order(&mut self.leaves, route.leaf, si, &self.shapes);
        insert_in_creation_order(&mut self.by_first, route.first, si, &self.shapes);
    }

    /// Recomputes a pattern's display template; returns whether it changed.
    pub(crate) fn rerender(&mut self, p: u32) -> bool {
        let pat = &self.pats[p as usize];
        let mut text = String::with_capacity(pat.template.len() + 8);
        match pat.shapes.as_slice() {
            [one] => template::render(&self.shapes[*one as usize].toks, &mut text),
            [first, rest @ ..] => {
                let mut acc = self.shapes[*first as usize].toks.clone();
                for &si in rest {
                    acc = template::fold_display(&acc, &self.shapes[si as usize].toks);
                }
                template::render(&acc, &mut text);
            }
            [] => {}
        }
        let pat = &mut self.pats[p as usize];
        if pat.template == text {
            false
        } else {
            pat.template = text;
            true
        }
    }

    fn create_pattern(&mut self, lb: &LineBuf) -> u32 {
        lb.joined(&mut self.tmp);
        let ids = &self.ids;
        let id = derive_id(self.id_seed, &self.tmp, |h| ids.contains_key(&h));
        let toks: Vec<TTok> = lb.toks.iter().map(|t| TTok::from_line(lb, t)).collect();
        let p = self.alloc_pattern(id);
        let si = self.alloc_shape(p, toks, line_route(&lb.toks));
        self.pats[p as usize].shapes.push(si);
        self.rerender(p);
        si
    }

    fn add_shape(&mut self, p: u32, lb: &LineBuf) -> u32 {
        let toks: Vec<TTok> = lb.toks.iter().map(|t| TTok::from_line(lb, t)).collect();
        let si = self.alloc_shape(p, toks, line_route(&lb.toks));
        self.pats[p as usize].shapes.push(si);
        si
    }

    pub(crate) fn alloc_pattern(&mut self, id: PatternId) -> u32 {
        let pat = Pat {
            alive: true,
            id,
            shapes: Vec::new(),
            template: String::new(),
            count: 0,
            first_seen: 0,
            last_seen: 0,
            samples: Vec::new(),
            level: Level::Unknown,
            parent: None,
            splits: 0,
            prev: NIL,
            next: NIL,
        };
        let p = match self.free_pats.pop() {
            Some(p) => {
                self.pats[p as usize] = pat;
                p
            }
            None => {
                self.pats.push(pat);
                (self.pats.len() - 1) as u32
            }
        };
        self.ids.insert(id.as_u64(), p);
        self.live += 1;
        self.push_front(p);
        p
    }

    pub(crate) fn alloc_shape(&mut self, p: u32, toks: Vec<TTok>, route: Route) -> u32 {
        self.changed();
        let (leaf, first) = (route.leaf, route.first);
        let consts = template::consts(&toks);
        let seq = self.next_seq;
        self.next_seq += 1;
        let si = match self.free_shapes.pop() {
            Some(si) => {
                let s = &mut self.shapes[si as usize];
                s.alive = true;
                s.pat = p;
                s.toks = toks;
                s.consts = consts;
                s.leaf = leaf;
                s.first = first;
                s.seq = seq;
                s.count = 0;
                si
            }
            None => {
                self.shapes.push(Shape {
                    alive: true,
                    pat: p,
                    toks,
                    consts,
                    leaf,
                    first,
                    seq,
                    count: 0,
                });
                (self.shapes.len() - 1) as u32
            }
        };
        self.leaves.entry(leaf).or_default().push(si);
        self.by_first.entry(first).or_default().push(si);
        si
    }

    fn evict_lru(&mut self) {
        let p = self.tail;
        if p == NIL {
            return;
        }
        self.remove_pattern(p);
        self.evictions += 1;
    }

    pub(crate) fn remove_pattern(&mut self, p: u32) {
        self.unlink(p);
        let shapes = std::mem::take(&mut self.pats[p as usize].shapes);
        for si in shapes {
            self.free_shape(si);
        }
        let pat = &mut self.pats[p as usize];
        pat.alive = false;
        pat.samples = Vec::new();
        pat.template = String::new();
        let id = pat.id.as_u64();
        self.ids.remove(&id);
        self.free_pats.push(p);
        self.live -= 1;
    }

    /// Takes a shape out of the indexes and frees its slot (the pattern's list is the caller's).
    fn free_shape(&mut self, si: u32) {
        self.changed();
        let (leaf, first) = {
            let s = &mut self.shapes[si as usize];
            s.alive = false;
            s.toks = Vec::new();
            (s.leaf, s.first)
        };
        remove_from(&mut self.leaves, leaf, si);
        remove_from(&mut self.by_first, first, si);
        self.free_shapes.push(si);
    }

    /// Pattern slots from least to most recently seen.
    pub(crate) fn lru_order(&self) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.live);
        let mut p = self.tail;
        while p != NIL {
            out.push(p);
            p = self.pats[p as usize].prev;
        }
        out
    }

    pub(crate) fn evict_over_capacity(&mut self) {
        while self.live > self.cfg.max_patterns {
            self.evict_lru();
        }
    }

    fn touch(&mut self, p: u32) {
        if self.head != p {
            self.unlink(p);
            self.push_front(p);
        }
    }

    fn push_front(&mut self, p: u32) {
        let old = self.head;
        {
            let pat = &mut self.pats[p as usize];
            pat.prev = NIL;
            pat.next = old;
        }
        if old != NIL {
            self.pats[old as usize].prev = p;
        } else {
            self.tail = p;
        }
        self.head = p;
    }

    fn unlink(&mut self, p: u32) {
        let (prev, next) = {
            let pat = &self.pats[p as usize];
            (pat.prev, pat.next)
        };
        if prev != NIL {
            self.pats[prev as usize].next = next;
        } else if self.head == p {
            self.head = next;
        }
        if next != NIL {
            self.pats[next as usize].prev = prev;
        } else if self.tail == p {
            self.tail = prev;
        }
        let pat = &mut self.pats[p as usize];
        pat.prev = NIL;
        pat.next = NIL;
    }
}

/// Whether a line as long as shape `t` has another word where an open `t` has its label (see
/// `tail::changes_label`, `middle::changes_label`).
fn changes_label(t: &[TTok], line: &[Tok]) -> bool {
    tail::changes_label(t, line) || middle::changes_label(t, line)
}

/// Whether shape `s` would have to give up a constant word that has held over
/// [`FREEZE_AFTER`] lines to take `line`: frequency is evidence that the
/// word is part of the event, so a line differing there is another event
/// (and starts a pattern of its own). Once [`MAX_SPLITS`] patterns have
/// split off a pattern, the position has shown enough distinct values to be
/// a variable after all, and the pattern generalises as before.
fn frozen(s: &Shape, splits: u32, line: &[Tok]) -> bool {
    holds(s, splits)
        && s.toks.iter().zip(line).any(|(t, l)| {
            t.slot == Slot::Const
                && if t.skel == l.skel {
                    t.word != 0 && t.word != l.word
                } else {
                    !l.var && !l.digit && !literal_has_digit(t.text.as_bytes())
                }
        })
}

/// Whether shape `s` has held its constant words long enough that a line differing in one is
/// another event (see [`frozen`]).
fn holds(s: &Shape, splits: u32) -> bool {
    s.count >= FREEZE_AFTER && splits < MAX_SPLITS
}

/// Puts shape `si` into the index list `key` of `map` at its place by creation (`seq`), not at
/// the end. Why: every index list then stays in creation order, the order a restore rebuilds it
/// in, so the scans that keep the first of equally good shapes or stop at a cap
/// (`align_other_lengths`, `variable_second_token`, `open_tail`, `join_open`) take the same shape
/// before and after a restart. Appended, a shape that moved (its second token generalised after
/// a newer shape was created) came before that newer shape in the live miner only.
fn insert_in_creation_order(map: &mut FastMap<Vec<u32>>, key: u64, si: u32, shapes: &[Shape]) {
    let list = map.entry(key).or_default();
    let seq = shapes[si as usize].seq;
    let at = list.partition_point(|&x| shapes[x as usize].seq < seq);
    list.insert(at, si);
}

fn remove_from(map: &mut FastMap<Vec<u32>>, key: u64, si: u32) {
    if let Some(v) = map.get_mut(&key) {
        v.retain(|&x| x != si);
        if v.is_empty() {
            map.remove(&key);
        }
    }
}

fn cut(line: &str, max: usize) -> &str {
    if line.len() <= max {
        return line;
    }
    let mut end = max;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

/// Where a shape lives: its prefix-tree leaf and its key in the length-varying index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    pub leaf: u64,
    /// Key in the length-varying index: first anchor and token count.
    pub first: u64,
    /// Route key of the first token.
    pub anchor: u64,
    /// Route key of the second token.
    pub second: u64,
}

impl Route {
    /// The leaves a line of `n` tokens with this route may find its shape in, each once: its own
    /// leaf, then those where shapes whose leading tokens generalised to `<*>` now live (see
    /// `Miner::reroute`).
    fn probes(&self, n: usize) -> impl Iterator<Item = u64> {
        let probes = [
            self.leaf,
            leaf_key(n, self.anchor, ANY_KEY),
            leaf_key(n, ANY_KEY, self.second),
            leaf_key(n, ANY_KEY, ANY_KEY),
        ];
        (0..probes.len())
            .filter(move |&i| !probes[..i].contains(&probes[i]))
            .map(move |i| probes[i])
    }
}

/// Leaf key for token count `n` and the route keys of the first two tokens.
fn leaf_key(n: usize, k0: u64, k1: u64) -> u64 {
    combine(combine(combine(0x6c65_6166, n as u64), k0), k1)
}

/// Key of the length-varying index for shapes of length `n` whose first token routes as `anchor`.
pub(crate) fn first_key(anchor: u64, n: usize) -> u64 {
    combine(combine(0x6669_7273, anchor), n as u64)
}

/// Routing of a token sequence, given for each token whether it is an *anchor* (a literal without
/// digits) and its hash.
///
/// As in Drain, the leaf is keyed by the token count and the first two tokens; a token that is not an
/// anchor (a variable, a literal with digits such as `ee0`, a `::` code path such as
/// `orders::tests::rejects_empty_cart`, or a word holding a masked value, such
/// as `grace/<IP>` or `<FQN>/IN:`) is keyed as "any", so ids and numbers in leading positions
/// cannot explode the tree. A word holding a value names one thing among many, as a variable
/// does: keyed on its text, `grace/<IP>` and `erin/<IP>` (a client before its address) could
/// never meet, nor `dyn.example.com/IN:` (`<FQN>/IN:`) and `example.com/IN:` (a word, since
/// dotted names are masked from three parts on). A `key=<*>` field still routes,
/// by its key (see [`line_route`]). Every member of a leaf shares its anchors,
/// so those positions never generalise and the route can be recomputed from a stored template.
///
/// (Skipping non-anchors to key on the first two *words* was tried: equal on message-only input, but
/// on whole lines with headers it keys on host and program names and splits templates.)
pub(crate) fn route(n: usize, mut anchors: impl Iterator<Item = (bool, u64)>) -> Route {
    let key = |pair: Option<(bool, u64)>| match pair {
        None => NONE_KEY,
        Some((true, hash)) => hash,
        Some((false, _)) => ANY_KEY,
    };
    let k0 = key(anchors.next());
    let k1 = key(anchors.next());
    Route {
        leaf: leaf_key(n, k0, k1),
        first: first_key(k0, n),
        anchor: k0,
        second: k1,
    }
}

/// Route of a line. A `key=value` token routes by its skeleton, as it compares (see
/// `template::pair`): `user=` and `user=root` are one field (see
/// `tokenize::empty_value_skel`), so they must meet in the first two positions too.
pub(crate) fn line_route(toks: &[Tok]) -> Route {
    route(
        toks.len(),
        toks.iter()
            .map(|t| (t.anchor, if t.kv { t.skel } else { t.hash })),
    )
}

/// Route of a stored template (snapshot restore). Equals the route of the line that created it: see
/// [`route`].
pub(crate) fn template_route(toks: &[TTok]) -> Route {
    route(
        toks.len(),
        toks.iter().map(|t| {
            (
                t.slot == Slot::Const
                    && is_anchor_text(t.text.as_bytes())
                    && (t.kv || !has_placeholder(t.text.as_bytes())),
                if t.kv { t.skel } else { t.hash },
            )
        }),
    )
}
