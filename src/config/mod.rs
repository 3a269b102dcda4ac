//! Configuration: from TOML files to a validated topology description.
//!
//! `config files → ${ENV} interpolation → TOML with spans → per-component
//! options (serde, unknown keys rejected) → graph validation`. Every stage adds
//! to one list of [`Diagnostic`]s instead of stopping, so a user fixes all
//! problems in one round. Building the components (compiling VRL, parsing
//! templates) is the next step and lives in `topology`.

pub mod api;
pub mod graph;
pub mod interpolate;
mod load;
pub mod state;
pub mod unit_test;
mod vrl_env;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

pub use graph::{Edge, Graph, OutputId};

use crate::buffer::BufferConfig;
use crate::component_key::ComponentKey;
use crate::components::Registry;
use crate::components::sink::SinkConfig;
use crate::components::source::SourceConfig;
use crate::components::transform::TransformConfig;
use crate::diagnostic::{Diagnostic, OptionSpans, SourceFile, decode_utf8};
use api::ApiConfig;
use unit_test::UnitTestDef;

/// A fully parsed topology: global options and every component that parsed.
#[derive(Debug, Default)]
pub struct Config {
    /// Where state lives (checkpoints, patterns, verdicts).
    pub data_dir: PathBuf,
    /// The built-in API.
    pub api: ApiConfig,
    /// State shared by a fleet (`[state.shared.nats]`), checked; `None`
    /// keeps all state local.
    pub shared_state: Option<state::SharedNats>,
    /// Sources, in file order.
    pub sources: Vec<ComponentDef<dyn SourceConfig>>,
    /// Transforms, in file order.
    pub transforms: Vec<ComponentDef<dyn TransformConfig>>,
    /// Sinks, in file order.
    pub sinks: Vec<SinkDef>,
    /// Unit tests (`[[tests]]`), run by `howl test` and ignored by `howl run`.
    pub tests: Vec<UnitTestDef>,
    /// The files it came from (to locate errors found later, at build time).
    pub files: Vec<Arc<SourceFile>>,
}

/// One component as configured.
#[derive(Debug)]
pub struct ComponentDef<C: ?Sized> {
    /// Kind, id and type.
    pub key: ComponentKey,
    /// What it consumes (empty for sources).
    pub inputs: Vec<InputRef>,
    /// Its type-specific options.
    pub options: Box<C>,
    /// The file that defines it.
    pub file: Arc<SourceFile>,
    /// Its table in that file.
    pub span: Range<usize>,
    /// Where each of its options is written, for errors found at build time.
    pub option_spans: OptionSpans,
    /// Its type, options and file, written out in one canonical form: a
    /// reload rebuilds a component only when this changes (however the
    /// TOML was laid out), and rewires it when only its `inputs` change.
    pub fingerprint: String,
}

/// A sink and the buffer in front of it.
#[derive(Debug)]
pub struct SinkDef {
    /// The sink itself.
    pub component: ComponentDef<dyn SinkConfig>,
    /// Its input buffer (`buffer.max_events`, `buffer.when_full`).
    pub buffer: BufferConfig,
    /// Whether the sources feeding it wait for its deliveries
    /// (`acknowledgements.enabled`, or the sink type's default).
    pub acknowledgements: bool,
}

/// One entry of `inputs`, as written (an id, `id.output`, or a glob).
#[derive(Debug, Clone)]
pub struct InputRef {
    /// The text of the entry.
    pub text: String,
    /// Where it is in the file.
    pub span: Range<usize>,
}

