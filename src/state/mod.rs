//! The embedded state store under `data_dir`.
//!
//! Everything that must survive a restart (file checkpoints today; patterns,
//! verdicts, suppressions and alert delivery state as they arrive) lives in
//! one [redb] database, `data_dir/howl.redb`. redb commits are transactional
//! and crash-safe: a `kill -9` at any moment leaves the last committed state
//! loadable, with no write-then-rename dance per component.
//!
//! The store is opened lazily, on first use: a `cat log | howl run` topology
//! that keeps no state never creates or locks a database, so several such
//! runs can share a working directory. redb holds an exclusive lock on the
//! file, so two howl processes that *do* keep state cannot corrupt each other
//! by sharing one `data_dir`: the second fails with a message saying so.
//!
//! Values are opaque bytes under string keys in named tables; callers
//! serialize with serde (JSON), which keeps the store inspectable and lets
//! formats evolve with `#[serde(default)]`.

pub mod audit;
pub mod patterns;
pub mod shared;
pub mod triage;

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use redb::{Database, ReadableDatabase, TableDefinition};

/// A state operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The database could not be opened or created.
    #[error("cannot open the state store {path}: {message}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A read or write failed.
    #[error("state store error: {0}")]
    Storage(String),
}

fn storage(error: impl std::fmt::Display) -> StateError {
    StateError::Storage(error.to_string())
}

/// An open state database.
pub struct StateStore {
    db: Database,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore").finish_non_exhaustive()
    }
}

/// The file name of the database inside `data_dir`.
pub const DB_FILE: &str = "howl.redb";

impl StateStore {
    /// Opens (or creates) the store in `data_dir`, creating the directory.
    pub fn open(data_dir: &Path) -> Result<Self, StateError> {
        let path = data_dir.join(DB_FILE);
        let open_error = |message: String| StateError::Open {
            path: path.clone(),
            message,
        };
        std::fs::create_dir_all(data_dir).map_err(|e| open_error(e.to_string()))?;
        let db = Database::create(&path).map_err(|e| {
            let message = e.to_string();
            if message.contains("already open") || message.contains("lock") {
                open_error(format!(
                    "{message} (is another howl using this data_dir? give each its own `data_dir`)"
                ))
            } else {
                open_error(message)
            }
        })?;
        Ok(Self { db })
    }

    /// Reads one value.
    pub fn get(&self, table: &str, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        let definition: TableDefinition<&str, &[u8]> = TableDefinition::new(table);
        let read = self.db.begin_read().map_err(storage)?;
        let table = match read.open_table(definition) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(storage(e)),
        };
        let value = table.get(key).map_err(storage)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    /// Reads every entry whose key starts with `prefix`, in key order.
    pub fn scan(&self, table: &str, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StateError> {
        let definition: TableDefinition<&str, &[u8]> = TableDefinition::new(table);
        let read = self.db.begin_read().map_err(storage)?;
        let table = match read.open_table(definition) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(storage(e)),
        };
        let mut entries = Vec::new();
        for entry in table.range(prefix..).map_err(storage)? {
            let (key, value) = entry.map_err(storage)?;
            if !key.value().starts_with(prefix) {
                break;
            }
            entries.push((key.value().to_string(), value.value().to_vec()));
        }
        Ok(entries)
    }

