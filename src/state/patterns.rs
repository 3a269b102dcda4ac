//! Pattern spaces in the state store: the `pattern` transform's miners
//! (one per component and scope) and `howl patterns mine --data-dir`.
//!
//! Each space is one miner snapshot (JSON, versioned by the miner) under
//! `patterns/<namespace>/<scope>`, where the namespace is the transform's
//! component id (or [`CLI_NAMESPACE`] for the command line). A save is one redb
//! transaction, so a `kill -9` at any moment leaves the previous or the new
//! snapshot, never a torn one.

use crate::patterns::{Miner, MinerConfig, MinerSnapshot};
use crate::state::{StateError, StateStore};

/// The state table of pattern spaces.
pub const TABLE: &str = "patterns";

/// The namespace `howl patterns mine` uses. It contains a `.`, which no
/// component id may, so the command line's patterns never share keys with
/// a transform's. (Older versions used `mine`, the key of a transform with
/// that id; such stores are not read: they cannot be told apart from a
/// transform's, so `patterns mine` learns them again.)
pub const CLI_NAMESPACE: &str = "patterns.mine";

/// One saved pattern space.
pub struct SavedSpace {
    /// The transform (or `mine`) it belongs to.
    pub namespace: String,
    /// The scope value (empty without `scope`).
    pub scope: String,
    /// The miner's state.
    pub snapshot: MinerSnapshot,
}

fn key(namespace: &str, scope: &str) -> String {
    format!("{namespace}/{scope}")
}

/// Every space saved under `namespace`, or in the whole store when `None`.
pub fn load_spaces(
    store: &StateStore,
    namespace: Option<&str>,
) -> Result<Vec<SavedSpace>, StateError> {
    let prefix = namespace.map(|n| format!("{n}/")).unwrap_or_default();
    store
        .scan(TABLE, &prefix)?
        .into_iter()
        .map(|(key, bytes)| {
            let (namespace, scope) = key.split_once('/').unwrap_or((key.as_str(), ""));
            let snapshot = serde_json::from_slice(&bytes).map_err(|e| {
                StateError::Storage(format!("pattern space `{key}` cannot be read: {e}"))
            })?;
            Ok(SavedSpace {
                namespace: namespace.to_string(),
                scope: scope.to_string(),
                snapshot,
            })
        })
        .collect()
}

/// Saves several spaces in one durable transaction.
pub fn save_spaces<'a>(
    store: &StateStore,
    namespace: &str,
    spaces: impl IntoIterator<Item = (&'a str, &'a Miner)>,
) -> Result<(), StateError> {
    let put = spaces
        .into_iter()
        .map(|(scope, miner)| {
            let bytes = serde_json::to_vec(&miner.snapshot())
                .map_err(|e| StateError::Storage(e.to_string()))?;
            Ok((key(namespace, scope), bytes))
        })
        .collect::<Result<Vec<_>, StateError>>()?;
    store.write(TABLE, &put, &[])
}

/// Restores a saved space with `config`, explaining a failure in terms a
/// user can act on.
pub fn restore(config: &MinerConfig, saved: SavedSpace) -> Result<Miner, StateError> {
    Miner::restore(config.clone(), saved.snapshot).map_err(|e| {
        StateError::Storage(format!(
            "pattern space `{}` cannot be restored: {e} (move the data_dir's howl.redb aside to start afresh)",
            key(&saved.namespace, &saved.scope)
        ))
    })
}
