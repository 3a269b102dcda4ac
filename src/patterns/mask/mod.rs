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
//!   e-mails, paths (absolute, Windows, and relative ones of three or more segments), booleans,
//!   dotted names. The first byte and the flags rule most classifiers out
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

use super::spans::is_message_key;

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
    /// No class: a token that must stay as written (an exception class, see `tokenize`).
    pub(crate) fn none() -> Self {
        Builtins(0)
    }

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

    /// The set as bits, to fingerprint what tokenises lines (see `Miner::tokenizer_fingerprint`).
    pub(crate) fn bits(self) -> u16 {
        self.0
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
    /// Contains a byte that is neither a letter, a digit nor non-ASCII. Set by the tokenizer,
    /// which knows the token's byte classes, so plain words skip the checks that need
    /// punctuation.
    pub punct: bool,
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
    /// A `.` and an `=` (a dotted key, `java.home=x`, is a name too).
    key_path: bool,
    at: bool,
    eq: bool,
    /// A `/` somewhere (relative paths need one).
    slash: bool,
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
            f.slash = tok.contains(&b'/');
            f.trigger = true;
        }
        if acc & class::COLON != 0 && n > 1 {
            f.colon = tok[..n - 1].contains(&b':');
            f.colon_digit = f.colon
                && tok
                    .windows(2)
                    .any(|w| w[0] == b':' && w[1].is_ascii_digit());
        }
        f.key_path = f.eq && acc & class::DOT != 0;
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

/// Whether `key` can name a `key=value` field: letters, digits, `_`, `.` and `-` (`user`,
/// `db.pool-size`). Shared by the mask and `tokenize::is_keyed`, so that a token the mask reads
/// as a key is one the tokenizer compares as a key.
pub(crate) fn is_key_name(key: &[u8]) -> bool {
    key.iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Where the `=` of `tok` is when `tok` is `key=value` with a name for its key (`err="…"`,
/// `rule=…`), not a message key (see `spans::is_message_key`). Such a token, however long its
/// value, keeps its key: `err=<*>`. Why: as one `<LONG>` it lost its key, and a line with a long
/// `err=` value was another event than the same line with a short one.
fn key_end(tok: &[u8]) -> Option<usize> {
    let eq = tok.iter().position(|&c| c == b'=')?;
    (eq > 0
        && is_key_name(&tok[..eq])
        && !is_message_key(&tok[..eq])
        // A value follows, as the kv mask reads one (`Lexer::run`): base64's padding (`…==`,
        // `…=`) ends a token in `=` with no value, and its 300 bytes were kept as a "key".
        && tok.get(eq + 1).is_some_and(|&c| c != b'='))
    .then_some(eq)
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
    if tok.len() > LONG_TOKEN
        && b.has(bits::LONG)
        && let Some(eq) = key_end(tok).filter(|_| b.has(bits::KV))
    {
        // `err="…"` with a long value: its key and one value, `err=<*>`, not a literal rest.
        out.extend_from_slice(&tok[..=eq]);
        out.extend_from_slice(Kind::Value.placeholder().as_bytes());
        return TokInfo {
            var: false,
            masked: true,
            digit: tok[..eq].iter().any(u8::is_ascii_digit),
            eq: true,
            punct: false,
            single: None,
        };
    }
    if tok.len() > LONG_TOKEN && b.has(bits::LONG) {
        out.extend_from_slice(Kind::Long.placeholder().as_bytes());
        return TokInfo {
            var: true,
            masked: true,
            digit: false,
            eq: false,
            punct: false,
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
        punct: false,
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
                // The message key's own `=` (`msg="Started`), not one inside its first word
                // (`msg="user=bob`, whose `bob` is a value).
                && (s[..i].contains(&b'=') || !is_message_key(&s[..i]))
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
                .or_else(|| run(fl.slash, bits::PATH, Kind::Path, m_relpath))
                .or_else(|| run(tf, bits::BOOL, Kind::Bool, m_bool))
                .or_else(|| run(fl.dots || fl.key_path, bits::NAME, Kind::Name, m_name));
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

mod shapes;
use shapes::*;
pub(crate) use shapes::{closing_quote, is_month_or_weekday, unit_kind};

#[cfg(test)]
mod tests;
