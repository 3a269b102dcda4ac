//! Splitting a byte stream into lines (or frames ending at another
//! delimiter byte: `framing.method = "character_delimited"`), shared by
//! every line-oriented source.
//!
//! Lines that lie inside one read chunk are zero-copy slices of it (the
//! events point into the chunk). A line that straddles chunks is assembled
//! in a small carry buffer. Memory is bounded whatever the input: a line
//! longer than `max_line_bytes` keeps its first `max_line_bytes` (cut at a
//! UTF-8 boundary) and the rest is skipped up to the next newline, so a
//! multi-gigabyte line without a newline costs `max_line_bytes`, not
//! gigabytes. With the newline delimiter a trailing `\r` (CRLF files) is
//! removed; empty frames are not events and are skipped.

use std::num::NonZeroUsize;

use bytes::{Bytes, BytesMut};

/// The default line limit of line-oriented sources (as Vector's).
pub const DEFAULT_MAX_LINE_BYTES: NonZeroUsize = NonZeroUsize::new(102_400).unwrap();

/// Incremental line splitter.
#[derive(Debug)]
pub struct LineSplitter {
    max_line_bytes: usize,
    /// The byte that ends a frame (`\n` for lines).
    delimiter: u8,
    carry: BytesMut,
    /// The carried line already exceeded the limit; skip to its newline.
    overflowed: bool,
    /// Bytes of the unfinished line read so far, kept or skipped (what a
    /// checkpoint must not count as read).
    pending: usize,
}

/// One line, and whether it was cut at the limit.
pub type Line = (Bytes, bool);

impl LineSplitter {
    /// A splitter of frames that end at `delimiter`, cut at
    /// `max_line_bytes`. Only newline-delimited frames lose a trailing `\r`.
    pub fn with_delimiter(max_line_bytes: NonZeroUsize, delimiter: u8) -> Self {
        Self {
            max_line_bytes: max_line_bytes.get(),
            delimiter,
            carry: BytesMut::new(),
            overflowed: false,
            pending: 0,
        }
    }

    /// A splitter with the same limit and delimiter, and nothing carried:
    /// for reading again from the start of a line.
    pub fn fresh(&self) -> Self {
        Self::with_delimiter(
            NonZeroUsize::new(self.max_line_bytes).unwrap_or(NonZeroUsize::MIN),
            self.delimiter,
        )
    }

    /// Bytes read of a line not yet complete, including those skipped
    /// beyond `max_line_bytes`.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Feeds a chunk; calls `emit` for each complete line in it.
    pub fn push(&mut self, chunk: Bytes, mut emit: impl FnMut(Line)) {
        let mut start = 0;
        for newline in memchr::memchr_iter(self.delimiter, &chunk) {
            if start == 0 && (!self.carry.is_empty() || self.overflowed) {
                self.extend_carry(&chunk[..newline]);
                self.pending = 0;
                let line = self.carry.split().freeze();
                let truncated = std::mem::take(&mut self.overflowed);
                self.emit_line(line, truncated, &mut emit);
            } else {
                let line = chunk.slice(start..newline);
                self.emit_line(line, false, &mut emit);
            }
            start = newline + 1;
        }
        if start < chunk.len() {
            self.extend_carry(&chunk[start..]);
        }
    }

    /// Ends the input: the last line, if it had no newline.
    pub fn finish(&mut self, mut emit: impl FnMut(Line)) {
        if !self.carry.is_empty() {
            let line = self.carry.split().freeze();
            let truncated = std::mem::take(&mut self.overflowed);
            self.emit_line(line, truncated, &mut emit);
        }
        self.overflowed = false;
        self.pending = 0;
    }

    fn extend_carry(&mut self, bytes: &[u8]) {
        self.pending += bytes.len();
        let room = self.max_line_bytes.saturating_sub(self.carry.len());
        if bytes.len() > room {
            self.carry.extend_from_slice(&bytes[..room]);
            self.overflowed = true;
        } else {
            self.carry.extend_from_slice(bytes);
        }
    }

    fn emit_line(&self, line: Bytes, truncated: bool, emit: &mut impl FnMut(Line)) {
        if let Some(line) = trim_frame(line, truncated, self.delimiter, self.max_line_bytes) {
            emit(line);
        }
    }
}

/// A frame as it is emitted: without the `\r` of a CRLF line, cut to
/// `max_bytes` at a character boundary (`truncated` says whether it was, or
/// already had been); `None` for an empty frame, which is no event.
#[inline]
pub fn trim_frame(
    mut frame: Bytes,
    mut truncated: bool,
    delimiter: u8,
    max_bytes: usize,
) -> Option<Line> {
    if delimiter == b'\n' && frame.last() == Some(&b'\r') {
        frame.truncate(frame.len() - 1);
    }
    if frame.len() > max_bytes {
        frame.truncate(max_bytes);
        truncated = true;
    }
    if truncated {
        frame.truncate(utf8_boundary(&frame));
    }
    (!frame.is_empty()).then_some((frame, truncated))
}

/// Splits a whole buffer (an HTTP body, a datagram) into frames ending at
/// `delimiter`, the last one without it; `emit` gets each non-empty frame
/// (as [`trim_frame`] leaves it) with its 1-based number among all the
/// delimited records, empty ones included, so an error can name the line.
pub fn split_whole(
    buffer: &Bytes,
    delimiter: u8,
    max_bytes: usize,
    mut emit: impl FnMut(usize, Line),
) {
    let mut start = 0;
    let mut number = 0;
    let ends = memchr::memchr_iter(delimiter, buffer).chain(std::iter::once(buffer.len()));
    for end in ends {
        number += 1;
        if start <= end
            && let Some(frame) = trim_frame(buffer.slice(start..end), false, delimiter, max_bytes)
        {
            emit(number, frame);
        }
        start = end + 1;
    }
}

