//! Pattern spaces shared by a fleet through the JetStream bucket of
//! `[state.shared.nats]`, so that a pattern keeps its id fleet-wide.
//!
//! A pattern's id is a hash of the masked text of the first line it was
//! made from: two instances that mine one scope from different first
//! lines mint different ids for one kind of line. A fleet therefore routes
//! each scope to one owner at a time; when a scope moves (its owner died,
//! partitions were rebalanced) the new owner continues from the old
//! owner's space, same ids, because every owner saves its spaces to the
//! bucket (layout: [`bucket`]) and loads them from it.
//!
//! A [`SpaceLink`] is one `pattern` transform's connection to the bucket:
//! a task of its own that the transform talks to through channels, so
//! mining never waits on the network. The transform hands it each save
//! ([`Save`], after the local store has it) and takes [`Update`]s between
//! batches. The link:
//!
//! - at start, reads the bucket's heads and compares each with the local
//!   store's copy: the later save wins (the bucket's is loaded, or the
//!   local one is pushed); the transform waits for this (bounded) before
//!   mining, so a new owner starts from the old owner's space;
//! - watches the heads: a save by another instance is fetched and handed
//!   over, and the transform continues from it before mining more lines;
//! - saves by compare-and-swap on the head's revision. A save that finds
//!   the head moved (another instance saved the space since this one
//!   loaded it) is dropped and the other's space loaded instead: what is
//!   lost is the patterns this instance made since its last save, at most
//!   about a second of new patterns, and only when two instances mined one
//!   scope at once (a hand-over);
//! - while the bucket is out of reach, keeps the latest save of each space
//!   and retries; when the bucket is back, each such save is compared with
//!   the bucket's: the later save time wins (last writer wins, by the
//!   writers' clocks).
//!
//! Storm windows, rates and field lists stay local: they describe what one
//! instance saw recently, and restart empty-handed on a new owner at worst.

pub mod bucket;

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use tokio::sync::mpsc;

pub use bucket::{CHUNK_BYTES, Fetched, Head, SpaceBucket, SpaceError, patterns_bucket};

use crate::nats::kv::SharedNats;
use crate::patterns::MinerSnapshot;

/// A save of one space, handed to the link after the local store has it.
#[derive(Debug, Clone)]
pub struct Save {
    /// The scope.
    pub scope: String,
    /// The revision of the bucket's copy the space continues from (`None`:
    /// none; it was started here).
    pub base: Option<u64>,
    /// When it was saved (Unix ms).
    pub saved_at_ms: i64,
    /// The miner's snapshot, serialized (JSON).
    pub snapshot: Vec<u8>,
}

/// What the link tells its transform.
#[derive(Debug)]
pub enum Update {
    /// Another instance saved `scope` later than this one's copy: continue
    /// from its snapshot, which is at `revision`.
    Loaded {
        /// The scope.
        scope: String,
        /// The head's revision.
        revision: u64,
        /// When the other instance saved it (Unix ms).
        saved_at_ms: i64,
        /// Its snapshot.
        snapshot: MinerSnapshot,
    },
    /// The transform's copy of `scope` is the bucket's at `revision`: base
    /// the next save on it. With `push`, the copy is newer than the
    /// bucket's (or the bucket has none): save it soon.
    Based {
        /// The scope.
        scope: String,
        /// The head's revision (`None`: the bucket has no copy).
        revision: Option<u64>,
        /// Whether the transform should save the space soon.
        push: bool,
    },
    /// The first look at the bucket is over, or the bucket is out of reach:
    /// mining may start.
    Ready,
}

