//! Splitting a syslog byte stream (TCP, a Unix stream socket) into
//! messages, as RFC 6587 describes: a message is either octet-counted
//! (`LEN SP MSG`) or ends at a newline. Senders differ, and some switch, so
//! the framing is read per message: digits then a space start an
//! octet-counted one, anything else runs to the next newline.
//!
//! Memory is bounded by `max_length` whatever the input: a longer message
//! keeps its first `max_length` bytes (cut at a UTF-8 boundary) and the rest
//! is skipped, by count or up to the next newline.

use bytes::{Buf, Bytes, BytesMut};

use crate::sources::lines::utf8_boundary;

/// One message cut from the stream.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    /// The message, without its length prefix or newline.
    pub bytes: Bytes,
    /// It was longer than `max_length` (and was cut), or the stream ended
    /// before its announced length.
    pub oversized: bool,
}

/// What is being skipped after an oversized message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    Nothing,
    /// The rest of an octet-counted message.
    Bytes(usize),
    /// The rest of a newline-terminated message.
    ToNewline,
}

/// The most digits a length prefix may have (lengths below 10 GB).
const MAX_DIGITS: usize = 10;

/// An incremental framer over one connection's bytes.
#[derive(Debug)]
pub struct Framer {
    max_length: usize,
    skip: Skip,
}

impl Framer {
    /// A framer keeping at most `max_length` bytes of a message.
    pub fn new(max_length: usize) -> Self {
        Self {
            max_length,
            skip: Skip::Nothing,
        }
    }

    /// The next message in `buf`, taken out of it; `None` when more bytes
    /// are needed. With `eof`, whatever is left is the last message.
    pub fn next(&mut self, buf: &mut BytesMut, eof: bool) -> Option<Frame> {
        loop {
            match self.skip {
                Skip::Nothing => {}
                Skip::Bytes(left) => {
                    let skipped = left.min(buf.len());
                    buf.advance(skipped);
                    if skipped < left {
                        self.skip = Skip::Bytes(left - skipped);
                        return None;
                    }
                    self.skip = Skip::Nothing;
                }
                Skip::ToNewline => match memchr::memchr(b'\n', buf) {
                    Some(newline) => {
                        buf.advance(newline + 1);
                        self.skip = Skip::Nothing;
                    }
                    None => {
                        buf.clear();
                        return None;
                    }
                },
            }
            if buf.is_empty() {
                return None;
            }
            match self.octet_count(buf, eof) {
                Counted::Frame(frame) => return frame,
                Counted::NeedMore => return None,
                Counted::Newline => {}
            }
            let Some(newline) = memchr::memchr(b'\n', buf) else {
                if buf.len() > self.max_length {
                    let bytes = self.cut(buf.split_to(self.max_length).freeze());
                    self.skip = Skip::ToNewline;
                    return Some(Frame {
                        bytes,
                        oversized: true,
                    });
                }
                if eof {
                    let line = buf.split().freeze();
                    if let Some(frame) = self.line(line) {
                        return Some(frame);
                    }
                }
                return None;
            };
            let line = buf.split_to(newline + 1).freeze();
            if let Some(frame) = self.line(line.slice(..newline)) {
                return Some(frame);
            }
            // An empty line (a newline after an octet-counted message):
            // on to the next.
        }
    }

    /// A newline-terminated message, or `None` when it is empty.
    fn line(&self, mut line: Bytes) -> Option<Frame> {
        if line.last() == Some(&b'\r') {
            line.truncate(line.len() - 1);
        }
        if line.is_empty() {
            return None;
        }
        let oversized = line.len() > self.max_length;
        if oversized {
            line = self.cut(line);
        }
        Some(Frame {
            bytes: line,
            oversized,
        })
    }

    fn octet_count(&mut self, buf: &mut BytesMut, eof: bool) -> Counted {
        let digits = buf
            .iter()
            .take(MAX_DIGITS + 1)
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 || digits > MAX_DIGITS {
            return Counted::Newline;
        }
        match buf.get(digits) {
            None if eof => return Counted::Newline,
            None => return Counted::NeedMore,
            Some(b' ') => {}
            Some(_) => return Counted::Newline,
        }
        let Some(length) = std::str::from_utf8(&buf[..digits])
            .ok()
            .and_then(|d| d.parse::<usize>().ok())
        else {
            return Counted::Newline;
        };
        let start = digits + 1;
        let available = buf.len() - start;
        if length > self.max_length {
            if available < self.max_length && !eof {
                return Counted::NeedMore;
            }
            buf.advance(start);
            let kept = available.min(self.max_length);
            let bytes = self.cut(buf.split_to(kept).freeze());
            self.skip = Skip::Bytes(length - kept);
            return Counted::Frame(Some(Frame {
                bytes,
                oversized: true,
            }));
        }
        if available < length {
            if !eof {
                return Counted::NeedMore;
            }
            // The stream ended inside the message: keep what came.
            buf.advance(start);
            let bytes = buf.split().freeze();
            return Counted::Frame(Some(Frame {
                bytes,
                oversized: true,
            }));
        }
        buf.advance(start);
        let mut bytes = buf.split_to(length).freeze();
        while matches!(bytes.last(), Some(b'\n' | b'\r')) {
            bytes.truncate(bytes.len() - 1);
        }
        if bytes.is_empty() {
            return Counted::Frame(self.next(buf, eof));
        }
        Counted::Frame(Some(Frame {
            bytes,
            oversized: false,
        }))
    }

