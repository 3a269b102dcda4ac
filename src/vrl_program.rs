//! Compiling and running VRL, shared by `remap`, `filter`, `route` and the
//! `webhook` sink's `payload`.
//!
//! Compile errors are reported where the user wrote the program: for an
//! inline `source`, at the line and column *inside the config file* (the
//! TOML string's position plus the offset in the program); for `file = ...`,
//! at the line and column of that file. VRL's own rendering of the error
//! (with the offending snippet and hints) is attached as the detail.

use std::mem;
use std::path::Path;
use std::sync::{Arc, LazyLock};

use vrl::compiler::runtime::{Runtime, Terminate};
use vrl::compiler::state::RuntimeState;
use vrl::compiler::{
    Function, Program, SecretTarget, Target, TargetValue, TargetValueRef, TimeZone,
};
use vrl::diagnostic::Formatter;
use vrl::path::{OwnedTargetPath, PathPrefix};
use vrl::value::{ObjectMap, Secrets, Value};

use crate::diagnostic::{BuildError, SourceFile, decode_utf8};

/// The VRL standard library, built once (it is a few hundred boxed values).
static FUNCTIONS: LazyLock<Vec<Box<dyn Function>>> = LazyLock::new(vrl::stdlib::all);

/// The schema of an option holding a VRL program (`source`, `payload`),
/// for `#[schemars(with = "VrlSource")]` on its `Spanned<String>` field: the
/// program is compiled at build time, at its position, so the field keeps
/// its span rather than a compiled type.
pub struct VrlSource;

/// The schema of an option holding a VRL condition (an expression that
/// returns a boolean), like [`VrlSource`].
pub struct VrlCondition;

crate::options::string_schema!(VrlSource, "vrl");
crate::options::string_schema!(VrlCondition, "vrl-condition");

/// Where a program's text came from.
pub enum VrlOrigin<'a> {
    /// A TOML string value; the span covers the whole value with its quotes.
    Inline(std::ops::Range<usize>),
    /// A separate file.
    File(&'a Path),
}

/// The largest VRL program howl compiles, in bytes.
///
/// The VRL 0.38 compiler takes time that grows with the square of some
/// programs' size (long runs of comment or blank lines, long paths such as
/// `.a.b.c...`, many distinct fields or variables), so a huge `source`, by
/// mistake or on purpose, would keep `howl validate` and `howl run` busy
/// without end. Real programs are a few KiB; 256 KiB leaves ample room.
/// The limit bounds the damage but does not make every program under it
/// fast: 256 KiB of distinct assignments (`.f1 = 1`, `.f2 = 1`, ...)
/// still takes minutes to compile, which only a fix in VRL can cure.
/// The global key `vrl_max_program_bytes` changes it.
pub const DEFAULT_MAX_PROGRAM_BYTES: usize = 256 * 1024;

/// The limit in force: one per process, set from the config before any
/// component is built.
static MAX_PROGRAM_BYTES: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(DEFAULT_MAX_PROGRAM_BYTES);

/// Sets the largest VRL program compiled (the `vrl_max_program_bytes` key).
pub fn set_max_program_bytes(bytes: usize) {
    MAX_PROGRAM_BYTES.store(bytes, std::sync::atomic::Ordering::Relaxed);
}

fn max_program_bytes() -> usize {
    MAX_PROGRAM_BYTES.load(std::sync::atomic::Ordering::Relaxed)
}

