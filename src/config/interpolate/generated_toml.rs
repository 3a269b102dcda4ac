//! Property tests of interpolation over generated TOML.
//!
//! Each case is a random document (keys of every kind, strings of the four
//! kinds with embedded quotes, escapes, `#`, the one or two extra quotes a
//! multi-line string may end with, arrays, inline tables, headers,
//! comments) with `${V0}`..`${V3}` references in random places, and random
//! environment values (quotes, backslashes, `#`, `=`, brackets, newlines,
//! control characters, unicode). The property: interpolation refuses, or
//! the TOML it gives parses to the same structure (keys, nesting, array
//! lengths) as the *neutral* document, the same one with each reference
//! replaced by a harmless value of its kind (`n` in a string, `1` as a bare
//! value, the value itself as a quoted key where the reference makes a
//! key). So no environment value changes anything but its own value.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

use super::interpolate;

const VARS: usize = 4;

/// A `${Vn}` or `${Vn:-default}` reference.
#[derive(Debug, Clone)]
struct Ref {
    var: usize,
    default: Option<String>,
}

impl Ref {
    fn written(&self) -> String {
        match &self.default {
            Some(default) => format!("${{V{}:-{default}}}", self.var),
            None => format!("${{V{}}}", self.var),
        }
    }

    /// The text it stands for, as interpolation chooses it.
    fn resolved(&self, env: &Env) -> Option<String> {
        match (&env[self.var], &self.default) {
            (Some(value), Some(default)) if value.is_empty() => Some(default.clone()),
            (Some(value), _) => Some(value.clone()),
            (None, default) => default.clone(),
        }
    }
}

type Env = [Option<String>; VARS];

#[derive(Debug, Clone)]
enum Piece {
    /// Text, made fit for the string kind when rendered.
    Text(String),
    /// A TOML escape sequence (inside literal strings, plain text).
    Escape(&'static str),
    /// One or two quotes of the string's own kind, inside a multi-line
    /// string (followed by a letter, so they never make a closing run).
    Quotes(usize),
    Ref(Ref),
}

#[derive(Debug, Clone, Copy)]
enum StrKind {
    Basic,
    Literal,
    MultiBasic,
    MultiLiteral,
}

#[derive(Debug, Clone)]
enum Value {
    Str {
        kind: StrKind,
        pieces: Vec<Piece>,
        /// Quotes right before a multi-line string's closing delimiter.
        extra_quotes: usize,
    },
    Int(i32),
    Float(&'static str),
    Bool(bool),
    BareRef(Ref),
    Array {
        items: Vec<Value>,
        multi_line: bool,
        comments: Vec<Piece>,
    },
    Inline(Vec<(Key, Value)>),
}

#[derive(Debug, Clone)]
enum Key {
    Bare,
    Dotted,
    /// A quoted key (`"..."`, or `'...'` when `literal`) with references.
    Quoted {
        literal: bool,
        pieces: Vec<Piece>,
    },
    /// A bare key starting with a reference (`${V0}_c3`).
    BareRef(Ref),
}

#[derive(Debug, Clone)]
enum Line {
    Pair(Key, Value, Option<Vec<Piece>>),
    Table(Option<Key>),
    ArrayTable,
    Comment(Vec<Piece>),
}

/// Renders a document as written (with references) or neutral.
struct Renderer<'a> {
    env: &'a Env,
    neutral: bool,
    out: String,
    /// Makes every key unique.
    counter: usize,
}

impl Renderer<'_> {
    fn next(&mut self) -> usize {
        self.counter += 1;
        self.counter
    }

    fn line(&mut self, line: &Line) {
        match line {
            Line::Pair(key, value, comment) => {
                self.key(key);
                self.out.push_str(" = ");
                self.value(value);
                if let Some(comment) = comment {
                    self.out.push_str("  ");
                    self.comment(comment);
                }
            }
            Line::Table(key) => {
                let n = self.next();
                self.out.push_str(&format!("[t{n}"));
                if let Some(key) = key {
                    self.out.push('.');
                    self.key(key);
                }
                self.out.push(']');
            }
            Line::ArrayTable => {
                let n = self.next();
                self.out.push_str(&format!("[[a{n}]]"));
            }
            Line::Comment(pieces) => self.comment(pieces),
        }
        self.out.push('\n');
    }

