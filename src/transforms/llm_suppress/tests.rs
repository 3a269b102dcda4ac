//! The running transform with a fake classifier on a paused clock: the
//! question-per-pattern contract, holding and releasing, failing open,
//! budgets, shadow mode, operators' suppressions and persistence. The wire
//! formats of the real providers are tested in `llm::tests` and
//! `tests/it/llm_suppress.rs`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vrl::value::Value;

use super::task::Triage;
use super::{Engine, LlmSuppressConfig, TransformConfig};
use crate::event::Event;
use crate::http::Failure;
use crate::llm::{Answer, Classifier, LlmError, Prompt, Verdict};
use crate::shared::Shared;
use crate::state::triage::Label;
use crate::suppressions::NewSuppression;
use crate::transforms::task_harness::{
    Harness, build_error, context, messages, parse, parse_error,
};

type Script = dyn Fn(&Prompt) -> (Duration, Result<Answer, LlmError>) + Send + Sync;

/// A classifier that answers by a script and records every prompt.
struct Fake {
    script: Box<Script>,
    prompts: Mutex<Vec<Prompt>>,
}

impl Fake {
    fn new(
        script: impl Fn(&Prompt) -> (Duration, Result<Answer, LlmError>) + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            script: Box::new(script),
            prompts: Mutex::new(Vec::new()),
        })
    }

    /// Noise for templates mentioning "noise", important otherwise, after
    /// `delay`.
    fn by_template(delay: Duration) -> Arc<Self> {
        Self::new(move |prompt| {
            let label = if prompt.template().contains("noise") {
                Label::Noise
            } else {
                Label::Important
            };
            (delay, Ok(answer(label, 0.9)))
        })
    }

    fn calls(&self) -> usize {
        self.prompts.lock().unwrap().len()
    }
}

impl Classifier for Fake {
    fn provider(&self) -> &'static str {
        "fake"
    }

    fn classify<'a>(
        &'a self,
        prompt: &'a Prompt,
    ) -> Pin<Box<dyn Future<Output = Result<Answer, LlmError>> + Send + 'a>> {
        self.prompts.lock().unwrap().push(prompt.clone());
        let (delay, answer) = (self.script)(prompt);
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            answer
        })
    }
}

fn answer(label: Label, confidence: f64) -> Answer {
    Answer {
        verdict: Verdict {
            label,
            confidence,
            reason: format!("it looks {}", label.as_str()),
        },
        usage: None,
    }
}

fn outage() -> LlmError {
    LlmError::Http(Failure::GaveUp {
        attempts: 3,
        elapsed: Duration::from_secs(10),
        last: "connection refused".into(),
    })
}

/// Runs the transform with `options`, answered by `fake` (the built-in
/// classifier when `None`), keeping state in `dir`.
fn start(options: &str, fake: Option<Arc<Fake>>, dir: &std::path::Path) -> (Harness, Shared) {
    let config: LlmSuppressConfig = parse(options);
    let mut settings = config.settings(&context(options)).expect("options build");
    if let Some(fake) = fake {
        // The fake answers in place of the configured provider, within
        // its budget.
        let budget = match &settings.engine {
            Engine::Chain(members) => members.first().map_or((0, 0), |m| m.budget),
            _ => (0, 0),
        };
        settings.engine = Engine::Given(fake, budget);
    }
    let shared = Shared::new(dir.to_path_buf());
    let harness = Harness::run(
        Box::new(Triage::new(settings)),
        config.outputs(),
        &["suppressed"],
        shared.clone(),
    );
    (harness, shared)
}

fn event(pattern: &str, level: &str, message: &str) -> Event {
    Event::from_value(Value::from(serde_json::json!({
        "message": message,
        "pattern": {"id": pattern, "template": format!("template of {pattern}"), "level": level},
    })))
}

fn triage(event: &Event, field: &str) -> Value {
    let path = vrl::path::parse_value_path(&format!("triage.{field}")).unwrap();
    event.get(&path).cloned().unwrap_or(Value::Null)
}

