//! `file`: follow files matching globs, one event per line.
//!
//! Files are polled (every `poll_interval_ms`) rather than watched: polling
//! works on every filesystem, including network and overlay mounts where
//! inotify is unreliable, and costs one `stat` per file per poll. New files
//! matching the globs are picked up as they appear.
//!
//! Files are followed by identity (inode), not by name, so rotation loses
//! and repeats nothing: a file renamed to another matching name
//! (`app.log` → `app.log.1` under `app.log*`) is followed on from where it
//! was; a file renamed away or deleted is read to its end (the lines written
//! just before logrotate moved it) before it is let go; a new file at the
//! old name is read from the start; a file truncated in place
//! (`copytruncate`) is read again from the start.
//!
//! **Checkpoints are acknowledged.** Each chunk read from a file is sent as
//! one batch with a notifier (`event::acks`); a file's checkpoint is the end
//! of the longest run of batches, from its start, that every sink has
//! finished with (delivered, or failed for good, which is counted): never
//! the read position. So a `kill -9` at any moment loses nothing: what was
//! in flight is read again on the next start (duplicates, bounded by what
//! was in flight plus one checkpoint interval, never losses). Checkpoints
//! (offset and inode, to notice a file replaced by another) are saved in the
//! state store every few seconds and at shutdown. At shutdown the source
//! stops reading, lets the pipeline drain, and saves the checkpoints of what
//! was delivered; at the graceful shutdown limit it saves what was
//! acknowledged so far. A file may have at most `MAX_UNACKED_BYTES` read but
//! not acknowledged: beyond it, reading pauses (backpressure that bounds
//! memory and what a restart re-reads). A partial last line is never
//! counted as read.
//!
//! Lines of a file renamed away or deleted while their batches were in
//! flight cannot be read again after a crash; that is the one gap.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use chrono::Utc;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use vrl::value::Value;

use super::lines::{DEFAULT_MAX_LINE_BYTES, LineSplitter};
use crate::components::source::{Source, SourceConfig, SourceContext};
use crate::components::{BuildContext, ComponentFuture};
use crate::diagnostic::BuildError;
use crate::event::acks::{AckQueue, Completed};
use crate::event::{Event, fields, notify_batch};
use crate::internal_events::{ComponentMetrics, ErrorType, Stage};
use crate::options::{Millis, parse_string};

/// Options of the `file` source.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Glob patterns of the files to read, e.g. `/var/log/app/*.log`
    /// (`*` does not cross a `/`; `**` does). A relative pattern is relative
    /// to the directory howl runs in. At least one.
    include: Vec<Glob>,
    /// Glob patterns of files to skip even when `include` matches them,
    /// matched as `include` is: `*` does not cross a `/`, and a leading
    /// `./` is ignored.
    #[serde(default)]
    exclude: Vec<Glob>,
    /// Where to start reading a file found at start-up that has no
    /// checkpoint: `beginning` reads what it already holds, `end` only the
    /// lines written from now on. Files that appear later are always read
    /// from the beginning, and a file with a checkpoint goes on from it.
    #[serde(default)]
    read_from: ReadFrom,
    /// The longest line kept, in bytes; longer lines are cut (at a
    /// character boundary) and counted in `source_lines_truncated_total`.
    #[serde(default = "default_max_line_bytes")]
    max_line_bytes: NonZeroUsize,
    /// How often to check files for new lines and the globs for new files;
    /// a plain number is milliseconds. Each check costs one `stat` per
    /// file.
    #[serde(default = "default_poll_interval")]
    poll_interval_ms: Millis,
}

fn default_max_line_bytes() -> NonZeroUsize {
    DEFAULT_MAX_LINE_BYTES
}

fn default_poll_interval() -> Millis {
    Millis::from_millis(250)
}

/// Where reading starts in a file without a checkpoint.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum ReadFrom {
    /// From the first line.
    #[default]
    Beginning,
    /// From the current end: only lines written from now on.
    End,
}

/// A glob pattern, checked while the config is read so that a bad one is
/// reported at its own position.
#[derive(Debug, Clone)]
struct Glob {
    /// As written: what `include` hands to the directory walk.
    text: String,
    /// As paths found by the walk are matched: `glob` yields `logs/a.log`
    /// for `./logs/*.log`, so a leading `./` is dropped.
    pattern: glob::Pattern,
}

