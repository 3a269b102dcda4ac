//! The `file` source's checkpoints: for each file, known by its
//! fingerprint, the end of its acknowledged lines and where it was last
//! seen.
//!
//! Checkpoints are keyed by fingerprint, not by path, so a file renamed
//! while howl was down is found again under its new name and goes on where
//! it was, and a new file at an old name (or at an old inode) is a new file.
//!
//! The table holds the checkpoints of the files being followed (written
//! from them at each save) and of files not followed right now
//! ("orphans": loaded at start, or left by a file that was truncated,
//! rotated away or could not be read). An orphan is taken by the first file
//! found with its fingerprint, and forgotten after a scan that listed every
//! glob without error and did not find it.
//!
//! Checkpoints of howl before fingerprints (`file_checkpoints`, keyed by
//! path, matched by inode) are converted once at start: when the file at
//! that path still has that inode, its checkpoint becomes the checkpoint of
//! its fingerprint; the old entries are then deleted.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::fingerprint::{Fingerprint, Head, Window, identity, inode_key};
use crate::internal_events::{ComponentMetrics, ErrorType, Stage};
use crate::state::{StateError, StateStore};

/// The state table of checkpoints; keys are `component_id/fingerprint key`.
const TABLE: &str = "file_fingerprints";
/// Checkpoints of howl before fingerprints: keys `component_id/path`.
const LEGACY_TABLE: &str = "file_checkpoints";

/// Where reading of one file may go on from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The end of the acknowledged lines.
    pub offset: u64,
    /// Where the file was last seen.
    pub path: PathBuf,
    pub fingerprint: Fingerprint,
}

#[derive(Debug, Deserialize)]
struct LegacyCheckpoint {
    offset: u64,
    inode: u64,
}

/// The checkpoints of one `file` source.
pub struct Checkpoints {
    store: Arc<StateStore>,
    prefix: String,
    orphans: HashMap<String, Checkpoint>,
    saved: HashMap<String, Checkpoint>,
    /// The paths that had a checkpoint when howl started.
    paths_at_start: HashSet<PathBuf>,
}

impl Checkpoints {
    /// Loads the checkpoints of component `id`, converting those of the
    /// old format.
    pub fn load(store: Arc<StateStore>, id: &str, window: Window) -> Result<Self, StateError> {
        let prefix = format!("{id}/");
        let mut orphans: HashMap<String, Checkpoint> = store
            .scan(TABLE, &prefix)?
            .into_iter()
            .filter_map(|(key, value)| {
                let key = key.strip_prefix(&prefix)?.to_string();
                Some((key, serde_json::from_slice(&value).ok()?))
            })
            .collect();
        let saved = orphans.clone();
        let mut paths_at_start: HashSet<PathBuf> =
            orphans.values().map(|c| c.path.clone()).collect();
        let legacy = store.scan(LEGACY_TABLE, &prefix)?;
        let mut converted = Vec::new();
        for (key, value) in &legacy {
            let Some(path) = key.strip_prefix(&prefix).map(PathBuf::from) else {
                continue;
            };
            if let Ok(old) = serde_json::from_slice::<LegacyCheckpoint>(value)
                && let Some(checkpoint) = convert(&path, &old, window)
            {
                let key = checkpoint.fingerprint.key();
                if let std::collections::hash_map::Entry::Vacant(entry) = orphans.entry(key) {
                    tracing::info!(path = %path.display(), offset = checkpoint.offset, "checkpoint converted to a fingerprint");
                    converted.push(entry.key().clone());
                    entry.insert(checkpoint);
                }
            }
            paths_at_start.insert(path);
        }
        let mut checkpoints = Self {
            store,
            prefix,
            orphans,
            saved,
            paths_at_start,
        };
        if !legacy.is_empty() {
            // The converted ones first: a crash in between converts again.
            checkpoints.write(&converted, &[])?;
            for key in converted {
                let checkpoint = checkpoints.orphans[&key].clone();
                checkpoints.saved.insert(key, checkpoint);
            }
            let old: Vec<String> = legacy.into_iter().map(|(key, _)| key).collect();
            checkpoints.store.write(LEGACY_TABLE, &[], &old)?;
        }
        Ok(checkpoints)
    }

