//! Turning one log line into masked, hashed tokens (reusing buffers: no allocation per line once warm).
//!
//! Steps, all in one left-to-right pass plus one join pass:
//!
//! 1. User masks (regex, only if configured) rewrite the line, turning matches into `<NAME>`.
//! 2. Split on ASCII whitespace; runs of whitespace collapse (the benchmark labels and Drain do the same).
//!    A `key="quoted value"` whose quote closes in a later token is kept as one token, so a value with
//!    spaces (`tag="View Lock"`) does not change the token count; a quoted value with spaces on its
//!    own (`"Microsoft Word"`, and a request line such as `"GET /x HTTP/1.1"`, whose method is a
//!    value of one access-log event) becomes one variable token `"<*>"`, and so does a bracketed
//!    one (`(2: No such file or directory)` becomes `(<*>)`), and an escaped space
//!    (`Application\ Support`) does not end a token. A compact JSON member (`"took":"185 ms",`)
//!    is one `key=value` token whatever its value holds, and ends its whitespace token, so the
//!    message's last word is not glued to the members after it. Values of several words are found by
//!    `super::spans` (error texts, stack frames, a unit's description, a setting line). The line
//!    is copied once into the token buffer; unmasked tokens point into that copy, masked tokens
//!    are appended after it.
//! 3. Mask each token ([`mask_token`]).
//! 4. Join multi-token variables into one placeholder token, because a variable that is sometimes one
//!    token and sometimes two would otherwise split a template by length:
//!    * number + unit token: `<1 sec` and `00:02`, `(1.16 KB)`;
//!    * date/time runs: `Fri Jun 17 07:07:00 2005`, `2015-07-29 17:41:44,747` become one `<TIME>`;
//!    * a run of one repeated variable (`blk_<NUM> blk_<NUM> ...`, `<NUM> <NUM> <NUM>`) is a list
//!      parameter of varying length and keeps a single token; so is a run of a repeated group of
//!      up to four tokens holding a variable (`node-<NUM> <HEX> ok node-<NUM> <HEX> ok`);
//!    * a path cut by spaces (`/Library/Application Support/x`, `C:\Program Files\x`): the words
//!      that go on with `/` or `\` join the path.
//! 5. Hash every token and the whole token sequence (exact-repeat cache key), and note per token what
//!    the comparison needs: variable or literal, digits in the literal text, the *skeleton* hash (the
//!    text with every placeholder as `<*>`, so `Alarm{<HEX>` and `Alarm{<NUM>` are one token that
//!    happened to be all digits once), key=value, UPPER-CASE word.
//!
//! Lines longer than `max_tokens` tokens are cut there: the tail of a very long line rarely decides
//! its template, and the cap bounds memory and per-line work.

use super::id::{combine, fast_hash};
use super::level::{self, HEADER_TOKENS, Level};
use super::spans::{
    BracketPairs, ErrorLabel, Member, bracket_span, dotnet_frame, error_label, error_text,
    is_http_method, is_json_member, is_message_key, is_number, is_setting_name, is_unit_name,
    json_member, json_member_breaks, open_quote, php_frame, quoted_span, script_frame, skip_spaces,
    stack_frame, text_end,
};

use super::mask::{
    Builtins, CLASS, Kind, LONG_TOKEN, Masker, Single, TokInfo, bits, class, class_of,
    closing_quote, is_key_name, is_month_or_weekday, is_word, mask_token, unit_kind,
};

/// Route key used when a line has fewer anchors than the routing depth.
pub(crate) const NONE_KEY: u64 = 0x0;

/// Only this many bytes of a line are looked at (a safety bound: offsets are kept as `u32`, and no
/// template needs more).
pub(crate) const MAX_LINE_BYTES: usize = 1 << 20;

/// `line` cut to [`MAX_LINE_BYTES`] at a character boundary.
pub(crate) fn cut_line(line: &str) -> &str {
    if line.len() <= MAX_LINE_BYTES {
        return line;
    }
    let mut end = MAX_LINE_BYTES;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

fn at_or_zero(t: &[u8], i: usize) -> u8 {
    t.get(i).copied().unwrap_or(0)
}

/// Longest group of tokens [`LineBuf::drop_repeated_group`] looks for.
const MAX_GROUP: usize = 4;

/// One masked token of the current line.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tok {
    pub off: u32,
    pub len: u32,
    pub hash: u64,
    /// Only placeholders and punctuation.
    pub var: bool,
    /// Literal text still contains a digit (`ee0`, `tty2`): probably variable, so it is not used as a
    /// routing anchor.
    pub digit: bool,
    /// Hash of the text with every placeholder replaced by `<*>` ("skeleton"), so `Alarm{<HEX>` and
    /// `Alarm{<NUM>` (one variable that happened to be all digits) compare equal. Equals `hash` for
    /// tokens without placeholders.
    pub skel: u64,
    /// A `key=value` token (values are masked, so two differing ones differ in their keys: structure).
    pub kv: bool,
    /// An UPPER-CASE word (`RUNNING`, `HTTPS`, `GET`) or an exception class
    /// (`java.io.IOException:`): an enumerated constant, see [`is_enumerated`].
    pub enumerated: bool,
    /// A quoted word (`"search-config"`, `'guest'`): a name, see [`is_quoted_word`].
    pub quoted: bool,
    /// A word that holds a placeholder beside its literal text (`grace/<IP>`,
    /// `clean:<NUM>:clean`, `unknown[<IP>]`): a value was masked in it, so it names one thing
    /// among many, and two such words that differ are two values, not other wording (see
    /// `template::compare`).
    pub valued: bool,
    /// A lone dash: an empty value, see [`is_blank`].
    pub blank: bool,
    /// A routing anchor (see `miner::route` and [`is_anchor_text`]).
    pub anchor: bool,
    /// For a `key=word` token whose value is masked but has no digit (`user=root`), or is empty
    /// (`error=`, see [`empty_value_skel`]): hash of the unmasked text, so a value that held
    /// over many lines can stay part of the template (see `Miner::frozen`); 0 otherwise.
    pub word: u64,
    /// Where that unmasked text is in the line buffer (offset, length), when `word` is set.
    pub word_at: (u32, u32),
}

#[derive(Clone, Copy, Debug)]
struct Raw {
    off: u32,
    len: u32,
    src_start: u32,
    src_end: u32,
    info: TokInfo,
}

/// What [`LineBuf::compact_json`] made of a token.
enum Json {
    /// A member, pushed: the line goes on at this end.
    Member(usize),
    /// Not a member: the token ends here, where the next member starts.
    Cut(usize),
    /// Neither: the token is read as any other.
    Neither,
}

/// Reusable per-line scratch space: masked bytes and token table.
#[derive(Debug, Default)]
pub(crate) struct LineBuf {
    pub masked: Vec<u8>,
    pub toks: Vec<Tok>,
    raw: Vec<Raw>,
    /// Hash of the whole masked token sequence (and of its `key=word` values): the exact-repeat
    /// cache key.
    pub hash: u64,
    /// Some token carries a `key=word` value (`Tok::word`).
    pub words: bool,
    skel_buf: Vec<u8>,
    kv_on: bool,
    /// Spans and byte classes of the first raw tokens, reused by level detection.
    heads: Vec<(u32, u32, u8)>,
    /// User masks rewrote the line (then `heads` do not describe the original line).
    user_changed: bool,
    /// The last raw token was a stack frame's location (see [`stack_frame`]).
    after_frame: bool,
    /// How far the line has been scanned for double quotes, and whether an odd number of them
    /// (not escaped) stood before that point (see [`LineBuf::in_quotes`]).
    quotes_at: (usize, bool),
    /// Where the line's brackets close (see [`bracket_span`]).
    brackets: BracketPairs,
}

impl LineBuf {
    /// Unmasked text of a `key=word` token (see `Tok::word`); empty for other tokens.
    #[inline]
    pub(crate) fn word_text(&self, t: &Tok) -> &[u8] {
        let (off, len) = t.word_at;
        &self.masked[off as usize..(off + len) as usize]
    }

    /// Masked text of token `t`.
    #[inline]
    pub(crate) fn text(&self, t: &Tok) -> &[u8] {
        &self.masked[t.off as usize..(t.off + t.len) as usize]
    }

    /// Whether each token is the program's wording (see [`is_wording`]), as
    /// `template::align` asks it: read once here, not once per alignment.
    pub(crate) fn wording(&self) -> Vec<bool> {
        self.toks.iter().map(|t| is_wording(self.text(t))).collect()
    }

    /// The line as a row of fields, if it is one: as an access log, a proxy's or a resolver's
    /// query log writes a line (`<IP> [<TIME>] fe_https~ be_static/static-1 12/0/3/7/24 200
    /// 278287 - - ---- …`), not a sentence about an event. Why it matters: most of a row's fields
    /// are values, so the few words left (a frontend's name, a termination state `----`/`LR--`)
    /// are nearly all that two lines are compared on, and one of them differing looks like other
    /// wording. In a row, a value of the kind the template has there agrees, unless a plain word
    /// differs (see `template::compare`).
    /// A row has at least [`MIN_ROW_FIELDS`] tokens, at least half of them values (masked, with
    /// digits, empty), and no phrase: no two words of letters side by side with a lower-case
    /// one among them (`open through proxy`, `Packet with invalid ack`), which is how a message
    /// reads. A row of more than 128 tokens is read as any line. Read once per search, not per
    /// token as it is pushed: most lines never ask (the exact-repeat cache knows them).
    pub(crate) fn row(&self) -> Option<Row> {
        let n = self.toks.len();
        if !(MIN_ROW_FIELDS..=128).contains(&n) {
            return None;
        }
        let mut values = 0;
        let mut words = 0u128;
        let mut after_word = false;
        for (k, t) in self.toks.iter().enumerate() {
            values += usize::from(t.var || t.digit || t.valued || t.blank);
            let word = !t.var && is_phrase_word(self.text(t));
            if word && after_word {
                return None;
            }
            words |= u128::from(word) << k;
            after_word = word;
        }
        (values * 2 >= n).then_some(Row { words })
    }

    /// The masked line, tokens joined by single spaces (used to derive ids and for display).
    pub(crate) fn joined(&self, out: &mut Vec<u8>) {
        out.clear();
        for (k, t) in self.toks.iter().enumerate() {
            if k > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(self.text(t));
        }
    }

    /// Empties the buffer for the next line.
    fn reset(&mut self) {
        self.masked.clear();
        self.raw.clear();
        self.toks.clear();
        self.heads.clear();
        self.words = false;
        self.after_frame = false;
        self.quotes_at = (0, false);
        self.brackets.clear();
        self.user_changed = false;
    }

