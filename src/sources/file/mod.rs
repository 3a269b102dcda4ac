//! `file`: follow files matching globs, one event per line.
//!
//! Files are polled (every `poll_interval_ms`) rather than watched: polling
//! works on every filesystem, including network and overlay mounts where
//! inotify is unreliable, and costs one `stat` and one read of the first
//! bytes per file per poll. New files matching the globs are picked up as
//! they appear.
//!
//! **Which file is which.** A file is known by its fingerprint
//! (`fingerprint`: a checksum of its first bytes; device and inode for a
//! file shorter than that), not by its name: while howl runs, a file
//! renamed to another matching name (`app.log` → `app.log.1` under
//! `app.log*`) is followed on from where it was; a file renamed away or
//! deleted is read to its end (the lines written just before logrotate
//! moved it) before it is let go; a new file at the old name is read from
//! the start; a file truncated in place (`copytruncate`), noticed because
//! it got shorter than what was read *or* its first bytes changed, is read
//! again from the start. Across restarts the same holds, because
//! checkpoints are kept by fingerprint (`checkpoints`): a file found under
//! another name goes on from its checkpoint, a new file that got an old
//! inode is read from its start.
//!
//! A listing, `stat` or `open` that fails (too many open files, a
//! permission) is not a file gone: files and checkpoints are kept as they
//! are and looked for again at the next poll.
//!
//! **Checkpoints are acknowledged.** Each chunk read from a file is sent as
//! one batch with a notifier (`event::acks`); a file's checkpoint is the end
//! of the longest run of batches, from its start, that every sink has
//! finished with (delivered, or failed for good, which is counted): never
//! the read position. So a `kill -9` at any moment loses nothing: what was
//! in flight is read again on the next start (duplicates, bounded by what
//! was in flight plus one checkpoint interval, never losses). Checkpoints
//! are saved in the state store every second and at shutdown. At shutdown
//! the source stops reading, lets the pipeline drain, and saves the
//! checkpoints of what was delivered; at the graceful shutdown limit it
//! saves what was acknowledged so far. A file may have at most
//! `MAX_UNACKED_BYTES` read but not acknowledged: beyond it, reading pauses
//! (backpressure that bounds memory and what a restart re-reads). A partial
//! last line is never counted as read.
//!
//! Lines of a file renamed away or deleted while their batches were in
//! flight cannot be read again after a crash; nor can lines written to a
//! file after its last checkpoint when it is rotated out of the globs while
//! howl is down.

mod checkpoints;
mod fingerprint;

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use chrono::Utc;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use vrl::value::Value;

use self::checkpoints::{Checkpoint, Checkpoints};
use self::fingerprint::{Fingerprint, Head, Identity, Window, identity};
use super::decoding::{Decoder, DecodingConfig, FramingConfig, SourceDecoder};
use super::lines::{DEFAULT_MAX_LINE_BYTES, LineSplitter};
use crate::components::source::{Source, SourceConfig, SourceContext};
use crate::components::{BuildContext, ComponentFuture};
use crate::diagnostic::BuildError;
use crate::event::acks::{AckQueue, Completed};
use crate::event::{fields, notify_batch};
use crate::internal_events::{ComponentMetrics, ErrorType, Stage};
use crate::options::{Millis, parse_string};

/// Options of the `file` source.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Glob patterns of the files to read, e.g. `/var/log/app/*.log`
    /// (`*` does not cross a `/`; `**` does). A relative pattern is relative
    /// to the directory howl runs in. At least one.
    #[schemars(extend("x-placeholder" = ["/var/log/app/*.log"]))]
    include: Vec<Glob>,
    /// Glob patterns of files to skip even when `include` matches them,
    /// matched as `include` is: `*` does not cross a `/`, and a leading
    /// `./` is ignored.
    #[serde(default)]
    exclude: Vec<Glob>,
    /// Where to start reading a file found at start-up that has no
    /// checkpoint: `beginning` reads what it already holds, `end` only the
    /// lines written from now on. Files that appear later are always read
    /// from the beginning, and a file with a checkpoint goes on from it. A
    /// file without a checkpoint at a path that had one (a file that
    /// replaced, while howl was down, one it was reading) is read from the
    /// beginning too.
    #[serde(default)]
    read_from: ReadFrom,
    /// The longest line kept, in bytes; longer lines are cut (at a
    /// character boundary) and counted in `source_lines_truncated_total`.
    #[serde(default = "default_max_line_bytes")]
    max_line_bytes: NonZeroUsize,
    /// How each line becomes an event.
    #[serde(default)]
    decoding: DecodingConfig,
    /// How a file is cut into frames (a checkpoint always lies at the end
    /// of a frame).
    #[serde(default)]
    framing: FramingConfig,
    /// How often to check files for new lines and the globs for new files;
    /// a plain number is milliseconds. Each check costs one `stat` per
    /// file.
    #[serde(default = "default_poll_interval")]
    poll_interval_ms: Millis,
    /// How a file is recognised, whatever its name: by a checksum of its
    /// first bytes.
    #[serde(default)]
    fingerprint: FingerprintConfig,
}