    /// Whether `path` had a checkpoint when howl started: a file there
    /// with an unknown fingerprint replaced a file howl was reading.
    pub fn had_checkpoint_at_start(&self, path: &Path) -> bool {
        self.paths_at_start.contains(path)
    }

    /// Takes the checkpoint of the file with this head, if there is one.
    pub fn take(&mut self, head: &Head, window: Window) -> Option<Checkpoint> {
        [
            head.fingerprint(window).key(),
            inode_key(head.id.0, head.id.1),
        ]
        .into_iter()
        .find(|key| {
            self.orphans
                .get(key)
                .is_some_and(|c| head.matches(&c.fingerprint, window))
        })
        .and_then(|key| self.orphans.remove(&key))
    }

    /// Keeps the checkpoint of a file no longer followed, in case it is
    /// found again (a copy of a truncated file, say).
    pub fn leave(&mut self, checkpoint: Checkpoint) {
        self.orphans
            .insert(checkpoint.fingerprint.key(), checkpoint);
    }

    /// Forgets the checkpoints no file was found for, after a scan that
    /// listed everything. One whose path cannot be looked at (a permission,
    /// a file descriptor limit) is kept.
    pub fn forget_unfound(&mut self) {
        self.orphans.retain(|_, checkpoint| {
            std::fs::metadata(&checkpoint.path).is_err_and(|error| !gone(&error))
        });
    }

    /// Writes the checkpoints that changed since the last save: those of
    /// the files followed (`current`) and the orphans.
    pub fn save(&mut self, current: impl Iterator<Item = Checkpoint>, metrics: &ComponentMetrics) {
        let mut all = self.orphans.clone();
        for checkpoint in current {
            all.insert(checkpoint.fingerprint.key(), checkpoint);
        }
        let put: Vec<String> = all
            .iter()
            .filter(|(key, checkpoint)| self.saved.get(*key) != Some(checkpoint))
            .map(|(key, _)| key.clone())
            .collect();
        let delete: Vec<String> = self
            .saved
            .keys()
            .filter(|key| !all.contains_key(*key))
            .cloned()
            .collect();
        if put.is_empty() && delete.is_empty() {
            return;
        }
        let saved = std::mem::replace(&mut self.saved, all);
        if let Err(error) = self.write(&put, &delete) {
            self.saved = saved;
            metrics.error(
                ErrorType::CheckpointFailed,
                Stage::Receiving,
                &format_args!("cannot save file checkpoints: {error}"),
            );
        }
    }

    /// Writes the checkpoints under `put` (as in `saved`, or the orphans)
    /// and deletes those under `delete`.
    fn write(&self, put: &[String], delete: &[String]) -> Result<(), StateError> {
        let put: Vec<(String, Vec<u8>)> = put
            .iter()
            .filter_map(|key| {
                let checkpoint = self.saved.get(key).or_else(|| self.orphans.get(key))?;
                Some((
                    format!("{}{key}", self.prefix),
                    serde_json::to_vec(checkpoint).ok()?,
                ))
            })
            .collect();
        let delete: Vec<String> = delete
            .iter()
            .map(|key| format!("{}{key}", self.prefix))
            .collect();
        self.store.write(TABLE, &put, &delete)
    }
}

