//! Templates and how a line is compared with one.
//!
//! A template is a token sequence where every position is one of
//!
//! * `Const`: a literal token every member line had (possibly with embedded placeholders, `uid=<*>`);
//! * `Var`: a variable token (`<NUM>`, `[<IP>]`) that every member line had with the same text;
//! * `Wild`: a generalised position (`<*>`), where members differed.
//!
//! **Similarity** (equal length). Drain counts `<*>` positions as non-matches, so a heavily masked line
//! can fall below the threshold against its own template and spawn duplicates (reference §5.2). Here
//! only positions that can *disagree* count:
//!
//! * a `Const` position counts; it matches when the line has the same token (up to placeholder types);
//! * a `Var` position matches any variable token; it counts (as a mismatch) only if the line has a
//!   literal there;
//! * a `Wild` position matches anything and does not count.
//!
//! `similarity = matched / counted`, accepted when `>= threshold` and at least one constant is kept.
//! Every line that ever joined a template therefore matches it perfectly afterwards (templates only
//! generalise), which is what makes replay create zero new patterns.
//!
//! Three kinds of difference rule a template out whatever the similarity, because they are wording or
//! structure rather than a parameter (all three are generic observations about log statements, and
//! each protects a large template from absorbing a rare different event, which is what grouping
//! accuracy punishes hardest):
//!
//! * two *adjacent* differing literals: after masking, a variable is almost always one token, so
//!   "could not resolve X" vs "connection attempt failed" is different text;
//! * two differing `key=value` tokens: values are masked, so the keys differ;
//! * two differing UPPER-CASE words (`LOOKING`/`LEADING`, `HTTPS`/`SOCKS5`, `NEW`/`RUNNING`): code prints
//!   enum values, states, protocols and methods this way, and a new one is a new event worth
//!   announcing.
//!
//! **Alignment** (different lengths, slow path). Optional *parameters* (`(1.16 KB)` present or not,
//! `<1 sec` vs `02:13`) change the token count without changing the event. Optional *words* usually do
//! change it (`Failed password for root` vs `Failed password for invalid user x`). So the alignment
//! allows gaps only over variable tokens (`Var`/`Wild` in the template, variable tokens in the line),
//! at most [`MAX_GAPS`] of them, and every literal must agree.

use super::id::fast_hash;
use super::spans::is_json_member;
use super::tokenize::{
    LineBuf, Row, Tok, empty_value_skel, has_placeholder, is_blank, is_enumerated, is_keyed,
    is_phrase_word, is_quoted_word, skeleton, skeleton_hash, word_hash,
};

/// Most tokens an alignment may skip (on both sides together).
pub(crate) const MAX_GAPS: usize = 3;

/// What a template position is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    Const,
    Var,
    Wild,
}

/// One template position: identity hash of its text, its skeleton hash (see `Tok::skel`), whether it
/// is a key=value token or an enumerated constant (an UPPER-CASE word or an exception class; both
/// structural, see `pair`), its kind, and display text.
#[derive(Clone, Debug)]
pub(crate) struct TTok {
    pub hash: u64,
    pub skel: u64,
    pub kv: bool,
    pub enumerated: bool,
    /// A quoted word: a name (see `tokenize::is_quoted_word`).
    pub quoted: bool,
    /// A word holding a placeholder beside literal text (see `Tok::valued`).
    pub valued: bool,
    /// A lone dash (`-`, `"-"`, `[-]`): the conventional "no value" of access logs and
    /// key-value formats, so a value showing up there later is that field filled in, not
    /// another event (see `pair`).
    pub blank: bool,
    pub slot: Slot,
    pub text: Box<str>,
    /// The one unmasked `key=word` value every member line had here (see `Tok::word`), 0 once
    /// members differed or when there is none.
    pub word: u64,
    /// The text behind `word` (`user=root`), kept for snapshots.
    pub word_text: Option<Box<str>>,
}

pub(crate) const WILD_TEXT: &str = "<*>";

