//! `howl patterns`: the miner without a pipeline, for CI and for looking
//! into a running howl's pattern store.
//!
//! - `mine`: learn patterns from lines of a file or stdin; `--format jsonl`
//!   prints one object per input line, `table` the patterns by count. On a
//!   terminal, stderr shows a progress bar (bytes, lines/s, ETA when the
//!   size is known).
//!   `--data-dir` starts from and saves to a store, so a CI job can mine a
//!   build log on top of the store its main branch built.
//! - `list`: the patterns in a store (every pattern space of every
//!   `pattern` transform, and `mine`'s).
//! - `diff`: new, gone and spiking patterns between two stores; exit 1 when
//!   something is new (a CI gate), 2 on a usage or reading error.
//! - `train`: learn a past window from a config's query sources (see
//!   [`super::train`]).
//!
//! A pattern counts as known in `diff` when the baseline has its id *or*
//! the baseline's miners classify its sample lines as a known pattern: ids
//! come from the line that created a pattern, so the same template learned
//! from different first lines can carry different ids in two stores.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Read, Write};

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, Subcommand, ValueEnum};

use super::progress::{self, Progress};
use crate::component_key::{ComponentKey, ComponentKind};
use crate::components::registry::WithShared;
use crate::components::schema::OptionsSchema;
use crate::patterns::{Miner, MinerConfig, Observation, PatternView};
use crate::state::StateStore;
use crate::state::patterns::{CLI_NAMESPACE, SavedSpace, load_spaces, restore, save_spaces};
use crate::transforms::PatternConfig;

/// Arguments of `howl patterns`.
#[derive(Debug, Args)]
pub struct PatternsArgs {
    #[command(subcommand)]
    command: PatternsCommand,
}

#[derive(Debug, Subcommand)]
enum PatternsCommand {
    /// Mine patterns from one message per line (a file, or stdin with `-`).
    Mine(MineArgs),
    /// List the patterns in a store.
    List(ListArgs),
    /// Compare two stores: new, gone and spiking patterns (exit 1 if any is new).
    Diff(DiffArgs),
    /// Learn the patterns of a past window from a config's query sources
    /// (`loki_query`, `sql`) into its data_dir, without sinks or alerts.
    Train(super::train::TrainArgs),
}

#[derive(Debug, Args)]
struct MineArgs {
    /// The input, one message per line; `-` or nothing for stdin.
    input: Option<PathBuf>,
    /// `jsonl`: one `{"line","id","template","new"}` object per input line;
    /// `table`: the patterns by count, with a sample.
    #[arg(long, value_enum, default_value_t = MineFormat::Table)]
    format: MineFormat,
    /// Miner options in TOML: the options of the `pattern` transform
    /// (`masks`, `disable_builtin_masks`, `similarity`, ...).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Start from, and save to, the pattern store in this directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MineFormat {
    Table,
    Jsonl,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// The directory holding the store (a `data_dir`).
    #[arg(long)]
    data_dir: PathBuf,
    /// Only patterns first seen within this long, e.g. `1h`, `7d`.
    #[arg(long, value_parser = parse_duration)]
    new_since: Option<std::time::Duration>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    format: ListFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ListFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
struct DiffArgs {
    /// The reference store (e.g. built on the main branch).
    #[arg(long)]
    baseline: PathBuf,
    /// The store to judge.
    #[arg(long)]
    current: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    format: ListFormat,
    /// Miner options in TOML (as for `mine`), used to classify samples.
    #[arg(long)]
    config: Option<PathBuf>,
    /// A pattern spikes when its share of lines is at least this many times
    /// its share in the baseline.
    #[arg(long, default_value_t = 5.0)]
    spike_factor: f64,
    /// ... and it has at least this many lines.
    #[arg(long, default_value_t = 20)]
    spike_min_count: u64,
}

pub(super) fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    crate::options::duration::parse_duration(text)
}

/// Exit code for usage and I/O errors (1 means "new patterns" in `diff`).
const EXIT_ERROR: u8 = 2;

