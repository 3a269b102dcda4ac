//! `alertmanager`: deliver alerts to Prometheus Alertmanager (API v2), the
//! way Prometheus itself does.
//!
//! Each event is an occurrence of an alert whose identity is its label set
//! (Alertmanager's fingerprint). A new alert is posted at once; while it is
//! active it is re-posted every `resend_interval_secs` with
//! `endsAt = now + 4 × resend_interval` (so Alertmanager resolves it by
//! itself if howl disappears); it resolves after `resolve_after_secs`
//! without an occurrence, or when an event says `.alert.state = "resolved"`,
//! by posting the same labels and annotations with `endsAt` = the
//! resolution time, re-sent for 5 minutes. Active alerts are kept in the
//! state store, so a restart neither forgets to resolve nor starts a
//! second episode, and re-posts everything at once (rebuilding an
//! Alertmanager that restarted too: it keeps alerts in memory only).
//!
//! Labels and annotations are checked against Alertmanager's naming rules at
//! config time and empty values are dropped before posting, so a batch is
//! never refused with 400 (which Alertmanager answers after storing the
//! valid part of a batch, so blindly re-sending would be wrong).

mod alerts;
mod endpoint;

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroUsize;
use std::time::Duration;

use chrono::Utc;
use schemars::JsonSchema;
use serde::Deserialize;

pub use self::alerts::fingerprint;
use self::alerts::{ActiveAlert, AlertTemplates, Change, Timing};
pub(crate) use self::alerts::{AlertTemplates as Templates, Notified, webhook_notification};
use self::endpoint::Endpoints;
use crate::alert::{AlertState, AlertStore};
use crate::components::registry::WithShared;
use crate::components::sink::{Sink, SinkConfig, SinkContext};
use crate::components::{BuildContext, ComponentFuture};
use crate::diagnostic::BuildError;
use crate::event::{Event, EventStatus, finalize_all};
use crate::http::{
    Delivery, DeliverySettings, HealthcheckConfig, HttpDelivery, api_url, classify_http,
};
use crate::internal_events::{ErrorType, Stage};
use crate::options::{HttpUrl, Seconds};
use crate::secret::Redactor;
use crate::sinks::batch::BatchConfig;
use crate::sinks::batch::Batcher;
use crate::template::Template;

/// Options of the `alertmanager` sink.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Alertmanager base URLs, e.g. `http://127.0.0.1:9093`. Every alert
    /// goes to each one (an HA pair gets every alert). A path prefix (a
    /// reverse proxy at `/alertmanager/`) is kept; a password in a URL
    /// (`http://user:password@host`) is kept out of logs.
    #[schemars(extend("x-placeholder" = ["http://127.0.0.1:9093"]))]
    endpoints: Vec<HttpUrl>,
    /// Label templates, merged over the defaults. Labels are the alert's
    /// identity. A label that renders empty is left out; set a
    /// default to `""` to remove it.
    #[serde(default)]
    #[schemars(extend("x-default" = "see above"))]
    labels: BTreeMap<String, Template>,
    /// Annotation templates, merged over the defaults. An annotation that
    /// renders empty is left out.
    #[serde(default)]
    #[schemars(extend("x-default" = "see above"))]
    annotations: BTreeMap<String, Template>,
    /// The alert's `generatorURL`, a link back to where the alert came
    /// from; left out when it does not render a valid URL.
    generator_url: Option<Template>,
    /// Re-post active alerts this often, with `endsAt = now + 4 ×
    /// resend_interval_secs`, so that Alertmanager resolves them by itself
    /// if howl goes away. More than 0.
    #[serde(default = "default_resend_interval")]
    resend_interval_secs: Seconds,
    /// Resolve an alert after this long without an occurrence; not for
    /// alerts whose events say `.alert.state`, which wait for their
    /// `resolved` event. More than 0.
    #[serde(default = "default_resolve_after")]
    resolve_after_secs: Seconds,
    /// Batching of posts: `batch.max_events` is the most alerts in one post.
    #[serde(default)]
    batch: BatchConfig,
    /// The start-up check: `GET /-/ready` on each endpoint.
    #[serde(default)]
    healthcheck: HealthcheckConfig,
}

fn default_resend_interval() -> Seconds {
    Seconds::from_secs(60)
}

fn default_resolve_after() -> Seconds {
    Seconds::from_secs(300)
}

impl SinkConfig for WithShared<AlertmanagerConfig, HttpDelivery> {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        self.own.build(&self.shared)
    }

    fn acknowledgements_by_default(&self) -> bool {
        true
    }
}