/// One transform's link to the fleet's patterns bucket (see the module
/// docs). Dropping it stops the link; [`SpaceLink::finish`] first lets
/// it make the saves it holds.
pub struct SpaceLink {
    saves: Option<mpsc::UnboundedSender<Save>>,
    updates: mpsc::UnboundedReceiver<Update>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for SpaceLink {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl SpaceLink {
    /// Starts the link of the transform `namespace` to `shared`'s patterns
    /// bucket; `local` gives each space the local store holds with its
    /// save time (Unix ms), to compare with the bucket's.
    pub fn start(shared: &SharedNats, namespace: &str, local: HashMap<String, i64>) -> Self {
        Self::start_with(shared, namespace, local, CHUNK_BYTES)
    }

    /// [`Self::start`] with chunks of at most `chunk_bytes` (tests).
    pub fn start_with(
        shared: &SharedNats,
        namespace: &str,
        local: HashMap<String, i64>,
        chunk_bytes: usize,
    ) -> Self {
        let (saves, saves_rx) = mpsc::unbounded_channel();
        let (updates_tx, updates) = mpsc::unbounded_channel();
        let link = Link {
            shared: shared.clone(),
            namespace: namespace.to_string(),
            writer: writer_name(),
            chunk_bytes,
            saves: saves_rx,
            updates: updates_tx,
            local,
            ready_sent: false,
            known: HashMap::new(),
            written: HashMap::new(),
            pending: HashMap::new(),
        };
        Self {
            saves: Some(saves),
            updates,
            task: Some(tokio::spawn(link.run())),
        }
    }

    /// Hands a save to the link; never waits.
    pub fn save(&self, save: Save) {
        if let Some(saves) = &self.saves {
            let _ = saves.send(save);
        }
    }

    /// The next update, if one is waiting.
    pub fn try_update(&mut self) -> Option<Update> {
        self.updates.try_recv().ok()
    }

    /// The next update; `None` once the link stopped.
    pub async fn update(&mut self) -> Option<Update> {
        self.updates.recv().await
    }

    /// Lets the link make the saves it holds (within `limit`), then stops it.
    pub async fn finish(mut self, limit: Duration) {
        self.saves = None;
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(limit, task).await.is_err() {
                abort.abort();
                tracing::warn!(
                    "the pattern spaces not yet saved to the shared bucket within {limit:?} are only in the local store"
                );
            }
        }
    }
}

/// Who saves: shown in heads, for people reading the bucket.
fn writer_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "howl".into());
    format!("{host}/{}", std::process::id())
}

/// The longest wait between attempts to reach the bucket.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The link's task.
struct Link {
    shared: SharedNats,
    namespace: String,
    writer: String,
    chunk_bytes: usize,
    saves: mpsc::UnboundedReceiver<Save>,
    updates: mpsc::UnboundedSender<Update>,
    /// The local store's spaces and their save times, until the first look
    /// at the bucket compared them.
    local: HashMap<String, i64>,
    ready_sent: bool,
    /// Per scope: the head revision this link last wrote or loaded (its
    /// own saves come back through the watch; they are not news).
    known: HashMap<String, u64>,
    /// Per scope: the base the last save came with, and the revision it
    /// was written at. The transform learns the new revision a little
    /// later; a save meanwhile, with the same base, continues from it.
    written: HashMap<String, (Option<u64>, u64)>,
    /// Saves not made while the bucket was out of reach: the latest of
    /// each scope.
    pending: HashMap<String, Save>,
}

/// Why a session with the bucket ended.
enum Ended {
    /// The transform is done (its link was dropped or finished).
    Done,
    /// The bucket is out of reach or misbehaved: try again later.
    Failed(SpaceError),
}

impl From<SpaceError> for Ended {
    fn from(error: SpaceError) -> Self {
        Self::Failed(error)
    }
}

impl Link {
    async fn run(mut self) {
        let mut attempt: u32 = 0;
        let mut client = None;
        loop {
            if client.is_none() {
                match self.shared.connector.connect().await {
                    Ok(connected) => client = Some(connected),
                    Err(failure) => {
                        tracing::warn!(
                            namespace = %self.namespace,
                            "{failure}; mining goes on with the local pattern store"
                        );
                    }
                }
            }
            if let Some(connected) = &client {
                let js = jetstream::new(connected.clone());
                match self.session(&js).await {
                    Ended::Done => return,
                    Ended::Failed(error) => {
                        tracing::warn!(
                            namespace = %self.namespace,
                            "{error}; mining goes on with the local pattern store, saves are kept to retry"
                        );
                        if !error.is_transient() {
                            attempt = attempt.max(8);
                        }
                    }
                }
            }
            self.ready();
            attempt = attempt.saturating_add(1);
            let wait = Duration::from_millis(250)
                .saturating_mul(1 << attempt.min(6))
                .min(MAX_BACKOFF);
            if !self.collect_for(wait).await {
                return;
            }
        }
    }

