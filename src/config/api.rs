//! The `[api]` table: whether and where howl serves its HTTP API, its
//! connection limits (`connections.*`, shared with `http_server`), and the
//! token that guards its mutating endpoints. A config type, so the loader
//! checks it with everything else; `api` serves it.

use std::net::SocketAddr;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::http::server::ConnectionsConfig;
use crate::options::{HttpUrl, Seconds};
use crate::secret::Secret;
use crate::shared::LinkSigner;

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
    /// Signed suppression links: `llm_suppress` gives each event of a
    /// pattern a `.suppress_url`, which opens a confirmation page on this
    /// API; its button suppresses the pattern.
    #[serde(default)]
    pub links: Option<LinksConfig>,
}

/// The `[api.links]` table.
#[derive(Debug, Clone, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LinksConfig {
    /// The key links are signed with: at least 16 random characters
    /// (`openssl rand -hex 32`), as `${HOWL_LINK_SECRET}`. Changing it
    /// voids every link made so far.
    pub secret: Secret,
    /// The API's address as people reach it, e.g.
    /// `https://howl.example.com` (behind your ingress).
    pub base_url: HttpUrl,
    /// How long a link works; a plain number is seconds.
    #[serde(default = "default_link_ttl")]
    pub ttl: Seconds,
}

fn default_link_ttl() -> Seconds {
    Seconds::from_secs(7 * 86_400)
}

impl LinksConfig {
    /// The signer, or why the options make none.
    pub fn signer(&self) -> Result<LinkSigner, String> {
        if self.secret.expose().chars().count() < 16 {
            return Err(
                "`[api.links] secret` must be at least 16 characters (`openssl rand -hex 32`)"
                    .into(),
            );
        }
        let ttl = self.ttl.get().as_secs();
        if ttl == 0 {
            return Err("`[api.links] ttl` must be at least a second".into());
        }
        Ok(LinkSigner::new(
            self.secret.clone(),
            self.base_url.as_str(),
            i64::try_from(ttl).unwrap_or(i64::MAX),
        ))
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            address: default_address(),
            auth_token: None,
            connections: ConnectionsConfig::default(),
            links: None,
        }
    }
}

fn default_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8686))
}
