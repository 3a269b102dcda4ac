//! Values that span several words: quoted and bracketed text, error texts after their label,
//! stack frames, a unit with its description, a setting line's value. Each is one token, so that
//! a value's word count cannot split one event into many (see `tokenize`, which calls these on
//! each whitespace token). All functions here read bytes only; `LineBuf` decides what to push.

use super::mask::{closing_quote, is_word};

/// How far ahead a quoted or bracketed value may look for its closing byte (and a `key="...`
/// token for its closing quote).
pub(super) const MAX_QUOTE: usize = 256;

/// A quoted value that spans several whitespace tokens: `"Microsoft Word",` starting at `start`,
/// whose first token ends at `first_end`. Returns the end of the span, the number of opening
/// brackets before the quote and the number of punctuation bytes after the closing quote. The
/// opening quote must start the token (after brackets) and not close inside it, and the closing
/// one (the first that no backslash escapes) must end a word (`don't` is no quote); a value
/// must close within [`MAX_QUOTE`] bytes.
pub(super) fn quoted_span(
    s: &[u8],
    start: usize,
    first_end: usize,
) -> Option<(usize, usize, usize)> {
    let tok = &s[start..first_end];
    let pre = tok
        .iter()
        .take_while(|c| matches!(c, b'(' | b'[' | b'{'))
        .count();
    let q = *tok.get(pre)?;
    if !matches!(q, b'"' | b'\'') || closing_quote(&tok[pre + 1..], q).is_some() {
        return None;
    }
    let close = first_end + closing_quote(&s[first_end..s.len().min(first_end + MAX_QUOTE)], q)?;
    let mut end = close + 1;
    while end < s.len() && !s[end].is_ascii_whitespace() {
        if is_word(s[end]) {
            return None;
        }
        end += 1;
    }
    Some((end, pre, end - close - 1))
}

/// A bracketed value of three words or more, `(2: No such file or directory),` or `[Request
/// processing failed: x]`, or a braced one of two words or more, `{'sent': True}` (not one that
/// holds keys or opens the line, see below), starting at `start`, whose first token ends at
/// `first_end`: like [`quoted_span`], it returns the end of the span, 0 opening bytes before the
/// bracket, and the punctuation bytes after the closing one. The bracket must open the token and
/// have text after it (a lone `(` opens a list of values, `( 3552 3534 )`, whose words stay
/// tokens), brackets of its kind nest, and the closing one must end a word within
/// [`MAX_PAREN`] bytes for a parenthesis and [`MAX_QUOTE`] for a bracket or a brace. Free text in
/// brackets is one value the way free text in quotes is, so an error text of several words does
/// not change the token count. `pairs` finds the closing bracket (see [`BracketPairs`]).
pub(super) fn bracket_span(
    s: &[u8],
    start: usize,
    first_end: usize,
    pairs: &mut BracketPairs,
) -> Option<(usize, usize, usize)> {
    let open = s[start];
    if first_end - start < 2 {
        return None;
    }
    let reach = match open {
        b'(' => MAX_PAREN,
        b'[' | b'{' => MAX_QUOTE,
        _ => return None,
    };
    // Most brackets close within a few words: scan for those, and pair the whole line only for
    // a parenthesis that reaches further.
    let close_at = near_close(s, start, MAX_QUOTE)
        .or_else(|| {
            (reach > MAX_QUOTE)
                .then(|| pairs.close_of(s, start))
                .flatten()
        })
        .filter(|&at| at >= first_end && at - start < reach)?;
    // Three words at least: `(1.16 KB)`, `(bus 00)` or `[06/Dec/2026:08:00:04 +0000]` are one
    // value and a unit, a label or a time, which the later steps type.
    let words_after_first = s[first_end..close_at]
        .split(u8::is_ascii_whitespace)
        .filter(|w| !w.is_empty())
        .count();
    // A brace holds a value of a structure (`{'sent': True}`), never a number with its unit: two
    // words do. Unless it holds `key=value` fields or JSON members (`"level":`), whose keys say
    // which structure it is, or opens the line: a JSON object or a dict that is the whole line
    // is a structured message, whose words tell its events apart.
    let brace = open == b'{';
    let keyed = |t: &[u8]| t.contains(&b'=') || t.windows(2).any(|w| w == b"\":");
    if words_after_first < if brace { 1 } else { 2 }
        || (brace && (keyed(&s[start..close_at]) || s[..start].iter().all(u8::is_ascii_whitespace)))
    {
        return None;
    }
    let mut end = close_at + 1;
    while end < s.len() && !s[end].is_ascii_whitespace() {
        if is_word(s[end]) {
            return None;
        }
        end += 1;
    }
    Some((end, 0, end - close_at - 1))
}

