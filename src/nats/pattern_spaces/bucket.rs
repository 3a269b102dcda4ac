//! How pattern spaces are laid out in the fleet's patterns bucket.
//!
//! A bucket value is limited by the server's `max_payload` (1 MiB by
//! default), and a space's snapshot can be larger. So a space is
//! compressed (zlib) and cut into chunks, and a small *head* says which
//! chunks make the space:
//!
//! - `head.<namespace>.<scope>` → JSON [`Head`]: generation, chunk count,
//!   length and CRC-32C of the compressed bytes, writer, save time;
//! - `chunk.<namespace>.<scope>.<set>.<slot>.<i>` → the generation (8
//!   bytes, little endian) and the `i`-th piece, where `set` is the
//!   writer's own (its name as a token, [`Head::set`]) and `slot` the
//!   generation's parity. Heads written before sets existed name none:
//!   their chunks are `chunk.<namespace>.<scope>.<slot>.<i>`.
//!
//! A writer writes the chunks of generation `g + 1` into the slot of its
//! own set that the current head (generation `g`) does not use, then swaps
//! the head by compare-and-swap on its revision. Each writer having its
//! own set, two instances saving one space at once (a hand-over, both from
//! one revision) never overwrite each other's chunks: the loser's swap
//! fails, and the winner's chunks are whole. Once the head moved away from
//! another writer's chunks, the new writer purges them (each only if it
//! still holds that generation, compared by revision, so that a chunk the
//! other writes meanwhile stays). A reader reads the head, then its
//! chunks, and checks each chunk's generation and the whole checksum:
//! chunks without a head (a writer killed mid-save) are never read, the
//! head still names the other slot; a reader overtaken by two saves sees
//! a generation mismatch and reads again. Chunks beyond a generation's
//! count, left by an older and larger one, are purged after the head moved.
//!
//! Namespaces and scopes are [`key_token`]s, so `head.<namespace>.>` is
//! exactly one transform's heads. One reserved head, `head.<namespace>.==`
//! (no scope's token is `==`), is written when a transform first opens the
//! bucket: a watch of the heads then always has an entry to end its
//! initial snapshot with.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::kv::{CreateErrorKind, Store, UpdateErrorKind, Watch};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::nats::kv::{BucketFailure, BucketSpec, from_key_token, key_token, open_bucket};

/// The largest chunk: well below the server's default `max_payload` of 1
/// MiB, leaving room for headers.
pub const CHUNK_BYTES: usize = 512 * 1024;

/// How long one bucket operation may take before it counts as failed (the
/// bucket is then treated as out of reach).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// The head of the marker that ends a watch's initial snapshot.
const MARKER: &str = "==";

/// What a space's head says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Counts the saves of the space; its parity is the chunks' slot.
    pub generation: u64,
    /// How many chunks.
    pub chunks: u32,
    /// The compressed length.
    pub bytes: u64,
    /// CRC-32C of the compressed bytes.
    pub checksum: u32,
    /// The instance that saved it (for people reading the bucket, and to
    /// tell one's own saves from others').
    pub writer: String,
    /// When it was saved (Unix ms, the writer's clock): the later of two
    /// saves made while the bucket was out of reach wins.
    pub saved_at_ms: i64,
    /// The writer's chunk set (a key token): its chunks are apart from
    /// every other writer's. `None` for heads written before sets existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<String>,
}

/// A space as read from the bucket.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Its head.
    pub head: Head,
    /// The head's revision (what the next save compares and swaps).
    pub revision: u64,
    /// The snapshot, as the writer serialized it (JSON).
    pub snapshot: Vec<u8>,
}

/// Why a bucket operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SpaceError {
    /// The bucket is out of reach or answered with an error: try later.
    #[error("the patterns bucket `{bucket}` is out of reach: {cause}")]
    Unavailable {
        /// The bucket.
        bucket: String,
        /// Why.
        cause: String,
    },
    /// The bucket cannot be used as it is (not a bucket; a value that does
    /// not read).
    #[error("the patterns bucket `{bucket}` cannot be used: {cause}")]
    Broken {
        /// The bucket.
        bucket: String,
        /// Why.
        cause: String,
    },
    /// Another instance saved the space after the revision a save was
    /// based on: the save was not made.
    #[error("space `{scope}` was saved by another instance (now at revision {revision})")]
    Conflict {
        /// The scope.
        scope: String,
        /// The head's revision now.
        revision: u64,
        /// The head now.
        head: Box<Head>,
    },
}