impl TTok {
    pub(crate) fn from_line(lb: &LineBuf, t: &Tok) -> TTok {
        TTok {
            hash: t.hash,
            skel: t.skel,
            kv: t.kv,
            enumerated: t.enumerated,
            quoted: t.quoted,
            valued: t.valued,
            blank: is_blank(lb.text(t)),
            slot: if t.var { Slot::Var } else { Slot::Const },
            text: String::from_utf8_lossy(lb.text(t)).into(),
            word: t.word,
            word_text: (t.word != 0).then(|| String::from_utf8_lossy(lb.word_text(t)).into()),
        }
    }

    /// Rebuilds a stored `key=value` token whose value has held one word (`user=root`).
    pub(crate) fn with_word(mut self, word: String) -> TTok {
        self.word = word_hash(word.as_bytes());
        self.word_text = Some(word.into());
        self
    }

    /// Rebuilds a stored token (snapshot restore): hashes are recomputed from the text.
    pub(crate) fn from_text(text: String, slot: Slot, kv_on: bool) -> TTok {
        if slot == Slot::Wild {
            return TTok::wild();
        }
        let hash = fast_hash(text.as_bytes());
        let kv = kv_on
            && slot == Slot::Const
            && ((text.contains('=') && is_keyed(text.as_bytes()))
                || is_json_member(text.as_bytes()));
        let skel = if slot == Slot::Const && text.contains('<') {
            skeleton_hash(text.as_bytes(), &mut Vec::new())
        } else if kv && text.ends_with('=') {
            empty_value_skel(text.as_bytes(), &mut Vec::new())
        } else {
            hash
        };
        let plain = !has_placeholder(text.as_bytes());
        // An empty value (`error=`) is its own word: every member line had it (see
        // `tokenize::empty_value_skel`). Derived from the text, so a store written before empty
        // values had words restores it too.
        let empty_word = (kv && text.ends_with('=') && !text.bytes().any(|c| c.is_ascii_digit()))
            .then(|| text.clone());
        let t = TTok {
            hash,
            skel,
            kv,
            enumerated: slot == Slot::Const && plain && is_enumerated(text.as_bytes()),
            quoted: slot == Slot::Const && is_quoted_word(text.as_bytes()),
            valued: slot == Slot::Const && !kv && !plain,
            blank: is_blank(text.as_bytes()),
            slot,
            text: text.into(),
            word: 0,
            word_text: None,
        };
        match empty_word {
            Some(word) => t.with_word(word),
            None => t,
        }
    }

    pub(crate) fn wild() -> TTok {
        TTok {
            hash: 0,
            skel: 0,
            kv: false,
            enumerated: false,
            quoted: false,
            valued: false,
            blank: false,
            slot: Slot::Wild,
            text: WILD_TEXT.into(),
            word: 0,
            word_text: None,
        }
    }
}

/// Outcome of comparing a line with a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Score {
    /// Positions that could disagree.
    pub counted: u32,
    /// Positions that did disagree.
    pub mism: u32,
    /// Tokens skipped by an alignment (0 for equal lengths).
    pub gaps: u32,
    /// `key=word` values that differ from the one value the template has held (see `TTok::word`):
    /// not a mismatch, but a template that agrees on them is the better match.
    pub words: u32,
    /// `key=word` values equal to the one value the template has held: of two templates that
    /// take a line alike, the one that holds its value is the closer (a pattern split off for
    /// `user=bob` against its parent once that gave up its word, `user=<*>`).
    pub held: u32,
}

impl Score {
    pub(crate) fn accepts(&self, threshold: f64) -> bool {
        if self.counted == 0 {
            return self.mism == 0;
        }
        let kept = self.counted - self.mism;
        kept > 0 && f64::from(kept) >= threshold * f64::from(self.counted) - 1e-9
    }

    /// Larger is better: similarity first, then fewer differing `key=word` values, then more
    /// held ones that agree, then fewer gaps, then more positions that took part (the more
    /// specific template). Why the last: a line that made a pattern of its own (`by name=`,
    /// which `by alpha` could not take) must keep finding it once an older pattern has
    /// generalised to take it too (`by <*>`), cold as from the exact-repeat cache, or a restart
    /// moves its lines to another id.
    pub(crate) fn rank(&self) -> (u64, u32, u32, u32, u32) {
        let sim = if self.counted == 0 {
            1.0
        } else {
            f64::from(self.counted - self.mism) / f64::from(self.counted)
        };
        (
            (sim * 1e9) as u64,
            u32::MAX - self.words,
            self.held,
            u32::MAX - self.gaps,
            self.counted,
        )
    }
}