impl AlertmanagerConfig {
    fn build(&self, delivery: &HttpDelivery) -> Result<Box<dyn Sink>, BuildError> {
        if self.endpoints.is_empty() {
            return Err(
                BuildError::new("`endpoints` needs at least one Alertmanager URL")
                    .for_option("endpoints"),
            );
        }
        let mut redactor = Redactor::default();
        for endpoint in &self.endpoints {
            redactor = redactor.url_credentials(endpoint.url());
        }
        let templates =
            AlertTemplates::new(&self.labels, &self.annotations, self.generator_url.as_ref())?;
        let timing = Timing {
            resend_interval: interval(self.resend_interval_secs, "resend_interval_secs")?,
            resolve_after: interval(self.resolve_after_secs, "resolve_after_secs")?,
        };
        let settings = DeliverySettings::new(delivery, &delivery.rate_limit, &self.healthcheck)?;
        Ok(Box::new(Alertmanager {
            endpoints: self.endpoints.iter().map(|e| e.url().clone()).collect(),
            templates,
            timing,
            settings,
            redactor,
            batch_events: self.batch.max_events,
            batch_timeout: self.batch.timeout_secs.get(),
        }))
    }
}

/// A positive duration option, in the alert clock's type.
fn interval(value: Seconds, option: &str) -> Result<chrono::Duration, BuildError> {
    chrono::Duration::from_std(value.positive(option)?)
        .map_err(|_| BuildError::new(format!("`{option}` is too long")).for_option(option))
}

struct Alertmanager {
    endpoints: Vec<reqwest::Url>,
    templates: AlertTemplates,
    timing: Timing,
    settings: DeliverySettings,
    redactor: Redactor,
    batch_events: NonZeroUsize,
    batch_timeout: Duration,
}

/// The sink's running state.
struct Running {
    alerts: HashMap<String, ActiveAlert>,
    store: AlertStore<ActiveAlert>,
    endpoints: Endpoints,
}

impl Sink for Alertmanager {
    fn run(self: Box<Self>, mut cx: SinkContext) -> ComponentFuture {
        Box::pin(async move {
            let delivery = Delivery::new(
                self.settings.clone(),
                cx.metrics.clone(),
                self.redactor.clone(),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            for endpoint in &self.endpoints {
                let ready = api_url(endpoint, "-/ready");
                delivery
                    .healthcheck(
                        &format!("Alertmanager {endpoint}"),
                        |c| c.get(ready.clone()),
                        classify_http,
                    )
                    .await?;
            }
            let store = AlertStore::<ActiveAlert>::open(&cx.state, cx.key.id())?;
            let alerts = store.load()?;
            if !alerts.is_empty() {
                tracing::info!(component = %cx.key, alerts = alerts.len(), "re-posting alerts kept from the last run");
            }
            let mut running = Running {
                alerts,
                store,
                endpoints: Endpoints::start(&self.endpoints, &delivery),
            };
            let mut batcher = Batcher::new(self.batch_events, self.batch_timeout);
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    batch = batcher.next(&mut cx.input) => match batch {
                        Some(events) => self.on_events(&cx, &mut running, events).await,
                        None => break,
                    },
                    _ = tick.tick() => self.on_tick(&cx, &mut running).await,
                }
            }
            running.endpoints.finish().await;
            Ok(())
        })
    }
}

impl Alertmanager {
    /// Applies a batch of occurrences and posts what changed.
    async fn on_events(&self, cx: &SinkContext, running: &mut Running, events: Vec<Event>) {
        let now = Utc::now();
        let mut to_post: BTreeMap<String, Vec<Event>> = BTreeMap::new();
        let mut changed = Vec::new();
        for mut event in events {
            let rendered = self.templates.render(&event);
            if !rendered.missing.is_empty() {
                cx.metrics.error(
                    ErrorType::TemplateFailed,
                    Stage::Processing,
                    &format_args!(
                        "missing field(s) {}; rendered them empty",
                        rendered.missing.join(", ")
                    ),
                );
            }
            if rendered.labels.is_empty() {
                cx.metrics.error(
                    ErrorType::InvalidAlert,
                    Stage::Processing,
                    &"every label rendered empty, and Alertmanager needs at least one",
                );
                cx.metrics.discarded_on_error(1, &"alert without labels");
                event.finalize(EventStatus::Rejected);
                continue;
            }
            let id = fingerprint(&rendered.labels);
            let declared = AlertState::declared(&event);
            let state = declared.unwrap_or(AlertState::Firing);
            let change = match (state, running.alerts.get_mut(&id)) {
                (AlertState::Firing, Some(alert)) => {
                    alert.declared |= declared.is_some();
                    alert.occurred(rendered, now)
                }
                (AlertState::Resolved, Some(alert)) => alert.resolve(now),
                (state, None) => {
                    let mut alert = ActiveAlert::firing(rendered, now, declared.is_some());
                    if state == AlertState::Resolved {
                        // Resolving an alert this sink never saw (state was
                        // lost, or it fired elsewhere): posting the
                        // resolution is harmless and may be useful.
                        alert.resolve(now);
                    }
                    running.alerts.insert(id.clone(), alert);
                    Change::Send
                }
            };
            changed.push(id.clone());
            match change {
                Change::Send => to_post.entry(id).or_default().push(event),
                Change::Quiet => {
                    // A repeat of a posted alert: it is kept fresh by the
                    // resends, so its occurrence is done here.
                    cx.metrics.sent(None, 1);
                    event.finalize(EventStatus::Delivered);
                }
            }
        }
        self.save(cx, running, &changed, &[]);
        self.post(running, to_post, now).await;
    }