/// Where the bracket at `start` closes, if it does within `reach` bytes: the first position
/// where its kind's depth returns to zero.
fn near_close(s: &[u8], start: usize, reach: usize) -> Option<usize> {
    let open = s[start];
    let close = match open {
        b'(' => b')',
        b'[' => b']',
        _ => b'}',
    };
    let mut depth = 0u32;
    for (k, &c) in s[start..].iter().enumerate().take(reach) {
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return Some(start + k);
            }
        }
    }
    None
}

/// How far a parenthesised value may run to its closing parenthesis: a reason or a server's
/// reply in parentheses (`status=sent (250 2.0.0 Ok: queued as …)`, `(reason: …)`) is often
/// longer than a quoted value. Why brackets and braces keep [`MAX_QUOTE`]: a bracketed list of
/// two items stays words (the three-word rule of [`bracket_span`]), so reading long lists as one
/// value would split one event by its list's length.
const MAX_PAREN: usize = 1024;

/// Where each opening bracket of a line closes, found in one pass over the line the first time a
/// parenthesis does not close nearby (see [`bracket_span`]). Why not a scan from each
/// parenthesis: a line of many that close far away, or never, would cost a scan of
/// [`MAX_PAREN`] bytes per token; the pairs cost one pass per line whatever the line holds.
#[derive(Debug, Default)]
pub(super) struct BracketPairs {
    /// `close[i]`: where the bracket at `i` closes, or `u32::MAX`; empty until the first ask.
    close: Vec<u32>,
    /// Open brackets of each kind not closed yet, while pairing.
    open: [Vec<u32>; 3],
}

impl BracketPairs {
    /// Forgets the last line's pairs.
    pub(super) fn clear(&mut self) {
        self.close.clear();
    }

    /// Where the bracket at `at` closes: the first position after it where its kind's depth
    /// returns to where it was, brackets of other kinds aside.
    fn close_of(&mut self, s: &[u8], at: usize) -> Option<usize> {
        if self.close.is_empty() {
            self.pair(s);
        }
        let c = *self.close.get(at)?;
        (c != u32::MAX).then_some(c as usize)
    }

    fn pair(&mut self, s: &[u8]) {
        self.close.resize(s.len(), u32::MAX);
        for stack in &mut self.open {
            stack.clear();
        }
        for (k, &c) in s.iter().enumerate() {
            let (kind, opens) = match c {
                b'(' => (0, true),
                b'[' => (1, true),
                b'{' => (2, true),
                b')' => (0, false),
                b']' => (1, false),
                b'}' => (2, false),
                _ => continue,
            };
            if opens {
                self.open[kind].push(k as u32);
            } else if let Some(o) = self.open[kind].pop() {
                self.close[o as usize] = k as u32;
            }
        }
    }
}

/// A stack frame's location in one token: Java's and Scala's `a.b.C.run(C.java:42)` or
/// `C.run(C.java)`, or, right after a frame (`after_frame`), logback's packaging data
/// `~[app.jar:1.2]` or `[na:na]`. A method's file and line, and the jar it came from, are as much
/// the program's values as the method is, so `at <*> ~[<*>]` is one template. Returns how many
/// bytes stay before (`~[`) and after (`]`) the placeholder. `C.run(Native Method)` and
/// `(Unknown Source)` are not matched: their words are the format's, and such frames keep a
/// template of their own.
pub(super) fn stack_frame(tok: &[u8], after_frame: bool) -> Option<(usize, usize)> {
    if after_frame {
        let pre = match tok {
            [b'~', b'[', ..] => 2,
            [b'[', ..] => 1,
            _ => return None,
        };
        return (tok.len() > pre + 1 && tok.ends_with(b"]")).then_some((pre, 1));
    }
    let is_name = |c: &u8| {
        c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'$' | b'/' | b'<' | b'>' | b'-')
    };
    let open = tok.iter().position(|&c| c == b'(')?;
    let method = &tok[..open];
    let place = tok[open + 1..].strip_suffix(b")")?;
    let (file, line) = match place.iter().position(|&c| c == b':') {
        Some(p) => (&place[..p], &place[p + 1..]),
        None => (place, &b"0"[..]),
    };
    let frame = method.first().is_some_and(u8::is_ascii_alphabetic)
        && method.contains(&b'.')
        && method.iter().all(is_name)
        && file.contains(&b'.')
        && file.iter().all(is_name)
        && is_number(line);
    frame.then_some((0, 0))
}

