//! Lines of code that a traceback quotes.
//!
//! Python prints each frame of a traceback as two lines: the frame, `  File "app.py", line 12,
//! in handler`, then the frame's line of code, indented deeper, `    return view(*args)`, and
//! from Python 3.11 sometimes a line of `^` and `~` under the part that failed. Sent line by
//! line (a container's stderr, journald), each line of code reached the miner as a message of
//! its own, so every traceback through code not seen before brought new patterns, and new
//! alerts, about source text. The code is where the frame is, a value of the frame as a Java
//! frame's `at a.b.C.run(C.java:42)` is one value (see `tokenize::stack_frame`): every such
//! line is one event, whose template is `<*>`.
//!
//! Only the line right after a frame is read so, by the line before it: the same text on its
//! own is an ordinary message. Interleaved streams can put another line between a frame and
//! its code; that code line is then read as a message, as before.

/// What the line before was, as far as a traceback goes (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Traceback {
    /// Nothing of a traceback.
    #[default]
    None,
    /// A frame, indented by this many bytes.
    Frame(usize),
    /// A frame's line of code, indented by this many bytes.
    Code(usize),
}

impl Traceback {
    /// Reads `line` after the line this state describes: whether `line` is a frame's code, and
    /// the state after it.
    pub(crate) fn next(self, line: &str) -> (bool, Traceback) {
        let text = line.trim_ascii_start();
        let indent = line.len() - text.len();
        let text = text.trim_ascii_end();
        let code = !text.is_empty()
            && match self {
                Traceback::None => false,
                Traceback::Frame(frame) => indent > frame,
                // A line of markers under the code (`^^^^^`, `~~~^^^`).
                Traceback::Code(code) => indent >= code && is_marker(text),
            };
        let next = if is_frame(text) {
            Traceback::Frame(indent)
        } else if code {
            Traceback::Code(indent)
        } else {
            Traceback::None
        };
        (code, next)
    }
}

/// `File "app.py", line 12, in handler` (leading spaces removed): a frame as Python prints it.
fn is_frame(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("File \"") else {
        return false;
    };
    rest.find("\", line ").is_some_and(|at| {
        rest.as_bytes()
            .get(at + "\", line ".len())
            .is_some_and(u8::is_ascii_digit)
    })
}

/// Only `^` and `~` (and spaces): the markers Python puts under the failing part of the code.
fn is_marker(text: &str) -> bool {
    text.bytes().all(|c| matches!(c, b'^' | b'~' | b' '))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(lines: &[&str]) -> Vec<bool> {
        let mut state = Traceback::None;
        lines
            .iter()
            .map(|line| {
                let (code, next) = state.next(line);
                state = next;
                code
            })
            .collect()
    }

    #[test]
    fn the_line_under_a_frame_is_its_code() {
        let lines = [
            "Traceback (most recent call last):",
            "  File \"/app/views.py\", line 12, in handler",
            "    return view_func(*args, **kwargs)",
            "           ^^^^^^^^^^^^^^^^^^^^^^^^^^",
            "  File \"<frozen runpy>\", line 88, in _run_code",
            "  File \"/app/models.py\", line 40, in total",
            "    total = order.items[0].price * qty",
            "KeyError: 'shipping_address'",
        ];
        assert_eq!(
            read(&lines),
            [false, false, true, true, false, false, true, false]
        );
    }

    #[test]
    fn code_needs_its_frame_and_to_be_indented_under_it() {
        // On its own, or not deeper than the frame: a message like any other.
        assert_eq!(read(&["    return view_func(*args)"]), [false]);
        assert_eq!(
            read(&["  File \"a.py\", line 1, in f", "  x = 1", "    y = 2"]),
            [false, false, false]
        );
        // Not a frame: no line number.
        assert_eq!(
            read(&["  File \"a.py\", in f", "    y = 2"]),
            [false, false]
        );
        // Markers only right under code; a blank line is nothing.
        assert_eq!(
            read(&["  File \"a.py\", line 1, in f", "   ", "    ^^^"]),
            [false, false, false]
        );
    }
}
