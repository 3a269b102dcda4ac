//! Masking: replacing the variable parts of a token with typed placeholders, in one pass.
//!
//! This is the hot path of the miner, so there is **no regex** here (regexes are used only for the
//! user's own masks, applied once per line before tokenising, and only when configured). Each
//! whitespace token is scanned once by a tiny hand-written lexer:
//!
//! * The tokenizer ORs a byte-class table ([`CLASS`]) over the token while looking for its end; from
//!   that, [`Flags`] decide whether the token can contain anything maskable at all (a digit, `=`, an
//!   inner `:`, two `.`, `/`, `@`, `<`, `true`/`false`, ...). Most words can't, and cost nothing more.
//! * Otherwise, at every *word start* (start of token, or after a non-alphanumeric byte) the lexer tries
//!   the classifiers in a fixed order, compound shapes first so that `00:11:22:33:44:55` becomes one
//!   `<MAC>` rather than six numbers: UUID, MAC, dates, times, IPv4 with optional port, IPv6, `0x` hex, long hex
//!   ids, numbers (int, float, signed, versions, with units such as `12ms` or `4KB`), host:port, URLs,
//!   e-mails, paths, booleans, dotted names. The first byte and the flags rule most classifiers out
//!   with one comparison (a digit run ended by plain punctuation can only be a number). A classifier
//!   only matches a span that ends on a word boundary, so `jk2_init` or `ssh2` stay literal while
//!   `blk_-123` becomes `blk_<NUM>` and `node-12` becomes `node-<NUM>`.
//! * `key=value`: the value (up to `,` `;` `&`, an unbalanced closing bracket, or a quoted string) is
//!   replaced by `<*>` whatever its type, so `uid=0` and `uid=root` give the same token. `key:value`
//!   is *not* masked blindly (`pam_unix(sshd:auth)` is structure); its value is masked only when a
//!   classifier recognises it (`ret:false`, `index:3`, `action:android.intent.action.MAIN`).
//!
//! The result for a token is a [`TokInfo`]: whether anything was masked (only then is masked text
//! written), whether the token is a *variable* token (nothing but placeholders and punctuation, e.g.
//! `<NUM>`, `(<NUM>)`, `[<IP>]`), and if it is a single placeholder, which kind and how much
//! punctuation surrounds it (used by the multi-token joins in `tokenize.rs`).
//!
//! Trade-offs, chosen for robustness across unknown systems rather than for one log format:
//! * Dotted names are masked (`<FQN>`, fully qualified name) only with three or more parts (`java.io.IOException`,
//!   `ns1.example.com`, `android.intent.action.MAIN`): Java packages, host names and intents are
//!   values far more often than events. Two-part names (`NameSystem.addStoredBlock`, `mice.c`) are
//!   usually the event or a file name and stay literal.
//! * Words with digits that are not numbers (`ee0`, `tty2`, `e820`) stay literal; the miner treats them
//!   as likely variables for routing only.
//! * A host name needs a port to be masked (`host.example.com:8080` is `<HOSTPORT>`); a bare one is a
//!   dotted name (above) or stays literal.

use std::borrow::Cow;

use regex::{NoExpand, Regex};

/// Bit flags for the built-in mask classes, so enabled/disabled checks are one AND.
pub(crate) mod bits {
    pub const NUM: u16 = 1 << 0;
    pub const DUR: u16 = 1 << 1;
    pub const HEX: u16 = 1 << 2;
    pub const IP: u16 = 1 << 3;
    pub const MAC: u16 = 1 << 4;
    pub const UUID: u16 = 1 << 5;
    pub const URL: u16 = 1 << 6;
    pub const PATH: u16 = 1 << 7;
    pub const TIME: u16 = 1 << 8;
    pub const EMAIL: u16 = 1 << 9;
    pub const HOSTPORT: u16 = 1 << 10;
    pub const BOOL: u16 = 1 << 11;
    pub const KV: u16 = 1 << 12;
    pub const LONG: u16 = 1 << 13;
    pub const NAME: u16 = 1 << 14;
}

/// Names accepted in `disable_builtin_masks`, with the classes they switch off.
pub(crate) const BUILTIN_NAMES: &[(&str, u16)] = &[
    ("num", bits::NUM),
    ("duration", bits::DUR),
    ("hex", bits::HEX),
    ("ip", bits::IP),
    ("mac", bits::MAC),
    ("uuid", bits::UUID),
    ("url", bits::URL),
    ("path", bits::PATH),
    ("time", bits::TIME),
    ("email", bits::EMAIL),
    ("hostport", bits::HOSTPORT),
    ("bool", bits::BOOL),
    ("kv", bits::KV),
    ("long", bits::LONG),
    ("fqn", bits::NAME),
];

/// Tokens longer than this are replaced by `<LONG>` (blobs, base64, stack dumps glued together): they
/// are never template text, and keeping them would make pattern memory unbounded.
pub(crate) const LONG_TOKEN: usize = 256;

/// Kind of a placeholder; decides its display text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Num,
    Dur,
    Hex,
    Ip,
    Mac,
    Uuid,
    Url,
    Path,
    Time,
    Email,
    HostPort,
    Bool,
    Name,
    Value,
    Long,
    User,
}

impl Kind {
    /// Display text. User placeholders carry their own text (`<ORDER>`), hence "".
    pub(crate) fn placeholder(self) -> &'static str {
        match self {
            Kind::Num => "<NUM>",
            Kind::Dur => "<DUR>",
            Kind::Hex => "<HEX>",
            Kind::Ip => "<IP>",
            Kind::Mac => "<MAC>",
            Kind::Uuid => "<UUID>",
            Kind::Url => "<URL>",
            Kind::Path => "<PATH>",
            Kind::Time => "<TIME>",
            Kind::Email => "<EMAIL>",
            Kind::HostPort => "<HOSTPORT>",
            Kind::Bool => "<BOOL>",
            Kind::Name => "<FQN>",
            Kind::Value => "<*>",
            Kind::Long => "<LONG>",
            Kind::User => "",
        }
    }
}