impl SpaceError {
    /// Whether a later attempt may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// The spaces of one `pattern` transform (a namespace) in a bucket.
#[derive(Clone)]
pub struct SpaceBucket {
    store: Store,
    bucket: String,
    namespace: String,
    chunk_bytes: usize,
}

impl std::fmt::Debug for SpaceBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpaceBucket")
            .field("bucket", &self.bucket)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// The bucket that holds the pattern spaces of the fleet whose shared
/// state is in `bucket`: a bucket of its own, so that the (small, often
/// watched) triage state is not mixed with snapshots of megabytes.
pub fn patterns_bucket(bucket: &str) -> String {
    format!("{bucket}_patterns")
}

impl SpaceBucket {
    /// Opens (creating when missing) the patterns bucket of `bucket`, for
    /// the spaces of `namespace` (a transform's id).
    pub async fn open(
        js: &jetstream::Context,
        bucket: &str,
        namespace: &str,
    ) -> Result<Self, SpaceError> {
        let name = patterns_bucket(bucket);
        let spec = BucketSpec {
            name: name.clone(),
            history: 1,
            max_age: Duration::ZERO,
        };
        let store = open_bucket(js, &spec).await.map_err(|e| match e {
            BucketFailure::Unavailable { .. } => SpaceError::Unavailable {
                bucket: name.clone(),
                cause: e.to_string(),
            },
            BucketFailure::NotABucket { .. } | BucketFailure::AgeLimited { .. } => {
                SpaceError::Broken {
                    bucket: name.clone(),
                    cause: e.to_string(),
                }
            }
        })?;
        let bucket = Self {
            store,
            bucket: name,
            namespace: key_token(namespace),
            chunk_bytes: CHUNK_BYTES,
        };
        let marker = bucket.head_key_token(MARKER);
        match timed(bucket.store.create(&marker, Bytes::from_static(b"{}"))).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) if e.kind() == CreateErrorKind::AlreadyExists => {}
            Ok(Err(e)) => return Err(bucket.unavailable(&e)),
            Err(e) => return Err(bucket.unavailable(&e)),
        }
        Ok(bucket)
    }

    /// With chunks of at most `bytes` (tests cut small spaces into many).
    pub fn with_chunk_bytes(mut self, bytes: usize) -> Self {
        self.chunk_bytes = bytes.max(1);
        self
    }

    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.bucket
    }

    /// The underlying key-value store (tests inspect and tamper with it).
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn unavailable(&self, error: &dyn std::error::Error) -> SpaceError {
        SpaceError::Unavailable {
            bucket: self.bucket.clone(),
            cause: crate::http::error_chain(error),
        }
    }

    fn broken(&self, cause: String) -> SpaceError {
        SpaceError::Broken {
            bucket: self.bucket.clone(),
            cause,
        }
    }

    fn head_key_token(&self, scope_token: &str) -> String {
        format!("head.{}.{scope_token}", self.namespace)
    }

    /// The key of `scope`'s head.
    pub fn head_key(&self, scope: &str) -> String {
        self.head_key_token(&key_token(scope))
    }

    /// The key of chunk `index` in `slot` of `scope`'s chunk `set` (`None`:
    /// the slots of heads written before sets existed).
    pub fn chunk_key(&self, scope: &str, set: Option<&str>, slot: u64, index: u32) -> String {
        let set = set.map(|set| format!("{set}.")).unwrap_or_default();
        format!(
            "chunk.{}.{}.{set}{}.{index}",
            self.namespace,
            key_token(scope),
            slot % 2
        )
    }

    /// The scope a head's key names (`None` for other keys and the marker).
    pub fn scope_of_head(&self, key: &str) -> Option<String> {
        let token = key
            .strip_prefix("head.")?
            .strip_prefix(self.namespace.as_str())?
            .strip_prefix('.')?;
        if token == MARKER {
            return None;
        }
        from_key_token(token)
    }

    /// Watches this namespace's heads: the latest of each first (ending
    /// with an entry whose `seen_current` is set), then every change.
    pub async fn watch_heads(&self) -> Result<Watch, SpaceError> {
        let filter = format!("head.{}.>", self.namespace);
        timed(self.store.watch_with_history(filter))
            .await
            .map_err(|e| self.unavailable(&e))?
            .map_err(|e| self.unavailable(&e))
    }

    /// `scope`'s head and its revision, if it was ever saved.
    pub async fn head(&self, scope: &str) -> Result<Option<(Head, u64)>, SpaceError> {
        match self.head_entry(scope).await? {
            None => Ok(None),
            Some((head, revision)) => Ok(Some((head?, revision))),
        }
    }

    /// `scope`'s head, read or not, and its revision.
    async fn head_entry(
        &self,
        scope: &str,
    ) -> Result<Option<(Result<Head, SpaceError>, u64)>, SpaceError> {
        let entry = timed(self.store.entry(self.head_key(scope)))
            .await
            .map_err(|e| self.unavailable(&e))?
            .map_err(|e| self.unavailable(&e))?;
        Ok(entry
            .filter(|e| !e.value.is_empty())
            .map(|entry| (self.parse_head(&entry.value), entry.revision)))
    }

    /// Reads a head's value.
    pub fn parse_head(&self, value: &[u8]) -> Result<Head, SpaceError> {
        let head: Head = serde_json::from_slice(value)
            .map_err(|e| self.broken(format!("a head does not read: {e}")))?;
        // No howl writes chunks larger than this: a head claiming more
        // bytes than its chunks can hold was not written by howl.
        let most = u64::from(head.chunks) * CHUNK_BYTES.max(self.chunk_bytes) as u64;
        if head.bytes > most {
            return Err(self.broken(format!(
                "a head claims {} bytes in {} chunks (at most {most}): not written by howl",
                head.bytes, head.chunks
            )));
        }
        Ok(head)
    }

    /// Reads `scope` as its current head says; `None` when it was never
    /// saved. Overtaken by saves (the head moved on while its chunks were
    /// read), it reads again, a few times. A space whose chunks never
    /// match while its head stays put is corrupt, not busy: `Broken`.
    pub async fn read(&self, scope: &str) -> Result<Option<Fetched>, SpaceError> {
        let mut why = String::new();
        let mut revisions = Vec::new();
        for _ in 0..5 {
            let Some((head, revision)) = self.head(scope).await? else {
                return Ok(None);
            };
            revisions.push(revision);
            match self.read_chunks(scope, &head).await? {
                Ok(compressed) => {
                    let snapshot = decompress(&compressed)
                        .map_err(|e| self.broken(format!("space `{scope}` does not read: {e}")))?;
                    return Ok(Some(Fetched {
                        head,
                        revision,
                        snapshot,
                    }));
                }
                Err(torn) => why = torn,
            }
        }
        if revisions.windows(2).all(|pair| pair[0] == pair[1]) {
            return Err(self.broken(format!(
                "space `{scope}` does not read ({why}) though its head did not change"
            )));
        }
        Err(self.unavailable(&std::io::Error::other(format!(
            "space `{scope}` kept changing while it was read ({why})"
        ))))
    }

    /// The compressed bytes of `head`'s chunks, or why they are not (all)
    /// of its generation.
    async fn read_chunks(
        &self,
        scope: &str,
        head: &Head,
    ) -> Result<Result<Vec<u8>, String>, SpaceError> {
        // The head's size is only a hint (the checksum is what is
        // trusted): a reservation bounded by a few chunks.
        let hint = usize::try_from(head.bytes).unwrap_or(0);
        let mut compressed = Vec::with_capacity(hint.min(8 * CHUNK_BYTES));
        for index in 0..head.chunks {
            let key = self.chunk_key(scope, head.set.as_deref(), head.generation, index);
            let value = timed(self.store.get(key.as_str()))
                .await
                .map_err(|e| self.unavailable(&e))?
                .map_err(|e| self.unavailable(&e))?;
            let Some(value) = value else {
                return Ok(Err(format!("chunk {key} is missing")));
            };
            let Some((generation, piece)) = value.split_first_chunk::<8>() else {
                return Ok(Err(format!("chunk {key} is too short")));
            };
            if u64::from_le_bytes(*generation) != head.generation {
                return Ok(Err(format!("chunk {key} is of another generation")));
            }
            compressed.extend_from_slice(piece);
        }
        if compressed.len() as u64 != head.bytes || crc32c::crc32c(&compressed) != head.checksum {
            return Ok(Err("the checksum does not match".into()));
        }
        Ok(Ok(compressed))
    }

    /// Saves `snapshot` as `scope`'s next generation, if the head is still
    /// at revision `base` (`None`: if the space was never saved). Returns
    /// the new head's revision.
    pub async fn write(
        &self,
        scope: &str,
        snapshot: &[u8],
        base: Option<u64>,
        writer: &str,
        saved_at_ms: i64,
    ) -> Result<u64, SpaceError> {
        let current = self.head_entry(scope).await?;
        let generation = match (&current, base) {
            (None, None) => 1,
            // A head that does not read (not written by howl) is replaced:
            // there is no space to lose in it.
            (Some((Err(unreadable), _)), _) => {
                tracing::warn!(
                    bucket = %self.bucket,
                    scope,
                    "replacing an unreadable head of a pattern space: {unreadable}"
                );
                1
            }
            (Some((Ok(head), revision)), Some(base)) if *revision == base => head.generation + 1,
            (Some((Ok(head), revision)), _) => {
                return Err(SpaceError::Conflict {
                    scope: scope.to_string(),
                    revision: *revision,
                    head: Box::new(head.clone()),
                });
            }
            // The head was purged by hand; start again.
            (None, Some(_)) => 1,
        };
        let set = key_token(writer);
        let compressed = compress(snapshot).map_err(|e| self.unavailable(&e))?;
        let pieces: Vec<&[u8]> = compressed.chunks(self.chunk_bytes).collect();
        let chunks = u32::try_from(pieces.len())
            .map_err(|_| self.broken(format!("space `{scope}` is too large")))?;
        for (index, piece) in pieces.iter().enumerate() {
            let mut value = Vec::with_capacity(8 + piece.len());
            value.extend_from_slice(&generation.to_le_bytes());
            value.extend_from_slice(piece);
            let key = self.chunk_key(scope, Some(&set), generation, index as u32);
            timed(self.store.put(key, value.into()))
                .await
                .map_err(|e| self.unavailable(&e))?
                .map_err(|e| self.unavailable(&e))?;
        }
        let head = Head {
            generation,
            chunks,
            bytes: compressed.len() as u64,
            checksum: crc32c::crc32c(&compressed),
            writer: writer.to_string(),
            saved_at_ms,
            set: Some(set.clone()),
        };
        let value: Bytes = serde_json::to_vec(&head)
            .map_err(|e| self.broken(e.to_string()))?
            .into();
        let key = self.head_key(scope);
        let swapped = match current {
            Some((_, revision)) => timed(self.store.update(&key, value, revision))
                .await
                .map_err(|e| self.unavailable(&e))?
                .map_err(|e| match e.kind() {
                    UpdateErrorKind::WrongLastRevision => None,
                    _ => Some(self.unavailable(&e)),
                }),
            None => timed(self.store.create(&key, value))
                .await
                .map_err(|e| self.unavailable(&e))?
                .map_err(|e| match e.kind() {
                    CreateErrorKind::AlreadyExists => None,
                    _ => Some(self.unavailable(&e)),
                }),
        };
        let revision = match swapped {
            Ok(revision) => revision,
            Err(Some(error)) => return Err(error),
            Err(None) => {
                // Lost the race between reading the head and swapping it:
                // the chunks just written are named by no head.
                self.purge_from(scope, Some(&set), generation, 0, Some(generation))
                    .await;
                let (head, revision) = self
                    .head(scope)
                    .await?
                    .ok_or_else(|| self.unavailable(&std::io::Error::other("the head vanished")))?;
                return Err(SpaceError::Conflict {
                    scope: scope.to_string(),
                    revision,
                    head: Box::new(head),
                });
            }
        };
        self.purge_from(scope, Some(&set), generation, chunks, None)
            .await;
        // The chunks the head named before, when they are not of this
        // writer's set (another writer's, or of a head without a set).
        if let Some((Ok(previous), _)) = &current
            && previous.set.as_deref() != Some(set.as_str())
        {
            self.purge_from(
                scope,
                previous.set.as_deref(),
                previous.generation,
                0,
                Some(previous.generation),
            )
            .await;
        }
        Ok(revision)
    }

    /// Purges the chunks of `generation`'s slot in `set` from index `from`
    /// on: what an older, larger generation left there, or (with `only`)
    /// the chunks of generation `only` that the head no longer names, each
    /// by revision, so that a chunk rewritten meanwhile stays. Best effort:
    /// a leftover chunk is never read (the head names its set and count).
    async fn purge_from(
        &self,
        scope: &str,
        set: Option<&str>,
        generation: u64,
        from: u32,
        only: Option<u64>,
    ) {
        for index in from.. {
            let key = self.chunk_key(scope, set, generation, index);
            let entry = match timed(self.store.entry(key.as_str())).await {
                Ok(Ok(Some(entry))) if !entry.value.is_empty() => entry,
                _ => return,
            };
            let stamp = entry
                .value
                .first_chunk::<8>()
                .map(|g| u64::from_le_bytes(*g));
            if only.is_some() && stamp != only {
                return;
            }
            let purged = timed(self.store.purge_expect_revision(&key, Some(entry.revision))).await;
            if !matches!(purged, Ok(Ok(()))) {
                return;
            }
        }
    }
}

/// Runs a bucket operation with [`OPERATION_TIMEOUT`].
async fn timed<T>(
    operation: impl std::future::Future<Output = T>,
) -> Result<T, tokio::time::error::Elapsed> {
    tokio::time::timeout(OPERATION_TIMEOUT, operation).await
}

fn compress(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::ZlibEncoder::new(
        Vec::with_capacity(bytes.len() / 4),
        flate2::Compression::fast(),
    );
    encoder.write_all(bytes)?;
    encoder.finish()
}

fn decompress(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() * 4);
    flate2::read::ZlibDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_round_trips() {
        let text = b"{\"patterns\":[\"user <*> logged in\"]}".repeat(100);
        let compressed = compress(&text).unwrap();
        assert!(compressed.len() < text.len() / 4);
        assert_eq!(decompress(&compressed).unwrap(), text);
        assert!(decompress(b"not zlib").is_err());
    }
}
