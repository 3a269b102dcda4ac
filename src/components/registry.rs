//! The table of component types of each kind.
//!
//! A component type is a name (`type = "stdin"`), a way to parse its options
//! from spanned TOML, and the schema of those options. The tables live in
//! `sources/mod.rs`, `transforms/mod.rs` and `sinks/mod.rs`; adding a
//! component means adding one line there with [`component_type!`]. The
//! topology gathers them into the [`Registry`] the config loader is handed.

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::schema::OptionsSchema;
use super::sink::SinkConfig;
use super::source::SourceConfig;
use super::transform::TransformConfig;

/// Parses a component's options from its spanned TOML table (minus the
/// common keys); errors carry the span of the offending value.
pub type ParseFn<C> = for<'de> fn(Spanned<DeValue<'de>>) -> Result<Box<C>, toml::de::Error>;

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

/// A component type's own options and a group of options it shares with
/// other types, written side by side in one table but defined once, in the
/// group's own struct: the HTTP sinks' `retry.*`, `rate_limit.*` and
/// `request.*`; the `pattern` transform's miner settings, which `howl
/// patterns mine` reads too.
///
/// serde's `flatten` would do the same, but it buffers values and so loses
/// their positions (and `Spanned` fields); here the loader's table is split
/// by the group's keys and each half is read with its spans, so an error in
/// either points at its value, and unknown keys are still reported (from
/// the merged schema).
#[derive(Debug)]
pub struct WithShared<T, S> {
    /// The type's own options.
    pub own: T,
    /// The shared group.
    pub shared: S,
}

impl<T, S> WithShared<T, S> {
    /// Reads both halves of one component table.
    pub fn parse<'de>(value: Spanned<DeValue<'de>>) -> Result<Self, toml::de::Error>
    where
        T: Deserialize<'de>,
        S: Deserialize<'de> + JsonSchema,
    {
        let span = value.span();
        let DeValue::Table(table) = value.into_inner() else {
            // The loader only ever passes the component's table.
            return Err(serde::de::Error::custom("the options must be a table"));
        };
        let shared_keys = OptionsSchema::new(schemars::schema_for!(S))
            .keys_at(&[])
            .unwrap_or_default();
        let (mut own, mut shared) = (DeTable::new(), DeTable::new());
        for (key, value) in table {
            if shared_keys.iter().any(|k| k == key.get_ref().as_ref()) {
                shared.insert(key, value);
            } else {
                own.insert(key, value);
            }
        }
        let table = |t| ValueDeserializer::from(Spanned::new(span.clone(), DeValue::Table(t)));
        Ok(Self {
            own: T::deserialize(table(own))?,
            shared: S::deserialize(table(shared))?,
        })
    }

    /// Reads a whole TOML document as one component's table (tests, and
    /// tools that read options outside a topology).
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error>
    where
        T: serde::de::DeserializeOwned,
        S: serde::de::DeserializeOwned + JsonSchema,
    {
        let table = DeTable::parse(text)?;
        let span = table.span();
        let mut table = table.into_inner();
        table.make_owned();
        Self::parse(Spanned::new(span, DeValue::Table(table)))
    }

    /// The options of both halves as one table, for unknown-key checks and
    /// the documentation.
    pub fn schema() -> schemars::Schema
    where
        T: JsonSchema,
        S: JsonSchema,
    {
        /// Only for the merged schema; never deserialized.
        #[allow(dead_code)]
        #[derive(JsonSchema)]
        #[schemars(deny_unknown_fields)]
        struct Merged<T, S> {
            #[serde(flatten)]
            own: T,
            #[serde(flatten)]
            shared: S,
        }
        schemars::schema_for!(Merged<T, S>)
    }
}

/// Declares a [`ComponentType`] entry from a name and an options struct that
/// implements `Deserialize`, `JsonSchema` and the kind's config trait; with
/// `shared: GROUP`, the entry's options are a [`WithShared`] of the struct
/// and the group, which must implement the kind's config trait.
macro_rules! component_type {
    ($name:literal, $config:ty) => {
        $crate::components::registry::ComponentType {
            name: $name,
            parse: |value| {
                let de = toml::de::ValueDeserializer::from(value);
                Ok(Box::new(<$config as serde::Deserialize>::deserialize(de)?))
            },
            schema: || schemars::schema_for!($config),
        }
    };
    ($name:literal, $config:ty, shared: $shared:ty) => {
        $crate::components::registry::ComponentType {
            name: $name,
            parse: |value| {
                Ok(Box::new($crate::components::registry::WithShared::<
                    $config,
                    $shared,
                >::parse(value)?))
            },
            schema: $crate::components::registry::WithShared::<$config, $shared>::schema,
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