/// Compiles `source`, written in `file` (the config file that names it).
/// `what` names the option in messages (`source`, `condition`,
/// `route.errors`; for a program in its own file, the option naming that
/// file). Programs over the limit ([`DEFAULT_MAX_PROGRAM_BYTES`] unless
/// configured) are refused before compiling.
pub fn compile(
    source: &str,
    origin: VrlOrigin<'_>,
    file: &SourceFile,
    what: &str,
) -> Result<Program, BuildError> {
    if source.len() > max_program_bytes() {
        let error = too_large(&format!(
            "the program in `{what}` is {} KiB",
            source.len().div_ceil(1024)
        ));
        return Err(match origin {
            VrlOrigin::Inline(span) => error.at(span),
            VrlOrigin::File(_) => error.for_option(what),
        });
    }
    match vrl::compiler::compile(source, &FUNCTIONS) {
        Ok(result) => {
            if !result.warnings.is_empty() {
                tracing::debug!(
                    file = %file.path().display(),
                    "VRL warnings in `{what}`:\n{}",
                    Formatter::new(source, result.warnings)
                );
            }
            Ok(result.program)
        }
        Err(diagnostics) => {
            let errors = diagnostics.errors();
            let first = errors.first();
            let offset = first
                .and_then(|d| d.labels.iter().find(|l| l.primary).or(d.labels.first()))
                .map_or(0, |label| label.span.start());
            let summary =
                first.map_or_else(|| "invalid program".to_string(), |d| d.message.clone());
            let count = errors.len();
            let message = if count > 1 {
                format!("VRL error in `{what}` ({count} errors; first): {summary}")
            } else {
                format!("VRL error in `{what}`: {summary}")
            };
            let detail = Formatter::new(source, diagnostics).to_string();
            let mut error = BuildError::new(message).with_detail(detail);
            match origin {
                VrlOrigin::Inline(span) => {
                    let start = string_content_start(file.text(), &span);
                    let at = (start + offset).min(span.end);
                    error = error.at(at..at);
                }
                VrlOrigin::File(path) => {
                    let program_file = SourceFile::new(path, source.to_string());
                    let (line, column) = program_file.line_col(offset);
                    error.external = Some(Box::new((path.to_path_buf(), line, column)));
                }
            }
            Err(error)
        }
    }
}

/// The error for a program over the limit; `subject` says which
/// program and how large it is.
fn too_large(subject: &str) -> BuildError {
    BuildError::new(format!(
        "{subject}: the limit for one VRL program is {} KiB (compiling VRL takes time that \
         grows faster than the program); split it across several `remap` transforms, or raise \
         `vrl_max_program_bytes`",
        max_program_bytes() / 1024
    ))
}

/// Reads a VRL program kept in its own file (`option` names the option
/// that gives its path), refusing a file over the limit
/// without reading it all.
pub fn read_program_file(path: &Path, option: &str) -> Result<String, BuildError> {
    use std::io::Read;
    let cannot_read = |e: std::io::Error| {
        BuildError::new(format!("cannot read VRL file `{}`: {e}", path.display()))
            .for_option(option)
    };
    let file = std::fs::File::open(path).map_err(cannot_read)?;
    let mut bytes = Vec::new();
    let limit = max_program_bytes();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot_read)?;
    if bytes.len() > limit {
        return Err(
            too_large(&format!("VRL file `{}` is too large", path.display())).for_option(option),
        );
    }
    decode_utf8(bytes).map_err(|at| {
        let mut error = BuildError::new(format!("cannot read VRL file: {at}"));
        error.external = Some(Box::new((path.to_path_buf(), at.line, at.column)));
        error
    })
}

/// The stack of a thread that compiles VRL off the main thread: the
/// compiler recurses once per level of nesting, and a program that compiles
/// at start-up (on the main thread's 8 MiB) must compile on a reload or in
/// the API too, not overflow a 2 MiB worker stack and abort howl.
const COMPILE_STACK_BYTES: usize = 64 * 1024 * 1024;

/// Runs `work` (compiling VRL) on a thread with a large stack, and waits
/// for it without blocking the async runtime.
pub async fn on_large_stack<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<T> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("howl-vrl-compile".into())
        .stack_size(COMPILE_STACK_BYTES)
        .spawn(move || {
            let _ = done.send(work());
        })?;
    result
        .await
        .map_err(|_| std::io::Error::other("the compiling thread stopped without an answer"))
}

/// Compiles a condition and checks that it can only produce a boolean.
pub fn compile_condition(
    source: &str,
    origin: VrlOrigin<'_>,
    file: &SourceFile,
    what: &str,
) -> Result<Program, BuildError> {
    let span = match &origin {
        VrlOrigin::Inline(span) => Some(span.clone()),
        VrlOrigin::File(_) => None,
    };
    let program = compile(source, origin, file, what)?;
    if !program.final_type_info().result.is_boolean() {
        let mut error = BuildError::new(format!(
            "`{what}` must be a VRL expression that returns a boolean (e.g. `.status >= 500`); \
             this one may return something else"
        ));
        if let Some(span) = span {
            error = error.at(span);
        }
        return Err(error);
    }
    Ok(program)
}

