//! Turning TOML text into [`Config`] components, keeping positions.
//!
//! The file is parsed once into toml's spanned tree (`DeTable`). Each
//! component table is split into the keys every component of its kind shares
//! (`type`, `inputs`, and a sink's `buffer` and `acknowledgements`) and its
//! type-specific options,
//! which are deserialized straight from the spanned tree: serde errors then
//! carry the byte range of the offending key or value, which becomes a line
//! and column in the message.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue, ValueDeserializer};

use super::AcknowledgementsConfig;
use super::api::ApiConfig;
use super::graph::{self, NodeDecl};
use super::interpolate::interpolate_mapped;
use super::state::StateConfig;
use super::unit_test::{UnitTestConfig, UnitTestDef};
use super::vrl_env::references_in_vrl;
use super::{ComponentDef, Config, InputRef, Loaded, SinkDef, default_data_dir};
use crate::buffer::BufferConfig;
use crate::component_key::{ComponentKey, ComponentKind};
use crate::components::OutputSpec;
use crate::components::Registry;
use crate::components::registry::{ComponentType, find};
use crate::components::schema::OptionsSchema;
use crate::diagnostic::{Diagnostic, OptionSpans, SourceFile};
use crate::diagnostic::{did_you_mean, name_list};

const TOP_LEVEL_KEYS: [&str; 8] = [
    "data_dir",
    "api",
    "state",
    "vrl_max_program_bytes",
    "sources",
    "transforms",
    "sinks",
    "tests",
];

pub(super) fn load(
    files: Vec<(PathBuf, String)>,
    env: impl Fn(&str) -> Option<String>,
    registry: &Registry,
) -> Loaded {
    let mut loader = Loader::new(*registry);
    for (path, text) in files {
        match interpolate_mapped(&text, &env) {
            Ok((interpolated, replacements)) => {
                let file = Arc::new(SourceFile::with_replacements(
                    path,
                    text,
                    interpolated,
                    replacements,
                ));
                loader.parse_file(&file);
                loader.config.files.push(file);
            }
            Err(errors) => {
                let file = SourceFile::new(path, text);
                for error in errors {
                    loader.diagnostics.push(
                        Diagnostic::error(error.message)
                            .at(&file, Some(error.offset..error.offset)),
                    );
                }
            }
        }
    }
    loader.finish()
}

struct Loader {
    registry: Registry,
    config: Config,
    data_dir: Option<(PathBuf, String)>,
    api: Option<String>,
    /// Where `[state]` is defined, once it is.
    state: Option<String>,
    nodes: Vec<NodeDecl>,
    ids: HashMap<String, String>,
    /// Kinds the files declare, even components skipped for other errors,
    /// so "no sinks defined" is not reported on top of a duplicate sink.
    kinds_declared: Vec<ComponentKind>,
    /// A file could not be parsed at all (TOML syntax).
    unreadable: bool,
    diagnostics: Vec<Diagnostic>,
}

impl Loader {
    fn new(registry: Registry) -> Self {
        Self {
            registry,
            config: Config::default(),
            data_dir: None,
            api: None,
            state: None,
            nodes: Vec::new(),
            ids: HashMap::new(),
            kinds_declared: Vec::new(),
            unreadable: false,
            diagnostics: Vec::new(),
        }
    }
}

/// The shared keys split off a component table.
struct Envelope<'i> {
    type_name: Option<Spanned<String>>,
    inputs: Option<Spanned<DeValue<'i>>>,
    buffer: Option<Spanned<DeValue<'i>>>,
    acknowledgements: Option<Spanned<DeValue<'i>>>,
    options: DeTable<'i>,
}

