//! The chat flow against an in-memory platform: which message is posted,
//! replied to or edited, and what is remembered across restarts.

use std::collections::HashSet;
use std::sync::Mutex;

use super::*;
use crate::alert::DEFAULT_KEY;
use crate::component_key::ComponentKind;
use crate::http::{HealthcheckConfig, HttpDelivery};

/// What the fake platform was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    Post {
        state: AlertState,
        reply_to: Option<u64>,
    },
    Edit {
        message: u64,
    },
}

/// Messages are numbered from 1; `deleted` ones cannot be edited.
#[derive(Default)]
struct FakeChat {
    calls: Mutex<Vec<Call>>,
    deleted: Mutex<HashSet<u64>>,
    next: Mutex<u64>,
}

impl ChatApi for FakeChat {
    type Sent = u64;

    async fn healthcheck(&self, _delivery: &Delivery) -> anyhow::Result<()> {
        Ok(())
    }

    async fn post(
        &self,
        _delivery: &Delivery,
        _event: &Event,
        state: AlertState,
        reply_to: Option<&u64>,
    ) -> Result<Option<u64>, Failure> {
        self.calls.lock().unwrap().push(Call::Post {
            state,
            reply_to: reply_to.copied(),
        });
        let mut next = self.next.lock().unwrap();
        *next += 1;
        Ok(Some(*next))
    }

    async fn edit(
        &self,
        _delivery: &Delivery,
        sent: &u64,
        _event: &Event,
        _state: AlertState,
    ) -> Result<Edited, Failure> {
        self.calls
            .lock()
            .unwrap()
            .push(Call::Edit { message: *sent });
        Ok(if self.deleted.lock().unwrap().contains(sent) {
            Edited::Gone
        } else {
            Edited::Done
        })
    }
}

struct Harness {
    sink: ChatSink<FakeChat>,
    delivery: Delivery,
    alerts: Alerts<u64>,
    state: StateHandle,
    key: ComponentKey,
}

impl Harness {
    fn new(dir: &std::path::Path, on_resolve: OnResolve) -> Self {
        let options = HttpDelivery::default();
        let settings =
            DeliverySettings::new(&options, &options.rate_limit, &HealthcheckConfig::default())
                .unwrap();
        let key = ComponentKey::new(ComponentKind::Sink, "chat", "fake");
        let metrics = Arc::new(ComponentMetrics::new(key.clone()));
        let state = StateHandle::new(dir.to_path_buf());
        Self {
            delivery: Delivery::new(settings.clone(), metrics.clone(), Redactor::default())
                .unwrap(),
            alerts: Alerts::load(&state, &key, metrics).unwrap(),
            sink: ChatSink::new(
                FakeChat::default(),
                settings,
                Redactor::default(),
                Template::parse(DEFAULT_KEY).unwrap(),
                on_resolve,
            ),
            state,
            key,
        }
    }

    async fn send(&mut self, event: Event) -> Outcome {
        self.sink
            .deliver(&self.delivery, &mut self.alerts, &event)
            .await
            .unwrap()
    }

    fn calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.sink.api.calls.lock().unwrap())
    }
}

fn firing(key: &str) -> Event {
    Event::from_value(vrl::value!({"alert": {"key": key, "state": "firing"}}))
}

fn resolved(key: &str) -> Event {
    Event::from_value(vrl::value!({"alert": {"key": key, "state": "resolved"}}))
}

fn post(state: AlertState, reply_to: Option<u64>) -> Call {
    Call::Post { state, reply_to }
}

#[tokio::test]
async fn repeats_reply_to_the_first_message_and_the_resolution_edits_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::new(dir.path(), OnResolve::Edit);
    h.send(firing("disk")).await;
    h.send(firing("disk")).await;
    h.send(firing("cpu")).await;
    h.send(resolved("disk")).await;
    h.send(firing("disk")).await;
    assert_eq!(
        h.calls(),
        vec![
            post(AlertState::Firing, None),
            post(AlertState::Firing, Some(1)),
            post(AlertState::Firing, None),
            Call::Edit { message: 1 },
            post(AlertState::Firing, None),
        ],
        "after its resolution, an alert starts a new message"
    );
}

#[tokio::test]
async fn posts_the_resolution_when_the_message_is_gone_or_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::new(dir.path(), OnResolve::Edit);
    h.send(firing("disk")).await;
    h.sink.api.deleted.lock().unwrap().insert(1);
    h.send(resolved("disk")).await;
    h.send(resolved("never-fired")).await;
    assert_eq!(
        h.calls(),
        vec![
            post(AlertState::Firing, None),
            Call::Edit { message: 1 },
            post(AlertState::Resolved, None),
            post(AlertState::Resolved, None),
        ]
    );
}

#[tokio::test]
async fn on_resolve_chooses_reply_send_or_nothing() {
    for (on_resolve, expected) in [
        (OnResolve::Reply, Some(post(AlertState::Resolved, Some(1)))),
        (OnResolve::Send, Some(post(AlertState::Resolved, None))),
        (OnResolve::Ignore, None),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut h = Harness::new(dir.path(), on_resolve);
        h.send(firing("disk")).await;
        h.calls();
        let outcome = h.send(resolved("disk")).await;
        assert_eq!(h.calls(), expected.clone().into_iter().collect::<Vec<_>>());
        assert_eq!(
            matches!(outcome, Outcome::Skipped),
            expected.is_none(),
            "{on_resolve:?}"
        );
        h.send(firing("disk")).await;
        assert_eq!(
            h.calls(),
            vec![post(AlertState::Firing, None)],
            "{on_resolve:?}: the alert was forgotten"
        );
    }
}

#[tokio::test]
async fn events_without_a_key_are_posted_but_not_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::new(dir.path(), OnResolve::Edit);
    let anonymous = || Event::from_value(vrl::value!({"message": "no identity"}));
    h.send(anonymous()).await;
    h.send(anonymous()).await;
    assert_eq!(
        h.calls(),
        vec![
            post(AlertState::Firing, None),
            post(AlertState::Firing, None)
        ]
    );
    assert!(h.alerts.active.is_empty());
}

#[tokio::test]
async fn remembers_active_alerts_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut h = Harness::new(dir.path(), OnResolve::Edit);
        h.send(firing("disk")).await;
        h.send(firing("cpu")).await;
        h.send(resolved("cpu")).await;
    }
    let mut h = Harness::new(dir.path(), OnResolve::Edit);
    let reloaded = Alerts::<u64>::load(&h.state, &h.key, h.delivery.metrics().clone()).unwrap();
    assert_eq!(reloaded.get("disk"), Some(&1));
    assert_eq!(reloaded.get("cpu"), None, "resolved alerts are forgotten");
    h.send(resolved("disk")).await;
    assert_eq!(h.calls(), vec![Call::Edit { message: 1 }]);
}

#[tokio::test]
async fn forgets_the_oldest_alert_beyond_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::new(dir.path(), OnResolve::Edit);
    h.alerts.limit = 2;
    for key in ["a", "b", "c"] {
        h.send(firing(key)).await;
    }
    let reloaded = Alerts::<u64>::load(&h.state, &h.key, h.delivery.metrics().clone()).unwrap();
    assert_eq!(reloaded.get("a"), None, "the oldest went first");
    assert_eq!(reloaded.get("b"), Some(&2));
    assert_eq!(reloaded.get("c"), Some(&3));
}