    /// Fills the buffer with `line` as one value: a frame of a stack trace that only the line
    /// before it tells apart, a Python frame's line of code or a Go frame's function (see
    /// `traceback.rs`). Its words are the program's code, not its message: every such line is one
    /// event, as every `at …` frame of a Java stack is.
    pub(crate) fn fill_value(&mut self, line: &str) {
        let line = cut_line(line);
        self.reset();
        self.kv_on = false;
        let s = line.as_bytes();
        self.masked.extend_from_slice(s);
        let start = s.len() - s.trim_ascii_start().len();
        let end = s.trim_ascii_end().len();
        if start < end {
            self.push_value(s, start, end, 0, 0);
        }
        // Code names no level: `raise ERROR` is no error line.
        self.heads.clear();
        self.join(s, Builtins::none(), usize::MAX);
        self.hash_line();
    }

    /// Tokenises and masks `line`, replacing the previous content.
    pub(crate) fn fill(&mut self, line: &str, masker: &Masker, max_tokens: usize) {
        let line = cut_line(line);
        self.reset();
        let text = masker.apply_user(line);
        self.user_changed = matches!(text, std::borrow::Cow::Owned(_));
        let s = text.as_bytes();
        // The buffer starts with a copy of the line: unchanged tokens point into it (one bulk copy
        // instead of one per token); masked tokens are appended after it.
        self.masked.extend_from_slice(s);
        let b = masker.builtins;
        let kv = b.has(bits::KV);
        self.kv_on = kv;
        let n = s.len();
        // A few extra raw tokens so that joins near the cap still see their partner.
        let limit = max_tokens.saturating_add(8);
        let mut i = 0;
        // End of a whitespace token being cut at compact JSON member starts (see `compact_json`).
        let mut cut_to = 0;
        while i < n && self.raw.len() < limit {
            while i < n && s[i].is_ascii_whitespace() {
                i += 1;
            }
            if i >= n {
                break;
            }
            let start = i;
            let mut acc = 0u8;
            if start < cut_to {
                // The next piece of a whitespace token of compact JSON members, read already:
                // up to the next member's start.
                i = json_member_breaks(s, start, cut_to).unwrap_or(cut_to);
                acc = class_of(&s[start..i]);
            } else {
                while i < n {
                    let c = CLASS[s[i] as usize];
                    if c & class::WS != 0 {
                        // `Application\ Support`: an escaped space does not end the token.
                        if s[i] == b' ' && s[i - 1] == b'\\' {
                            acc |= class::PUNCT;
                            i += 1;
                            continue;
                        }
                        break;
                    }
                    acc |= c;
                    i += 1;
                }
            }
            if kv && acc & class::QUOTE != 0 {
                match self.compact_json(s, start, i, &mut cut_to) {
                    Json::Member(end) => {
                        i = end;
                        continue;
                    }
                    Json::Cut(cut) => {
                        i = cut;
                        acc = class_of(&s[start..i]);
                    }
                    Json::Neither => {}
                }
            }
            if self.raw.is_empty()
                && let Some(end) = frame_after(&s[start..i], s, skip_spaces(s, i))
            {
                // `at getUser (/app/users.js:42:17)`, `#0 /app/a.php(4): f()`: `at <*>`.
                self.push_raw(s, start, i, acc, b);
                self.push_value(s, skip_spaces(s, i), end, 0, 0);
                break;
            }
            if let Some((end, pre, rest)) = (acc & class::QUOTE != 0 && !self.after_message_key(s))
                .then(|| quoted_span(s, start, i))
                .flatten()
                .filter(|&(end, pre, _)| pre > 0 || !self.leading_message(s, end))
                .or_else(|| bracket_span(s, start, i, &mut self.brackets))
            {
                // A quoted or bracketed value with spaces (`"Microsoft Word"`, `(2: No such
                // file or directory)`): one token, `"<*>"` or `(<*>)`.
                self.push_value(s, start, end, pre + 1, rest + 1);
                i = end;
                continue;
            }
            // A frame ends with `)`, its packaging data with `]` (one byte to look at, before
            // scanning the token: this runs on every token).
            if i > start
                && matches!(s[i - 1], b')' | b']')
                && let Some((pre, suf)) = stack_frame(&s[start..i], self.after_frame)
            {
                // `at a.b.C.run(C.java:42) ~[app.jar:1.2]`: where a stack frame's code is, one value.
                self.push_value(s, start, i, pre, suf);
                self.after_frame = pre == 0;
                continue;
            }
            self.after_frame = false;
            if kv
                && acc & class::QUOTE != 0
                && acc & class::TRIG != 0
                && let Some(q) = open_quote(&s[start..i])
                && !is_message_key(&s[start..i])
                && let Some(p) = closing_quote(&s[i..n.min(i + MAX_KEY_QUOTE)], q)
            {
                let mut e = i + p + 1;
                while e < n && !s[e].is_ascii_whitespace() {
                    e += 1;
                }
                i = e;
                acc = class_of(&s[start..i]);
            }
            let label = if acc & class::COLON != 0 {
                error_label(&s[start..i])
            } else {
                None
            };
            // Shapes of the whole line, which end it: `Started nginx.service - A web server.`
            // and `log.retention.hours = 168`.
            if (&s[start..i] == b"-" && self.push_described_name(s, i))
                || (&s[start..i] == b"=" && self.push_setting(s, start, i, acc, b))
            {
                break;
            }
            if label == Some(ErrorLabel::Class) {
                // `java.io.IOException: Broken pipe`: the class stays as written (see `Class`).
                self.push_raw(s, start, i, acc, Builtins::none());
            } else {
                self.push_raw(s, start, i, acc, b);
            }
            if label.is_some_and(|l| l != ErrorLabel::Word || self.label_follows_word(s))
                && let Some((from, end, suf)) =
                    error_text(s, i, label != Some(ErrorLabel::Word), self.in_quotes(s, i))
            {
                self.push_value(s, from, end, 0, suf);
                i = end;
            }
        }
        self.join(s, b, max_tokens);
        self.hash_line();
    }

    /// Sets [`LineBuf::hash`] from the tokens just pushed.
    fn hash_line(&mut self) {
        let mut h = 0u64;
        for t in &self.toks {
            h = combine(h, t.hash);
        }
        if self.words {
            // `user=root` and `user=guest` may belong to different patterns (see `Tok::word`).
            for t in self.toks.iter().filter(|t| t.word != 0) {
                h = combine(h, t.word);
            }
        }
        self.hash = combine(h, self.toks.len() as u64);
    }

    /// Pushes `s[start..end]` as one variable token: the placeholder `<*>` between the span's
    /// first `pre` and last `suf` bytes (`"<*>"`, `(<*>)`, `<*>,`), so that free text whose word
    /// count varies does not change the line's token count.
    fn push_value(&mut self, s: &[u8], start: usize, end: usize, pre: usize, suf: usize) {
        self.note_heads(s, start, end);
        let off = self.masked.len();
        self.masked.extend_from_slice(&s[start..start + pre]);
        self.masked
            .extend_from_slice(Kind::Value.placeholder().as_bytes());
        self.masked.extend_from_slice(&s[end - suf..end]);
        self.raw.push(Raw {
            off: off as u32,
            len: (self.masked.len() - off) as u32,
            src_start: start as u32,
            src_end: end as u32,
            info: TokInfo {
                var: true,
                masked: true,
                single: Some(Single {
                    kind: Kind::Value,
                    pre: pre as u32,
                    suf: suf as u32,
                }),
                ..TokInfo::default()
            },
        });
    }

    /// Compact JSON at the token `s[start..end]`, which holds a quote. A member (but the message)
    /// is pushed as one `key=value` token, whatever its value holds. A token that is not one (the
    /// message's last word, `long","took":…`) ends where the next member starts; the rest of its
    /// whitespace token (up to `cut_to`) is then cut piece by piece by the caller, each piece read
    /// once however many members it holds. Kept out of line: most lines have no JSON, and
    /// `fill`'s byte loop must stay as tight as for any word.
    #[cold]
    #[inline(never)]
    fn compact_json(&mut self, s: &[u8], start: usize, end: usize, cut_to: &mut usize) -> Json {
        if let Some(member) = json_member(s, start) {
            self.push_member(s, start, member);
            return Json::Member(member.end);
        }
        if start >= *cut_to
            && let Some(cut) = json_member_breaks(s, start, end)
        {
            *cut_to = end;
            return Json::Cut(cut);
        }
        Json::Neither
    }

    /// Pushes a compact JSON member (see [`json_member`]) as a `key=value` token: its value
    /// masked, `"took":"<*>",`, and kept as the token's word when it has no digit (`"level":
    /// "info"`, see `Tok::word`), as a logfmt field's is.
    fn push_member(&mut self, s: &[u8], start: usize, m: Member) {
        self.note_heads(s, start, m.end);
        let off = self.masked.len();
        self.masked.extend_from_slice(&s[start..m.value]);
        let value = Kind::Value.placeholder().as_bytes();
        if m.string {
            self.masked.push(b'"');
            self.masked.extend_from_slice(value);
            self.masked.push(b'"');
        } else {
            self.masked.extend_from_slice(value);
        }
        self.masked.extend_from_slice(&s[m.value_end..m.end]);
        self.raw.push(Raw {
            off: off as u32,
            len: (self.masked.len() - off) as u32,
            src_start: start as u32,
            src_end: m.end as u32,
            info: TokInfo {
                masked: true,
                eq: true,
                punct: true,
                ..TokInfo::default()
            },
        });
    }

    /// Masks `s[start..end]`, one whitespace token with byte classes `acc`, and pushes it.
    #[inline(always)]
    fn push_raw(&mut self, s: &[u8], start: usize, end: usize, acc: u8, b: Builtins) {
        if self.heads.len() < HEADER_TOKENS {
            self.heads.push((start as u32, end as u32, acc));
        }
        let off = self.masked.len();
        let mut info = mask_token(&s[start..end], acc, b, &mut self.masked);
        info.punct = acc & class::PUNCT != 0;
        // Nothing masked: the text is the source text, already at the start of the buffer.
        let (off, len) = if info.masked {
            (off, self.masked.len() - off)
        } else {
            (start, end - start)
        };
        self.raw.push(Raw {
            off: off as u32,
            len: len as u32,
            src_start: start as u32,
            src_end: end as u32,
            info,
        });
    }