/// Where a JavaScript stack frame that opens at `from` ends, as Node.js and browsers print one
/// after `at`: `getUser (/app/users.js:42:17)`, `async Promise.all (index 0)`, `Layer.handle [as
/// handle_request] (/app/layer.js:95:5)` or a bare location, `/app/index.js:10:15`. A frame is
/// one of those shapes whole: maybe `async` or `new`, then one name, maybe `[as alias]`, then in
/// brackets a location of a script (a path, a URL, `node:events`, `<anonymous>`) with a line and
/// a column, or Node's `(index N)`, `(native)` or `(<anonymous>)`; or maybe `async` and a bare
/// location. The function and where it is are one value, as a Java frame is (see
/// [`stack_frame`]): `at <*>`, so that a stack printed line by line is one pattern whatever
/// functions it went through. `None` for anything else after `at`: a message that only ends like
/// a frame (`at startup: loaded from /etc/x.conf:1:2`, `at capacity (db.example.com:5432:1)`)
/// keeps its words, or distinct events would share one pattern.
pub(super) fn script_frame(s: &[u8], from: usize) -> Option<usize> {
    let end = text_end(s);
    let mut text = s.get(from..end).filter(|t| !t.is_empty())?;
    for keyword in [&b"async "[..], b"new "] {
        if let Some(rest) = text.strip_prefix(keyword) {
            text = &rest[skip_spaces(rest, 0)..];
        }
    }
    if is_script_place(text) {
        return Some(end);
    }
    let (name, rest) = split_word(text);
    let name_ok = !name.is_empty()
        && !name
            .iter()
            .any(|c| matches!(c, b':' | b'(' | b')' | b'[' | b']' | b'"' | b'\''));
    let mut rest = rest;
    if let Some(alias) = rest.strip_prefix(b"[as ") {
        let close = alias.iter().position(|&c| c == b']')?;
        rest = &alias[close + 1..];
        rest = &rest[skip_spaces(rest, 0)..];
    }
    let inner = rest.strip_prefix(b"(")?.strip_suffix(b")")?;
    let place = is_script_place(inner)
        || inner == b"native"
        || inner == b"<anonymous>"
        || inner.strip_prefix(b"index ").is_some_and(is_number);
    (name_ok && place).then_some(end)
}

/// `text` split after its first word: the word, and what follows its spaces.
fn split_word(text: &[u8]) -> (&[u8], &[u8]) {
    let at = text
        .iter()
        .position(u8::is_ascii_whitespace)
        .unwrap_or(text.len());
    (&text[..at], &text[skip_spaces(text, at)..])
}

