//! A sink's buffer on disk: events wait in files under
//! `data_dir/buffers/<sink id>/`, survive `kill -9` and restarts, and are
//! bounded by bytes on disk (`buffer.max_size`).
//!
//! **The promise.** An event that entered the buffer is acknowledged to its
//! source only once it is on disk for good (after `fdatasync`, at most
//! `buffer.flush_interval_secs` later); from then on it reaches the sink
//! after any crash, or is counted as lost to corruption. So a `file` source
//! feeding a disk buffer moves its checkpoint as soon as lines are durable,
//! and a sink that is down for an hour costs disk, not memory.
//!
//! **How.** Writers append encoded batches as records to the active
//! segment ([`format`]); a flusher `fdatasync`s every flush interval and
//! only then completes the upstream finalizers. The reader (the sink's
//! input) reads records back in order, up to what writers have published,
//! hands their events to the sink with a notifier each, and moves an ack
//! cursor over the records the sink has finished with (the completed
//! prefix, as the `file` source does). A reader close behind the writers
//! takes the last records written from memory (the [`HotTail`], as Fluent
//! Bit keeps its newest chunks "up"), so a sink that keeps up does not pay
//! for reading and decoding what is still in memory; the disk copy is what
//! a restart reads. Whole segments behind the cursor are
//! deleted, after the cursor is saved in the `ledger` file (written new and
//! renamed, so a crash leaves the old or the new one). Any final status
//! releases a record: the sink has retried what it could.
//!
//! **Recovery** never crashes and never gets stuck (Vector's open issues
//! #18130 and #19759 are the failures avoided): a torn last record is cut
//! off and counted; a corrupt record in the middle is skipped by scanning
//! for the next sound frame, its events counted from the sequence numbers;
//! a segment with a bad header is set aside (`*.bad`) and counted; a
//! missing or unreadable ledger starts from the oldest segment (duplicates,
//! never losses); a ledger ahead of the data is clamped. After recovery the
//! writer always starts a new segment. Losses are logged with the sink's
//! name and counted in `component_discarded_events_total{intentional="false"}`
//! and `buffer_lost_events_total{reason}`.
//!
//! What a power cut can cost: what was written but not yet synced, at most
//! one flush interval of events; those were not acknowledged upstream, so a
//! `file` source reads them again. A `kill -9` costs nothing (the page cache
//! survives it).

pub mod codec;
pub mod format;

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use self::format::{Cursor, FRAME_HEADER, Found, SEGMENT_HEADER};
use super::WhenFull;
use crate::event::acks::AckQueue;
use crate::event::{Event, EventFinalizers, EventStatus, notify_batch};
use crate::internal_events::ComponentMetrics;

/// The smallest `max_size`: two segments of the smallest size.
pub const MIN_MAX_SIZE: u64 = 2 * MIN_SEGMENT;
const MIN_SEGMENT: u64 = 1024 * 1024;
const MAX_SEGMENT: u64 = 64 * 1024 * 1024;
/// How long the reader waits before retrying a read that failed.
const RETRY_READ: Duration = Duration::from_millis(200);
/// How long a writer waits before retrying a write that failed.
const RETRY_WRITE: Duration = Duration::from_secs(1);
/// Unsynced bytes that trigger a sync before the interval is up.
const SYNC_BYTES: u64 = 4 * 1024 * 1024;
/// Encoded bytes of records the hot tail holds at most (in memory, about
/// four times as much).
const HOT_BYTES: usize = 1024 * 1024;

/// What a disk buffer is opened with.
#[derive(Debug, Clone)]
pub struct DiskOptions {
    /// The buffer's directory (`data_dir/buffers/<sink id>`).
    pub dir: PathBuf,
    /// Bytes the segment files may take together.
    pub max_size: u64,
    /// How often written records are synced (and acknowledged upstream).
    pub flush_interval: Duration,
    /// What a full buffer does.
    pub when_full: WhenFull,
    /// The size of one segment file; `None` picks `max_size / 8`, within
    /// 1 MiB and 64 MiB (tests choose tiny ones to rotate often).
    pub segment_size: Option<u64>,
}

/// The writing end; clone it for each upstream output.
pub struct DiskSender {
    shared: Arc<Shared>,
}

/// The reading end, owned by the sink.
pub struct DiskReceiver {
    shared: Arc<Shared>,
    reader: Reader,
}