    /// A unit and its description, `nginx.service - A high performance web server.`, as service
    /// managers print a unit: the lone dash, which ends at `dash_end`, follows the unit's name
    /// (see [`is_unit_name`]), which follows a word of the message (not a level: `INFO c.a.Foo -
    /// message` is a logger's header, and its message is the template), and the line ends with
    /// a dot, as every such line of systemd's does (`Started %s.`, `Starting %s...`): a
    /// logger's message after a thread and a logger name need not (`main app.service - disk
    /// full`). The name and the description after it are one value, which the program filled
    /// in and which runs to the end of the line, keeping its closing dots: pushed here, in place
    /// of the name. Returns whether the line was such a line.
    fn push_described_name(&mut self, s: &[u8], dash_end: usize) -> bool {
        let [.., verb, name] = self.raw.as_slice() else {
            return false;
        };
        let text = |r: &Raw| &s[r.src_start as usize..r.src_end as usize];
        let verb = text(verb);
        if !verb.iter().all(u8::is_ascii_alphabetic) || level::is_level_word(verb) {
            return false;
        }
        if !is_unit_name(text(name)) {
            return false;
        }
        let end = text_end(s);
        let dots = s[..end].iter().rev().take_while(|&&c| c == b'.').count();
        if skip_spaces(s, dash_end) >= end || dots == 0 {
            return false;
        }
        let from = name.src_start as usize;
        self.raw.pop();
        self.heads.retain(|h| (h.0 as usize) < from);
        self.push_value(s, from, end, 0, dots);
        true
    }

    /// A setting line, `log.retention.hours = 168`, as a dump of settings prints it with one
    /// `%s = %s` call: when the `=` at `s[start..end]` is the line's second token and the first
    /// is a setting's name (see [`is_setting_name`]), the name and the value are two values
    /// around the `=`, pushed here. Returns whether the line was one.
    fn push_setting(&mut self, s: &[u8], start: usize, end: usize, acc: u8, b: Builtins) -> bool {
        let [name] = self.raw.as_slice() else {
            return false;
        };
        let name = *name;
        if !is_setting_name(&s[..name.src_end as usize]) {
            return false;
        }
        self.raw.clear();
        self.heads.clear();
        self.push_value(s, name.src_start as usize, name.src_end as usize, 0, 0);
        self.push_raw(s, start, end, acc, b);
        let (from, to) = (skip_spaces(s, end), text_end(s));
        if from < to {
            self.push_value(s, from, to, 0, 0);
        }
        true
    }

    /// Notes the whitespace tokens of `s[start..end]`, a span pushed as one token, among the
    /// line's first [`HEADER_TOKENS`] tokens. Level detection reads a line's whitespace tokens
    /// (see [`level::from_text`]): a value span of several words must not hide a level word
    /// inside it (`org.postgresql.util.PSQLException: ERROR: duplicate key`) nor shift the
    /// header tokens after it.
    fn note_heads(&mut self, s: &[u8], start: usize, end: usize) {
        let is_space = |c: &u8| CLASS[*c as usize] & class::WS != 0;
        let mut at = start;
        while self.heads.len() < HEADER_TOKENS && at < end {
            let a = at + s[at..end].iter().take_while(|c| is_space(c)).count();
            at = a + s[a..end].iter().take_while(|c| !is_space(c)).count();
            if a < at {
                self.heads.push((a as u32, at as u32, class_of(&s[a..at])));
            }
        }
    }

    /// Whether the last raw token is a JSON object's or a dict's message key (`"message":`,
    /// `{'msg':`): the quoted value after it is the event's own text, whose words stay tokens,
    /// as a logfmt `msg="…"`'s do (see [`is_message_key`]). Else every JSON line of one level
    /// whose message has spaces would be one event (`"message": "<*>"`).
    fn after_message_key(&self, s: &[u8]) -> bool {
        self.raw.last().is_some_and(|r| {
            let tok = &s[r.src_start as usize..r.src_end as usize];
            let key = tok
                .strip_prefix(b"{")
                .unwrap_or(tok)
                .strip_suffix(b":")
                .unwrap_or_default();
            let unquoted = match key {
                [b'"', k @ .., b'"'] | [b'\'', k @ .., b'\''] => k,
                _ => return false,
            };
            is_message_key(unquoted)
        })
    }

    /// Whether the quoted text from `start` to `end` is the message of a structured line, klog's
    /// `"Error syncing pod, skipping" err="…" pod="…"`: it opens the line, or follows a header
    /// that ends with `]` (`pod_workers.go:1300]`), and `key=value` fields or the line's end
    /// follow it. Its words are the event's own and stay tokens, as a logfmt `msg="…"`'s do; as
    /// one `"<*>"` every such line with the same fields would be one event. (A quoted value that
    /// opens a line of fields, `"alice smith" uid=3`, keeps its words too: rarer than klog, and
    /// klog's messages need not be capitalised, `"operationExecutor.MountVolume started …"`.)
    fn leading_message(&self, s: &[u8], end: usize) -> bool {
        let opens = self
            .raw
            .last()
            .is_none_or(|r| r.src_end > r.src_start && s[r.src_end as usize - 1] == b']');
        opens && {
            let next = skip_spaces(s, end);
            let word = &s[next..];
            let word = &word[..word
                .iter()
                .position(u8::is_ascii_whitespace)
                .unwrap_or(word.len())];
            next == s.len()
                || (word.first().is_some_and(|&c| c != b'=')
                    && word.contains(&b'=')
                    && is_keyed(word))
        }
    }

    /// Whether `s[..at]` leaves a double-quoted string open (an odd number of unescaped `"`):
    /// then an error label there stands inside a quoted message (`msg="pull failed: no such
    /// host" image=x`), and its text ends with that message (see [`error_text`]). Scans on from
    /// where the last call stopped, so a line with many labels is still read once.
    fn in_quotes(&mut self, s: &[u8], at: usize) -> bool {
        let (from, mut open) = self.quotes_at;
        for k in from..at.max(from) {
            if s[k] == b'"' && (k == 0 || s[k - 1] != b'\\') {
                open = !open;
            }
        }
        self.quotes_at = (at.max(from), open);
        open
    }

    /// Whether the error label just pushed follows a word or a value of the same message
    /// (`returned error:`, `<HEX> error:`, `is UP, reason:`, `New size: 3; reason:`). A label
    /// that opens the message, or follows a program tag (`sshd[42]: error: …`) or a separator
    /// (`- error:`), starts the message itself, whose words are the template. So does a label
    /// right after a time (`2026-12-07T12:00:00Z error: out of memory`): there it is the header's
    /// level word, not a word of the message, though the time ends with a digit.
    fn label_follows_word(&self, s: &[u8]) -> bool {
        let Some(before) = self.raw.len().checked_sub(2).map(|k| self.raw[k]) else {
            return false;
        };
        if before.info.single.is_some_and(|v| v.kind == Kind::Time) {
            return false;
        }
        s[..before.src_end as usize]
            .last()
            .is_some_and(|&c| is_word(c) || matches!(c, b',' | b';'))
    }

    /// Level of `line` (the line given to the last [`LineBuf::fill`]) from its header tokens, reusing
    /// the token boundaries found while tokenising.
    pub(crate) fn level(&self, line: &str) -> Level {
        let line = cut_line(line);
        if self.user_changed {
            return level::from_text(line.as_bytes());
        }
        let s = &self.masked;
        level::from_tokens(
            line.as_bytes(),
            self.heads
                .iter()
                .map(|&(a, b, acc)| (&s[a as usize..b as usize], acc)),
        )
    }

    fn raw_text(&self, r: &Raw) -> &[u8] {
        &self.masked[r.off as usize..(r.off + r.len) as usize]
    }

    fn join(&mut self, src: &[u8], b: Builtins, max_tokens: usize) {
        let nraw = self.raw.len();
        let mut k = 0;
        while k < nraw && self.toks.len() < max_tokens {
            let r = self.raw[k];
            if b.has(bits::TIME)
                && self.may_start_date(&r)
                && let Some(end) = self.date_run(src, k)
            {
                self.push_joined(k, end - 1, Kind::Time);
                k = end;
                continue;
            }
            if let Some(Single {
                kind: Kind::Path,
                suf: 0,
                ..
            }) = r.info.single
                && b.has(bits::PATH)
                && k + 1 < nraw
                && self.continues_path(src, k + 1)
            {
                // `/Library/Application Support/x`: a path with spaces stays one token.
                let mut end = k + 2;
                while end < nraw && self.continues_path(src, end) {
                    end += 1;
                }
                self.push_joined(k, end - 1, Kind::Path);
                k = end;
                continue;
            }
            if !r.info.masked && is_http_method(self.raw_text(&r)) && self.path_at(k + 1) {
                // `on POST /orders/7`: the method is a value of the request, as the path is.
                self.push_joined(k, k, Kind::Value);
                k += 1;
                continue;
            }
            if let Some(Single {
                kind: Kind::Num,
                suf: 0,
                ..
            }) = r.info.single
                && k + 1 < nraw
                && let Some(kind) = self.unit_after(k + 1, b)
            {
                self.push_joined(k, k + 1, kind);
                k += 2;
                continue;
            }
            k += 1;
            let hash = fast_hash(&self.masked[r.off as usize..(r.off + r.len) as usize]);
            // Runs of one repeated variable (`blk_<NUM> blk_<NUM> ...`, `<NUM> <NUM>`) are one list
            // parameter: keep one token so the list length does not split the template.
            if r.info.masked && self.toks.last().is_some_and(|p| p.hash == hash) {
                continue;
            }
            self.push_tok(r.off, r.len, hash, r.info);
            if r.info.eq && !r.info.var {
                let text = &src[r.src_start as usize..r.src_end as usize];
                // A masked value, or an empty one (`error=`): an empty value that held over
                // many lines is part of the event as a word is (see `empty_value_skel`). Not a
                // long one: a text of a thousand bytes is no word, and each shape keeps the
                // text of its words.
                if (r.info.masked || text.ends_with(b"="))
                    && text.len() <= LONG_TOKEN
                    && !text.iter().any(u8::is_ascii_digit)
                    && let Some(last) = self.toks.last_mut()
                    && last.kv
                {
                    last.word = word_hash(text);
                    last.word_at = (r.src_start, r.src_end - r.src_start);
                    self.words = true;
                }
            }
            self.drop_repeated_group();
        }
    }