/// Where the text of a TOML string starts, given the span of the whole value
/// (quotes included). Literal strings map one to one onto the program; for
/// basic strings with escapes the column is approximate.
fn string_content_start(text: &str, span: &std::ops::Range<usize>) -> usize {
    let raw = text.get(span.clone()).unwrap_or_default();
    let delimiter = ["'''", "\"\"\"", "'", "\""]
        .iter()
        .find(|d| raw.starts_with(**d))
        .map_or(0, |d| d.len());
    let mut start = span.start + delimiter;
    if delimiter == 3 {
        // A newline right after a multi-line opener is not part of the string.
        let rest = &text[start.min(text.len())..];
        if rest.starts_with("\r\n") {
            start += 2;
        } else if rest.starts_with('\n') {
            start += 1;
        }
    }
    start
}

/// Runs a compiled program on events, reusing its runtime between them.
pub struct VrlRunner {
    program: Arc<Program>,
    runtime: Runtime,
    timezone: TimeZone,
}

impl Clone for VrlRunner {
    fn clone(&self) -> Self {
        Self::new(Arc::clone(&self.program))
    }
}

impl VrlRunner {
    /// A runner for `program` (cheap: the program is shared).
    pub fn new(program: Arc<Program>) -> Self {
        Self {
            program,
            runtime: Runtime::new(RuntimeState::default()),
            timezone: TimeZone::default(),
        }
    }

    /// Runs the program on `value` in place and returns its result.
    pub fn run(&mut self, value: &mut Value) -> Result<Value, Terminate> {
        let mut target = TargetValue {
            value: mem::replace(value, Value::Null),
            metadata: Value::Object(ObjectMap::new()),
            secrets: Secrets::default(),
        };
        let result = self
            .runtime
            .resolve(&mut target, &self.program, &self.timezone);
        self.runtime.clear();
        *value = target.value;
        result
    }

    /// Runs the program on `value` in place, keeping what is needed to give
    /// the event back unchanged if the program fails: on failure, the second
    /// value is the event as it was before the program ran.
    ///
    /// The copy is taken lazily, at the program's first write, and a write
    /// that replaces the whole event (`. = parse_json!(...)`) keeps the old
    /// value instead of copying it. So the common remap shapes (parse, then
    /// assign) never clone the event at all, while the guarantee holds for
    /// any program.
    pub fn run_keeping_original(
        &mut self,
        value: &mut Value,
    ) -> (Result<Value, Terminate>, Option<Value>) {
        let mut target = CopyOnWriteTarget {
            value: mem::replace(value, Value::Null),
            original: None,
            metadata: Value::Object(ObjectMap::new()),
            secrets: Secrets::default(),
        };
        let result = self
            .runtime
            .resolve(&mut target, &self.program, &self.timezone);
        self.runtime.clear();
        *value = target.value;
        let original = match &result {
            Ok(_) => None,
            Err(_) => target.original,
        };
        (result, original)
    }

    /// Whether the program can fail at run time.
    pub fn is_fallible(&self) -> bool {
        let info = self.program.info();
        info.fallible || info.abortable
    }
}

/// A VRL target that remembers the event as it was before the first write.
#[derive(Debug)]
struct CopyOnWriteTarget {
    value: Value,
    original: Option<Value>,
    metadata: Value,
    secrets: Secrets,
}

impl CopyOnWriteTarget {
    fn before_write(&mut self, path: &OwnedTargetPath) {
        if self.original.is_none() && path.prefix == PathPrefix::Event {
            self.original = Some(self.value.clone());
        }
    }

    fn inner(&mut self) -> TargetValueRef<'_> {
        TargetValueRef {
            value: &mut self.value,
            metadata: &mut self.metadata,
            secrets: &mut self.secrets,
        }
    }
}

impl Target for CopyOnWriteTarget {
    fn target_insert(&mut self, path: &OwnedTargetPath, value: Value) -> Result<(), String> {
        if self.original.is_none() && path.prefix == PathPrefix::Event && path.path.is_root() {
            // Replacing the whole event: keep the old one instead of a copy.
            self.original = Some(mem::replace(&mut self.value, value));
            return Ok(());
        }
        self.before_write(path);
        self.inner().target_insert(path, value)
    }

    fn target_get(&self, path: &OwnedTargetPath) -> Result<Option<&Value>, String> {
        match path.prefix {
            PathPrefix::Event => Ok(self.value.get(&path.path)),
            PathPrefix::Metadata => Ok(self.metadata.get(&path.path)),
        }
    }