impl<'de> Deserialize<'de> for Glob {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parse_string(deserializer, "a glob pattern", |text| {
            let bare = text.strip_prefix("./").unwrap_or(text);
            glob::Pattern::new(bare)
                .map(|pattern| Self {
                    text: text.to_string(),
                    pattern,
                })
                .map_err(|error| format!("invalid glob `{text}`: {error}"))
        })
    }
}

impl Serialize for Glob {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl JsonSchema for Glob {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Glob".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
}

/// The state table of file checkpoints; keys are `component_id/path`.
const CHECKPOINTS: &str = "file_checkpoints";
/// How often checkpoints are written while running: what a crash makes
/// sinks deliver twice is at most what they delivered in this time, plus
/// what was in flight.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// Bytes read per `read` call.
const CHUNK_BYTES: usize = 64 * 1024;
/// The most a file may have read but not acknowledged before reading it
/// pauses: bounds memory and what a restart reads again.
const MAX_UNACKED_BYTES: u64 = 16 * 1024 * 1024;
/// Chunks read from one file before the others get their turn (and the
/// checkpoint timer is looked at): 1 MiB, so a file with a large backlog
/// neither starves the others nor delays checkpoints.
const CHUNKS_PER_TURN: usize = 16;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
struct Checkpoint {
    offset: u64,
    inode: u64,
}

impl SourceConfig for FileConfig {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        if self.include.is_empty() {
            return Err(
                BuildError::new("`include` needs at least one glob pattern").for_option("include")
            );
        }
        Ok(Box::new(FileSource {
            include: self.include.iter().map(|glob| glob.text.clone()).collect(),
            exclude: self
                .exclude
                .iter()
                .map(|glob| glob.pattern.clone())
                .collect(),
            read_from: self.read_from,
            max_line_bytes: self.max_line_bytes,
            poll_interval: self.poll_interval_ms.positive("poll_interval_ms")?,
        }))
    }
}

struct FileSource {
    include: Vec<String>,
    exclude: Vec<glob::Pattern>,
    read_from: ReadFrom,
    max_line_bytes: NonZeroUsize,
    poll_interval: Duration,
}

struct Tracked {
    file: File,
    inode: u64,
    /// Bytes read from the file.
    offset: u64,
    splitter: LineSplitter,
    /// The batches sent from it, waiting for their acknowledgement.
    acks: AckQueue,
}

impl Tracked {
    fn new(file: File, inode: u64, start: u64, max_line_bytes: NonZeroUsize) -> Self {
        Self {
            file,
            inode,
            offset: start,
            splitter: LineSplitter::new(max_line_bytes),
            acks: AckQueue::new(start),
        }
    }

    /// What may be saved: up to the acknowledged lines, never further.
    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            offset: self.acks.acked(),
            inode: self.inode,
        }
    }

    /// Where the next unsent line starts.
    fn line_start(&self) -> u64 {
        self.offset - self.splitter.pending() as u64
    }

    /// Bytes read but not yet acknowledged.
    fn unacknowledged(&self) -> u64 {
        self.offset.saturating_sub(self.acks.acked())
    }

    /// Goes back to `offset` (the start of a line), forgetting what was
    /// read after it.
    fn rewind(&mut self, offset: u64, max_line_bytes: NonZeroUsize) -> std::io::Result<()> {
        self.file.seek(SeekFrom::Start(offset))?;
        self.offset = offset;
        self.splitter = LineSplitter::new(max_line_bytes);
        Ok(())
    }

    /// Starts over from the beginning (the file was truncated in place):
    /// statuses of batches of the old content must not move the checkpoint.
    fn restart(&mut self, max_line_bytes: NonZeroUsize) -> std::io::Result<()> {
        self.rewind(0, max_line_bytes)?;
        self.acks.reset(0);
        Ok(())
    }
}

/// What became of a file after its turn.
enum Progress {
    /// Keep following it.
    Follow,
    /// Its turn ended with more to read.
    More,
    /// It cannot be read any more: let it go.
    Failed,
}