fn sources(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| triage(e, "source").to_string_lossy().into_owned())
        .collect()
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn asks_one_question_per_pattern_under_ten_thousand_events() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::by_template(2 * SECOND);
    let (mut h, _) = start(
        "provider = \"openai\"\nmodel = \"m\"",
        Some(Arc::clone(&fake)),
        dir.path(),
    );
    let patterns = ["noise-a", "important-b", "noise-c"];
    for batch in 0..20 {
        let events = (0..500)
            .map(|i| {
                event(
                    patterns[(batch * 500 + i) % 3],
                    "info",
                    &format!("line {i}"),
                )
            })
            .collect();
        h.send(events).await;
    }
    tokio::time::sleep(3 * SECOND).await;
    h.settle().await;
    assert_eq!(fake.calls(), 3, "one question per pattern");
    let passed = h.take(None);
    let suppressed = h.take(Some("suppressed"));
    assert_eq!(passed.len() + suppressed.len(), 10_000, "no event lost");
    assert_eq!(passed.len(), 3333, "the important pattern's events");
    assert!(
        suppressed
            .iter()
            .all(|e| triage(e, "verdict") == Value::from("noise"))
    );
    assert!(sources(&passed).iter().all(|s| s == "llm"));
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn annotates_suppressed_and_passing_events_for_the_audit_trail() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, _) = start(
        "provider = \"openai\"\nmodel = \"m\"",
        Some(Fake::by_template(SECOND)),
        dir.path(),
    );
    h.send(vec![
        event("noise-1", "info", "ping"),
        event("disk-1", "error", "disk full"),
    ])
    .await;
    tokio::time::sleep(2 * SECOND).await;
    let suppressed = h.take(Some("suppressed"));
    assert_eq!(messages(&suppressed), ["ping"]);
    assert_eq!(triage(&suppressed[0], "action"), Value::from("suppress"));
    assert_eq!(
        triage(&suppressed[0], "reason"),
        Value::from("it looks noise")
    );
    assert_eq!(
        triage(&suppressed[0], "confidence"),
        Value::from_f64_or_zero(0.9)
    );
    let passed = h.take(None);
    assert_eq!(messages(&passed), ["disk full"]);
    assert_eq!(triage(&passed[0], "verdict"), Value::from("important"));
    assert_eq!(triage(&passed[0], "source"), Value::from("llm"));
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn an_outage_fails_open_and_is_retried_after_a_backoff_not_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new(|_| (SECOND, Err(outage())));
    let (mut h, _) = start(
        "provider = \"openai\"\nmodel = \"m\"",
        Some(Arc::clone(&fake)),
        dir.path(),
    );
    h.send(
        (0..100)
            .map(|i| event("noise-1", "info", &format!("l{i}")))
            .collect(),
    )
    .await;
    tokio::time::sleep(2 * SECOND).await;
    h.send(
        (0..100)
            .map(|i| event("noise-1", "info", &format!("m{i}")))
            .collect(),
    )
    .await;
    h.settle().await;
    let passed = h.take(None);
    assert_eq!(passed.len(), 200, "every event passes");
    assert!(sources(&passed).iter().all(|s| s == "error"));
    assert!(
        triage(&passed[0], "reason")
            .to_string_lossy()
            .contains("connection refused")
    );
    assert_eq!(fake.calls(), 1, "the second batch came during the backoff");
    tokio::time::sleep(30 * SECOND).await;
    h.send(vec![event("noise-1", "info", "later")]).await;
    tokio::time::sleep(2 * SECOND).await;
    assert_eq!(fake.calls(), 2, "asked again after the backoff");
    assert_eq!(h.take(None).len(), 1);
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn on_error_suppress_sends_unanswered_events_to_suppressed() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new(|_| (SECOND, Err(LlmError::InvalidAnswer("not JSON".into()))));
    let (mut h, _) = start(
        "provider = \"openai\"\nmodel = \"m\"\non_error = \"suppress\"",
        Some(fake),
        dir.path(),
    );
    h.send(vec![event("p", "info", "x")]).await;
    tokio::time::sleep(2 * SECOND).await;
    let suppressed = h.take(Some("suppressed"));
    assert_eq!(sources(&suppressed), ["error"]);
    assert_eq!(triage(&suppressed[0], "verdict"), Value::from("unknown"));
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_slow_verdict_holds_only_its_pattern_and_releases_it_at_the_decision_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new(|prompt| {
        let delay = if prompt.template().contains("slow") {
            20 * SECOND
        } else {
            SECOND
        };
        (delay, Ok(answer(Label::Important, 0.9)))
    });
    let (mut h, _) = start(
        "provider = \"openai\"\nmodel = \"m\"\ndecision_timeout_secs = 15",
        Some(Arc::clone(&fake)),
        dir.path(),
    );
    h.send(vec![
        event("slow", "error", "s1"),
        event("fast", "error", "f1"),
    ])
    .await;
    tokio::time::sleep(2 * SECOND).await;
    assert_eq!(
        messages(&h.take(None)),
        ["f1"],
        "the fast pattern does not wait for the slow one"
    );
    h.send(vec![event("slow", "error", "s2")]).await;
    tokio::time::sleep(14 * SECOND).await;
    let released = h.take(None);
    assert_eq!(
        messages(&released),
        ["s1"],
        "released 15 s after arrival, in order"
    );
    assert_eq!(sources(&released), ["error"]);
    tokio::time::sleep(2 * SECOND).await;
    assert_eq!(messages(&h.take(None)), ["s2"]);
    tokio::time::sleep(3 * SECOND).await;
    h.send(vec![event("slow", "error", "s3")]).await;
    h.settle().await;
    let decided = h.take(None);
    assert_eq!(sources(&decided), ["llm"], "the late answer was kept");
    assert_eq!(fake.calls(), 2);
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_full_pending_queue_releases_the_oldest_event_first() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, _) = start(
        "provider = \"openai\"\nmodel = \"m\"\nmax_pending_events = 2",
        Some(Fake::by_template(10 * SECOND)),
        dir.path(),
    );
    h.send(vec![
        event("p", "info", "1"),
        event("p", "info", "2"),
        event("p", "info", "3"),
    ])
    .await;
    h.settle().await;
    let early = h.take(None);
    assert_eq!(messages(&early), ["1"]);
    assert_eq!(sources(&early), ["error"]);
    tokio::time::sleep(11 * SECOND).await;
    assert_eq!(messages(&h.take(None)), ["2", "3"]);
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn shadow_mode_suppresses_nothing_but_says_what_it_would() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, shared) = start(
        "provider = \"openai\"\nmodel = \"m\"\nmode = \"shadow\"",
        Some(Fake::by_template(SECOND)),
        dir.path(),
    );
    shared.suppressions.create(operator("op")).await.unwrap();
    h.send(vec![
        event("noise-1", "info", "a"),
        event("op", "info", "b"),
    ])
    .await;
    tokio::time::sleep(2 * SECOND).await;
    assert!(h.take(Some("suppressed")).is_empty());
    let passed = h.take(None);
    assert_eq!(
        messages(&passed),
        ["b", "a"],
        "the operator's decision needs no question"
    );
    assert!(
        passed
            .iter()
            .all(|e| triage(e, "action") == Value::from("would_suppress"))
    );
    h.finish().await;
}