/// The set of enabled built-in classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Builtins(u16);

impl Builtins {
    pub(crate) fn all() -> Self {
        Builtins(BUILTIN_NAMES.iter().fold(0, |a, (_, b)| a | b))
    }

    /// Removes the named classes; returns the first unknown name as the error.
    pub(crate) fn without<'a>(
        mut self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, String> {
        for name in names {
            let bit = BUILTIN_NAMES
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name.trim()))
                .map(|(_, b)| *b)
                .ok_or_else(|| name.to_string())?;
            self.0 &= !bit;
        }
        Ok(self)
    }

    #[inline]
    pub(crate) fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }
}

/// A token that is exactly one placeholder wrapped in punctuation (`(<NUM>)`): kind and the number of
/// punctuation bytes before and after the placeholder in the masked text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Single {
    pub kind: Kind,
    pub pre: u32,
    pub suf: u32,
}

/// What the lexer learned about one token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TokInfo {
    /// Only placeholders and punctuation: a variable token, matched by any wildcard.
    pub var: bool,
    /// Contains at least one placeholder.
    pub masked: bool,
    /// Literal text (outside placeholders) contains an ASCII digit.
    pub digit: bool,
    /// Contains `=`.
    pub eq: bool,
    /// Set when the token is a single placeholder plus punctuation.
    pub single: Option<Single>,
}

/// Built-in classes plus compiled user masks; shared, read-only state of masking.
#[derive(Debug, Clone)]
pub(crate) struct Masker {
    pub builtins: Builtins,
    user: Vec<(Regex, String)>,
}

impl Masker {
    pub(crate) fn new(builtins: Builtins, user: Vec<(Regex, String)>) -> Self {
        Masker { builtins, user }
    }

    /// Applies the user masks (whole line, in configuration order). Allocates only when one matches.
    pub(crate) fn apply_user<'a>(&self, line: &'a str) -> Cow<'a, str> {
        let mut cur = Cow::Borrowed(line);
        for (re, ph) in &self.user {
            if let Cow::Owned(s) = re.replace_all(&cur, NoExpand(ph)) {
                cur = Cow::Owned(s);
            }
        }
        cur
    }
}

#[inline]
pub(crate) fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b >= 0x80
}

#[inline]
fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

#[inline]
fn boundary(s: &[u8], j: usize) -> bool {
    j >= s.len() || !is_word(s[j])
}

#[inline]
fn at(s: &[u8], j: usize) -> u8 {
    s.get(j).copied().unwrap_or(0)
}

#[inline]
fn digits(s: &[u8], i: usize) -> usize {
    s.get(i..)
        .map_or(0, |r| r.iter().take_while(|b| b.is_ascii_digit()).count())
}

#[inline]
fn hexes(s: &[u8], i: usize) -> usize {
    s.get(i..)
        .map_or(0, |r| r.iter().take_while(|b| is_hex(**b)).count())
}

/// Cheap facts about a token, gathered in one pass, used to skip the lexer entirely for plain words
/// and to skip classifiers that cannot match.
#[derive(Clone, Copy, Default)]
struct Flags {
    digit: bool,
    colon: bool,
    /// A `:` followed by a digit somewhere (host:port, times, IPv6 need one).
    colon_digit: bool,
    /// At least two `.` (dotted names need them).
    dots: bool,
    at: bool,
    eq: bool,
    trigger: bool,
}

impl Flags {
    /// `acc` is the OR of [`CLASS`] over the token's bytes, computed by the tokenizer while it looked
    /// for the token's end, so plain words cost no second pass.
    fn of(tok: &[u8], acc: u8) -> Flags {
        let n = tok.len();
        let mut f = Flags {
            digit: acc & class::DIGIT != 0,
            ..Flags::default()
        };
        if acc & class::TRIG != 0 {
            f.at = tok.contains(&b'@');
            f.eq = tok.contains(&b'=');
            f.trigger = true;
        }
        if acc & class::COLON != 0 && n > 1 {
            f.colon = tok[..n - 1].contains(&b':');
            f.colon_digit = f.colon
                && tok
                    .windows(2)
                    .any(|w| w[0] == b':' && w[1].is_ascii_digit());
        }
        if acc & class::DOT != 0 {
            f.dots = tok
                .iter()
                .position(|c| *c == b'.')
                .is_some_and(|p| tok[p + 1..].contains(&b'.'));
        }
        f.trigger |= f.digit | f.colon | f.dots;
        if !f.trigger && n >= 4 {
            f.trigger = if acc & class::PUNCT == 0 {
                is_bool_word(tok)
            } else {
                tok.split(|c| !is_word(*c)).any(is_bool_word)
            };
        }
        f
    }
}

/// Byte classes for single-pass scanning (see [`CLASS`]).
pub(crate) mod class {
    /// ASCII whitespace: token separator.
    pub const WS: u8 = 1;
    /// `0-9`.
    pub const DIGIT: u8 = 2;
    /// Letters, digits and non-ASCII bytes.
    pub const WORD: u8 = 4;
    /// Any other non-whitespace byte.
    pub const PUNCT: u8 = 8;
    /// Bytes that can start or shape a mask: `= / \ < > ~ @`.
    pub const TRIG: u8 = 16;
    /// `:`.
    pub const COLON: u8 = 32;
    /// `.`.
    pub const DOT: u8 = 64;
    /// `"` and `'`.
    pub const QUOTE: u8 = 128;
}

/// Class bits of every byte value.
pub(crate) static CLASS: [u8; 256] = build_class();