/// The result of loading: whatever parsed, the graph if it could be built,
/// and every diagnostic found on the way.
#[derive(Debug)]
pub struct Loaded {
    /// The components that parsed (all of them when there are no errors).
    pub config: Config,
    /// The resolved graph; `None` when inputs could not be resolved.
    pub graph: Option<Graph>,
    /// Errors and warnings, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    /// True when the config has no errors (warnings are fine).
    pub fn is_ok(&self) -> bool {
        self.graph.is_some() && !self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Options shared by every source (documented on each page).
#[allow(dead_code)]
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceEnvelope {
    /// The component type.
    #[serde(rename = "type")]
    pub type_name: String,
}

/// Options shared by every transform (documented on each page).
#[allow(dead_code)]
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransformEnvelope {
    /// The component type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Ids, `id.output`s or globs of the components to consume.
    pub inputs: Vec<String>,
}

/// Options shared by every sink (documented on each page).
#[allow(dead_code)]
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SinkEnvelope {
    /// The component type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Ids, `id.output`s or globs of the components to consume.
    pub inputs: Vec<String>,
    /// The bounded buffer in front of the sink, where events wait while it
    /// delivers.
    #[serde(default)]
    pub buffer: BufferConfig,
    /// Whether sources wait for this sink's deliveries.
    #[serde(default)]
    pub acknowledgements: AcknowledgementsConfig,
}

/// End-to-end acknowledgements of one sink (Vector's model): with them, a
/// source that can act on delivery (the `file` source's checkpoint, the
/// `http_server` source's answer, `stdin`'s exit status) counts an event as
/// done only once this sink has delivered it (or failed for good); without
/// them, once the sink has taken it from its buffer.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgementsConfig {
    /// Make sources wait for this sink's deliveries. On by default for the
    /// sinks that alert (`alertmanager`, `telegram`, `slack`) and for
    /// `webhook` and `nats`; off for `console`, `file` and `blackhole`,
    /// which write locally at once.
    #[schemars(extend("x-default" = "`true` for `alertmanager`, `telegram`, `slack`, `webhook` and `nats`; else `false`"))]
    pub enabled: Option<bool>,
}

/// Reads, interpolates and loads config files (several merge into one
/// topology) against the component types of `registry`. Unreadable files
/// are reported like any other problem.
pub fn load_files(paths: &[PathBuf], registry: &Registry) -> Loaded {
    let mut texts = Vec::new();
    let mut diagnostics = Vec::new();
    for path in paths {
        match read_text(path, "config file") {
            Ok(text) => texts.push((path.clone(), text)),
            Err(error) => diagnostics.push(*error),
        }
    }
    let mut loaded = load_texts(texts, |name| std::env::var(name).ok(), registry);
    diagnostics.append(&mut loaded.diagnostics);
    if diagnostics.iter().any(Diagnostic::is_error) {
        loaded.graph = None;
    }
    loaded.diagnostics = diagnostics;
    loaded
}

/// Loads configs from memory (the embedded demo, tests), with `env` for
/// `${NAME}` lookups.
pub fn load_texts(
    files: Vec<(PathBuf, String)>,
    env: impl Fn(&str) -> Option<String>,
    registry: &Registry,
) -> Loaded {
    load::load(files, env, registry)
}

/// Reads a file holding one component type's options alone, as the loader
/// reads them in a topology (`howl patterns mine --config` reads the
/// `pattern` transform's this way): every problem, each at its position.
pub fn read_options_file<T>(
    path: &Path,
    key: &ComponentKey,
    schema: &crate::components::schema::OptionsSchema,
    parse: impl for<'i> Fn(toml::Spanned<toml::de::DeValue<'i>>) -> Result<T, toml::de::Error>,
) -> Result<T, Vec<Diagnostic>> {
    let text = read_text(path, "options file").map_err(|error| vec![*error])?;
    let file = Arc::new(SourceFile::new(path, text));
    load::read_options(&file, key, schema, parse)
}

/// Reads a file of text (`what` names it in errors); text that is not
/// UTF-8 is reported at its first invalid byte.
fn read_text(path: &Path, what: &str) -> Result<String, Box<Diagnostic>> {
    let bytes = std::fs::read(path).map_err(|error| {
        Diagnostic::error(format!("cannot read {what}: {error}"))
            .in_file(&SourceFile::new(path, String::new()))
    })?;
    decode_utf8(bytes).map_err(|at| {
        Box::new(Diagnostic::error(format!("cannot read {what}: {at}")).at_invalid_utf8(path, &at))
    })
}

/// The default `data_dir`: the service's state directory when systemd
/// gives it one (`StateDirectory=`, which sets `STATE_DIRECTORY`; not
/// `INVOCATION_ID`, which every process systemd starts inherits), else
/// `./data`.
pub fn default_data_dir() -> PathBuf {
    match std::env::var_os("STATE_DIRECTORY") {
        // Several directories are separated by `:`; the first is ours.
        Some(dirs) if !dirs.is_empty() => {
            let dirs = dirs.to_string_lossy().into_owned();
            PathBuf::from(dirs.split(':').next().unwrap_or_default())
        }
        _ => Path::new(".").join("data"),
    }
}