/// Who ends decisions in these tests.
fn ops() -> crate::suppressions::Actor {
    crate::suppressions::Actor {
        who: "ops".into(),
        via: "test".into(),
    }
}

fn operator(pattern: &str) -> NewSuppression {
    NewSuppression {
        via: "test".into(),
        action: crate::suppressions::OperatorAction::Suppress,
        pattern_id: pattern.into(),
        reason: "known deploy noise".into(),
        ttl: None,
        created_by: "ops".into(),
    }
}

#[tokio::test(start_paused = true)]
async fn an_operators_suppression_applies_at_once_and_ends_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::by_template(SECOND);
    let (mut h, shared) = start(
        "provider = \"openai\"\nmodel = \"m\"",
        Some(Arc::clone(&fake)),
        dir.path(),
    );
    let created = shared.suppressions.create(operator("disk")).await.unwrap();
    h.send(vec![event("disk", "error", "d1")]).await;
    h.settle().await;
    let suppressed = h.take(Some("suppressed"));
    assert_eq!(sources(&suppressed), ["operator"]);
    assert_eq!(
        triage(&suppressed[0], "reason"),
        Value::from("known deploy noise")
    );
    assert_eq!(
        triage(&suppressed[0], "suppression_id"),
        Value::from(created.suppression.id.as_str())
    );
    assert_eq!(fake.calls(), 0, "an operator's decision needs no question");
    shared.suppressions.remove("disk", &ops()).await.unwrap();
    h.send(vec![event("disk", "error", "d2")]).await;
    tokio::time::sleep(2 * SECOND).await;
    assert_eq!(sources(&h.take(None)), ["llm"]);
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn always_alert_bypasses_suppression_and_when_limits_what_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::by_template(SECOND);
    let (mut h, shared) = start(
        "provider = \"openai\"\nmodel = \"m\"\n\
         always_alert = '.pattern.level == \"fatal\"'\nwhen = '.pattern.level != \"debug\"'",
        Some(Arc::clone(&fake)),
        dir.path(),
    );
    shared
        .suppressions
        .create(operator("noise-x"))
        .await
        .unwrap();
    h.send(vec![
        event("noise-x", "fatal", "fatal one"),
        event("noise-y", "debug", "chatter"),
    ])
    .await;
    h.settle().await;
    let passed = h.take(None);
    assert_eq!(messages(&passed), ["fatal one", "chatter"]);
    assert_eq!(triage(&passed[0], "source"), Value::from("rule"));
    assert_eq!(
        triage(&passed[1], "source"),
        Value::Null,
        "outside `when`: untouched"
    );
    assert_eq!(fake.calls(), 0);
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn events_kept_from_models_are_decided_by_rules_and_operators_only() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::by_template(SECOND);
    let (mut h, shared) = start(
        "provider = \"openai\"\nmodel = \"m\"\n\
         llm_allowed = '.category != \"host\"'",
        Some(Arc::clone(&fake)),
        dir.path(),
    );
    shared
        .suppressions
        .create(operator("noise-operator"))
        .await
        .unwrap();
    let with_category = |pattern: &str, level: &str, category: &str| {
        let mut event = event(pattern, level, &format!("{category} {pattern}"));
        event.insert_field("category", Value::from(category));
        event
    };
    // The model calls it noise and is asked once.
    h.send(vec![with_category("noise-app", "error", "app")])
        .await;
    tokio::time::sleep(2 * SECOND).await;
    h.settle().await;
    assert_eq!(sources(&h.take(Some("suppressed"))), ["llm"]);
    assert_eq!(fake.calls(), 1);
    // The same pattern, and others, from hosts: the rules decide, even
    // where the model had a verdict; an operator's suppression still holds.
    h.send(vec![
        with_category("noise-app", "error", "host"),
        with_category("noise-disk", "error", "host"),
        with_category("noise-operator", "error", "host"),
    ])
    .await;
    h.settle().await;
    let passed = h.take(None);
    assert_eq!(messages(&passed), ["host noise-app", "host noise-disk"]);
    for event in &passed {
        assert_eq!(triage(event, "source"), Value::from("builtin"));
        assert!(
            triage(event, "reason")
                .to_string_lossy()
                .starts_with("rules only (llm_allowed is false)"),
            "{:?}",
            triage(event, "reason")
        );
    }
    assert_eq!(sources(&h.take(Some("suppressed"))), ["operator"]);
    assert_eq!(fake.calls(), 1, "nothing kept from models was sent to one");
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn an_operators_always_alert_passes_a_pattern_a_model_calls_noise() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::by_template(SECOND);
    let (mut h, shared) = start(
        "provider = \"openai\"\nmodel = \"m\"",
        Some(Arc::clone(&fake)),
        dir.path(),
    );
    let mut always = operator("noise-vip");
    always.action = crate::suppressions::OperatorAction::AlwaysAlert;
    always.reason = "the payments team reads every one".into();
    shared.suppressions.create(always).await.unwrap();
    h.send(vec![event("noise-vip", "info", "vip")]).await;
    h.settle().await;
    let passed = h.take(None);
    assert_eq!(messages(&passed), ["vip"]);
    assert_eq!(triage(&passed[0], "source"), Value::from("operator"));
    assert_eq!(triage(&passed[0], "verdict"), Value::from("important"));
    assert_eq!(
        triage(&passed[0], "reason"),
        Value::from("the payments team reads every one")
    );
    assert_eq!(fake.calls(), 0, "an operator's decision is not asked about");
    h.finish().await;
}