/// How a file is recognised.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct FingerprintConfig {
    /// How many bytes of a file's head its checksum (CRC32C) covers. Files
    /// whose first this many bytes (after `ignored_header_bytes`) are the
    /// same are taken to be the same file, so make it long enough to reach
    /// something that differs, like a timestamp. A file shorter than this
    /// is known by its device and inode (and the bytes it has) until it is
    /// this long. At most 65536. Changing it makes every file new (read
    /// again from its start).
    #[serde(default = "default_fingerprint_bytes")]
    bytes: NonZeroUsize,
    /// Bytes at the start of every file left out of the checksum: for
    /// files that all begin with the same header. Changing it makes every
    /// file new (read again from its start).
    #[serde(default)]
    ignored_header_bytes: u64,
}

impl Default for FingerprintConfig {
    fn default() -> Self {
        Self {
            bytes: default_fingerprint_bytes(),
            ignored_header_bytes: 0,
        }
    }
}

fn default_fingerprint_bytes() -> NonZeroUsize {
    NonZeroUsize::new(256).expect("not zero")
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
/// The longest fingerprint window: its head is read at every poll.
const MAX_FINGERPRINT_BYTES: usize = 64 * 1024;

impl SourceConfig for FileConfig {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        if self.include.is_empty() {
            return Err(
                BuildError::new("`include` needs at least one glob pattern").for_option("include")
            );
        }
        if self.fingerprint.bytes.get() > MAX_FINGERPRINT_BYTES {
            return Err(BuildError::new(format!(
                "`fingerprint.bytes` may be at most {MAX_FINGERPRINT_BYTES}"
            ))
            .for_option("fingerprint.bytes"));
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
            delimiter: self.framing.stream_delimiter()?,
            decoder: Decoder::new(self.decoding, "file"),
            poll_interval: self.poll_interval_ms.positive("poll_interval_ms")?,
            window: Window {
                ignored: self.fingerprint.ignored_header_bytes,
                bytes: self.fingerprint.bytes,
            },
        }))
    }
}

struct FileSource {
    include: Vec<String>,
    exclude: Vec<glob::Pattern>,
    read_from: ReadFrom,
    max_line_bytes: NonZeroUsize,
    /// Where frames end (`\n` for lines).
    delimiter: u8,
    decoder: Decoder,
    poll_interval: Duration,
    window: Window,
}

struct Tracked {
    file: File,
    id: Identity,
    fingerprint: Fingerprint,
    /// Bytes read from the file.
    offset: u64,
    splitter: LineSplitter,
    /// The batches sent from it, waiting for their acknowledgement.
    acks: AckQueue,
    /// The fingerprint and checkpoint of what the file held before it was
    /// truncated, for a copy of it that may turn up.
    left_behind: Option<(Fingerprint, u64)>,
}

impl Tracked {
    fn new(
        file: File,
        id: Identity,
        fingerprint: Fingerprint,
        start: u64,
        splitter: LineSplitter,
    ) -> Self {
        Self {
            file,
            id,
            fingerprint,
            offset: start,
            splitter,
            acks: AckQueue::new(start),
            left_behind: None,
        }
    }

    /// What may be saved: up to the acknowledged lines, never further.
    fn checkpoint(&self, path: &Path) -> Checkpoint {
        Checkpoint {
            offset: self.acks.acked(),
            path: path.to_path_buf(),
            fingerprint: self.fingerprint,
        }
    }

    /// Where the next unsent line starts.
    fn line_start(&self) -> u64 {
        self.offset - self.splitter.pending() as u64
    }

