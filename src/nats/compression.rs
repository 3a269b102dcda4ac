//! Compressed message payloads (`compression = "zstd"` on the `nats`
//! sink): what cuts the broker's work once events are packed.
//!
//! With `events_per_message` the broker's cost is per byte, not per
//! message: it copies, stores, reads back and sends every byte, and on a
//! two-core machine it used more CPU than the howls at either end.
//! Envelopes are JSON whose keys and many values repeat from event to
//! event, so zstd's fastest level shrinks a pack several times for less
//! CPU than the broker then saves (`scripts/bench --only fleet`).
//!
//! A compressed message says so in a `Content-Encoding: zstd` header, and
//! the `nats` source decompresses whatever carries it, whatever its own
//! options: workers need no setting, and uncompressed messages (older
//! edges, other producers) keep working beside compressed ones.
//!
//! Decompressing is bounded: a frame must state its size (the sink's
//! always do), and a size above [`MAX_DECOMPRESSED`] is refused before
//! anything is allocated, so a small hostile message cannot make a worker
//! allocate gigabytes.

use std::cell::RefCell;

use bytes::Bytes;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The header that names a payload's compression, as in HTTP.
pub const HEADER: &str = "Content-Encoding";

/// zstd's fastest level: the point is to spare the broker work, not to
/// spend the edge's.
const ZSTD_LEVEL: i32 = 1;

/// The largest payload a compressed message may expand to: NATS's own
/// ceiling for `max_payload` (64 MiB), which no uncompressed message can
/// exceed either.
pub const MAX_DECOMPRESSED: u64 = 64 << 20;

thread_local! {
    // A zstd context per thread, made once: making one per message cost
    // as much as a tenth of the edge's and the worker's CPU.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// How the `nats` sink compresses message payloads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Payloads as encoded.
    #[default]
    None,
    /// zstd at its fastest level, with `Content-Encoding: zstd`.
    Zstd,
}

impl Compression {
    /// The header value that marks a payload compressed this way.
    pub fn header_value(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Zstd => Some("zstd"),
        }
    }

    /// Compresses `payload` (unchanged for `None`).
    pub fn compress(self, payload: Bytes) -> Bytes {
        match self {
            Compression::None => payload,
            Compression::Zstd => {
                let compressed = COMPRESSOR.with_borrow_mut(|kept| {
                    let mut compressor = match kept.take() {
                        Some(compressor) => compressor,
                        None => zstd::bulk::Compressor::new(ZSTD_LEVEL).ok()?,
                    };
                    let compressed = compressor.compress(&payload).ok();
                    *kept = Some(compressor);
                    compressed
                });
                // zstd fails only when it cannot allocate its context: the
                // payload then goes as it is, and a worker, finding it is
                // not zstd despite the header, counts a decode error and
                // reads it as it came. Nothing is lost.
                compressed.map_or(payload, Bytes::from)
            }
        }
    }
}

/// Why a payload marked compressed could not be decompressed.
#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    /// A `Content-Encoding` howl does not know.
    #[error("unknown {HEADER} {0:?} (howl reads zstd)")]
    Unknown(String),
    /// Not a zstd frame, or a corrupt one.
    #[error("not a valid zstd frame: {0}")]
    Corrupt(String),
    /// The frame does not state its size: refused, since its size could
    /// then be learned only by expanding it.
    #[error("the zstd frame does not state its decompressed size")]
    NoSize,
    /// The frame would expand past [`MAX_DECOMPRESSED`].
    #[error("the zstd frame expands to {0} bytes, above the {MAX_DECOMPRESSED}-byte limit")]
    TooLarge(u64),
}

/// The payload of a message whose `Content-Encoding` is `encoding`
/// (`None`: no header, the payload as it came).
pub fn decompress(encoding: Option<&str>, payload: Bytes) -> Result<Bytes, DecompressError> {
    let Some(encoding) = encoding else {
        return Ok(payload);
    };
    if !encoding.eq_ignore_ascii_case("zstd") {
        return Err(DecompressError::Unknown(encoding.to_string()));
    }
    let size = zstd::zstd_safe::get_frame_content_size(&payload)
        .map_err(|_| DecompressError::Corrupt("no frame header".to_string()))?
        .ok_or(DecompressError::NoSize)?;
    if size > MAX_DECOMPRESSED {
        return Err(DecompressError::TooLarge(size));
    }
    // `size` is at most MAX_DECOMPRESSED, which fits any usize howl runs on.
    let capacity = usize::try_from(size).unwrap_or(usize::MAX);
    DECOMPRESSOR.with_borrow_mut(|kept| {
        let mut decompressor = match kept.take() {
            Some(decompressor) => decompressor,
            None => zstd::bulk::Decompressor::new()
                .map_err(|error| DecompressError::Corrupt(error.to_string()))?,
        };
        let decompressed = decompressor.decompress(&payload, capacity);
        *kept = Some(decompressor);
        decompressed
            .map(Bytes::from)
            .map_err(|error| DecompressError::Corrupt(error.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compressed_payload_comes_back_as_it_was() {
        let payload = Bytes::from(
            r#"[{"message":"GET /a 200","host":"web-1"},{"message":"GET /b 404","host":"web-1"}]"#
                .repeat(50),
        );
        let compressed = Compression::Zstd.compress(payload.clone());
        assert!(compressed.len() < payload.len() / 5, "{}", compressed.len());
        assert_eq!(decompress(Some("zstd"), compressed).unwrap(), payload);
    }

    #[test]
    fn no_header_and_none_leave_the_payload_alone() {
        let payload = Bytes::from_static(b"{\"message\":\"x\"}");
        assert_eq!(Compression::None.compress(payload.clone()), payload);
        assert_eq!(Compression::None.header_value(), None);
        assert_eq!(decompress(None, payload.clone()).unwrap(), payload);
    }

    #[test]
    fn bad_frames_and_unknown_encodings_are_errors_not_panics() {
        let garbage = Bytes::from_static(b"not zstd at all");
        assert!(matches!(
            decompress(Some("zstd"), garbage.clone()),
            Err(DecompressError::Corrupt(_))
        ));
        assert!(matches!(
            decompress(Some("gzip"), garbage),
            Err(DecompressError::Unknown(name)) if name == "gzip"
        ));
        // A valid frame cut short.
        let whole = Compression::Zstd.compress(Bytes::from(vec![b'a'; 10_000]));
        let cut = whole.slice(..whole.len() - 3);
        assert!(matches!(
            decompress(Some("zstd"), cut),
            Err(DecompressError::Corrupt(_))
        ));
    }

    #[test]
    fn a_frame_claiming_more_than_the_limit_is_refused_before_allocating() {
        // A frame header that states a 1 TiB content size: the magic
        // number, a descriptor (an 8-byte size field, a single segment: no
        // window byte), then the size.
        let mut frame = vec![0x28, 0xB5, 0x2F, 0xFD, 0xE0];
        frame.extend_from_slice(&(1u64 << 40).to_le_bytes());
        frame.extend_from_slice(&[0; 8]);
        assert!(matches!(
            decompress(Some("zstd"), Bytes::from(frame)),
            Err(DecompressError::TooLarge(size)) if size == 1 << 40
        ));
    }

    #[test]
    fn a_frame_without_its_size_is_refused() {
        // Streamed zstd omits the size when it is not known in advance.
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        std::io::Write::write_all(&mut encoder, b"hello").unwrap();
        let frame = encoder.finish().unwrap();
        assert!(matches!(
            decompress(Some("zstd"), Bytes::from(frame)),
            Err(DecompressError::NoSize)
        ));
    }
}