impl Loader {
    fn parse_file(&mut self, file: &Arc<SourceFile>) {
        let root = match DeTable::parse(file.text()) {
            Ok(root) => root.into_inner(),
            Err(error) => {
                self.unreadable = true;
                self.diagnostics.push(
                    Diagnostic::error(format!("invalid TOML: {}", error.message().trim()))
                        .at(file, error.span()),
                );
                return;
            }
        };
        for (key, value) in root {
            let span = key.span();
            match key.get_ref().as_ref() {
                "data_dir" => self.parse_data_dir(file, value),
                "api" => self.parse_api(file, value),
                "state" => self.parse_state(file, value),
                "vrl_max_program_bytes" => self.parse_vrl_limit(file, value),
                "sources" => self.parse_section(file, ComponentKind::Source, value),
                "transforms" => self.parse_section(file, ComponentKind::Transform, value),
                "sinks" => self.parse_section(file, ComponentKind::Sink, value),
                "tests" => self.parse_tests(file, value),
                other => {
                    let mut message = format!(
                        "unknown top-level key `{other}`; expected one of {}",
                        name_list(TOP_LEVEL_KEYS)
                    );
                    if let Some(close) = did_you_mean(other, TOP_LEVEL_KEYS) {
                        message.push_str(&format!(" (did you mean `{close}`?)"));
                    }
                    self.diagnostics
                        .push(Diagnostic::error(message).at(file, Some(span)));
                }
            }
        }
    }

    fn parse_data_dir(&mut self, file: &SourceFile, value: Spanned<DeValue<'_>>) {
        let span = value.span();
        let Some(dir) = value.get_ref().as_str().map(PathBuf::from) else {
            self.diagnostics.push(
                Diagnostic::error("`data_dir` must be a string (a path)").at(file, Some(span)),
            );
            return;
        };
        let here = location(file, &span);
        match &self.data_dir {
            Some((existing, at)) if *existing != dir => self.diagnostics.push(
                Diagnostic::error(format!(
                    "`data_dir` is set to different values: `{}` here and `{}` at {at}",
                    dir.display(),
                    existing.display()
                ))
                .at(file, Some(span)),
            ),
            _ => self.data_dir = Some((dir, here)),
        }
    }

    /// `vrl_max_program_bytes`: 1 KiB to 16 MiB (set at once: nothing is
    /// compiled before the files are read).
    fn parse_vrl_limit(&mut self, file: &SourceFile, value: Spanned<DeValue<'_>>) {
        const RANGE: std::ops::RangeInclusive<i64> = 1024..=16 * 1024 * 1024;
        let span = value.span();
        match value
            .get_ref()
            .as_integer()
            .and_then(|i| i.as_str().parse::<i64>().ok())
        {
            Some(bytes) if RANGE.contains(&bytes) => {
                crate::vrl_program::set_max_program_bytes(bytes as usize);
            }
            _ => self.diagnostics.push(
                Diagnostic::error(format!(
                    "`vrl_max_program_bytes` must be a whole number of bytes from {} to {}",
                    RANGE.start(),
                    RANGE.end()
                ))
                .at(file, Some(span)),
            ),
        }
    }

    fn parse_api(&mut self, file: &SourceFile, value: Spanned<DeValue<'_>>) {
        let span = value.span();
        if let Some(at) = &self.api {
            self.diagnostics.push(
                Diagnostic::error(format!("`[api]` is defined twice; the first is at {at}"))
                    .at(file, Some(span)),
            );
            return;
        }
        self.api = Some(location(file, &span));
        match ApiConfig::deserialize(ValueDeserializer::from(value)) {
            Ok(api)
                if api
                    .auth_token
                    .as_ref()
                    .is_some_and(|t| t.expose().trim().is_empty()) =>
            {
                self.diagnostics.push(
                    Diagnostic::error(
                        "`auth_token` is empty, which would let anyone change suppressions; set a token (e.g. `${HOWL_API_TOKEN}`) or remove the key",
                    )
                    .at(file, Some(span))
                    .component("api"),
                );
            }
            Ok(api) => {
                let links = api.links.as_ref().map(|links| links.signer());
                if let Some(Err(problem)) = links {
                    self.diagnostics.push(
                        Diagnostic::error(problem)
                            .at(file, Some(span))
                            .component("api"),
                    );
                } else {
                    self.config.api = api;
                }
            }
            Err(error) => self.diagnostics.push(
                Diagnostic::error(option_message(&error))
                    .at(file, error.span())
                    .component("api"),
            ),
        }
    }