    /// A list of repeated groups (`node-<NUM> <HEX> ok node-<NUM> <HEX> ok ...`) is one list
    /// parameter of varying length, like a run of one repeated variable: when the last group of
    /// two to [`MAX_GROUP`] tokens, holding a variable, repeats the one before it, it is dropped.
    fn drop_repeated_group(&mut self) {
        let n = self.toks.len();
        for p in 2..=MAX_GROUP.min(n / 2) {
            let (a, b) = (&self.toks[n - 2 * p..n - p], &self.toks[n - p..]);
            if a.iter().zip(b).all(|(x, y)| x.hash == y.hash) && b.iter().any(|t| t.var) {
                self.toks.truncate(n - p);
                return;
            }
        }
    }

    /// Whether raw token `k` continues a path cut at a space: a word that goes on with `/` or `\`
    /// (`Support/CrashReporter`, `Files\App`), not a `key=value` or a URL.
    fn continues_path(&self, src: &[u8], k: usize) -> bool {
        let r = &self.raw[k];
        let t = &src[r.src_start as usize..r.src_end as usize];
        // What follows the first separator: `HTTP/1.1` or `1/2` is a version or a ratio.
        let after = t
            .iter()
            .position(|c| matches!(c, b'/' | b'\\'))
            .map(|p| at_or_zero(t, p + 1));
        t.first().is_some_and(u8::is_ascii_alphanumeric)
            && !r.info.eq
            && after.is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, b'_' | b'.'))
            && !t.windows(3).any(|w| w == b"://")
    }

    /// Whether raw token `k` is a path or a URL on its own (not inside brackets or quotes).
    fn path_at(&self, k: usize) -> bool {
        self.raw
            .get(k)
            .and_then(|r| r.info.single)
            .is_some_and(|s| matches!(s.kind, Kind::Path | Kind::Url) && s.pre == 0)
    }

    /// If raw token `k` is a unit word (`KB)`, `sec`), the kind the number before it becomes.
    fn unit_after(&self, k: usize, b: Builtins) -> Option<Kind> {
        let r = &self.raw[k];
        if r.info.var || r.info.single.is_some() {
            return None;
        }
        let t = self.raw_text(r);
        if !t
            .first()
            .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'%')
        {
            return None;
        }
        let core_len = t
            .iter()
            .take_while(|c| c.is_ascii_alphabetic() || **c == b'%')
            .count();
        if core_len < t.len() && is_word(t[core_len]) {
            return None;
        }
        let core = &t[..core_len];
        // One-letter units as a separate token only when unambiguous: `384.0 B`, `2 G`, `5 s`, `50 %`.
        if core.len() == 1 && !matches!(core[0], b'B' | b'K' | b'M' | b'G' | b'T' | b's' | b'%') {
            return None;
        }
        match unit_kind(core)? {
            Kind::Dur if b.has(bits::DUR) => Some(Kind::Dur),
            Kind::Dur => None,
            _ => Some(Kind::Num),
        }
    }

    /// Cheap pre-check for [`LineBuf::date_run`]: a time placeholder, or a short unmasked token that
    /// starts with an upper-case letter or punctuation (`Jun`, `[Fri`).
    #[inline]
    fn may_start_date(&self, r: &Raw) -> bool {
        match r.info.single {
            Some(s) => s.kind == Kind::Time,
            None => {
                !r.info.masked
                    && (3..=12).contains(&r.len)
                    && !self.masked[r.off as usize].is_ascii_lowercase()
                    && !self.masked[r.off as usize].is_ascii_digit()
            }
        }
    }

    fn is_name(&self, k: usize) -> bool {
        let r = &self.raw[k];
        if r.info.var || r.info.masked || r.len < 3 || r.len > 12 {
            return false;
        }
        let t = self.raw_text(r);
        if !t[0].is_ascii_uppercase() && t[0].is_ascii_alphanumeric() {
            return false;
        }
        let s = t
            .iter()
            .position(|c| c.is_ascii_alphabetic())
            .unwrap_or(t.len());
        let e = t
            .iter()
            .rposition(|c| c.is_ascii_alphabetic())
            .map_or(s, |p| p + 1);
        s < e
            && t[..s].iter().all(|c| !is_word(*c))
            && t[e..].iter().all(|c| !is_word(*c))
            && is_month_or_weekday(&t[s..e])
    }

    fn single_kind(&self, k: usize) -> Option<Kind> {
        self.raw[k].info.single.map(|s| s.kind)
    }

    /// Digits in the source of raw token `k` (to tell a day `17` or year `2005` from other numbers).
    fn src_digits(&self, src: &[u8], k: usize) -> usize {
        let r = &self.raw[k];
        src[r.src_start as usize..r.src_end as usize]
            .iter()
            .filter(|c| c.is_ascii_digit())
            .count()
    }

    /// A run of date/time tokens starting at `k`; returns the end (exclusive) when there is one.
    fn date_run(&self, src: &[u8], k: usize) -> Option<usize> {
        let n = self.raw.len();
        if k + 1 >= n {
            return None;
        }
        let time_at = |j: usize| self.single_kind(j) == Some(Kind::Time);
        let day_or_year = |j: usize| {
            self.single_kind(j) == Some(Kind::Num) && matches!(self.src_digits(src, j), 1 | 2 | 4)
        };
        let starts_named =
            self.is_name(k) && (self.is_name(k + 1) || day_or_year(k + 1) || time_at(k + 1));
        let starts_timed = time_at(k) && time_at(k + 1);
        if !starts_named && !starts_timed {
            return None;
        }
        let mut j = k + 1;
        let mut year_seen = false;
        while j < n && j - k < 7 {
            if self.is_name(j) || time_at(j) {
                j += 1;
            } else if starts_named && !year_seen && day_or_year(j) {
                year_seen = self.src_digits(src, j) == 4;
                j += 1;
            } else {
                break;
            }
        }
        Some(j)
    }

    /// Pushes raw tokens `first..=last` as one variable token `pre<KIND>suf`.
    fn push_joined(&mut self, first: usize, last: usize, kind: Kind) {
        let a = self.raw[first];
        let z = self.raw[last];
        let (pre_a, pre_len) = match a.info.single {
            Some(s) => (a.off, s.pre),
            None => {
                let t = self.raw_text(&a);
                (a.off, t.iter().take_while(|c| !is_word(**c)).count() as u32)
            }
        };
        let suf_len = match z.info.single {
            Some(s) => s.suf,
            None => {
                // Trailing punctuation, not the end of a placeholder (`x<PATH>,` has one byte).
                let t = self.raw_text(&z);
                t.iter()
                    .rev()
                    .take_while(|c| !is_word(**c) && **c != b'>')
                    .count() as u32
            }
        };
        let off = self.masked.len();
        self.masked
            .extend_from_within(pre_a as usize..(pre_a + pre_len) as usize);
        self.masked.extend_from_slice(kind.placeholder().as_bytes());
        let zs = (z.off + z.len - suf_len) as usize;
        self.masked.extend_from_within(zs..zs + suf_len as usize);
        let (off, len) = (off as u32, (self.masked.len() - off) as u32);
        let hash = fast_hash(&self.masked[off as usize..(off + len) as usize]);
        if self.toks.last().is_some_and(|p| p.hash == hash) {
            return;
        }
        let info = TokInfo {
            var: true,
            masked: true,
            ..TokInfo::default()
        };
        self.push_tok(off, len, hash, info);
    }

    fn push_tok(&mut self, off: u32, len: u32, hash: u64, info: TokInfo) {
        let var = info.var;
        // For masked tokens look at the masked text: an `=` inside a masked URL is gone.
        let eq = if info.masked {
            self.masked[off as usize..(off + len) as usize].contains(&b'=')
        } else {
            info.eq
        };
        let kv = self.kv_on && !var && {
            let text = &self.masked[off as usize..(off + len) as usize];
            (eq && is_keyed(text))
                || (info.punct && matches!(text.first(), Some(b'"' | b'{')) && is_json_member(text))
        };
        // Whether the word holds a placeholder: one a mask wrote, or `<*>`-like text the line
        // itself had (`job<*>`, `x<_A>`), which a stored template's text cannot tell apart from
        // a mask's; decided on the text as `TTok::from_text` and `miner::template_route` do, so
        // that a restored miner routes and compares such a word (by its skeleton, `<*> <*>` for
        // `<_A> <_B>`) as the live one did.
        let holds = info.masked || {
            let text = &self.masked[off as usize..(off + len) as usize];
            info.punct && text.contains(&b'<') && has_placeholder(text)
        };
        let skel = if holds && !var {
            skeleton_hash(
                &self.masked[off as usize..(off + len) as usize],
                &mut self.skel_buf,
            )
        } else if kv && self.masked[(off + len - 1) as usize] == b'=' {
            empty_value_skel(
                &self.masked[off as usize..(off + len) as usize],
                &mut self.skel_buf,
            )
        } else {
            hash
        };
        let text = &self.masked[off as usize..(off + len) as usize];
        let enumerated = !info.masked && is_enumerated(text);
        let quoted = !var && info.punct && is_quoted_word(text);
        // A plain word has none of the punctuation these look for.
        let punct = info.punct || info.masked;
        let blank = punct && !info.masked && is_blank(text);
        let valued = holds && !var && !kv;
        let anchor = !var
            && !info.digit
            && !quoted
            && !valued
            && !(punct && (is_dotted_subject(text) || has_arguments(text) || is_code_path(text)));
        self.toks.push(Tok {
            off,
            len,
            hash,
            var,
            digit: info.digit && !var,
            skel,
            kv,
            enumerated,
            quoted,
            valued,
            blank,
            anchor,
            word: 0,
            word_at: (0, 0),
        });
    }
}

/// Where a stack frame ends that follows `marker`, a line's first word, from `from` to the
/// line's end: after `at`, a JavaScript or a .NET frame (see [`script_frame`],
/// [`dotnet_frame`]); after a frame's number (`#0`), a PHP frame (see [`php_frame`]).
fn frame_after(marker: &[u8], s: &[u8], from: usize) -> Option<usize> {
    match marker {
        b"at" => script_frame(s, from).or_else(|| dotnet_frame(s, from)),
        [b'#', digits @ ..] if is_number(digits) => php_frame(s, from),
        _ => None,
    }
}

/// Whether a template word may route lines (see `miner::route`). A literal with a digit (`node-12`,
/// `ee0`) names one thing among many, the way a variable does, and so does a dotted name that is
/// the subject of the message (`nginx.service: Deactivated`, `worker.py: started`) or a word with
/// an argument (`pam_unix(sshd:session):`): lines must not be kept apart by such a word before
/// they are compared. A dotted name without the colon (`tickTime set to`, `rpc.statd startup
/// succeeded`) is often a call site of its own, so it stays an anchor.
pub(crate) fn is_anchor_text(t: &[u8]) -> bool {
    !literal_has_digit(t)
        && !is_dotted_subject(t)
        && !has_arguments(t)
        && !is_quoted_word(t)
        && !is_code_path(t)
}

