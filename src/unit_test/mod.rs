//! Unit tests of a topology's transforms, written in the config as
//! `[[tests]]` and run by `howl test` (Vector's conventions).
//!
//! A test inserts events at one or more transforms, runs the config's real
//! transforms on the real scheduler (so task transforms such as `pattern` or
//! `throttle` behave as in production), captures what comes out of the named
//! outputs and checks it with VRL conditions. Sources and sinks never run: a
//! test touches no network and no files besides a throw-away `data_dir`.
//!
//! The definitions are config types ([`crate::config::unit_test`]); this
//! module checks them against the topology ([`prepare`]), and [`runner`]
//! runs them.

pub mod runner;

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use toml::Spanned;
use vrl::compiler::Program;
use vrl::value::{KeyString, ObjectMap, Value};

use crate::component_key::{ComponentKey, ComponentKind};
use crate::config::unit_test::{InputKind, TestInput};
use crate::config::{Config, Graph, OutputId};
use crate::diagnostic::did_you_mean;
use crate::diagnostic::{Diagnostic, OptionSpans};
use crate::event::Event;
use crate::vrl_program::{VrlOrigin, compile_condition};

/// A test, checked against the topology and ready to run.
pub struct PreparedTest {
    /// The test's name.
    pub name: String,
    /// Events per receiving transform, in the order written.
    pub inputs: Vec<(String, Vec<Event>)>,
    /// Outputs to capture and how to check them.
    pub outputs: Vec<PreparedOutput>,
    /// Outputs that must stay silent.
    pub silent: Vec<OutputId>,
}

/// One output of a prepared test.
pub struct PreparedOutput {
    /// The output to capture.
    pub id: OutputId,
    /// The compiled conditions, with their source text for the report.
    pub conditions: Vec<(String, Arc<Program>)>,
    /// The exact number of events expected, when given.
    pub count: Option<usize>,
}

/// Checks every test against the topology (names, component references,
/// inputs, VRL conditions), reporting every problem at once.
pub fn prepare(config: &Config, graph: &Graph) -> Result<Vec<PreparedTest>, Vec<Diagnostic>> {
    let mut diagnostics = Vec::new();
    let mut names = HashSet::new();
    let mut prepared = Vec::new();
    let transforms = transform_ids(graph);
    for def in &config.tests {
        let test = &def.config;
        let label = format!("tests[{}]", test.name);
        let mut problems: Vec<(String, Range<usize>)> = Vec::new();
        let mut error = |message: String, span: Range<usize>| problems.push((message, span));
        if !names.insert(test.name.clone()) {
            error(
                format!("duplicate test name `{}`", test.name),
                def.span.clone(),
            );
        }
        if test.inputs.is_empty() {
            error(
                "a test needs at least one `[[tests.inputs]]`".to_string(),
                def.span.clone(),
            );
        }
        if test.outputs.is_empty() && test.no_outputs_from.is_empty() {
            error(
                "a test needs `[[tests.outputs]]` or `no_outputs_from`, or it checks nothing"
                    .to_string(),
                def.span.clone(),
            );
        }

        let mut inputs: Vec<(String, Vec<Event>)> = Vec::new();
        for input in &test.inputs {
            let target = input.insert_at.get_ref();
            if !transforms.contains(&target.as_str()) {
                error(
                    unknown("insert_at", target, "transform", &transforms),
                    input.insert_at.span(),
                );
                continue;
            }
            match input_event(input) {
                Ok(event) => match inputs.iter_mut().find(|(id, _)| id == target) {
                    Some((_, events)) => events.push(event),
                    None => inputs.push((target.clone(), vec![event])),
                },
                Err(message) => error(message, input.insert_at.span()),
            }
        }

        let mut outputs = Vec::new();
        for output in &test.outputs {
            let id = resolve_output(graph, &output.extract_from, &mut error);
            let key = ComponentKey::new(ComponentKind::Transform, &label, "test");
            let mut conditions = Vec::new();
            for condition in &output.conditions {
                let source = condition.source.get_ref();
                match compile_condition(
                    source,
                    VrlOrigin::Inline(condition.source.span()),
                    &def.file,
                    "conditions.source",
                ) {
                    Ok(program) => conditions.push((source.trim().to_string(), Arc::new(program))),
                    Err(build_error) => diagnostics.push(
                        build_error
                            .into_diagnostic(&key, &def.file, &def.span, &OptionSpans::default())
                            .component(&label),
                    ),
                }
            }
            if let Some(id) = id {
                outputs.push(PreparedOutput {
                    id,
                    conditions,
                    count: output.count,
                });
            }
        }
        let silent = test
            .no_outputs_from
            .iter()
            .filter_map(|output| resolve_output(graph, output, &mut error))
            .collect();
        for (message, span) in problems {
            diagnostics.push(
                Diagnostic::error(message)
                    .at(&def.file, Some(span))
                    .component(&label),
            );
        }
        prepared.push(PreparedTest {
            name: test.name.clone(),
            inputs,
            outputs,
            silent,
        });
    }
    if diagnostics.is_empty() {
        Ok(prepared)
    } else {
        Err(diagnostics)
    }
}