struct Shared {
    dir: PathBuf,
    max_size: u64,
    segment_size: u64,
    flush_interval: Duration,
    when_full: WhenFull,
    metrics: Arc<ComponentMetrics>,
    writer: Mutex<Writer>,
    /// Bytes of segment files on disk.
    size: AtomicU64,
    /// Room was made (a segment deleted) or the reader went away.
    space: Notify,
    /// What writers have appended: readers never read past it.
    published: watch::Sender<Published>,
    senders: AtomicUsize,
    /// Segments on disk, oldest first.
    segments: Mutex<VecDeque<u64>>,
    /// Wakes the flusher before its interval is up: much is unsynced, or
    /// the reader passed a segment that can be reclaimed.
    sync_soon: Arc<Notify>,
    /// The reader's acknowledged cursor, for the flusher to save.
    acked: Mutex<Cursor>,
    /// The cursor in the ledger file; held while the file is written, so
    /// two saves never interleave.
    saved: Mutex<Cursor>,
    /// The last records written, for a reader close behind.
    hot: Mutex<HotTail>,
    /// Events the reader found lost to damage (also in the metrics; kept
    /// here so tests can check the count).
    lost_events: AtomicU64,
    /// Held for the buffer's life: a second howl on the same directory
    /// fails to open it.
    _lock: File,
}

/// Records just written and published, still as events: the reader takes
/// one when it is at the record's position, instead of reading and
/// decoding it. Bounded by [`HOT_BYTES`] of encoded size; when full, new
/// records are not added (the reader is behind and will read them from
/// disk), so what is held is always ahead of the reader and gets used.
#[derive(Default)]
struct HotTail {
    records: VecDeque<HotRecord>,
    bytes: usize,
}

struct HotRecord {
    segment: u64,
    offset: u64,
    end: u64,
    first_seq: u64,
    events: Vec<Event>,
    bytes: usize,
}

impl HotTail {
    /// Keeps a record unless that would pass the bound.
    fn offer(&mut self, record: HotRecord) {
        if self.bytes + record.bytes <= HOT_BYTES {
            self.bytes += record.bytes;
            self.records.push_back(record);
        }
    }