/// `/app/users.js:42:17`, `node:internal/process/task_queues:95:5`, `https://x.io/a.js:1:2`,
/// `<anonymous>:1:1`: where JavaScript code is, a script and a line and a column, no spaces.
/// The script is a path or a URL, a module of Node's own, or has a script's extension: `db.
/// example.com:5432:1` is a host and a port, and `10:30:45` a time.
fn is_script_place(place: &[u8]) -> bool {
    let mut parts = place.rsplitn(3, |&c| c == b':');
    let (Some(col), Some(line), Some(file)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let script = |f: &[u8]| {
        f.iter().any(|&c| matches!(c, b'/' | b'\\'))
            || f.starts_with(b"node:")
            || f.ends_with(b"<anonymous>")
            || [
                &b".js"[..],
                b".mjs",
                b".cjs",
                b".ts",
                b".mts",
                b".cts",
                b".jsx",
                b".tsx",
            ]
            .iter()
            .any(|ext| f.ends_with(ext))
    };
    is_number(col)
        && is_number(line)
        && !file.is_empty()
        && !file.iter().any(u8::is_ascii_whitespace)
        && script(file)
}

/// Where a .NET stack frame that opens at `from` ends, as the runtime prints one after `at`
/// when it knows the file: `MyApp.OrderService.Place(Order order, Int32 qty) in
/// /src/OrderService.cs:line 42`. The method and its signature are where the frame is, one value
/// as a Java frame is: `at <*>`. A frame without its file (`at X.Y(Native Method)` in Java,
/// `at X.Y(Order order)` in .NET) is not matched: its words cannot be told from the format's.
pub(super) fn dotnet_frame(s: &[u8], from: usize) -> Option<usize> {
    let end = text_end(s);
    let text = s.get(from..end)?;
    let open = text.iter().position(|&c| c == b'(')?;
    let name = &text[..open];
    let (signature, line) = split_last(text, b":line ")?;
    (name.contains(&b'.')
        && !name.iter().any(u8::is_ascii_whitespace)
        && split_last(signature, b") in ").is_some()
        && is_number(line))
    .then_some(end)
}

/// Where a PHP stack frame that opens at `from` ends, after its number (`#0`): `/var/www/
/// Order.php(42): App\Repo->find(17)`, a file by its path, its line and the call, or PHP 8's
/// `[internal function]: App\Kernel->handle()`. One value, as a Java frame is: `#<NUM> <*>`.
/// `{main}`, the last frame, is not one; nor is a file without a path (`#13 v1.2(4): released`,
/// an issue's number and a message).
pub(super) fn php_frame(s: &[u8], from: usize) -> Option<usize> {
    let end = text_end(s);
    let text = s.get(from..end)?;
    if text
        .strip_prefix(b"[internal function]: ")
        .is_some_and(|call| !call.is_empty())
    {
        return Some(end);
    }
    let first = text.split(u8::is_ascii_whitespace).next()?;
    let place = first.strip_suffix(b"):")?;
    let (file, line) = split_last(place, b"(")?;
    (file.contains(&b'.')
        && file.iter().any(|&c| matches!(c, b'/' | b'\\'))
        && is_number(line)
        && first.len() < text.len())
    .then_some(end)
}

/// Whether `t` is a number of decimal digits (a line, a column, a frame's number).
pub(super) fn is_number(t: &[u8]) -> bool {
    !t.is_empty() && t.iter().all(u8::is_ascii_digit)
}

/// `t` split around the last `sep`: what comes before it and what comes after.
fn split_last<'a>(t: &'a [u8], sep: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let at = t.windows(sep.len()).rposition(|w| w == sep)?;
    Some((&t[..at], &t[at + sep.len()..]))
}

/// `apt-daily.service`, `session-274.scope`, `postgresql@16-main.service`: a unit as a service
/// manager names it, a name, a dot and the unit's type. Only a unit's type: any other name with
/// an extension before ` - ` is a logger's, after a thread's name (`main app.log - disk full`,
/// `MainThread urllib3.connectionpool - …`), and the message after the dash is the template.
pub(super) fn is_unit_name(t: &[u8]) -> bool {
    let Some(dot) = t.iter().rposition(|&c| c == b'.') else {
        return false;
    };
    let (stem, ext) = (&t[..dot], &t[dot + 1..]);
    stem.first().is_some_and(u8::is_ascii_alphanumeric)
        && stem
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'@' | b'.' | b'\\'))
        && matches!(
            ext,
            b"service"
                | b"socket"
                | b"device"
                | b"mount"
                | b"automount"
                | b"swap"
                | b"target"
                | b"path"
                | b"timer"
                | b"slice"
                | b"scope"
        )
}

/// A line that opens with a setting's name (`log.retention.hours`, `max_connections`): a letter,
/// then letters, digits, `.`, `_` or `-`, after any indentation.
pub(super) fn is_setting_name(t: &[u8]) -> bool {
    let t = t.trim_ascii_start();
    t.first().is_some_and(u8::is_ascii_alphabetic)
        && t.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// An HTTP request method, as programs print it before the request's path.
pub(super) fn is_http_method(t: &[u8]) -> bool {
    // Most words are not in upper case: look at two bytes before comparing words.
    t.len() >= 3
        && t[0].is_ascii_uppercase()
        && t[1].is_ascii_uppercase()
        && matches!(
            t,
            b"GET" | b"POST" | b"PUT" | b"PATCH" | b"DELETE" | b"HEAD" | b"OPTIONS"
        )
}

/// A label before the text of an error (see [`error_label`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ErrorLabel {
    /// `error:`, `err:`, `failed:`, `failure:`, `reason:`, `cause:`: its text is a value when
    /// the label follows a word of the message (see `LineBuf::label_follows_word`).
    Word,
    /// An exception or error class (`java.io.IOException:`, `ValueError:`,
    /// `django.core.exceptions.DisallowedHost:`), as a traceback's last line or a `Caused by:`
    /// prints it: its message is a value wherever it stands. The class stays as written, not
    /// masked as a dotted name, though `%s: %s` fills it in too: an exception class never seen
    /// before is a new kind of error, which alerting must announce (`java.lang.OutOfMemoryError:
    /// <*>` after `java.io.IOException: <*>`).
    Class,
    /// `statement:` or `query:`: the text is a statement that the program runs, never its own
    /// message, wherever the label stands (PostgreSQL's `STATEMENT:  SELECT …`).
    Statement,
}

