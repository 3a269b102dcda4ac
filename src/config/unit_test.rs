//! `[[tests]]` as written in a config: the definitions `howl test` runs.
//!
//! They are config types, parsed with the rest of the file, so `howl
//! validate` reports their problems at their position like any other
//! option's; `unit_test` checks them against the topology and runs them.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use crate::diagnostic::SourceFile;

/// One `[[tests]]` entry, as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnitTestConfig {
    /// Names the test in the report; unique among the config's tests.
    pub name: String,
    /// Events to insert, in order.
    #[serde(default)]
    pub inputs: Vec<TestInput>,
    /// Outputs to capture and check.
    #[serde(default)]
    pub outputs: Vec<TestOutput>,
    /// Outputs (`id` or `id.name`) that must produce nothing.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub no_outputs_from: Vec<Spanned<String>>,
}

/// The kind of a test input.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// `value` is one log line: the event looks like one from `stdin`
    /// (`message`, `timestamp`, `source_type = "test"`).
    #[default]
    Raw,
    /// `log_fields` is the whole event.
    Log,
}

/// One event to insert.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestInput {
    /// The transform that receives the event.
    #[schemars(with = "String")]
    pub insert_at: Spanned<String>,
    /// `raw` (a line in `value`) or `log` (fields in `log_fields`).
    #[serde(rename = "type", default)]
    pub kind: InputKind,
    /// The line, for `type = "raw"`.
    pub value: Option<String>,
    /// The event's fields, for `type = "log"` (tables become objects).
    #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
    pub log_fields: Option<BTreeMap<String, toml::Value>>,
}

/// One output to capture and check.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestOutput {
    /// The output: a transform's id, or `id.name` for a named output.
    #[schemars(with = "String")]
    pub extract_from: Spanned<String>,
    /// Checks on the captured events; without any, the output only has to
    /// produce at least one event.
    #[serde(default)]
    pub conditions: Vec<TestCondition>,
    /// How many events the output must produce, exactly (conditions only
    /// say that *some* event matched; this catches extras, e.g. a throttle
    /// letting a duplicate through).
    pub count: Option<usize>,
}

/// The only kind of condition: a VRL program returning a boolean.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConditionKind {
    /// VRL (`assert!`/`assert_eq!` give the best failure messages).
    #[default]
    Vrl,
}

/// A check on captured events: it holds when at least one event satisfies it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestCondition {
    /// Always `vrl`.
    #[serde(rename = "type", default)]
    pub kind: ConditionKind,
    /// The VRL program; it must return a boolean.
    #[schemars(with = "crate::vrl_program::VrlCondition")]
    pub source: Spanned<String>,
}

/// A test as loaded: its options and where they were written.
#[derive(Debug)]
pub struct UnitTestDef {
    /// The options.
    pub config: UnitTestConfig,
    /// The file that defines it.
    pub file: Arc<SourceFile>,
    /// Its table in that file.
    pub span: Range<usize>,
}
