//! What one howl process shares between its running topology and its API.
//!
//! `howl run` makes one [`Shared`] and passes it to `topology::run` and to
//! `api::serve`. Both need the same state store (redb allows one open
//! handle per file and process) and the same suppression registry (an
//! operator's `POST /api/v1/suppressions` must reach the running
//! `llm_suppress` transforms at once). Anything else that the API and the
//! components must share belongs here, and nothing more: components still
//! talk to each other only through events.

use std::path::PathBuf;

use crate::state::StateHandle;
use crate::suppressions::Suppressions;

/// The process-wide handles (cheap to clone).
#[derive(Clone, Debug)]
pub struct Shared {
    /// The state store under `data_dir`, opened on first use.
    pub state: StateHandle,
    /// Operators' suppressions.
    pub suppressions: Suppressions,
}

impl Shared {
    /// Handles for `data_dir` (nothing is opened yet).
    pub fn new(data_dir: PathBuf) -> Self {
        Self::with_state(StateHandle::new(data_dir))
    }

    /// Handles around an existing state handle (the store can be open once
    /// per process, so everything that shares it must share the handle).
    pub fn with_state(state: StateHandle) -> Self {
        Self {
            suppressions: Suppressions::new(state.clone()),
            state,
        }
    }
}