/// Which error label `tok` is, if any.
pub(super) fn error_label(tok: &[u8]) -> Option<ErrorLabel> {
    let word = tok.strip_suffix(b":")?;
    let is_name = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'$');
    if word.first().is_some_and(u8::is_ascii_alphabetic) && word.iter().all(is_name) {
        let last = word
            .rsplit(|&c| c == b'.' || c == b'$')
            .next()
            .unwrap_or_default();
        let class_like = last.first().is_some_and(u8::is_ascii_uppercase)
            && last.iter().any(u8::is_ascii_lowercase);
        let named = word.split(|&c| c == b'.' || c == b'$').any(|seg| {
            [&b"Exception"[..], b"Error"]
                .iter()
                .any(|kind| seg.len() > kind.len() && seg.ends_with(kind))
        });
        // A dotted name without such a suffix is a class only in a package of exceptions
        // (`django.core.exceptions.DisallowedHost:`, `psycopg2.errors.UniqueViolation:`): any
        // other is a logger name (log4j's `%c: %m`, `org.apache.hadoop.…MRAppMaster: Created …`),
        // whose messages are events of their own.
        let mut packages = word.split(|&c| c == b'.').rev().skip(1);
        let in_errors = packages.any(|seg| {
            [
                &b"exceptions"[..],
                b"exception",
                b"errors",
                b"error",
                b"exc",
            ]
            .contains(&seg)
        });
        if class_like && (named || in_errors) {
            return Some(ErrorLabel::Class);
        }
    }
    let start = word.iter().take_while(|c| !is_word(**c)).count();
    let word = &word[start..];
    if word.eq_ignore_ascii_case(b"statement") || word.eq_ignore_ascii_case(b"query") {
        return Some(ErrorLabel::Statement);
    }
    let ends_with = |suffix: &[u8]| {
        word.len() >= suffix.len() && word[word.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
    };
    let label = ends_with(b"error")
        || ends_with(b"exception")
        || [&b"err"[..], b"failed", b"failure", b"reason", b"cause"]
            .iter()
            .any(|w| word.eq_ignore_ascii_case(w));
    label.then_some(ErrorLabel::Word)
}

/// The text of an error after its label, which ends at `label_end`: the words the program filled
/// in (`no such host`, `Connection reset by peer`, `Layer4 timeout,`), one value however many
/// words it has. It runs to the end of the line, or, unless it is an exception's message or a
/// statement (`whole`), through the first word that ends with `,` or `;` (the next field). When
/// the label stands inside a quoted message (`quoted`), the text also ends with the word that
/// closes the quote: the fields after it (`image=nginx`) are the line's structure. Returns where
/// it starts and ends, and how many separator bytes (`,`, `;`) stay after the placeholder.
pub(super) fn error_text(
    s: &[u8],
    label_end: usize,
    whole: bool,
    quoted: bool,
) -> Option<(usize, usize, usize)> {
    let from = skip_spaces(s, label_end);
    if from >= s.len() {
        return None;
    }
    let mut end = from;
    let mut k = from;
    while k < s.len() {
        end = k + s[k..]
            .iter()
            .take_while(|c| !c.is_ascii_whitespace())
            .count();
        if !whole && matches!(s[end - 1], b',' | b';') {
            break;
        }
        // (`k` follows a space, so the byte before a quote at `k` is no backslash.)
        if quoted && (k..end).any(|j| s[j] == b'"' && (j == k || s[j - 1] != b'\\')) {
            break;
        }
        k = skip_spaces(s, end);
    }
    let suf = s[from..end]
        .iter()
        .rev()
        .take_while(|c| matches!(c, b',' | b';'))
        .count();
    Some((from, end, suf))
}