    fn parse_state(&mut self, file: &SourceFile, value: Spanned<DeValue<'_>>) {
        let span = value.span();
        if let Some(at) = &self.state {
            self.diagnostics.push(
                Diagnostic::error(format!("`[state]` is defined twice; the first is at {at}"))
                    .at(file, Some(span)),
            );
            return;
        }
        let at = location(file, &span);
        self.state = Some(at.clone());
        let mut option_spans = OptionSpans::default();
        if let DeValue::Table(table) = value.get_ref() {
            record_spans(table, "", &mut option_spans);
        }
        let state = match StateConfig::deserialize(ValueDeserializer::from(value)) {
            Ok(state) => state,
            Err(error) => {
                self.diagnostics.push(
                    Diagnostic::error(option_message(&error))
                        .at(file, error.span())
                        .component("state"),
                );
                return;
            }
        };
        let Some(shared) = state.shared else {
            return;
        };
        match shared.nats.check(file.path().parent(), at) {
            Ok(checked) => self.config.shared_state = Some(checked),
            Err(error) => {
                let at = error
                    .option
                    .as_deref()
                    .and_then(|option| option_spans.get(&format!("shared.nats.{option}")))
                    .unwrap_or(span);
                self.diagnostics.push(
                    Diagnostic::error(error.to_string())
                        .at(file, Some(at))
                        .component("state.shared.nats"),
                );
            }
        }
    }

    /// `[[tests]]`: checked here for shape only; their references to
    /// components are checked against the graph by `unit_test::prepare`.
    fn parse_tests(&mut self, file: &Arc<SourceFile>, value: Spanned<DeValue<'_>>) {
        let span = value.span();
        let DeValue::Array(tests) = value.into_inner() else {
            self.diagnostics.push(
                Diagnostic::error("`tests` must be an array of tables: write `[[tests]]`")
                    .at(file, Some(span)),
            );
            return;
        };
        let schema = OptionsSchema::new(schemars::schema_for!(UnitTestConfig));
        for (index, test) in tests.into_iter().enumerate() {
            let span = test.span();
            if let DeValue::Table(table) = test.get_ref() {
                let refused = references_in_vrl(file, &schema, table);
                if !refused.is_empty() {
                    let label = format!("tests[{index}]");
                    for error in refused {
                        self.diagnostics.push(error.component(&label));
                    }
                    continue;
                }
            }
            match UnitTestConfig::deserialize(ValueDeserializer::from(test)) {
                Ok(config) => self.config.tests.push(UnitTestDef {
                    config,
                    file: Arc::clone(file),
                    span,
                }),
                Err(error) => self.diagnostics.push(
                    Diagnostic::error(option_message(&error))
                        .at(file, error.span().or(Some(span)))
                        .component(format!("tests[{index}]")),
                ),
            }
        }
    }

    fn parse_section(
        &mut self,
        file: &Arc<SourceFile>,
        kind: ComponentKind,
        value: Spanned<DeValue<'_>>,
    ) {
        let span = value.span();
        let DeValue::Table(components) = value.into_inner() else {
            self.diagnostics.push(
                Diagnostic::error(format!(
                    "`{}` must be a table of components, e.g. `[{}.my_id]`",
                    kind.table(),
                    kind.table()
                ))
                .at(file, Some(span)),
            );
            return;
        };
        for (id, value) in components {
            self.parse_component(file, kind, id, value);
        }
    }