fn templated(pattern: &str, level: &str, template: &str) -> Event {
    Event::from_value(Value::from(serde_json::json!({
        "message": template.replace("<NUM>", "42"),
        "pattern": {"id": pattern, "template": template, "level": level},
    })))
}

#[tokio::test(start_paused = true)]
async fn a_new_pattern_close_to_a_suppressed_one_inherits_its_decision_unless_it_is_worse() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::by_template(SECOND);
    let (mut h, shared) = start(
        "provider = \"openai\"\nmodel = \"m\"",
        Some(Arc::clone(&fake)),
        dir.path(),
    );
    let mut hourly = operator("hourly");
    hourly.reason = "cron chatter".into();
    shared.suppressions.create(hourly).await.unwrap();
    h.send(vec![templated(
        "hourly",
        "info",
        "cron[<NUM>]: (root) CMD (run-parts /etc/cron.hourly)",
    )])
    .await;
    h.settle().await;
    assert_eq!(sources(&h.take(Some("suppressed"))), ["operator"]);

    h.send(vec![
        templated(
            "daily",
            "info",
            "cron[<NUM>]: (root) CMD (run-parts /etc/cron.daily)",
        ),
        templated(
            "daily",
            "info",
            "cron[<NUM>]: (root) CMD (run-parts /etc/cron.daily)",
        ),
    ])
    .await;
    h.settle().await;
    let inherited = h.take(Some("suppressed"));
    assert_eq!(sources(&inherited), ["inherited", "inherited"]);
    let reason = triage(&inherited[0], "reason")
        .to_string_lossy()
        .into_owned();
    assert!(
        reason.starts_with("inherited from pattern hourly: suppressed by ops: cron chatter"),
        "{reason}"
    );
    assert_eq!(fake.calls(), 0, "an inherited decision is not asked about");

    // Close, but an error with a failure word: asked, not inherited.
    h.send(vec![templated(
        "weekly-error",
        "error",
        "cron[<NUM>]: (root) ERROR (run-parts /etc/cron.weekly)",
    )])
    .await;
    tokio::time::sleep(2 * SECOND).await;
    h.settle().await;
    assert_eq!(sources(&h.take(None)), ["llm"]);
    assert_eq!(fake.calls(), 1);

    // When the neighbour's suppression ends, so does the inheritance.
    shared.suppressions.remove("hourly", &ops()).await.unwrap();
    h.send(vec![templated(
        "daily",
        "info",
        "cron[<NUM>]: (root) CMD (run-parts /etc/cron.daily)",
    )])
    .await;
    tokio::time::sleep(2 * SECOND).await;
    h.settle().await;
    assert_eq!(sources(&h.take(None)), ["llm"], "asked now");
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_verdict_makes_a_neighbour_at_once_for_patterns_seen_once() {
    // As with `inputs = ["patterns.new"]`: one event per pattern.
    let dir = tempfile::tempdir().unwrap();
    let (mut h, _shared) = start("", None, dir.path());
    h.send(vec![templated(
        "hc1",
        "info",
        "GET /healthz on node <NUM> returned 200 OK",
    )])
    .await;
    h.settle().await;
    assert_eq!(sources(&h.take(Some("suppressed"))), ["builtin"]);
    h.send(vec![templated(
        "hc2",
        "info",
        "GET /healthz on pod <NUM> returned 200 OK",
    )])
    .await;
    h.settle().await;
    assert_eq!(sources(&h.take(Some("suppressed"))), ["inherited"]);
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn patterns_seen_while_learning_are_routine_and_close_ones_later_inherit_it() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::by_template(Duration::ZERO);
    let (mut h, _shared) = start(
        "provider = \"openai\"\nmodel = \"m\"\nlearn_for = \"3s\"",
        Some(Arc::clone(&fake)),
        dir.path(),
    );
    h.send(vec![
        templated("sync", "info", "sync of shard <NUM> done in <*>"),
        templated("panic", "fatal", "kernel panic - not syncing"),
    ])
    .await;
    h.settle().await;
    let routine = h.take(Some("suppressed"));
    assert_eq!(sources(&routine), ["learned"], "never a fatal line");
    tokio::time::sleep(Duration::from_millis(3100)).await;
    h.send(vec![
        templated("sync2", "info", "sync of index <NUM> done in <*>"),
        templated("fresh", "info", "a brand new kind of line"),
        templated("sync-failed", "info", "sync of shard <NUM> failed in <*>"),
    ])
    .await;
    // Questions are answered on other tasks: gather until all is out.
    let (mut passed, mut suppressed) = (Vec::new(), Vec::new());
    for _ in 0..250 {
        h.settle().await;
        passed.extend(h.take(None));
        suppressed.extend(h.take(Some("suppressed")));
        if passed.len() >= 3 && !suppressed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sources(&suppressed), ["inherited"]);
    assert_eq!(
        sources(&passed),
        ["llm", "llm", "llm"],
        "the fatal line while learning, and the two after it: asked"
    );
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn over_budget_questions_fail_open_without_being_sent() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::by_template(SECOND);
    let (mut h, _) = start(
        "provider = \"openai\"\nmodel = \"m\"\nrequests_per_minute = 2",
        Some(Arc::clone(&fake)),
        dir.path(),
    );
    h.send(vec![
        event("a", "info", "a"),
        event("b", "info", "b"),
        event("c", "info", "c"),
    ])
    .await;
    h.settle().await;
    let early = h.take(None);
    assert_eq!(messages(&early), ["c"]);
    assert!(
        triage(&early[0], "reason")
            .to_string_lossy()
            .contains("requests_per_minute"),
        "{early:?}"
    );
    tokio::time::sleep(2 * SECOND).await;
    assert_eq!(fake.calls(), 2);
    assert_eq!(messages(&h.take(None)), ["a", "b"]);
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn verdicts_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let options = "provider = \"openai\"\nmodel = \"m\"";
    let first = Fake::by_template(SECOND);
    let (h, _) = start(options, Some(Arc::clone(&first)), dir.path());
    h.send(vec![event("noise-1", "info", "a")]).await;
    tokio::time::sleep(2 * SECOND).await;
    h.finish().await;
    let second = Fake::by_template(SECOND);
    let (mut h, _) = start(options, Some(Arc::clone(&second)), dir.path());
    h.send(vec![event("noise-1", "info", "b")]).await;
    h.settle().await;
    assert_eq!(sources(&h.take(Some("suppressed"))), ["llm"]);
    assert_eq!(second.calls(), 0, "the stored verdict decided");
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn prompts_carry_masked_samples_only() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::by_template(SECOND);
    let (h, _) = start(
        "provider = \"openai\"\nmodel = \"m\"",
        Some(Arc::clone(&fake)),
        dir.path(),
    );
    h.send(
        crate::llm::redact::tests::SECRETS
            .iter()
            .map(|(line, _)| event("p", "warn", line))
            .collect(),
    )
    .await;
    tokio::time::sleep(2 * SECOND).await;
    let prompts = fake.prompts.lock().unwrap().clone();
    assert_eq!(prompts.len(), 1);
    assert_eq!(
        prompts[0].samples().len(),
        3,
        "three samples from the batch"
    );
    let content = prompts[0].user_content();
    for (_, secret) in crate::llm::redact::tests::SECRETS {
        assert!(!content.contains(secret), "{secret} reached the classifier");
    }
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn the_builtin_classifier_decides_at_once_and_remembers() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, _) = start("", None, dir.path());
    let health = |message: &str| {
        Event::from_value(Value::from(serde_json::json!({
            "message": message,
            "pattern": {"id": "h", "template": "GET /healthz <NUM>", "level": "info"},
        })))
    };
    h.send(vec![
        health("GET /healthz 200"),
        event("disk", "error", "disk full"),
    ])
    .await;
    h.settle().await;
    let suppressed = h.take(Some("suppressed"));
    assert_eq!(sources(&suppressed), ["builtin"]);
    assert_eq!(messages(&h.take(None)), ["disk full"]);
    h.finish().await;
}