/// The first byte at or after `at` that is not ASCII whitespace (or the end of `s`).
pub(super) fn skip_spaces(s: &[u8], at: usize) -> usize {
    at + s[at..]
        .iter()
        .take_while(|c| c.is_ascii_whitespace())
        .count()
}

/// The end of `s` without its trailing ASCII whitespace.
pub(super) fn text_end(s: &[u8]) -> usize {
    s.len()
        - s.iter()
            .rev()
            .take_while(|c| c.is_ascii_whitespace())
            .count()
}

/// How far a compact JSON member's value may reach (escaped request texts run long).
const MAX_JSON_VALUE: usize = 1024;

/// The name of a compact JSON member that starts at `s[at]`: `"took":` gives `took`, with the
/// index just after the colon. A name is short, has a letter or digit, and no quote, backslash
/// or control byte.
pub(super) fn json_member_name(s: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = s.get(at..)?.strip_prefix(b"\"")?;
    let len = rest.iter().take(64).position(|&c| c == b'"')?;
    let name = &rest[..len];
    let ok = name.iter().any(u8::is_ascii_alphanumeric)
        && name.iter().all(|&c| c >= b' ' && c != b'\\' && c != b'"');
    (ok && rest.get(len + 1) == Some(&b':')).then_some((name, at + len + 3))
}

/// Whether the next member of a compact JSON object starts just after `s[k]`: a `,` that a
/// member's name follows (`long","took":`). Compact JSON (`{"msg":"apply request took too
/// long","took":"185ms"}`) has no space between members, so whitespace alone would glue a
/// message's last word to the members after it, and the words of one value with spaces to
/// those around it.
#[inline]
pub(super) fn json_member_break(s: &[u8], k: usize) -> bool {
    s[k] == b',' && json_member_name(s, k + 1).is_some()
}

/// Where the first piece of `s[start..end]` ends: just after its first member break (see
/// [`json_member_break`]), if it has one past its first byte.
pub(super) fn json_member_breaks(s: &[u8], start: usize, end: usize) -> Option<usize> {
    (start + 1..end)
        .find(|&k| json_member_break(s, k))
        .map(|k| k + 1)
}

/// A compact JSON member that starts at `s[start]` (after any `{`): where its value is and where
/// the member ends (after the `,` `}` `]` that close it). See [`json_member`].
#[derive(Clone, Copy, Debug)]
pub(super) struct Member {
    /// Start of the value (just after the name's colon).
    pub value: usize,
    /// End of the value (after its closing quote or bracket).
    pub value_end: usize,
    /// End of the member with its closing punctuation.
    pub end: usize,
    /// The value is a string (its placeholder keeps the quotes).
    pub string: bool,
}

/// A compact JSON member at `s[start]`, `"took":"185ms",` or `"steps":["a b","c d"]}`: one
/// `key=value` field, whatever its value holds, spaces included (as a quoted value with spaces
/// is, see [`quoted_span`]). A message member (`"msg":`, see [`is_message_key`]) is not one:
/// its words are the event's text. Nor is a member whose value is not right after the colon
/// (`"key": "value"`, which the other spans read).
pub(super) fn json_member(s: &[u8], start: usize) -> Option<Member> {
    let braces = s[start..].iter().take_while(|&&c| c == b'{').count();
    let (name, v) = json_member_name(s, start + braces)?;
    if is_message_key(name) {
        return None;
    }
    let window = &s[v..s.len().min(v + MAX_JSON_VALUE)];
    let (len, string) = match *window.first()? {
        b'"' => (string_close(window)? + 1, true),
        b'[' | b'{' => (balanced_close(window)? + 1, false),
        _ => {
            let len = window
                .iter()
                .position(|&c| matches!(c, b',' | b'}' | b']') || c.is_ascii_whitespace())
                .unwrap_or(window.len());
            (len, false)
        }
    };
    if len == 0 {
        return None;
    }
    let value_end = v + len;
    let mut end = value_end;
    while end < s.len() && matches!(s[end], b',' | b'}' | b']') {
        end += 1;
    }
    Some(Member {
        value: v,
        value_end,
        end,
        string,
    })
}

