//! The bytes of a disk buffer: segment files, record frames and the ledger.
//!
//! A buffer is a directory of **segments** `seg-<id>.hbuf` (the id a u64
//! written as 20 digits, so names sort in order and ids never wrap), each a
//! 32-byte header and then records, appended. A **record** is a 24-byte
//! frame header and an encoded batch of events:
//!
//! ```text
//! segment header: magic "HOWLBUF1" | version u16 | flags u16 | id u64 | first seq u64 | crc u32
//! record frame:   magic u32 | payload length u32 | first seq u64 | events u32 | crc u32 | payload
//! ledger:         magic "HOWLLDG1" | version u16 | 0 u16 | segment u64 | offset u64 | next seq u64 | crc u32
//! ```
//!
//! Little-endian throughout. Checksums are CRC-32C (Castagnoli): the
//! frame's covers its header *and* payload, so a corrupted length is caught
//! too. Sequence numbers count events, so a gap between two good records
//! says exactly how many events were lost between them, whatever the bytes
//! in between look like.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

pub const SEGMENT_MAGIC: &[u8; 8] = b"HOWLBUF1";
pub const LEDGER_MAGIC: &[u8; 8] = b"HOWLLDG1";
pub const FRAME_MAGIC: u32 = 0x484f_574c; // "HOWL"
pub const VERSION: u16 = 1;
pub const SEGMENT_HEADER: usize = 32;
pub const FRAME_HEADER: usize = 24;
pub const LEDGER_BYTES: usize = 44;

/// The file name of segment `id`.
pub fn segment_name(id: u64) -> String {
    format!("seg-{id:020}.hbuf")
}

/// The id of a segment file name, if it is one.
pub fn segment_id(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("seg-")?.strip_suffix(".hbuf")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The path of segment `id` in `dir`.
pub fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(segment_name(id))
}

/// A segment's header.
pub fn segment_header(id: u64, first_seq: u64) -> [u8; SEGMENT_HEADER] {
    let mut header = [0; SEGMENT_HEADER];
    header[..8].copy_from_slice(SEGMENT_MAGIC);
    header[8..10].copy_from_slice(&VERSION.to_le_bytes());
    header[12..20].copy_from_slice(&id.to_le_bytes());
    header[20..28].copy_from_slice(&first_seq.to_le_bytes());
    let crc = crc32c::crc32c(&header[..28]);
    header[28..32].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Reads a segment's header: `Some(first seq)` when it is sound and names
/// segment `id`.
pub fn read_segment_header(file: &mut File, id: u64) -> std::io::Result<Option<u64>> {
    let mut header = [0; SEGMENT_HEADER];
    file.seek(SeekFrom::Start(0))?;
    if read_full(file, &mut header)? < SEGMENT_HEADER {
        return Ok(None);
    }
    let sound = &header[..8] == SEGMENT_MAGIC
        && u16::from_le_bytes([header[8], header[9]]) == VERSION
        && le_u32(&header[28..32]) == crc32c::crc32c(&header[..28])
        && le_u64(&header[12..20]) == id;
    Ok(sound.then(|| le_u64(&header[20..28])))
}

/// Appends a record's frame header and payload to `out`.
pub fn frame(first_seq: u64, events: u32, payload: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&FRAME_MAGIC.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&first_seq.to_le_bytes());
    out.extend_from_slice(&events.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out[start..start + 20]), payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
}

/// A record read back.
#[derive(Debug)]
pub struct Record {
    /// The sequence number of its first event.
    pub first_seq: u64,
    /// How many events it holds.
    pub events: u32,
    /// The encoded events.
    pub payload: bytes::Bytes,
    /// Where the record ends in its segment.
    pub end: u64,
}

/// What is at an offset of a segment.
#[derive(Debug)]
pub enum Found {
    /// A sound record.
    Record(Record),
    /// Nothing more (the offset is the end of the data).
    End,
    /// A frame that is cut short: the rest of the file is shorter than it.
    Torn,
    /// Bytes that are not a sound frame (bad magic, checksum or length).
    Corrupt,
}

