//! The disk buffer against its promises: order, acknowledgement only once
//! synced, reclaiming, bounds, restarts, and recovery from every kind of
//! damage without a panic, without getting stuck, with the loss counted.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use vrl::value::Value;

use super::*;
use crate::component_key::{ComponentKey, ComponentKind};
use crate::event::{BatchNotifier, BatchStatus, EventFinalizers};

fn metrics() -> Arc<ComponentMetrics> {
    Arc::new(ComponentMetrics::new(ComponentKey::new(
        ComponentKind::Sink,
        "hook",
        "webhook",
    )))
}

fn options(dir: &Path) -> DiskOptions {
    DiskOptions {
        dir: dir.to_path_buf(),
        max_size: 64 * 1024 * 1024,
        flush_interval: Duration::from_millis(20),
        when_full: WhenFull::Block,
        segment_size: Some(8 * 1024),
    }
}

/// Events numbered `from..to`, with a payload to make them take room.
fn numbered(from: u64, to: u64) -> Vec<Event> {
    (from..to)
        .map(|n| Event::from_value(Value::from(format!("n={n} {}", "x".repeat(100)))))
        .collect()
}

fn number(event: &Event) -> u64 {
    let text = event.get_field("message").unwrap().to_string_lossy();
    text.trim_matches('"')
        .strip_prefix("n=")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap()
}

/// Reads until `count` events came back (bounded), finalizing each as
/// delivered; returns their numbers.
async fn read(receiver: &mut DiskReceiver, count: usize) -> Vec<u64> {
    let mut numbers = Vec::new();
    while numbers.len() < count {
        let batch = tokio::time::timeout(Duration::from_secs(5), receiver.recv())
            .await
            .expect("the reader is not stuck")
            .expect("more events");
        for mut event in batch {
            numbers.push(number(&event));
            event.finalize(EventStatus::Delivered);
        }
    }
    numbers
}

fn segment_files(dir: &Path) -> Vec<u64> {
    let mut ids: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| format::segment_id(&e.unwrap().file_name().to_string_lossy()))
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn events_come_back_in_order_and_acked_segments_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (sender, mut receiver) = open(options(dir.path()), metrics()).unwrap();
    for chunk in 0..20 {
        sender.send(numbered(chunk * 50, chunk * 50 + 50)).await;
    }
    assert!(segment_files(dir.path()).len() > 5, "it rotated");
    let numbers = read(&mut receiver, 1000).await;
    assert_eq!(numbers, (0..1000).collect::<Vec<_>>());
    // The next read settles the acknowledgements and wakes the flusher,
    // which saves the ledger and deletes the old segments.
    sender.send(numbered(1000, 1001)).await;
    assert_eq!(read(&mut receiver, 1).await, [1000]);
    for _ in 0..100 {
        if segment_files(dir.path()).len() <= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        segment_files(dir.path()).len() <= 2,
        "acknowledged segments are deleted: {:?}",
        segment_files(dir.path())
    );
}

#[tokio::test]
async fn sources_hear_of_delivery_only_once_the_events_are_synced() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(dir.path());
    options.flush_interval = Duration::from_millis(300);
    let (sender, _receiver) = open(options, metrics()).unwrap();
    let (notifier, mut status) = BatchNotifier::new_with_receiver();
    let events: Vec<Event> = numbered(0, 10)
        .into_iter()
        .map(|e| e.with_finalizers(EventFinalizers::new(Arc::clone(&notifier))))
        .collect();
    drop(notifier);
    sender.send(events).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        status.try_recv().is_err(),
        "not yet synced, not yet acknowledged"
    );
    let answer = tokio::time::timeout(Duration::from_secs(2), status).await;
    assert_eq!(answer.unwrap().ok(), Some(BatchStatus::Delivered));
}

#[tokio::test]
async fn a_restart_resumes_after_what_the_sink_finished_with() {
    let dir = tempfile::tempdir().unwrap();
    let acknowledged;
    {
        let (sender, mut receiver) = open(options(dir.path()), metrics()).unwrap();
        sender.send(numbered(0, 300)).await;
        // Whole records come back: at least 100 events.
        acknowledged = read(&mut receiver, 100).await.len() as u64;
        // Read, but held by the sink when it stops: not acknowledged.
        let held = receiver.recv().await.unwrap();
        assert!(!held.is_empty());
        drop(receiver);
        drop(held);
    }
    let (_sender, mut receiver) = open(options(dir.path()), metrics()).unwrap();
    let numbers = read(&mut receiver, (300 - acknowledged) as usize).await;
    assert_eq!(
        numbers.first(),
        Some(&acknowledged),
        "resumes at the first not acknowledged"
    );
    assert_eq!(numbers.last(), Some(&299));
}