/// Whether a (masked) token is a compact JSON member with its value (see [`json_member`]): a
/// field whose name says what it is, compared as a `key=value` token is.
pub(crate) fn is_json_member(t: &[u8]) -> bool {
    let braces = t.iter().take_while(|&&c| c == b'{').count();
    json_member_name(t, braces).is_some_and(|(name, v)| {
        !is_message_key(name) && t.get(v).is_some_and(|c| !c.is_ascii_whitespace())
    })
}

/// Index in `t` of the quote that closes the JSON string opened by `t[0]` (a `\\"` does not).
fn string_close(t: &[u8]) -> Option<usize> {
    let mut escaped = false;
    t.iter().enumerate().skip(1).find_map(|(k, &c)| {
        let closes = c == b'"' && !escaped;
        escaped = c == b'\\' && !escaped;
        closes.then_some(k)
    })
}

/// Index in `t` of the bracket that closes `t[0]`, skipping brackets inside JSON strings.
fn balanced_close(t: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut k = 0;
    while k < t.len() {
        match t[k] {
            b'"' => k += string_close(&t[k..])?,
            b'[' | b'{' => depth += 1,
            b']' | b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
        k += 1;
    }
    None
}

/// `msg="...` or `message="...`: the message field of a key=value (logfmt) line holds the event's
/// own text, written by the call site, so its words are the template's words and stay tokens
/// (`msg="shim disconnected"` and `msg="cleaning up after shim disconnected"` are two events),
/// where any other quoted value is one value.
pub(crate) fn is_message_key(tok: &[u8]) -> bool {
    // Asked of every `key=` token: the length rules out nearly all of them at once.
    let key = match tok.get(3) {
        Some(b'=') | None => tok.get(..3),
        _ => tok
            .get(..7)
            .filter(|_| matches!(tok.get(7), Some(b'=') | None)),
    };
    key.is_some_and(|k| k.eq_ignore_ascii_case(b"msg") || k.eq_ignore_ascii_case(b"message"))
}

/// `key="...` or `key='...` whose quote does not close inside the token: returns the quote byte.
pub(super) fn open_quote(tok: &[u8]) -> Option<u8> {
    let p = tok
        .windows(2)
        .position(|w| w[0] == b'=' && (w[1] == b'"' || w[1] == b'\''))?;
    let q = tok[p + 1];
    closing_quote(&tok[p + 2..], q).is_none().then_some(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_keys_are_msg_and_message_in_any_case() {
        for yes in [
            "msg",
            "msg=",
            "msg=\"a b",
            "MSG=x",
            "message=",
            "Message=\"x",
            "message",
        ] {
            assert!(is_message_key(yes.as_bytes()), "{yes}");
        }
        for no in [
            "ms",
            "msgs=5",
            "errmsg=x",
            "messages=3",
            "messag=",
            "m=1",
            "",
            "=x",
        ] {
            assert!(!is_message_key(no.as_bytes()), "{no}");
        }
    }

    #[test]
    fn brackets_pair_by_kind_and_nesting() {
        let s = b"(a [b) c] {d (e)} (f";
        let mut pairs = BracketPairs::default();
        assert_eq!(
            pairs.close_of(s, 0),
            Some(5),
            "a ) closes the ( whatever [ is open"
        );
        assert_eq!(pairs.close_of(s, 3), Some(8));
        assert_eq!(pairs.close_of(s, 10), Some(16));
        assert_eq!(pairs.close_of(s, 13), Some(15));
        assert_eq!(pairs.close_of(s, 18), None, "never closed");
        assert_eq!(pairs.close_of(s, 1), None, "no bracket there");
        // A new line forgets the old pairs.
        pairs.clear();
        assert_eq!(pairs.close_of(b"x (y z)", 2), Some(6));
    }

    #[test]
    fn a_parenthesis_reaches_further_than_a_bracket() {
        let mut pairs = BracketPairs::default();
        let words = "word ".repeat(100);
        let paren = format!("({words}end) tail");
        let span = bracket_span(paren.as_bytes(), 0, 5, &mut pairs);
        assert_eq!(span.map(|(end, _, _)| end), Some(paren.len() - 5));
        pairs.clear();
        let bracket = format!("[{words}end] tail");
        assert_eq!(bracket_span(bracket.as_bytes(), 0, 5, &mut pairs), None);
        pairs.clear();
        let far = format!("({} end) tail", "word ".repeat(300));
        assert_eq!(bracket_span(far.as_bytes(), 0, 5, &mut pairs), None);
    }
}