/// Whether a failed look at a path says there is nothing there (rather
/// than that it could not be looked at).
pub fn gone(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

/// An old checkpoint as one of a fingerprint, when the file at its path
/// still has its inode (then it is taken to be the same file).
fn convert(path: &Path, old: &LegacyCheckpoint, window: Window) -> Option<Checkpoint> {
    let file = File::open(path).ok()?;
    let metadata = file.metadata().ok()?;
    let id = identity(&metadata);
    if id.1 != old.inode {
        return None;
    }
    let head = Head::read(&file, id, window).ok()?;
    Some(Checkpoint {
        // Shorter than the checkpoint: truncated meanwhile.
        offset: if old.offset <= metadata.len() {
            old.offset
        } else {
            0
        },
        path: path.to_path_buf(),
        fingerprint: head.fingerprint(window),
    })
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use super::*;

    const WINDOW: Window = Window {
        ignored: 0,
        bytes: NonZeroUsize::new(8).unwrap(),
    };

    fn head_of(path: &Path) -> Head {
        let file = File::open(path).unwrap();
        let id = identity(&file.metadata().unwrap());
        Head::read(&file, id, WINDOW).unwrap()
    }

    fn legacy(store: &StateStore, path: &Path, offset: u64, inode: u64) {
        let value = format!("{{\"offset\":{offset},\"inode\":{inode}}}").into_bytes();
        let key = format!("s/{}", path.display());
        store.write(LEGACY_TABLE, &[(key, value)], &[]).unwrap();
    }

    #[test]
    fn old_checkpoints_are_honoured_once_when_the_file_has_its_inode() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(StateStore::open(&dir.path().join("state")).unwrap());
        let (same, replaced) = (dir.path().join("same.log"), dir.path().join("replaced.log"));
        std::fs::write(&same, "line one\nline two\n").unwrap();
        std::fs::write(&replaced, "another file\n").unwrap();
        let inode = head_of(&same).id.1;
        legacy(&store, &same, 9, inode);
        legacy(&store, &replaced, 5, inode + 12345);

        let mut checkpoints = Checkpoints::load(Arc::clone(&store), "s", WINDOW).unwrap();
        let taken = checkpoints.take(&head_of(&same), WINDOW).unwrap();
        assert_eq!((taken.offset, taken.path), (9, same.clone()));
        assert!(checkpoints.take(&head_of(&replaced), WINDOW).is_none());
        assert!(
            checkpoints.had_checkpoint_at_start(&replaced),
            "the path had one: a file there replaced the one read"
        );
        assert!(store.scan(LEGACY_TABLE, "s/").unwrap().is_empty());

        // Converted and saved: found again by fingerprint after a restart.
        let again = Checkpoints::load(store, "s", WINDOW).unwrap();
        assert_eq!(again.orphans.len(), 1);
    }

    #[test]
    fn checkpoints_are_kept_by_fingerprint_across_names_and_saves() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(StateStore::open(&dir.path().join("state")).unwrap());
        let log = dir.path().join("app.log");
        std::fs::write(&log, "first line\nsecond\n").unwrap();
        let head = head_of(&log);
        let metrics = ComponentMetrics::new(crate::component_key::ComponentKey::new(
            crate::component_key::ComponentKind::Source,
            "s",
            "file",
        ));
        let mut checkpoints = Checkpoints::load(Arc::clone(&store), "s", WINDOW).unwrap();
        let checkpoint = Checkpoint {
            offset: 11,
            path: log.clone(),
            fingerprint: head.fingerprint(WINDOW),
        };
        checkpoints.save(std::iter::once(checkpoint), &metrics);
        let rotated = dir.path().join("app.log.1");
        std::fs::rename(&log, &rotated).unwrap();
        std::fs::write(&log, "a new file\n").unwrap();

        let mut checkpoints = Checkpoints::load(store, "s", WINDOW).unwrap();
        assert!(checkpoints.take(&head_of(&log), WINDOW).is_none());
        let taken = checkpoints.take(&head_of(&rotated), WINDOW).unwrap();
        assert_eq!((taken.offset, taken.path), (11, log));
    }

    #[test]
    fn checkpoints_of_files_gone_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(StateStore::open(&dir.path().join("state")).unwrap());
        let mut checkpoints = Checkpoints::load(store, "s", WINDOW).unwrap();
        std::fs::write(dir.path().join("other.log"), "another file\n").unwrap();
        for (crc, path) in [
            (1, "gone.log"),
            (2, "other.log/below.log"),
            (3, "other.log"),
        ] {
            checkpoints.leave(Checkpoint {
                offset: 1,
                path: dir.path().join(path),
                fingerprint: Fingerprint::Checksum { crc },
            });
        }
        checkpoints.forget_unfound();
        assert!(checkpoints.orphans.is_empty());
    }
}
