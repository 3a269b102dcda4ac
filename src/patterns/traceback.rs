//! Stack traces that arrive line by line.
//!
//! A program that crashes prints where it was, one line per frame, and a log shipper reading a
//! container's stderr or journald sends each line as a message of its own. Most frames are one
//! value already whatever function they name (a Java frame, `at a.b.C.run(C.java:42)`, see
//! `spans::stack_frame`; a JavaScript one, `at getUser (/app/users.js:42:17)`, see
//! `spans::script_frame`; .NET's and PHP's, see `spans::dotnet_frame` and `spans::php_frame`).
//! Two kinds of lines are told apart only by the line before them, and are read here:
//!
//! - Python prints each frame as `  File "app.py", line 12, in handler`, then the frame's line
//!   of code indented deeper, `    return view(*args)`, and from Python 3.11 sometimes a line of
//!   `^` and `~` under the part that failed. The code runs on while lines stay indented deeper
//!   than the frame: from Python 3.13 a statement over several lines is quoted whole (`    return
//!   f(`, `        1,`, `    )`), with markers under each of its lines. What ends it is a line
//!   no deeper than the frame: the next frame, `[Previous line repeated …]`, the exception. A
//!   frame is never code, however deep. Python 3.11 prints an exception group's tracebacks
//!   behind a bar, `  |   File …` and `  |     b()`, nested groups further right: the bar
//!   counts as indentation.
//! - Go prints, after `goroutine 1 [running]:`, each frame as the function called,
//!   `main.(*Server).handle(0xc000123400, {0x8b0e88, 0xc000098150})`, then its file and line,
//!   indented, `\t/app/server.go:42 +0x1d`.
//!
//! Read as messages, every trace through code not seen before brought a new pattern, and a new
//! alert, per line of source or per function. The code and the function are where the frame
//! is, a value as a Java frame is: every such line is one event, whose template is `<*>`. The
//! same text on its own is an ordinary message. Interleaved streams can put another line
//! inside a trace; the frame after it is then read as a message, as before.

use super::spans::is_number;

/// What the line before was, as far as a traceback goes (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Traceback {
    /// Nothing of a traceback.
    #[default]
    None,
    /// A Python frame, indented by this many bytes.
    Frame(usize),
    /// A line of a Python frame's code (or of markers under it), the frame indented by this
    /// many bytes.
    Code(usize),
    /// A Go goroutine's header or one of its frames.
    Goroutine,
}

impl Traceback {
    /// Reads `line` after the line this state describes: whether `line` is one value (a
    /// Python frame's code, a Go frame's function), and the state after it.
    pub(crate) fn next(self, line: &str) -> (bool, Traceback) {
        // An exception group draws its tracebacks behind `|` (`  |   File …`, `  |     b()`):
        // the bar indents as a space does.
        let text = line.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '|');
        let indent = line.len() - text.len();
        let text = text.trim_ascii_end();
        if is_python_frame(text) {
            return (false, Traceback::Frame(indent));
        }
        if is_goroutine(text) {
            return (false, Traceback::Goroutine);
        }
        match self {
            Traceback::Frame(frame) | Traceback::Code(frame)
                if indent > frame && !text.is_empty() =>
            {
                (true, Traceback::Code(frame))
            }
            Traceback::Goroutine if indent == 0 && is_go_call(text) => (true, self),
            // A frame's place, or the call that started the goroutine: its frames go on.
            Traceback::Goroutine
                if (indent > 0 && is_go_place(text)) || text.starts_with("created by ") =>
            {
                (false, self)
            }
            _ => (false, Traceback::None),
        }
    }
}

/// `goroutine 1 [running]:`, `goroutine 7 [chan receive, 5 minutes]:`, `goroutine 1 gp=0xc000002380
/// m=0 mp=0x5f1e40 [running]:` (with `GOTRACEBACK=system`): a goroutine's header.
fn is_goroutine(text: &str) -> bool {
    let Some((id, rest)) = text
        .strip_prefix("goroutine ")
        .and_then(|rest| rest.split_once(' '))
    else {
        return false;
    };
    let Some((fields, _)) = rest.split_once('[') else {
        return false;
    };
    is_number(id.as_bytes())
        && fields.split_ascii_whitespace().all(|f| f.contains('='))
        && text.ends_with("]:")
}

/// `main.(*Server).handle(0xc000123400, {0x8b0e88})`, `main.main()`, `panic({0x5f1e40?})`: the
/// function a Go frame called, a name without spaces in a package (or `panic`), and its
/// arguments in brackets as Go prints them: words in hex, `{…}`, `...` and `?`. Another
/// program's line that ends with `)` (`connect(2) failed (errno 111)`, `load(path) failed`) is
/// no call, though it comes right after a dump.
fn is_go_call(text: &str) -> bool {
    let Some((name, args)) = text
        .strip_suffix(')')
        .and_then(|body| body.rsplit_once('('))
    else {
        return false;
    };
    let name_ok = name.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
        && !name.bytes().any(|c| c.is_ascii_whitespace())
        && (name.contains('.') || name == "panic");
    let args_ok = args.bytes().all(|c| {
        c.is_ascii_hexdigit() || matches!(c, b'x' | b'{' | b'}' | b',' | b' ' | b'.' | b'?')
    });
    name_ok && args_ok
}