    /// The record at `(segment, offset)`, dropping any the reader passed.
    fn take(&mut self, segment: u64, offset: u64) -> Option<HotRecord> {
        while let Some(front) = self.records.front() {
            let at = (front.segment, front.offset);
            if at > (segment, offset) {
                return None;
            }
            let record = self.records.pop_front()?;
            self.bytes -= record.bytes;
            if at == (segment, offset) {
                return Some(record);
            }
        }
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Published {
    segment: u64,
    offset: u64,
    next_seq: u64,
    /// Every sender is gone: nothing more will be published.
    closed: bool,
}

struct Writer {
    /// Shared with syncs, which run without holding the writer.
    file: Arc<File>,
    segment: u64,
    offset: u64,
    next_seq: u64,
    /// Upstream finalizers of what was written since the last sync.
    unsynced: Vec<EventFinalizers>,
    unsynced_bytes: u64,
    last_sync: Instant,
    /// Reused for each frame, so writing allocates nothing.
    frame: Vec<u8>,
}

struct Reader {
    segment: u64,
    offset: u64,
    next_seq: u64,
    file: Option<(u64, File)>,
    acks: AckQueue<Cursor>,
    /// The acknowledged cursor last handed to the flusher.
    handed: Cursor,
}

/// Opens (or creates) the buffer in `options.dir`, recovering what a
/// previous run left, and returns its two ends.
pub fn open(
    options: DiskOptions,
    metrics: Arc<ComponentMetrics>,
) -> std::io::Result<(DiskSender, DiskReceiver)> {
    std::fs::create_dir_all(&options.dir)?;
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(options.dir.join("buffer.lock"))?;
    if lock.try_lock().is_err() {
        return Err(std::io::Error::other(format!(
            "{} is in use by another howl",
            options.dir.display()
        )));
    }
    let segment_size = options
        .segment_size
        .unwrap_or((options.max_size / 8).clamp(MIN_SEGMENT, MAX_SEGMENT));
    let recovered = recover(&options.dir, &metrics)?;
    let writer_segment = recovered.segments.back().map_or(0, |id| id + 1);
    let size: u64 = recovered.size;
    let (file, header) = create_segment(&options.dir, writer_segment, recovered.next_seq)?;
    let mut segments = recovered.segments;
    segments.push_back(writer_segment);
    let shared = Arc::new(Shared {
        dir: options.dir.clone(),
        max_size: options.max_size,
        segment_size,
        flush_interval: options.flush_interval,
        when_full: options.when_full,
        metrics,
        writer: Mutex::new(Writer {
            file: Arc::new(file),
            segment: writer_segment,
            offset: header,
            next_seq: recovered.next_seq,
            unsynced: Vec::new(),
            unsynced_bytes: 0,
            last_sync: Instant::now(),
            frame: Vec::new(),
        }),
        size: AtomicU64::new(size + header),
        space: Notify::new(),
        published: watch::Sender::new(Published {
            segment: writer_segment,
            offset: header,
            next_seq: recovered.next_seq,
            closed: false,
        }),
        senders: AtomicUsize::new(1),
        segments: Mutex::new(segments),
        sync_soon: Arc::new(Notify::new()),
        acked: Mutex::new(recovered.cursor),
        saved: Mutex::new(recovered.cursor),
        hot: Mutex::new(HotTail::default()),
        lost_events: AtomicU64::new(recovered.lost_events),
        _lock: lock,
    });
    shared
        .metrics
        .disk_buffer_size(shared.size.load(Ordering::Relaxed));
    tokio::spawn(flusher(
        Arc::downgrade(&shared),
        Arc::clone(&shared.sync_soon),
    ));
    let cursor = recovered.cursor;
    let receiver = DiskReceiver {
        shared: Arc::clone(&shared),
        reader: Reader {
            segment: cursor.segment,
            offset: cursor.offset,
            next_seq: cursor.next_seq,
            file: None,
            acks: AckQueue::new(cursor),
            handed: cursor,
        },
    };
    Ok((DiskSender { shared }, receiver))
}

/// Buffer directories under `buffers_dir` (`data_dir/buffers`) that hold
/// records although no sink in `in_use` reads them (a sink renamed,
/// removed, or switched to a memory buffer): their names and the bytes of
/// records in them. Those events wait there until a sink of that name
/// with a disk buffer comes back, so howl says so at start.
pub fn orphans(buffers_dir: &Path, in_use: &[&str]) -> Vec<(String, u64)> {
    let Ok(entries) = std::fs::read_dir(buffers_dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if in_use.contains(&name.as_str()) {
            continue;
        }
        let Ok(files) = std::fs::read_dir(entry.path()) else {
            continue;
        };
        let bytes: u64 = files
            .filter_map(Result::ok)
            .filter(|f| format::segment_id(&f.file_name().to_string_lossy()).is_some())
            .filter_map(|f| f.metadata().ok())
            .map(|m| m.len().saturating_sub(SEGMENT_HEADER as u64))
            .sum();
        if bytes > 0 {
            found.push((name, bytes));
        }
    }
    found.sort();
    found
}

/// What recovery found.
struct Recovered {
    /// Sound segments, oldest first.
    segments: VecDeque<u64>,
    /// Bytes they take.
    size: u64,
    /// Where the reader resumes.
    cursor: Cursor,
    /// The next sequence number to write.
    next_seq: u64,
    /// Events counted lost while recovering.
    lost_events: u64,
}

fn recover(dir: &Path, metrics: &ComponentMetrics) -> std::io::Result<Recovered> {
    let mut ids: Vec<u64> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| format::segment_id(&entry.file_name().to_string_lossy()))
        .collect();
    ids.sort_unstable();
    let ledger = match std::fs::read(dir.join("ledger")) {
        Ok(bytes) => match format::parse_ledger(&bytes) {
            Some(cursor) => Some(cursor),
            None => {
                metrics.buffer_recovery("ledger_reset");
                tracing::warn!(component = %metrics.key(), "the disk buffer's ledger is damaged; reading from the oldest segment (events may be delivered twice)");
                None
            }
        },
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(error),
    };
    // Records written with a larger `max_size` (bigger segments) must
    // still be read after it was lowered: reading accepts what any segment
    // size could hold.
    let max_payload = READ_MAX_PAYLOAD;
    let mut segments = VecDeque::new();
    let mut lost_events = 0;
    let mut size = 0;
    let mut cursor = ledger;
    let mut next_seq = cursor.map_or(0, |c| c.next_seq);
    let last = ids.last().copied();
    for id in ids {
        let path = format::segment_path(dir, id);
        if cursor.is_some_and(|c| id < c.segment) {
            // Wholly acknowledged: a crash came between saving the ledger
            // and deleting it.
            std::fs::remove_file(&path)?;
            continue;
        }
        let mut file = OpenOptions::new().read(true).write(true).open(&path)?;
        let len = file.metadata()?.len();
        let Some(first_seq) = format::read_segment_header(&mut file, id)? else {
            // The records may be sound behind a damaged header: count
            // their events (past what the ledger says was finished).
            let done = cursor.filter(|c| c.segment == id).map_or(0, |c| c.offset);
            let events = count_events(&mut file, len, done, max_payload)?;
            std::fs::rename(&path, path.with_extension("bad"))?;
            metrics.buffer_lost(events, len, "bad_header");
            lost_events += events;
            tracing::warn!(component = %metrics.key(), segment = %path.display(), "a disk buffer segment has a bad header; set aside as .bad, its events are lost");
            continue;
        };
        let mut end = len;
        if Some(id) == last {
            // Only the last segment can be torn: the others were synced
            // when the writer moved on.
            let (valid_end, last_seq) = scan(&mut file, len, max_payload, first_seq)?;
            if valid_end < len {
                file.set_len(valid_end)?;
                file.sync_all()?;
                metrics.buffer_lost(0, len - valid_end, "torn_tail");
                tracing::warn!(component = %metrics.key(), bytes = len - valid_end, "the disk buffer's last record was cut short (a crash while writing); cut off");
            }
            end = valid_end;
            next_seq = next_seq.max(last_seq);
        } else {
            next_seq = next_seq.max(first_seq);
        }
        if cursor.is_none() {
            cursor = Some(Cursor {
                segment: id,
                offset: SEGMENT_HEADER as u64,
                next_seq: first_seq,
            });
        }
        if let Some(c) = &mut cursor
            && c.segment == id
            && c.offset > end
        {
            // The ledger is ahead of the data (acknowledged records that a
            // power cut took back): resume at the end of what is there.
            metrics.buffer_recovery("ledger_ahead");
            c.offset = end;
        }
        size += end;
        segments.push_back(id);
    }
    let cursor = match cursor {
        // The cursor's segment is gone: the oldest one left.
        Some(c) if !segments.contains(&c.segment) => match segments.front() {
            Some(&id) => {
                metrics.buffer_recovery("missing_segment");
                Cursor {
                    segment: id,
                    offset: SEGMENT_HEADER as u64,
                    next_seq: c.next_seq,
                }
            }
            None => Cursor {
                segment: u64::MAX,
                offset: 0,
                next_seq: c.next_seq,
            },
        },
        Some(c) => c,
        None => Cursor {
            segment: u64::MAX,
            offset: 0,
            next_seq,
        },
    };
    Ok(Recovered {
        segments,
        size,
        cursor,
        next_seq,
        lost_events,
    })
}

/// The events in the sound records of a segment whose header is damaged,
/// counting those that end after `done`.
fn count_events(file: &mut File, len: u64, done: u64, max_payload: usize) -> std::io::Result<u64> {
    let mut offset = SEGMENT_HEADER as u64;
    let mut events = 0;
    loop {
        let record = match format::read_record(file, offset, len, max_payload)? {
            Found::Record(record) => record,
            Found::Corrupt => match format::resync(file, offset, len, max_payload, 0)? {
                Some((_, record)) => record,
                None => return Ok(events),
            },
            Found::End | Found::Torn => return Ok(events),
        };
        if record.end > done {
            events += u64::from(record.events);
        }
        offset = record.end;
    }
}

/// The end of the last sound record of a segment, and the sequence number
/// after it.
fn scan(
    file: &mut File,
    len: u64,
    max_payload: usize,
    first_seq: u64,
) -> std::io::Result<(u64, u64)> {
    let mut offset = SEGMENT_HEADER as u64;
    let mut next_seq = first_seq;
    loop {
        match format::read_record(file, offset, len, max_payload)? {
            Found::Record(record) => {
                offset = record.end;
                next_seq = record.first_seq + u64::from(record.events);
            }
            Found::End | Found::Torn => return Ok((offset, next_seq)),
            Found::Corrupt => match format::resync(file, offset, len, max_payload, next_seq)? {
                Some((_, record)) => {
                    offset = record.end;
                    next_seq = record.first_seq + u64::from(record.events);
                }
                None => return Ok((offset, next_seq)),
            },
        }
    }
}

/// The largest record a reader accepts: what the largest segment holds,
/// whatever the segment size is now.
const READ_MAX_PAYLOAD: usize = MAX_SEGMENT as usize - SEGMENT_HEADER - FRAME_HEADER;

fn max_payload(segment_size: u64) -> usize {
    (segment_size as usize).saturating_sub(SEGMENT_HEADER + FRAME_HEADER)
}

/// Creates segment `id` and makes its name durable; returns the file and
/// its header's length.
fn create_segment(dir: &Path, id: u64, first_seq: u64) -> std::io::Result<(File, u64)> {
    let path = format::segment_path(dir, id);
    let mut file = OpenOptions::new()
        .create_new(true)
        .read(true)
        .append(true)
        .open(&path)?;
    file.write_all(&format::segment_header(id, first_seq))?;
    file.sync_all()?;
    File::open(dir)?.sync_all()?;
    Ok((file, SEGMENT_HEADER as u64))
}

/// Syncs what was written, every flush interval, and only then tells the
/// sources: once synced, the events are the buffer's responsibility.
/// Every `flush_interval` (or sooner when asked): syncs what was written,
/// acknowledging it upstream, then saves the reader's cursor and reclaims
/// the segments behind it. Blocking file work runs off the async threads,
/// and without holding the writer, so writing never waits for a disk.
async fn flusher(shared: std::sync::Weak<Shared>, soon: Arc<Notify>) {
    loop {
        let Some(interval) = shared.upgrade().map(|s| s.flush_interval) else {
            return;
        };
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = soon.notified() => {}
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let _ = tokio::task::spawn_blocking(move || {
            shared.sync();
            shared.save_ledger();
        })
        .await;
    }
}

impl Shared {
    /// Syncs the active segment and acknowledges what it held upstream.
    fn sync(&self) {
        let (file, mut unsynced) = {
            let mut writer = lock(&self.writer);
            if writer.unsynced.is_empty() && writer.unsynced_bytes == 0 {
                return;
            }
            writer.unsynced_bytes = 0;
            writer.last_sync = Instant::now();
            (
                Arc::clone(&writer.file),
                std::mem::take(&mut writer.unsynced),
            )
        };
        // Everything behind these finalizers was written before this call:
        // once it returns, it is on disk.
        let status = match file.sync_data() {
            Ok(()) => EventStatus::Delivered,
            Err(error) => {
                // Never retry-and-trust a failed sync: the kernel may have
                // dropped the pages. The sources hear that these events
                // failed (they may still reach the sink from memory).
                self.metrics.error(
                    crate::internal_events::ErrorType::WriteFailed,
                    crate::internal_events::Stage::Receiving,
                    &format_args!("cannot sync the disk buffer: {error}"),
                );
                EventStatus::Errored
            }
        };
        for finalizers in &mut unsynced {
            finalizers.update_status(status);
        }
    }

