//! The options of the `webhook` sink: where to send, how to authenticate,
//! how events become bodies, and the delivery options every HTTP sink
//! shares (`batch.*`, `retry.*`, `rate_limit.*`, `request.*`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::encoder::WebhookEncoding;
use crate::http::{AuthConfig, HealthcheckConfig};
use crate::secret::{Secret, SecretUrl};
use crate::sinks::batch::BatchConfig;
use crate::template::Template;
use crate::vrl_program::VrlSource;

/// Options of the `webhook` sink.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to send: an `http://` or `https://` URL. A secret (webhook URLs
    /// often carry a token in their path or query): logs and errors show
    /// only `scheme://host/***`, and no piece of its path or query.
    #[schemars(extend("x-placeholder" = "https://hooks.example.com/REPLACE-ME"))]
    pub(super) uri: SecretUrl,
    /// The HTTP method.
    #[serde(default)]
    pub(super) method: Method,
    /// Extra request headers, e.g. `headers.X-Api-Key = "${API_KEY}"`.
    /// Values are secrets, kept out of logs and errors. They override the
    /// `Content-Type` chosen by `encoding` and the `User-Agent`; an
    /// `Authorization` header here and `auth` together are an error.
    #[serde(default)]
    #[schemars(extend("x-default" = "`{}`"))]
    pub(super) headers: BTreeMap<String, Secret>,
    /// Credentials sent in the `Authorization` header; unset sends none.
    pub(super) auth: Option<AuthConfig>,
    /// How events become request bodies: `json` (one event per request),
    /// `ndjson` or `json_array` (one request per batch), or
    /// `alertmanager_webhook` (Alertmanager's webhook notification, one per
    /// batch); see above.
    #[serde(default)]
    pub(super) encoding: WebhookEncoding,
    /// With `alertmanager_webhook`: label templates, merged over [the
    /// `alertmanager` sink's defaults](alertmanager.md#labels-and-annotations).
    #[serde(default)]
    #[schemars(extend("x-default" = "the `alertmanager` sink's"))]
    pub(super) labels: BTreeMap<String, Template>,
    /// With `alertmanager_webhook`: annotation templates, merged over [the
    /// `alertmanager` sink's defaults](alertmanager.md#labels-and-annotations).
    #[serde(default)]
    #[schemars(extend("x-default" = "the `alertmanager` sink's"))]
    pub(super) annotations: BTreeMap<String, Template>,
    /// A VRL program run on each event whose result is the JSON document
    /// sent for it, to shape the body (e.g. `{"text": .message}`); see
    /// above. Unset sends the whole event. Not with `alertmanager_webhook`.
    #[schemars(with = "Option<VrlSource>")]
    pub(super) payload: Option<Spanned<String>>,
    /// How events are grouped into requests, with the encodings that send
    /// batches (`ndjson`, `json_array`, `alertmanager_webhook`); with
    /// `json` each event goes out at once.
    #[serde(default)]
    pub(super) batch: BatchConfig,
    /// The start-up check of `healthcheck.uri`.
    #[serde(default)]
    pub(super) healthcheck: WebhookHealthcheck,
}

/// The HTTP methods a webhook receiver accepts bodies with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
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
    /// Check `healthcheck.uri` at start-up (nothing is checked without
    /// it).
    #[serde(default = "default_true")]
    pub(super) enabled: bool,
    /// A failed check stops howl from starting, instead of only logging a
    /// warning.
    #[serde(default)]
    pub(super) required: bool,
    /// A URL that answers `HEAD` with 2xx when the receiver is up; it is
    /// sent the sink's headers and auth. A secret, like `uri`. Unset: no
    /// check.
    pub(super) uri: Option<SecretUrl>,
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