impl Source for FileSource {
    fn run(self: Box<Self>, mut cx: SourceContext) -> ComponentFuture {
        Box::pin(async move {
            let store = cx.state.store()?;
            let prefix = format!("{}/", cx.key.id());
            let mut checkpoints: HashMap<PathBuf, Checkpoint> = store
                .scan(CHECKPOINTS, &prefix)?
                .into_iter()
                .filter_map(|(key, value)| {
                    let path = PathBuf::from(key.strip_prefix(&prefix)?);
                    Some((path, serde_json::from_slice(&value).ok()?))
                })
                .collect();
            let mut tracked: HashMap<PathBuf, Tracked> = HashMap::new();
            let mut first_scan = true;
            let mut last_checkpoint = Instant::now();
            let mut saved = checkpoints.clone();
            loop {
                let retired = self.scan(&mut tracked, &mut checkpoints, first_scan, &cx);
                first_scan = false;
                let mut more = false;
                // A file rotated away or deleted still has the lines written
                // just before: read them (all of them), then let it go.
                for (path, mut file) in retired {
                    while !cx.shutdown.is_cancelled()
                        && matches!(
                            self.read_file(&path, &mut file, &mut cx).await,
                            Progress::More
                        )
                    {}
                }
                let mut paths: Vec<PathBuf> = tracked.keys().cloned().collect();
                paths.sort();
                for path in paths {
                    if cx.shutdown.is_cancelled() {
                        break;
                    }
                    let Some(file) = tracked.get_mut(&path) else {
                        continue;
                    };
                    match self.read_file(&path, file, &mut cx).await {
                        Progress::Failed => {
                            tracked.remove(&path);
                        }
                        Progress::More => more = true,
                        Progress::Follow => {}
                    }
                }
                for file in tracked.values_mut() {
                    report_undelivered(file.acks.poll(), cx.out.metrics());
                }
                if last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL {
                    save_checkpoints(&store, &prefix, &tracked, &mut saved, cx.out.metrics());
                    last_checkpoint = Instant::now();
                }
                if cx.shutdown.is_cancelled() {
                    break;
                }
                if more {
                    // A backlog: no pause, but let other tasks run.
                    tokio::task::yield_now().await;
                    continue;
                }
                tokio::select! {
                    _ = cx.shutdown.cancelled() => {}
                    _ = tokio::time::sleep(self.poll_interval) => {}
                }
            }
            // Let the pipeline drain (it closes only once every sender is
            // gone), and checkpoint what it delivers.
            let metrics = std::sync::Arc::clone(cx.out.metrics());
            drop(cx.out);
            'drain: for file in tracked.values_mut() {
                loop {
                    tokio::select! {
                        biased;
                        _ = cx.shutdown_limit.cancelled() => break 'drain,
                        completed = file.acks.next() => match completed {
                            Some(completed) => report_undelivered(completed, &metrics),
                            None => break,
                        },
                    }
                }
            }
            save_checkpoints(&store, &prefix, &tracked, &mut saved, &metrics);
            Ok(())
        })
    }
}

/// Counts and logs lines that sinks gave up on or refused: they are not
/// read again (that would only fail again and hold every later line back).
fn report_undelivered(completed: Completed, metrics: &ComponentMetrics) {
    if !completed.all_delivered() {
        metrics.warn_limited(
            "undelivered",
            &format_args!(
                "not every line was delivered: {}; the checkpoint moves past them",
                completed.describe_failures("lines"),
            ),
        );
    }
}