/// The ids of the graph's transforms (what tests may name).
fn transform_ids(graph: &Graph) -> Vec<&str> {
    graph
        .nodes
        .iter()
        .filter(|(key, _)| key.kind() == ComponentKind::Transform)
        .map(|(key, _)| key.id())
        .collect()
}

/// Resolves `id` or `id.name` to an output of a transform.
fn resolve_output(
    graph: &Graph,
    text: &Spanned<String>,
    error: &mut impl FnMut(String, Range<usize>),
) -> Option<OutputId> {
    let (component, output) = match text.get_ref().split_once('.') {
        Some((component, output)) => (component, Some(output.to_string())),
        None => (text.get_ref().as_str(), None),
    };
    let Some((_, specs)) = graph
        .nodes
        .iter()
        .find(|(key, _)| key.kind() == ComponentKind::Transform && key.id() == component)
    else {
        error(
            unknown("output", component, "transform", &transform_ids(graph)),
            text.span(),
        );
        return None;
    };
    if !specs.iter().any(|spec| spec.name == output) {
        let offered: Vec<String> = specs
            .iter()
            .map(|spec| match &spec.name {
                Some(name) => format!("`{component}.{name}`"),
                None => format!("`{component}`"),
            })
            .collect();
        error(
            format!(
                "transform `{component}` has no output `{}`; it offers {}",
                text.get_ref(),
                offered.join(", ")
            ),
            text.span(),
        );
        return None;
    }
    Some(OutputId {
        component: component.to_string(),
        output,
    })
}

fn unknown(option: &str, id: &str, kind: &str, known: &[&str]) -> String {
    let mut message = format!(
        "`{option}` names `{id}`, which is not a {kind}; tests can use {}",
        if known.is_empty() {
            "none (the config has no transforms)".to_string()
        } else {
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    if let Some(close) = did_you_mean(id, known.iter().copied()) {
        message.push_str(&format!(" (did you mean `{close}`?)"));
    }
    message
}

/// The event a test input describes.
fn input_event(input: &TestInput) -> Result<Event, String> {
    match (input.kind, &input.value, &input.log_fields) {
        (InputKind::Raw, Some(value), None) => Ok(Event::log(
            Bytes::from(value.clone()),
            chrono::Utc::now(),
            "test",
        )),
        (InputKind::Log, None, Some(fields)) => {
            let map: ObjectMap = fields
                .iter()
                .map(|(key, value)| (KeyString::from(key.as_str()), toml_to_vrl(value)))
                .collect();
            Ok(Event::from_value(Value::Object(map)))
        }
        (InputKind::Raw, _, _) => {
            Err("a `type = \"raw\"` input takes `value` (the line) and no `log_fields`".into())
        }
        (InputKind::Log, _, _) => {
            Err("a `type = \"log\"` input takes `log_fields` (a table) and no `value`".into())
        }
    }
}

/// TOML values as event values; datetimes become timestamps when they carry
/// an offset, text otherwise.
fn toml_to_vrl(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(text) => Value::from(text.as_str()),
        toml::Value::Integer(n) => Value::from(*n),
        toml::Value::Float(f) => Value::from_f64_or_zero(*f),
        toml::Value::Boolean(b) => Value::Boolean(*b),
        toml::Value::Datetime(datetime) => {
            let text = datetime.to_string();
            match chrono::DateTime::parse_from_rfc3339(&text) {
                Ok(at) => Value::Timestamp(at.with_timezone(&chrono::Utc)),
                Err(_) => Value::from(text),
            }
        }
        toml::Value::Array(items) => Value::Array(items.iter().map(toml_to_vrl).collect()),
        toml::Value::Table(table) => Value::Object(
            table
                .iter()
                .map(|(key, value)| (KeyString::from(key.as_str()), toml_to_vrl(value)))
                .collect(),
        ),
    }
}
