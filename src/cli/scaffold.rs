//! `howl generate topology`: a config to start from, as `vector generate`
//! makes one, written from the component types' own option schemas.
//!
//! The expression names component types in the order events flow:
//! `stdin,pattern,llm_suppress,telegram`. Each name is looked up among the
//! sources, then the transforms, then the sinks, and may not go back: the
//! leading names are sources, the middle ones transforms chained in order,
//! the trailing ones sinks. A name that is a type of two kinds (`file`) is
//! read as the earliest kind still allowed, except when it comes last and
//! the topology would otherwise have no sink; `source:`, `transform:` or
//! `sink:` before a name says which one is meant. Vector's form, three
//! lists divided by `/` (`stdin/pattern,llm_suppress/telegram`), works too.
//!
//! Each component gets every option it needs to validate, set to a
//! placeholder marked `# <- replace`, and every other option commented out
//! with its default; each option is preceded by its doc comment. Why the
//! schemas and not hand-written examples: the doc comments are the one
//! description of an option (as on the component pages), and a new option
//! or component shows up here with nothing to update. Where an option's type
//! alone does not give a valid value (a listen address, a rule), its field
//! carries the value to write
//! ([`PLACEHOLDER`](crate::components::schema::PLACEHOLDER)).

use std::fmt::Write as _;

use serde_json::Value;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::component_key::ComponentKind;
use crate::components::Registry;
use crate::components::schema::{OptionsSchema, ScaffoldOption};
use crate::config::SinkEnvelope;

/// Why an expression cannot be made into a topology. Each message says
/// what to write instead.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScaffoldError {
    /// Nothing was named.
    #[error("name the component types to generate, e.g. `stdin,pattern,console`")]
    Empty,
    /// A name that is no component type.
    #[error("unknown component type `{name}`; known types are\n{known}")]
    Unknown {
        /// The name as written.
        name: String,
        /// Every type, by kind, one kind a line.
        known: String,
    },
    /// A name given as (or in the place of) a kind it is not.
    #[error("`{name}` is not a {kind} type ({actual})")]
    WrongKind {
        /// The type name.
        name: String,
        /// The kind it was asked as.
        kind: &'static str,
        /// What it is instead.
        actual: String,
    },
    /// A prefix other than `source:`, `transform:` or `sink:`.
    #[error("unknown kind `{prefix}` in `{item}`: write `source:`, `transform:` or `sink:`")]
    BadPrefix {
        /// The prefix as written.
        prefix: String,
        /// The whole item.
        item: String,
    },
    /// A type named after one of a later kind.
    #[error(
        "`{name}` is a {kind} but comes after a {after}: name sources first, then \
         transforms, then sinks (a type of several kinds, like `file`, can be named \
         `source:file` or `sink:file`)"
    )]
    OutOfOrder {
        /// The type name.
        name: String,
        /// Its kind.
        kind: &'static str,
        /// The kind of an earlier name.
        after: &'static str,
    },
    /// More than three `/`-separated lists.
    #[error("at most three lists divided by `/`: sources/transforms/sinks")]
    TooManyLists,
    /// A topology with nothing to read or nothing to deliver to.
    #[error("a topology needs at least one {kind}: {hint}")]
    Missing {
        /// `source` or `sink`.
        kind: &'static str,
        /// What to add.
        hint: &'static str,
    },
}

/// One component of the topology to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// Its kind.
    pub kind: ComponentKind,
    /// Its `type`.
    pub type_name: &'static str,
}