/// `/app/server.go:42 +0x1d`: where a Go frame is, a file and a line.
fn is_go_place(text: &str) -> bool {
    let place = text.split_ascii_whitespace().next().unwrap_or_default();
    place
        .rsplit_once(".go:")
        .is_some_and(|(_, line)| is_number(line.as_bytes()))
}

/// `File "app.py", line 12, in handler` (leading spaces removed): a frame as Python prints it.
fn is_python_frame(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("File \"") else {
        return false;
    };
    rest.find("\", line ").is_some_and(|at| {
        rest.as_bytes()
            .get(at + "\", line ".len())
            .is_some_and(u8::is_ascii_digit)
    })
}

/// An exception group's traceback as Python 3.11 prints it, for the tests here and the miner's.
#[cfg(test)]
pub(super) const EXCEPTION_GROUP: [&str; 11] = [
    "  + Exception Group Traceback (most recent call last):",
    "  |   File \"/app/main.py\", line 10, in <module>",
    "  |     b()",
    "  |     ~^^",
    "  | ExceptionGroup: inner (2 sub-exceptions)",
    "  +-+---------------- 1 ----------------",
    "    | Traceback (most recent call last):",
    "    |   File \"/app/main.py\", line 2, in a",
    "    |     def a(): raise ValueError(\"x\")",
    "    |              ^^^^^^^^^^^^^^^^^^^^^",
    "    | ValueError: x",
];

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
    fn a_go_frame_is_its_function_then_its_place() {
        let lines = [
            "panic: runtime error: invalid memory address or nil pointer dereference",
            "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a2b3c]",
            "",
            "goroutine 1 [running]:",
            "main.(*Server).handle(0xc000123400, {0x8b0e88, 0xc000098150})",
            "\t/app/server.go:42 +0x1d",
            "net/http.HandlerFunc.ServeHTTP(...)",
            "\t/usr/local/go/src/net/http/server.go:2122",
            "created by net/http.(*Server).Serve in goroutine 1",
            "\t/usr/local/go/src/net/http/server.go:3086 +0x5cb",
            "goroutine 7 [chan receive, 5 minutes]:",
            "main.worker()",
            "exit status 2",
            "main.worker()",
        ];
        let want = [
            false, false, false, false, true, false, true, false, false, false, false, true, false,
            false,
        ];
        assert_eq!(read(&lines), want);
        // A call on its own, or after a frame's place outside a goroutine, is a message.
        assert_eq!(read(&["main.main()", "\t/app/main.go:3"]), [false, false]);
    }

    #[test]
    fn a_message_after_a_goroutine_is_no_call() {
        // Another program's lines after a dump end with `)` too: each keeps its words.
        let lines = [
            "goroutine 1 [running]:",
            "main.main()",
            "\t/app/main.go:5 +0x1d",
            "connect(2) failed (errno 111)",
            "retry(3) scheduled for job (nightly)",
            "config.load(path) failed (see above)",
            "goroutine 2 [running]:",
            "Worker(7) stopped",
        ];
        assert_eq!(
            read(&lines),
            [false, true, false, false, false, false, false, false]
        );
        // Go's own frames: methods, closures, generics, elided and imprecise arguments, a panic.
        let lines = [
            "goroutine 1 gp=0xc000002380 m=0 mp=0x5f1e40 [running, locked to thread]:",
            "panic({0x5f1e40?, 0xc00001e0c0?})",
            "\t/usr/local/go/src/runtime/panic.go:770 +0x132",
            "main.(*Server).handle(0xc000123400, {0x8b0e88, 0xc000098150})",
            "main.main.func1()",
            "main.Map[...](...)",
            "gopkg.in/yaml%2ev2.(*decoder).unmarshal(0xc0001, 0x2)",
            "created by main.main in goroutine 1",
        ];
        assert_eq!(
            read(&lines),
            [false, true, false, true, true, true, true, false]
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

    #[test]
    fn every_line_of_a_statement_over_several_lines_is_code() {
        // Python 3.13 quotes the whole statement, markers under each of its lines.
        let lines = [
            "  File \"/app/jobs.py\", line 6, in g",
            "    return f(",
            "        1,",
            "        0,",
            "    )",
            "  File \"/app/jobs.py\", line 3, in f",
            "    return (a /",
            "            ~~^",
            "            b)",
            "            ~",
            "  [Previous line repeated 2 more times]",
            "ZeroDivisionError: division by zero",
        ];
        assert_eq!(
            read(&lines),
            [
                false, true, true, true, true, false, true, true, true, true, false, false
            ]
        );
    }

    #[test]
    fn the_code_of_a_frame_in_an_exception_group_is_code() {
        // Python 3.11 draws an exception group's tracebacks behind `|`.
        assert_eq!(
            read(&EXCEPTION_GROUP),
            [
                false, false, true, true, false, false, false, false, true, true, false
            ]
        );
    }

    #[test]
    fn a_frame_is_never_code() {
        let lines = [
            "  File \"a.py\", line 1, in f",
            "    File \"b.py\", line 2, in g",
            "      x = 1",
        ];
        assert_eq!(read(&lines), [false, false, true]);
    }
}