    fn parse_component(
        &mut self,
        file: &Arc<SourceFile>,
        kind: ComponentKind,
        id: Spanned<DeString<'_>>,
        value: Spanned<DeValue<'_>>,
    ) {
        let id_span = id.span();
        let id = id.into_inner().into_owned();
        let table_span = value.span();
        let path = format!("{}.{id}", kind.table());
        let DeValue::Table(table) = value.into_inner() else {
            self.diagnostics.push(
                Diagnostic::error("a component must be a table with at least `type`")
                    .at(file, Some(table_span))
                    .component(&path),
            );
            return;
        };

        self.kinds_declared.push(kind);
        if let Some(previous) = self.ids.get(&id) {
            self.diagnostics.push(
                Diagnostic::error(format!(
                    "duplicate component id `{id}`: already defined as {previous}; ids must be \
                     unique across sources, transforms and sinks"
                ))
                .at(file, Some(id_span))
                .component(&path),
            );
            return;
        }
        self.ids.insert(
            id.clone(),
            format!("{path} at {}", location(file, &id_span)),
        );

        let envelope = self.split_envelope(file, &path, kind, table);
        let inputs = match envelope.inputs {
            Some(inputs) => self.parse_inputs(file, &path, inputs),
            None => Vec::new(),
        };
        let type_name = match envelope.type_name {
            Some(name) => Some(name),
            None => {
                self.diagnostics.push(
                    Diagnostic::error("missing required option `type`")
                        .at(file, Some(id_span.clone()))
                        .component(&path),
                );
                None
            }
        };
        let type_label = type_name.as_ref().map_or("?", |t| t.get_ref().as_str());
        let fingerprint = fingerprint(file, type_label, &envelope.options);
        let mut option_spans = OptionSpans::default();
        record_spans(&envelope.options, "", &mut option_spans);
        let key = ComponentKey::new(kind, &id, type_label);
        let mut outputs = None;

        if let Some(type_name) = &type_name {
            let cx = OptionsContext {
                file,
                key: &key,
                type_span: type_name.span(),
                table_span: table_span.clone(),
                option_spans: &option_spans,
            };
            match kind {
                ComponentKind::Source => {
                    if let Some(options) =
                        self.parse_options(&cx, self.registry.sources, envelope.options)
                    {
                        outputs = Some(vec![OutputSpec::default_output()]);
                        self.config.sources.push(ComponentDef {
                            key: key.clone(),
                            inputs: inputs.clone(),
                            options,
                            file: Arc::clone(file),
                            span: id_span.clone(),
                            option_spans: option_spans.clone(),
                            fingerprint: fingerprint.clone(),
                        });
                    }
                }
                ComponentKind::Transform => {
                    if let Some(options) =
                        self.parse_options(&cx, self.registry.transforms, envelope.options)
                    {
                        outputs = Some(options.outputs());
                        self.config.transforms.push(ComponentDef {
                            key: key.clone(),
                            inputs: inputs.clone(),
                            options,
                            file: Arc::clone(file),
                            span: id_span.clone(),
                            option_spans: option_spans.clone(),
                            fingerprint: fingerprint.clone(),
                        });
                    }
                }
                ComponentKind::Sink => {
                    let buffer_span = envelope.buffer.as_ref().map(|b| b.span());
                    let buffer = self
                        .parse_common::<BufferConfig>(&cx, "buffer", envelope.buffer)
                        .and_then(|buffer| match buffer.check() {
                            Ok(()) => Some(buffer),
                            Err((option, message)) => {
                                let at = option_spans.get(option).or(buffer_span);
                                self.diagnostics
                                    .push(Diagnostic::error(message).at(file, at).component(&key));
                                None
                            }
                        });
                    let acknowledgements = self.parse_common::<AcknowledgementsConfig>(
                        &cx,
                        "acknowledgements",
                        envelope.acknowledgements,
                    );
                    let options = self.parse_options(&cx, self.registry.sinks, envelope.options);
                    if let (Some(options), Some(buffer), Some(acknowledgements)) =
                        (options, buffer, acknowledgements)
                    {
                        outputs = Some(Vec::new());
                        let acknowledgements = acknowledgements
                            .enabled
                            .unwrap_or_else(|| options.acknowledgements_by_default());
                        self.config.sinks.push(SinkDef {
                            component: ComponentDef {
                                key: key.clone(),
                                inputs: inputs.clone(),
                                options,
                                file: Arc::clone(file),
                                span: id_span.clone(),
                                option_spans: option_spans.clone(),
                                fingerprint: fingerprint.clone(),
                            },
                            buffer,
                            acknowledgements,
                        });
                    }
                }
            }
        }

        self.nodes.push(NodeDecl {
            key,
            file: Arc::clone(file),
            span: id_span,
            inputs,
            outputs,
        });
    }