const fn build_class() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = if c == b' ' || c == b'\t' || c == b'\n' || c == b'\r' || c == 0x0b || c == 0x0c {
            class::WS
        } else if c.is_ascii_digit() {
            class::DIGIT | class::WORD
        } else if c.is_ascii_alphabetic() || c >= 0x80 {
            class::WORD
        } else {
            match c {
                b'=' | b'/' | b'\\' | b'<' | b'>' | b'~' | b'@' => class::PUNCT | class::TRIG,
                b':' => class::PUNCT | class::COLON,
                b'.' => class::PUNCT | class::DOT,
                b'"' | b'\'' => class::PUNCT | class::QUOTE,
                _ => class::PUNCT,
            }
        };
        i += 1;
    }
    t
}

#[inline]
fn is_bool_word(w: &[u8]) -> bool {
    (w.len() == 4 && w.eq_ignore_ascii_case(b"true"))
        || (w.len() == 5 && w.eq_ignore_ascii_case(b"false"))
}

/// OR of the byte classes of `tok`.
pub(crate) fn class_of(tok: &[u8]) -> u8 {
    tok.iter().fold(0, |a, &c| a | CLASS[c as usize])
}

/// Masks one whitespace-free token (or a joined quoted `key="a b"` span). When something was masked
/// (`TokInfo::masked`) the masked text is appended to `out`; otherwise `out` is left alone and the
/// token's text is the token itself (no copy for the common plain word). `acc` is [`class_of`] the
/// token.
pub(crate) fn mask_token(tok: &[u8], acc: u8, b: Builtins, out: &mut Vec<u8>) -> TokInfo {
    if tok.len() > LONG_TOKEN && b.has(bits::LONG) {
        out.extend_from_slice(Kind::Long.placeholder().as_bytes());
        return TokInfo {
            var: true,
            masked: true,
            digit: false,
            eq: false,
            single: Some(Single {
                kind: Kind::Long,
                pre: 0,
                suf: 0,
            }),
        };
    }
    let fl = Flags::of(tok, acc);
    if !fl.trigger {
        return TokInfo::default();
    }
    let base = out.len();
    let mut lx = Lexer {
        s: tok,
        b,
        fl,
        out,
        n_ph: 0,
        lit: false,
        lit_digit: false,
        first: None,
    };
    lx.run();
    let (n_ph, lit, lit_digit, first) = (lx.n_ph, lx.lit, lx.lit_digit, lx.first);
    if n_ph == 0 {
        // Nothing masked: the text is the token itself.
        out.truncate(base);
        return TokInfo {
            digit: lit_digit,
            eq: fl.eq,
            ..TokInfo::default()
        };
    }
    let var = n_ph > 0 && !lit;
    let single = match first {
        Some((kind, start, len)) if var && n_ph == 1 => Some(Single {
            kind,
            pre: (start - base) as u32,
            suf: (out.len() - start - len) as u32,
        }),
        _ => None,
    };
    TokInfo {
        var,
        masked: n_ph > 0,
        digit: lit_digit,
        eq: fl.eq,
        single,
    }
}

struct Lexer<'a> {
    s: &'a [u8],
    b: Builtins,
    fl: Flags,
    out: &'a mut Vec<u8>,
    n_ph: u32,
    /// Emitted literal alphanumeric text (outside placeholders).
    lit: bool,
    /// ... and some of it was a digit.
    lit_digit: bool,
    /// First placeholder: kind, start offset in `out`, length.
    first: Option<(Kind, usize, usize)>,
}

