//! The table of component types of each kind.
//!
//! A component type is a name (`type = "stdin"`), a way to parse its options
//! from spanned TOML, and the schema of those options. The registries live in
//! `sources/mod.rs`, `transforms/mod.rs` and `sinks/mod.rs`; adding a
//! component means adding one line there with [`component_type!`].

use crate::config::schema::OptionsSchema;

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

/// Declares a [`ComponentType`] entry from a name and an options struct that
/// implements `Deserialize`, `JsonSchema` and the kind's config trait.
#[macro_export]
macro_rules! component_type {
    ($name:literal, $config:ty) => {
        $crate::config::registry::ComponentType {
            name: $name,
            parse: |de| Ok(Box::new(<$config as serde::Deserialize>::deserialize(de)?)),
            schema: || schemars::schema_for!($config),
        }
    };
}

/// Finds a type by name.
pub fn find<'a, C: ?Sized>(
    types: &'a [ComponentType<C>],
    name: &str,
) -> Option<&'a ComponentType<C>> {
    types.iter().find(|t| t.name == name)
}
