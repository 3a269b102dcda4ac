//! The shape classifiers of the masking lexer: each recognises one kind of
//! variable (a UUID, a MAC, a date, an IP address, a number with its unit,
//! a URL, a path, ...) starting at a word start and returns where it ends,
//! or `None`. They are tried in the order `Lexer` gives (compound shapes
//! first); none of them allocates or uses a regex.

use super::*;

/// `<NAME>` produced by a user mask (or already present in the text).
pub(super) fn user_placeholder(s: &[u8], i: usize) -> Option<usize> {
    if !at(s, i + 1).is_ascii_uppercase() {
        return None;
    }
    let mut j = i + 2;
    while j < s.len() && (s[j].is_ascii_uppercase() || s[j].is_ascii_digit() || s[j] == b'_') {
        j += 1;
    }
    (at(s, j) == b'>').then_some(j + 1)
}

/// Where the quote `q` that closes a quoted value is in `s` (the text after the opening quote):
/// the first `q` not escaped by a backslash. Why: Go's `%q`, klog and logfmt escape the quotes
/// of a value inside a value (`err="failed to \"StartContainer\" for \"coredns\""`), and the
/// value ends at the last quote, not at the first escaped one.
pub(crate) fn closing_quote(s: &[u8], q: u8) -> Option<usize> {
    let mut escaped = false;
    for (j, &c) in s.iter().enumerate() {
        if c == q && !escaped {
            return Some(j);
        }
        escaped = c == b'\\' && !escaped;
    }
    None
}