/// A path of names joined by `::` (`orders::tests::rejects_empty_cart`, `hyper::server:`,
/// `std::bad_alloc`): a Rust, C++ or Perl module path, one name among many (a test, a logger,
/// a type), as a dotted name is once masked. It routes no lines, so that lines differing only
/// in it meet and compare.
fn is_code_path(t: &[u8]) -> bool {
    t.windows(4)
        .any(|w| w[1] == b':' && w[2] == b':' && is_name_byte(w[0]) && is_name_byte(w[3]))
}

fn is_name_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// A quoted word, `"search-config"`, `('guest'),`: what a program puts in quotes is a name (a
/// resource, a user, a key, a file), a value of the event. It stays a word, so a name that held
/// over many lines is still part of the event (see `Miner::frozen`), but it routes no lines (see
/// [`is_anchor_text`]) and two differing quoted words are two values, not different wording (see
/// `template::compare`): `volume "data" : secret "db-x" not found` and `volume "certs" :
/// configmap "app-config" not found` are one event. The quote opens the token (after brackets)
/// and closes it around at least one byte, with only punctuation after it (`'s` or `don't` are no
/// quotes).
pub(crate) fn is_quoted_word(t: &[u8]) -> bool {
    let pre = t
        .iter()
        .take_while(|c| matches!(c, b'(' | b'[' | b'{'))
        .count();
    let Some(&q) = t.get(pre).filter(|&&q| q == b'"' || q == b'\'') else {
        return false;
    };
    let inner = &t[pre + 1..];
    inner
        .iter()
        .position(|&c| c == q)
        .is_some_and(|close| close > 0 && !inner[close + 1..].iter().any(|&c| is_word(c)))
}

/// `name(arg…)`, a word with something in brackets (`pam_unix(sshd:session):`): the argument
/// names one thing among many, as a dotted subject does, so such a word does not route lines.
fn has_arguments(t: &[u8]) -> bool {
    t.iter().position(|&c| c == b'(').is_some_and(|p| {
        t[p..]
            .windows(2)
            .any(|w| w[0] == b'(' && w[1].is_ascii_alphanumeric())
    })
}

/// Whether a token with `=` is a `key=value` token: the key runs from the token's start and is
/// one name (`user=`, `db.pool-size=`). A value with `=` in it (`'status=PENDING'`,
/// `root(uid=0)`) makes no key=value token, so it is compared as any other word is, not as a key
/// that differs (see `template::pair`).
pub(crate) fn is_keyed(t: &[u8]) -> bool {
    let key = t.split(|&c| c == b'=').next().unwrap_or_default();
    is_key_name(key) && !is_message_key(t)
}

/// A word of the program's own wording: lower-case letters only, maybe with `-`, `_` or one `'`
/// (`invalid`, `user`, `don't`), or two or more upper-case letters only (`NOT`, `FAILED`: a status
/// shouted), possibly ending in `,` or `.`. Names of things are capitalised (`Payments Client`) or
/// carry digits and punctuation; wording is what a format string says. (An acronym in a name,
/// `REST`, reads as wording too: a value holding one is not taken, which splits it off, where
/// taking `NOT` would hide a failure in the pattern of a success.)
pub(crate) fn is_wording(t: &[u8]) -> bool {
    let word = t
        .strip_suffix(b",")
        .or_else(|| t.strip_suffix(b"."))
        .unwrap_or(t);
    let lower = word.first().is_some_and(u8::is_ascii_lowercase)
        && word
            .iter()
            .all(|&c| c.is_ascii_lowercase() || matches!(c, b'-' | b'_' | b'\''));
    let shouted = word.len() >= 2 && word.iter().all(u8::is_ascii_uppercase);
    lower || shouted
}

/// How far a `key="…` value may run to its closing quote. Why so far: a logfmt value is often
/// long (a Go error chain, a rule's text with its `\n`s), and cut short its words were the line's,
/// a new pattern per value. Why the scan stays linear however many such tokens a line has: a
/// search that finds no quote within this bound leaves none for the next `key="…` token to have
/// opened inside it, so that token starts past where the search ended.
const MAX_KEY_QUOTE: usize = 4096;

/// A line that is a row of fields (see [`LineBuf::row`]), with where its plain words are: a
/// word of letters, one of them lower-case (`Connected`, `failure`), reads as a word of the
/// event, not as a field's name (`web_tls~`, `pool_a/node-2`); see [`is_phrase_word`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Row {
    words: u128,
}

impl Row {
    /// Whether the token at `k` is a plain word.
    pub(crate) fn word_at(self, k: usize) -> bool {
        k < 128 && self.words >> k & 1 == 1
    }
}

/// Fewest tokens of a row of fields (see [`LineBuf::row`]): shorter lines are short messages
/// (`Proxy fe_http started.`), whose few words are what tells them apart.
const MIN_ROW_FIELDS: usize = 5;

/// A word of a phrase (see [`LineBuf::row`]): letters only, at least two, one of them
/// lower-case, maybe ending in `,`, `.`, `:` or `;`.
pub(crate) fn is_phrase_word(t: &[u8]) -> bool {
    let core = match t.last() {
        Some(b',' | b'.' | b':' | b';') => &t[..t.len() - 1],
        _ => t,
    };
    core.len() >= 2
        && core.iter().all(u8::is_ascii_alphabetic)
        && core.iter().any(u8::is_ascii_lowercase)
}

/// `name.ext:` (a dot between two letters or digits, and a colon at the end).
fn is_dotted_subject(t: &[u8]) -> bool {
    t.last() == Some(&b':')
        && t.windows(3)
            .any(|w| w[1] == b'.' && w[0].is_ascii_alphanumeric() && w[2].is_ascii_alphanumeric())
}

/// A lone dash, bare or in quotes, brackets or parentheses (`-`, `"-"`, `[-]`): the conventional
/// "no value" of access logs and key-value formats. A value showing up where a dash was (a user
/// name after `- -`) is that field filled in, not another event.
pub(crate) fn is_blank(text: &[u8]) -> bool {
    let mut core = text
        .iter()
        .filter(|c| !matches!(c, b'"' | b'\'' | b'[' | b']' | b'(' | b')' | b','));
    core.next() == Some(&b'-') && core.next().is_none()
}

/// An UPPER-CASE word, possibly with a few digits and `_` and surrounded by punctuation (`RUNNING`,
/// `HTTPS`, `SOCKS5`, `(LOOKING)`, but not the id `KB2928120`). Code prints enum values, states, protocols and methods this way; two
/// different ones at the same position mean different events, not a free-form variable.
fn is_caps_word(t: &[u8]) -> bool {
    let Some(s) = t.iter().position(u8::is_ascii_alphanumeric) else {
        return false;
    };
    let e = t
        .iter()
        .rposition(u8::is_ascii_alphanumeric)
        .map_or(s, |p| p + 1);
    let core = &t[s..e];
    let letters = core.iter().filter(|c| c.is_ascii_uppercase()).count();
    let digits = core.iter().filter(|c| c.is_ascii_digit()).count();
    // Mostly letters: `SOCKS5`, `IPV6` are names of things, `KB2928120` is an id.
    core[0].is_ascii_uppercase()
        && letters >= 2
        && digits * 2 <= letters
        && core
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
}

/// A word that names one of a fixed set of things, so that two different ones at the same
/// position are two events (see `template::pair`): an UPPER-CASE word ([`is_caps_word`]) or an
/// exception class (`java.io.IOException:`, `KeyError:`, see `ErrorLabel::Class`). A class
/// never seen before is a new kind of error, which must be announced however many words of the
/// line agree (`Caused by: java.lang.OutOfMemoryError: <*>` after `Caused by:
/// java.io.IOException: <*>`, or either after a logger's header).
pub(crate) fn is_enumerated(t: &[u8]) -> bool {
    is_caps_word(t) || error_label(t) == Some(ErrorLabel::Class)
}

/// Hash of an unmasked `key=word` token (see `Tok::word`); never 0.
pub(crate) fn word_hash(text: &[u8]) -> u64 {
    fast_hash(text) | 1
}

/// Whether a masked token has a digit outside its placeholders (user placeholder names may contain
/// digits). Must agree with `Tok::digit` for the token the text came from.
pub(crate) fn literal_has_digit(t: &[u8]) -> bool {
    let mut i = 0;
    while i < t.len() {
        if t[i] == b'<' {
            let name = placeholder_name_len(&t[i + 1..]);
            if name > 0 && t.get(i + 1 + name) == Some(&b'>') {
                i += name + 2;
                continue;
            }
        }
        if t[i].is_ascii_digit() {
            return true;
        }
        i += 1;
    }
    false
}

/// Whether a token's text contains a placeholder (`<NUM>`, `<*>`, `<ORDER>`).
pub(crate) fn has_placeholder(t: &[u8]) -> bool {
    t.iter().enumerate().any(|(i, &c)| {
        c == b'<' && {
            let name = placeholder_name_len(&t[i + 1..]);
            name > 0 && t.get(i + 1 + name) == Some(&b'>')
        }
    })
}

fn placeholder_name_len(t: &[u8]) -> usize {
    t.iter()
        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || **c == b'_' || **c == b'*')
        .count()
}

/// Writes the skeleton of a masked token (every `<NAME>` placeholder as `<*>`) into `out`.
pub(crate) fn skeleton(t: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0;
    while i < t.len() {
        if t[i] == b'<' {
            let name = placeholder_name_len(&t[i + 1..]);
            if name > 0 && t.get(i + 1 + name) == Some(&b'>') {
                out.extend_from_slice(b"<*>");
                i += name + 2;
                continue;
            }
        }
        out.push(t[i]);
        i += 1;
    }
}

/// Skeleton hash of a `key=` field with an empty value: that of `key=<*>`, the same field with
/// a value. An empty value is a value like any other (Redis's `name=` beside `name=app`,
/// PostgreSQL's `application_name=`), not another key; the line whose value is empty is the same
/// event. An empty value that held over many lines is a word of the event as `status=ok` is
/// (see `Tok::word`): `error=` for 100 lines, then `error=timeout`, is another event (see
/// `Miner::frozen`), and so is a held value against an empty one.
pub(crate) fn empty_value_skel(t: &[u8], buf: &mut Vec<u8>) -> u64 {
    buf.clear();
    buf.extend_from_slice(t);
    buf.extend_from_slice(b"<*>");
    fast_hash(buf)
}

