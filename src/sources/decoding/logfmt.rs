//! logfmt (`level=info msg="took 3 ms" user=alice cached`) into an object.
//!
//! The rules, as VRL's `parse_logfmt` reads them:
//!
//! - pairs are separated by spaces or tabs; a key runs to `=` or a space,
//!   and holds no `"`;
//! - `key=value`: the value runs to the next space or tab (it may hold `=`
//!   and `"`); `key=` is the empty string;
//! - `key="quoted value"`: `\"` and `\\` stand for `"` and `\`, `\n`, `\t`
//!   and `\r` for a newline, tab and carriage return; any other `\x` is
//!   kept as written. The closing quote must end the pair;
//! - a bare `key` (no `=`) is `true`;
//! - every value is a string (no number guessing); a key given more than
//!   once gets an array of its values, in order.
//!
//! A frame fails to decode when it has no `key=value` pair at all (so a
//! plain sentence is not read as bare keys), when a pair starts with `=`
//! (no key), when a key holds a `"`, or when a quote is not closed, or
//! closed in the middle of a pair.

use bytes::{Bytes, BytesMut};
use vrl::value::{KeyString, ObjectMap, Value};

/// Why a frame is not logfmt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Nothing in it looks like `key=value`.
    #[error("no `key=value` pair")]
    NoPair,
    /// `=value` with nothing before it.
    #[error("a value without a key at byte {0}")]
    NoKey(usize),
    /// `a"b=c`.
    #[error("a quote inside a key at byte {0}")]
    QuoteInKey(usize),
    /// `a="b` to the end.
    #[error("the quote opened at byte {0} is not closed")]
    Unclosed(usize),
    /// `a="b"c`.
    #[error("text right after the closing quote at byte {0}")]
    AfterQuote(usize),
}

fn is_space(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

/// Reads one frame.
pub fn parse(frame: &Bytes) -> Result<ObjectMap, Error> {
    let input = frame.as_ref();
    let mut map = ObjectMap::new();
    let mut pairs = 0;
    let mut at = 0;
    while at < input.len() {
        if is_space(input[at]) {
            at += 1;
            continue;
        }
        let key_start = at;
        while at < input.len() && !is_space(input[at]) && input[at] != b'=' {
            if input[at] == b'"' {
                return Err(Error::QuoteInKey(at));
            }
            at += 1;
        }
        if at == key_start {
            return Err(Error::NoKey(at));
        }
        let key = KeyString::from(String::from_utf8_lossy(&input[key_start..at]).into_owned());
        let value = if at < input.len() && input[at] == b'=' {
            at += 1;
            pairs += 1;
            if at < input.len() && input[at] == b'"' {
                let (value, end) = quoted(frame, at)?;
                at = end;
                Value::Bytes(value)
            } else {
                let start = at;
                while at < input.len() && !is_space(input[at]) {
                    at += 1;
                }
                Value::Bytes(frame.slice(start..at))
            }
        } else {
            Value::Boolean(true)
        };
        insert(&mut map, key, value);
    }
    if pairs == 0 {
        return Err(Error::NoPair);
    }
    Ok(map)
}

/// A repeated key collects its values in an array.
fn insert(map: &mut ObjectMap, key: KeyString, value: Value) {
    match map.get_mut(&key) {
        None => {
            map.insert(key, value);
        }
        Some(Value::Array(values)) => values.push(value),
        Some(first) => {
            let first = std::mem::replace(first, Value::Null);
            map.insert(key, Value::Array(vec![first, value]));
        }
    }
}

/// The quoted value whose opening quote is at `open`, and where the pair
/// ends: a slice of the frame when it has no escapes, else unescaped.
fn quoted(frame: &Bytes, open: usize) -> Result<(Bytes, usize), Error> {
    let input = frame.as_ref();
    let start = open + 1;
    let mut at = start;
    let mut unescaped: Option<BytesMut> = None;
    let mut copied = start;
    loop {
        let Some(offset) = memchr::memchr2(b'"', b'\\', &input[at..]) else {
            return Err(Error::Unclosed(open));
        };
        at += offset;
        if input[at] == b'"' {
            break;
        }
        // A backslash: what it stands for.
        let Some(&escaped) = input.get(at + 1) else {
            return Err(Error::Unclosed(open));
        };
        let out = unescaped.get_or_insert_with(|| BytesMut::with_capacity(input.len() - start));
        out.extend_from_slice(&input[copied..at]);
        match escaped {
            b'"' => out.extend_from_slice(b"\""),
            b'\\' => out.extend_from_slice(b"\\"),
            b'n' => out.extend_from_slice(b"\n"),
            b't' => out.extend_from_slice(b"\t"),
            b'r' => out.extend_from_slice(b"\r"),
            other => out.extend_from_slice(&[b'\\', other]),
        }
        at += 2;
        copied = at;
    }
    let value = match unescaped {
        None => frame.slice(start..at),
        Some(mut out) => {
            out.extend_from_slice(&input[copied..at]);
            out.freeze()
        }
    };
    let end = at + 1;
    if end < input.len() && !is_space(input[end]) {
        return Err(Error::AfterQuote(end));
    }
    Ok((value, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Result<Vec<(String, Value)>, Error> {
        parse(&Bytes::copy_from_slice(text.as_bytes()))
            .map(|map| map.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    fn text(value: &str) -> Value {
        Value::from(value)
    }

    #[test]
    fn reads_plain_quoted_empty_and_bare_pairs() {
        let got = fields("level=info msg=\"took 3 ms\" empty= cached\tuser=a=b").unwrap();
        assert_eq!(
            got,
            vec![
                ("cached".to_string(), Value::Boolean(true)),
                ("empty".to_string(), text("")),
                ("level".to_string(), text("info")),
                ("msg".to_string(), text("took 3 ms")),
                ("user".to_string(), text("a=b")),
            ]
        );
    }

    #[test]
    fn unescapes_quotes_backslashes_and_control_characters() {
        let got = fields(r#"k="say \"hi\" \\ \n\t\r \x" z="""#).unwrap();
        assert_eq!(got[0], ("k".to_string(), text("say \"hi\" \\ \n\t\r \\x")));
        assert_eq!(got[1], ("z".to_string(), text("")));
    }

    #[test]
    fn a_repeated_key_collects_its_values() {
        let got = fields("tag=a tag=b tag=c one=1").unwrap();
        assert_eq!(
            got[1],
            (
                "tag".to_string(),
                Value::Array(vec![text("a"), text("b"), text("c")])
            )
        );
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        assert_eq!(fields("just a sentence"), Err(Error::NoPair));
        assert_eq!(fields(""), Err(Error::NoPair));
        assert_eq!(fields("a=1 =2"), Err(Error::NoKey(4)));
        assert_eq!(fields("a\"b=c"), Err(Error::QuoteInKey(1)));
        assert_eq!(fields("a=\"open"), Err(Error::Unclosed(2)));
        assert_eq!(fields("a=\"ends in \\"), Err(Error::Unclosed(2)));
        assert_eq!(fields("a=\"b\"c"), Err(Error::AfterQuote(5)));
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..5_000 {
            let input: Vec<u8> = (0..rng.usize(0..40))
                .map(|_| *rng.choice(b"ab= \t\"\\\n\xc3\xa9").unwrap())
                .collect();
            let _ = parse(&Bytes::from(input));
        }
    }
}
