//! The options of the `webhook` sink: where to send, how to authenticate,
//! how events become bodies, and the delivery options every HTTP sink
//! shares (`batch.*`, `retry.*`, `rate_limit.*`, `request.*`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use super::encoder::WebhookEncoding;
use crate::http::{AuthConfig, HealthcheckConfig};
use crate::secret::Secret;
use crate::sinks::batch::BatchConfig;

/// Options of the `webhook` sink.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to send: an `http://` or `https://` URL. Treated as a secret
    /// (webhook URLs often carry a token): logs show only its scheme and
    /// host.
    pub(super) uri: Secret,
    /// The HTTP method: `post` or `put`.
    #[serde(default)]
    pub(super) method: Method,
    /// Extra request headers, e.g. `headers.X-Api-Key = "${API_KEY}"`.
    /// Values are treated as secrets; they override the `Content-Type`
    /// chosen by `encoding`.
    #[serde(default)]
    pub(super) headers: BTreeMap<String, Secret>,
    /// Credentials sent in the `Authorization` header (`bearer` or
    /// `basic`). Setting an `Authorization` header in `headers` as well is
    /// an error.
    pub(super) auth: Option<AuthConfig>,
    /// How events become request bodies: `json` (one event per request),
    /// `ndjson` or `json_array` (one request per batch), or
    /// `alertmanager_webhook` (Alertmanager's webhook notification, one per
    /// batch).
    #[serde(default)]
    pub(super) encoding: WebhookEncoding,
    /// With `alertmanager_webhook`: label templates, merged over the
    /// `alertmanager` sink's defaults.
    #[serde(default)]
    pub(super) labels: BTreeMap<String, String>,
    /// With `alertmanager_webhook`: annotation templates, merged over the
    /// `alertmanager` sink's defaults.
    #[serde(default)]
    pub(super) annotations: BTreeMap<String, String>,
    /// A VRL program run on each event whose result is the JSON document
    /// sent for it, to shape the body (e.g. `{"text": .message}`). Unset
    /// sends the whole event.
    #[schemars(with = "Option<String>")]
    pub(super) payload: Option<Spanned<String>>,
    /// How events are grouped into requests (`ndjson`, `json_array`).
    #[serde(default)]
    pub(super) batch: BatchConfig,
    /// The start-up check of `healthcheck.uri`.
    #[serde(default)]
    pub(super) healthcheck: WebhookHealthcheck,
}

/// The HTTP methods a webhook receiver accepts bodies with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// `POST`.
    #[default]
    Post,
    /// `PUT`.
    Put,
}

impl Method {
    /// The method on the wire.
    pub fn as_http(self) -> reqwest::Method {
        match self {
            Self::Post => reqwest::Method::POST,
            Self::Put => reqwest::Method::PUT,
        }
    }
}

/// The webhook's start-up check. Unlike other HTTP sinks it needs a URL of
/// its own: a webhook URL usually answers only POST, and a test POST would
/// deliver a message, so without `uri` nothing is checked.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookHealthcheck {
    /// Check `healthcheck.uri` at start-up.
    #[serde(default = "default_true")]
    pub(super) enabled: bool,
    /// A failed check stops howl from starting, instead of only warning.
    #[serde(default)]
    pub(super) required: bool,
    /// A URL that answers `HEAD` with 2xx when the receiver is up; it is
    /// sent the sink's headers and auth. Unset: no check.
    pub(super) uri: Option<Secret>,
}

fn default_true() -> bool {
    true
}

impl Default for WebhookHealthcheck {
    fn default() -> Self {
        Self {
            enabled: true,
            required: false,
            uri: None,
        }
    }
}

impl WebhookHealthcheck {
    /// The shared healthcheck settings: enabled only when there is a URL.
    pub(super) fn settings(&self) -> HealthcheckConfig {
        HealthcheckConfig {
            enabled: self.enabled && self.uri.is_some(),
            required: self.required,
        }
    }
}