#[tokio::test]
async fn a_full_buffer_blocks_until_the_sink_makes_room() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(dir.path());
    options.max_size = 32 * 1024;
    let (sender, mut receiver) = open(options, metrics()).unwrap();
    let writer = tokio::spawn(async move {
        for chunk in 0..20 {
            sender.send(numbered(chunk * 20, chunk * 20 + 20)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!writer.is_finished(), "blocked on a full buffer");
    let size: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    assert!(size <= 32 * 1024 + 1024, "bounded on disk: {size}");
    let numbers = read(&mut receiver, 400).await;
    assert_eq!(numbers, (0..400).collect::<Vec<_>>());
    tokio::time::timeout(Duration::from_secs(5), writer)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn drop_newest_sheds_what_does_not_fit_and_says_so_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(dir.path());
    options.max_size = 16 * 1024;
    options.when_full = WhenFull::DropNewest;
    let (sender, _receiver) = open(options, metrics()).unwrap();
    let (notifier, status) = BatchNotifier::new_with_receiver();
    for chunk in 0..20 {
        let events = numbered(chunk * 20, chunk * 20 + 20)
            .into_iter()
            .map(|e| e.with_finalizers(EventFinalizers::new(Arc::clone(&notifier))))
            .collect();
        sender.send(events).await;
    }
    drop(notifier);
    drop(sender);
    let answer = tokio::time::timeout(Duration::from_secs(2), status).await;
    assert_eq!(answer.unwrap().ok(), Some(BatchStatus::Errored));
}

#[tokio::test]
async fn a_second_howl_cannot_open_the_same_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let _first = open(options(dir.path()), metrics()).unwrap();
    let error = open(options(dir.path()), metrics()).err().unwrap();
    assert!(error.to_string().contains("in use"), "{error}");
}

/// Writes `count` events in batches of 10 and stops cleanly, leaving them
/// all unread; returns the path of the last segment with records.
async fn leave_unread(dir: &Path, count: u64) -> std::path::PathBuf {
    let (sender, receiver) = open(options(dir), metrics()).unwrap();
    for chunk in 0..count / 10 {
        sender.send(numbered(chunk * 10, chunk * 10 + 10)).await;
    }
    drop(sender);
    drop(receiver);
    let ids = segment_files(dir);
    // The newest segment is the empty one the writer would have written next.
    ids.iter()
        .rev()
        .map(|id| format::segment_path(dir, *id))
        .find(|path| std::fs::metadata(path).unwrap().len() > SEGMENT_HEADER as u64)
        .unwrap()
}

#[tokio::test]
async fn a_torn_last_record_is_cut_off_at_any_cut_point() {
    let template = tempfile::tempdir().unwrap();
    let last = leave_unread(template.path(), 40).await;
    let len = std::fs::metadata(&last).unwrap().len();
    let name = last.file_name().unwrap().to_owned();
    // Every cut inside the last record (about 1.2 KiB), in steps.
    for cut in (1..1200).step_by(97) {
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(template.path()).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name() != "buffer.lock" {
                std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
            }
        }
        let torn = dir.path().join(&name);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&torn)
            .unwrap()
            .set_len(len - cut)
            .unwrap();
        let (sender, mut receiver) = open(options(dir.path()), metrics()).unwrap();
        let numbers = read(&mut receiver, 30).await;
        assert_eq!(numbers, (0..30).collect::<Vec<_>>(), "cut {cut}");
        // Not stuck: new writes come through after the repaired tail.
        sender.send(numbered(1000, 1001)).await;
        assert_eq!(read(&mut receiver, 1).await, [1000], "cut {cut}");
    }
}

#[tokio::test]
async fn a_corrupt_record_in_the_middle_is_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let segment = leave_unread(dir.path(), 60).await;
    let mut bytes = std::fs::read(&segment).unwrap();
    // Flip a byte inside the second record's payload.
    let second = SEGMENT_HEADER + (FRAME_HEADER + bytes.len() / 6) + 40;
    let at = second.min(bytes.len() - 1);
    bytes[at] ^= 0xff;
    std::fs::write(&segment, &bytes).unwrap();
    let (_sender, mut receiver) = open(options(dir.path()), metrics()).unwrap();
    let mut numbers = Vec::new();
    while let Ok(Some(batch)) =
        tokio::time::timeout(Duration::from_millis(500), receiver.recv()).await
    {
        for mut event in batch {
            numbers.push(number(&event));
            event.finalize(EventStatus::Delivered);
        }
    }
    assert!(numbers.len() >= 40 && numbers.len() < 60, "{numbers:?}");
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "in order: {numbers:?}"
    );
    assert_eq!(numbers.last(), Some(&59), "reads on past the damage");
}

