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
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::buffer::tap::Taps;
use crate::readiness::Readiness;
use crate::secret::{Secret, constant_time_eq, hex, hmac_sha256};
use crate::state::StateHandle;
use crate::suppressions::Suppressions;

/// The process-wide handles (cheap to clone).
#[derive(Clone, Debug)]
pub struct Shared {
    /// The state store under `data_dir`, opened on first use.
    pub state: StateHandle,
    /// Operators' suppressions.
    pub suppressions: Suppressions,
    /// Where the API hands Slack's button presses.
    pub slack_actions: SlackActions,
    /// Where the API hands Telegram's updates, for `telegram` sinks that
    /// take button presses through a webhook.
    pub telegram_webhooks: TelegramWebhooks,
    /// Signs and checks the suppression links alerts carry (`[api.links]`).
    pub links: Option<Arc<LinkSigner>>,
    /// The outputs `howl tap` can watch.
    pub taps: Taps,
    /// Whether every listening source has bound (`/health` waits for it).
    pub readiness: Readiness,
}

/// Signed, expiring links to howl's API that suppress a pattern: one click
/// from any channel that can show a link (email, PagerDuty, a webhook's
/// receiver), routed there by Alertmanager or any sink. A link is
/// `{base_url}/api/v1/links/suppress?p=PATTERN&e=EXPIRY&s=SIGNATURE`,
/// where the signature is the HMAC-SHA256 of `suppress:PATTERN:EXPIRY`
/// under the secret: it cannot be made for another pattern, or made to
/// last longer, without the secret.
#[derive(Debug)]
pub struct LinkSigner {
    secret: Secret,
    base_url: String,
    ttl_secs: i64,
}

impl LinkSigner {
    /// A signer with `secret`, for links to `base_url` (howl's API as
    /// people reach it) that last `ttl_secs`.
    pub fn new(secret: Secret, base_url: &str, ttl_secs: i64) -> Self {
        Self {
            secret,
            base_url: base_url.trim_end_matches('/').to_string(),
            ttl_secs,
        }
    }

    /// How long a link lasts, in seconds.
    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    fn signature(&self, pattern: &str, expires: i64) -> String {
        let message = format!("suppress:{pattern}:{expires}");
        hex(&hmac_sha256(
            self.secret.expose().as_bytes(),
            message.as_bytes(),
        ))
    }

    /// The link that suppresses `pattern`, made at `now` (Unix seconds).
    pub fn suppress_url(&self, pattern: &str, now: i64) -> String {
        let expires = now.saturating_add(self.ttl_secs);
        format!(
            "{}/api/v1/links/suppress?p={}&e={expires}&s={}",
            self.base_url,
            form_urlencoded::byte_serialize(pattern.as_bytes()).collect::<String>(),
            self.signature(pattern, expires)
        )
    }

    /// Checks a link's parts at `now`: the signature must be the one made
    /// for this pattern and expiry (compared in constant time), and the
    /// expiry still ahead.
    pub fn verify(
        &self,
        pattern: &str,
        expires: i64,
        signature: &str,
        now: i64,
    ) -> Result<(), &'static str> {
        let expected = self.signature(pattern, expires);
        if !constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
            return Err("this link is not one howl made (it was changed, or the secret was)");
        }
        if expires <= now {
            return Err("this link has expired; use a newer alert's link");
        }
        Ok(())
    }
}

/// Slack's interactivity requests (button presses), which arrive at the
/// API (`POST /api/v1/slack/actions`) and belong to the `slack` sink that
/// posted the message. Each such sink registers its app's signing secret
/// here and gets the requests signed with it; the API checks the
/// signature and hands them over, so a request nobody signed reaches no
/// sink.
#[derive(Clone, Debug, Default)]
pub struct SlackActions {
    receivers: Arc<Mutex<Vec<SlackReceiver>>>,
}

#[derive(Debug)]
struct SlackReceiver {
    signing_secret: Secret,
    /// The channel the sink posts to: one Slack app (one signing secret)
    /// may serve several sinks, each its own channel.
    channel: String,
    requests: mpsc::Sender<Bytes>,
}

/// Telegram's updates for the `telegram` sinks that receive button
/// presses through a webhook (`actions.updates = "webhook"`): Telegram
/// posts each update to `/api/v1/telegram/{sink}/updates` with the
/// `X-Telegram-Bot-Api-Secret-Token` header howl gave in `setWebhook`; the
/// API checks it (constant time) and hands the update to that sink.
#[derive(Clone, Debug, Default)]
pub struct TelegramWebhooks {
    sinks: Arc<Mutex<std::collections::HashMap<String, WebhookSink>>>,
}

/// A sink's secret token, and where its updates go.
type WebhookSink = (Secret, mpsc::Sender<Bytes>);