    /// Saves the reader's acknowledged cursor in the ledger, then deletes
    /// the segments wholly behind it.
    fn save_ledger(&self) {
        let mut saved = lock(&self.saved);
        let cursor = *lock(&self.acked);
        if cursor == *saved {
            return;
        }
        if let Err(error) = write_ledger(&self.dir, cursor) {
            self.metrics.error(
                crate::internal_events::ErrorType::StateSaveFailed,
                crate::internal_events::Stage::Sending,
                &format_args!("cannot save the disk buffer's ledger: {error}"),
            );
            return;
        }
        *saved = cursor;
        drop(saved);
        // The ledger is durable: segments before the cursor's can go.
        let mut removed = 0;
        let mut segments = lock(&self.segments);
        while segments.front().is_some_and(|id| *id < cursor.segment) {
            if let Some(id) = segments.pop_front() {
                let path = format::segment_path(&self.dir, id);
                removed += std::fs::metadata(&path).map_or(0, |m| m.len());
                let _ = std::fs::remove_file(&path);
            }
        }
        drop(segments);
        if removed > 0 {
            self.size.fetch_sub(removed, Ordering::Relaxed);
            self.metrics
                .disk_buffer_size(self.size.load(Ordering::Relaxed));
            self.space.notify_waiters();
        }
    }

