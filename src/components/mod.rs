//! The component contracts: what every source, transform and sink
//! fulfils, and the registry of types a config is parsed against.
//!
//! The contracts sit below the components themselves, so a component
//! depends on the contract, not on the topology that runs it; and the config
//! loader is handed a [`Registry`] instead of naming concrete components.
//!
//! A component goes through three steps, each with its own type:
//! options (`*Config`, parsed from TOML) → [`BuildContext`] → a built value
//! whose `run` returns a [`ComponentFuture`]. Building is pure (no sockets, no
//! files opened), so `howl validate` builds every component to surface VRL and
//! template errors, then throws the result away.

pub mod registry;
pub mod schema;
pub mod sink;
pub mod source;
pub mod transform;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

pub use registry::{ComponentType, Registry};

use crate::component_key::ComponentKey;
use crate::diagnostic::SourceFile;

/// A named output a transform offers besides (or instead of) its default one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputSpec {
    /// `None` for the default output (consumed as `id`), else the name
    /// (consumed as `id.name`).
    pub name: Option<String>,
    /// Whether validation warns when nothing consumes it. Outputs the user
    /// asked for warn; implicit ones (`route`'s `_unmatched`) do not.
    pub warn_if_unconsumed: bool,
    /// The name of a sibling output whose reader also needs this one: the
    /// component holds events back from that output and sends them here
    /// instead (`pattern` announces new patterns grouped into a storm on
    /// `storm`, not on `new`). Validation warns when the sibling is read
    /// and this output is not, since those events would reach no one.
    pub complements: Option<String>,
}

impl OutputSpec {
    /// The default output, which warns when unconsumed.
    pub fn default_output() -> Self {
        Self {
            name: None,
            warn_if_unconsumed: true,
            complements: None,
        }
    }

    /// A named output.
    pub fn named(name: impl Into<String>, warn_if_unconsumed: bool) -> Self {
        Self {
            name: Some(name.into()),
            warn_if_unconsumed,
            complements: None,
        }
    }

    /// Marks this output as carrying what the sibling output `sibling`
    /// held back (see [`OutputSpec::complements`]).
    pub fn complementing(mut self, sibling: impl Into<String>) -> Self {
        self.complements = Some(sibling.into());
        self
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

/// A running component: resolves when the component has finished its work
/// (a source at end of input or shutdown, a transform or sink when its input
/// closed and everything was flushed).
pub type ComponentFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;
