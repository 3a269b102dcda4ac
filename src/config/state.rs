//! The `[state]` table: where state lives beyond `data_dir`.
//!
//! Every instance keeps its state in its own store under `data_dir`. With
//! `[state.shared.nats]`, the triage state that operators and classifiers
//! decide (suppressions, always-alert rules, verdicts, the audit trail) is
//! also kept in a JetStream key-value bucket that every instance of a
//! fleet reads and writes, so a decision made on one instance holds on
//! all. The local store stays the fallback while the bucket is out of
//! reach.

use std::path::Path;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::diagnostic::BuildError;
use crate::nats::kv::valid_bucket_name;
use crate::nats::{NatsAuth, NatsConnection, NatsTls};

/// The `[state]` table.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Triage state shared by a fleet of howl instances; unset, each
    /// instance keeps its own.
    #[serde(default)]
    pub shared: Option<SharedStateConfig>,
}

/// `[state.shared]`: where the fleet's shared state lives.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SharedStateConfig {
    /// A JetStream key-value bucket on a NATS server.
    pub nats: SharedNatsConfig,
}

/// `[state.shared.nats]`: the server and the bucket.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SharedNatsConfig {
    /// The server, e.g. `nats://127.0.0.1:4222` (as a `nats` component's
    /// `url`).
    #[schemars(extend("x-placeholder" = "nats://127.0.0.1:4222"))]
    pub url: String,
    /// How howl authenticates (as a `nats` component's `auth.*`).
    pub auth: Option<NatsAuth>,
    /// TLS towards the server (as a `nats` component's `tls.*`).
    pub tls: Option<NatsTls>,
    /// The bucket (`[A-Za-z0-9_-]+`), created when missing. Every instance
    /// of one fleet names the same bucket. The `pattern` transforms' spaces
    /// go to a second bucket, `<bucket>_patterns`, also created when
    /// missing.
    #[serde(default = "default_bucket")]
    pub bucket: String,
}

fn default_bucket() -> String {
    "howl".into()
}

/// A checked `[state.shared.nats]`, ready to connect (defined beside the
/// buckets, so the state store can hold it without depending on `config`).
pub use crate::nats::kv::SharedNats;

impl SharedNatsConfig {
    /// Checks the options and prepares the connection; relative file paths
    /// are resolved against `config_dir`, the directory of the file that
    /// sets them.
    /// `defined_at` says where (`file:line:column`), for messages.
    pub fn check(
        &self,
        config_dir: Option<&Path>,
        defined_at: String,
    ) -> Result<SharedNats, BuildError> {
        if !valid_bucket_name(&self.bucket) {
            return Err(BuildError::new(format!(
                "`bucket` {:?} is not a bucket name: letters, digits, `_` and `-` only",
                self.bucket
            ))
            .for_option("bucket"));
        }
        let connection = NatsConnection {
            url: self.url.clone(),
            auth: self.auth.clone(),
            tls: self.tls.clone(),
        };
        let connector = connection.connector_for("state.shared.nats", |path| match config_dir {
            Some(dir) if path.is_relative() && !dir.as_os_str().is_empty() => dir.join(path),
            _ => path.to_path_buf(),
        })?;
        Ok(SharedNats {
            bucket: self.bucket.clone(),
            connector,
            defined_at,
        })
    }
}
