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
//! [`SecretUrl`](crate::secret::SecretUrl)s and
//! [`Secret`](crate::secret::Secret)s and handed to the sink's redactor,
//! and errors about them name the option, never the value.
//!
//! The module reads: [`config`] (options) → this file (build: check and
//! prepare everything, no I/O) → [`sink`] (the run loop).

mod config;
mod encoder;
mod sink;

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};

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

    fn acknowledgements_by_default(&self) -> bool {
        true
    }
}

impl WebhookConfig {
    fn build(
        &self,
        delivery: &HttpDelivery,
        cx: &BuildContext,
    ) -> Result<Box<dyn Sink>, BuildError> {
        let mut redactor = Redactor::default().secret_url(&self.uri);
        if let Some(check) = &self.healthcheck.uri {
            redactor = redactor.secret_url(check);
        }
        let (headers, redactor) = self.headers(redactor)?;
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
                )
                .for_option("payload"));
            }
            let templates =
                crate::sinks::alertmanager::Templates::new(&self.labels, &self.annotations, None)?;
            encoder = encoder.with_alerts(templates, cx.key.id().to_string());
        } else if !self.labels.is_empty() || !self.annotations.is_empty() {
            let option = if self.labels.is_empty() {
                "annotations"
            } else {
                "labels"
            };
            return Err(BuildError::new(
                "`labels` and `annotations` apply only with `encoding = \"alertmanager_webhook\"`",
            )
            .for_option(option));
        }
        let settings =
            DeliverySettings::new(delivery, &delivery.rate_limit, &self.healthcheck.settings())?;
        // With one event per request there is nothing to wait for: each
        // event goes out as soon as it arrives.
        let (batch_events, batch_timeout) = if self.encoding.batches() {
            (self.batch.max_events, self.batch.timeout_secs.get())
        } else {
            (NonZeroUsize::MIN, Duration::ZERO)
        };
        Ok(Box::new(sink::Webhook {
            target: Arc::new(sink::Target {
                method: self.method.as_http(),
                uri: self.uri.url().clone(),
                headers,
                healthcheck: self
                    .healthcheck
                    .uri
                    .as_ref()
                    .map(|check| check.url().clone()),
            }),
            encoder,
            concurrency: settings.concurrency,
            settings,
            redactor,
            batch_events,
            batch_timeout,
        }))
    }

    /// The headers of every request (`Content-Type`, `auth`, the user's
    /// `headers`), each credential added to the redactor. Errors name the
    /// header, never its value.
    fn headers(&self, mut redactor: Redactor) -> Result<(HeaderMap, Redactor), BuildError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(self.encoding.content_type()),
        );
        if let Some(auth) = &self.auth {
            let value = auth.header().map_err(|error| match error.option {
                Some(_) => error,
                None => error.for_option("auth"),
            })?;
            headers.insert(AUTHORIZATION, value);
            redactor = auth.redact(redactor);
        }
        let (user, redactor) =
            crate::http::user_headers(&self.headers, self.auth.is_some(), redactor)?;
        headers.extend(user);
        Ok((headers, redactor))
    }
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
    fn url_errors_never_repeat_the_value() {
        for options in [
            "uri = \"ftp://files.example/s3cr3t-path\"",
            "uri = \"not a url s3cr3t\"",
            "uri = \"http://h/\"\nhealthcheck.uri = \"s3cr3t\"",
        ] {
            let error = WithShared::<WebhookConfig, HttpDelivery>::from_toml(options)
                .expect_err(options)
                .to_string();
            assert!(error.contains("URL"), "{options}: {error}");
            assert!(!error.contains("s3cr3t"), "{options}: {error}");
        }
    }

    #[test]
    fn header_errors_name_the_header_but_never_the_value() {
        let header = error("uri = \"http://h/\"\nheaders.X-Key = \"s3cr3t\\nInjected: 1\"");
        assert!(
            header.message.contains("`headers.X-Key`"),
            "{}",
            header.message
        );
        assert!(!header.message.contains("s3cr3t"), "{}", header.message);
        assert_eq!(header.option.as_deref(), Some("headers.X-Key"));
    }

    #[test]
    fn options_for_another_encoding_point_at_themselves() {
        let misplaced = error("uri = \"http://h/\"\nannotations.team = \"ops\"");
        assert_eq!(misplaced.option.as_deref(), Some("annotations"));
        let bad_name = error(
            "uri = \"http://h/\"\nencoding = \"alertmanager_webhook\"\nlabels.\"bad-name\" = \"x\"",
        );
        assert_eq!(bad_name.option.as_deref(), Some("labels.bad-name"));
    }

    #[test]
    fn batch_options_take_durations_and_refuse_zero_events() {
        let config = WithShared::<WebhookConfig, HttpDelivery>::from_toml(
            "uri = \"http://h/\"\nbatch.timeout_secs = \"250ms\"\nbatch.max_events = 5",
        )
        .unwrap();
        assert_eq!(
            config.own.batch.timeout_secs.get(),
            Duration::from_millis(250)
        );
        assert_eq!(config.own.batch.max_events.get(), 5);
        let error = WithShared::<WebhookConfig, HttpDelivery>::from_toml(
            "uri = \"http://h/\"\nbatch.max_events = 0",
        )
        .unwrap_err();
        assert!(error.span().is_some(), "{error}");
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