    fn comment(&mut self, pieces: &[Piece]) {
        self.out.push('#');
        for piece in pieces {
            match piece {
                Piece::Text(text) => self.out.push_str(&text.replace(['\n', '\r'], " ")),
                Piece::Escape(escape) => self.out.push_str(escape),
                Piece::Quotes(n) => self.out.push_str(&"'".repeat(*n)),
                Piece::Ref(_) if self.neutral => self.out.push('n'),
                Piece::Ref(r) => self.out.push_str(&r.written()),
            }
        }
    }

    fn key(&mut self, key: &Key) {
        let n = self.next();
        match key {
            Key::Bare => self.out.push_str(&format!("k{n}")),
            Key::Dotted => self.out.push_str(&format!("d{n}.e{n}")),
            Key::Quoted { literal, pieces } => {
                if self.neutral {
                    let mut name = String::new();
                    for piece in pieces {
                        match piece {
                            Piece::Text(text) => name.push_str(text),
                            Piece::Ref(r) => {
                                name.push_str(&r.resolved(self.env).unwrap_or_default())
                            }
                            Piece::Escape(_) | Piece::Quotes(_) => {}
                        }
                    }
                    self.out.push_str(&quoted_key(&format!("{name}_c{n}")));
                } else {
                    let quote = if *literal { '\'' } else { '"' };
                    self.out.push(quote);
                    for piece in pieces {
                        match piece {
                            Piece::Text(text) => self.out.push_str(text),
                            Piece::Ref(r) => self.out.push_str(&r.written()),
                            Piece::Escape(_) | Piece::Quotes(_) => {}
                        }
                    }
                    self.out.push_str(&format!("_c{n}{quote}"));
                }
            }
            Key::BareRef(r) if self.neutral => {
                let name = r.resolved(self.env).unwrap_or_default();
                self.out.push_str(&quoted_key(&format!("{name}_c{n}")));
            }
            Key::BareRef(r) => self.out.push_str(&format!("{}_c{n}", r.written())),
        }
    }

    fn value(&mut self, value: &Value) {
        match value {
            Value::Str {
                kind,
                pieces,
                extra_quotes,
            } => self.string(*kind, pieces, *extra_quotes),
            Value::Int(i) => self.out.push_str(&i.to_string()),
            Value::Float(f) => self.out.push_str(f),
            Value::Bool(b) => self.out.push_str(&b.to_string()),
            Value::BareRef(_) if self.neutral => self.out.push('1'),
            Value::BareRef(r) => self.out.push_str(&r.written()),
            Value::Array {
                items,
                multi_line,
                comments,
            } => {
                self.out.push('[');
                for (index, item) in items.iter().enumerate() {
                    if *multi_line {
                        self.out.push('\n');
                    }
                    self.value(item);
                    self.out.push(',');
                    if *multi_line && index == 0 && !comments.is_empty() {
                        self.out.push(' ');
                        self.comment(comments);
                    }
                }
                if *multi_line {
                    self.out.push('\n');
                }
                self.out.push(']');
            }
            Value::Inline(pairs) => {
                self.out.push_str("{ ");
                for (index, (key, value)) in pairs.iter().enumerate() {
                    if index > 0 {
                        self.out.push_str(", ");
                    }
                    self.key(key);
                    self.out.push_str(" = ");
                    self.value(value);
                }
                self.out.push_str(" }");
            }
        }
    }

    fn string(&mut self, kind: StrKind, pieces: &[Piece], extra_quotes: usize) {
        let (open, quote) = match kind {
            StrKind::Basic => ("\"", '"'),
            StrKind::Literal => ("'", '\''),
            StrKind::MultiBasic => ("\"\"\"", '"'),
            StrKind::MultiLiteral => ("'''", '\''),
        };
        let multi_line = matches!(kind, StrKind::MultiBasic | StrKind::MultiLiteral);
        let basic = matches!(kind, StrKind::Basic | StrKind::MultiBasic);
        self.out.push_str(open);
        for piece in pieces {
            match piece {
                Piece::Text(text) => {
                    for c in text.chars() {
                        match c {
                            '\n' | '\r' if !multi_line => {}
                            '\r' => {}
                            '"' | '\\' if basic => {
                                self.out.push('\\');
                                self.out.push(c);
                            }
                            '\'' if !basic => {}
                            c => self.out.push(c),
                        }
                    }
                }
                Piece::Escape(escape) => self.out.push_str(escape),
                Piece::Quotes(n) if multi_line => {
                    self.out.push_str(&quote.to_string().repeat(*n));
                    self.out.push('q');
                }
                Piece::Quotes(_) => {}
                Piece::Ref(_) if self.neutral => self.out.push('n'),
                Piece::Ref(r) => self.out.push_str(&r.written()),
            }
        }
        if multi_line {
            self.out.push_str(&quote.to_string().repeat(extra_quotes));
        }
        self.out.push_str(open);
    }
}