#[tokio::test]
async fn a_lost_or_damaged_ledger_replays_rather_than_loses() {
    for damage in ["delete", "garbage", "ahead"] {
        let dir = tempfile::tempdir().unwrap();
        {
            let (sender, mut receiver) = open(options(dir.path()), metrics()).unwrap();
            sender.send(numbered(0, 50)).await;
            read(&mut receiver, 50).await;
            tokio::time::sleep(Duration::from_millis(30)).await;
            sender.send(numbered(50, 60)).await;
        }
        let ledger = dir.path().join("ledger");
        match damage {
            "delete" => std::fs::remove_file(&ledger).unwrap(),
            "garbage" => std::fs::write(&ledger, b"not a ledger").unwrap(),
            _ => {
                let last = *segment_files(dir.path()).last().unwrap();
                let cursor = Cursor {
                    segment: last,
                    offset: 1 << 40,
                    next_seq: 1 << 40,
                };
                std::fs::write(&ledger, format::ledger_bytes(cursor)).unwrap();
            }
        }
        let (sender, mut receiver) = open(options(dir.path()), metrics()).unwrap();
        sender.send(numbered(1000, 1001)).await;
        let mut numbers = Vec::new();
        while !numbers.contains(&1000) {
            numbers.extend(read(&mut receiver, 1).await);
        }
        if damage != "ahead" {
            assert!(
                numbers.contains(&55),
                "{damage}: nothing unacknowledged is lost: {numbers:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_segment_with_a_bad_header_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let segment = leave_unread(dir.path(), 100).await;
    let first = format::segment_path(dir.path(), segment_files(dir.path())[0]);
    assert_ne!(first, segment, "the test needs two segments with records");
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[0] = b'X';
    std::fs::write(&first, &bytes).unwrap();
    let (_sender, mut receiver) = open(options(dir.path()), metrics()).unwrap();
    let batch = tokio::time::timeout(Duration::from_secs(2), receiver.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(number(&batch[0]) > 0, "starts after the damaged segment");
    assert_eq!(
        receiver.shared.lost_events.load(Ordering::Relaxed),
        number(&batch[0]),
        "the records behind the damaged header are counted"
    );
    assert!(
        first.with_extension("bad").exists(),
        "kept aside for a human"
    );
}

#[tokio::test]
async fn a_reader_close_behind_takes_records_from_memory_and_one_far_behind_reads_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (sender, mut receiver) = open(options(dir.path()), metrics()).unwrap();

    sender.send(numbered(0, 50)).await;
    assert_eq!(lock(&sender.shared.hot).records.len(), 1);
    assert_eq!(read(&mut receiver, 50).await, (0..50).collect::<Vec<_>>());
    assert!(
        receiver.reader.file.is_none(),
        "a record still in memory is not read back from disk"
    );

    // Far more than the tail holds: it stays bounded, and what it does not
    // hold comes from disk, all in order.
    for chunk in 1..600 {
        sender.send(numbered(chunk * 50, chunk * 50 + 50)).await;
    }
    {
        let hot = lock(&sender.shared.hot);
        assert!(hot.bytes <= HOT_BYTES, "{} bytes held", hot.bytes);
        assert!(!hot.records.is_empty());
    }
    assert_eq!(
        read(&mut receiver, 599 * 50).await,
        (50..30_000).collect::<Vec<_>>()
    );
    assert!(receiver.reader.file.is_some(), "the start came from disk");
    assert!(lock(&sender.shared.hot).records.is_empty());
}

#[tokio::test]
async fn records_written_with_a_larger_max_size_are_read_after_it_is_lowered() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut large = options(dir.path());
        large.segment_size = Some(8 * 1024 * 1024);
        let (sender, _receiver) = open(large, metrics()).unwrap();
        // One record of about 2 MiB, far above what an 8 KiB segment holds.
        sender.send(numbered(0, 20_000)).await;
    }
    let (_sender, mut receiver) = open(options(dir.path()), metrics()).unwrap();
    assert_eq!(
        read(&mut receiver, 20_000).await,
        (0..20_000).collect::<Vec<_>>()
    );
    assert_eq!(receiver.shared.lost_events.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_segment_deleted_while_running_is_skipped_counted_once_and_reading_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (sender, mut receiver) = open(options(dir.path()), metrics()).unwrap();
    // More than the hot tail holds, so the end is read from disk.
    for chunk in 0..2_000 {
        sender.send(numbered(chunk * 10, chunk * 10 + 10)).await;
    }
    let ids = segment_files(dir.path());
    let victim = ids[ids.len() - 4];
    let header = std::fs::read(format::segment_path(dir.path(), victim)).unwrap();
    std::fs::remove_file(format::segment_path(dir.path(), victim)).unwrap();
    let first_of_victim = u64::from_le_bytes(header[20..28].try_into().unwrap());
    let mut numbers = Vec::new();
    while numbers.last() != Some(&19_999) {
        numbers.extend(read(&mut receiver, 1).await);
    }
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "in order");
    let missing = 20_000 - numbers.len() as u64;
    assert!(missing > 0, "the deleted segment held events");
    assert!(!numbers.contains(&first_of_victim));
    assert_eq!(
        receiver.shared.lost_events.load(Ordering::Relaxed),
        missing,
        "each lost event counted once"
    );
}

#[tokio::test]
async fn orphaned_buffers_are_found_and_empty_ones_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let buffers = dir.path().join("buffers");
    for (id, events) in [("kept", 10), ("renamed", 10), ("empty", 0)] {
        let (sender, _receiver) = open(options(&buffers.join(id)), metrics()).unwrap();
        sender.send(numbered(0, events)).await;
    }
    let found = orphans(&buffers, &["kept"]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "renamed");
    assert!(found[0].1 > 0);
}
