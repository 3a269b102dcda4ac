//! Who a component is: its kind, its id and its type.
//!
//! The key sits at the bottom of the crate because everything names
//! components: metrics labels, diagnostics, buffers and the running
//! topology, long before any component contract is involved.

use std::fmt;
use std::sync::Arc;

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