/// A key as a `"..."` string holding exactly `name`.
fn quoted_key(name: &str) -> String {
    let mut out = String::from("\"");
    for c in name.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn render(lines: &[Line], env: &Env, neutral: bool) -> String {
    let mut renderer = Renderer {
        env,
        neutral,
        out: String::new(),
        counter: 0,
    };
    for line in lines {
        renderer.line(line);
    }
    renderer.out
}

/// The structure of a parsed document: keys, nesting and array lengths;
/// every scalar is the same leaf.
#[derive(Debug, PartialEq, Eq)]
enum Shape {
    Leaf,
    Array(Vec<Shape>),
    Table(BTreeMap<String, Shape>),
}

fn shape(value: &toml::Value) -> Shape {
    match value {
        toml::Value::Array(items) => Shape::Array(items.iter().map(shape).collect()),
        toml::Value::Table(table) => table_shape(table),
        _ => Shape::Leaf,
    }
}

fn table_shape(table: &toml::Table) -> Shape {
    Shape::Table(table.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
}

// ---- strategies ----

fn chars_from(alphabet: &'static [char], max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(alphabet), 0..max)
        .prop_map(|chars| chars.into_iter().collect())
}

/// Text inside strings and comments: quotes of both kinds, `#`, `=`,
/// brackets, `$`, unicode, newlines (kept in multi-line strings only).
const STRING_TEXT: &[char] = &[
    'a', 'b', 'z', '0', '9', ' ', '\t', '#', '=', '[', ']', '{', '}', ',', '.', '"', '\'', '\\',
    '$', 'é', '🦀', '\n',
];
/// Text of quoted keys, whose name the neutral document must spell out.
const KEY_TEXT: &[char] = &['a', 'k', '0', ' ', '.', '#', '=', '[', ']', ',', '-'];
/// Environment values: everything that could end a string or a value,
/// and control characters.
const HOSTILE: &[char] = &[
    'a', 'Z', '0', '7', '_', '-', '.', ':', '+', ' ', '\t', '"', '\'', '\\', '#', '=', '[', ']',
    '{', '}', ',', '$', 'é', '🦀', '\u{202e}', '\u{1}', '\u{7f}', '\n', '\r',
];
/// Defaults: mostly plain, sometimes a quote or bracket (which must then be
/// refused where it would end its string or value).
const DEFAULT_TEXT: &[char] = &['a', '1', '.', '_', '-', ':', ' ', '"', '\'', '[', ','];

/// Defaults of references inside strings may also hold backslashes (TOML
/// escapes in a `"..."` string, text in a `'...'` one).
const STRING_DEFAULT_TEXT: &[char] = &['a', '1', '.', ' ', '"', '\'', '\\', 'n', '#'];

fn reference_with(defaults: &'static [char]) -> impl Strategy<Value = Ref> {
    (
        0..VARS,
        prop::option::weighted(0.3, chars_from(defaults, 5)),
    )
        .prop_map(|(var, default)| Ref { var, default })
}

/// A reference outside strings or in a quoted key (whose name the neutral
/// document spells out, so its default holds no escapes).
fn reference() -> impl Strategy<Value = Ref> {
    reference_with(DEFAULT_TEXT)
}

fn piece(text: &'static [char], defaults: &'static [char]) -> impl Strategy<Value = Piece> {
    prop_oneof![
        4 => chars_from(text, 6).prop_map(Piece::Text),
        1 => prop::sample::select(&["\\\"", "\\\\", "\\n", "\\t", "\\u00E9", "\\U0001F980"][..])
            .prop_map(Piece::Escape),
        1 => (1usize..=2).prop_map(Piece::Quotes),
        3 => reference_with(defaults).prop_map(Piece::Ref),
    ]
}

/// The text of a string or a comment.
fn pieces(text: &'static [char]) -> impl Strategy<Value = Vec<Piece>> {
    prop::collection::vec(piece(text, STRING_DEFAULT_TEXT), 0..5)
}

/// The text of a quoted key.
fn key_pieces() -> impl Strategy<Value = Vec<Piece>> {
    prop::collection::vec(piece(KEY_TEXT, DEFAULT_TEXT), 0..5)
}

fn key() -> impl Strategy<Value = Key> {
    prop_oneof![
        3 => Just(Key::Bare),
        1 => Just(Key::Dotted),
        2 => (any::<bool>(), key_pieces())
            .prop_map(|(literal, pieces)| Key::Quoted { literal, pieces }),
        2 => reference().prop_map(Key::BareRef),
    ]
}

fn string_value() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(
            &[
                StrKind::Basic,
                StrKind::Literal,
                StrKind::MultiBasic,
                StrKind::MultiLiteral,
            ][..],
        ),
        pieces(STRING_TEXT),
        0usize..=2,
    )
        .prop_map(|(kind, pieces, extra_quotes)| Value::Str {
            kind,
            pieces,
            extra_quotes,
        })
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        6 => string_value(),
        1 => any::<i32>().prop_map(Value::Int),
        1 => prop::sample::select(&["1.5", "-0.25", "1e3", "inf"][..]).prop_map(Value::Float),
        1 => any::<bool>().prop_map(Value::Bool),
        3 => reference().prop_map(Value::BareRef),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            (
                prop::collection::vec(inner.clone(), 0..4),
                any::<bool>(),
                pieces(STRING_TEXT)
            )
                .prop_map(|(items, multi_line, comments)| Value::Array {
                    items,
                    multi_line,
                    comments,
                }),
            prop::collection::vec((key(), inner), 0..3).prop_map(Value::Inline),
        ]
    })
}