/// Compares one template position with one line token: `(counted, mismatched)`, or `None` for a
/// structural difference that rules the template out. A lone dash on either side (see
/// `TTok::blank`) is an empty value, so it agrees with any value. Structural differences:
/// * two differing key=value tokens: their values are masked, so they differ in their keys;
/// * two differing UPPER-CASE words (`LOOKING`/`LEADING`, `HTTPS`/`SOCKS5`) or exception classes
///   (`java.io.IOException:`/`java.lang.OutOfMemoryError:`): enumerated constants.
#[inline]
fn pair(t: &TTok, l: &Tok) -> Option<(u32, u32)> {
    Some(match t.slot {
        Slot::Const => {
            if t.skel == l.skel {
                (1, 0)
            } else if t.kv || l.kv || (t.enumerated && l.enumerated) {
                return None;
            } else if t.blank {
                (0, 0)
            } else {
                (1, 1)
            }
        }
        Slot::Var => {
            if l.var || l.blank {
                (0, 0)
            } else {
                (1, 1)
            }
        }
        Slot::Wild => (0, 0),
    })
}

/// Equal-length comparison. Returns `None` on a structural difference, on two adjacent mismatches, or
/// once `max_mism` is exceeded.
///
/// Why adjacent mismatches rule a template out: after masking, a variable is almost always a single
/// token, so two neighbouring literals that both differ are different *wording* ("could not resolve X"
/// vs "connection attempt failed"), not a parameter.
///
/// Why a word on a wildcard needs some literal that agrees: a template of values only (`<*>`,
/// from `12345` and a UUID, or a traceback's code and a number) took a word where its
/// wildcard stands with nothing compared at all, so every word alone (`Killed`, `ERROR`, a new
/// event) joined it silently. Its values took values only.
///
/// Why a `row` counts values that agree: a line that is a row of fields (see
/// `LineBuf::row`) has few words, so one word of a field that differs (a frontend's name,
/// a termination state) would weigh as much as a word of a sentence; its values are fields of
/// the same row, and agreeing there is evidence too. Only a value of the kind the template has
/// there agrees (`<IP>` with `<IP>`): an address where the template has a time is another row's
/// field, and counted as agreeing it made unrelated rows of one length one pattern. And not when
/// a plain word differs (`Connected`/`Disconnected`, `success`/`failure`, see `Row`):
/// that is a word of the event, as an UPPER-CASE one is, and the row is compared on its words
/// as a sentence is, or the values outvote it and the event is never announced.
#[inline]
pub(crate) fn compare(t: &[TTok], line: &[Tok], max_mism: u32, row: Option<Row>) -> Option<Score> {
    let mut s = Score {
        counted: 0,
        mism: 0,
        gaps: 0,
        words: 0,
        held: 0,
    };
    let mut prev = 0;
    let mut prev_label = false;
    let mut filled = 0;
    let mut agreed = 0;
    let mut worded = false;
    // Values counted as agreeing (in a row), and whether a plain word differs, which takes
    // them back.
    let mut fields = 0;
    let mut reworded = false;
    for (k, (a, b)) in t.iter().zip(line).enumerate() {
        let (c, m) = pair(a, b)?;
        // In a row, a value of the kind the template has there is a field that agrees.
        let field = row.is_some() && a.slot == Slot::Var && b.var && a.hash == b.hash;
        fields += u32::from(field);
        let c = c + u32::from(field);
        reworded |= m == 1
            && row.is_some_and(|r| r.word_at(k))
            && a.slot == Slot::Const
            && is_phrase_word(a.text.as_bytes());
        filled += u32::from(fills_blank(a, b));
        agreed += u32::from(agrees(a, b));
        worded |= a.slot == Slot::Wild && !b.var && !b.blank;
        // Two quoted words that differ are two names, not other wording; but not a label that
        // differs (`"event":`, a JSON or dict member's name), nor the value after it: another
        // label and its value are another field, as another `key=` is.
        let label = m == 1 && a.text.ends_with(':');
        let valued = (a.valued || a.slot == Slot::Var) && (b.valued || b.var);
        let name = (a.quoted && b.quoted || valued) && !label && !prev_label;
        let wording = m & u32::from(!name);
        if wording + prev > 1 {
            return None;
        }
        prev = wording;
        prev_label = label;
        s.counted += c;
        s.mism += m;
        s.words += u32::from(a.word != 0 && a.word != b.word);
        s.held += u32::from(a.word != 0 && a.word == b.word);
        if s.mism > max_mism {
            return None;
        }
    }
    if reworded {
        s.counted -= fields;
    }
    if weak_evidence(filled, agreed, s.counted - s.mism) || (worded && s.counted == 0) {
        return None;
    }
    Some(s)
}