/// Reads an expression into the components it names, in order: sources,
/// then transforms, then sinks.
pub fn plan(expression: &str, registry: &Registry) -> Result<Vec<Planned>, ScaffoldError> {
    let lists: Vec<&str> = expression.split('/').collect();
    let items: Vec<(Option<ComponentKind>, &str)> = if lists.len() == 1 {
        words(expression).map(|item| (None, item)).collect()
    } else if lists.len() <= 3 {
        let kinds = [
            ComponentKind::Source,
            ComponentKind::Transform,
            ComponentKind::Sink,
        ];
        lists
            .iter()
            .zip(kinds)
            .flat_map(|(list, kind)| words(list).map(move |item| (Some(kind), item)))
            .collect()
    } else {
        return Err(ScaffoldError::TooManyLists);
    };
    if items.is_empty() {
        return Err(ScaffoldError::Empty);
    }
    let mut planned: Vec<Planned> = Vec::with_capacity(items.len());
    let mut ambiguous_last = false;
    for (index, (list_kind, item)) in items.iter().enumerate() {
        let (prefix, name) = match item.split_once(':') {
            Some((prefix, name)) => (Some(kind_named(prefix, item)?), name),
            None => (None, *item),
        };
        let types = types_named(name, registry);
        let kinds: Vec<ComponentKind> = types.iter().map(|(kind, _)| *kind).collect();
        if kinds.is_empty() {
            return Err(ScaffoldError::Unknown {
                name: name.to_string(),
                known: known_types(registry),
            });
        }
        let asked = match (prefix, *list_kind) {
            (Some(prefix), Some(list)) if prefix != list => {
                return Err(ScaffoldError::WrongKind {
                    name: name.to_string(),
                    kind: list.as_str(),
                    actual: format!("it was written as a {}", prefix.as_str()),
                });
            }
            (prefix, list) => prefix.or(list),
        };
        let phase = planned.last().map_or(ComponentKind::Source, |p| p.kind);
        let kind = match asked {
            Some(kind) if !kinds.contains(&kind) => {
                return Err(ScaffoldError::WrongKind {
                    name: name.to_string(),
                    kind: kind.as_str(),
                    actual: format!("it is a {}", kinds_text(&kinds)),
                });
            }
            Some(kind) => kind,
            None => match kinds.iter().find(|k| **k >= phase) {
                Some(kind) => *kind,
                None => {
                    return Err(ScaffoldError::OutOfOrder {
                        name: name.to_string(),
                        kind: kinds[0].as_str(),
                        after: phase.as_str(),
                    });
                }
            },
        };
        if kind < phase {
            return Err(ScaffoldError::OutOfOrder {
                name: name.to_string(),
                kind: kind.as_str(),
                after: phase.as_str(),
            });
        }
        let type_name = types
            .iter()
            .find_map(|(k, name)| (*k == kind).then_some(*name))
            .unwrap_or_default();
        ambiguous_last = index + 1 == items.len() && asked.is_none() && kinds.len() > 1;
        planned.push(Planned { kind, type_name });
    }
    let has = |planned: &[Planned], kind| planned.iter().any(|p| p.kind == kind);
    // `stdin,file` means a file sink: the last name, read as a source, would
    // leave the topology without one.
    if ambiguous_last
        && !has(&planned, ComponentKind::Sink)
        && planned.len() > 1
        && let Some(last) = planned.last_mut()
        && types_named(last.type_name, registry)
            .iter()
            .any(|(kind, _)| *kind == ComponentKind::Sink)
    {
        last.kind = ComponentKind::Sink;
    }
    if !has(&planned, ComponentKind::Source) {
        return Err(ScaffoldError::Missing {
            kind: "source",
            hint: "name one first, e.g. `stdin,...` or `file,...`",
        });
    }
    if !has(&planned, ComponentKind::Sink) {
        return Err(ScaffoldError::Missing {
            kind: "sink",
            hint: "name one last, e.g. `...,console` (or `...,sink:file`)",
        });
    }
    Ok(planned)
}

/// The comma-separated names of a list, trimmed, empty ones skipped.
fn words(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|w| !w.is_empty())
}

fn kind_named(prefix: &str, item: &str) -> Result<ComponentKind, ScaffoldError> {
    match prefix.trim() {
        "source" => Ok(ComponentKind::Source),
        "transform" => Ok(ComponentKind::Transform),
        "sink" => Ok(ComponentKind::Sink),
        other => Err(ScaffoldError::BadPrefix {
            prefix: other.to_string(),
            item: item.to_string(),
        }),
    }
}

/// The types of this name, with their kind, in flow order (the registry's
/// own `'static` names).
fn types_named(name: &str, registry: &Registry) -> Vec<(ComponentKind, &'static str)> {
    let source = registry
        .sources
        .iter()
        .map(|t| (ComponentKind::Source, t.name));
    let transform = registry
        .transforms
        .iter()
        .map(|t| (ComponentKind::Transform, t.name));
    let sink = registry.sinks.iter().map(|t| (ComponentKind::Sink, t.name));
    source
        .chain(transform)
        .chain(sink)
        .filter(|(_, type_name)| *type_name == name)
        .collect()
}

fn kinds_text(kinds: &[ComponentKind]) -> String {
    let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    names.join(" and a ")
}

/// Every type a user may name, one kind a line.
pub fn known_types(registry: &Registry) -> String {
    let line = |label: &str, mut names: Vec<&str>| {
        names.sort_unstable();
        format!("  {label}: {}", names.join(", "))
    };
    [
        line("sources", registry.sources.iter().map(|t| t.name).collect()),
        line(
            "transforms",
            registry.transforms.iter().map(|t| t.name).collect(),
        ),
        line("sinks", registry.sinks.iter().map(|t| t.name).collect()),
    ]
    .join("\n")
}

