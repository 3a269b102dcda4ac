//! The `[api]` table: whether and where howl serves its HTTP API, its
//! connection limits (`connections.*`, shared with `http_server`), and the
//! token that guards its mutating endpoints. A config type, so the loader
//! checks it with everything else; `api` serves it.

use std::net::SocketAddr;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::http::server::ConnectionsConfig;
use crate::secret::Secret;

/// The `[api]` table.
#[derive(Debug, Clone, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Serve the API.
    #[serde(default)]
    pub enabled: bool,
    /// Where to listen.
    #[serde(default = "default_address")]
    pub address: SocketAddr,
    /// A token that `POST` and `DELETE` requests must present as
    /// `Authorization: Bearer <token>`; unset, anyone who can reach the
    /// address may change suppressions. Never logged.
    #[serde(default)]
    pub auth_token: Option<Secret>,
    /// Limits on connections, against slow and abusive clients (the same
    /// `connections.*` options as an `http_server` source's; `max` defaults
    /// to 128 here).
    #[serde(default)]
    pub connections: ConnectionsConfig,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            address: default_address(),
            auth_token: None,
            connections: ConnectionsConfig::default(),
        }
    }
}

fn default_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8686))
}