    fn publish(&self, writer: &Writer, closed: bool) {
        self.published.send_replace(Published {
            segment: writer.segment,
            offset: writer.offset,
            next_seq: writer.next_seq,
            closed,
        });
    }

    /// Moves the writer to a new segment (the old one is synced first: only
    /// the last segment may ever be torn).
    fn rotate(&self, writer: &mut Writer) -> std::io::Result<()> {
        writer.file.sync_data()?;
        for mut finalizers in writer.unsynced.drain(..) {
            finalizers.update_status(EventStatus::Delivered);
        }
        writer.unsynced_bytes = 0;
        let id = writer.segment + 1;
        let (file, header) = create_segment(&self.dir, id, writer.next_seq)?;
        writer.file = Arc::new(file);
        writer.segment = id;
        writer.offset = header;
        lock(&self.segments).push_back(id);
        self.size.fetch_add(header, Ordering::Relaxed);
        Ok(())
    }
}

impl DiskSender {
    /// Writes a batch, waiting for room (`block`) or dropping what does not
    /// fit (`drop_newest`). Events too large for a segment, or nested too
    /// deep, are refused (`Rejected`) and counted.
    pub async fn send(&self, events: Vec<Event>) {
        for record in self.records(events) {
            self.write(record).await;
        }
    }

    /// Splits a batch into records that fit a segment, encoded.
    fn records(&self, events: Vec<Event>) -> Vec<(Vec<Event>, Vec<u8>)> {
        let limit = max_payload(self.shared.segment_size);
        let mut records = Vec::new();
        let mut current: (Vec<Event>, Vec<u8>) = (Vec::with_capacity(events.len()), Vec::new());
        for mut event in events {
            // Encoded straight onto the record; cut back off when refused.
            let start = current.1.len();
            if let Err(error) = codec::encode_event(&event, &mut current.1) {
                current.1.truncate(start);
                self.refuse(&mut event, &error.to_string());
                continue;
            }
            if current.1.len() - start > limit {
                current.1.truncate(start);
                self.refuse(&mut event, "the event is larger than a disk buffer segment");
                continue;
            }
            if current.1.len() > limit {
                // It does not fit this record: it starts the next one.
                let encoded = current.1.split_off(start);
                records.push(std::mem::replace(&mut current, (Vec::new(), encoded)));
            }
            current.0.push(event);
        }
        if !current.0.is_empty() {
            records.push(current);
        }
        records
    }

    fn refuse(&self, event: &mut Event, why: &str) {
        event.finalize(EventStatus::Rejected);
        self.shared
            .metrics
            .discarded_on_error(1, &format_args!("not written to the disk buffer: {why}"));
    }

