//! The table of component types of each kind.
//!
//! A component type is a name (`type = "stdin"`), a way to parse its options
//! from spanned TOML, and the schema of those options. The tables live in
//! `sources/mod.rs`, `transforms/mod.rs` and `sinks/mod.rs`; adding a
//! component means adding one line there with [`component_type!`]. The
//! topology gathers them into the [`Registry`] the config loader is handed.

use super::schema::OptionsSchema;
use super::sink::SinkConfig;
use super::source::SourceConfig;
use super::transform::TransformConfig;

/// Parses a component's options from its TOML table (minus the common keys).
pub type ParseFn<C> =
    for<'de> fn(toml::de::ValueDeserializer<'de>) -> Result<Box<C>, toml::de::Error>;

/// One `type` a user can name, for components of trait `C`.
pub struct ComponentType<C: ?Sized> {
    /// The value of `type` in TOML.
    pub name: &'static str,
    /// Parses the options; errors carry TOML spans.
    pub parse: ParseFn<C>,
    /// The options' schema, for unknown-key checks and the docs test.
    pub schema: fn() -> schemars::Schema,
}

impl<C: ?Sized> ComponentType<C> {
    /// The options schema, ready to query.
    pub fn options(&self) -> OptionsSchema {
        OptionsSchema::new((self.schema)())
    }
}

/// Every type a config may name, by kind. The loader parses against it
/// and never names a concrete component itself.
#[derive(Clone, Copy)]
pub struct Registry {
    /// Source types.
    pub sources: &'static [ComponentType<dyn SourceConfig>],
    /// Transform types.
    pub transforms: &'static [ComponentType<dyn TransformConfig>],
    /// Sink types.
    pub sinks: &'static [ComponentType<dyn SinkConfig>],
}

/// Declares a [`ComponentType`] entry from a name and an options struct that
/// implements `Deserialize`, `JsonSchema` and the kind's config trait.
macro_rules! component_type {
    ($name:literal, $config:ty) => {
        $crate::components::registry::ComponentType {
            name: $name,
            parse: |de| Ok(Box::new(<$config as serde::Deserialize>::deserialize(de)?)),
            schema: || schemars::schema_for!($config),
        }
    };
}
pub(crate) use component_type;

/// Finds a type by name.
pub fn find<'a, C: ?Sized>(
    types: &'a [ComponentType<C>],
    name: &str,
) -> Option<&'a ComponentType<C>> {
    types.iter().find(|t| t.name == name)
}