/// Runs a `howl patterns` subcommand.
pub fn patterns(args: PatternsArgs) -> ExitCode {
    let result = match args.command {
        PatternsCommand::Mine(args) => mine(args),
        PatternsCommand::List(args) => list(args),
        PatternsCommand::Diff(args) => diff(args),
        PatternsCommand::Train(args) => super::train::train(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// The options an options file may hold: the `pattern` transform's.
type PatternOptions = WithShared<PatternConfig, MinerConfig>;

/// The miner settings of an options file: the `pattern` transform's options
/// (its own ones are accepted, and checked, so one file serves both), read
/// as a topology's would be. A bad file is reported like a bad config:
/// every problem at its position, exit 78.
fn miner_config(path: Option<&Path>) -> anyhow::Result<Result<MinerConfig, ExitCode>> {
    let Some(path) = path else {
        return Ok(Ok(MinerConfig::default()));
    };
    let key = ComponentKey::new(ComponentKind::Transform, "options", "pattern");
    let schema = OptionsSchema::new(PatternOptions::schema());
    match crate::config::read_options_file(path, &key, &schema, |value| {
        PatternOptions::parse(value)
    }) {
        Ok(options) => Ok(Ok(options.shared)),
        Err(diagnostics) => {
            super::report(&diagnostics);
            Ok(Err(ExitCode::from(super::EXIT_CONFIG)))
        }
    }
}

/// Opens an existing store (refusing to create one where the user expected
/// data).
fn open_existing(dir: &Path) -> anyhow::Result<StateStore> {
    if !dir.join(crate::state::DB_FILE).exists() {
        anyhow::bail!(
            "no pattern store in {} (expected {})",
            dir.display(),
            crate::state::DB_FILE
        );
    }
    Ok(StateStore::open(dir)?)
}

fn mine(args: MineArgs) -> anyhow::Result<ExitCode> {
    let config = match miner_config(args.config.as_deref())? {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let store = args.data_dir.as_deref().map(StateStore::open).transpose()?;
    let mut miner = match &store {
        Some(store) => match cli_space(store)? {
            Some(saved) => restore(&config, saved)?,
            None => Miner::new(config.clone())?,
        },
        None => Miner::new(config.clone())?,
    };
    let (input, size): (Box<dyn Read>, Option<u64>) = match args.input.as_deref() {
        None => (Box::new(std::io::stdin().lock()), stdin_size()),
        Some(path) if path == Path::new("-") => (Box::new(std::io::stdin().lock()), stdin_size()),
        Some(path) => {
            let file = std::fs::File::open(path)
                .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
            let size = file
                .metadata()
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len());
            (Box::new(file), size)
        }
    };
    // JSON lines streaming to the same terminal would tear the bar apart,
    // and someone typing lines needs no bar.
    let streaming_to_screen =
        matches!(args.format, MineFormat::Jsonl) && std::io::stdout().is_terminal();
    let typing =
        args.input.as_deref().is_none_or(|p| p == Path::new("-")) && std::io::stdin().is_terminal();
    let mut progress = Progress::bytes(
        "mining",
        size,
        progress::stderr_is_terminal() && !streaming_to_screen && !typing,
    );
    let mut reader = BufReader::with_capacity(256 * 1024, input);
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(256 * 1024, stdout.lock());
    let mut line = Vec::with_capacity(1024);
    let mut number: u64 = 0;
    let mut now_ms = Utc::now().timestamp_millis();
    let mut output_closed = false;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        number += 1;
        progress.line(line.len() as u64);
        if number.is_multiple_of(4096) {
            now_ms = Utc::now().timestamp_millis();
        }
        let text = trim_newline(&line);
        let text = String::from_utf8_lossy(text);
        let observation = miner.observe(&text, None, now_ms);
        if let (MineFormat::Jsonl, false) = (args.format, output_closed) {
            let written = write_jsonl(&mut out, number, &observation);
            if let Err(error) = written {
                // Nobody reads any more: finish mining (the store must hold
                // every line) without printing.
                broken_pipe_is_fine(error)?;
                output_closed = true;
            }
        }
    }
    progress.finish();
    if let Some(store) = &store {
        save_spaces(store, CLI_NAMESPACE, [("", &miner)])?;
    }
    if output_closed {
        return Ok(ExitCode::SUCCESS);
    }
    if let MineFormat::Table = args.format {
        let mut patterns: Vec<PatternView<'_>> = miner.patterns().collect();
        patterns.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then(a.first_seen_ms.cmp(&b.first_seen_ms))
        });
        if let Err(error) = write_table(&mut out, patterns.iter().map(|p| Row::from_view(p, ""))) {
            return broken_pipe_is_fine(error);
        }
    }
    if let Err(error) = out.flush() {
        return broken_pipe_is_fine(error);
    }
    Ok(ExitCode::SUCCESS)
}

/// The size of stdin when it is a file (`howl patterns mine < app.log`),
/// for a bar with an ETA; `None` for a pipe or a terminal.
fn stdin_size() -> Option<u64> {
    std::fs::metadata("/dev/stdin")
        .ok()
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.len())
}

fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn broken_pipe_is_fine(error: std::io::Error) -> anyhow::Result<ExitCode> {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(error.into())
    }
}

/// One line's result; `parent` only for a pattern split off another.
fn write_jsonl(
    out: &mut impl Write,
    line: u64,
    observation: &Observation<'_>,
) -> std::io::Result<()> {
    let id = observation.id;
    write!(out, "{{\"line\":{line},\"id\":\"{id}\",\"template\":")?;
    serde_json::to_writer(&mut *out, observation.template)?;
    write!(out, ",\"new\":{}", observation.is_new)?;
    if let Some(parent) = observation.parent {
        write!(out, ",\"parent\":\"{parent}\"")?;
    }
    writeln!(out, "}}")
}

/// One pattern, for tables and JSON.
#[derive(Debug, Clone, serde::Serialize)]
struct Row {
    #[serde(skip_serializing_if = "String::is_empty")]
    space: String,
    id: String,
    count: u64,
    level: String,
    first_seen: String,
    last_seen: String,
    template: String,
    samples: Vec<String>,
    /// The pattern this one split off from.
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<String>,
}

impl Row {
    fn from_view(view: &PatternView<'_>, space: &str) -> Self {
        Self {
            space: space.to_string(),
            id: view.id.to_string(),
            count: view.count,
            level: view.level.as_str().to_string(),
            first_seen: time(view.first_seen_ms),
            last_seen: time(view.last_seen_ms),
            template: view.template.to_string(),
            samples: view.samples.to_vec(),
            parent: view.parent.map(|p| p.to_string()),
        }
    }
}

fn time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn write_table(out: &mut impl Write, rows: impl Iterator<Item = Row>) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>9}  {:<16}  {:<7}  template / sample",
        "count", "id", "level"
    )?;
    for row in rows {
        let space = if row.space.is_empty() {
            String::new()
        } else {
            format!("[{}] ", row.space)
        };
        writeln!(
            out,
            "{:>9}  {:<16}  {:<7}  {space}{}",
            row.count, row.id, row.level, row.template
        )?;
        if let Some(parent) = &row.parent {
            writeln!(
                out,
                "{:>9}  {:<16}  {:<7}    split from {parent}",
                "", "", ""
            )?;
        }
        if let Some(sample) = row.samples.first() {
            writeln!(
                out,
                "{:>9}  {:<16}  {:<7}    e.g. {}",
                "",
                "",
                "",
                shorten(sample, 160)
            )?;
        }
    }
    Ok(())
}

fn shorten(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// The space `howl patterns mine` learnt into this store before, if any.
fn cli_space(store: &StateStore) -> anyhow::Result<Option<SavedSpace>> {
    Ok(load_spaces(store, Some(CLI_NAMESPACE))?
        .into_iter()
        .find(|s| s.scope.is_empty()))
}

/// Every pattern space of a store, restored.
fn spaces(dir: &Path, config: &MinerConfig) -> anyhow::Result<Vec<(String, Miner)>> {
    let store = open_existing(dir)?;
    load_spaces(&store, None)?
        .into_iter()
        .map(|saved| {
            let name = if saved.scope.is_empty() {
                saved.namespace.clone()
            } else {
                format!("{}/{}", saved.namespace, saved.scope)
            };
            Ok((name, restore(config, saved)?))
        })
        .collect()
}

/// The settings to read a saved store with: the user's (or default) ones,
/// but never evicting, so a store saved with a larger `max_patterns` is
/// read whole.
pub(super) fn reading(config: MinerConfig) -> MinerConfig {
    MinerConfig {
        max_patterns: usize::MAX,
        ..config
    }
}

fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let spaces = spaces(&args.data_dir, &reading(MinerConfig::default()))?;
    let since = args
        .new_since
        .map(|d| Utc::now().timestamp_millis() - d.as_millis().min(i64::MAX as u128) as i64);
    let mut rows: Vec<Row> = spaces
        .iter()
        .flat_map(|(space, miner)| miner.patterns().map(move |p| (space, p)))
        .filter(|(_, p)| since.is_none_or(|since| p.first_seen_ms >= since))
        .map(|(space, p)| Row::from_view(&p, space))
        .collect();
    rows.sort_by(|a, b| b.count.cmp(&a.count).then(a.id.cmp(&b.id)));
    let mut out = std::io::stdout().lock();
    let written = match args.format {
        ListFormat::Table => write_table(&mut out, rows.into_iter()),
        ListFormat::Json => serde_json::to_writer_pretty(&mut out, &rows)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out)),
    };
    match written {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(error) => broken_pipe_is_fine(error),
    }
}