fn line() -> impl Strategy<Value = Line> {
    prop_oneof![
        6 => (key(), value(), prop::option::weighted(0.3, pieces(STRING_TEXT)))
            .prop_map(|(k, v, c)| Line::Pair(k, v, c)),
        1 => prop::option::of(key()).prop_map(Line::Table),
        1 => Just(Line::ArrayTable),
        1 => pieces(STRING_TEXT).prop_map(Line::Comment),
    ]
}

fn document() -> impl Strategy<Value = Vec<Line>> {
    prop::collection::vec(line(), 1..8)
}

fn env_value() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        1 => Just(None),
        6 => "[a-z0-9_-]{0,6}".prop_map(Some),
        3 => chars_from(HOSTILE, 10).prop_map(Some),
        1 => prop::sample::select(
            &[
                "\"\"\"", "'''", "''''", "\\", "1.5", "true", "a.b", "\"ops\", X-Injected = \"yes\"",
                "x' }, evil = '1", "]\n[evil]",
            ][..],
        )
        .prop_map(|v| Some(v.to_string())),
    ]
}

fn environment() -> impl Strategy<Value = Env> {
    prop::array::uniform4(env_value())
}

/// What became of one case.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Interpolation refused the values.
    Refused,
    /// The result is not TOML (the loader then reports a syntax error).
    Unparsable,
    /// The result parsed, with the neutral document's structure.
    Same,
}

/// Runs one case; `Err` when a value changed the structure.
fn check(lines: &[Line], env: &Env) -> Result<Outcome, TestCaseError> {
    let written = render(lines, env, false);
    let neutral_text = render(lines, env, true);
    let neutral: toml::Table = neutral_text.parse().map_err(|e| {
        TestCaseError::fail(format!(
            "the generator made invalid TOML: {e}\n{neutral_text}"
        ))
    })?;
    let lookup = |name: &str| {
        let index: usize = name.strip_prefix('V')?.parse().ok()?;
        env.get(index).cloned().flatten()
    };
    let Ok(interpolated) = interpolate(&written, lookup) else {
        return Ok(Outcome::Refused);
    };
    let Ok(parsed) = interpolated.parse::<toml::Table>() else {
        return Ok(Outcome::Unparsable);
    };
    prop_assert_eq!(
        table_shape(&parsed),
        table_shape(&neutral),
        "written:\n{}\ninterpolated:\n{}\nneutral:\n{}",
        written,
        interpolated,
        neutral_text
    );
    Ok(Outcome::Same)
}

proptest! {
    #![proptest_config(Config { cases: 2000, ..Config::default() })]

    #[test]
    fn no_environment_value_changes_the_structure(lines in document(), env in environment()) {
        check(&lines, &env)?;
    }
}

/// The property means something only if many cases get past the
/// interpolation and the parser: count the outcomes over fixed cases.
#[test]
fn most_generated_cases_are_accepted() {
    let mut runner = TestRunner::deterministic();
    let strategy = (document(), environment());
    let mut counts = BTreeMap::new();
    for _ in 0..1000 {
        let (lines, env) = strategy.new_tree(&mut runner).expect("a case").current();
        let outcome = check(&lines, &env).expect("the property holds");
        *counts.entry(format!("{outcome:?}")).or_insert(0) += 1;
    }
    let same = counts.get("Same").copied().unwrap_or(0);
    assert!(same >= 200, "too few cases were accepted: {counts:?}");
}