/// Calls `each(p)` for every `p`, in order, at which `compare(&t[..=p], &line[..=p], 0)` accepts,
/// up to the first position where they differ. Why: an open tail (`tail::shared_prefix`) needs
/// the prefixes that agree at every label of the line; one pass finds them all, where one
/// comparison per label cost a line of a hundred labels a hundred passes.
pub(crate) fn agreeing_prefixes(t: &[TTok], line: &[Tok], mut each: impl FnMut(usize)) {
    let (mut counted, mut filled, mut agreed) = (0, 0, 0);
    for (p, (a, b)) in t.iter().zip(line).enumerate() {
        match pair(a, b) {
            Some((c, 0)) => counted += c,
            _ => return,
        }
        filled += u32::from(fills_blank(a, b));
        agreed += u32::from(agrees(a, b));
        if !weak_evidence(filled, agreed, counted) {
            each(p);
        }
    }
}

/// Whether `t` and `line` differ somewhere in structure (see `pair`): another key, or another
/// enumerated constant (`OK`/`FAILED`). Such lines are two events at any similarity.
pub(crate) fn conflicts(t: &[TTok], line: &[Tok]) -> bool {
    t.iter().zip(line).any(|(a, b)| pair(a, b).is_none())
}

/// Empty values filled in are no evidence of their own: some word must still agree (`- - -` is
/// not the template of every three-word line), and more positions must agree than were filled
/// in. Without the second rule `user - - - -` took every five-token line starting with `user`
/// (only the routing word agreed), so two crafted lines of dashes could give different events
/// one id.
fn weak_evidence(filled: u32, agreed: u32, kept: u32) -> bool {
    filled > 0 && (kept == 0 || filled > agreed)
}

/// Whether `b` agrees with `a` on its own (not by filling in an empty value): the same word, or
/// a variable where the template has one.
fn agrees(a: &TTok, b: &Tok) -> bool {
    match a.slot {
        Slot::Const => a.skel == b.skel,
        Slot::Var => b.var,
        Slot::Wild => false,
    }
}

/// Whether comparing `a` with `b` fills in an empty value (see `TTok::blank`).
fn fills_blank(a: &TTok, b: &Tok) -> bool {
    match a.slot {
        Slot::Const => a.blank && a.skel != b.skel,
        Slot::Var => b.blank,
        Slot::Wild => false,
    }
}

/// Whether merging `line` into `t` would change `t`.
pub(crate) fn needs_merge(t: &[TTok], line: &[Tok]) -> bool {
    t.iter().zip(line).any(|(a, b)| match a.slot {
        Slot::Const => const_differs(a, b) || (a.word != 0 && a.word != b.word),
        Slot::Var => !b.var || a.hash != b.hash,
        Slot::Wild => false,
    })
}

/// A constant position must change for `b`: a different token, or the same one up to placeholder
/// types while the template still shows typed placeholders (already-untyped text covers `b`).
#[inline]
fn const_differs(a: &TTok, b: &Tok) -> bool {
    a.hash != b.hash && !(a.skel == b.skel && a.hash == a.skel)
}