#[test]
fn options_that_cannot_work_are_config_errors() {
    let error = |options: &str| build_error::<LlmSuppressConfig>(options);
    assert!(error("provider = \"openai\"").contains("needs `model`"));
    assert!(error("model = \"m\"").contains("for network providers"));
    assert!(error("when = '.pattern.level'").contains("boolean"));
    assert!(error("verdict_ttl = 0").contains("`verdict_ttl` must be more than 0"));
    assert!(
        error("alertmanager_silence = { url = \"http://am:9093\", duration = 0 }")
            .contains("`alertmanager_silence.duration`")
    );
}

#[test]
fn bad_values_fail_while_parsing_where_they_are_written() {
    for (options, expected, at) in [
        (
            "provider = \"ollama\"\nmodel = \"m\"\nendpoint = \"ftp://x\"",
            "http(s)",
            "\"ftp://x\"",
        ),
        ("min_confidence = 1.5", "from 0 to 1", "1.5"),
        ("verdict_ttl = \"soon\"", "invalid duration", "\"soon\""),
        ("redact = ['(']", "regular expression", "'('"),
        ("max_pending_events = 0", "nonzero", "0"),
        ("max_tokens = 0", "nonzero", "0"),
        ("message_field = 'a..b'", "invalid field path", "'a..b'"),
        (
            "alertmanager_silence = { url = \"am:9093\" }",
            "http(s)",
            "\"am:9093\"",
        ),
    ] {
        let (message, span) = parse_error::<LlmSuppressConfig>(options);
        assert!(message.contains(expected), "{options}: {message}");
        assert_eq!(span, at, "{options}: {message}");
    }
}