/// The TOML of a topology made of the components the expression names,
/// wired in a chain; see the module docs.
pub fn scaffold(expression: &str, registry: &Registry) -> Result<String, ScaffoldError> {
    let planned = plan(expression, registry)?;
    let mut out = String::new();
    let _ = write!(
        out,
        "{}",
        header(&format!("howl generate topology {}", expression.trim()))
    );
    let mut taken: Vec<String> = Vec::new();
    let mut sources: Vec<String> = Vec::new();
    let mut upstream: Option<String> = None;
    for component in &planned {
        let id = unique_id(component.type_name, &mut taken);
        let inputs = match component.kind {
            ComponentKind::Source => None,
            _ => Some(match &upstream {
                Some(output) => vec![output.clone()],
                None => sources.clone(),
            }),
        };
        let (text, outputs) = component_text(component, &id, inputs.as_deref(), registry);
        out.push_str(&text);
        match component.kind {
            ComponentKind::Source => sources.push(id),
            ComponentKind::Transform => upstream = outputs.into_iter().next(),
            ComponentKind::Sink => {}
        }
    }
    Ok(distinct_addresses(&out))
}

/// Gives every listener its own port: two sources of one type get the same
/// placeholder address, which validates but cannot be bound twice.
fn distinct_addresses(text: &str) -> String {
    const LOOPBACK: &str = "\"127.0.0.1:";
    let mut used: Vec<u32> = Vec::new();
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let found = (!line.trim_start().starts_with('#'))
            .then(|| line.find(LOOPBACK))
            .flatten()
            .and_then(|at| {
                let start = at + LOOPBACK.len();
                let end = start + line[start..].find('"')?;
                Some((start, end, line[start..end].parse::<u32>().ok()?))
            });
        match found {
            Some((start, end, mut port)) => {
                while used.contains(&port) {
                    port += 1;
                }
                used.push(port);
                out.push_str(&line[..start]);
                out.push_str(&port.to_string());
                out.push_str(&line[end..]);
            }
            None => out.push_str(line),
        }
    }
    out
}

/// The comments at the top of a generated file.
fn header(command: &str) -> String {
    let mut out = String::new();
    comment(
        &mut out,
        &format!(
            "A howl topology, made by `{command}`. Every option a component needs is set \
             to a placeholder that passes `howl validate`: the lines marked `# <- replace` \
             are the ones to change (addresses, URLs, tokens, rules). The other options \
             follow, commented out with their default. Each component's page (sources/, \
             transforms/ and sinks/ in howl's repository) says more. Check the result \
             with `howl validate -c FILE`; `howl run -c FILE` runs it."
        ),
    );
    out.push('\n');
    comment(
        &mut out,
        "Where state lives (pattern stores, checkpoints, verdicts, suppressions); \
         default `./data`, or `/var/lib/howl` under systemd.",
    );
    out.push_str("# data_dir = \"./data\"\n");
    out
}

/// `type`, or `type_2`, ... when the id is taken (ids are unique across
/// kinds: `inputs` name them).
fn unique_id(type_name: &str, taken: &mut Vec<String>) -> String {
    let mut id = type_name.to_string();
    let mut n = 2;
    while taken.contains(&id) {
        id = format!("{type_name}_{n}");
        n += 1;
    }
    taken.push(id.clone());
    id
}