impl FileSource {
    /// Finds matching files and opens new ones; follows renamed ones under
    /// their new name. Returns the files that left (renamed out of the
    /// globs, deleted, or replaced by a new file at their name), still open
    /// so that their last lines can be read.
    fn scan(
        &self,
        tracked: &mut HashMap<PathBuf, Tracked>,
        checkpoints: &mut HashMap<PathBuf, Checkpoint>,
        first_scan: bool,
        cx: &SourceContext,
    ) -> Vec<(PathBuf, Tracked)> {
        let mut seen: Vec<(PathBuf, u64, u64)> = Vec::new();
        for pattern in &self.include {
            let Ok(paths) = glob::glob(pattern) else {
                continue;
            };
            for path in paths.flatten() {
                let options = glob::MatchOptions {
                    require_literal_separator: true,
                    ..glob::MatchOptions::default()
                };
                if self
                    .exclude
                    .iter()
                    .any(|p| p.matches_path_with(&path, options))
                {
                    continue;
                }
                match std::fs::metadata(&path) {
                    Ok(metadata)
                        if metadata.is_file() && !seen.iter().any(|(p, ..)| *p == path) =>
                    {
                        seen.push((path, inode_of(&metadata), metadata.len()));
                    }
                    _ => {}
                }
            }
        }
        // Files no longer found under their name, by inode, until we know
        // whether they reappear under another.
        let left: Vec<PathBuf> = tracked
            .iter()
            .filter(|(path, file)| {
                !seen
                    .iter()
                    .any(|(p, inode, _)| p == *path && *inode == file.inode)
            })
            .map(|(path, _)| path.clone())
            .collect();
        let mut moved: HashMap<u64, (PathBuf, Tracked)> = HashMap::new();
        for path in left {
            if let Some(file) = tracked.remove(&path) {
                moved.insert(file.inode, (path, file));
            }
        }
        for (path, inode, len) in seen {
            if tracked.contains_key(&path) {
                continue;
            }
            if let Some((old, file)) = moved.remove(&inode) {
                tracing::info!(component = %cx.key, from = %old.display(), to = %path.display(), "file was renamed; following it");
                checkpoints.remove(&path);
                tracked.insert(path, file);
                continue;
            }
            let start = match checkpoint_of(checkpoints.remove(&path), inode) {
                // The same file: go on where the last run stopped, or from
                // the start when it was truncated meanwhile.
                Some(offset) if offset <= len => offset,
                Some(_) => 0,
                None if first_scan && self.read_from == ReadFrom::End => len,
                None => 0,
            };
            match open_at(&path, start) {
                Ok(file) => {
                    tracing::debug!(component = %cx.key, path = %path.display(), offset = start, "following file");
                    tracked.insert(path, Tracked::new(file, inode, start, self.max_line_bytes));
                }
                Err(error) => cx.out.metrics().error(
                    ErrorType::OpenFailed,
                    Stage::Receiving,
                    &format_args!("cannot open {}: {error}", path.display()),
                ),
            }
        }
        moved
            .into_values()
            .inspect(|(path, _)| {
                tracing::info!(component = %cx.key, path = %path.display(), "file was rotated away or deleted; reading what is left of it");
            })
            .collect()
    }

    /// Reads everything new in one file and sends it downstream.
    async fn read_file(&self, path: &Path, file: &mut Tracked, cx: &mut SourceContext) -> Progress {
        let path_value = Value::from(path.to_string_lossy().as_ref());
        let host = Value::from(cx.host.as_ref());
        let source_id = cx.key.shared_id();
        for _ in 0..CHUNKS_PER_TURN {
            if let Ok(metadata) = file.file.metadata()
                && metadata.len() < file.offset
            {
                tracing::info!(component = %cx.key, path = %path.display(), "file was truncated; reading from the start");
                if file.restart(self.max_line_bytes).is_err() {
                    return Progress::Failed;
                }
            }
            if file.unacknowledged() >= MAX_UNACKED_BYTES {
                // Sinks are behind: wait for their acknowledgements.
                return Progress::Follow;
            }
            let before = file.line_start();
            let mut buffer = BytesMut::zeroed(CHUNK_BYTES);
            let read = match file.file.read(&mut buffer) {
                Ok(0) => return Progress::Follow,
                Ok(read) => read,
                Err(error) => {
                    cx.out.metrics().error(
                        ErrorType::ReadFailed,
                        Stage::Receiving,
                        &format_args!("cannot read {}: {error}", path.display()),
                    );
                    return Progress::Failed;
                }
            };
            buffer.truncate(read);
            file.offset += read as u64;
            let now = Utc::now();
            let mut events = Vec::new();
            let (mut bytes, mut truncated) = (0, 0);
            file.splitter.push(buffer.freeze(), |(line, cut)| {
                bytes += line.len();
                truncated += usize::from(cut);
                let mut event = Event::log(line, now, "file").with_source_id(source_id.clone());
                event.insert_field(fields::HOST, host.clone());
                event.insert_field("file", path_value.clone());
                events.push(event);
            });
            cx.out.metrics().received(events.len(), bytes);
            cx.out
                .metrics()
                .truncated(truncated, self.max_line_bytes.get());
            if events.is_empty() {
                continue; // only part of a line so far
            }
            let count = events.len();
            let status = notify_batch(&mut events);
            tokio::select! {
                biased;
                _ = cx.shutdown.cancelled() => {
                    // Not handed over: the next run reads these lines again
                    // (their notifier is dropped unwaited for).
                    return match file.rewind(before, self.max_line_bytes) {
                        Ok(()) => Progress::Follow,
                        Err(_) => Progress::Failed,
                    };
                }
                _ = cx.out.send(events) => {}
            }
            // Waited for only once sent: a batch that never left must not
            // hold the checkpoint.
            file.acks.push(file.line_start(), count, status);
        }
        Progress::More
    }
}