    /// Bytes of complete frames read but not yet acknowledged. Not the
    /// unfinished frame: nothing can acknowledge it before its delimiter
    /// comes (reading on is what finds it), and the splitter bounds what
    /// it holds of it, so a frame longer than the limit must not stop the
    /// file for good.
    fn unacknowledged(&self) -> u64 {
        self.line_start().saturating_sub(self.acks.acked())
    }

    /// Goes back to `offset` (the start of a line), forgetting what was
    /// read after it.
    fn rewind(&mut self, offset: u64) -> std::io::Result<()> {
        self.file.seek(SeekFrom::Start(offset))?;
        self.offset = offset;
        self.splitter = self.splitter.fresh();
        Ok(())
    }

    /// Starts over from the beginning (the file was truncated in place):
    /// statuses of batches of the old content must not move the checkpoint.
    fn restart(&mut self, head: &Head, source: &FileSource) -> std::io::Result<Completed> {
        // What was acknowledged up to now, for a copy of the old content.
        let completed = self.acks.poll();
        self.left_behind = Some((self.fingerprint, self.acks.acked()));
        self.rewind(0)?;
        self.acks.reset(0);
        self.fingerprint = head.fingerprint(source.window);
        Ok(completed)
    }

    /// Looks at the file's head: when it is no longer the head it had, the
    /// file was truncated and written again, maybe to beyond where it was
    /// read (within one poll): start over. Else its fingerprint grows with
    /// it. Returns what completed before it starts over, when it does.
    fn check_head(&mut self, source: &FileSource) -> std::io::Result<Option<Completed>> {
        let head = Head::read(&self.file, self.id, source.window)?;
        let len = self.file.metadata()?.len();
        if len < self.offset || !head.matches(&self.fingerprint, source.window) {
            return self.restart(&head, source).map(Some);
        }
        self.fingerprint = head.fingerprint(source.window);
        Ok(None)
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
            let mut checkpoints = Checkpoints::load(store, cx.key.id(), self.window)?;
            let mut tracked: HashMap<PathBuf, Tracked> = HashMap::new();
            let mut first_scan = true;
            let mut last_checkpoint = Instant::now();
            let mut warned_empty: Option<Instant> = None;
            loop {
                let retired = self.scan(&mut tracked, &mut checkpoints, first_scan, &cx);
                first_scan = false;
                self.warn_while_empty(
                    tracked.is_empty() && retired.is_empty(),
                    &mut warned_empty,
                    &cx,
                );
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
                    leave(&mut checkpoints, &path, &mut file);
                    report_undelivered(file.acks.poll(), cx.out.metrics());
                    checkpoints.leave(file.checkpoint(&path));
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
                    let progress = self.read_file(&path, file, &mut cx).await;
                    leave(&mut checkpoints, &path, file);
                    match progress {
                        Progress::Failed => {
                            // Found again (and going on from here) at the
                            // next poll, if it can be read then.
                            if let Some(mut file) = tracked.remove(&path) {
                                report_undelivered(file.acks.poll(), cx.out.metrics());
                                checkpoints.leave(file.checkpoint(&path));
                            }
                        }
                        Progress::More => more = true,
                        Progress::Follow => {}
                    }
                }
                for file in tracked.values_mut() {
                    report_undelivered(file.acks.poll(), cx.out.metrics());
                }
                if last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL {
                    save(&mut checkpoints, &tracked, cx.out.metrics());
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
            save(&mut checkpoints, &tracked, &metrics);
            Ok(())
        })
    }
}

/// Keeps the checkpoint of what a truncated file held before, for a copy
/// of it (`copytruncate` under a glob that matches the copy).
fn leave(checkpoints: &mut Checkpoints, path: &Path, file: &mut Tracked) {
    if let Some((fingerprint, offset)) = file.left_behind.take() {
        checkpoints.leave(Checkpoint {
            offset,
            path: path.to_path_buf(),
            fingerprint,
        });
    }
}