impl Lexer<'_> {
    fn emit(&mut self, kind: Kind, src: &[u8]) {
        let start = self.out.len();
        if kind == Kind::User {
            self.out.extend_from_slice(src);
        } else {
            self.out.extend_from_slice(kind.placeholder().as_bytes());
        }
        self.n_ph += 1;
        if self.first.is_none() {
            self.first = Some((kind, start, self.out.len() - start));
        }
    }

    fn run(&mut self) {
        let s = self.s;
        let n = s.len();
        let mut i = 0;
        while i < n {
            let c = s[i];
            if c == b'<'
                && let Some(e) = user_placeholder(s, i)
            {
                self.emit(Kind::User, &s[i..e]);
                i = e;
                continue;
            }
            if (i == 0 || !is_word(s[i - 1]))
                && let Some((e, kind)) = self.match_at(i)
            {
                self.emit(kind, &s[i..e]);
                i = e;
                continue;
            }
            if c == b'='
                && self.b.has(bits::KV)
                && (i == 0 || !matches!(s[i - 1], b'=' | b'!' | b'<' | b'>'))
                && i + 1 < n
                && s[i + 1] != b'='
            {
                self.out.push(b'=');
                let e = value_end(s, i + 1);
                if e > i + 1 {
                    self.emit(Kind::Value, &s[i + 1..e]);
                }
                i = e;
                continue;
            }
            if is_word(c) {
                let mut j = i + 1;
                while j < n && is_word(s[j]) {
                    j += 1;
                }
                self.out.extend_from_slice(&s[i..j]);
                self.lit = true;
                self.lit_digit |= s[i..j].iter().any(u8::is_ascii_digit);
                i = j;
                continue;
            }
            self.out.push(c);
            i += 1;
        }
    }

    /// Tries the classifiers at word start `i`, compound shapes first. The first byte and the token's
    /// [`Flags`] select which classifiers can possibly match, so most attempts cost one comparison.
    fn match_at(&self, i: usize) -> Option<(usize, Kind)> {
        let (s, b, fl, c) = (self.s, self.b, self.fl, self.s[i]);
        // Runs classifier `f` if its class is enabled and `cond` holds.
        let run = |cond: bool, bit: u16, kind: Kind, f: fn(&[u8], usize) -> Option<usize>| {
            if cond && b.has(bit) {
                f(s, i).map(|e| (e, kind))
            } else {
                None
            }
        };
        if c.is_ascii_digit() {
            // A digit run ended by plain punctuation ("123", "123,", "42)") can only be a number:
            // every compound shape continues with a letter, `.`, `:`, `-` or `/`.
            let nx = at(s, i + digits(s, i));
            if !is_word(nx) && !matches!(nx, b'.' | b':' | b'-' | b'/') {
                return self.number(i);
            }
            return run(true, bits::UUID, Kind::Uuid, m_uuid)
                .or_else(|| run(true, bits::MAC, Kind::Mac, m_mac))
                .or_else(|| run(true, bits::TIME, Kind::Time, m_date))
                .or_else(|| run(true, bits::TIME, Kind::Time, m_time))
                .or_else(|| run(true, bits::IP, Kind::Ip, m_ipv4))
                .or_else(|| run(fl.colon, bits::IP, Kind::Ip, m_ipv6))
                .or_else(|| run(true, bits::HEX, Kind::Hex, m_hex0x))
                .or_else(|| run(true, bits::HEX, Kind::Hex, m_hexid))
                .or_else(|| self.number(i))
                .or_else(|| run(fl.colon_digit, bits::HOSTPORT, Kind::HostPort, m_hostport));
        }
        if c.is_ascii_alphabetic() {
            let hexy = fl.digit && is_hex(c);
            let tf = c | 0x20 == b't' || c | 0x20 == b'f';
            return run(fl.colon, bits::URL, Kind::Url, m_url)
                .or_else(|| run(fl.at, bits::EMAIL, Kind::Email, m_email))
                .or_else(|| run(hexy, bits::UUID, Kind::Uuid, m_uuid))
                .or_else(|| run(hexy, bits::MAC, Kind::Mac, m_mac))
                .or_else(|| run(hexy && fl.colon, bits::IP, Kind::Ip, m_ipv6))
                .or_else(|| run(hexy, bits::HEX, Kind::Hex, m_hexid))
                .or_else(|| run(fl.colon_digit, bits::HOSTPORT, Kind::HostPort, m_hostport))
                .or_else(|| run(fl.colon, bits::PATH, Kind::Path, m_winpath))
                .or_else(|| run(tf, bits::BOOL, Kind::Bool, m_bool))
                .or_else(|| run(fl.dots, bits::NAME, Kind::Name, m_name));
        }
        match c {
            b'/' | b'~' | b'.' => run(true, bits::PATH, Kind::Path, m_path),
            b'-' | b'+' | b'<' | b'>' => self.number(i),
            _ => None,
        }
    }

    fn number(&self, i: usize) -> Option<(usize, Kind)> {
        let (e, kind) = m_number(self.s, i)?;
        let kind = match kind {
            Kind::Dur if self.b.has(bits::DUR) => Kind::Dur,
            _ if self.b.has(bits::NUM) => Kind::Num,
            _ => return None,
        };
        Some((e, kind))
    }
}

/// `<NAME>` produced by a user mask (or already present in the text).
fn user_placeholder(s: &[u8], i: usize) -> Option<usize> {
    if !at(s, i + 1).is_ascii_uppercase() {
        return None;
    }
    let mut j = i + 2;
    while j < s.len() && (s[j].is_ascii_uppercase() || s[j].is_ascii_digit() || s[j] == b'_') {
        j += 1;
    }
    (at(s, j) == b'>').then_some(j + 1)
}

/// End of a `key=value` value starting at `start`.
fn value_end(s: &[u8], start: usize) -> usize {
    let n = s.len();
    let q = s[start];
    if q == b'"' || q == b'\'' {
        return s[start + 1..]
            .iter()
            .position(|&c| c == q)
            .map_or(n, |p| start + 2 + p);
    }
    let mut depth = 0u32;
    let mut j = start;
    while j < n {
        match s[j] {
            b',' | b';' | b'&' if depth == 0 => break,
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            }
            _ => {}
        }
        j += 1;
    }
    j
}

fn m_uuid(s: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    for (k, g) in [8usize, 4, 4, 4, 12].into_iter().enumerate() {
        if hexes(s, j) != g {
            return None;
        }
        j += g;
        if k < 4 {
            if at(s, j) != b'-' {
                return None;
            }
            j += 1;
        }
    }
    boundary(s, j).then_some(j)
}

fn m_mac(s: &[u8], i: usize) -> Option<usize> {
    let sep = at(s, i + 2);
    if sep != b':' && sep != b'-' {
        return None;
    }
    let mut j = i;
    for k in 0..6 {
        if hexes(s, j) != 2 {
            return None;
        }
        j += 2;
        if k < 5 {
            if at(s, j) != sep {
                return None;
            }
            j += 1;
        }
    }
    boundary(s, j).then_some(j)
}

const MONTHS: [&[u8]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];