    fn split_envelope<'i>(
        &mut self,
        file: &SourceFile,
        path: &str,
        kind: ComponentKind,
        table: DeTable<'i>,
    ) -> Envelope<'i> {
        let mut envelope = Envelope {
            type_name: None,
            inputs: None,
            buffer: None,
            acknowledgements: None,
            options: DeTable::new(),
        };
        for (key, value) in table {
            match (key.get_ref().as_ref(), kind) {
                ("type", _) => {
                    let span = value.span();
                    match value.get_ref().as_str() {
                        Some(name) => {
                            envelope.type_name = Some(Spanned::new(span, name.to_string()));
                        }
                        None => self.diagnostics.push(
                            Diagnostic::error("`type` must be a string")
                                .at(file, Some(span))
                                .component(path),
                        ),
                    }
                }
                ("inputs", ComponentKind::Transform | ComponentKind::Sink) => {
                    envelope.inputs = Some(value);
                }
                ("buffer", ComponentKind::Sink) => envelope.buffer = Some(value),
                ("acknowledgements", ComponentKind::Sink) => {
                    envelope.acknowledgements = Some(value);
                }
                _ => {
                    envelope.options.insert(key, value);
                }
            }
        }
        envelope
    }

    fn parse_inputs(
        &mut self,
        file: &SourceFile,
        path: &str,
        value: Spanned<DeValue<'_>>,
    ) -> Vec<InputRef> {
        let span = value.span();
        let DeValue::Array(items) = value.into_inner() else {
            self.diagnostics.push(
                Diagnostic::error(
                    "`inputs` must be a list of strings, e.g. `inputs = [\"my_source\"]`",
                )
                .at(file, Some(span))
                .component(path),
            );
            return Vec::new();
        };
        let mut inputs = Vec::new();
        for item in items {
            let span = item.span();
            match item.get_ref().as_str() {
                Some(text) => inputs.push(InputRef {
                    text: text.to_string(),
                    span,
                }),
                None => self.diagnostics.push(
                    Diagnostic::error("each entry of `inputs` must be a string")
                        .at(file, Some(span))
                        .component(path),
                ),
            }
        }
        inputs
    }

    /// Parses a table of options every sink shares (`buffer`,
    /// `acknowledgements`), reporting unknown keys and bad values like a
    /// component's own.
    fn parse_common<T: Default + serde::de::DeserializeOwned>(
        &mut self,
        cx: &OptionsContext<'_>,
        name: &str,
        value: Option<Spanned<DeValue<'_>>>,
    ) -> Option<T> {
        let Some(value) = value else {
            return Some(T::default());
        };
        let (file, path) = (cx.file, cx.key);
        let before = self.diagnostics.len();
        let span = value.span();
        let value = match value.into_inner() {
            DeValue::Table(table) => {
                let schema = OptionsSchema::new(schemars::schema_for!(super::SinkEnvelope));
                let table = self.drop_unknown_keys(cx, &schema, &mut vec![name.to_string()], table);
                Spanned::new(span.clone(), DeValue::Table(table))
            }
            other => Spanned::new(span.clone(), other),
        };
        match T::deserialize(ValueDeserializer::from(value)) {
            Ok(_) if self.diagnostics.len() > before => None,
            Ok(parsed) => Some(parsed),
            Err(error) => {
                self.diagnostics.push(
                    Diagnostic::error(format!("{name}: {}", option_message(&error)))
                        .at(file, error.span())
                        .component(path),
                );
                None
            }
        }
    }

    fn parse_options<C: ?Sized>(
        &mut self,
        cx: &OptionsContext<'_>,
        types: &[ComponentType<C>],
        options: DeTable<'_>,
    ) -> Option<Box<C>> {
        let kind = cx.key.kind();
        let type_name = cx.key.type_name();
        let Some(component_type) = find(types, type_name) else {
            let names: Vec<&str> = types.iter().map(|t| t.name).collect();
            let mut message = format!(
                "unknown {} type `{type_name}`; expected one of {}",
                kind.as_str(),
                name_list(&names)
            );
            if let Some(close) = did_you_mean(type_name, names.iter().copied()) {
                message.push_str(&format!(" (did you mean `{close}`?)"));
            }
            self.diagnostics.push(
                Diagnostic::error(message)
                    .at(cx.file, Some(cx.type_span.clone()))
                    .component(cx.key),
            );
            return None;
        };
        self.parse_table(cx, &component_type.options(), options, component_type.parse)
    }

    /// Reads a component's options (or a file of them): every unknown key
    /// and every bad value reported, each at its position; `None` when
    /// anything was wrong.
    fn parse_table<'i, T>(
        &mut self,
        cx: &OptionsContext<'_>,
        schema: &OptionsSchema,
        options: DeTable<'i>,
        parse: impl Fn(Spanned<DeValue<'i>>) -> Result<T, toml::de::Error>,
    ) -> Option<T> {
        let before = self.diagnostics.len();
        for error in references_in_vrl(cx.file, schema, &options) {
            self.diagnostics.push(error.component(cx.key));
        }
        let mut options = self.drop_unknown_keys(cx, schema, &mut Vec::new(), options);
        // serde stops at the first bad value; to report them all, set the
        // option holding it aside and read again, until nothing is wrong
        // (a required option set aside is not reported as missing).
        let mut set_aside: Vec<String> = Vec::new();
        for _ in 0..MAX_ERRORS_PER_COMPONENT {
            let table = Spanned::new(cx.table_span.clone(), DeValue::Table(options.clone()));
            let error = match parse(table) {
                Ok(parsed) if self.diagnostics.len() == before => return Some(parsed),
                Ok(_) => return None,
                Err(error) => error,
            };
            let message = option_message(&error);
            let consequence = set_aside
                .iter()
                .any(|name| message == format!("missing required option `{name}`"));
            if !consequence {
                let message = qualify_missing(message, error.span(), cx.option_spans);
                self.diagnostics.push(
                    Diagnostic::error(message)
                        .at(cx.file, error.span())
                        .component(cx.key),
                );
            }
            // The top-level option holding the bad value.
            let holding = error
                .span()
                .and_then(|span| cx.option_spans.path_containing(&span))
                .map(|path| path.split(['.', '[']).next().unwrap_or(path).to_string());
            match holding {
                Some(name) => {
                    let mut rest = DeTable::new();
                    for (key, value) in options {
                        if key.get_ref().as_ref() != name.as_str() {
                            rest.insert(key, value);
                        }
                    }
                    options = rest;
                    set_aside.push(name);
                }
                None => return None,
            }
        }
        None
    }

    /// Reports every key the schema does not know (serde would stop at the
    /// first) and returns the table without them, so the remaining options
    /// are still checked for types and missing values.
    fn drop_unknown_keys<'i>(
        &mut self,
        cx: &OptionsContext<'_>,
        schema: &OptionsSchema,
        path: &mut Vec<String>,
        table: DeTable<'i>,
    ) -> DeTable<'i> {
        let schema_path = schema_path(path);
        let path_refs: Vec<&str> = schema_path.iter().map(String::as_str).collect();
        let allowed = schema.keys_at(&path_refs);
        let mut kept = DeTable::new();
        for (key, value) in table {
            let name = key.get_ref().to_string();
            if let Some(allowed) = &allowed
                && !allowed.contains(&name)
            {
                let full_name = dotted(path, &name);
                let mut message = format!(
                    "unknown option `{full_name}` for {} type `{}`",
                    cx.key.kind().as_str(),
                    cx.key.type_name()
                );
                if let Some(close) = did_you_mean(&name, allowed.iter().map(String::as_str)) {
                    message.push_str(&format!(" (did you mean `{}`?)", dotted(path, close)));
                }
                let mut sorted = allowed.clone();
                sorted.sort();
                let at_top = path.is_empty();
                self.diagnostics.push(
                    Diagnostic::error(message)
                        .at(cx.file, Some(key.span()))
                        .component(cx.key)
                        .detail(format!(
                            "valid options{}: {}",
                            if at_top { "" } else { " here" },
                            name_list(&sorted)
                        )),
                );
                continue;
            }
            let mut option = schema_path.clone();
            option.push(name.clone());
            let option_refs: Vec<&str> = option.iter().map(String::as_str).collect();
            let expects_table = allowed.is_some()
                && schema.keys_at(&option_refs).is_some()
                && !schema.takes_a_value_for_its_table(&option_refs);
            let span = value.span();
            let value = match value.into_inner() {
                DeValue::Table(nested) => {
                    path.push(name.clone());
                    let nested = self.drop_unknown_keys(cx, schema, path, nested);
                    path.pop();
                    Spanned::new(span, DeValue::Table(nested))
                }
                DeValue::Array(items) if schema.is_list_of_tables(&option_refs) => {
                    let mut checked = toml::de::DeArray::new();
                    for (index, item) in items.into_iter().enumerate() {
                        let item_span = item.span();
                        match item.into_inner() {
                            DeValue::Table(nested) => {
                                path.push(format!("{name}[{index}]"));
                                let nested = self.drop_unknown_keys(cx, schema, path, nested);
                                path.pop();
                                checked.push(Spanned::new(item_span, DeValue::Table(nested)));
                            }
                            other => checked.push(Spanned::new(item_span, other)),
                        }
                    }
                    Spanned::new(span, DeValue::Array(checked))
                }
                _ if expects_table => {
                    // serde would read a list as a table of defaults.
                    let full_name = dotted(path, &name);
                    self.diagnostics.push(
                        Diagnostic::error(format!(
                            "`{full_name}` must be a table, e.g. `{full_name}.KEY = VALUE`"
                        ))
                        .at(cx.file, Some(span))
                        .component(cx.key),
                    );
                    continue;
                }
                other => Spanned::new(span, other),
            };
            kept.insert(key, value);
        }
        kept
    }

    fn finish(mut self) -> Loaded {
        if let Some((dir, _)) = self.data_dir.take() {
            self.config.data_dir = dir;
        } else {
            self.config.data_dir = default_data_dir();
        }
        // A file that is not TOML declares nothing we could see: saying
        // "no sources defined" on top of its syntax error would mislead.
        let any_file = !self.config.files.is_empty() && !self.unreadable;
        if any_file && self.ids.is_empty() && self.diagnostics.is_empty() {
            self.diagnostics.push(Diagnostic::error(
                "the config defines no components: add at least one `[sources.ID]` and one `[sinks.ID]`",
            ));
        } else if any_file {
            let has = |kind| self.kinds_declared.contains(&kind);
            if !has(ComponentKind::Source) {
                self.diagnostics.push(Diagnostic::error(
                    "no sources defined: add a `[sources.ID]` table (howl needs something to read)",
                ));
            }
            if !has(ComponentKind::Sink) {
                self.diagnostics.push(Diagnostic::error(
                    "no sinks defined: add a `[sinks.ID]` table (events need somewhere to go)",
                ));
            }
        }
        let (graph, mut graph_diagnostics) = graph::validate(&self.nodes);
        self.diagnostics.append(&mut graph_diagnostics);
        let has_errors = self.diagnostics.iter().any(Diagnostic::is_error);
        Loaded {
            config: self.config,
            graph: if has_errors { None } else { graph },
            diagnostics: self.diagnostics,
        }
    }
}