    fn target_get_mut(&mut self, path: &OwnedTargetPath) -> Result<Option<&mut Value>, String> {
        self.before_write(path);
        match path.prefix {
            PathPrefix::Event => Ok(self.value.get_mut(&path.path)),
            PathPrefix::Metadata => Ok(self.metadata.get_mut(&path.path)),
        }
    }

    fn target_remove(
        &mut self,
        path: &OwnedTargetPath,
        compact: bool,
    ) -> Result<Option<Value>, String> {
        self.before_write(path);
        self.inner().target_remove(path, compact)
    }
}

impl SecretTarget for CopyOnWriteTarget {
    fn get_secret(&self, key: &str) -> Option<&str> {
        self.secrets.get_secret(key)
    }

    fn insert_secret(&mut self, key: &str, value: &str) {
        self.secrets.insert_secret(key, value);
    }

    fn remove_secret(&mut self, key: &str) {
        self.secrets.remove_secret(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runner(source: &str) -> VrlRunner {
        let program = vrl::compiler::compile(source, &FUNCTIONS)
            .expect("compiles")
            .program;
        VrlRunner::new(Arc::new(program))
    }

    #[test]
    fn programs_over_the_limit_are_refused_at_their_option() {
        let file = SourceFile::new("a.toml", String::new());
        // One long string: quick to compile, whatever its size.
        let program = |size: usize| format!(".a = \"{}\"", "x".repeat(size - 7));
        assert!(
            compile(
                &program(DEFAULT_MAX_PROGRAM_BYTES),
                VrlOrigin::Inline(0..1),
                &file,
                "source"
            )
            .is_ok()
        );
        let Err(error) = compile(
            &program(DEFAULT_MAX_PROGRAM_BYTES + 1),
            VrlOrigin::Inline(40..50),
            &file,
            "source",
        ) else {
            panic!("a program over the limit compiled");
        };
        assert_eq!(error.span, Some(40..50), "at the option's value");
        assert!(
            error
                .message
                .contains("`source` is 257 KiB: the limit for one VRL program is 256 KiB"),
            "{}",
            error.message
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.vrl");
        std::fs::write(&path, program(DEFAULT_MAX_PROGRAM_BYTES + 1)).unwrap();
        let error = read_program_file(&path, "file").unwrap_err();
        assert_eq!(error.option.as_deref(), Some("file"));
        assert!(error.message.contains("is too large"), "{}", error.message);
        std::fs::write(&path, program(1000)).unwrap();
        assert_eq!(read_program_file(&path, "file").unwrap(), program(1000));
    }

    #[test]
    fn failure_after_edits_gives_back_the_untouched_event() {
        let mut runner = runner(".a = 1\ndel(.keep)\n.b = parse_json!(string!(.message))");
        let before = vrl::value!({"message": "not json", "keep": true});
        let mut value = before.clone();
        let (result, original) = runner.run_keeping_original(&mut value);
        assert!(result.is_err());
        assert_eq!(original, Some(before));
    }

    #[test]
    fn replacing_the_root_keeps_the_old_event_without_a_copy() {
        let mut runner = runner(". = {\"x\": 1}\n.y = to_int!(.x) + to_int!(\"nope\")");
        let before = vrl::value!({"message": "m"});
        let mut value = before.clone();
        let (result, original) = runner.run_keeping_original(&mut value);
        assert!(result.is_err());
        assert_eq!(original, Some(before));
    }

    #[test]
    fn failure_before_any_write_needs_no_copy() {
        let mut runner = runner(". = parse_json!(string!(.message))");
        let before = vrl::value!({"message": "not json"});
        let mut value = before.clone();
        let (result, original) = runner.run_keeping_original(&mut value);
        assert!(result.is_err());
        assert_eq!(
            original, None,
            "nothing was written, so the value itself is the original"
        );
        assert_eq!(value, before);
    }

    #[test]
    fn success_returns_the_edited_event() {
        let mut runner = runner(".n = 2");
        let mut value = vrl::value!({"message": "m"});
        let (result, original) = runner.run_keeping_original(&mut value);
        assert!(result.is_ok() && original.is_none());
        assert_eq!(value, vrl::value!({"message": "m", "n": 2}));
    }
}