/// Dates: `2015-07-29`, `2015/07/29`, `07/29/2015`, `29.07.2015`, `17/Jun/2005`, each optionally with a
/// time glued on (`T12:00:00Z`, `:07:07:00`).
fn m_date(s: &[u8], i: usize) -> Option<usize> {
    let d1 = digits(s, i);
    let mut j;
    if d1 == 4 {
        let sep = at(s, i + 4);
        if !matches!(sep, b'-' | b'/' | b'.') {
            return None;
        }
        let d2 = digits(s, i + 5);
        if !(1..=2).contains(&d2) || at(s, i + 5 + d2) != sep {
            return None;
        }
        j = i + 6 + d2;
        let d3 = digits(s, j);
        if !(1..=2).contains(&d3) {
            return None;
        }
        j += d3;
    } else if (1..=2).contains(&d1) {
        let sep = at(s, i + d1);
        if !matches!(sep, b'-' | b'/' | b'.') {
            return None;
        }
        j = i + d1 + 1;
        let d2 = digits(s, j);
        if (1..=2).contains(&d2) {
            j += d2;
        } else if s.len() >= j + 3 && is_month(&s[j..j + 3]) {
            j += 3;
        } else {
            return None;
        }
        if at(s, j) != sep {
            return None;
        }
        j += 1;
        if digits(s, j) != 4 {
            return None;
        }
        j += 4;
    } else {
        return None;
    }
    // More dotted/dashed numbers follow: a version (6.1.7601.23505) or a counter, not a date.
    if matches!(at(s, j), b'.' | b'-' | b'/') && at(s, j + 1).is_ascii_digit() {
        return None;
    }
    // Glued time: 2015-07-29T17:41:44Z or 17/Jun/2005:07:07:00
    if matches!(at(s, j), b'T' | b':' | b'_')
        && at(s, j + 1).is_ascii_digit()
        && let Some(e) = m_time(s, j + 1)
    {
        j = e;
    }
    boundary(s, j).then_some(j)
}

fn is_month(w: &[u8]) -> bool {
    w.len() == 3 && MONTHS.iter().any(|m| w.eq_ignore_ascii_case(m))
}

/// Times: `7:05`, `17:41:44`, `17:41:44,747`, `17:41:44.123456Z`, `12:00:00+02:00`.
fn m_time(s: &[u8], i: usize) -> Option<usize> {
    let d1 = digits(s, i);
    if !(1..=2).contains(&d1) || at(s, i + d1) != b':' || digits(s, i + d1 + 1) != 2 {
        return None;
    }
    let mut j = i + d1 + 3;
    if at(s, j) == b':' && digits(s, j + 1) == 2 {
        j += 3;
        if matches!(at(s, j), b'.' | b',') {
            let f = digits(s, j + 1);
            if (1..=9).contains(&f) {
                j += 1 + f;
            }
        }
    }
    match at(s, j) {
        b'Z' if boundary(s, j + 1) => j += 1,
        b'+' | b'-' => {
            if digits(s, j + 1) == 4 {
                j += 5;
            } else if digits(s, j + 1) == 2 && at(s, j + 3) == b':' && digits(s, j + 4) == 2 {
                j += 6;
            }
        }
        _ => {}
    }
    // 12:34:56:78 or 1:2:3::4 look like something else (IPv6, counters): not a time.
    if at(s, j) == b':' && is_hex(at(s, j + 1)) {
        return None;
    }
    boundary(s, j).then_some(j)
}

/// IPv4 with optional `:port`.
fn m_ipv4(s: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    for k in 0..4 {
        let d = digits(s, j);
        if d == 0 || d > 3 {
            return None;
        }
        let v = s[j..j + d]
            .iter()
            .fold(0u32, |a, c| a * 10 + u32::from(c - b'0'));
        if v > 255 {
            return None;
        }
        j += d;
        if k < 3 {
            if at(s, j) != b'.' {
                return None;
            }
            j += 1;
        }
    }
    if at(s, j) == b'.' && at(s, j + 1).is_ascii_digit() {
        return None;
    }
    if at(s, j) == b':' {
        let d = digits(s, j + 1);
        if (1..=5).contains(&d) && boundary(s, j + 1 + d) {
            j += 1 + d;
        }
    }
    boundary(s, j).then_some(j)
}

/// IPv6: hex groups separated by `:`, eight groups or one `::`, at least one digit.
fn m_ipv6(s: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    while j < s.len() && (is_hex(s[j]) || s[j] == b':') {
        j += 1;
    }
    let mut span = &s[i..j];
    // A single trailing ':' is punctuation ("fe80::1:"), "::" at the end is part of the address.
    if span.ends_with(b":") && !span.ends_with(b"::") {
        span = &span[..span.len() - 1];
        j -= 1;
    }
    let colons = span.iter().filter(|&&c| c == b':').count();
    if colons < 2 || !span.iter().any(u8::is_ascii_digit) {
        return None;
    }
    let doubles = span.windows(2).filter(|w| w == b"::").count();
    if doubles > 1 || span.windows(3).any(|w| w == b":::") {
        return None;
    }
    let groups = span.split(|&c| c == b':').filter(|g| !g.is_empty());
    let mut count = 0;
    for g in groups {
        if g.len() > 4 {
            return None;
        }
        count += 1;
    }
    let ok = if doubles == 1 { count <= 7 } else { count == 8 };
    (ok && boundary(s, j)).then_some(j)
}

fn m_hex0x(s: &[u8], i: usize) -> Option<usize> {
    if s[i] != b'0' || !matches!(at(s, i + 1), b'x' | b'X') {
        return None;
    }
    let h = hexes(s, i + 2);
    (h > 0 && boundary(s, i + 2 + h)).then_some(i + 2 + h)
}

/// Long hex ids: >= 6 hex digits mixing digits and letters (`9f4ef63`, `4b7ee6c3`), or >= 16 letters.
/// All-digit runs are numbers, whatever their length, so one variable does not flip between types.
fn m_hexid(s: &[u8], i: usize) -> Option<usize> {
    let h = hexes(s, i);
    if h < 6 || !boundary(s, i + h) {
        return None;
    }
    let w = &s[i..i + h];
    let letters = w.iter().any(u8::is_ascii_alphabetic);
    let mixed = letters && w.iter().any(u8::is_ascii_digit);
    (mixed || (letters && h >= 16)).then_some(i + h)
}