/// One component's table, and (for a transform) the ids of its outputs,
/// the one to chain from first.
fn component_text(
    component: &Planned,
    id: &str,
    inputs: Option<&[String]>,
    registry: &Registry,
) -> (String, Vec<String>) {
    let schema = options_of(component, registry);
    let mut options = schema.map(|s| s.scaffold()).unwrap_or_default();
    if component.kind == ComponentKind::Sink {
        let envelope = OptionsSchema::new(schemars::schema_for!(SinkEnvelope));
        options.extend(
            envelope
                .scaffold()
                .into_iter()
                .filter(|o| o.path != "type" && o.path != "inputs"),
        );
    }
    let written: Vec<&ScaffoldOption> = options.iter().filter(|o| o.write).collect();
    let outputs = match component.kind {
        ComponentKind::Transform => transform_outputs(component.type_name, id, &written, registry),
        _ => Vec::new(),
    };

    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n[{}.{id}]\ntype = \"{}\"",
        component.kind.table(),
        component.type_name
    );
    if let Some(inputs) = inputs {
        let list: Vec<String> = inputs
            .iter()
            .map(|i| toml_value(&Value::from(i.as_str())))
            .collect();
        let _ = writeln!(out, "inputs = [{}]", list.join(", "));
    }
    if outputs.len() > 1 {
        let list: Vec<String> = outputs.iter().map(|o| format!("`{o}`")).collect();
        comment(
            &mut out,
            &format!(
                "Outputs: {}. The next component reads the first; `howl validate` warns \
                 about an output that loses events when nothing reads it.",
                list.join(", ")
            ),
        );
    }
    for option in &written {
        out.push('\n');
        comment(&mut out, &option.description);
        let _ = writeln!(
            out,
            "{} = {}  # <- replace",
            option.path,
            toml_value(&option.value)
        );
    }
    for option in options.iter().filter(|o| !o.write) {
        out.push('\n');
        comment(&mut out, &option.description);
        let note = match (&option.default_text, option.has_default) {
            (Some(text), _) => format!("  # default: {}", text.replace('`', "")),
            (None, true) => String::new(),
            (None, false) => "  # an example; unset by default".to_string(),
        };
        let _ = writeln!(
            out,
            "# {} = {}{note}",
            option.path,
            toml_value(&option.value)
        );
    }
    (out, outputs)
}

/// The options schema of a planned component's type.
fn options_of(component: &Planned, registry: &Registry) -> Option<OptionsSchema> {
    let name = component.type_name;
    match component.kind {
        ComponentKind::Source => registry
            .sources
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.options()),
        ComponentKind::Transform => registry
            .transforms
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.options()),
        ComponentKind::Sink => registry
            .sinks
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.options()),
    }
}

/// A transform's outputs as `inputs` name them, the one to chain from
/// first: its default output, else its first named output that warns
/// when unread (a `route`'s only route), else its first. Read from the
/// options as written, since outputs can depend on them.
fn transform_outputs(
    type_name: &str,
    id: &str,
    written: &[&ScaffoldOption],
    registry: &Registry,
) -> Vec<String> {
    let Some(kind) = registry.transforms.iter().find(|t| t.name == type_name) else {
        return vec![id.to_string()];
    };
    let text: String = written
        .iter()
        .map(|o| format!("{} = {}\n", o.path, toml_value(&o.value)))
        .collect();
    let Ok(table) = DeTable::parse(&text) else {
        return vec![id.to_string()];
    };
    let span = table.span();
    let Ok(config) = (kind.parse)(Spanned::new(span, DeValue::Table(table.into_inner()))) else {
        return vec![id.to_string()];
    };
    let mut specs = config.outputs();
    // Stable: the default output first, then named ones that warn.
    specs.sort_by_key(|spec| (spec.name.is_some(), !spec.warn_if_unconsumed));
    specs
        .into_iter()
        .map(|spec| match spec.name {
            None => id.to_string(),
            Some(name) => format!("{id}.{name}"),
        })
        .collect()
}

/// A JSON value as a TOML value on one line.
fn toml_value(value: &Value) -> String {
    match toml::Value::try_from(value) {
        Ok(value) => value.to_string(),
        // Only `null` has no TOML form, and no option is written as one.
        Err(_) => "\"\"".to_string(),
    }
}