/// Generalises `t` so that `line` matches it perfectly. Returns whether anything changed, a
/// `key=word` value given up included (the text stays `key=<*>`).
pub(crate) fn merge(t: &mut [TTok], line: &[Tok]) -> bool {
    let mut changed = false;
    let mut buf = Vec::new();
    for (a, b) in t.iter_mut().zip(line) {
        match a.slot {
            Slot::Const if a.word != 0 && a.word != b.word && !const_differs(a, b) => {
                // Same key, another value: the value is no longer one word. The text stays, but
                // what the shape takes does not (see `Score::words`, `Miner::frozen`): a change.
                a.word = 0;
                a.word_text = None;
                changed = true;
            }
            Slot::Const if const_differs(a, b) => {
                if a.skel == b.skel {
                    // Same token up to placeholder types: keep it, with untyped placeholders
                    // (and a value where it had an empty one, see `empty_value_skel`).
                    skeleton(a.text.as_bytes(), &mut buf);
                    if a.kv && buf.ends_with(b"=") {
                        buf.extend_from_slice(WILD_TEXT.as_bytes());
                    }
                    a.text = String::from_utf8_lossy(&buf).into();
                    a.hash = a.skel;
                    if a.word != b.word {
                        // An empty value filled in (or emptied): no longer one word.
                        a.word = 0;
                        a.word_text = None;
                    }
                } else {
                    *a = TTok::wild();
                }
                changed = true;
            }
            Slot::Var if !b.var || a.hash != b.hash => {
                *a = TTok::wild();
                changed = true;
            }
            _ => {}
        }
    }
    changed
}

/// Number of `Const` positions.
pub(crate) fn consts(t: &[TTok]) -> u32 {
    t.iter().filter(|x| x.slot == Slot::Const).count() as u32
}

#[derive(Clone, Copy)]
struct Cell {
    cost: u32,
    counted: u32,
    mism: u32,
    gaps: u32,
    /// Empty values filled in and positions that agreed on their own (see `weak_evidence`).
    filled: u32,
    agreed: u32,
    /// `key=word` values that differ from the one the template held (see `Score::words`).
    words: u32,
}

const INF: u32 = u32::MAX;

/// Aligns a line of a different length with template `t`, allowing gaps over variable tokens only:
/// a variable of the template or of the line, or a token of the line right after a `<*>` of the
/// template that is not `wording` (see `tokenize::is_wording`). Why the last: a position that took
/// several values is a value, and a value may have several tokens (`Building <*> 2.4.0` takes
/// `Payments Client`, `Key <*> already exists` takes `(sku, tenant_id)=(SKU-7, 32)`). Lower-case
/// words are the program's own wording: `Failed password for <*> from` must not take `invalid
/// user bob`, another event. Tokens after a constant or a typed placeholder (`<NUM>`) stay out.
///
/// `wording[j]` says whether `line[j]` is wording, read once per line by the caller: each cell of
/// a token's band asks, for each shape aligned, and a token may be long (`long` mask off).
pub(crate) fn align(t: &[TTok], line: &[Tok], wording: &[bool]) -> Option<Score> {
    let (m, n) = (t.len(), line.len());
    if m.abs_diff(n) > MAX_GAPS {
        return None;
    }
    let w = n + 1;
    let empty = Cell {
        cost: 0,
        counted: 0,
        mism: 0,
        gaps: 0,
        filled: 0,
        agreed: 0,
        words: 0,
    };
    let mut dp = vec![Cell { cost: INF, ..empty }; (m + 1) * w];
    dp[0] = empty;
    for i in 0..=m {
        for j in 0..=n {
            let cur = dp[i * w + j];
            if cur.cost == INF || cur.gaps as usize > MAX_GAPS {
                continue;
            }
            let mut relax = |ni: usize, nj: usize, c: Cell| {
                let slot = &mut dp[ni * w + nj];
                if c.cost < slot.cost {
                    *slot = c;
                }
            };
            if i < m
                && j < n
                && let Some((c, mm)) = pair(&t[i], &line[j])
            {
                relax(
                    i + 1,
                    j + 1,
                    Cell {
                        cost: cur.cost + mm * 64,
                        counted: cur.counted + c,
                        mism: cur.mism + mm,
                        gaps: cur.gaps,
                        filled: cur.filled + u32::from(fills_blank(&t[i], &line[j])),
                        agreed: cur.agreed + u32::from(agrees(&t[i], &line[j])),
                        words: cur.words + u32::from(t[i].word != 0 && t[i].word != line[j].word),
                    },
                );
            }
            if i < m && t[i].slot != Slot::Const {
                relax(
                    i + 1,
                    j,
                    Cell {
                        cost: cur.cost + 1,
                        gaps: cur.gaps + 1,
                        ..cur
                    },
                );
            }
            // A token of the line after a `<*>` of the template: the wildcard holds a value of
            // several tokens (`Building <*> 2.4.0` and `Building Payments Client 2.4.0`).
            if j < n
                && (line[j].var
                    || (i > 0
                        && t[i - 1].slot == Slot::Wild
                        && !wording.get(j).copied().unwrap_or(true)))
            {
                relax(
                    i,
                    j + 1,
                    Cell {
                        cost: cur.cost + 1,
                        gaps: cur.gaps + 1,
                        ..cur
                    },
                );
            }
        }
    }
    let end = dp[m * w + n];
    (end.cost != INF
        && end.gaps as usize <= MAX_GAPS
        && !weak_evidence(end.filled, end.agreed, end.counted - end.mism))
    .then_some(Score {
        counted: end.counted,
        mism: end.mism,
        gaps: end.gaps,
        words: end.words,
        held: 0,
    })
}