/// One side of a diff: every pattern with its share of all lines.
struct Side {
    miners: Vec<(String, Miner)>,
    total: u64,
}

impl Side {
    fn load(dir: &Path, config: &MinerConfig) -> anyhow::Result<Self> {
        let miners = spaces(dir, config)?;
        let total = miners
            .iter()
            .flat_map(|(_, m)| m.patterns())
            .map(|p| p.count)
            .sum();
        Ok(Self { miners, total })
    }

    fn rows(&self) -> Vec<Row> {
        self.miners
            .iter()
            .flat_map(|(space, miner)| miner.patterns().map(move |p| Row::from_view(&p, space)))
            .collect()
    }

    /// The id of the pattern `row` stands for in this side's space of the
    /// same name, by id or by classifying its samples. Spaces are compared
    /// one to one: a line new to a scope is new there, even when another
    /// scope knows it.
    fn find(&mut self, row: &Row, ids: &HashSet<(String, String)>) -> Option<String> {
        if ids.contains(&(row.space.clone(), row.id.clone())) {
            return Some(row.id.clone());
        }
        let (_, miner) = self
            .miners
            .iter_mut()
            .find(|(space, _)| *space == row.space)?;
        row.samples
            .iter()
            .find_map(|sample| miner.lookup(sample).map(|found| found.id.to_string()))
    }
}

fn diff(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let config = match miner_config(args.config.as_deref())? {
        Ok(config) => reading(config),
        Err(code) => return Ok(code),
    };
    let mut baseline = Side::load(&args.baseline, &config)?;
    let mut current = Side::load(&args.current, &config)?;
    let baseline_rows = baseline.rows();
    let current_rows = current.rows();
    let keys = |rows: &[Row]| -> HashSet<(String, String)> {
        rows.iter()
            .map(|r| (r.space.clone(), r.id.clone()))
            .collect()
    };
    let baseline_ids = keys(&baseline_rows);
    let current_ids = keys(&current_rows);
    let baseline_counts: BTreeMap<(&str, &str), u64> = baseline_rows
        .iter()
        .map(|r| ((r.space.as_str(), r.id.as_str()), r.count))
        .collect();

    let mut new = Vec::new();
    let mut spiking = Vec::new();
    for row in &current_rows {
        match baseline.find(row, &baseline_ids) {
            None => new.push(row.clone()),
            Some(id) => {
                let before = baseline_counts
                    .get(&(row.space.as_str(), id.as_str()))
                    .copied()
                    .unwrap_or(0);
                let share_now = row.count as f64 / current.total.max(1) as f64;
                let share_before = before as f64 / baseline.total.max(1) as f64;
                if row.count >= args.spike_min_count
                    && before > 0
                    && share_now >= args.spike_factor * share_before
                {
                    spiking.push(serde_json::json!({"pattern": row, "baseline_count": before}));
                }
            }
        }
    }
    let gone: Vec<Row> = baseline_rows
        .iter()
        .filter(|row| current.find(row, &current_ids).is_none())
        .cloned()
        .collect();

    let mut out = std::io::stdout().lock();
    let written = match args.format {
        ListFormat::Json => serde_json::to_writer_pretty(
            &mut out,
            &serde_json::json!({"new": new, "gone": gone, "spiking": spiking}),
        )
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(out)),
        ListFormat::Table => (|| {
            // An empty list is its count line alone, not a table header.
            writeln!(out, "new patterns: {}", new.len())?;
            if !new.is_empty() {
                write_table(&mut out, new.iter().cloned())?;
            }
            writeln!(out, "\ngone patterns: {}", gone.len())?;
            if !gone.is_empty() {
                write_table(&mut out, gone.iter().cloned())?;
            }
            writeln!(out, "\nspiking patterns: {}", spiking.len())?;
            for spike in &spiking {
                writeln!(
                    out,
                    "{:>9}  {:<16}  (baseline {})  {}",
                    spike["pattern"]["count"],
                    spike["pattern"]["id"].as_str().unwrap_or(""),
                    spike["baseline_count"],
                    spike["pattern"]["template"].as_str().unwrap_or("")
                )?;
            }
            Ok(())
        })(),
    };
    // The verdict does not depend on anyone reading the report (a CI gate
    // piping it into `head` must still fail).
    let verdict = if new.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    if let Err(error) = written {
        broken_pipe_is_fine(error)?;
    }
    Ok(verdict)
}