/// End of a `key=value` value starting at `start`: a quoted string, or up to `,` `;` `&` or an
/// unbalanced closing bracket. After a `?` the value is a URL's query (`path=/logs?follow=true&
/// offset=5`), whose `&`s are its own: the value runs on.
pub(super) fn value_end(s: &[u8], start: usize) -> usize {
    let n = s.len();
    let q = s[start];
    if q == b'"' || q == b'\'' {
        return closing_quote(&s[start + 1..], q).map_or(n, |p| start + 2 + p);
    }
    let mut depth = 0u32;
    let mut query = false;
    let mut j = start;
    while j < n {
        match s[j] {
            b'&' if depth == 0 && !query => break,
            b',' | b';' if depth == 0 => break,
            b'?' => query = true,
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

pub(super) fn m_uuid(s: &[u8], i: usize) -> Option<usize> {
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

pub(super) fn m_mac(s: &[u8], i: usize) -> Option<usize> {
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

pub(super) const MONTHS: [&[u8]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];

/// Dates: `2015-07-29`, `2015/07/29`, `07/29/2015`, `29.07.2015`, `17/Jun/2005`, each optionally with a
/// time glued on (`T12:00:00Z`, `:07:07:00`).
pub(super) fn m_date(s: &[u8], i: usize) -> Option<usize> {
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

pub(super) fn is_month(w: &[u8]) -> bool {
    w.len() == 3 && MONTHS.iter().any(|m| w.eq_ignore_ascii_case(m))
}

/// Times: `7:05`, `17:41:44`, `17:41:44,747`, `17:41:44.123456Z`, `12:00:00+02:00`.
pub(super) fn m_time(s: &[u8], i: usize) -> Option<usize> {
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
pub(super) fn m_ipv4(s: &[u8], i: usize) -> Option<usize> {
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

/// IPv6: hex groups separated by `:`, eight groups or one `::`, at least one digit, and an
/// optional decimal `:port`. Without brackets the port is ambiguous, so it is taken only when the
/// address is not valid with it as its last group: `2001:db8::8b63:64085` (a fifth digit) and
/// `2a02:1e0c:0:0:0:0:0:aa90:51234` (a ninth group) are addresses with ports, which programs that
/// print `%s:%d` write (Redis, HAProxy).
pub(super) fn m_ipv6(s: &[u8], i: usize) -> Option<usize> {
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
    if !boundary(s, j) {
        return None;
    }
    if is_ipv6(span) {
        return Some(j);
    }
    let port = span.iter().rev().take_while(|c| c.is_ascii_digit()).count();
    let address = &span[..span.len() - port];
    let with_port = (1..=5).contains(&port)
        && address.ends_with(b":")
        && !address.ends_with(b"::")
        && is_ipv6(&address[..address.len() - 1]);
    with_port.then_some(j)
}

/// Whether `span` is an IPv6 address: hex groups of at most four digits, eight of them or one
/// `::`, and at least one decimal digit (so that `dead:beef::cafe` words stay words).
fn is_ipv6(span: &[u8]) -> bool {
    let colons = span.iter().filter(|&&c| c == b':').count();
    if colons < 2 || !span.iter().any(u8::is_ascii_digit) {
        return false;
    }
    let doubles = span.windows(2).filter(|w| w == b"::").count();
    if doubles > 1 || span.windows(3).any(|w| w == b":::") {
        return false;
    }
    let mut count = 0;
    for g in span.split(|&c| c == b':').filter(|g| !g.is_empty()) {
        if g.len() > 4 {
            return false;
        }
        count += 1;
    }
    if doubles == 1 { count <= 7 } else { count == 8 }
}

pub(super) fn m_hex0x(s: &[u8], i: usize) -> Option<usize> {
    if s[i] != b'0' || !matches!(at(s, i + 1), b'x' | b'X') {
        return None;
    }
    let h = hexes(s, i + 2);
    (h > 0 && boundary(s, i + 2 + h)).then_some(i + 2 + h)
}

/// Long hex ids: >= 6 hex digits mixing digits and letters (`9f4ef63`, `4b7ee6c3`), or >= 16 letters.
/// All-digit runs are numbers, whatever their length, so one variable does not flip between types.
pub(super) fn m_hexid(s: &[u8], i: usize) -> Option<usize> {
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
pub(super) fn m_number(s: &[u8], i: usize) -> Option<(usize, Kind)> {
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
        if let Some(e) = compound_duration(s, j, u) {
            return Some((e, Kind::Dur));
        }
        let kind = unit_kind(&s[j..j + u])?;
        let e = j + u;
        return boundary(s, e).then_some((e, kind));
    }
    boundary(s, j).then_some((j, Kind::Num))
}

/// A duration of several parts, as Go and Kubernetes print them (`1m21.567s`, `2h3m4s`, `3m0s`):
/// the first part's unit is at `j` (`u` bytes); returns the end when at least one more
/// `number unit` part follows, every unit is one of time, and the last ends the token. A
/// duration has at most one part per unit: a longer chain is none, which also bounds the scan
/// (every word start in a chain such as `1h1.1h1.…` would scan the rest of it again).
fn compound_duration(s: &[u8], mut j: usize, mut u: usize) -> Option<usize> {
    const PARTS: &[&[u8]] = &[b"h", b"m", b"s", b"ms", b"us", b"ns"];
    let is_part = |unit: &[u8]| PARTS.contains(&unit);
    let mut parts = 1;
    loop {
        if !is_part(&s[j..j + u]) || parts > PARTS.len() {
            return None;
        }
        j += u;
        let d = digits(s, j);
        if d == 0 {
            break;
        }
        j += d;
        if at(s, j) == b'.' && at(s, j + 1).is_ascii_digit() {
            j += 1 + digits(s, j + 1);
        }
        u = s[j..]
            .iter()
            .take_while(|c| c.is_ascii_alphabetic())
            .count();
        if u == 0 {
            return None;
        }
        parts += 1;
    }
    (parts > 1 && boundary(s, j)).then_some(j)
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
pub(super) fn m_hostport(s: &[u8], i: usize) -> Option<usize> {
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

pub(super) const TRAILING: &[u8] = b".,;:)]}\"'>!?";

pub(super) fn trim_trailing(s: &[u8], start: usize, mut j: usize) -> usize {
    while j > start + 1 && TRAILING.contains(&s[j - 1]) {
        j -= 1;
    }
    j
}

pub(super) fn m_url(s: &[u8], i: usize) -> Option<usize> {
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

pub(super) fn m_email(s: &[u8], i: usize) -> Option<usize> {
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
/// `mice.c`) are usually the event or a file and stay literal, except as the key of a key=value
/// (`java.home=...`): a key path in a settings dump.
pub(super) fn m_name(s: &[u8], i: usize) -> Option<usize> {
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
    // `java.home=...`: a dotted key is a key path, as variable as a longer name.
    (boundary(s, j) && (dots >= 2 || (dots == 1 && at(s, j) == b'='))).then_some(j)
}

pub(super) fn m_bool(s: &[u8], i: usize) -> Option<usize> {
    let w = s[i..].iter().take_while(|c| is_word(**c)).count();
    is_bool_word(&s[i..i + w]).then_some(i + w)
}

/// `C:\Windows\...`
pub(super) fn m_winpath(s: &[u8], i: usize) -> Option<usize> {
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

/// Relative paths of three or more segments: `src/main/App.java`, `Library/Caches/com.x`. One slash
/// (`read/write`, `TCP/IP`, `HTTP/1.1`) is too often a word pair or a version to be a path.
pub(super) fn m_relpath(s: &[u8], i: usize) -> Option<usize> {
    let seg = |j: usize| {
        s.get(j..).map_or(0, |r| {
            r.iter()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
                .count()
        })
    };
    let mut j = i + seg(i);
    let mut slashes = 0;
    while at(s, j) == b'/' {
        let l = seg(j + 1);
        if l == 0 {
            break;
        }
        slashes += 1;
        j += 1 + l;
    }
    (slashes >= 2 && boundary(s, j)).then(|| trim_trailing(s, i, j))
}

/// Unix-style paths: `/a/b`, `/name`, `~/x`, `./x`, `../x`. A single segment starting with a digit
/// (`/10.0.0.1:80`, `/24`) is not a path, so IPs and ratios keep their own classes.
pub(super) fn m_path(s: &[u8], i: usize) -> Option<usize> {
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
