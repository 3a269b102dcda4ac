//! `webhook`: deliver events to any HTTP endpoint as JSON.
//!
//! The generic way out of howl for receivers that have no sink of their own
//! (an incident tool, a chat bridge, a serverless function). What to send is
//! decided here: the body per `encoding` and the optional `payload` program
//! (see [`encoder`]), the method, headers and auth. How to send it is the
//! shared delivery core's job ([`crate::http`]): batching,
//! retries with backoff and `Retry-After`, rate limit, concurrency, secret
//! redaction and HTTP metrics are the same as for every other HTTP sink.
//!
//! The URL, header values and credentials are secrets: they are read as
//! [`Secret`](crate::secret::Secret)s and handed to the sink's
//! redactor, and errors about them name the option, never the value.
//!
//! The module reads: [`config`] (options) → this file (build: check and
//! prepare everything, no I/O) → [`sink`] (the run loop).

mod config;
mod encoder;
mod sink;

use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

pub use config::WebhookConfig;
use encoder::{Encoder, WebhookEncoding};

use crate::components::BuildContext;
use crate::components::registry::WithShared;
use crate::components::sink::{Sink, SinkConfig};
use crate::diagnostic::BuildError;
use crate::http::{DeliverySettings, HttpDelivery};
use crate::secret::Redactor;
use crate::vrl_program::{VrlOrigin, VrlRunner, compile};

impl SinkConfig for WithShared<WebhookConfig, HttpDelivery> {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        self.own.build(&self.shared, cx)
    }
}

impl WebhookConfig {
    fn build(
        &self,
        delivery: &HttpDelivery,
        cx: &BuildContext,
    ) -> Result<Box<dyn Sink>, BuildError> {
        let uri = parse_url(self.uri.expose(), "uri")?;
        let mut redactor = Redactor::default().secret_url(self.uri.expose());
        let healthcheck = match &self.healthcheck.uri {
            Some(check) => {
                redactor = redactor.secret_url(check.expose());
                Some(parse_url(check.expose(), "healthcheck.uri")?)
            }
            None => None,
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(self.encoding.content_type()),
        );
        if let Some(auth) = &self.auth {
            headers.insert(AUTHORIZATION, auth.header()?);
            redactor = auth.redact(redactor);
        }
        for (name, value) in &self.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                BuildError::new(format!("`headers`: `{name}` is not a valid header name"))
            })?;
            if name == AUTHORIZATION && self.auth.is_some() {
                return Err(BuildError::new(
                    "set either `auth` or an `Authorization` header in `headers`, not both",
                ));
            }
            let mut value = HeaderValue::from_str(value.expose()).map_err(|_| {
                BuildError::new(format!(
                    "`headers.{name}`: the value contains characters not allowed in an HTTP header"
                ))
            })?;
            value.set_sensitive(true);
            redactor = redactor.secret(value.to_str().unwrap_or_default());
            headers.insert(name, value);
        }
        let payload = match &self.payload {
            Some(source) => {
                let program = compile(
                    source.get_ref(),
                    VrlOrigin::Inline(source.span()),
                    &cx.file,
                    "payload",
                )?;
                Some(VrlRunner::new(Arc::new(program)))
            }
            None => None,
        };
        let mut encoder = Encoder::new(self.encoding, payload);
        if self.encoding == WebhookEncoding::AlertmanagerWebhook {
            if self.payload.is_some() {
                return Err(BuildError::new(
                    "`payload` does not apply with `encoding = \"alertmanager_webhook\"`: shape the alerts with `labels` and `annotations`",
                ));
            }
            let templates =
                crate::sinks::alertmanager::Templates::new(&self.labels, &self.annotations, None)
                    .map_err(BuildError::new)?;
            encoder = encoder.with_alerts(templates, cx.key.id().to_string());
        } else if !self.labels.is_empty() || !self.annotations.is_empty() {
            return Err(BuildError::new(
                "`labels` and `annotations` apply only with `encoding = \"alertmanager_webhook\"`",
            ));
        }
        let settings =
            DeliverySettings::new(delivery, &delivery.rate_limit, &self.healthcheck.settings())?;
        let batch_timeout = self.batch.timeout()?;
        // With one event per request there is nothing to wait for: each
        // event goes out as soon as it arrives.
        let (batch_events, batch_timeout) = if self.encoding.batches() {
            (self.batch.max_events, batch_timeout)
        } else {
            (1, Duration::ZERO)
        };
        Ok(Box::new(sink::Webhook {
            target: Arc::new(sink::Target {
                method: self.method.as_http(),
                uri,
                headers,
                healthcheck,
            }),
            encoder,
            concurrency: settings.concurrency,
            settings,
            redactor,
            batch_events,
            batch_timeout,
        }))
    }
}

/// An http(s) URL. The message never repeats the value: it may hold a token.
fn parse_url(text: &str, option: &str) -> Result<Url, BuildError> {
    let url = Url::parse(text)
        .map_err(|e| BuildError::new(format!("`{option}` is not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(BuildError::new(format!(
            "`{option}` must be an http:// or https:// URL, not {}://",
            url.scheme()
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::component_key::{ComponentKey, ComponentKind};
    use crate::diagnostic::SourceFile;

    fn build(options: &str) -> Result<Box<dyn Sink>, BuildError> {
        let config =
            WithShared::<WebhookConfig, HttpDelivery>::from_toml(options).expect("options parse");
        config.build(&BuildContext {
            key: ComponentKey::new(ComponentKind::Sink, "hook", "webhook"),
            file: Arc::new(SourceFile::new(
                PathBuf::from("t.toml"),
                options.to_string(),
            )),
            data_dir: std::env::temp_dir(),
        })
    }

    fn error(options: &str) -> BuildError {
        match build(options) {
            Ok(_) => panic!("builds: {options}"),
            Err(error) => error,
        }
    }

    #[test]
    fn auth_and_an_authorization_header_together_are_rejected() {
        let message = error(
            "uri = \"http://127.0.0.1/h\"\nauth = { strategy = \"bearer\", token = \"t0k3n\" }\nheaders.authorization = \"Bearer other\"",
        )
        .message;
        assert!(message.contains("not both"), "{message}");
        assert!(
            build("uri = \"http://127.0.0.1/h\"\nheaders.Authorization = \"Bearer mine\"").is_ok(),
            "an Authorization header alone is fine"
        );
    }

    #[test]
    fn url_errors_name_the_option_but_never_the_value() {
        let message = error("uri = \"ftp://files.example/s3cr3t-path\"").message;
        assert!(message.contains("`uri` must be an http"), "{message}");
        assert!(!message.contains("s3cr3t"), "{message}");
        let message = error("uri = \"not a url s3cr3t\"").message;
        assert!(message.contains("`uri` is not a valid URL"), "{message}");
        assert!(!message.contains("s3cr3t"), "{message}");
        let message =
            error("uri = \"http://h/\"\nheaders.X-Key = \"s3cr3t\\nInjected: 1\"").message;
        assert!(message.contains("`headers.x-key`"), "{message}");
        assert!(!message.contains("s3cr3t"), "{message}");
    }

    #[test]
    fn payload_errors_point_into_the_config_file() {
        let options = "uri = \"http://h/\"\npayload = '{\"text\": upcase(.message)}'";
        let error = error(options);
        assert!(
            error.message.contains("VRL error in `payload`"),
            "{}",
            error.message
        );
        let at = error.span.expect("positioned").start;
        assert!(
            options[at..].starts_with(".message)"),
            "points at the argument that may not be a string: {}",
            &options[at..]
        );
    }
}