    /// Resolves silent alerts, re-posts due ones, forgets old resolutions.
    async fn on_tick(&self, cx: &SinkContext, running: &mut Running) {
        let now = Utc::now();
        let mut to_post = BTreeMap::new();
        let mut forgotten = Vec::new();
        let mut changed = Vec::new();
        for (id, alert) in &mut running.alerts {
            let was_resolved = alert.resolved_at.is_some();
            match alert.tick(now, self.timing) {
                None => forgotten.push(id.clone()),
                Some(Change::Send) => {
                    if !was_resolved && alert.resolved_at.is_some() {
                        changed.push(id.clone());
                    }
                    to_post.insert(id.clone(), Vec::new());
                }
                Some(Change::Quiet) => {}
            }
        }
        for id in &forgotten {
            running.alerts.remove(id);
        }
        if !changed.is_empty() || !forgotten.is_empty() {
            self.save(cx, running, &changed, &forgotten);
        }
        self.post(running, to_post, now).await;
    }

    fn save(&self, cx: &SinkContext, running: &Running, changed: &[String], forgotten: &[String]) {
        let put: Vec<(&str, &ActiveAlert)> = changed
            .iter()
            .filter_map(|id| running.alerts.get(id).map(|alert| (id.as_str(), alert)))
            .collect();
        let delete: Vec<&str> = forgotten.iter().map(String::as_str).collect();
        if let Err(error) = running.store.save(&put, &delete) {
            cx.metrics.error(
                ErrorType::StateSaveFailed,
                Stage::Processing,
                &format_args!("cannot save active alerts: {error}"),
            );
        }
    }

    /// Posts the given alerts in batches of `batch.max_events`; waits while
    /// no endpoint has room for a post that carries events.
    async fn post(
        &self,
        running: &mut Running,
        mut to_post: BTreeMap<String, Vec<Event>>,
        now: chrono::DateTime<Utc>,
    ) {
        let ids: Vec<String> = to_post.keys().cloned().collect();
        for chunk in ids.chunks(self.batch_events.get()) {
            let mut alerts = Vec::with_capacity(chunk.len());
            let mut events = Vec::new();
            for id in chunk {
                if let Some(alert) = running.alerts.get_mut(id) {
                    alerts.push(alert.postable(now, self.timing));
                    alert.last_sent = Some(now);
                }
                events.extend(to_post.remove(id).unwrap_or_default());
            }
            match serde_json::to_vec(&alerts) {
                Ok(body) => running.endpoints.post(body.into(), events).await,
                Err(error) => {
                    finalize_all(&mut events, EventStatus::Rejected);
                    tracing::error!("cannot encode alerts: {error}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENDPOINT: &str = "endpoints = [\"http://127.0.0.1:9093\"]\n";

    fn parse(options: &str) -> Result<WithShared<AlertmanagerConfig, HttpDelivery>, String> {
        WithShared::from_toml(options).map_err(|e| e.message().to_string())
    }

    fn build_error(options: &str) -> BuildError {
        let config = parse(options).expect("options parse");
        match config.own.build(&config.shared) {
            Ok(_) => panic!("builds: {options}"),
            Err(error) => error,
        }
    }

    #[test]
    fn intervals_take_units_and_plain_seconds() {
        let config = parse(&format!(
            "{ENDPOINT}resend_interval_secs = \"5m\"\nresolve_after_secs = 90"
        ))
        .unwrap();
        assert_eq!(
            config.own.resend_interval_secs.get(),
            Duration::from_secs(300)
        );
        assert_eq!(config.own.resolve_after_secs.get(), Duration::from_secs(90));
        assert!(config.own.build(&config.shared).is_ok());
    }

    #[test]
    fn checks_after_parsing_point_at_their_option() {
        let error = build_error(&format!("{ENDPOINT}resolve_after_secs = 0"));
        assert_eq!(error.option.as_deref(), Some("resolve_after_secs"));
        let error = build_error(&format!("{ENDPOINT}labels.\"bad-name\" = \"x\""));
        assert_eq!(error.option.as_deref(), Some("labels.bad-name"));
        let error = build_error("endpoints = []");
        assert_eq!(error.option.as_deref(), Some("endpoints"));
    }

    #[test]
    fn bad_endpoints_and_templates_fail_while_parsing() {
        let error = parse("endpoints = [\"ftp://127.0.0.1:9093\"]")
            .err()
            .unwrap();
        assert!(error.contains("not an http(s) URL"), "{error}");
        let error = parse(&format!("{ENDPOINT}labels.team = \"{{{{ .team\"")).unwrap_err();
        assert!(error.contains("invalid template"), "{error}");
    }
}