/// The saved offset of a checkpoint, when it is of this file (`inode`).
fn checkpoint_of(checkpoint: Option<Checkpoint>, inode: u64) -> Option<u64> {
    checkpoint
        .filter(|checkpoint| checkpoint.inode == inode)
        .map(|checkpoint| checkpoint.offset)
}

fn open_at(path: &Path, offset: u64) -> std::io::Result<File> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    Ok(file)
}

#[cfg(unix)]
fn inode_of(metadata: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(metadata)
}

#[cfg(not(unix))]
fn inode_of(_metadata: &std::fs::Metadata) -> u64 {
    0
}

/// Writes the checkpoints that changed since the last save, and forgets
/// files that are gone.
fn save_checkpoints(
    store: &crate::state::StateStore,
    prefix: &str,
    tracked: &HashMap<PathBuf, Tracked>,
    saved: &mut HashMap<PathBuf, Checkpoint>,
    metrics: &ComponentMetrics,
) {
    let current: HashMap<PathBuf, Checkpoint> = tracked
        .iter()
        .map(|(path, file)| (path.clone(), file.checkpoint()))
        .collect();
    let key = |path: &Path| format!("{prefix}{}", path.display());
    let put: Vec<(String, Vec<u8>)> = current
        .iter()
        .filter(|(path, checkpoint)| saved.get(*path) != Some(checkpoint))
        .filter_map(|(path, checkpoint)| Some((key(path), serde_json::to_vec(checkpoint).ok()?)))
        .collect();
    let delete: Vec<String> = saved
        .keys()
        .filter(|path| !current.contains_key(*path) && !path.exists())
        .map(|path| key(path))
        .collect();
    if put.is_empty() && delete.is_empty() {
        return;
    }
    match store.write(CHECKPOINTS, &put, &delete) {
        Ok(()) => *saved = current,
        Err(error) => metrics.error(
            ErrorType::CheckpointFailed,
            Stage::Receiving,
            &format_args!("cannot save file checkpoints: {error}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::{build_failure, parse_error};

    #[test]
    fn a_bad_glob_is_refused_while_reading_at_its_own_item() {
        let (message, at) = parse_error::<FileConfig>("include = [\"a.log\", \"[\"]");
        assert!(message.contains("invalid glob `[`"), "{message}");
        assert_eq!(at, "\"[\"");
        let (message, at) = parse_error::<FileConfig>("include = [\"a.log\"]\nexclude = [\"**a\"]");
        assert!(message.contains("invalid glob `**a`"), "{message}");
        assert_eq!(at, "\"**a\"");
    }

    #[test]
    fn excludes_drop_a_leading_dot_slash_as_the_directory_walk_does() {
        let config: FileConfig =
            toml::from_str("include = [\"logs/*.log\"]\nexclude = [\"./logs/debug-*.log\"]")
                .unwrap();
        assert!(config.exclude[0].pattern.matches("logs/debug-1.log"));
        assert_eq!(config.include[0].text, "logs/*.log");
    }

    #[test]
    fn the_poll_interval_takes_units_and_plain_milliseconds() {
        let poll = |options: &str| {
            toml::from_str::<FileConfig>(&format!("include = [\"a\"]\n{options}"))
                .unwrap()
                .poll_interval_ms
                .get()
        };
        assert_eq!(poll("poll_interval_ms = 50"), Duration::from_millis(50));
        assert_eq!(poll("poll_interval_ms = \"2s\""), Duration::from_secs(2));
        assert_eq!(poll(""), Duration::from_millis(250));
    }

    #[test]
    fn empty_includes_and_a_zero_poll_interval_point_at_their_option() {
        let error = build_failure::<FileConfig>("include = []");
        assert!(error.message.contains("at least one glob"), "{error}");
        assert_eq!(error.option.as_deref(), Some("include"));
        let error = build_failure::<FileConfig>("include = [\"a\"]\npoll_interval_ms = 0");
        assert!(
            error
                .message
                .contains("`poll_interval_ms` must be more than 0"),
            "{error}"
        );
        assert_eq!(error.option.as_deref(), Some("poll_interval_ms"));
        let (message, _) = parse_error::<FileConfig>("include = [\"a\"]\nmax_line_bytes = 0");
        assert!(message.contains("nonzero"), "{message}");
    }
}