/// Records where every option of a table is written, nested tables as
/// `a.b` and array items as `a[0]`.
/// A component's type, options and file in one canonical text: keys
/// sorted, values as TOML writes them, so that only a change of meaning
/// (not of layout, comments or key order) changes it. The file is part of
/// it because relative paths in options are relative to the file.
fn fingerprint(file: &SourceFile, type_name: &str, options: &DeTable<'_>) -> String {
    fn canonical(value: &toml::Value, out: &mut String) {
        match value {
            toml::Value::Table(table) => {
                let mut keys: Vec<&String> = table.keys().collect();
                keys.sort();
                out.push('{');
                for key in keys {
                    out.push_str(&toml::Value::String(key.clone()).to_string());
                    out.push('=');
                    canonical(&table[key], out);
                    out.push(',');
                }
                out.push('}');
            }
            toml::Value::Array(items) => {
                out.push('[');
                for item in items {
                    canonical(item, out);
                    out.push(',');
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let value = DeValue::Table(options.clone());
    let options = toml::Value::deserialize(ValueDeserializer::from(Spanned::new(0..0, value)))
        .unwrap_or_else(|error| toml::Value::String(format!("(unreadable: {error})")));
    let mut out = format!("{}|{type_name}|", file.path().display());
    canonical(&options, &mut out);
    out
}

fn record_spans(table: &DeTable<'_>, prefix: &str, spans: &mut OptionSpans) {
    for (key, value) in table {
        let path = format!("{prefix}{}", key.get_ref());
        record_value(value, path, spans);
    }
}

fn record_value(value: &Spanned<DeValue<'_>>, path: String, spans: &mut OptionSpans) {
    match value.get_ref() {
        DeValue::Table(table) => record_spans(table, &format!("{path}."), spans),
        DeValue::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                record_value(item, format!("{path}[{index}]"), spans);
            }
        }
        _ => {}
    }
    spans.insert(path, value.span());
}

/// Reads a file holding one component type's options alone (`howl
/// patterns mine --config FILE`), exactly as the loader reads them inside a
/// topology: every unknown key and bad value is reported at its position.
pub(super) fn read_options<T>(
    file: &Arc<SourceFile>,
    key: &ComponentKey,
    schema: &OptionsSchema,
    parse: impl for<'i> Fn(Spanned<DeValue<'i>>) -> Result<T, toml::de::Error>,
) -> Result<T, Vec<Diagnostic>> {
    let table = match DeTable::parse(file.text()) {
        Ok(table) => table,
        Err(error) => {
            return Err(vec![
                Diagnostic::error(format!("invalid TOML: {}", error.message().trim()))
                    .at(file, error.span()),
            ]);
        }
    };
    let table_span = table.span();
    let table = table.into_inner();
    let mut option_spans = OptionSpans::default();
    record_spans(&table, "", &mut option_spans);
    let cx = OptionsContext {
        file,
        key,
        type_span: table_span.clone(),
        table_span,
        option_spans: &option_spans,
    };
    let mut loader = Loader::new(Registry {
        sources: &[],
        transforms: &[],
        sinks: &[],
    });
    match loader.parse_table(&cx, schema, table, parse) {
        Some(parsed) if loader.diagnostics.is_empty() => Ok(parsed),
        _ => Err(loader.diagnostics),
    }
}

struct OptionsContext<'a> {
    file: &'a Arc<SourceFile>,
    key: &'a ComponentKey,
    type_span: Range<usize>,
    table_span: Range<usize>,
    option_spans: &'a OptionSpans,
}