    /// Writes one record once there is room. A write that fails (a full
    /// or failing disk) is retried every second with `block`, so upstream
    /// waits and nothing is acknowledged that is not on disk; with
    /// `drop_newest` the record is dropped and counted.
    async fn write(&self, (mut events, payload): (Vec<Event>, Vec<u8>)) {
        let frame_len = (FRAME_HEADER + payload.len()) as u64;
        let shared = &self.shared;
        loop {
            let room = shared.size.load(Ordering::Relaxed) + frame_len <= shared.max_size;
            if !room {
                match shared.when_full {
                    WhenFull::DropNewest => {
                        crate::event::finalize_all(&mut events, EventStatus::Errored);
                        shared.metrics.shed_by_buffer(events.len());
                        return;
                    }
                    WhenFull::Block => {
                        let notified = shared.space.notified();
                        if shared.size.load(Ordering::Relaxed) + frame_len > shared.max_size {
                            // Re-checked every second in case a wake-up was
                            // missed: a writer must never wait forever.
                            let _ = tokio::time::timeout(Duration::from_secs(1), notified).await;
                        }
                        continue;
                    }
                }
            }
            match self.append(events, &payload) {
                Ok(true) => return shared.sync_soon.notify_one(),
                Ok(false) => return,
                Err((error, mut back)) if shared.when_full == WhenFull::DropNewest => {
                    return self.failed(&mut back, &error);
                }
                Err((error, back)) => {
                    shared.metrics.error(
                        crate::internal_events::ErrorType::WriteFailed,
                        crate::internal_events::Stage::Receiving,
                        &format_args!(
                            "cannot write to the disk buffer in {} ({error}); retrying every {}s, upstream waits",
                            shared.dir.display(),
                            RETRY_WRITE.as_secs()
                        ),
                    );
                    events = back;
                    tokio::time::sleep(RETRY_WRITE).await;
                }
            }
        }
    }

    /// Appends one record (rotating first if it does not fit the active
    /// segment), publishes it and offers it to the hot tail; `Ok(true)`
    /// when enough is unsynced that it should be synced now. On failure the
    /// events come back, to be finalized as errored.
    fn append(
        &self,
        mut events: Vec<Event>,
        payload: &[u8],
    ) -> Result<bool, (std::io::Error, Vec<Event>)> {
        let shared = &self.shared;
        let frame_len = (FRAME_HEADER + payload.len()) as u64;
        let mut writer = lock(&shared.writer);
        if writer.offset + frame_len > shared.segment_size
            && let Err(error) = shared.rotate(&mut writer)
        {
            return Err((error, events));
        }
        let first_seq = writer.next_seq;
        let mut frame = std::mem::take(&mut writer.frame);
        frame.clear();
        format::frame(first_seq, events.len() as u32, payload, &mut frame);
        let written = (&*writer.file).write_all(&frame);
        writer.frame = frame;
        if let Err(error) = written {
            // Cut back to the last good frame; the next write starts clean.
            let offset = writer.offset;
            let _ = writer.file.set_len(offset);
            return Err((error, events));
        }
        let (segment, offset) = (writer.segment, writer.offset);
        writer.offset += frame_len;
        writer.next_seq += events.len() as u64;
        writer.unsynced_bytes += frame_len;
        for event in events.iter_mut() {
            let finalizers = std::mem::take(event.metadata_mut().finalizers_mut());
            if !finalizers.is_empty() {
                writer.unsynced.push(finalizers);
            }
        }
        shared.size.fetch_add(frame_len, Ordering::Relaxed);
        shared
            .metrics
            .disk_buffer_size(shared.size.load(Ordering::Relaxed));
        shared.publish(&writer, false);
        // Offered under the writer's lock, so the tail stays in write order.
        lock(&shared.hot).offer(HotRecord {
            segment,
            offset,
            end: offset + frame_len,
            first_seq,
            events,
            bytes: payload.len(),
        });
        Ok(writer.unsynced_bytes >= SYNC_BYTES)
    }

    fn failed(&self, events: &mut [Event], error: &std::io::Error) {
        crate::event::finalize_all(events, EventStatus::Errored);
        self.shared.metrics.error(
            crate::internal_events::ErrorType::WriteFailed,
            crate::internal_events::Stage::Receiving,
            &format_args!(
                "cannot write to the disk buffer in {}: {error}",
                self.shared.dir.display()
            ),
        );
        self.shared.metrics.discarded_on_error(
            events.len(),
            &format_args!("the disk buffer could not be written"),
        );
    }

    /// Whether a batch would fit now, waiting at most `wait` for room: for
    /// sources that can tell their client to retry (HTTP 503).
    pub async fn has_room(&self, wait: Duration) -> bool {
        if self.shared.when_full == WhenFull::DropNewest {
            return true;
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if self.shared.size.load(Ordering::Relaxed) < self.shared.max_size {
                return true;
            }
            let notified = self.shared.space.notified();
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }
}

impl Clone for DiskSender {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::AcqRel);
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for DiskSender {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last one: make everything durable and acknowledged, and
            // tell the reader nothing more is coming.
            self.shared.sync();
            let writer = lock(&self.shared.writer);
            self.shared.publish(&writer, true);
        }
    }
}