/// What became of an update posted to a Telegram webhook.
#[derive(Debug, PartialEq, Eq)]
pub enum WebhookDelivery {
    /// No sink of that id takes updates through a webhook.
    NoSink,
    /// The secret token is missing or wrong.
    Refused,
    /// Handed to the sink.
    Accepted,
    /// The sink has more updates waiting than it can hold (Telegram
    /// retries).
    Busy,
}

impl TelegramWebhooks {
    /// Registers sink `id` with its secret token; its updates arrive on
    /// the receiver (up to 64 waiting).
    pub fn register(&self, id: &str, secret: Secret) -> mpsc::Receiver<Bytes> {
        let (sender, receiver) = mpsc::channel(64);
        self.sinks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), (secret, sender));
        receiver
    }

    /// Hands an update to sink `id` when `token` is its secret.
    pub fn deliver(&self, id: &str, token: Option<&str>, body: Bytes) -> WebhookDelivery {
        let sinks = self.sinks.lock().unwrap_or_else(|p| p.into_inner());
        let Some((secret, sender)) = sinks.get(id).filter(|(_, s)| !s.is_closed()) else {
            return WebhookDelivery::NoSink;
        };
        if !token.is_some_and(|t| constant_time_eq(t.as_bytes(), secret.expose().as_bytes())) {
            return WebhookDelivery::Refused;
        }
        match sender.try_send(body) {
            Ok(()) => WebhookDelivery::Accepted,
            Err(_) => WebhookDelivery::Busy,
        }
    }
}

/// How old a signed request may be (Slack's advice: 5 minutes), so a
/// captured request cannot be replayed later.
pub const SLACK_MAX_AGE_SECS: i64 = 300;

/// What became of a request to the Slack actions endpoint.
#[derive(Debug, PartialEq, Eq)]
pub enum SlackDelivery {
    /// No `slack` sink takes button presses.
    NoReceivers,
    /// The signature is missing or matches no sink's signing secret, or
    /// the timestamp is missing or more than 5 minutes away.
    Refused(&'static str),
    /// Handed to the sink.
    Accepted,
    /// The sink has more presses waiting than it can hold.
    Busy,
}

/// The channel id of a press (`payload` → `channel.id`), if it has one.
fn press_channel(body: &[u8]) -> Option<String> {
    let payload = form_urlencoded::parse(body)
        .find(|(key, _)| key == "payload")?
        .1;
    let payload: serde_json::Value = serde_json::from_str(&payload).ok()?;
    payload["channel"]["id"].as_str().map(str::to_string)
}

impl SlackActions {
    /// Registers a sink with its app's signing secret and its channel;
    /// presses signed with it, from that channel (or, when no sink with
    /// the secret has the press's channel, the first), arrive on the
    /// receiver (up to 64 waiting).
    pub fn register(&self, signing_secret: Secret, channel: &str) -> mpsc::Receiver<Bytes> {
        let (requests, receiver) = mpsc::channel(64);
        let mut receivers = self.receivers.lock().unwrap_or_else(|p| p.into_inner());
        receivers.retain(|r| !r.requests.is_closed());
        receivers.push(SlackReceiver {
            signing_secret,
            channel: channel.to_string(),
            requests,
        });
        receiver
    }