/// Hash of [`skeleton`].
pub(crate) fn skeleton_hash(t: &[u8], buf: &mut Vec<u8>) -> u64 {
    skeleton(t, buf);
    fast_hash(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(line: &str) -> Vec<String> {
        let m = Masker::new(Builtins::all(), Vec::new());
        let mut lb = LineBuf::default();
        lb.fill(line, &m, 128);
        lb.toks
            .iter()
            .map(|t| String::from_utf8(lb.text(t).to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn a_row_of_fields_is_a_row_and_a_sentence_is_not() {
        let m = Masker::new(Builtins::all(), Vec::new());
        let mut lb = LineBuf::default();
        let mut row = |line: &str| {
            lb.fill(line, &m, 128);
            lb.row().is_some()
        };
        for yes in [
            "10.1.2.3:5120 [07/Dec/2026:10:00:01.120] web_tls~ pool_a/node-2 4/0/1/9/14 200 5120 - - ---- 12/3/1/0/0 0/0 \"GET /a HTTP/1.1\"",
            "1765101601.204 311 10.9.0.4 TCP_MISS/200 8812 GET http://repo.example/x.deb bob HIER_DIRECT/10.9.0.1 application/octet-stream",
            "2026-12-07 10:00:01 node-7 42 17 0.5 3 - -",
        ] {
            assert!(row(yes), "{yes}");
        }
        for no in [
            // Sentences: two words side by side.
            "Health check for server pool_a/node-2 failed, reason: Layer7 timeout, check duration: 2001ms",
            "chrome.exe - proxy.example.org:5070 open through proxy proxy.example.org:5070 HTTPS",
            "10.0.0.1 41 17 connection reset 9 8",
            // Too short to be a row.
            "Proxy web_tls started.",
            "10.0.0.1 41 17 x",
            // Mostly words, none side by side.
            "Notification: 2 (n.leader), LOOKING (n.state), 3 (n.sid), FOLLOWING (my state)",
        ] {
            assert!(!row(no), "{no}");
        }
    }

    #[test]
    fn a_long_key_value_keeps_its_key_and_is_one_value() {
        // A rule's text or an error chain runs past 256 bytes: still one value after its key,
        // not a `<LONG>` that lost the key nor words of the line after a cut.
        let rule = format!(
            "rule=\"alert: HighLoad\\nexpr: {}\\nfor: 5m\" err=\"query timed out\" id=7",
            "sum(rate(x{job=\\\"api\\\"}[5m])) by (pod) > 0.9 and ".repeat(12)
        );
        assert!(rule.len() > 600, "{}", rule.len());
        assert_eq!(toks(&rule), ["rule=<*>", "err=<*>", "id=<*>"]);
        // One whitespace token longer than 256 bytes keeps its key too; a token without a key
        // is still `<LONG>`, and so is a message's.
        let blob = "A".repeat(300);
        assert_eq!(toks(&format!("data={blob} n=1")), ["data=<*>", "n=<*>"]);
        assert_eq!(toks(&format!("{blob} n=1")), ["<LONG>", "n=<*>"]);
        // A quote that closes beyond 4096 bytes leaves the value's first word alone.
        let far = format!("note=\"a {} b\"", "x ".repeat(2100));
        assert_eq!(toks(&far)[0], "note=<*>");
        assert!(toks(&far).len() > 100);
        // A long value is no word to hold (each shape keeps its words' text).
        let m = Masker::new(Builtins::all(), Vec::new());
        let mut lb = LineBuf::default();
        lb.fill(&rule, &m, 128);
        assert_eq!(lb.toks[0].word, 0);
        assert_ne!(lb.toks[1].word, 0, "err=\"query timed out\" is a word");
    }

    #[test]
    fn whitespace_runs_collapse() {
        assert_eq!(toks("  a \t b\r\n c  "), ["a", "b", "c"]);
        assert!(toks("").is_empty());
        assert!(toks("   ").is_empty());
    }

    #[test]
    fn numbers_with_unit_tokens_join() {
        assert_eq!(toks("lifetime <1 sec"), ["lifetime", "<DUR>"]);
        assert_eq!(
            toks("1190 bytes (1.16 KB) sent"),
            ["<NUM>", "bytes", "(<NUM>)", "sent"]
        );
        assert_eq!(toks("took 5 ms."), ["took", "<DUR>."]);
    }

    #[test]
    fn date_runs_join_into_one_time_token() {
        assert_eq!(toks("at Fri Jun 17 07:07:00 2005 x"), ["at", "<TIME>", "x"]);
        assert_eq!(toks("2015-07-29 17:41:44,747 INFO"), ["<TIME>", "INFO"]);
        assert_eq!(toks("Jun 14 15:16:01 combo"), ["<TIME>", "combo"]);
        assert_eq!(toks("may 3 things"), ["may", "<NUM>", "things"]);
    }

    #[test]
    fn quoted_values_with_spaces_stay_one_token() {
        assert_eq!(
            toks("acquire tag=\"View Lock\", name=x"),
            ["acquire", "tag=<*>,", "name=<*>"]
        );
        // unbalanced quote: no join
        assert_eq!(toks("a tag=\"x b"), ["a", "tag=<*>", "b"]);
    }

    #[test]
    fn a_quoted_value_runs_past_the_quotes_it_escapes() {
        // Go's %q and klog escape the quotes of a value inside a value: the value ends at the
        // quote that closes it, not at the first escaped one.
        assert_eq!(
            toks(r#"skipping err="failed to \"StartContainer\" for \"coredns\" with x" pod="a/b""#),
            ["skipping", "err=<*>", "pod=<*>"]
        );
        // An escaped backslash before a quote does not escape the quote.
        assert_eq!(
            toks(r#"set path="C:\\" mode=rw"#),
            ["set", "path=<*>", "mode=<*>"]
        );
        // So does a quoted value with spaces that no key names.
        assert_eq!(
            toks(r#"launch "a b\" c" x=1"#),
            ["launch", "\"<*>\"", "x=<*>"]
        );
        assert_eq!(closing_quote(br#"a\"b""#, b'"'), Some(4));
        assert_eq!(closing_quote(br#"a\\"b"#, b'"'), Some(3));
        assert_eq!(closing_quote(br#"a\""#, b'"'), None);
    }

    #[test]
    fn a_quoted_message_that_opens_a_structured_line_keeps_its_words() {
        // klog: the quoted message, then its fields. Its words are the event's.
        assert_eq!(
            toks(r#""SyncLoop UPDATE" source="api" pods=["shop/redis-2"]"#),
            ["\"SyncLoop", "UPDATE\"", "source=<*>", "pods=<*>"]
        );
        assert_eq!(
            toks(r#"I1206 08:00:19.202712 1087 kubelet.go:2400] "Starting kubelet""#)[4..],
            ["\"Starting", "kubelet\""]
        );
        // A quoted value inside the text, or one that no field follows, is still one value.
        assert_eq!(
            toks(r#"launch "Microsoft Word" failed"#),
            ["launch", "\"<*>\"", "failed"]
        );
        assert_eq!(
            toks(r#""Microsoft Word" failed to start"#),
            ["\"<*>\"", "failed", "to", "start"]
        );
        // A field has a key: `=x` after it is no field.
        assert_eq!(toks(r#""Microsoft Word" =x"#), ["\"<*>\"", "=<*>"]);
    }

    #[test]
    fn upper_case_words_are_recognised() {
        for w in [
            "RUNNING",
            "HTTPS",
            "SOCKS5",
            "(LOOKING)",
            "NEW,",
            "SUCCESS_CONTAINER_CLEANUP",
        ] {
            assert!(is_caps_word(w.as_bytes()), "{w}");
        }
        for w in ["A", "Running", "KB2928120", "R02-M1", "http", "12", "X1"] {
            assert!(!is_caps_word(w.as_bytes()), "{w}");
        }
    }

    #[test]
    fn quoted_values_with_spaces_are_one_variable_token() {
        assert_eq!(
            toks("launch \"Microsoft Word\" failed"),
            ["launch", "\"<*>\"", "failed"]
        );
        assert_eq!(toks("open ('a b c'), done"), ["open", "('<*>'),", "done"]);
        // So is a request or command line: its method is a value of the one event.
        assert_eq!(
            toks("req \"GET /a/b HTTP/1.1\" 200"),
            ["req", "\"<*>\"", "<NUM>"]
        );
        // Bracketed free text too; brackets nest, a lone `(` opens a list whose words stay,
        // and a bracket closed inside its token or followed by a word is no span.
        assert_eq!(
            toks("failed (2: No such file or directory), client: x"),
            ["failed", "(<*>),", "client:", "x"]
        );
        assert_eq!(
            toks("threw [Failed: f(a b) c] with"),
            ["threw", "[<*>]", "with"]
        );
        assert_eq!(
            toks("Fan speeds ( 3552 3534 )"),
            ["Fan", "speeds", "(", "<NUM>", ")"]
        );
        assert_eq!(toks("by (uid=0) ok"), ["by", "(uid=<*>)", "ok"]);
        // A brace of two words is a structure's value, unless `key=` fields say which one.
        assert_eq!(toks("done: {'sent': True}"), ["done:", "{<*>}"]);
        // A JSON object's members name their keys as `key=` fields do, and a brace that opens
        // the line is the whole message (a structured log line), not a value in it.
        assert_eq!(
            toks("got {\"id\": 7, \"ok\": true} back"),
            ["got", "{\"id\":", "<NUM>,", "\"ok\":", "<BOOL>}", "back"]
        );
        assert_eq!(
            toks("{'event': 'disk_full', 'n': 3}"),
            ["{'event':", "'disk_full',", "'n':", "<NUM>}"]
        );
        assert_eq!(
            toks("START {act=main flg=0x1} from"),
            ["START", "{act=<*>", "flg=<*>}", "from"]
        );
        assert_eq!(
            toks("Key (sku, tenant)=(a, 3) exists"),
            ["Key", "(sku,", "tenant)=<*>", "<NUM>)", "exists"]
        );
        // A bracket that closes inside its own token opens no span (this once sliced backwards).
        assert_eq!(toks("x (a) b c) d"), ["x", "(a)", "b", "c)", "d"]);
        assert_eq!(toks("x ((a) b c d"), ["x", "((a)", "b", "c", "d"]);
        // One-word quotes keep their text; apostrophes open nothing.
        assert_eq!(
            toks("state \"RUNNING\" now"),
            ["state", "\"RUNNING\"", "now"]
        );
        assert_eq!(toks("don't 'stop me now"), ["don't", "'stop", "me", "now"]);
        assert_eq!(toks("it's Bob's car"), ["it's", "Bob's", "car"]);
    }

    #[test]
    fn blanks_and_which_words_route() {
        for t in ["-", "\"-\"", "[-]", "(-),", "'-'"] {
            assert!(is_blank(t.as_bytes()), "{t}");
        }
        for t in ["--", "-1", "a-b", "\"\"", "-x", ""] {
            assert!(!is_blank(t.as_bytes()), "{t}");
        }
        for t in ["nginx.service:", "worker.py:", "a.b:"] {
            assert!(!is_anchor_text(t.as_bytes()), "{t}");
        }
        // A `::` path is one name among many, with or without the colon.
        for t in [
            "orders::tests::rejects_empty_cart",
            "hyper::server:",
            "'std::bad_alloc'",
        ] {
            assert!(!is_anchor_text(t.as_bytes()), "{t}");
        }
        for t in ["::", "a::", "::b", "10::1"] {
            assert!(
                is_anchor_text(t.as_bytes()) || literal_has_digit(t.as_bytes()),
                "{t}"
            );
        }
        // Without the colon a dotted name may be a call site of its own; a plain word anchors.
        for t in ["rpc.statd", "tickTime", "error:", "Started", "...:"] {
            assert!(is_anchor_text(t.as_bytes()), "{t}");
        }
        assert!(!is_anchor_text(b"node-12"));
        // A word with an argument names one thing among many; empty brackets are a call site.
        for t in ["pam_unix(sshd:session):", "root(uid=0)", "f(x)"] {
            assert!(!is_anchor_text(t.as_bytes()), "{t}");
        }
        for t in ["open()", "connect()", "(", "()"] {
            assert!(is_anchor_text(t.as_bytes()), "{t}");
        }
    }

    #[test]
    fn only_a_name_before_the_equals_sign_makes_a_key() {
        for t in ["user=<*>", "db.pool-size=<*>", "a_b=", "x=y=z"] {
            assert!(is_keyed(t.as_bytes()), "{t}");
        }
        for t in ["'status=<*>'", "root(uid=<*>)", "(protocol=<*>,", "{a=<*>}"] {
            assert!(!is_keyed(t.as_bytes()), "{t}");
        }
    }

    #[test]
    fn paths_with_spaces_stay_one_token() {
        assert_eq!(
            toks("read /Library/Application Support/CrashReporter/x.plist ok"),
            ["read", "<PATH>", "ok"]
        );
        assert_eq!(
            toks("read /Library/Application\\ Support/x.plist ok"),
            ["read", "<PATH>", "ok"]
        );
        assert_eq!(
            toks("load C:\\Program Files\\App\\app.dll failed"),
            ["load", "<PATH>", "failed"]
        );
        assert_eq!(toks("in src/main/App.java:12"), ["in", "<PATH>:<NUM>"]);
        assert_eq!(
            toks("read /Library/Application Support/x.plist, ok"),
            ["read", "<PATH>,", "ok"]
        );
        // A word after a path is not part of it; one slash is no relative path.
        assert_eq!(
            toks("/var/log ok and/or TCP/IP"),
            ["<PATH>", "ok", "and/or", "TCP/IP"]
        );
    }

    #[test]
    fn repeated_groups_are_one_list() {
        let short = toks("sets node-1 ab12cd ok node-2 ef34ab ok");
        assert_eq!(short, ["sets", "node-<NUM>", "<HEX>", "ok"]);
        assert_eq!(
            toks("sets node-1 ab12cd ok node-2 ef34ab ok node-3 aa11bb ok end"),
            ["sets", "node-<NUM>", "<HEX>", "ok", "end"]
        );
        // Repeated words without a variable are text, not a list.
        assert_eq!(toks("go on go on"), ["go", "on", "go", "on"]);
    }

    #[test]
    fn error_texts_are_one_value() {
        assert_eq!(
            toks("pull returned error: manifest unknown: manifest unknown"),
            ["pull", "returned", "error:", "<*>"]
        );
        assert_eq!(
            toks("web is DOWN, reason: Layer4 timeout, check duration: 5ms"),
            [
                "web",
                "is",
                "DOWN,",
                "reason:",
                "<*>,",
                "check",
                "duration:",
                "<DUR>"
            ]
        );
        assert_eq!(
            toks("msg=\"pull after error: no such host\""),
            ["msg=\"pull", "after", "error:", "<*>"]
        );
        // A label that opens the message, or follows a program tag, is the message's own word.
        assert_eq!(
            toks("error: Received disconnect from x"),
            ["error:", "Received", "disconnect", "from", "x"]
        );
        assert_eq!(
            toks("sshd[7]: error: Received disconnect"),
            ["sshd[<NUM>]:", "error:", "Received", "disconnect"]
        );
        assert_eq!(toks("ended with error:"), ["ended", "with", "error:"]);
        assert_eq!(toks("Error: x y"), ["Error:", "x", "y"]);
    }

    #[test]
    fn a_label_right_after_the_timestamp_opens_the_message() {
        // The level word of a `<time> error: <message>` header is no word of the message: what
        // follows it is the message, whose words are the template (the time is a digit-ending
        // token, which once read as a word of the message and made every error one pattern).
        assert_eq!(
            toks("2026-12-07T12:00:00Z error: failed to connect to db"),
            ["<TIME>", "error:", "failed", "to", "connect", "to", "db"]
        );
        assert_eq!(
            toks("Dec  7 12:00:00 err: out of memory"),
            ["<TIME>", "err:", "out", "of", "memory"]
        );
        assert_eq!(
            toks("2026-12-07 12:00:00 pull returned error: no such host"),
            ["<TIME>", "pull", "returned", "error:", "<*>"]
        );
    }

    #[test]
    fn an_error_text_inside_a_quoted_message_ends_with_the_quote() {
        // The fields after a logfmt message are the line's structure, not the error's words.
        assert_eq!(
            toks("msg=\"pull after error: no such host\" image=nginx"),
            ["msg=\"pull", "after", "error:", "<*>", "image=<*>"]
        );
        assert_eq!(
            toks("msg=\"slow query: SELECT a, b\", dur=5"),
            ["msg=\"slow", "query:", "<*>,", "dur=<*>"]
        );
        // An escaped quote is the message's own; an unclosed one leaves the text to the end.
        assert_eq!(
            toks("msg=\"get failed: \\\"x\\\" gone\" id=7"),
            ["msg=\"get", "failed:", "<*>", "id=<*>"]
        );
        assert_eq!(
            toks("said \"it failed: a b"),
            ["said", "\"it", "failed:", "<*>"]
        );
    }

    #[test]
    fn level_is_read_from_the_words_of_a_value_span() {
        // A value span is one token of the template, but level detection reads the line's
        // whitespace tokens, so it finds what `level::from_text` finds.
        let m = Masker::new(Builtins::all(), Vec::new());
        let mut lb = LineBuf::default();
        for line in [
            "org.postgresql.util.PSQLException: ERROR: duplicate key value",
            "java.io.IOException: ERROR x",
            "2026-12-07 12:00:00 app failed: ERROR disk",
            "x \"a b c\" d (e f g) WARN h",
        ] {
            lb.fill(line, &m, 128);
            assert_eq!(lb.level(line), level::from_text(line.as_bytes()), "{line}");
            assert_ne!(lb.level(line), Level::Unknown, "{line}");
        }
    }

    #[test]
    fn statements_are_one_value_wherever_their_label_stands() {
        assert_eq!(
            toks("STATEMENT:  UPDATE t SET a = 'x', b = now() WHERE id = 7"),
            ["STATEMENT:", "<*>"]
        );
        assert_eq!(
            toks("LOG:  duration: 0.5 ms  statement: SELECT a, b FROM t"),
            ["LOG:", "duration:", "<DUR>", "statement:", "<*>"]
        );
        assert_eq!(toks("slow query:"), ["slow", "query:"]);
    }

    #[test]
    fn a_described_name_is_one_value() {
        assert_eq!(
            toks("Started nginx.service - A high performance web server."),
            ["Started", "<*>."]
        );
        assert_eq!(
            toks("Starting postgresql@16-main.service - PostgreSQL Cluster 16-main..."),
            ["Starting", "<*>..."]
        );
        assert_eq!(
            toks("Reached target basic.target - Basic System."),
            ["Reached", "target", "<*>."]
        );
        // A logger's header before its message, a name that opens the line, a dash at the end.
        assert_eq!(
            toks("INFO app.log - rotated the file"),
            ["INFO", "app.log", "-", "rotated", "the", "file"]
        );
        assert_eq!(toks("nginx.service - x"), ["nginx.service", "-", "x"]);
        assert_eq!(toks("Started x.service - "), ["Started", "x.service", "-"]);
        assert_eq!(toks("Got A.Foo - x"), ["Got", "A.Foo", "-", "x"]);
        // Only a unit (a service manager's type of unit) and a description that ends like a
        // sentence: a thread and a logger name before the message are a header, whose message
        // is the template.
        assert_eq!(
            toks("main app.log - disk full"),
            ["main", "app.log", "-", "disk", "full"]
        );
        assert_eq!(
            toks("MainThread app.db - query failed."),
            ["MainThread", "app.db", "-", "query", "failed."]
        );
        assert_eq!(
            toks("main app.service - disk full"),
            ["main", "app.service", "-", "disk", "full"]
        );
    }

    #[test]
    fn a_setting_line_is_name_and_value() {
        assert_eq!(toks("\tlog.retention.hours = 168"), ["<*>", "=", "<*>"]);
        assert_eq!(
            toks("sasl.enabled.mechanisms = [SCRAM-SHA-512, PLAIN]"),
            ["<*>", "=", "<*>"]
        );
        assert_eq!(toks("ssl.keystore.location = "), ["<*>", "="]);
        // Not a name first, or the name not first: words as usual.
        assert_eq!(toks("a,b,c = 1"), ["a,b,c", "=", "<NUM>"]);
        assert_eq!(toks("set x = 1"), ["set", "x", "=", "<NUM>"]);
    }

    #[test]
    fn exception_lines_are_class_and_message_values() {
        // The message is a value; the class stays as written, even dotted (no `<FQN>`), so a
        // class never seen before is a new pattern.
        for line in [
            "java.io.IOException: Broken pipe",
            "KeyError: 'shipping_address'",
            "django.core.exceptions.DisallowedHost: Invalid HTTP_HOST header: 'x'.",
            "a.b.CorruptRecordException: failed its CRC, or is otherwise corrupt.",
            "psycopg2.errors.UniqueViolation: duplicate key value",
        ] {
            let class = line.split(' ').next().unwrap_or_default();
            assert_eq!(toks(line), [class, "<*>"], "{line}");
        }
        assert_eq!(
            toks("Caused by: java.net.SocketTimeoutException: Read timed out"),
            ["Caused", "by:", "java.net.SocketTimeoutException:", "<*>"]
        );
        // Not classes: an upper-case level, a plain word, a dotted subject in lower case.
        assert_eq!(toks("ERROR: could not"), ["ERROR:", "could", "not"]);
        assert_eq!(toks("Exception: x y"), ["Exception:", "x", "y"]);
        // A logger name (log4j's `%c: %m`) is no exception class: its messages are events.
        assert_eq!(
            toks("INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: Created MRAppMaster"),
            ["INFO", "[main]", "<FQN>:", "Created", "MRAppMaster"]
        );
        assert_eq!(
            toks("NameSystem.addStoredBlock: blockMap updated"),
            ["NameSystem.addStoredBlock:", "blockMap", "updated"]
        );
    }

    #[test]
    fn stack_frames_are_one_value() {
        assert_eq!(
            toks("at com.acme.A$1.run(A.java:42) ~[app-1.2.jar:1.2]"),
            ["at", "<*>", "~[<*>]"]
        );
        assert_eq!(toks("at a.b.C.apply(C.scala:7)"), ["at", "<*>"]);
        assert_eq!(
            toks("at a.b.C.apply(C.java) [na:na]"),
            ["at", "<*>", "[<*>]"]
        );
        // A native frame keeps its words; packaging data only follows a frame.
        let native = toks("at a.B.c(Native Method) ~[na:na]");
        assert_eq!(native[2..], ["Method)", "~[na:na]"]);
        assert_eq!(toks("x [na:na]"), ["x", "[na:na]"]);
        assert_eq!(toks("call f(x) now"), ["call", "f(x)", "now"]);
    }

    #[test]
    fn javascript_stack_frames_are_one_value() {
        for frame in [
            "at getUser (/app/src/users.js:42:17)",
            "   at Layer.handle [as handle_request] (/app/node_modules/express/lib/layer.js:95:5)",
            "at process.processTicksAndRejections (node:internal/process/task_queues:95:5)",
            "at async Promise.all (index 0)",
            "at /app/index.js:10:15",
            "at new Server (file:///app/server.mjs:7:3)",
            "at Array.forEach (<anonymous>)",
            "at JSON.parse (native)",
        ] {
            assert_eq!(toks(frame), ["at", "<*>"], "{frame}");
        }
        // Not frames: no location of a file with a line and a column at the end.
        for line in [
            "at least 3 replicas required (got 2:1:0)",
            "at 12:30:05 the job started",
            "at most 5 retries",
        ] {
            assert_ne!(toks(line)[1..], ["<*>"], "{line}");
        }
        // .NET frames with their file, and PHP frames.
        for frame in [
            "   at MyApp.OrderService.Place(Order order, Int32 qty) in /src/OrderService.cs:line 42",
            "at Api.Controllers.OrdersController.Post() in C:\\src\\Orders.cs:line 17",
        ] {
            assert_eq!(toks(frame), ["at", "<*>"], "{frame}");
        }
        assert_eq!(
            toks("#1 /var/www/html/src/Order.php(42): App\\Repo->find(17, 'x y')"),
            ["#<NUM>", "<*>"]
        );
        // Without a file the words stay, as Java's `(Native Method)` does; `{main}` is a word.
        assert_eq!(toks("at X.Y.Z(Order order)").len(), 3);
        assert_eq!(toks("#2 {main}"), ["#<NUM>", "{main}"]);
        // `at` later in a line is a word of the message.
        assert_eq!(
            toks("error at getUser (/app/users.js:42:17)")[..2],
            ["error", "at"]
        );
    }

    #[test]
    fn a_message_after_at_or_a_number_is_no_frame() {
        // Ordinary messages that end like a frame: each must keep its words, or distinct
        // events would share `at <*>` and never be announced as new.
        for line in [
            "at startup: loaded 3 plugins from /etc/x.conf:1:2",
            "at noon backup done 10.0.0.1:22:3",
            "at least one worker crashed see ./x:1:2",
            "at capacity (db.example.com:5432:1)",
            "at shutdown something failed (<anonymous>)",
            "at least 3 retries, last (index 2)",
            "at peak load the queue hit (native)",
        ] {
            assert_ne!(toks(line)[1..], ["<*>"], "{line}");
        }
        // A PHP frame names a file by its path.
        for line in [
            "#13 v1.2(4): released to staging",
            "#12 README.md(3): typo fixed",
        ] {
            assert_ne!(toks(line)[1..], ["<*>"], "{line}");
        }
        // Frames Node prints still are frames.
        for frame in [
            "at EventEmitter.emit (node:events:517:28)",
            "at async /app/jobs.js:3:9",
            "at Object.<anonymous> (C:\\app\\index.js:1:7)",
            "at new Promise (<anonymous>)",
            "at Timeout.<computed> [as _onTimeout] (/app/t.js:2:3)",
            "at t (https://cdn.example.com/main.3f2a.js:1:2345)",
            "at evalmachine.<anonymous>:1:1",
        ] {
            assert_eq!(toks(frame), ["at", "<*>"], "{frame}");
        }
        assert_eq!(
            toks("#0 [internal function]: App\\Kernel->handle(Object(Request))"),
            ["#<NUM>", "<*>"]
        );
    }

    #[test]
    fn an_http_method_before_a_path_is_a_value() {
        assert_eq!(
            toks("exception on PATCH /api/orders/7"),
            ["exception", "on", "<*>", "<PATH>"]
        );
        assert_eq!(toks("POST requests"), ["POST", "requests"]);
        assert_eq!(toks("GET \"/x\""), ["GET", "\"<PATH>\""]);
    }

    #[test]
    fn logfmt_message_words_stay_words() {
        assert_eq!(
            toks("msg=\"cleaning up after shim disconnected\" id=7"),
            [
                "msg=\"cleaning",
                "up",
                "after",
                "shim",
                "disconnected\"",
                "id=<*>"
            ]
        );
        assert_eq!(
            toks("level=info tag=\"View Lock\" id=7"),
            ["level=<*>", "tag=<*>", "id=<*>"]
        );
        // So do a JSON object's or a dict's message, where any other quoted value is one value.
        assert_eq!(
            toks("{\"time\": \"12:00 UTC\", \"message\": \"disk full\", \"n\": 1}"),
            [
                "{\"time\":",
                "\"<*>\",",
                "\"message\":",
                "\"disk",
                "full\",",
                "\"n\":",
                "<NUM>}"
            ]
        );
        assert_eq!(toks("{'msg': 'disk full'}"), ["{'msg':", "'disk", "full'}"]);
    }

    #[test]
    fn token_cap_is_applied() {
        let line = "w ".repeat(1000);
        let m = Masker::new(Builtins::all(), Vec::new());
        let mut lb = LineBuf::default();
        lb.fill(&line, &m, 128);
        assert_eq!(lb.toks.len(), 128);
    }

    #[test]
    fn quoted_words_are_told_from_apostrophes() {
        for yes in ["\"a\"", "'guest'", "(\"db-x\"),", "['/']", "\"tls-certs\":"] {
            assert!(is_quoted_word(yes.as_bytes()), "{yes}");
            assert!(!is_anchor_text(yes.as_bytes()), "{yes}");
        }
        for no in ["\"\"", "'s", "don't", "\"a b", "'x'y", "plain", "x=\"y\""] {
            assert!(!is_quoted_word(no.as_bytes()), "{no}");
        }
    }

    /// Tokenising a line costs about one pass over it, however its compact JSON members are
    /// laid out: a whitespace token is split where the next member starts without scanning the
    /// rest of it again for every member (`x,"msg":x,"msg":x…`, 200 KB without a space, was
    /// read once per member up to the token cap: ~130 ms in a debug build where it now takes ~2).
    #[test]
    fn compact_json_member_breaks_are_read_in_one_pass() {
        let m = Masker::new(Builtins::all(), Vec::new());
        let mut lb = LineBuf::default();
        // The fastest of five reads: a ratio of minimums shrugs off a loaded machine's pauses.
        let mut time = |line: &str| {
            (0..5)
                .map(|_| {
                    let t = std::time::Instant::now();
                    lb.fill(line, &m, 128);
                    t.elapsed().as_secs_f64()
                })
                .fold(f64::INFINITY, f64::min)
        };
        let n = 200_000;
        for unit in [r#"x,"msg":x"#, r#","a":,"a":"#, r#","a":"x"#, r#","a":{"#] {
            let crafted = unit.repeat(n / unit.len());
            // The same bytes with no member name after a comma: one long token, read and masked
            // once (which costs more than reading it: the crafted line was ~10 times this).
            let plain = crafted.replace(':', ";");
            let (c, p) = (time(&crafted), time(&plain));
            assert!(c < 2.0 * p, "{unit}: {c:.4}s against {p:.4}s");
        }
    }

    #[test]
    fn wording_is_lower_case_words_and_shouted_statuses_not_names() {
        for word in ["invalid", "user,", "don't", "NOT", "FAILED,", "OK."] {
            assert!(is_wording(word.as_bytes()), "{word}");
        }
        for word in ["Payments", "A", "SKU-7,", "(sku,", "x1", "Error:", ""] {
            assert!(!is_wording(word.as_bytes()), "{word}");
        }
    }

    /// Level detection reads the same header tokens whether or not a user mask rewrote the line
    /// (then `level::from_text` splits the line itself, see `LineBuf::level`): a compact JSON
    /// line's members are header tokens both ways, so a level member after the first is found
    /// both ways, and a line's level does not depend on whether a user mask matched it.
    #[test]
    fn compact_json_levels_do_not_depend_on_user_masks() {
        let plain = Masker::new(Builtins::all(), Vec::new());
        let mut lb = LineBuf::default();
        for (line, want) in [
            (
                r#"{"ts":"2026-12-07T12:00:00Z","level":"error","msg":"disk full"}"#,
                Level::Error,
            ),
            (
                r#"{"caller":"a.go:1","severity":"warn","msg":"slow"}"#,
                Level::Warn,
            ),
            (r#"{"level":"info","msg":"x"}"#, Level::Info),
        ] {
            lb.fill(line, &plain, 128);
            assert_eq!(lb.level(line), want, "{line}");
            assert_eq!(level::from_text(line.as_bytes()), want, "{line}");
        }
    }
}