impl DiskReceiver {
    /// The next batch, or `None` once every sender is gone and everything
    /// written was read.
    pub async fn recv(&mut self) -> Option<Vec<Event>> {
        let mut published = self.shared.published.subscribe();
        loop {
            self.settle();
            match self.read_next() {
                Some(events) => return Some(events),
                None => {
                    let current = *published.borrow_and_update();
                    if current.closed && self.caught_up(&current) {
                        return None;
                    }
                    if self.caught_up(&current) {
                        // Wait for a write; re-check every second in case
                        // a wake-up was missed.
                        let _ =
                            tokio::time::timeout(Duration::from_secs(1), published.changed()).await;
                    } else {
                        // Something is written but could not be read now
                        // (a segment that cannot be opened yet): try again
                        // shortly, never in a busy loop.
                        tokio::time::sleep(RETRY_READ).await;
                    }
                }
            }
        }
    }

    fn caught_up(&self, published: &Published) -> bool {
        (self.reader.segment, self.reader.offset) >= (published.segment, published.offset)
            || self.reader.segment == u64::MAX && published.offset <= SEGMENT_HEADER as u64
    }

    /// Reads the next record, skipping what cannot be read (counted).
    fn read_next(&mut self) -> Option<Vec<Event>> {
        let published = *self.shared.published.borrow();
        let max_payload = READ_MAX_PAYLOAD;
        loop {
            if self.reader.segment == u64::MAX {
                // No segment when we started: begin with the oldest.
                let first = *lock(&self.shared.segments).front()?;
                self.move_to(first, SEGMENT_HEADER as u64);
            }
            let hot = lock(&self.shared.hot).take(self.reader.segment, self.reader.offset);
            if let Some(record) = hot {
                return Some(self.deliver_hot(record));
            }
            let sealed = self.reader.segment < published.segment;
            let limit = if sealed { u64::MAX } else { published.offset };
            let (offset, next_seq) = (self.reader.offset, self.reader.next_seq);
            let file = match self.file() {
                Opened::File(file) => file,
                Opened::Missing => {
                    // Gone (deleted by hand): on to the next segment; the
                    // events it held are counted from the next record's
                    // sequence number.
                    let next = lock(&self.shared.segments)
                        .iter()
                        .copied()
                        .find(|id| *id > self.reader.segment)?;
                    self.move_to(next, SEGMENT_HEADER as u64);
                    continue;
                }
                Opened::Failed => return None,
            };
            let limit = limit.min(file.metadata().map_or(0, |m| m.len()));
            let found = match format::read_record(file, offset, limit, max_payload) {
                Ok(found) => found,
                Err(error) => {
                    self.shared.metrics.error(
                        crate::internal_events::ErrorType::ReadFailed,
                        crate::internal_events::Stage::Sending,
                        &format_args!("cannot read the disk buffer: {error}"),
                    );
                    return None;
                }
            };
            match found {
                Found::Record(record) => return Some(self.deliver(record)),
                Found::End | Found::Torn if sealed => {
                    // This segment is done: on to the next one on disk.
                    let next = lock(&self.shared.segments)
                        .iter()
                        .copied()
                        .find(|id| *id > self.reader.segment)?;
                    self.move_to(next, SEGMENT_HEADER as u64);
                }
                Found::End | Found::Torn => return None,
                Found::Corrupt => {
                    let Opened::File(file) = self.file() else {
                        return None;
                    };
                    let resumed = format::resync(file, offset, limit, max_payload, next_seq)
                        .ok()
                        .flatten();
                    match resumed {
                        Some((_, record)) => {
                            self.count_gap(record.first_seq, "checksum");
                            return Some(self.deliver(record));
                        }
                        None if sealed => {
                            self.shared.metrics.buffer_lost(
                                0,
                                limit.saturating_sub(self.reader.offset),
                                "checksum",
                            );
                            self.reader.offset = limit;
                        }
                        None => return None,
                    }
                }
            }
        }
    }