/// Numbers: optional comparator (`<1`) and sign, digits, `.digits` groups (floats, versions),
/// exponent, and an optional unit (`12ms` is a duration, `4KB`/`50%` a number).
fn m_number(s: &[u8], i: usize) -> Option<(usize, Kind)> {
    let mut j = i;
    if matches!(at(s, j), b'<' | b'>') {
        j += 1;
        if at(s, j) == b'=' {
            j += 1;
        }
    }
    if matches!(at(s, j), b'+' | b'-') {
        j += 1;
    }
    let d = digits(s, j);
    if d == 0 {
        return None;
    }
    j += d;
    while at(s, j) == b'.' && at(s, j + 1).is_ascii_digit() {
        j += 1 + digits(s, j + 1);
    }
    if matches!(at(s, j), b'e' | b'E') {
        let mut k = j + 1;
        if matches!(at(s, k), b'+' | b'-') {
            k += 1;
        }
        let e = digits(s, k);
        if e > 0 && boundary(s, k + e) {
            return Some((k + e, Kind::Num));
        }
    }
    let u = s[j..]
        .iter()
        .take_while(|c| c.is_ascii_alphabetic() || **c == b'%')
        .count();
    if u > 0 {
        let kind = unit_kind(&s[j..j + u])?;
        let e = j + u;
        return boundary(s, e).then_some((e, kind));
    }
    boundary(s, j).then_some((j, Kind::Num))
}

/// Units that may follow a number, glued (`12ms`) or as the next token (`1.16 KB`). Time units make a
/// duration, the rest (sizes, rates, percent) a number.
pub(crate) fn unit_kind(u: &[u8]) -> Option<Kind> {
    const TIME: &[&[u8]] = &[
        b"ns", b"us", b"ms", b"s", b"sec", b"secs", b"min", b"mins", b"h", b"hr", b"hrs",
    ];
    const OTHER: &[&[u8]] = &[
        b"b", b"k", b"kb", b"kib", b"m", b"mb", b"mib", b"g", b"gb", b"gib", b"t", b"tb", b"tib",
        b"%", b"hz", b"khz", b"mhz", b"ghz", b"bps", b"kbps", b"mbps", b"gbps",
    ];
    if u.len() > 4 {
        return None;
    }
    if TIME.iter().any(|t| u.eq_ignore_ascii_case(t)) {
        Some(Kind::Dur)
    } else if OTHER.iter().any(|t| u.eq_ignore_ascii_case(t)) {
        Some(Kind::Num)
    } else {
        None
    }
}

/// `host.name:port` (needs a dot and a top-level label of two or more letters, or `localhost`). A
/// camelCase label (`state.clipTop:0`, `Foo.doWork:12`) is a field or a stack frame, and a name glued
/// to a word by `_` (`ib_sm_sweep.c:1831`) is a file name, not a host name.
fn m_hostport(s: &[u8], i: usize) -> Option<usize> {
    if i > 0 && s[i - 1] == b'_' {
        return None;
    }
    let mut j = i;
    let mut last;
    let mut dots = 0;
    let mut letter = false;
    loop {
        let l = s[j..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'-')
            .count();
        if l == 0 {
            return None;
        }
        let label = &s[j..j + l];
        if label
            .windows(2)
            .any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase())
        {
            return None;
        }
        letter |= label.iter().any(u8::is_ascii_alphabetic);
        last = j;
        j += l;
        if at(s, j) == b'.' && at(s, j + 1).is_ascii_alphanumeric() {
            dots += 1;
            j += 1;
            continue;
        }
        break;
    }
    let tld = &s[last..j];
    let tld_ok = tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic);
    let host_ok = (dots > 0 && tld_ok) || s[i..j].eq_ignore_ascii_case(b"localhost");
    if !letter || !host_ok || at(s, j) != b':' {
        return None;
    }
    let d = digits(s, j + 1);
    ((1..=5).contains(&d) && boundary(s, j + 1 + d)).then_some(j + 1 + d)
}

const TRAILING: &[u8] = b".,;:)]}\"'>!?";

fn trim_trailing(s: &[u8], start: usize, mut j: usize) -> usize {
    while j > start + 1 && TRAILING.contains(&s[j - 1]) {
        j -= 1;
    }
    j
}

fn m_url(s: &[u8], i: usize) -> Option<usize> {
    let scheme = s[i..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'.' | b'-'))
        .count();
    if scheme > 16 || !s[i + scheme..].starts_with(b"://") {
        return None;
    }
    let body = i + scheme + 3;
    if body >= s.len() {
        return None;
    }
    let mut j = body;
    while j < s.len() && !matches!(s[j], b'"' | b'\'' | b'<' | b'>') && !s[j].is_ascii_whitespace()
    {
        j += 1;
    }
    let j = trim_trailing(s, body, j);
    (j > body).then_some(j)
}

