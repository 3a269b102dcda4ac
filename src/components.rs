//! What every component shares, whatever its kind: its identity, the context
//! it is built in, the error it reports when its options do not make sense,
//! and the shape of its running task.
//!
//! A component goes through three steps, each with its own type:
//! options (`*Config`, parsed from TOML) → [`BuildContext`] → a built value
//! whose `run` returns a [`ComponentFuture`]. Building is pure (no sockets, no
//! files opened), so `howl validate` builds every component to surface VRL and
//! template errors, then throws the result away.

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use crate::config::SourceFile;

/// The three kinds of components, as named in the TOML (`[sources.x]`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ComponentKind {
    /// Produces events from the outside world.
    Source,
    /// Turns events into other events.
    Transform,
    /// Delivers events to the outside world.
    Sink,
}

impl ComponentKind {
    /// The singular label used in metrics (`component_kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Transform => "transform",
            Self::Sink => "sink",
        }
    }

    /// The TOML table this kind lives in.
    pub fn table(self) -> &'static str {
        match self {
            Self::Source => "sources",
            Self::Transform => "transforms",
            Self::Sink => "sinks",
        }
    }
}

/// Identifies one component in messages, logs and metrics.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ComponentKey {
    kind: ComponentKind,
    id: Arc<str>,
    type_name: Arc<str>,
}

impl ComponentKey {
    /// A key for the component `id` of the given kind and type.
    pub fn new(kind: ComponentKind, id: &str, type_name: &str) -> Self {
        Self {
            kind,
            id: Arc::from(id),
            type_name: Arc::from(type_name),
        }
    }

    /// Its kind.
    pub fn kind(&self) -> ComponentKind {
        self.kind
    }

    /// Its id (the TOML table name).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its id, cheaply shareable (stamped on every event a source makes).
    pub fn shared_id(&self) -> Arc<str> {
        Arc::clone(&self.id)
    }

    /// Its `type`.
    pub fn type_name(&self) -> &str {
        &self.type_name
    }
}

impl fmt::Display for ComponentKey {
    /// `sinks.out`: the same path the user wrote in TOML.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.kind.table(), self.id)
    }
}

/// A named output a transform offers besides (or instead of) its default one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputSpec {
    /// `None` for the default output (consumed as `id`), else the name
    /// (consumed as `id.name`).
    pub name: Option<String>,
    /// Whether validation warns when nothing consumes it. Outputs the user
    /// asked for warn; implicit ones (`route`'s `_unmatched`) do not.
    pub warn_if_unconsumed: bool,
}

impl OutputSpec {
    /// The default output, which warns when unconsumed.
    pub fn default_output() -> Self {
        Self {
            name: None,
            warn_if_unconsumed: true,
        }
    }

    /// A named output.
    pub fn named(name: impl Into<String>, warn_if_unconsumed: bool) -> Self {
        Self {
            name: Some(name.into()),
            warn_if_unconsumed,
        }
    }
}

/// What a component may consult while it is being built.
#[derive(Clone, Debug)]
pub struct BuildContext {
    /// The component being built.
    pub key: ComponentKey,
    /// The file that defines it, to locate errors inside option values.
    pub file: Arc<SourceFile>,
    /// Where state lives (`data_dir`).
    pub data_dir: PathBuf,
}

impl BuildContext {
    /// Resolves a path option relative to the directory of the config file
    /// that names it, so a topology works wherever howl is started from.
    pub fn resolve_path(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            return path.to_path_buf();
        }
        match self.file.path().parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }
}

/// Why a component's options cannot be turned into a working component.
#[derive(Debug, Clone)]
pub struct BuildError {
    /// One line saying what is wrong and what to do.
    pub message: String,
    /// Where in the config file the problem is, when known (byte range).
    pub span: Option<Range<usize>>,
    /// Where the problem is, in another file (a VRL `file = ...`), when known:
    /// the file and its 1-based line and column.
    pub external: Option<(PathBuf, usize, usize)>,
    /// A multi-line explanation (e.g. VRL's own diagnostic rendering).
    pub detail: Option<String>,
}

impl BuildError {
    /// An error without a position.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            span: None,
            external: None,
            detail: None,
        }
    }

    /// Points the error at a byte range of the config file.
    pub fn at(mut self, span: Range<usize>) -> Self {
        self.span = Some(span);
        self
    }

    /// Adds a multi-line explanation.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BuildError {}

/// A running component: resolves when the component has finished its work
/// (a source at end of input or shutdown, a transform or sink when its input
/// closed and everything was flushed).
pub type ComponentFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;
