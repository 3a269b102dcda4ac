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
    let snapshots = spaces
        .into_iter()
        .map(|(scope, miner)| Ok((scope, snapshot_bytes(miner)?)))
        .collect::<Result<Vec<_>, StateError>>()?;
    save_snapshots(
        store,
        namespace,
        snapshots
            .iter()
            .map(|(scope, bytes)| (*scope, bytes.as_slice())),
    )
}

/// A miner's snapshot as saved (JSON): made once when a space goes both
/// to the local store and to the fleet's bucket.
pub fn snapshot_bytes(miner: &Miner) -> Result<Vec<u8>, StateError> {
    serde_json::to_vec(&miner.snapshot()).map_err(|e| StateError::Storage(e.to_string()))
}

/// Saves several spaces, serialized by [`snapshot_bytes`], in one durable
/// transaction.
pub fn save_snapshots<'a>(
    store: &StateStore,
    namespace: &str,
    spaces: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<(), StateError> {
    let put: Vec<(String, Vec<u8>)> = spaces
        .into_iter()
        .map(|(scope, bytes)| (key(namespace, scope), bytes.to_vec()))
        .collect();
    store.write(TABLE, &put, &[])
}

/// Where each space's save time is kept when the spaces are shared with a
/// fleet: at start, the later of the local and the shared copy wins.
const SAVED_AT: &str = "pattern_saved_at";

/// Saves when each of several spaces was saved (Unix ms).
pub fn save_saved_at<'a>(
    store: &StateStore,
    namespace: &str,
    spaces: impl IntoIterator<Item = (&'a str, &'a i64)>,
) -> Result<(), StateError> {
    save_per_space(store, SAVED_AT, namespace, spaces)
}

/// When the space `namespace/scope` was last saved (Unix ms; 0 when not
/// known).
pub fn load_saved_at(store: &StateStore, namespace: &str, scope: &str) -> Result<i64, StateError> {
    load_per_space(store, SAVED_AT, namespace, scope)
}

/// Restores a saved space with `config`, explaining a failure in terms a
/// user can act on.
pub fn restore(config: &MinerConfig, saved: SavedSpace) -> Result<Miner, StateError> {
    let scope = saved.scope.clone();
    Miner::restore(config.clone(), saved.snapshot)
        .map(|miner| miner.in_scope(&scope))
        .map_err(|e| {
        StateError::Storage(format!(
            "pattern space `{}` cannot be restored: {e} (move the data_dir's howl.redb aside to start afresh)",
            key(&saved.namespace, &saved.scope)
        ))
    })
}

/// Where each space's top-level field names are kept.
const FIELDS: &str = "pattern_fields";

/// The most field names kept per space.
pub const MAX_FIELDS: usize = 256;

/// The top-level fields a space's events had, each with when it was first
/// and last seen (Unix ms): what the review's schema drift compares.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FieldsSeen {
    /// Field name → (first seen, last seen).
    pub fields: std::collections::BTreeMap<String, (i64, i64)>,
}

impl FieldsSeen {
    /// Notes the fields of one event at `now_ms` (new names beyond
    /// [`MAX_FIELDS`] are not kept).
    pub fn note<'a>(&mut self, names: impl Iterator<Item = &'a str>, now_ms: i64) {
        for name in names {
            let room = self.fields.len() < MAX_FIELDS;
            match self.fields.get_mut(name) {
                Some((_, last)) => *last = now_ms,
                None if room => {
                    self.fields.insert(name.to_string(), (now_ms, now_ms));
                }
                None => {}
            }
        }
    }
}

/// Saves the fields of several spaces of `namespace`.
pub fn save_fields<'a>(
    store: &StateStore,
    namespace: &str,
    spaces: impl IntoIterator<Item = (&'a str, &'a FieldsSeen)>,
) -> Result<(), StateError> {
    save_per_space(store, FIELDS, namespace, spaces)
}

/// The fields of the space `namespace/scope`, as last saved.
pub fn load_fields(
    store: &StateStore,
    namespace: &str,
    scope: &str,
) -> Result<FieldsSeen, StateError> {
    load_per_space(store, FIELDS, namespace, scope)
}

/// Where each space's storm window is kept (the `pattern` transform's
/// held new patterns).
const STORMS: &str = "pattern_storms";

/// Saves the storm windows of several spaces in one durable transaction.
pub fn save_storms<'a, T: serde::Serialize + 'a>(
    store: &StateStore,
    namespace: &str,
    spaces: impl IntoIterator<Item = (&'a str, &'a T)>,
) -> Result<(), StateError> {
    save_per_space(store, STORMS, namespace, spaces)
}

/// The storm window of the space `namespace/scope`, as last saved (empty
/// when none was, or it cannot be read).
pub fn load_storm<T: serde::de::DeserializeOwned + Default>(
    store: &StateStore,
    namespace: &str,
    scope: &str,
) -> Result<T, StateError> {
    load_per_space(store, STORMS, namespace, scope)
}

/// Where each space's pattern rates are kept (baselines and firing
/// spikes of the `pattern` transform's anomalies).
const RATES: &str = "pattern_rates";

/// Saves the rates of several spaces in one durable transaction.
pub fn save_rates<'a, T: serde::Serialize + 'a>(
    store: &StateStore,
    namespace: &str,
    spaces: impl IntoIterator<Item = (&'a str, &'a T)>,
) -> Result<(), StateError> {
    save_per_space(store, RATES, namespace, spaces)
}

/// The rates of the space `namespace/scope`, as last saved (empty when
/// none were, or they cannot be read).
pub fn load_rates<T: serde::de::DeserializeOwned + Default>(
    store: &StateStore,
    namespace: &str,
    scope: &str,
) -> Result<T, StateError> {
    load_per_space(store, RATES, namespace, scope)
}

/// Where a `pattern` transform's expectations are watched (last seen
/// times, firing silences): one value per transform.
const SILENCES: &str = "pattern_silences";

/// Saves the watches of expectations of `namespace`.
pub fn save_silences<T: serde::Serialize>(
    store: &StateStore,
    namespace: &str,
    value: &T,
) -> Result<(), StateError> {
    save_per_space(store, SILENCES, namespace, [("", value)])
}

/// The watches of `namespace`, as last saved (empty when none were).
pub fn load_silences<T: serde::de::DeserializeOwned + Default>(
    store: &StateStore,
    namespace: &str,
) -> Result<T, StateError> {
    load_per_space(store, SILENCES, namespace, "")
}

/// Saves one JSON value per space in `table`, in one transaction.
fn save_per_space<'a, T: serde::Serialize + 'a>(
    store: &StateStore,
    table: &str,
    namespace: &str,
    spaces: impl IntoIterator<Item = (&'a str, &'a T)>,
) -> Result<(), StateError> {
    let put = spaces
        .into_iter()
        .map(|(scope, value)| {
            let bytes =
                serde_json::to_vec(value).map_err(|e| StateError::Storage(e.to_string()))?;
            Ok((key(namespace, scope), bytes))
        })
        .collect::<Result<Vec<_>, StateError>>()?;
    store.write(table, &put, &[])
}

/// A space's value in `table`; the default when there is none or it does
/// not read (these values are advisory: losing one loses no pattern).
fn load_per_space<T: serde::de::DeserializeOwned + Default>(
    store: &StateStore,
    table: &str,
    namespace: &str,
    scope: &str,
) -> Result<T, StateError> {
    Ok(store
        .get(table, &key(namespace, scope))?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default())
}