/// Folds several same-pattern templates of different lengths into one display sequence: aligned
/// positions keep their text when they agree, everything else (including optional tokens) is `<*>`.
pub(crate) fn fold_display(acc: &[TTok], other: &[TTok]) -> Vec<TTok> {
    let (m, n) = (acc.len(), other.len());
    let w = n + 1;
    // cost, back-pointer (0 diag, 1 skip acc, 2 skip other)
    let mut cost = vec![INF; (m + 1) * w];
    let mut back = vec![0u8; (m + 1) * w];
    cost[0] = 0;
    let varish = |x: &TTok| x.slot != Slot::Const;
    // A token of `other` right after a `<*>` of `acc` is part of that wildcard's value (see
    // `align`): it costs nothing to skip, and shows as nothing of its own.
    let absorbed = |i: usize| i > 0 && acc[i - 1].slot == Slot::Wild;
    for i in 0..=m {
        for j in 0..=n {
            let cur = cost[i * w + j];
            if cur == INF {
                continue;
            }
            if i < m && j < n {
                let same = acc[i].slot == other[j].slot && acc[i].skel == other[j].skel;
                let both_var = varish(&acc[i]) && varish(&other[j]);
                let c = cur + if same || both_var { 0 } else { 4 };
                if c < cost[(i + 1) * w + j + 1] {
                    cost[(i + 1) * w + j + 1] = c;
                    back[(i + 1) * w + j + 1] = 0;
                }
            }
            if i < m {
                let c = cur + if varish(&acc[i]) { 1 } else { 16 };
                if c < cost[(i + 1) * w + j] {
                    cost[(i + 1) * w + j] = c;
                    back[(i + 1) * w + j] = 1;
                }
            }
            if j < n {
                let c = cur
                    + if absorbed(i) {
                        0
                    } else if varish(&other[j]) {
                        1
                    } else {
                        16
                    };
                if c < cost[i * w + j + 1] {
                    cost[i * w + j + 1] = c;
                    back[i * w + j + 1] = 2;
                }
            }
        }
    }
    let mut out = Vec::with_capacity(m.max(n));
    let (mut i, mut j) = (m, n);
    while i > 0 || j > 0 {
        match back[i * w + j] {
            0 if i > 0 && j > 0 => {
                let same =
                    acc[i - 1].slot == other[j - 1].slot && acc[i - 1].skel == other[j - 1].skel;
                out.push(if same {
                    acc[i - 1].clone()
                } else {
                    TTok::wild()
                });
                i -= 1;
                j -= 1;
            }
            1 if i > 0 => {
                out.push(TTok::wild());
                i -= 1;
            }
            _ if j > 0 => {
                if !absorbed(i) {
                    out.push(TTok::wild());
                }
                j -= 1;
            }
            _ => {
                out.push(TTok::wild());
                i -= 1;
            }
        }
    }
    out.reverse();
    out
}

/// Display string of a template: tokens joined by single spaces, wildcards as `<*>`.
pub(crate) fn render(t: &[TTok], out: &mut String) {
    out.clear();
    for (k, x) in t.iter().enumerate() {
        if k > 0 {
            out.push(' ');
        }
        out.push_str(&x.text);
    }
}