fn m_email(s: &[u8], i: usize) -> Option<usize> {
    let local = s[i..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-'))
        .count();
    let mut j = i + local;
    if local == 0 || at(s, j) != b'@' {
        return None;
    }
    j += 1;
    let dom_start = j;
    while j < s.len() && (s[j].is_ascii_alphanumeric() || s[j] == b'-' || s[j] == b'.') {
        j += 1;
    }
    while j > dom_start && s[j - 1] == b'.' {
        j -= 1;
    }
    let dom = &s[dom_start..j];
    let last = dom.rsplit(|&c| c == b'.').next().unwrap_or_default();
    let ok = dom.contains(&b'.') && last.len() >= 2 && last.iter().all(u8::is_ascii_alphabetic);
    (ok && boundary(s, j)).then_some(j)
}

/// Dotted names with at least three parts: Java packages and classes (`com.example.app.Main`), host
/// names (`ns1.example.com`), Android intents. Two-part names (`NameSystem.addStoredBlock`,
/// `mice.c`) are usually the event or a file and stay literal.
fn m_name(s: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    let mut dots = 0;
    loop {
        // Every part starts like an identifier: `v6.1.7601` is a version, not a name.
        if !(at(s, j).is_ascii_alphabetic() || matches!(at(s, j), b'_' | b'$')) {
            return None;
        }
        let l = s[j..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_' || **c == b'$')
            .count();
        j += l;
        if at(s, j) == b'.' && (at(s, j + 1).is_ascii_alphanumeric() || at(s, j + 1) == b'_') {
            dots += 1;
            j += 1;
            continue;
        }
        break;
    }
    (dots >= 2 && boundary(s, j)).then_some(j)
}

fn m_bool(s: &[u8], i: usize) -> Option<usize> {
    let w = s[i..].iter().take_while(|c| is_word(**c)).count();
    is_bool_word(&s[i..i + w]).then_some(i + w)
}

/// `C:\Windows\...`
fn m_winpath(s: &[u8], i: usize) -> Option<usize> {
    if !(s[i].is_ascii_alphabetic() && at(s, i + 1) == b':' && at(s, i + 2) == b'\\') {
        return None;
    }
    let mut j = i + 3;
    while j < s.len()
        && !matches!(
            s[j],
            b'"' | b'\'' | b',' | b';' | b'(' | b')' | b'[' | b']' | b'<' | b'>'
        )
    {
        j += 1;
    }
    Some(trim_trailing(s, i + 2, j))
}

/// Unix-style paths: `/a/b`, `/name`, `~/x`, `./x`, `../x`. A single segment starting with a digit
/// (`/10.0.0.1:80`, `/24`) is not a path, so IPs and ratios keep their own classes.
fn m_path(s: &[u8], i: usize) -> Option<usize> {
    let c = s[i];
    let ok_start = match c {
        b'/' => {
            let n = at(s, i + 1);
            n != 0 && n != b'/' && !n.is_ascii_whitespace()
        }
        b'~' => at(s, i + 1) == b'/',
        b'.' => s[i..].starts_with(b"./") || s[i..].starts_with(b"../"),
        _ => false,
    };
    if !ok_start {
        return None;
    }
    let mut j = i;
    while j < s.len()
        && !matches!(
            s[j],
            b'"' | b'\'' | b',' | b';' | b'(' | b')' | b'[' | b']' | b'{' | b'}' | b'<' | b'>'
        )
    {
        j += 1;
    }
    let j = trim_trailing(s, i, j);
    let body = &s[i..j];
    if c == b'/' {
        let slashes = body.iter().filter(|&&b| b == b'/').count();
        let first = at(body, 1);
        if slashes == 1
            && (first.is_ascii_digit() || !is_word(first) && first != b'.' && first != b'_')
        {
            return None;
        }
    }
    (j > i + 1).then_some(j)
}

/// Month and weekday names (`Jun`, `June`, `JUN`, `Fri`, `Sept`), for date runs spread over several
/// tokens. Only Capitalised or UPPER forms: "may" and "sun" in lower case are ordinary words.
pub(crate) fn is_month_or_weekday(w: &[u8]) -> bool {
    if w.len() < 3 || w.len() > 9 || !w[0].is_ascii_uppercase() {
        return false;
    }
    let rest_upper = w[1..].iter().all(u8::is_ascii_uppercase);
    let rest_lower = w[1..].iter().all(u8::is_ascii_lowercase);
    if !(rest_upper || rest_lower) {
        return false;
    }
    let full: &[u8] = match [w[0] | 0x20, w[1] | 0x20, w[2] | 0x20] {
        [b'j', b'a', b'n'] => b"january",
        [b'f', b'e', b'b'] => b"february",
        [b'm', b'a', b'r'] => b"march",
        [b'a', b'p', b'r'] => b"april",
        [b'm', b'a', b'y'] => b"may",
        [b'j', b'u', b'n'] => b"june",
        [b'j', b'u', b'l'] => b"july",
        [b'a', b'u', b'g'] => b"august",
        [b's', b'e', b'p'] => b"september",
        [b'o', b'c', b't'] => b"october",
        [b'n', b'o', b'v'] => b"november",
        [b'd', b'e', b'c'] => b"december",
        [b'm', b'o', b'n'] => b"monday",
        [b't', b'u', b'e'] => b"tuesday",
        [b'w', b'e', b'd'] => b"wednesday",
        [b't', b'h', b'u'] => b"thursday",
        [b'f', b'r', b'i'] => b"friday",
        [b's', b'a', b't'] => b"saturday",
        [b's', b'u', b'n'] => b"sunday",
        _ => return false,
    };
    // "Jun", "Sept", "Thurs" (abbreviations are prefixes) or the full name.
    w.len() == 3
        || (w.len() <= full.len()
            && w.eq_ignore_ascii_case(&full[..w.len()])
            && (w.len() <= 5 || w.len() == full.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(tok: &str) -> (String, bool) {
        let mut out = Vec::new();
        let info = mask_token(
            tok.as_bytes(),
            class_of(tok.as_bytes()),
            Builtins::all(),
            &mut out,
        );
        if !info.masked {
            assert!(out.is_empty());
            return (tok.to_string(), false);
        }
        (String::from_utf8(out).unwrap(), info.var)
    }

    fn text(tok: &str) -> String {
        m(tok).0
    }

    #[test]
    fn numbers_in_all_shapes_are_masked() {
        assert_eq!(m("12"), ("<NUM>".into(), true));
        assert_eq!(text("-3.5"), "<NUM>");
        assert_eq!(text("1.16"), "<NUM>");
        assert_eq!(text("6.1.7601.23505"), "<NUM>");
        assert_eq!(text("4KB"), "<NUM>");
        assert_eq!(text("50%"), "<NUM>");
        assert_eq!(text("12ms"), "<DUR>");
        assert_eq!(text("<1"), "<NUM>");
        assert_eq!(text("2809)"), "<NUM>)");
        assert_eq!(text("1e-5"), "<NUM>");
        assert_eq!(text("0x1fffffffe"), "<HEX>");
        assert_eq!(text("9f4ef63"), "<HEX>");
    }

    #[test]
    fn digits_inside_words_stay_literal_but_separated_numbers_are_masked() {
        assert_eq!(m("jk2_init()"), ("jk2_init()".into(), false));
        assert_eq!(text("ssh2"), "ssh2");
        assert_eq!(text("e820"), "e820");
        assert_eq!(text("blk_-6952295868487656571"), "blk_<NUM>");
        assert_eq!(m("node-246"), ("node-<NUM>".into(), false));
        assert_eq!(text("2nd"), "2nd");
        assert_eq!(text("HTTP/1.1"), "HTTP/<NUM>");
    }

    #[test]
    fn network_addresses_are_masked_whole() {
        assert_eq!(text("10.250.19.102:50010"), "<IP>");
        assert_eq!(text("/10.250.19.102:50010"), "/<IP>");
        assert_eq!(text("[173.234.31.186]"), "[<IP>]");
        assert_eq!(text("fe80::1ff:fe23:4567:890a"), "<IP>");
        assert_eq!(text("0:0:0:0:0:0:0:1"), "<IP>");
        assert_eq!(text("00:11:22:33:44:55"), "<MAC>");
        assert_eq!(text("proxy.cse.cuhk.edu.hk:5070"), "<HOSTPORT>");
        assert_eq!(text("localhost:8080"), "<HOSTPORT>");
        assert_eq!(text("http://example.com/a?b=1,"), "<URL>,");
        assert_eq!(text("bob@example.com"), "<EMAIL>");
        assert_eq!(text("10.250.19.102:50010:Got"), "<IP>:Got");
    }

    #[test]
    fn ids_dates_times_and_paths_are_masked() {
        assert_eq!(text("123e4567-e89b-12d3-a456-426614174000"), "<UUID>");
        assert_eq!(
            text("req-123e4567-e89b-12d3-a456-426614174000"),
            "req-<UUID>"
        );
        assert_eq!(text("2015-07-29"), "<TIME>");
        assert_eq!(text("2015-07-29T17:41:44.747Z"), "<TIME>");
        assert_eq!(text("17:41:44,747"), "<TIME>");
        assert_eq!(text("00:02"), "<TIME>");
        assert_eq!(text("[17/Jun/2005:07:07:00"), "[<TIME>");
        assert_eq!(text("/user/root/rand/part-00590."), "<PATH>.");
        assert_eq!(text("Path:/hbase/a"), "Path:<PATH>");
        assert_eq!(text("C:\\Windows\\x.dll"), "<PATH>");
        assert_eq!(text("'/udev/tty2'"), "'<PATH>'");
    }

    #[test]
    fn key_values_mask_the_value_whatever_its_type() {
        assert_eq!(text("uid=0"), "uid=<*>");
        assert_eq!(text("user=root"), "user=<*>");
        assert_eq!(text("ruser="), "ruser=");
        assert_eq!(text("a=1,b=0x2,c=true"), "a=<*>,b=<*>,c=<*>");
        assert_eq!(text("Surface(name=com.a/b.C)"), "Surface(name=<*>)");
        assert_eq!(text("tag=\"View Lock\","), "tag=<*>,");
        assert_eq!(text("a==b"), "a==b");
        // key:value only when the value is recognisably variable
        assert_eq!(text("ret:false"), "ret:<BOOL>");
        assert_eq!(text("index:3,"), "index:<NUM>,");
        assert_eq!(text("pam_unix(sshd:auth):"), "pam_unix(sshd:auth):");
        assert_eq!(text("setLightsOn(true)"), "setLightsOn(<BOOL>)");
    }

    #[test]
    fn plain_words_are_untouched() {
        for w in [
            "hello",
            "Failed",
            "error:",
            "(has",
            "extras)",
            "****",
            "-",
            "NameSystem.delete:",
            "sure",
            "falsey",
        ] {
            assert_eq!(m(w), (w.to_string(), false), "{w}");
        }
    }

    #[test]
    fn dotted_names_with_three_parts_are_masked() {
        assert_eq!(text("java.io.IOException:"), "<FQN>:");
        assert_eq!(
            text("action:android.intent.action.SCREEN_ON"),
            "action:<FQN>"
        );
        assert_eq!(text("ns.marryaldkfaczcz.com"), "<FQN>");
        assert_eq!(
            text("NameSystem.addStoredBlock:"),
            "NameSystem.addStoredBlock:"
        );
        assert_eq!(text("mice.c(1234)]:"), "mice.c(<NUM>)]:");
    }

    #[test]
    fn user_placeholders_are_variables() {
        assert_eq!(m("<ORDER>"), ("<ORDER>".into(), true));
        assert_eq!(m("id:<ORDER>,"), ("id:<ORDER>,".into(), false));
        assert_eq!(m("<ok>"), ("<ok>".into(), false));
    }

    #[test]
    fn disabled_builtins_are_not_applied() {
        let b = Builtins::all().without(["num", "kv"]).unwrap();
        let mut out = Vec::new();
        let info = mask_token(b"uid=42", class_of(b"uid=42"), b, &mut out);
        assert!(!info.masked && out.is_empty(), "unchanged");
        out.clear();
        mask_token(b"10.0.0.1", class_of(b"10.0.0.1"), b, &mut out);
        assert_eq!(out, b"<IP>");
        assert_eq!(Builtins::all().without(["nope"]), Err("nope".to_string()));
    }

    #[test]
    fn very_long_tokens_become_long() {
        let t = "x".repeat(100_000);
        assert_eq!(m(&t), ("<LONG>".into(), true));
    }
}