/// Appends text as `#` lines of at most 79 characters.
fn comment(out: &mut String, text: &str) {
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() > 1 && line.len() + 1 + word.len() > 79 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    if line.len() > 1 {
        out.push_str(&line);
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::REGISTRY;

    fn kinds(expression: &str) -> Vec<(ComponentKind, &'static str)> {
        plan(expression, &REGISTRY)
            .unwrap_or_else(|e| panic!("{expression}: {e}"))
            .into_iter()
            .map(|p| (p.kind, p.type_name))
            .collect()
    }

    use ComponentKind::{Sink, Source, Transform};

    #[test]
    fn reads_sources_then_transforms_then_sinks() {
        assert_eq!(
            kinds("stdin,pattern,llm_suppress,telegram"),
            [
                (Source, "stdin"),
                (Transform, "pattern"),
                (Transform, "llm_suppress"),
                (Sink, "telegram")
            ]
        );
    }

    #[test]
    fn a_name_of_two_kinds_is_read_by_its_place() {
        assert_eq!(kinds("file,console"), [(Source, "file"), (Sink, "console")]);
        assert_eq!(kinds("stdin,file"), [(Source, "stdin"), (Sink, "file")]);
        assert_eq!(
            kinds("file,filter,file"),
            [(Source, "file"), (Transform, "filter"), (Sink, "file")]
        );
        assert_eq!(
            kinds("file,file,console"),
            [(Source, "file"), (Source, "file"), (Sink, "console")]
        );
        assert_eq!(
            kinds("stdin,sink:file,console"),
            [(Source, "stdin"), (Sink, "file"), (Sink, "console")]
        );
    }

    #[test]
    fn vectors_three_lists_work_too() {
        assert_eq!(
            kinds("stdin/remap,filter/file"),
            [
                (Source, "stdin"),
                (Transform, "remap"),
                (Transform, "filter"),
                (Sink, "file")
            ]
        );
        assert_eq!(kinds("file//file"), [(Source, "file"), (Sink, "file")]);
    }

    #[test]
    fn says_what_is_wrong_with_an_expression() {
        let error = |e: &str| plan(e, &REGISTRY).unwrap_err();
        let unknown = error("stdin,patern,console");
        assert!(
            matches!(&unknown, ScaffoldError::Unknown { name, known }
                if name == "patern" && known.contains("transforms: ") && known.contains("pattern")),
            "{unknown}"
        );
        assert_eq!(
            error("pattern,stdin,console"),
            ScaffoldError::OutOfOrder {
                name: "stdin".to_string(),
                kind: "source",
                after: "transform"
            }
        );
        assert_eq!(
            error("stdin,console,stdin"),
            ScaffoldError::OutOfOrder {
                name: "stdin".to_string(),
                kind: "source",
                after: "sink"
            }
        );
        assert!(matches!(
            error("stdin,sink:pattern"),
            ScaffoldError::WrongKind { kind: "sink", .. }
        ));
        assert!(matches!(
            error("stdin,sinks:console"),
            ScaffoldError::BadPrefix { .. }
        ));
        assert!(matches!(
            error("stdin,pattern"),
            ScaffoldError::Missing { kind: "sink", .. }
        ));
        assert!(matches!(
            error("console"),
            ScaffoldError::Missing { kind: "source", .. }
        ));
        assert_eq!(error(" , "), ScaffoldError::Empty);
        assert_eq!(error("a/b/c/d"), ScaffoldError::TooManyLists);
        assert!(matches!(
            error("stdin/console/"),
            ScaffoldError::WrongKind {
                kind: "transform",
                ..
            }
        ));
    }

    #[test]
    fn two_listeners_of_one_type_get_their_own_ports() {
        let text = scaffold("http_server,http_server,syslog,syslog,console", &REGISTRY).unwrap();
        for port in ["8080", "8081", "1514", "1515"] {
            assert!(
                text.contains(&format!("\"127.0.0.1:{port}\"")),
                "{port} missing:\n{text}"
            );
        }
        let loaded = crate::config::load_texts(
            vec![(std::path::PathBuf::from("t.toml"), text)],
            |_| None,
            &REGISTRY,
        );
        assert!(loaded.is_ok(), "{:?}", loaded.diagnostics);
    }

    #[test]
    fn chains_inputs_and_marks_placeholders() {
        let text = scaffold("stdin,file,route,filter,console,sink:file", &REGISTRY).unwrap();
        let config: toml::Table = text.parse().unwrap();
        let inputs = |kind: &str, id: &str| config[kind][id]["inputs"].clone();
        // Two sources feed the first transform; a route is read by its route.
        assert_eq!(
            inputs("transforms", "route"),
            toml::Value::from(vec!["stdin", "file"])
        );
        let route_output = config["transforms"]["route"]["route"]
            .as_table()
            .and_then(|t| t.keys().next().cloned())
            .unwrap();
        assert_eq!(
            inputs("transforms", "filter"),
            toml::Value::from(vec![format!("route.{route_output}")])
        );
        assert_eq!(
            inputs("sinks", "console"),
            toml::Value::from(vec!["filter"])
        );
        assert_eq!(inputs("sinks", "file_2"), toml::Value::from(vec!["filter"]));
        assert!(
            text.lines()
                .any(|line| line.starts_with("condition = ") && line.ends_with("# <- replace")),
            "{text}"
        );
        // Optional options are listed, commented out.
        assert!(text.contains("\n# max_line_bytes = 102400\n"), "{text}");
    }

    #[test]
    fn wraps_comments() {
        let mut out = String::new();
        comment(&mut out, &"word ".repeat(40));
        assert!(out.lines().count() > 1);
        assert!(out.lines().all(|l| l.len() <= 79 && l.starts_with("# ")));
    }
}