    /// The reader's segment file, opened once. A segment that is gone is
    /// dropped from the list (and logged); any other failure (too many
    /// open files, permissions) is logged, rate-limited, and retried later:
    /// the segment is still there, and reclaimed once read.
    fn file(&mut self) -> Opened<'_> {
        let segment = self.reader.segment;
        if self.reader.file.as_ref().map(|(id, _)| *id) != Some(segment) {
            let path = format::segment_path(&self.shared.dir, segment);
            match File::open(&path) {
                Ok(file) => self.reader.file = Some((segment, file)),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    tracing::warn!(component = %self.shared.metrics.key(), segment = %path.display(), "a disk buffer segment is gone; its events are lost");
                    self.shared.metrics.buffer_recovery("missing_segment");
                    lock(&self.shared.segments).retain(|id| *id != segment);
                    self.reader.file = None;
                    return Opened::Missing;
                }
                Err(error) => {
                    self.shared.metrics.warn_limited(
                        "disk_buffer_open_failed",
                        &format_args!(
                            "cannot open disk buffer segment {} ({error}); retrying",
                            path.display()
                        ),
                    );
                    self.reader.file = None;
                    return Opened::Failed;
                }
            }
        }
        match self.reader.file.as_mut() {
            Some((_, file)) => Opened::File(file),
            None => Opened::Failed,
        }
    }

    fn move_to(&mut self, segment: u64, offset: u64) {
        self.reader.segment = segment;
        self.reader.offset = offset;
    }

    /// Counts the events between what was expected and a record found
    /// after damage.
    fn count_gap(&mut self, found_seq: u64, reason: &'static str) {
        let lost = found_seq.saturating_sub(self.reader.next_seq);
        // Counted once: the record found is delivered from here.
        self.reader.next_seq = self.reader.next_seq.max(found_seq);
        if lost > 0 {
            self.shared.lost_events.fetch_add(lost, Ordering::Relaxed);
            self.shared.metrics.buffer_lost(lost, 0, reason);
            tracing::warn!(component = %self.shared.metrics.key(), lost, reason, "events in the disk buffer were damaged and are lost");
        }
    }

    /// Moves the reader past a record of `events` events starting at
    /// `first_seq` and ending at `end`; returns the cursor after it.
    fn pass(&mut self, first_seq: u64, events: u64, end: u64) -> Cursor {
        if first_seq > self.reader.next_seq {
            self.count_gap(first_seq, "missing_segment");
        }
        self.reader.offset = end;
        self.reader.next_seq = first_seq + events;
        Cursor {
            segment: self.reader.segment,
            offset: end,
            next_seq: self.reader.next_seq,
        }
    }

    /// Hands out events with a notifier whose completion moves the ack
    /// cursor to `end`.
    fn hand_out(&mut self, end: Cursor, mut events: Vec<Event>) -> Vec<Event> {
        let status = notify_batch(&mut events);
        self.reader.acks.push(end, events.len(), status);
        events
    }

    fn deliver_hot(&mut self, record: HotRecord) -> Vec<Event> {
        let end = self.pass(record.first_seq, record.events.len() as u64, record.end);
        self.hand_out(end, record.events)
    }

    fn deliver(&mut self, record: format::Record) -> Vec<Event> {
        let end = self.pass(record.first_seq, u64::from(record.events), record.end);
        match codec::decode_events(&record.payload, record.events as usize) {
            Ok(events) => self.hand_out(end, events),
            Err(error) => {
                self.shared
                    .metrics
                    .buffer_lost(u64::from(record.events), 0, "decode");
                tracing::warn!(component = %self.shared.metrics.key(), "a disk buffer record cannot be decoded ({error}); its events are lost");
                // Nothing to wait for: the cursor may move past it.
                let (notifier, status) = crate::event::BatchNotifier::new_with_receiver();
                drop(notifier);
                self.reader.acks.push(end, 0, status);
                Vec::new()
            }
        }
    }

    /// Moves the ack cursor over what the sink finished with and hands it
    /// to the flusher, which saves it and reclaims what is behind it (at
    /// once when a whole segment was passed).
    fn settle(&mut self) {
        self.reader.acks.poll();
        let cursor = self.reader.acks.acked();
        if cursor != self.reader.handed {
            let passed_segment = cursor.segment != self.reader.handed.segment;
            *lock(&self.shared.acked) = cursor;
            self.reader.handed = cursor;
            if passed_segment {
                self.shared.sync_soon.notify_one();
            }
        }
    }
}

impl Drop for DiskReceiver {
    fn drop(&mut self) {
        // What the sink finished with is saved; the rest stays on disk and
        // is read again on the next start.
        self.reader.acks.poll();
        let cursor = self.reader.acks.acked();
        *lock(&self.shared.acked) = cursor;
        self.shared.save_ledger();
        let published = *self.shared.published.borrow();
        let kept = published.next_seq.saturating_sub(cursor.next_seq);
        self.shared.metrics.kept_in_disk_buffer(kept);
        self.shared.space.notify_waiters();
    }
}

/// What opening the reader's segment gave.
enum Opened<'a> {
    File(&'a mut File),
    /// The file is gone.
    Missing,
    /// It could not be opened now; try again later.
    Failed,
}

/// Writes the ledger new, then renames it over the old one: a crash leaves
/// one or the other, whole.
fn write_ledger(dir: &Path, cursor: Cursor) -> std::io::Result<()> {
    let temporary = dir.join("ledger.tmp");
    let mut file = File::create(&temporary)?;
    file.write_all(&format::ledger_bytes(cursor))?;
    file.sync_all()?;
    std::fs::rename(&temporary, dir.join("ledger"))?;
    File::open(dir)?.sync_all()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests;