    /// Keeps the saves that arrive for `wait`; false once the transform is
    /// done (the saves it held are then only in its local store).
    async fn collect_for(&mut self, wait: Duration) -> bool {
        let sleep = tokio::time::sleep(wait);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return true,
                save = self.saves.recv() => match save {
                    Some(save) => {
                        self.pending.insert(save.scope.clone(), save);
                    }
                    None => return false,
                },
            }
        }
    }

    fn ready(&mut self) {
        if !self.ready_sent {
            self.ready_sent = true;
            let _ = self.updates.send(Update::Ready);
        }
    }

    fn send(&self, update: Update) {
        let _ = self.updates.send(update);
    }

    /// Works with the bucket until it fails or the transform is done.
    async fn session(&mut self, js: &jetstream::Context) -> Ended {
        match self.session_inner(js).await {
            Ok(()) => Ended::Done,
            Err(ended) => ended,
        }
    }

    async fn session_inner(&mut self, js: &jetstream::Context) -> Result<(), Ended> {
        let bucket = SpaceBucket::open(js, &self.shared.bucket, &self.namespace)
            .await?
            .with_chunk_bytes(self.chunk_bytes);
        let mut watch = bucket.watch_heads().await?;
        // The latest head of every space first, up to the marker's.
        let mut heads = Vec::new();
        loop {
            let entry = tokio::time::timeout(Duration::from_secs(10), watch.next())
                .await
                .map_err(|_| unavailable(&bucket, "the heads did not arrive within 10s"))?;
            let entry = match entry {
                Some(Ok(entry)) => entry,
                Some(Err(error)) => return Err(unavailable(&bucket, &error.to_string()).into()),
                None => return Err(unavailable(&bucket, "the watch of heads ended").into()),
            };
            if let Some(scope) = bucket.scope_of_head(&entry.key)
                && let Some(head) = self.readable(&bucket, &scope, &entry.value)
            {
                heads.push((scope, head, entry.revision));
            }
            if entry.seen_current {
                break;
            }
        }
        for (scope, head, revision) in heads {
            self.on_head(&bucket, &scope, &head, revision).await?;
        }
        // Spaces only the local store has: the bucket should have them.
        for (scope, _) in std::mem::take(&mut self.local) {
            self.send(Update::Based {
                scope,
                revision: None,
                push: true,
            });
        }
        self.ready();
        // Saves made while the bucket was out of reach.
        let pending: Vec<Save> = self.pending.drain().map(|(_, save)| save).collect();
        for save in pending {
            self.on_save(&bucket, save, true).await?;
        }
        loop {
            tokio::select! {
                save = self.saves.recv() => match save {
                    Some(save) => self.on_save(&bucket, save, false).await?,
                    None => return Ok(()),
                },
                entry = watch.next() => match entry {
                    Some(Ok(entry)) => {
                        if let Some(scope) = bucket.scope_of_head(&entry.key)
                            && let Some(head) = self.readable(&bucket, &scope, &entry.value)
                        {
                            self.on_head(&bucket, &scope, &head, entry.revision).await?;
                        }
                    }
                    // The watch re-creates itself after gaps; an error
                    // here is a missed heartbeat or the like.
                    Some(Err(error)) => tracing::debug!(namespace = %self.namespace, "watch of pattern heads: {error}"),
                    None => return Err(unavailable(&bucket, "the watch of heads ended").into()),
                },
            }
        }
    }

    /// A head's value, if it is one. One that does not read (written by
    /// something else than howl) is skipped, logged: it must not stop the
    /// sharing of the other spaces; the scope's next save replaces it.
    fn readable(&self, bucket: &SpaceBucket, scope: &str, value: &[u8]) -> Option<Head> {
        if value.is_empty() {
            return None;
        }
        match bucket.parse_head(value) {
            Ok(head) => Some(head),
            Err(error) => {
                tracing::warn!(
                    namespace = %self.namespace,
                    scope = %crate::diagnostic::escape_controls(scope),
                    "skipping a pattern space: {error}"
                );
                None
            }
        }
    }

    /// A head, seen at start or as it changed.
    async fn on_head(
        &mut self,
        bucket: &SpaceBucket,
        scope: &str,
        head: &Head,
        revision: u64,
    ) -> Result<(), Ended> {
        if self
            .known
            .get(scope)
            .is_some_and(|known| *known >= revision)
        {
            // Our own save, or one already loaded.
            return Ok(());
        }
        // The local store's copies are compared once, at the first look.
        if let Some(local_at) = self.local.remove(scope)
            && local_at > head.saved_at_ms
        {
            // The local store's copy was saved later (this instance mined
            // while the bucket was out of reach): it wins.
            self.known.insert(scope.to_string(), revision);
            self.send(Update::Based {
                scope: scope.to_string(),
                revision: Some(revision),
                push: true,
            });
            return Ok(());
        }
        // A save kept while the bucket was out of reach: the later wins
        // (an earlier one is dropped: the bucket's is loaded instead).
        if let Some(save) = self.pending.remove(scope)
            && save.saved_at_ms > head.saved_at_ms
        {
            let save = Save {
                base: Some(revision),
                ..save
            };
            return self.on_save(bucket, save, true).await;
        }
        self.load(bucket, scope).await
    }

    /// Fetches `scope` and hands it to the transform.
    async fn load(&mut self, bucket: &SpaceBucket, scope: &str) -> Result<(), Ended> {
        let fetched = match bucket.read(scope).await {
            Ok(Some(fetched)) => fetched,
            Ok(None) => return Ok(()),
            // One corrupt space must not stop the others: this instance
            // keeps its own, and its next save replaces the bucket's.
            Err(error @ SpaceError::Broken { .. }) => {
                tracing::warn!(
                    namespace = %self.namespace,
                    scope = %crate::diagnostic::escape_controls(scope),
                    "{error}; keeping this instance's"
                );
                return Ok(());
            }
            Err(error) => return Err(error.into()),
        };
        self.known.insert(scope.to_string(), fetched.revision);
        match serde_json::from_slice::<MinerSnapshot>(&fetched.snapshot) {
            Ok(snapshot) => self.send(Update::Loaded {
                scope: scope.to_string(),
                revision: fetched.revision,
                saved_at_ms: fetched.head.saved_at_ms,
                snapshot,
            }),
            Err(error) => tracing::warn!(
                namespace = %self.namespace,
                scope,
                writer = %fetched.head.writer,
                "the shared pattern space does not read ({error}); keeping this instance's"
            ),
        }
        Ok(())
    }

    /// Saves (compare-and-swap); `offline`: the save was made while the
    /// bucket was out of reach, and wins over a save made earlier.
    async fn on_save(
        &mut self,
        bucket: &SpaceBucket,
        save: Save,
        offline: bool,
    ) -> Result<(), Ended> {
        let base = match self.written.get(&save.scope) {
            Some((from, to)) if *from == save.base => Some(*to),
            _ => save.base,
        };
        let written = bucket
            .write(
                &save.scope,
                &save.snapshot,
                base,
                &self.writer,
                save.saved_at_ms,
            )
            .await;
        match written {
            Ok(revision) => {
                self.saved(&save, revision);
                Ok(())
            }
            Err(SpaceError::Conflict { revision, head, .. }) => {
                if offline && save.saved_at_ms > head.saved_at_ms {
                    // Last writer wins, once; if even that loses a race,
                    // the other's space is loaded.
                    match bucket
                        .write(
                            &save.scope,
                            &save.snapshot,
                            Some(revision),
                            &self.writer,
                            save.saved_at_ms,
                        )
                        .await
                    {
                        Ok(revision) => {
                            self.saved(&save, revision);
                            return Ok(());
                        }
                        Err(SpaceError::Conflict { .. }) => {}
                        Err(error) => return self.keep(save, error),
                    }
                }
                if self
                    .known
                    .get(&save.scope)
                    .is_some_and(|known| *known >= revision)
                {
                    // The watch brought the winner's space already.
                    return Ok(());
                }
                tracing::info!(
                    namespace = %self.namespace,
                    scope = %save.scope,
                    writer = %head.writer,
                    "another instance saved this pattern space meanwhile; continuing from its save (patterns made here since the last save are dropped)"
                );
                self.load(bucket, &save.scope).await
            }
            Err(error) => self.keep(save, error),
        }
    }

    fn saved(&mut self, save: &Save, revision: u64) {
        self.written
            .insert(save.scope.clone(), (save.base, revision));
        self.known.insert(save.scope.clone(), revision);
        self.send(Update::Based {
            scope: save.scope.clone(),
            revision: Some(revision),
            push: false,
        });
    }

    /// Keeps a save that failed to retry it, and ends the session when the
    /// bucket is out of reach.
    fn keep(&mut self, save: Save, error: SpaceError) -> Result<(), Ended> {
        if error.is_transient() {
            self.pending.insert(save.scope.clone(), save);
            return Err(Ended::Failed(error));
        }
        tracing::warn!(namespace = %self.namespace, scope = %save.scope, "{error}; this save stays local");
        Ok(())
    }
}

fn unavailable(bucket: &SpaceBucket, cause: &str) -> SpaceError {
    SpaceError::Unavailable {
        bucket: bucket.name().to_string(),
        cause: cause.to_string(),
    }
}