/// The length of the longest prefix of `bytes` that does not end inside a
/// multi-byte UTF-8 character.
pub fn utf8_boundary(bytes: &[u8]) -> usize {
    let len = bytes.len();
    // Look back over at most 3 continuation bytes for a lead byte.
    for back in 1..=len.min(4) {
        let byte = bytes[len - back];
        if byte & 0b1100_0000 != 0b1000_0000 {
            let width = match byte {
                b if b < 0x80 => 1,
                b if b >> 5 == 0b110 => 2,
                b if b >> 4 == 0b1110 => 3,
                b if b >> 3 == 0b11110 => 4,
                _ => 1,
            };
            return if back >= width {
                len - back + width
            } else {
                len - back
            };
        }
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn splitter(max: usize) -> LineSplitter {
        LineSplitter::with_delimiter(NonZeroUsize::new(max).unwrap(), b'\n')
    }

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<(String, bool)> {
        let mut splitter = splitter(max);
        let mut lines = Vec::new();
        for chunk in chunks {
            splitter.push(Bytes::copy_from_slice(chunk), |(l, t)| {
                lines.push((String::from_utf8_lossy(&l).into_owned(), t))
            });
        }
        splitter.finish(|(l, t)| lines.push((String::from_utf8_lossy(&l).into_owned(), t)));
        lines
    }

    #[test]
    fn joins_lines_across_chunks_and_strips_crlf() {
        let lines = split(100, &[b"one\r\ntw", b"o\nthr", b"ee"]);
        assert_eq!(
            lines,
            vec![
                ("one".into(), false),
                ("two".into(), false),
                ("three".into(), false)
            ]
        );
    }

    #[test]
    fn skips_empty_lines() {
        assert_eq!(split(100, &[b"\n\na\n\r\n"]), vec![("a".into(), false)]);
    }

    #[test]
    fn truncates_long_lines_inside_and_across_chunks() {
        let lines = split(4, &[b"abcdefgh\nxy", b"zzzzzz", b"zz\nok\n"]);
        assert_eq!(
            lines,
            vec![
                ("abcd".into(), true),
                ("xyzz".into(), true),
                ("ok".into(), false)
            ]
        );
    }

    #[test]
    fn never_cuts_inside_a_utf8_character() {
        // "é" is two bytes; a 2-byte limit after "a" would split it.
        let lines = split(2, &["aé\n".as_bytes()]);
        assert_eq!(lines, vec![("a".into(), true)]);
    }

    #[test]
    fn another_delimiter_splits_across_chunks_and_keeps_carriage_returns() {
        let mut splitter = LineSplitter::with_delimiter(NonZeroUsize::new(100).unwrap(), b'|');
        let mut frames = Vec::new();
        let mut take = |(frame, _): Line| frames.push(String::from_utf8_lossy(&frame).into_owned());
        // The delimiter falls on a chunk boundary, then inside one.
        splitter.push(Bytes::from_static(b"a\r|b"), &mut take);
        splitter.push(Bytes::from_static(b"c|"), &mut take);
        splitter.push(Bytes::from_static(b"|d\ne|"), &mut take);
        splitter.push(Bytes::from_static(b"f"), &mut take);
        splitter.finish(&mut take);
        assert_eq!(frames, ["a\r", "bc", "d\ne", "f"]);
    }

    #[test]
    fn a_whole_buffer_is_split_with_record_numbers_and_cut() {
        let mut frames = Vec::new();
        split_whole(
            &Bytes::from_static(b"one\r\n\nthree-long\nfour"),
            b'\n',
            5,
            |n, (f, cut)| frames.push((n, String::from_utf8_lossy(&f).into_owned(), cut)),
        );
        assert_eq!(
            frames,
            [
                (1, "one".to_string(), false),
                (3, "three".to_string(), true),
                (4, "four".to_string(), false)
            ]
        );
        let mut none = 0;
        split_whole(&Bytes::new(), b'\n', 5, |_, _| none += 1);
        split_whole(&Bytes::from_static(b"\n\n"), b'\n', 5, |_, _| none += 1);
        assert_eq!(none, 0);
    }

    #[test]
    fn carry_stays_bounded_on_a_huge_line_without_newline() {
        let mut splitter = splitter(8);
        for _ in 0..1000 {
            splitter.push(Bytes::from_static(&[b'x'; 4096]), |_| {});
        }
        assert!(splitter.carry.len() <= 8, "memory stays bounded");
        assert_eq!(
            splitter.pending(),
            4096 * 1000,
            "while every byte is accounted for"
        );
    }

    #[test]
    fn pending_counts_every_byte_of_the_unfinished_line_even_past_the_limit() {
        let mut splitter = splitter(10);
        splitter.push(Bytes::from_static(b"done\n0123456789abcdefghij"), |_| {});
        assert_eq!(
            splitter.pending(),
            20,
            "kept 10, skipped 10: all unread for a checkpoint"
        );
        splitter.push(Bytes::from_static(b"KLM"), |_| {});
        assert_eq!(splitter.pending(), 23);
        let mut lines = Vec::new();
        splitter.push(Bytes::from_static(b"N\nnext"), |line| lines.push(line));
        assert_eq!(lines.len(), 1);
        assert_eq!(splitter.pending(), 4, "only `next` is unfinished");
    }
}