fn save(
    checkpoints: &mut Checkpoints,
    tracked: &HashMap<PathBuf, Tracked>,
    metrics: &ComponentMetrics,
) {
    checkpoints.save(
        tracked.iter().map(|(path, file)| file.checkpoint(path)),
        metrics,
    );
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

/// A look at the filesystem that failed: nothing is concluded from it.
fn scan_failed(cx: &SourceContext, what: &dyn std::fmt::Display) {
    cx.out.metrics().warn_limited(
        "scan_failed",
        &format_args!(
            "{what}; files and checkpoints there are kept as they are, and looked for again at the next poll"
        ),
    );
}

/// How often the warning that no file matches repeats.
const EMPTY_WARNING_EVERY: Duration = Duration::from_secs(60);

impl FileSource {
    /// Warns at the first scan that finds nothing to follow, and then once
    /// a minute while nothing matches: a glob with a typo (or a fresh box
    /// without the log yet) must not look like a quiet log.
    fn warn_while_empty(&self, empty: bool, warned: &mut Option<Instant>, cx: &SourceContext) {
        if !empty {
            *warned = None;
            return;
        }
        if warned.is_some_and(|at| at.elapsed() < EMPTY_WARNING_EVERY) {
            return;
        }
        *warned = Some(Instant::now());
        tracing::warn!(
            component = %cx.key,
            "no file matches `include` ({}); nothing to read yet. Looking again every {} ms; \
             this repeats every minute while nothing matches",
            self.include.join(", "),
            self.poll_interval.as_millis()
        );
    }

    /// Finds matching files and opens new ones; follows renamed ones under
    /// their new name. Returns the files that left (renamed out of the
    /// globs, deleted, or replaced by a new file at their name), still open
    /// so that their last lines can be read.
    fn scan(
        &self,
        tracked: &mut HashMap<PathBuf, Tracked>,
        checkpoints: &mut Checkpoints,
        first_scan: bool,
        cx: &SourceContext,
    ) -> Vec<(PathBuf, Tracked)> {
        // Whether every glob was listed and every file looked at: only then
        // may a checkpoint without a file be forgotten.
        let mut complete = true;
        let mut seen: Vec<(PathBuf, Identity)> = Vec::new();
        let options = glob::MatchOptions {
            require_literal_separator: true,
            ..glob::MatchOptions::default()
        };
        for pattern in &self.include {
            let Ok(paths) = glob::glob(pattern) else {
                continue;
            };
            for entry in paths {
                let path = match entry {
                    Ok(path) => path,
                    Err(error) => {
                        complete = false;
                        scan_failed(
                            cx,
                            &format_args!(
                                "cannot list {}: {}",
                                error.path().display(),
                                error.error()
                            ),
                        );
                        continue;
                    }
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
                        seen.push((path, identity(&metadata)));
                    }
                    Ok(_) => {}
                    Err(error) if checkpoints::gone(&error) => {}
                    Err(error) => {
                        complete = false;
                        scan_failed(
                            cx,
                            &format_args!("cannot look at {}: {error}", path.display()),
                        );
                    }
                }
            }
        }
        // Files no longer found under their name, by identity, until we
        // know whether they reappear under another.
        let mut moved: HashMap<Identity, (PathBuf, Tracked)> = HashMap::new();
        let paths: Vec<PathBuf> = tracked.keys().cloned().collect();
        for path in paths {
            let id = tracked[&path].id;
            let here = seen.iter().find(|(p, _)| *p == path).map(|(_, id)| *id);
            let gone = match here {
                Some(found) => found != id,
                // Not listed: a listing that failed must not let it go, so
                // look at the path itself.
                None => match std::fs::metadata(&path) {
                    Ok(metadata) => identity(&metadata) != id,
                    Err(error) if checkpoints::gone(&error) => true,
                    Err(error) => {
                        complete = false;
                        scan_failed(
                            cx,
                            &format_args!("cannot look at {}: {error}", path.display()),
                        );
                        false
                    }
                },
            };
            if gone && let Some(file) = tracked.remove(&path) {
                moved.insert(file.id, (path, file));
            }
        }
        for (path, id) in seen {
            if tracked.contains_key(&path) {
                continue;
            }
            if let Some((old, file)) = moved.remove(&id) {
                tracing::info!(component = %cx.key, from = %old.display(), to = %path.display(), "file was renamed; following it");
                tracked.insert(path, file);
                continue;
            }
            match self.open(&path, tracked, checkpoints, first_scan, cx) {
                Ok(Some(file)) => {
                    tracked.insert(path, file);
                }
                Ok(None) => {}
                Err(error) if checkpoints::gone(&error) => {}
                Err(error) => {
                    complete = false;
                    cx.out.metrics().error(
                        ErrorType::OpenFailed,
                        Stage::Receiving,
                        &format_args!(
                            "cannot open {}: {error}; trying again at the next poll",
                            path.display()
                        ),
                    );
                }
            }
        }
        if complete {
            checkpoints.forget_unfound();
        }
        moved
            .into_values()
            .inspect(|(path, _)| {
                tracing::info!(component = %cx.key, path = %path.display(), "file was rotated away or deleted; reading what is left of it");
            })
            .collect()
    }

    /// Opens a file newly found at `path` and decides where to start: at
    /// its checkpoint when its fingerprint has one (whatever its name was);
    /// else at its start, or at its end for `read_from = "end"` at start-up
    /// unless a checkpoint was at this path (then it replaced a file that
    /// was being read while howl was down). `None`: a copy of a file being
    /// followed (same fingerprint), not read while that one keeps its head.
    fn open(
        &self,
        path: &Path,
        tracked: &HashMap<PathBuf, Tracked>,
        checkpoints: &mut Checkpoints,
        first_scan: bool,
        cx: &SourceContext,
    ) -> std::io::Result<Option<Tracked>> {
        let mut file = File::open(path)?;
        let metadata = file.metadata()?;
        let (id, len) = (identity(&metadata), metadata.len());
        let head = Head::read(&file, id, self.window)?;
        if let Some((original, _)) = tracked
            .iter()
            .find(|(_, other)| head.matches(&other.fingerprint, self.window))
        {
            tracing::debug!(component = %cx.key, path = %path.display(), original = %original.display(), "same fingerprint as a file being read; not read while that one keeps it");
            return Ok(None);
        }
        let start = match checkpoints.take(&head, self.window) {
            Some(checkpoint) => {
                if checkpoint.path != path {
                    tracing::info!(component = %cx.key, from = %checkpoint.path.display(), to = %path.display(), offset = checkpoint.offset, "file found under another name than its checkpoint's; going on from the checkpoint");
                }
                // Shorter than its checkpoint: truncated meanwhile.
                if checkpoint.offset <= len {
                    checkpoint.offset
                } else {
                    0
                }
            }
            None if first_scan
                && self.read_from == ReadFrom::End
                && !checkpoints.had_checkpoint_at_start(path) =>
            {
                len
            }
            None => 0,
        };
        file.seek(SeekFrom::Start(start))?;
        tracing::info!(component = %cx.key, path = %path.display(), offset = start, "following file");
        Ok(Some(Tracked::new(
            file,
            id,
            head.fingerprint(self.window),
            start,
            LineSplitter::with_delimiter(self.max_line_bytes, self.delimiter),
        )))
    }

    /// Reads everything new in one file and sends it downstream.
    async fn read_file(&self, path: &Path, file: &mut Tracked, cx: &mut SourceContext) -> Progress {
        let extra = [
            (fields::HOST, Value::from(cx.host.as_ref())),
            ("file", Value::from(path.to_string_lossy().as_ref())),
        ];
        let decoder = SourceDecoder::new(
            self.decoder,
            cx.key.shared_id(),
            Arc::clone(cx.out.metrics()),
        );
        for chunk in 0..CHUNKS_PER_TURN {
            // Truncated (shorter than what was read, or another head): the
            // head is looked at once a turn, the length before every read.
            let truncated = if chunk == 0 {
                file.check_head(self)
            } else {
                match file.file.metadata() {
                    Ok(metadata) if metadata.len() < file.offset => file.check_head(self),
                    _ => Ok(None),
                }
            };
            match truncated {
                Ok(Some(completed)) => {
                    report_undelivered(completed, cx.out.metrics());
                    tracing::info!(component = %cx.key, path = %path.display(), "file was truncated; reading from the start");
                }
                Ok(None) => {}
                Err(error) => {
                    cx.out.metrics().error(
                        ErrorType::ReadFailed,
                        Stage::Receiving,
                        &format_args!("cannot read {}: {error}", path.display()),
                    );
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
                decoder.decode(line, now, &extra, &mut events);
            });
            cx.out.metrics().received(events.len(), bytes);
            cx.out
                .metrics()
                .truncated(truncated, self.max_line_bytes.get());
            if events.is_empty() {
                // Part of a line so far, or frames that make no event
                // (blank lines, a JSON `[]`): done once what came before is.
                file.acks.skip_to(file.line_start());
                continue;
            }
            let count = events.len();
            let status = notify_batch(&mut events);
            tokio::select! {
                biased;
                _ = cx.shutdown.cancelled() => {
                    // Not handed over: the next run reads these lines again
                    // (their notifier is dropped unwaited for).
                    return match file.rewind(before) {
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
