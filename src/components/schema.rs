//! Reading a component's options back out of its config struct.
//!
//! Each config struct derives `serde::Deserialize` (how options are parsed)
//! and `schemars::JsonSchema` (what options exist, with their doc comments
//! and defaults). The struct is the single source of truth, as ripgrep's
//! flag definitions are: the loader uses the schema to report *every*
//! unknown key of a table at once (serde stops at the first), and the
//! Options table of each component page in `sources/`, `transforms/` and
//! `sinks/` is generated from it ([`OptionsSchema::docs`]), so a doc comment
//! is the one description of an option (a test keeps the pages in step).

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
        let node = self.node_at(path)?;
        if node.get("additionalProperties") != Some(&Value::Bool(false)) {
            return None;
        }
        let properties = node.get("properties")?.as_object()?;
        Some(properties.keys().cloned().collect())
    }

    /// True when the option at `path` is a list whose items are tables
    /// with known keys (`[[transforms.ID.rules]]`): its items are checked
    /// like tables, at `path` + `[]`.
    pub fn is_list_of_tables(&self, path: &[&str]) -> bool {
        let mut item_path = path.to_vec();
        item_path.push("[]");
        self.node_at(path)
            .is_some_and(|node| node.get("items").is_some())
            && self.keys_at(&item_path).is_some()
    }

    /// True when the option at `path` may also be written as a plain value
    /// instead of its table (`anyOf` a table and a string, like
    /// `http_server`'s `decoding = "ndjson"` shorthand).
    pub fn takes_a_value_for_its_table(&self, path: &[&str]) -> bool {
        let Some((last, parent)) = path.split_last() else {
            return false;
        };
        let Some(node) = self
            .node_at(parent)
            .and_then(|parent| parent.get("properties")?.get(*last))
            .and_then(|node| self.resolve_ref(node))
        else {
            return false;
        };
        node.get("anyOf")
            .or(node.get("oneOf"))
            .and_then(Value::as_array)
            .is_some_and(|options| {
                options.iter().any(|option| {
                    self.resolve_ref(option).is_some_and(|option| {
                        option.get("properties").is_none()
                            && option.get("type") != Some(&Value::from("null"))
                    })
                })
            })
    }

    /// The schema of the option at `path`; a `[]` segment steps into a
    /// list's items.
    fn node_at(&self, path: &[&str]) -> Option<&Value> {
        let mut node = self.resolve(&self.root)?;
        for segment in path {
            let next = if *segment == "[]" {
                node.get("items")?
            } else {
                node.get("properties")?.get(*segment)?
            };
            node = self.resolve(next)?;
        }
        Some(node)
    }

    /// The `format` of the option at `path` (`vrl`, `duration`, ...): what
    /// kind of text it holds, or `None` for a plain value. Like
    /// [`Self::keys_at`], a `[]` segment steps into a list's items; any
    /// other segment is a key, of a table or of a map (`route.errors`).
    pub fn format_at(&self, path: &[&str]) -> Option<&str> {
        let leaf = |node| self.resolve_ref(self.unwrap_optional(self.resolve_ref(node)?));
        let mut node = leaf(&self.root)?;
        for segment in path {
            let next = if *segment == "[]" {
                node.get("items")?
            } else {
                node.get("properties")
                    .and_then(|properties| properties.get(*segment))
                    .or_else(|| node.get("additionalProperties").filter(|v| v.is_object()))?
            };
            node = leaf(next)?;
        }
        node.get("format")?.as_str()
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

    /// One row per option, in declaration order, for a component page:
    /// nested tables expanded (`batch.max_events`), lists of tables too
    /// (`rules[].for_secs`, after a row for the list itself), maps and
    /// lists of values kept as one option.
    pub fn docs(&self) -> Vec<OptionDoc> {
        let mut rows = Vec::new();
        if let Some(node) = self.resolve(&self.root) {
            self.document(node, "", &mut rows);
        }
        rows
    }

    fn document(&self, node: &Value, prefix: &str, rows: &mut Vec<OptionDoc>) {
        let Some(properties) = node.get("properties").and_then(Value::as_object) else {
            return;
        };
        let required: Vec<&str> = node
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (name, property) in properties {
            let path = format!("{prefix}{name}");
            let target = self.unwrap_optional(property);
            if let Some(nested) = self.resolve(target)
                && nested.get("properties").is_some()
            {
                self.document(nested, &format!("{path}."), rows);
                continue;
            }
            let default = match (property.get("x-default"), property.get("default")) {
                (Some(Value::String(text)), _) => text.clone(),
                (_, Some(value)) => toml_literal(value),
                _ if required.contains(&name.as_str()) && prefix.is_empty() => {
                    "required".to_string()
                }
                _ if required.contains(&name.as_str()) => {
                    format!("required in `{}`", prefix.trim_end_matches('.'))
                }
                _ => "unset".to_string(),
            };
            rows.push(OptionDoc {
                path: path.clone(),
                kind: self.kind(target),
                default,
                description: description(property),
            });
            let items = target.get("items").and_then(|i| self.resolve(i));
            if let Some(items) = items
                && items.get("properties").is_some()
            {
                self.document(items, &format!("{path}[]."), rows);
            }
        }
    }

    /// One entry per option, in declaration order, for a scaffold (`howl
    /// generate topology`): what to write for it and whether it must be
    /// written. Nested tables are expanded (`buffer.max_events`); the items
    /// of a list of tables are not (the list's value holds them).
    pub fn scaffold(&self) -> Vec<ScaffoldOption> {
        let mut options = Vec::new();
        if let Some(node) = self.resolve(&self.root) {
            self.scaffold_table(node, "", true, &mut options);
        }
        options
    }

    /// `needed`: whether this table itself must be written (the component
    /// table, or a required table within a needed one).
    fn scaffold_table(
        &self,
        node: &Value,
        prefix: &str,
        needed: bool,
        out: &mut Vec<ScaffoldOption>,
    ) {
        let Some(properties) = node.get("properties").and_then(Value::as_object) else {
            return;
        };
        let required: Vec<&str> = node
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (name, property) in properties {
            let path = format!("{prefix}{name}");
            let is_required = needed && required.contains(&name.as_str());
            let target = self.unwrap_optional(property);
            if let Some(nested) = self.resolve(target)
                && nested.get("properties").is_some()
            {
                self.scaffold_table(nested, &format!("{path}."), is_required, out);
                continue;
            }
            let placeholder = property.get(PLACEHOLDER).cloned();
            let default_text = property.get("x-default").and_then(Value::as_str);
            let default = property
                .get("default")
                .filter(|v| !v.is_null())
                .cloned()
                .or_else(|| default_text.and_then(literal_default));
            let write = is_required || (needed && placeholder.is_some());
            let example = property.pointer("/examples/0");
            let value = match (&placeholder, &default, example) {
                (Some(value), _, _) if write => value.clone(),
                (_, Some(value), _) => value.clone(),
                (Some(value), None, _) | (None, None, Some(value)) => value.clone(),
                (None, None, None) => self.sample(target),
            };
            let default_text = default_text
                .filter(|_| default.is_none())
                .map(str::to_string);
            out.push(ScaffoldOption {
                path,
                kind: self.kind(target),
                description: description(property),
                has_default: default.is_some() && !write,
                write,
                value,
                default_text,
            });
        }
    }

    /// A value of the node's type that the loader accepts, for options
    /// without a default or a placeholder of their own.
    fn sample(&self, node: &Value) -> Value {
        let node = self.unwrap_optional(node);
        let Some(node) = self.resolve_ref(node) else {
            return Value::from("PLACEHOLDER");
        };
        if let Some(hint) = node
            .get(PLACEHOLDER)
            .or_else(|| node.pointer("/examples/0"))
        {
            return hint.clone();
        }
        if let Some(first) = enum_values(node).and_then(|choices| choices.into_iter().next()) {
            return Value::from(first);
        }
        if let Some(first) = node
            .get("anyOf")
            .or(node.get("oneOf"))
            .and_then(Value::as_array)
            .and_then(|options| {
                options
                    .iter()
                    .find(|o| o.get("type") != Some(&Value::from("null")))
            })
        {
            return self.sample(first);
        }
        let sample = match node.get("format").and_then(Value::as_str) {
            Some("duration") => Some("1m"),
            Some("field-path") => Some("message"),
            Some("url") => Some("http://127.0.0.1:8080"),
            Some("secret-url") => Some("https://example.com/PLACEHOLDER"),
            Some("regex") => Some("error"),
            Some("template") => Some("{{ .message }}"),
            Some("secret") => Some("PLACEHOLDER"),
            Some("vrl") => Some("."),
            Some("vrl-condition") => Some("true"),
            _ => None,
        };
        if let Some(sample) = sample {
            return Value::from(sample);
        }
        let first_type = match node.get("type") {
            Some(Value::String(t)) => t.as_str(),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "null")
                .unwrap_or("null"),
            _ => "string",
        };
        let at_least = |fallback: f64| {
            node.get("minimum")
                .and_then(Value::as_f64)
                .map_or(fallback, |minimum| minimum.max(fallback))
        };
        match first_type {
            "integer" => Value::from(at_least(1.0) as i64),
            "number" => Value::from(at_least(1.0)),
            "boolean" => Value::Bool(false),
            "array" => match node.get("items") {
                Some(items) => Value::Array(vec![self.sample(items)]),
                None => Value::Array(Vec::new()),
            },
            "object" => {
                let mut table = serde_json::Map::new();
                if let Some(resolved) = self.resolve(node) {
                    let required: Vec<&str> = resolved
                        .get("required")
                        .and_then(Value::as_array)
                        .map(|r| r.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    if let Some(properties) = resolved.get("properties").and_then(Value::as_object)
                    {
                        for (name, property) in properties {
                            if required.contains(&name.as_str()) {
                                let value = property
                                    .get(PLACEHOLDER)
                                    .cloned()
                                    .unwrap_or_else(|| self.sample(property));
                                table.insert(name.clone(), value);
                            }
                        }
                    }
                }
                Value::Object(table)
            }
            _ => Value::from("PLACEHOLDER"),
        }
    }

    /// `T` for an `Option<T>` (`anyOf: [T, null]`), else the node itself.
    fn unwrap_optional<'a>(&'a self, node: &'a Value) -> &'a Value {
        if let Some(options) = node.get("anyOf").and_then(Value::as_array) {
            let non_null: Vec<&Value> = options
                .iter()
                .filter(|o| o.get("type") != Some(&Value::from("null")))
                .collect();
            if let [only] = non_null.as_slice() {
                return only;
            }
        }
        node
    }

    /// The type column: what a user may write.
    fn kind(&self, node: &Value) -> String {
        let node = self.unwrap_optional(node);
        let Some(node) = self.resolve_ref(node) else {
            return "any".to_string();
        };
        if let Some(choices) = enum_values(node) {
            return one_of(&choices);
        }
        if let Some(options) = node
            .get("anyOf")
            .or(node.get("oneOf"))
            .and_then(Value::as_array)
        {
            let kinds: Vec<String> = options
                .iter()
                .filter(|o| o.get("type") != Some(&Value::from("null")))
                .map(|o| self.kind(o))
                .collect();
            return kinds.join(" or ");
        }
        if let Some(format) = node.get("format").and_then(Value::as_str) {
            match format {
                "duration" => return "duration".to_string(),
                "field-path" => return "field path".to_string(),
                "url" => return "URL".to_string(),
                "regex" => return "regex".to_string(),
                "template" => return "template".to_string(),
                "secret" => return "string (secret)".to_string(),
                "secret-url" => return "URL (secret)".to_string(),
                "vrl" => return "VRL program".to_string(),
                "vrl-condition" => return "VRL condition".to_string(),
                _ => {}
            }
        }
        let types: Vec<&str> = match node.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect(),
            _ => Vec::new(),
        };
        match types.as_slice() {
            ["integer"] if node.get("minimum").and_then(Value::as_f64) == Some(1.0) => {
                match node.get("maximum").and_then(Value::as_u64) {
                    Some(max) => format!("integer (1 to {max})"),
                    None => "integer (at least 1)".to_string(),
                }
            }
            ["number"]
                if node.get("minimum").and_then(Value::as_f64) == Some(0.0)
                    && node.get("maximum").and_then(Value::as_f64) == Some(1.0) =>
            {
                "number (0 to 1)".to_string()
            }
            ["array"] => match node.get("items") {
                Some(items) => {
                    let items = self.resolve_ref(items).unwrap_or(items);
                    if items.get("properties").is_some() {
                        "list of tables".to_string()
                    } else if let Some(choices) = enum_values(items) {
                        format!("list of {}", one_of(&choices).replace(" or ", ", "))
                    } else {
                        format!("list of {}", plural(&self.kind(items)))
                    }
                }
                None => "list".to_string(),
            },
            ["object"] => match node.get("additionalProperties") {
                Some(value @ Value::Object(_)) => format!("table of {}", plural(&self.kind(value))),
                _ => "table".to_string(),
            },
            [single] => (*single).to_string(),
            [] => "any".to_string(),
            several => several.join(" or "),
        }
    }

    /// Follows `$ref`s only.
    fn resolve_ref<'a>(&'a self, node: &'a Value) -> Option<&'a Value> {
        match node.get("$ref").and_then(Value::as_str) {
            Some(reference) => self.resolve_ref(self.root.pointer(reference.strip_prefix('#')?)?),
            None => Some(node),
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

/// One option, as a component page's Options table shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionDoc {
    /// The dotted path (`batch.max_events`, `rules[].for_secs`).
    pub path: String,
    /// What may be written (`integer`, `duration`, `"block"` or `"drop_newest"`).
    pub kind: String,
    /// The default, as TOML; `required` (`required in `auth`` inside an
    /// optional table), or `unset` when leaving it out means something of
    /// its own (said in the description). A field may give its own text
    /// with `#[schemars(extend("x-default" = "..."))]` when the default
    /// depends on something else (`the source's id`).
    pub default: String,
    /// The doc comment, on one line.
    pub description: String,
}

/// The schema keyword of the value `howl generate topology` writes for an
/// option, set on a field with `#[schemars(extend("x-placeholder" =
/// ...))]`: for a required option whose type alone does not give a valid
/// value (a listen address, a rule), and for an option that is optional in
/// the schema but of which one of a group must be set (`remap`'s `source`).
/// Such an option is written even when it is optional.
pub const PLACEHOLDER: &str = "x-placeholder";

/// One option as a scaffold writes it (see [`OptionsSchema::scaffold`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ScaffoldOption {
    /// The dotted path (`buffer.max_events`).
    pub path: String,
    /// What may be written, as the component page says.
    pub kind: String,
    /// The doc comment, on one line.
    pub description: String,
    /// Whether the option must be written for the component to validate
    /// (it is required, or has a placeholder); the others are shown
    /// commented out.
    pub write: bool,
    /// The value to write: the placeholder, else the default, else the
    /// first of the field's `#[schemars(example = ...)]`, else a value of
    /// the option's type.
    pub value: Value,
    /// The default in words when it depends on something else (`the
    /// source's id`), from `x-default`.
    pub default_text: Option<String>,
    /// Whether `value` is the option's default (else it is a placeholder
    /// or an example of an option that is unset by default).
    pub has_default: bool,
}