    /// Checks a request's `X-Slack-Request-Timestamp` and
    /// `X-Slack-Signature` (`v0=` and the hex HMAC-SHA256 of
    /// `v0:{timestamp}:{body}` under the signing secret, compared in
    /// constant time) at `now` (Unix seconds), and hands it to the sink
    /// whose secret signed it.
    pub fn deliver(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: Bytes,
        now: i64,
    ) -> SlackDelivery {
        let receivers = self.receivers.lock().unwrap_or_else(|p| p.into_inner());
        if receivers.iter().all(|r| r.requests.is_closed()) {
            return SlackDelivery::NoReceivers;
        }
        let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
            return SlackDelivery::Refused(
                "missing X-Slack-Request-Timestamp or X-Slack-Signature",
            );
        };
        match timestamp.trim().parse::<i64>() {
            Ok(at) if now.abs_diff(at) <= SLACK_MAX_AGE_SECS.unsigned_abs() => {}
            _ => {
                return SlackDelivery::Refused("the request timestamp is more than 5 minutes away");
            }
        }
        let mut signed = Vec::with_capacity(body.len() + timestamp.len() + 4);
        signed.extend_from_slice(b"v0:");
        signed.extend_from_slice(timestamp.as_bytes());
        signed.push(b':');
        signed.extend_from_slice(&body);
        let signed_by: Vec<&SlackReceiver> = receivers
            .iter()
            .filter(|r| {
                let expected = format!(
                    "v0={}",
                    hex(&hmac_sha256(r.signing_secret.expose().as_bytes(), &signed))
                );
                constant_time_eq(expected.as_bytes(), signature.trim().as_bytes())
            })
            .collect();
        let channel = press_channel(&body);
        let receiver = signed_by
            .iter()
            .find(|r| channel.as_deref() == Some(r.channel.as_str()))
            .or(signed_by.first());
        match receiver {
            None => SlackDelivery::Refused("the signature matches no signing secret"),
            Some(receiver) => match receiver.requests.try_send(body) {
                Ok(()) => SlackDelivery::Accepted,
                Err(_) => SlackDelivery::Busy,
            },
        }
    }
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
            slack_actions: SlackActions::default(),
            telegram_webhooks: TelegramWebhooks::default(),
            links: None,
            taps: Taps::default(),
            readiness: Readiness::default(),
            state,
        }
    }

    /// With signed suppression links.
    pub fn with_links(mut self, signer: LinkSigner) -> Self {
        self.links = Some(Arc::new(signer));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_hold_only_for_their_pattern_until_they_expire() {
        let signer = LinkSigner::new(
            Secret::new("a-long-random-secret"),
            "https://howl.example/",
            3600,
        );
        let url = signer.suppress_url("3f9a0c1d2e4b5a69", 1_000);
        let query = url
            .strip_prefix("https://howl.example/api/v1/links/suppress?")
            .unwrap();
        let parts: std::collections::HashMap<String, String> =
            form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
        assert_eq!(parts["p"], "3f9a0c1d2e4b5a69");
        assert_eq!(parts["e"], "4600");
        let signature = parts["s"].as_str();
        assert_eq!(
            signer.verify("3f9a0c1d2e4b5a69", 4600, signature, 4599),
            Ok(())
        );
        assert!(
            signer
                .verify("3f9a0c1d2e4b5a69", 4600, signature, 4600)
                .is_err(),
            "expired"
        );
        assert!(
            signer
                .verify("another-pattern1", 4600, signature, 1_000)
                .is_err()
        );
        assert!(
            signer
                .verify("3f9a0c1d2e4b5a69", 9999, signature, 1_000)
                .is_err(),
            "extended"
        );
        let other = LinkSigner::new(
            Secret::new("another-secret-x"),
            "https://howl.example",
            3600,
        );
        assert!(
            other
                .verify("3f9a0c1d2e4b5a69", 4600, signature, 1_000)
                .is_err()
        );
        let odd = signer.suppress_url("a b&c=d", 0);
        assert!(odd.contains("p=a+b%26c%3Dd"), "{odd}");
    }

    fn sign(secret: &str, timestamp: &str, body: &str) -> String {
        let message = format!("v0:{timestamp}:{body}");
        format!(
            "v0={}",
            hex(&hmac_sha256(secret.as_bytes(), message.as_bytes()))
        )
    }

    #[test]
    fn only_requests_signed_recently_with_a_registered_secret_get_through() {
        let actions = SlackActions::default();
        let body = Bytes::from_static(b"payload=%7B%7D");
        let now = 1_765_000_000;
        assert_eq!(
            actions.deliver(Some("1765000000"), Some("v0=00"), body.clone(), now),
            SlackDelivery::NoReceivers
        );
        let mut first = actions.register(Secret::new("first-secret"), "C1");
        let mut second = actions.register(Secret::new("second-secret"), "C2");
        let good = sign("second-secret", "1765000000", "payload=%7B%7D");
        assert_eq!(
            actions.deliver(Some("1765000000"), Some(&good), body.clone(), now + 299),
            SlackDelivery::Accepted
        );
        assert_eq!(second.try_recv().unwrap(), body);
        assert!(
            first.try_recv().is_err(),
            "only the sink whose secret signed it"
        );
        for (timestamp, signature, at, why) in [
            (
                Some("1765000000"),
                Some(good.as_str()),
                now + 301,
                "5 minutes",
            ),
            (
                Some("1765000000"),
                Some(good.as_str()),
                now - 301,
                "5 minutes",
            ),
            (Some("1765000001"), Some(good.as_str()), now, "matches no"),
            (Some("1765000000"), Some("v0=beef"), now, "matches no"),
            (None, Some(good.as_str()), now, "missing"),
            (Some("1765000000"), None, now, "missing"),
            (Some("soon"), Some(good.as_str()), now, "5 minutes"),
        ] {
            match actions.deliver(timestamp, signature, body.clone(), at) {
                SlackDelivery::Refused(reason) => assert!(reason.contains(why), "{reason}"),
                other => panic!("{timestamp:?} {signature:?} at {at}: {other:?}"),
            }
        }
        let tampered = Bytes::from_static(b"payload=%7B%22x%22%7D");
        assert!(matches!(
            actions.deliver(Some("1765000000"), Some(&good), tampered, now),
            SlackDelivery::Refused(_)
        ));
    }
}
