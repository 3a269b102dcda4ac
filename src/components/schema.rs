//! Reading a component's options back out of its config struct.
//!
//! Each config struct derives `serde::Deserialize` (how options are parsed)
//! and `schemars::JsonSchema` (what options exist, with their doc comments).
//! The struct is the single source of truth, as ripgrep's flag definitions
//! are: the loader uses the schema to report *every* unknown key of a table at
//! once (serde stops at the first), and a test checks each component's page
//! in `sources/`, `transforms/`, `sinks/` against it.

use serde_json::Value;

/// The accepted options of one component type (or of the common envelope).
#[derive(Debug, Clone)]
pub struct OptionsSchema {
    root: Value,
}

impl OptionsSchema {
    /// Wraps a generated schema.
    pub fn new(schema: schemars::Schema) -> Self {
        Self {
            root: schema.to_value(),
        }
    }

    /// The keys accepted in the table at `path` (empty = the component
    /// table), or `None` when any key is allowed there (a map such as
    /// `route`) or the path is not a table.
    pub fn keys_at(&self, path: &[&str]) -> Option<Vec<String>> {
        let mut node = self.resolve(&self.root)?;
        for segment in path {
            let property = node.get("properties")?.get(*segment)?;
            node = self.resolve(property)?;
        }
        if node.get("additionalProperties") != Some(&Value::Bool(false)) {
            return None;
        }
        let properties = node.get("properties")?.as_object()?;
        Some(properties.keys().cloned().collect())
    }

    /// Every option as a dotted path (`buffer.max_events`), nested tables
    /// expanded, maps and lists kept as one option.
    pub fn option_paths(&self) -> Vec<String> {
        let mut paths = Vec::new();
        if let Some(node) = self.resolve(&self.root) {
            self.collect(node, "", &mut paths);
        }
        paths
    }

    fn collect(&self, node: &Value, prefix: &str, out: &mut Vec<String>) {
        let Some(properties) = node.get("properties").and_then(Value::as_object) else {
            return;
        };
        for (name, property) in properties {
            let path = format!("{prefix}{name}");
            match self.resolve(property) {
                Some(nested) if nested.get("properties").is_some() => {
                    self.collect(nested, &format!("{path}."), out);
                }
                _ => out.push(path),
            }
        }
    }

    /// Follows `$ref`s and picks the object alternative of `Option<T>`-style
    /// `anyOf`s, so callers see the struct behind a field.
    fn resolve<'a>(&'a self, node: &'a Value) -> Option<&'a Value> {
        if let Some(reference) = node.get("$ref").and_then(Value::as_str) {
            let pointer = reference.strip_prefix('#')?;
            return self.resolve(self.root.pointer(pointer)?);
        }
        for combinator in ["anyOf", "oneOf", "allOf"] {
            if let Some(options) = node.get(combinator).and_then(Value::as_array) {
                return options
                    .iter()
                    .filter_map(|option| self.resolve(option))
                    .find(|option| option.get("properties").is_some());
            }
        }
        Some(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemars::JsonSchema;

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        max_events: usize,
        when_full: String,
    }

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        path: String,
        buffer: Option<Inner>,
        route: std::collections::BTreeMap<String, String>,
    }

    #[test]
    fn lists_nested_options_as_dotted_paths() {
        let schema = OptionsSchema::new(schemars::schema_for!(Outer));
        let mut paths = schema.option_paths();
        paths.sort();
        assert_eq!(
            paths,
            ["buffer.max_events", "buffer.when_full", "path", "route"]
        );
    }

    #[test]
    fn knows_closed_tables_and_open_maps() {
        let schema = OptionsSchema::new(schemars::schema_for!(Outer));
        let mut top = schema.keys_at(&[]).unwrap();
        top.sort();
        assert_eq!(top, ["buffer", "path", "route"]);
        assert_eq!(schema.keys_at(&["buffer"]).unwrap().len(), 2);
        assert_eq!(schema.keys_at(&["route"]), None);
    }
}