/// Reads the frame at `offset`, never trusting a length beyond `limit`
/// (the end of the data, or of the file).
pub fn read_record(
    file: &mut File,
    offset: u64,
    limit: u64,
    max_payload: usize,
) -> std::io::Result<Found> {
    if offset >= limit {
        return Ok(Found::End);
    }
    if limit - offset < FRAME_HEADER as u64 {
        return Ok(Found::Torn);
    }
    let mut header = [0; FRAME_HEADER];
    file.seek(SeekFrom::Start(offset))?;
    if read_full(file, &mut header)? < FRAME_HEADER {
        return Ok(Found::Torn);
    }
    if le_u32(&header[0..4]) != FRAME_MAGIC {
        return Ok(Found::Corrupt);
    }
    let len = le_u32(&header[4..8]) as usize;
    if len > max_payload {
        return Ok(Found::Corrupt);
    }
    let end = offset + (FRAME_HEADER + len) as u64;
    if end > limit {
        return Ok(Found::Torn);
    }
    let mut payload = vec![0; len];
    if read_full(file, &mut payload)? < len {
        return Ok(Found::Torn);
    }
    let crc = crc32c::crc32c_append(crc32c::crc32c(&header[..20]), &payload);
    if crc != le_u32(&header[20..24]) {
        return Ok(Found::Corrupt);
    }
    Ok(Found::Record(Record {
        first_seq: le_u64(&header[8..16]),
        events: le_u32(&header[16..20]),
        payload: payload.into(),
        end,
    }))
}

/// Looks for the next sound frame after a corrupt one: the first offset
/// past `from` where a frame with the magic, a plausible length and a good
/// checksum starts, with a sequence number not below `min_seq`.
pub fn resync(
    file: &mut File,
    from: u64,
    limit: u64,
    max_payload: usize,
    min_seq: u64,
) -> std::io::Result<Option<(u64, Record)>> {
    let magic = FRAME_MAGIC.to_le_bytes();
    let mut window = vec![0; 64 * 1024];
    let mut at = from + 1;
    while at + FRAME_HEADER as u64 <= limit {
        file.seek(SeekFrom::Start(at))?;
        let read = read_full(file, &mut window)?;
        if read < 4 {
            break;
        }
        let mut found = None;
        for i in 0..=read - 4 {
            if window[i..i + 4] == magic {
                found = Some(at + i as u64);
                break;
            }
        }
        match found {
            Some(candidate) => {
                if let Found::Record(record) = read_record(file, candidate, limit, max_payload)?
                    && record.first_seq >= min_seq
                {
                    return Ok(Some((candidate, record)));
                }
                at = candidate + 1;
            }
            None => at += (read - 3) as u64,
        }
    }
    Ok(None)
}

/// The ack cursor: where the reader resumes after a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The segment.
    pub segment: u64,
    /// The offset in it of the first record not yet acknowledged.
    pub offset: u64,
    /// The sequence number of that record's first event.
    pub next_seq: u64,
}

/// The ledger's bytes.
pub fn ledger_bytes(cursor: Cursor) -> [u8; LEDGER_BYTES] {
    let mut bytes = [0; LEDGER_BYTES];
    bytes[..8].copy_from_slice(LEDGER_MAGIC);
    bytes[8..10].copy_from_slice(&VERSION.to_le_bytes());
    bytes[12..20].copy_from_slice(&cursor.segment.to_le_bytes());
    bytes[20..28].copy_from_slice(&cursor.offset.to_le_bytes());
    bytes[28..36].copy_from_slice(&cursor.next_seq.to_le_bytes());
    let crc = crc32c::crc32c(&bytes[..40]);
    bytes[40..44].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// A ledger read back, if it is sound.
pub fn parse_ledger(bytes: &[u8]) -> Option<Cursor> {
    if bytes.len() != LEDGER_BYTES
        || &bytes[..8] != LEDGER_MAGIC
        || u16::from_le_bytes([bytes[8], bytes[9]]) != VERSION
        || le_u32(&bytes[40..44]) != crc32c::crc32c(&bytes[..40])
    {
        return None;
    }
    Some(Cursor {
        segment: le_u64(&bytes[12..20]),
        offset: le_u64(&bytes[20..28]),
        next_seq: le_u64(&bytes[28..36]),
    })
}

/// Reads until `buffer` is full or the file ends; returns what was read.
fn read_full(file: &mut File, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut read = 0;
    while read < buffer.len() {
        match file.read(&mut buffer[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(read)
}

fn le_u32(bytes: &[u8]) -> u32 {
    let mut le = [0; 4];
    le.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(le)
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut le = [0; 8];
    le.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(le)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_is_castagnoli() {
        // The check value of CRC-32C (RFC 3720 / iSCSI) for "123456789".
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn segment_names_sort_by_id_and_parse_back() {
        assert_eq!(segment_name(7), "seg-00000000000000000007.hbuf");
        assert_eq!(segment_id(&segment_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(segment_id("seg-7.hbuf"), None);
        assert_eq!(segment_id("ledger"), None);
    }

    #[test]
    fn a_ledger_round_trips_and_a_damaged_one_is_refused() {
        let cursor = Cursor {
            segment: 3,
            offset: 4096,
            next_seq: 99,
        };
        let mut bytes = ledger_bytes(cursor);
        assert_eq!(parse_ledger(&bytes), Some(cursor));
        bytes[21] ^= 1;
        assert_eq!(parse_ledger(&bytes), None);
        assert_eq!(parse_ledger(&bytes[..10]), None);
    }
}