/// Bad values reported per component at most (each costs a re-read).
const MAX_ERRORS_PER_COMPONENT: usize = 20;

/// serde names a missing field by its name alone; inside a nested table or
/// a list item, say where: `rules[0].metric`, `auth.strategy`.
fn qualify_missing(message: String, span: Option<Range<usize>>, spans: &OptionSpans) -> String {
    let (Some(span), Some(rest)) = (span, message.strip_prefix("missing required option `")) else {
        return message;
    };
    match spans.path_at(&span) {
        Some(path) => format!("missing required option `{path}.{rest}"),
        None => message,
    }
}

/// The schema path of a display path: `rules[0]` is `rules`, `[]`.
fn schema_path(path: &[String]) -> Vec<String> {
    let mut schema_path = Vec::new();
    for segment in path {
        match segment.split_once('[') {
            Some((name, _)) => {
                schema_path.push(name.to_string());
                schema_path.push("[]".to_string());
            }
            None => schema_path.push(segment.clone()),
        }
    }
    schema_path
}

fn dotted(path: &[String], name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{}.{name}", path.join("."))
    }
}

fn location(file: &SourceFile, span: &Range<usize>) -> String {
    let (line, column) = file.line_col(span.start);
    format!("{}:{line}:{column}", file.path().display())
}

/// serde speaks of fields and Rust types; users write options and values.
fn option_message(error: &toml::de::Error) -> String {
    let mut message = error
        .message()
        .trim()
        .replace("missing field", "missing required option")
        .replace("unknown field", "unknown option");
    for (rust, user) in [
        ("a nonzero usize", "a whole number of at least 1"),
        ("a nonzero u64", "a whole number of at least 1"),
        ("a nonzero u32", "a whole number from 1 to 4294967295"),
        ("expected f64", "expected a number"),
        ("expected usize", "expected a whole number"),
        ("expected u64", "expected a whole number"),
        (
            "expected u32",
            "expected a whole number from 0 to 4294967295",
        ),
        ("expected i64", "expected a whole number"),
        ("expected a boolean", "expected `true` or `false`"),
    ] {
        message = message.replace(rust, user);
    }
    // "expected struct RetryConfig" → "expected a table".
    while let Some(at) = message.find("expected struct ") {
        let end = message[at + 16..]
            .find(|c: char| !c.is_alphanumeric() && c != '_')
            .map_or(message.len(), |e| at + 16 + e);
        message.replace_range(at..end, "expected a table");
    }
    message
}