/// The value of an `x-default` that is one TOML value in backticks,
/// perhaps explained in parentheses (`` `268435456` (256 MiB) ``); `None`
/// for a default in words.
fn literal_default(text: &str) -> Option<Value> {
    let (literal, rest) = text.strip_prefix('`')?.split_once('`')?;
    if !(rest.is_empty() || rest.starts_with(" (")) {
        return None;
    }
    let table: toml::Table = toml::from_str(&format!("value = {literal}")).ok()?;
    serde_json::to_value(table.get("value")?).ok()
}

/// Renders rows as a markdown table.
pub fn options_table(rows: &[OptionDoc]) -> String {
    let mut table = String::from("| option | type | default | description |\n|---|---|---|---|\n");
    for row in rows {
        table.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            row.path,
            cell(&row.kind),
            cell(&row.default),
            cell(&row.description)
        ));
    }
    table
}

/// Escapes what would break a table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// A doc comment as one line (paragraph breaks kept as a space).
fn description(node: &Value) -> String {
    node.get("description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The allowed values of an enum of strings, if the node is one.
fn enum_values(node: &Value) -> Option<Vec<String>> {
    if let Some(values) = node.get("enum").and_then(Value::as_array) {
        return values
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect();
    }
    let options = node.get("oneOf").and_then(Value::as_array)?;
    options
        .iter()
        .map(|o| o.get("const").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// `"a"`, `"b"` or `"c"`.
fn one_of(choices: &[String]) -> String {
    let quoted: Vec<String> = choices.iter().map(|c| format!("`\"{c}\"`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.join(""),
    }
}

/// `strings` for `string`, `field paths` for `field path`.
fn plural(kind: &str) -> String {
    if kind.contains(" or ") || (kind.contains('(') && !kind.ends_with("(secret)")) {
        return format!("values ({kind})");
    }
    match kind {
        "regex" => "regexes".to_string(),
        "string (secret)" => "secrets".to_string(),
        "URL (secret)" => "secret URLs".to_string(),
        "any" => "values".to_string(),
        other => format!("{other}s"),
    }
}

/// A default as it would be written in TOML.
fn toml_literal(value: &Value) -> String {
    match value {
        Value::String(text) => format!("`{}`", Value::String(text.clone())),
        Value::Null => "unset".to_string(),
        Value::Number(number) => format!("`{number}`"),
        Value::Bool(flag) => format!("`{flag}`"),
        Value::Array(items) if items.is_empty() => "`[]`".to_string(),
        Value::Object(map) if map.is_empty() => "`{}`".to_string(),
        other => format!("`{other}`"),
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

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    struct Programs {
        #[schemars(with = "Option<crate::vrl_program::VrlSource>")]
        source: Option<String>,
        #[schemars(with = "std::collections::BTreeMap<String, crate::vrl_program::VrlCondition>")]
        route: std::collections::BTreeMap<String, String>,
        rules: Vec<Rule>,
        buffer: Option<Inner>,
    }

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    struct Rule {
        #[schemars(with = "Option<crate::vrl_program::VrlCondition>")]
        vrl: Option<String>,
        name: String,
    }

    #[test]
    fn tells_the_format_of_options_in_maps_lists_and_options() {
        let schema = OptionsSchema::new(schemars::schema_for!(Programs));
        assert_eq!(schema.format_at(&["source"]), Some("vrl"));
        assert_eq!(
            schema.format_at(&["route", "errors"]),
            Some("vrl-condition")
        );
        assert_eq!(
            schema.format_at(&["rules", "[]", "vrl"]),
            Some("vrl-condition")
        );
        assert_eq!(schema.format_at(&["rules", "[]", "name"]), None);
        assert_eq!(schema.format_at(&["buffer", "max_events"]), Some("uint"));
        assert_eq!(schema.format_at(&["nope"]), None);
    }

    #[test]
    fn reads_a_default_in_backticks_as_a_value() {
        assert_eq!(literal_default("`500`"), Some(Value::from(500)));
        assert_eq!(
            literal_default("`268435456` (256 MiB)"),
            Some(Value::from(268_435_456))
        );
        assert_eq!(literal_default("`\"7d\"`"), Some(Value::from("7d")));
        assert_eq!(
            literal_default("`true` for `alertmanager`; else `false`"),
            None
        );
        assert_eq!(literal_default("the source's id"), None);
    }

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Scaffolded {
        /// Where to listen.
        #[schemars(extend("x-placeholder" = "127.0.0.1:8080"))]
        address: String,
        /// A count.
        #[serde(default)]
        count: u32,
        /// Set one of these.
        #[schemars(extend("x-placeholder" = "."))]
        program: Option<String>,
        /// Optional, with an example.
        #[schemars(example = "llama3.2")]
        model: Option<String>,
        buffer: Option<Inner>,
    }

    #[test]
    fn a_scaffold_writes_required_and_placeholder_options_and_lists_the_rest() {
        let schema = OptionsSchema::new(schemars::schema_for!(Scaffolded));
        let options: Vec<(String, bool, Value)> = schema
            .scaffold()
            .into_iter()
            .map(|o| (o.path, o.write, o.value))
            .collect();
        assert_eq!(
            options,
            [
                ("address".into(), true, Value::from("127.0.0.1:8080")),
                ("count".into(), false, Value::from(0)),
                ("program".into(), true, Value::from(".")),
                ("model".into(), false, Value::from("llama3.2")),
                // Required within an optional table: listed, not written.
                ("buffer.max_events".into(), false, Value::from(1)),
                ("buffer.when_full".into(), false, Value::from("PLACEHOLDER")),
            ]
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
