//! `file`: append events to files whose names may come from the event.
//!
//! `path` is a template (`logs/{{ .host }}/%Y-%m-%d.log`): each event goes to
//! the file its fields and timestamp name, created with its directories on
//! first use. Files stay open while they are written to and are closed after
//! `idle_timeout_secs` without writes, so a path that rotates by date does
//! not leak descriptors. Each batch is flushed before its events count as
//! delivered. A missing field renders empty (see `template`) and is counted.
//! A file that ends mid-line (a write cut short) is ended before the first
//! append, so a torn line never glues itself to the next event.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

use super::encoding::Encoding;
use crate::components::sink::{Sink, SinkConfig, SinkContext};
use crate::components::{BuildContext, ComponentFuture};
use crate::diagnostic::BuildError;
use crate::event::{Event, EventStatus};
use crate::internal_events::{ErrorType, Stage};
use crate::options::Seconds;
use crate::template::Template;

/// Options of the `file` sink.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// The file to append to, e.g. `logs/{{ .host }}/%Y-%m-%d.log`: a
    /// template that may also hold strftime specifiers (from the event's
    /// `timestamp`, or the current time when it has none; `%%` is a literal
    /// `%`). A relative path is relative to the working directory.
    #[serde(deserialize_with = "strftime_template")]
    #[schemars(with = "Template")]
    #[schemars(extend("x-placeholder" = "logs/howl-%Y-%m-%d.log"))]
    path: Template,
    /// How each event is written, one per line: `json` (the whole event as
    /// one JSON object) or `text` (its `message` field as is; the whole
    /// event as JSON when it has none).
    #[serde(default)]
    encoding: Encoding,
    /// Close a file after this long without writes, so that a path that
    /// changes (by date, by host) does not keep old files open. More than 0.
    #[serde(default = "default_idle_timeout")]
    idle_timeout_secs: Seconds,
}

fn default_idle_timeout() -> Seconds {
    Seconds::from_secs(30)
}

/// Reads `path`: a template whose literal text may hold strftime
/// specifiers, checked while the config is read.
fn strftime_template<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Template, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.trim().is_empty() {
        return Err(serde::de::Error::custom(
            "`path` is empty: name the file to write",
        ));
    }
    Template::parse_with_strftime(&text).map_err(serde::de::Error::custom)
}

impl SinkConfig for FileSinkConfig {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        Ok(Box::new(FileSink {
            path: self.path.clone(),
            encoding: self.encoding,
            idle_timeout: self.idle_timeout_secs.positive("idle_timeout_secs")?,
            open: HashMap::new(),
        }))
    }
}

struct FileSink {
    path: Template,
    encoding: Encoding,
    idle_timeout: Duration,
    open: HashMap<PathBuf, OpenFile>,
}

struct OpenFile {
    writer: BufWriter<File>,
    last_write: Instant,
}

impl Sink for FileSink {
    fn run(mut self: Box<Self>, mut cx: SinkContext) -> ComponentFuture {
        Box::pin(async move {
            let mut sweep = tokio::time::interval(self.idle_timeout.min(Duration::from_secs(1)));
            loop {
                tokio::select! {
                    batch = cx.input.recv() => match batch {
                        Some(events) => self.write_batch(&cx, events).await,
                        None => break,
                    },
                    _ = sweep.tick() => self.close_idle(),
                }
            }
            for (path, mut file) in self.open.drain() {
                if let Err(error) = file.writer.flush() {
                    cx.metrics.error(
                        ErrorType::WriteFailed,
                        Stage::Sending,
                        &format_args!("cannot flush {}: {error}", path.display()),
                    );
                }
            }
            Ok(())
        })
    }
}

/// The first wait before retrying a failed write, and the longest.
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// A full or failing disk: worth waiting for.
fn is_transient(error: &std::io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ENOSPC | libc::EDQUOT | libc::EIO)
    )
}

impl FileSink {
    /// Writes each file's share of a batch. A write that fails because
    /// the disk is full or failing (`ENOSPC`, `EDQUOT`, `EIO`) is retried,
    /// backing off up to 5 s, while upstream waits: those clear up, and an
    /// at-least-once pipeline must not drop lines because a disk was
    /// full for a minute. Other failures (a path that is a directory, no
    /// permission) fail the events for good, and are counted.
    async fn write_batch(&mut self, cx: &SinkContext, events: Vec<Event>) {
        // Group by destination, keeping each file's events in order.
        let mut by_path: Vec<(PathBuf, Vec<u8>, Vec<Event>)> = Vec::new();
        for event in events {
            let rendered = self.path.render(&event);
            if !rendered.missing.is_empty() {
                cx.metrics.error(
                    ErrorType::TemplateFailed,
                    Stage::Processing,
                    &format_args!(
                        "`path` refers to missing field(s) {}; rendered them empty",
                        rendered.missing.join(", ")
                    ),
                );
            }
            let path = PathBuf::from(rendered.text);
            let index = match by_path.iter().position(|(p, _, _)| *p == path) {
                Some(index) => index,
                None => {
                    by_path.push((path, Vec::new(), Vec::new()));
                    by_path.len() - 1
                }
            };
            let (_, bytes, group) = &mut by_path[index];
            self.encoding.encode(&event, bytes);
            group.push(event);
        }
        for (path, bytes, mut group) in by_path {
            let mut delay = RETRY_FIRST;
            let outcome = loop {
                match self.append(&path, &bytes) {
                    Err(error) if is_transient(&error) => {
                        self.open.remove(&path);
                        cx.metrics.error(
                            ErrorType::WriteFailed,
                            Stage::Sending,
                            &format_args!(
                                "cannot write to {}: {error}; retrying in {}s (upstream waits)",
                                path.display(),
                                delay.as_secs_f64()
                            ),
                        );
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(RETRY_MAX);
                    }
                    outcome => break outcome,
                }
            };
            let status = match outcome {
                Ok(()) => {
                    cx.metrics.sent(None, group.len());
                    cx.metrics.sent_bytes(bytes.len());
                    EventStatus::Delivered
                }
                Err(error) => {
                    self.open.remove(&path);
                    cx.metrics.error(
                        ErrorType::WriteFailed,
                        Stage::Sending,
                        &format_args!("cannot write to {}: {error}", path.display()),
                    );
                    cx.metrics
                        .discarded_on_error(group.len(), &"file write failed");
                    EventStatus::Errored
                }
            };
            crate::event::finalize_all(&mut group, status);
        }
    }