#[test]
fn durations_take_plain_seconds_or_units() {
    let settings = |options: &str| {
        parse::<LlmSuppressConfig>(options)
            .settings(&context(options))
            .expect("options build")
    };
    assert_eq!(
        settings("verdict_ttl = \"12h\"").verdict_ttl,
        chrono::Duration::hours(12)
    );
    assert_eq!(
        settings("verdict_ttl = 90").verdict_ttl,
        chrono::Duration::seconds(90)
    );
    assert_eq!(
        settings("").verdict_ttl,
        chrono::Duration::days(7),
        "a week by default"
    );
    let silence = |options: &str| settings(options).silence.expect("a silence").1;
    assert_eq!(
        silence("alertmanager_silence = { url = \"http://am:9093\", duration = 3600 }"),
        Duration::from_secs(3600)
    );
    assert_eq!(
        silence("alertmanager_silence = { url = \"http://am:9093\", duration = \"2d\" }"),
        Duration::from_secs(2 * 86_400)
    );
    assert_eq!(
        silence("alertmanager_silence = { url = \"http://am:9093\" }"),
        Duration::from_secs(7 * 86_400)
    );
}

#[tokio::test(start_paused = true)]
async fn a_suppression_made_while_a_question_is_pending_applies_to_the_held_events() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::by_template(SECOND);
    let (mut h, shared) = start(
        "provider = \"openai\"\nmodel = \"m\"",
        Some(Arc::clone(&fake)),
        dir.path(),
    );
    h.send(vec![event("disk", "error", "d1")]).await;
    tokio::time::sleep(SECOND / 2).await;
    assert!(
        h.take(None).is_empty(),
        "held while the question is pending"
    );
    shared.suppressions.create(operator("disk")).await.unwrap();
    tokio::time::sleep(2 * SECOND).await;
    assert!(
        h.take(None).is_empty(),
        "the answer (important) does not overrule the operator"
    );
    assert_eq!(sources(&h.take(Some("suppressed"))), ["operator"]);
    assert_eq!(fake.calls(), 1);
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn policy_rules_keep_a_category_from_models_and_set_its_own_confidence() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::by_template(SECOND);
    let (mut h, _) = start(
        "provider = \"openai\"\nmodel = \"m\"\n\
         policy = [\n\
         { name = \"hosts\", condition = '.host_alert == true', llm_allowed = false },\n\
         { name = \"strict\", condition = '.pattern.level == \"debug\"', min_confidence = 0.95 },\n\
         ]",
        Some(Arc::clone(&fake)),
        dir.path(),
    );
    let mut host = templated("noise-host", "info", "disk noise on volume <*> of host <*>");
    host.insert_field("message", "h");
    host.insert_field("host_alert", true);
    let mut debug = templated("noise-debug", "debug", "cache trace noise for key <*>");
    debug.insert_field("message", "d");
    let mut other = templated("noise-other", "info", "user <*> logged in noise from <*>");
    other.insert_field("message", "o");
    h.send(vec![host, debug, other]).await;
    tokio::time::sleep(2 * SECOND).await;
    assert_eq!(fake.calls(), 2, "the hosts category never reaches a model");
    let passed = h.take(None);
    let suppressed = h.take(Some("suppressed"));
    let by_message = |events: &[Event], message: &str| {
        events
            .iter()
            .find(|e| e.get_field("message") == Some(&Value::from(message)))
            .cloned()
    };
    let host = by_message(&passed, "h")
        .or_else(|| by_message(&suppressed, "h"))
        .expect("the host event");
    assert_eq!(triage(&host, "policy"), Value::from("hosts"));
    assert_eq!(triage(&host, "source"), Value::from("builtin"));
    // Noise at 0.9: under `strict` (0.95) it passes, elsewhere (0.7) not.
    let debug = by_message(&passed, "d").unwrap_or_else(|| {
        panic!(
            "passes under its stricter rule: {:?}",
            by_message(&suppressed, "d").and_then(|e| e.get_field("triage").cloned())
        )
    });
    assert_eq!(triage(&debug, "policy"), Value::from("strict"));
    assert_eq!(triage(&debug, "action"), Value::from("pass"));
    let other = by_message(&suppressed, "o").expect("suppressed by the transform's own policy");
    assert_eq!(triage(&other, "policy"), Value::Null);
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_canary_enforces_the_verdicts_of_its_share_of_patterns_only() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, _) = start(
        "provider = \"openai\"\nmodel = \"m\"\nmode = \"canary\"\ncanary_percent = 30\nmax_concurrency = 64\nrequests_per_minute = 0\nmax_requests_per_hour = 0",
        Some(Fake::by_template(Duration::from_millis(10))),
        dir.path(),
    );
    let ids: Vec<String> = (0..300).map(|i| format!("noise-{i}")).collect();
    h.send(ids.iter().map(|id| event(id, "info", id)).collect())
        .await;
    tokio::time::sleep(2 * SECOND).await;
    let suppressed = h.take(Some("suppressed"));
    let passed = h.take(None);
    assert_eq!(suppressed.len() + passed.len(), ids.len());
    for event in &passed {
        assert_eq!(triage(event, "action"), Value::from("would_suppress"));
        assert_eq!(triage(event, "canary"), Value::from(false));
    }
    for event in &suppressed {
        assert_eq!(
            triage(event, "canary"),
            Value::from(true),
            "{:?}",
            event.get_field("triage")
        );
    }
    let enforced: std::collections::BTreeSet<String> = suppressed
        .iter()
        .map(|e| {
            e.get_field("message")
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let expected: std::collections::BTreeSet<String> = ids
        .iter()
        .filter(|id| super::decision::in_canary(id, 30.0))
        .cloned()
        .collect();
    assert_eq!(enforced, expected, "the canary is the stable hash's share");
    let share = enforced.len() as f64 / ids.len() as f64 * 100.0;
    assert!((share - 30.0).abs() <= 6.0, "{share}% enforced");
    h.finish().await;
}

#[test]
fn a_policy_rule_that_can_never_match_is_a_config_error() {
    let error = |options: &str| build_error::<LlmSuppressConfig>(options);
    let shadowed = error(
        "policy = [\n{ name = \"all\", condition = 'true' },\n{ name = \"hosts\", condition = '.host == \"a\"' },\n]",
    );
    assert!(shadowed.contains("`hosts` can never match"), "{shadowed}");
    assert!(shadowed.contains("`all`"), "{shadowed}");
    let twice = error(
        "policy = [\n{ name = \"a\", condition = '.x == 1' },\n{ name = \"b\", condition = '.x  ==  1' },\n]",
    );
    assert!(twice.contains("same condition"), "{twice}");
    let unknown = error(
        "provider = \"openai\"\nmodel = \"m\"\npolicy = [{ name = \"a\", condition = 'true', providers = [\"nope\"] }]",
    );
    assert!(unknown.contains("provider `nope`"), "{unknown}");
    assert!(error("canary_percent = 150").contains("from 0 to 100"));
    assert!(
        error("local_required = 'true'").contains("`local = true`"),
        "local_required needs a local provider"
    );
    let both = error(
        "model = \"m\"\nproviders = [{ name = \"a\", provider = \"openai\", model = \"m\" }]",
    );
    assert!(both.contains("set per provider"), "{both}");
    let compare =
        error("providers = [{ name = \"a\", provider = \"builtin\" }]\ncompare = [\"b\"]");
    assert!(compare.contains("`compare` names `b`"), "{compare}");
    let only = error("providers = [{ name = \"a\", provider = \"builtin\" }]\ncompare = [\"a\"]");
    assert!(only.contains("at least one must decide"), "{only}");
    let injected = error("providers = [{ name = \"a\\nb\", provider = \"builtin\" }]");
    assert!(injected.contains("letters, digits"), "{injected}");
    let many: Vec<String> = (0..17)
        .map(|i| format!("{{ name = \"p{i}\", provider = \"builtin\" }}"))
        .collect();
    let long = error(&format!("providers = [{}]", many.join(", ")));
    assert!(long.contains("at most 16"), "{long}");
}