    /// Cuts to `max_length` at a character boundary.
    fn cut(&self, mut bytes: Bytes) -> Bytes {
        bytes.truncate(self.max_length);
        bytes.truncate(utf8_boundary(&bytes));
        bytes
    }
}

/// What the octet-counting check found.
enum Counted {
    /// An octet-counted message (or, after an empty one, the next).
    Frame(Option<Frame>),
    /// A length prefix that is not complete yet.
    NeedMore,
    /// Not octet-counted: newline framing applies.
    Newline,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; returns the frames.
    fn frames(max_length: usize, input: &[u8], step: usize) -> Vec<(String, bool)> {
        let mut framer = Framer::new(max_length);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut take = |buf: &mut BytesMut, eof: bool, out: &mut Vec<(String, bool)>| {
            while let Some(frame) = framer.next(buf, eof) {
                out.push((
                    String::from_utf8_lossy(&frame.bytes).into_owned(),
                    frame.oversized,
                ));
            }
        };
        for piece in input.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            take(&mut buf, false, &mut out);
        }
        take(&mut buf, true, &mut out);
        out
    }

    fn ok(texts: &[&str]) -> Vec<(String, bool)> {
        texts.iter().map(|t| (t.to_string(), false)).collect()
    }

    #[test]
    fn newline_and_octet_counted_messages_mix_in_any_piece_sizes() {
        let input = b"<13>a b\n11 <13>c d\ne f\r\n5 <1>gh\n";
        for step in 1..input.len() {
            assert_eq!(
                frames(100, input, step),
                ok(&["<13>a b", "<13>c d\ne f", "<1>gh"]),
                "step {step}"
            );
        }
    }

    #[test]
    fn a_last_message_without_newline_is_kept() {
        assert_eq!(
            frames(100, b"<13>one\n<13>two", 3),
            ok(&["<13>one", "<13>two"])
        );
    }

    #[test]
    fn long_messages_are_cut_and_the_rest_skipped_either_way() {
        let mut input = b"<13>".to_vec();
        input.extend(std::iter::repeat_n(b'x', 50));
        input.extend_from_slice(b"\n<13>next\n60 <13>");
        input.extend(std::iter::repeat_n(b'y', 56));
        input.extend_from_slice(b"<13>after\n");
        for step in [1, 7, 1000] {
            let got = frames(10, &input, step);
            assert_eq!(
                got,
                vec![
                    ("<13>xxxxxx".to_string(), true),
                    ("<13>next".to_string(), false),
                    ("<13>yyyyyy".to_string(), true),
                    ("<13>after".to_string(), false),
                ],
                "step {step}"
            );
        }
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        let got = frames(6, "<13>ééé\n".as_bytes(), 2);
        assert_eq!(got, vec![("<13>é".to_string(), true)]);
    }

    #[test]
    fn digits_not_followed_by_a_space_are_a_plain_message_and_a_short_stream_is_kept() {
        assert_eq!(frames(100, b"2024-01-02 log\n", 1), ok(&["2024-01-02 log"]));
        assert_eq!(frames(100, b"12345\n", 2), ok(&["12345"]));
        assert_eq!(
            frames(100, b"20 <13>short", 4),
            vec![("<13>short".to_string(), true)]
        );
    }

    #[test]
    fn garbage_never_panics_and_memory_stays_bounded() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..2_000 {
            let input: Vec<u8> = (0..rng.usize(0..300))
                .map(|_| *rng.choice(b"0123456789 \n\r<>x\xc3\xa9").unwrap())
                .collect();
            let mut framer = Framer::new(16);
            let mut buf = BytesMut::new();
            for piece in input.chunks(rng.usize(1..20)) {
                buf.extend_from_slice(piece);
                while let Some(frame) = framer.next(&mut buf, false) {
                    assert!(frame.bytes.len() <= 16);
                }
                assert!(
                    buf.len() <= 16 + MAX_DIGITS + 1 + 20,
                    "{} bytes held",
                    buf.len()
                );
            }
            while let Some(frame) = framer.next(&mut buf, true) {
                assert!(frame.bytes.len() <= 16);
            }
        }
    }
}