    fn append(&mut self, path: &PathBuf, bytes: &[u8]) -> std::io::Result<()> {
        if !self.open.contains_key(path) {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            let mut writer = BufWriter::with_capacity(64 * 1024, file);
            if ends_mid_line(path) {
                tracing::warn!(
                    path = %path.display(),
                    "the file ends mid-line (a write cut short by a crash or a full disk); \
                     starting on a new line so the next event is not glued to it"
                );
                writer.write_all(b"\n")?;
            }
            self.open.insert(
                path.clone(),
                OpenFile {
                    writer,
                    last_write: Instant::now(),
                },
            );
        }
        let Some(file) = self.open.get_mut(path) else {
            return Err(std::io::Error::other("file vanished from the open set"));
        };
        file.writer.write_all(bytes)?;
        file.writer.flush()?;
        file.last_write = Instant::now();
        Ok(())
    }

    fn close_idle(&mut self) {
        let timeout = self.idle_timeout;
        self.open.retain(|path, file| {
            let keep = file.last_write.elapsed() < timeout;
            if !keep {
                tracing::debug!(path = %path.display(), "closing idle file");
            }
            keep
        });
    }
}

/// Whether the file at `path` is a regular file, not empty, whose last byte
/// is not a newline: what a `kill -9` or a full disk leaves when it cuts a
/// write short. Every encoding ends each event with a newline, so anything
/// else is a torn line. A file that cannot be read (write-only permissions,
/// a device) is taken as whole: the sink only needs to write it.
fn ends_mid_line(path: &PathBuf) -> bool {
    use std::os::unix::fs::FileExt;
    // Checked before opening: opening a FIFO to read could block.
    let len = match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.len() > 0 => meta.len(),
        _ => return false,
    };
    let Ok(file) = File::open(path) else {
        return false;
    };
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, len - 1).is_ok() && last[0] != b'\n'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(options: &str) -> Result<FileSinkConfig, String> {
        toml::from_str(options).map_err(|e| e.message().to_string())
    }

    #[test]
    fn path_strftime_specifiers_are_checked_while_parsing() {
        let config = parse("path = 'logs/{{ .host }}/%Y-%m-%d.log'").unwrap();
        assert_eq!(config.path.as_str(), "logs/{{ .host }}/%Y-%m-%d.log");
        let error = parse("path = 'logs/%Q.log'").unwrap_err();
        assert!(error.contains("strftime"), "{error}");
        let error = parse("path = 'logs/{{ .host'").unwrap_err();
        assert!(error.contains("invalid template"), "{error}");
    }

    #[test]
    fn idle_timeout_takes_units_and_must_be_positive() {
        let config = parse("path = 'a.log'\nidle_timeout_secs = \"2m\"").unwrap();
        assert_eq!(config.idle_timeout_secs.get(), Duration::from_secs(120));
        let config = parse("path = 'a.log'\nidle_timeout_secs = 0").unwrap();
        let cx = BuildContext {
            key: crate::component_key::ComponentKey::new(
                crate::component_key::ComponentKind::Sink,
                "out",
                "file",
            ),
            file: std::sync::Arc::new(crate::diagnostic::SourceFile::new("t.toml", String::new())),
            data_dir: std::env::temp_dir(),
        };
        let Err(error) = config.build(&cx) else {
            panic!("an idle timeout of 0 builds");
        };
        assert_eq!(error.option.as_deref(), Some("idle_timeout_secs"));
    }

    fn sink() -> FileSink {
        FileSink {
            path: Template::parse("unused").unwrap(),
            encoding: Encoding::default(),
            idle_timeout: Duration::from_secs(30),
            open: HashMap::new(),
        }
    }

    #[test]
    fn a_torn_last_line_is_ended_before_the_first_append_and_nothing_else_is_added() {
        let dir = tempfile::tempdir().unwrap();
        let torn = dir.path().join("torn.log");
        std::fs::write(&torn, "line 1\nline 2\nlin").unwrap();
        let whole = dir.path().join("whole.log");
        std::fs::write(&whole, "line 1\n").unwrap();
        let fresh = dir.path().join("fresh.log");
        let mut sink = sink();
        for path in [&torn, &whole, &fresh] {
            sink.append(path, b"line 3\n").unwrap();
            sink.append(path, b"line 4\n").unwrap();
        }
        let read = |path| std::fs::read_to_string(path).unwrap();
        assert_eq!(read(&torn), "line 1\nline 2\nlin\nline 3\nline 4\n");
        assert_eq!(read(&whole), "line 1\nline 3\nline 4\n");
        assert_eq!(read(&fresh), "line 3\nline 4\n");
    }
}