    /// Reads the entries whose key starts with `prefix`, the last first, up
    /// to `limit` of those `keep` accepts (reading stops there).
    pub fn scan_rev(
        &self,
        table: &str,
        prefix: &str,
        limit: usize,
        mut keep: impl FnMut(&[u8]) -> bool,
    ) -> Result<Vec<(String, Vec<u8>)>, StateError> {
        let definition: TableDefinition<&str, &[u8]> = TableDefinition::new(table);
        let read = self.db.begin_read().map_err(storage)?;
        let table = match read.open_table(definition) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(storage(e)),
        };
        let mut entries = Vec::new();
        for entry in table.range(prefix..).map_err(storage)?.rev() {
            let (key, value) = entry.map_err(storage)?;
            if !key.value().starts_with(prefix) {
                continue;
            }
            if keep(value.value()) {
                entries.push((key.value().to_string(), value.value().to_vec()));
                if entries.len() >= limit {
                    break;
                }
            }
        }
        Ok(entries)
    }

    /// Writes and deletes entries in one durable transaction: all of it is
    /// on disk when this returns, or none of it.
    pub fn write(
        &self,
        table: &str,
        put: &[(String, Vec<u8>)],
        delete: &[String],
    ) -> Result<(), StateError> {
        let definition: TableDefinition<&str, &[u8]> = TableDefinition::new(table);
        let write = self.db.begin_write().map_err(storage)?;
        {
            let mut table = write.open_table(definition).map_err(storage)?;
            for (key, value) in put {
                table
                    .insert(key.as_str(), value.as_slice())
                    .map_err(storage)?;
            }
            for key in delete {
                table.remove(key.as_str()).map_err(storage)?;
            }
        }
        write.commit().map_err(storage)
    }
}

/// A lazily opened store shared by the components of one topology, and
/// the fleet's shared state when `[state.shared.nats]` is set.
#[derive(Clone)]
pub struct StateHandle {
    data_dir: PathBuf,
    store: Arc<Mutex<Option<Arc<StateStore>>>>,
    fleet: Option<Arc<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for StateHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateHandle")
            .field("data_dir", &self.data_dir)
            .field("fleet", &self.fleet.is_some())
            .finish_non_exhaustive()
    }
}

impl StateHandle {
    /// A handle for `data_dir`; nothing is opened yet.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            store: Arc::new(Mutex::new(None)),
            fleet: None,
        }
    }

    /// With the fleet's shared state (the checked `[state.shared.nats]`):
    /// components that share what they learn (the `pattern` transform's
    /// spaces) find it here, beside the local store, which stays their
    /// fallback. It is opaque at this layer: its type belongs to `nats`,
    /// which sits above the store; its users ask for it by type
    /// ([`Self::fleet`]).
    pub fn with_fleet<T: Any + Send + Sync>(mut self, fleet: Option<T>) -> Self {
        self.fleet = fleet.map(|fleet| Arc::new(fleet) as Arc<dyn Any + Send + Sync>);
        self
    }

    /// The fleet's shared state, when it was set and is a `T`.
    pub fn fleet<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.fleet.as_deref()?.downcast_ref()
    }

    /// The `data_dir` this handle opens.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The store, opened on first call.
    pub fn store(&self) -> Result<Arc<StateStore>, StateError> {
        let mut slot = self.store.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(store) = slot.as_ref() {
            return Ok(Arc::clone(store));
        }
        let store = Arc::new(StateStore::open(&self.data_dir)?);
        *slot = Some(Arc::clone(&store));
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = StateStore::open(dir.path()).unwrap();
            store
                .write(
                    "t",
                    &[
                        ("a/1".into(), b"one".to_vec()),
                        ("b".into(), b"two".to_vec()),
                    ],
                    &[],
                )
                .unwrap();
        }
        let store = StateStore::open(dir.path()).unwrap();
        assert_eq!(store.get("t", "a/1").unwrap(), Some(b"one".to_vec()));
        assert_eq!(store.get("missing_table", "x").unwrap(), None);
        let scanned = store.scan("t", "a/").unwrap();
        assert_eq!(scanned, vec![("a/1".to_string(), b"one".to_vec())]);
        store.write("t", &[], &["a/1".to_string()]).unwrap();
        assert_eq!(store.get("t", "a/1").unwrap(), None);
    }

    #[test]
    fn a_second_process_cannot_share_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let _first = StateStore::open(dir.path()).unwrap();
        let second = StateStore::open(dir.path());
        assert!(second.is_err());
    }
}
