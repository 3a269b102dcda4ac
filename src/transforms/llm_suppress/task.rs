//! The running `llm_suppress` transform: one task that decides events as
//! they come, asks questions concurrently, and releases held events when
//! answers (or deadlines) arrive.
//!
//! The loop waits on four things at once: the input, finished questions,
//! the next pending deadline and shutdown. Nothing in it waits on the
//! network: a question runs as a task of its own, and its events wait in
//! `Pending` while other patterns flow through.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use tokio::task::{Id, JoinSet};
use tokio::time::Instant;
use vrl::compiler::Program;
use vrl::path::OwnedValuePath;
use vrl::value::Value;

use super::decision::{Decision, Framing, Policy};
use super::neighbours::{Neighbours, Why};
use super::pending::Pending;
use super::policy::{Framer, RuleSettings};
use super::verdicts::{Lookup, Verdicts};
use super::{Engine, SUPPRESSED};
use crate::components::ComponentFuture;
use crate::components::transform::{DropRoute, TaskContext, TaskTransform, TransformOutput};
use crate::event::Event;
use crate::internal_events::{ComponentMetrics, ErrorType, Stage};
use crate::llm::budget::Budget;
use crate::llm::chain::{Allowed, Answered, BuiltinClassifier, Chain, Member};
use crate::llm::contract::MAX_SAMPLES;
use crate::llm::{Classifier, LlmError, Masker, Prompt, builtin};
use crate::shared::LinkSigner;
use crate::state::StateStore;
use crate::state::audit::AuditRecord;
use crate::state::shared::{Claim, ClaimLease, SharedState};
use crate::state::triage::OperatorAction;
use crate::state::triage::{Comparison, StoredVerdict, VerdictSource, save_comparisons};
use crate::suppressions::{Silencer, Snapshot, Suppressions};
use crate::vrl_program::VrlRunner;

/// The fields an event is read from.
pub struct Fields {
    /// `pattern_field`.
    pub pattern: OwnedValuePath,
    /// `template_field`.
    pub template: OwnedValuePath,
    /// `level_field`.
    pub level: OwnedValuePath,
    /// `message_field`.
    pub message: OwnedValuePath,
}

/// Everything the task needs from the options.
pub struct Settings {
    /// Who answers.
    pub engine: Engine,
    /// How verdicts become decisions.
    pub policy: Policy,
    /// Where to read.
    pub fields: Fields,
    /// `when`.
    pub when: Option<Arc<Program>>,
    /// `llm_allowed`.
    pub llm_allowed: Option<Arc<Program>>,
    /// `always_alert`.
    pub always_alert: Option<Arc<Program>>,
    /// `local_required`.
    pub local_required: Option<Arc<Program>>,
    /// `policy`.
    pub rules: Vec<RuleSettings>,
    /// The transform's own framing of decisions (a canary).
    pub framing: Option<Framing>,
    /// `provider_backoff_secs`.
    pub provider_backoff: Duration,
    /// Secret masking for prompts.
    pub masker: Masker,
    /// `decision_timeout_secs`.
    pub decision_timeout: Duration,
    /// The longest a question may take in all: retries stop at the
    /// decision timeout, and the attempt then running may take
    /// `timeout_secs` more.
    pub question_limit: Duration,
    /// `max_pending_events`.
    pub max_pending: usize,
    /// `verdict_ttl`.
    pub verdict_ttl: chrono::Duration,
    /// `alertmanager_silence`: the URL and the duration.
    pub silence: Option<(String, Duration)>,
    /// `learn_for`.
    pub learn_for: Option<chrono::Duration>,
}

/// The transform, ready to run.
pub struct Triage {
    settings: Settings,
}

impl Triage {
    /// Prepares the transform.
    pub fn new(settings: Settings) -> Self {
        Self { settings }
    }
}

impl TaskTransform for Triage {
    fn run(self: Box<Self>, cx: TaskContext) -> ComponentFuture {
        Box::pin(run(self.settings, cx))
    }
}

/// Who answers questions, connected.
enum Asker {
    Builtin,
    Chain(Arc<Chain>),
}

/// How verdicts of the built-in classifier name their "model".
const BUILTIN_MODEL: &str = "builtin";
/// The most rule decisions (`llm_allowed`), and links, kept in memory;
/// beyond it they are forgotten and made again, which costs only a few
/// microseconds each.
const MAX_RULE_DECISIONS: usize = 10_000;
/// Where events get their suppression link (`[api.links]`).
const SUPPRESS_URL: &str = "suppress_url";

/// What a finished question hands back.
type Asked = (String, Result<Reply, String>);

/// A question's answer: its own, or the fleet's (`[state.shared.nats]`:
/// another instance held the claim and shared its verdict).
enum Reply {
    /// A provider of the chain answered.
    Answered(Answered),
    /// Another instance's verdict.
    Shared(StoredVerdict),
}

/// What a provider asked only to compare answered: the pattern, the
/// provider's name, and its answer.
type Compared = (String, String, Result<Answered, String>);

/// What a new question says about its pattern: the first event's template
/// and level, and samples gathered from the same batch (questions start
/// once the batch is handled, in the order their patterns appeared).
struct Question {
    template: String,
    level: String,
    samples: Vec<Arc<str>>,
    /// `local_required` held for the first event.
    local_only: bool,
    /// The providers its policy rule allows (`None`: any).
    providers: Option<Arc<[String]>>,
}

struct Running {
    settings: Settings,
    asker: Asker,
    verdicts: Verdicts,
    pending: Pending,
    suppressions: Suppressions,
    snapshot: Snapshot,
    generation: u64,
    /// Decisions of operators' suppressions, made on first use.
    operator: HashMap<String, Decision>,
    rule: Decision,
    timed_out: Decision,
    shutdown: Decision,
    when: Option<VrlRunner>,
    llm_allowed: Option<VrlRunner>,
    local_required: Option<VrlRunner>,
    /// `policy` rules and the canary: how decisions are framed per pattern.
    framer: Framer,
    /// Decisions of the built-in rules for events kept from language
    /// models (`llm_allowed`), per pattern: the rules are deterministic, so
    /// they are made once, kept in memory only, and never stored as
    /// verdicts (a model's verdict for the pattern stays as it was).
    by_rules: HashMap<String, Decision>,
    /// Decisions to record in the audit trail with the next save.
    audit: Vec<AuditRecord>,
    /// Patterns decided as noise, which close new ones may inherit from.
    neighbours: Neighbours,
    /// New patterns' inherited decisions, with the pattern each came from.
    inherited: HashMap<String, (Decision, String, Why)>,
    /// The end of the learning period (`learn_for`), if it is set.
    /// (Started from the stored wall-clock start, counted on the
    /// monotonic clock: a clock step does not end or stretch it.)
    learning_until: Option<Instant>,
    /// Signs suppression links, when `[api.links]` is set.
    links: Option<Arc<LinkSigner>>,
    /// Each pattern's link and when it was made (a link is made anew when
    /// half its life is gone, not per event).
    link_cache: HashMap<String, (Value, i64)>,
    /// `transforms.ID`, the records' `via`.
    component: String,
    always_alert: Option<VrlRunner>,
    questions: JoinSet<Asked>,
    asking: HashMap<Id, String>,
    /// Providers asked only to compare (`compare`).
    comparers: Vec<Arc<Chain>>,
    /// Their questions in flight.
    comparisons: JoinSet<Compared>,
    /// Their answers for patterns whose deciding verdict is still awaited.
    waiting_comparisons: HashMap<String, Vec<Compared>>,
    /// Comparisons to save with the next save.
    compared: Vec<(String, Comparison)>,
    /// The incumbent of a canary: each pattern's verdict by a model no
    /// longer in the chain, as stored before this start.
    incumbents: HashMap<String, crate::state::triage::Label>,
    store: Arc<StateStore>,
    metrics: Arc<ComponentMetrics>,
    suppressed: DropRoute,
    shutting_down: bool,
    /// The fleet's shared state (`[state.shared.nats]`): verdicts of other
    /// instances are used, and one instance asks per pattern.
    shared: Option<Arc<dyn SharedState>>,
    /// The models whose verdicts this transform uses.
    models: Vec<String>,
}

async fn run(mut settings: Settings, mut cx: TaskContext) -> anyhow::Result<()> {
    let mut comparing = Vec::new();
    let members = match &settings.engine {
        Engine::Builtin => Vec::new(),
        Engine::Chain(members) => {
            let mut connected = Vec::new();
            for member in members {
                let (classifier, model): (Arc<dyn Classifier>, String) = match &member.remote {
                    Some(remote) => (
                        remote.connect(Arc::clone(&cx.metrics))?,
                        format!("{}/{}", remote.kind.as_str(), remote.model),
                    ),
                    None => (Arc::new(BuiltinClassifier), BUILTIN_MODEL.to_string()),
                };
                let connected_member = Member {
                    name: member.name.clone(),
                    model,
                    local: member.local,
                    classifier,
                    budget: Budget::new(member.budget.0, member.budget.1),
                };
                if member.compare {
                    comparing.push(connected_member);
                } else {
                    connected.push(connected_member);
                }
            }
            connected
        }
        #[cfg(test)]
        Engine::Given(classifier, budget) => vec![Member {
            name: classifier.provider().to_string(),
            model: format!("{}/test", classifier.provider()),
            local: false,
            classifier: Arc::clone(classifier),
            budget: Budget::new(budget.0, budget.1),
        }],
    };
    // Stops the health checks when the transform ends, however it ends.
    let health = tokio_util::sync::CancellationToken::new();
    let _stop_health = health.clone().drop_guard();
    let asker = if members.is_empty() {
        Asker::Builtin
    } else {
        let chain = Arc::new(Chain::new(
            members,
            settings.provider_backoff,
            Arc::clone(&cx.metrics),
        ));
        tokio::spawn(Arc::clone(&chain).check_health(health.clone()));
        Asker::Chain(chain)
    };
    // Providers asked only to compare: a chain of one each.
    let comparers: Vec<Arc<Chain>> = comparing
        .into_iter()
        .map(|member| {
            let chain = Arc::new(Chain::new(
                vec![member],
                settings.provider_backoff,
                Arc::clone(&cx.metrics),
            ));
            tokio::spawn(Arc::clone(&chain).check_health(health.clone()));
            chain
        })
        .collect();
    let models = match &asker {
        Asker::Builtin => vec![BUILTIN_MODEL.to_string()],
        Asker::Chain(chain) => chain.models(),
    };
    let store = cx.state.store()?;
    let verdicts = Verdicts::load(&store, cx.key.id(), &models, settings.policy)?;
    if verdicts.known() > 0 {
        tracing::info!(component = %cx.key, verdicts = verdicts.known(), "loaded stored verdicts");
    }
    if let Some((url, duration)) = &settings.silence {
        cx.suppressions
            .add_silencer(Silencer::new(url, *duration, Arc::clone(&cx.metrics))?);
    }
    let mut running = Running {
        pending: Pending::new(settings.max_pending, settings.decision_timeout),
        // Loads the suppressions now, so a store that cannot be read stops
        // the start; generation 0 (never current once loaded) makes the
        // first batch take a fresh snapshot.
        snapshot: cx.suppressions.snapshot()?,
        generation: 0,
        suppressions: cx.suppressions.clone(),
        operator: HashMap::new(),
        rule: settings.policy.rule(),
        timed_out: settings.policy.error(&format!(
            "no verdict within decision_timeout_secs ({}s)",
            settings.decision_timeout.as_secs_f64()
        )),
        shutdown: settings.policy.error("howl is shutting down"),
        when: settings.when.clone().map(VrlRunner::new),
        llm_allowed: settings.llm_allowed.clone().map(VrlRunner::new),
        local_required: settings.local_required.clone().map(VrlRunner::new),
        framer: Framer::new(
            std::mem::take(&mut settings.rules),
            settings.framing.clone(),
            DropRoute::new(&cx.outputs, SUPPRESSED),
            Arc::clone(&cx.metrics),
        ),
        by_rules: HashMap::new(),
        audit: Vec::new(),
        neighbours: Neighbours::default(),
        inherited: HashMap::new(),
        learning_until: match settings.learn_for {
            Some(period) => {
                let left = learning_start(&store, cx.key.id())? + period - Utc::now();
                Some(Instant::now() + left.to_std().unwrap_or_default())
            }
            None => None,
        },
        links: cx.links.clone(),
        link_cache: HashMap::new(),
        component: cx.key.to_string(),
        always_alert: settings.always_alert.clone().map(VrlRunner::new),
        questions: JoinSet::new(),
        asking: HashMap::new(),
        incumbents: incumbents(&store, cx.key.id(), &models),
        comparers,
        comparisons: JoinSet::new(),
        waiting_comparisons: HashMap::new(),
        compared: Vec::new(),
        store,
        metrics: Arc::clone(&cx.metrics),
        suppressed: DropRoute::new(&cx.outputs, SUPPRESSED),
        shutting_down: false,
        shared: cx.suppressions.shared_state(),
        models,
        settings,
        asker,
        verdicts,
    };
    running.note_known_neighbours();
    let mut input_open = true;
    while input_open || !running.pending.is_empty() {
        let deadline = running.pending.next_deadline();
        let expiry = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let mut out = cx.outputs.collector(0);
        tokio::select! {
            biased;
            () = cx.shutdown.cancelled(), if !running.shutting_down => {
                running.shutting_down = true;
                running.release_all(&mut out);
            }
            Some(joined) = running.questions.join_next_with_id(), if !running.questions.is_empty() => {
                running.answered(joined, &mut out);
            }
            Some(Ok(compared)) = running.comparisons.join_next(), if !running.comparisons.is_empty() => {
                running.compared(compared);
            }
            () = expiry => running.release_expired(&mut out),
            batch = cx.input.recv(), if input_open => match batch {
                Some(events) => running.handle_batch(events, &mut out),
                None => input_open = false,
            },
        }
        running.save();
        running.metrics.llm_pending(running.pending.len());
        cx.outputs.send(out).await;
    }
    running.questions.abort_all();
    running.comparisons.abort_all();
    running.save();
    Ok(())
}

impl Running {
    fn handle_batch(&mut self, events: Vec<Event>, out: &mut TransformOutput) {
        self.refresh_suppressions();
        let (now, wall) = (Instant::now(), Utc::now());
        let mut questions = IndexMap::new();
        let mut hits = 0;
        for event in events {
            self.handle(event, now, wall, &mut questions, &mut hits, out);
        }
        self.metrics.llm_cache_hits(hits);
        for (pattern, question) in questions {
            self.ask(pattern, question, now, out);
        }
    }

    /// Takes a new snapshot of the suppressions after a change. The
    /// generation is read before the snapshot, so a change between the two
    /// is picked up by the next batch rather than missed.
    fn refresh_suppressions(&mut self) {
        let generation = self.suppressions.generation();
        if generation == self.generation {
            return;
        }
        match self.suppressions.snapshot() {
            Ok(snapshot) => {
                self.snapshot = snapshot;
                self.generation = generation;
                self.operator.clear();
            }
            Err(error) => self.metrics.error(
                ErrorType::StateReadFailed,
                Stage::Processing,
                &format_args!("cannot read the suppressions: {error}"),
            ),
        }
    }

    fn handle(
        &mut self,
        mut event: Event,
        now: Instant,
        wall: DateTime<Utc>,
        questions: &mut IndexMap<String, Question>,
        hits: &mut u64,
        out: &mut TransformOutput,
    ) {
        // A cheap handle on the id (no copy of its text per event), so that
        // the event can move on while the id is used.
        let Some(pattern) = PatternText::of(&event, &self.settings.fields.pattern) else {
            out.push(event);
            return;
        };
        let pattern = pattern.as_str();
        if let Some(link) = self.link(pattern, wall) {
            event.insert_field(SUPPRESS_URL, link);
        }
        if matches(
            &mut self.always_alert,
            &mut event,
            &self.metrics,
            "always_alert",
        ) {
            self.rule.apply(event, out, self.suppressed, &self.metrics);
            return;
        }
        let snapshot = Arc::clone(&self.snapshot);
        if let Some(suppression) = snapshot.get(pattern).filter(|s| s.is_live(wall)) {
            if suppression.action == OperatorAction::Suppress {
                self.note_neighbour(pattern, &event, Why::Operator);
            }
            let policy = self.settings.policy;
            let decision = self
                .operator
                .entry(pattern.to_string())
                .or_insert_with(|| policy.operator(suppression));
            decision.apply(event, out, self.suppressed, &self.metrics);
            return;
        }
        if self.when.is_some() && !matches(&mut self.when, &mut event, &self.metrics, "when") {
            out.push(event);
            return;
        }
        // The pattern's policy rule, chosen on its first event.
        let (rule_llm_allowed, rule_providers) = self
            .framer
            .rule_for(pattern, &mut event)
            .map_or((None, None), |rule| {
                (rule.llm_allowed, rule.providers.clone())
            });
        if rule_llm_allowed == Some(false)
            || (self.llm_allowed.is_some()
                && !matches(
                    &mut self.llm_allowed,
                    &mut event,
                    &self.metrics,
                    "llm_allowed",
                ))
        {
            let decision = self.decide_by_rules(pattern.to_string(), &event, wall);
            self.framer.apply(pattern, &decision, event, out);
            return;
        }
        if matches!(self.verdicts.lookup(pattern, wall, now), Lookup::Unknown) {
            self.adopt_shared(pattern, wall);
        }
        if matches!(self.verdicts.lookup(pattern, wall, now), Lookup::Unknown) {
            if self.learning(now) && !self.severe(&event) {
                let decision = self.learn(pattern, &event, wall);
                self.framer.apply(pattern, &decision, event, out);
                return;
            }
            if self.inherit(pattern, &event, wall, now).is_some()
                && let Some((decision, _, _)) = self.inherited.get(pattern)
            {
                self.framer.apply(pattern, decision, event, out);
                return;
            }
        }
        match self.verdicts.lookup(pattern, wall, now) {
            Lookup::Known(decision) => {
                *hits += 1;
                if decision.suppresses() && !self.neighbours.contains(pattern) {
                    let decision = decision.clone();
                    self.note_neighbour(pattern, &event, Why::Verdict);
                    self.framer.apply(pattern, &decision, event, out);
                } else {
                    self.framer.apply(pattern, decision, event, out);
                }
            }
            Lookup::BackingOff(decision) => {
                self.framer.apply(pattern, decision, event, out);
            }
            Lookup::Asking if self.shutting_down => {
                self.framer.apply(pattern, &self.shutdown, event, out);
            }
            Lookup::Asking => {
                if let Some(question) = questions.get_mut(pattern) {
                    // This event's line may become a sample of a question
                    // not sent yet: if it must stay local, so must the
                    // question.
                    if self.local_required.is_some()
                        && !question.local_only
                        && !matches!(
                            run_condition(&mut self.local_required, &mut event),
                            Ok(false)
                        )
                    {
                        question.local_only = true;
                    }
                    if question.samples.len() < MAX_SAMPLES
                        && let Some(sample) = text(&event, &self.settings.fields.message)
                        && !question.samples.iter().any(|s| **s == *sample)
                    {
                        question.samples.push(Arc::from(sample));
                    }
                }
                self.hold(pattern.to_string(), event, now, out);
            }
            Lookup::Unknown => match &self.asker {
                Asker::Builtin => {
                    let decision = self.decide_builtin(pattern, &event, wall);
                    self.framer.apply(pattern, &decision, event, out);
                }
                Asker::Chain(_) if self.shutting_down => {
                    self.framer.apply(pattern, &self.shutdown, event, out);
                }
                Asker::Chain(_) => {
                    self.verdicts.asking(pattern);
                    let mut question = self.question(&event);
                    question.providers = rule_providers;
                    question.local_only = self.local_required.is_some()
                        && !matches!(
                            run_condition(&mut self.local_required, &mut event),
                            Ok(false)
                        );
                    questions.insert(pattern.to_string(), question);
                    self.hold(pattern.to_string(), event, now, out);
                }
            },
        }
    }

    fn question(&self, event: &Event) -> Question {
        let fields = &self.settings.fields;
        let message = text(event, &fields.message);
        Question {
            template: text(event, &fields.template)
                .or_else(|| message.clone())
                .unwrap_or_default(),
            level: text(event, &fields.level).unwrap_or_else(|| "unknown".into()),
            samples: message.map(Arc::from).into_iter().collect(),
            local_only: false,
            providers: None,
        }
    }

    /// The built-in rules' decision for an event kept from language models.
    fn decide_by_rules(&mut self, pattern: String, event: &Event, wall: DateTime<Utc>) -> Decision {
        if let Some(known) = self.by_rules.get(&pattern) {
            return known.clone();
        }
        if self.by_rules.len() >= MAX_RULE_DECISIONS {
            self.by_rules.clear();
        }
        let question = self.question(event);
        let prompt = Prompt::new(
            &question.template,
            &question.level,
            &question.samples,
            &self.settings.masker,
        );
        let verdict = builtin::classify(&prompt);
        self.metrics
            .llm_verdict(verdict.label.as_str(), VerdictSource::Builtin.as_str());
        let stored = StoredVerdict {
            verdict: verdict.label,
            confidence: verdict.confidence,
            reason: format!("rules only (llm_allowed is false): {}", verdict.reason),
            source: VerdictSource::Builtin,
            model: BUILTIN_MODEL.into(),
            provider: None,
            decided_at: wall,
            expires_at: DateTime::<Utc>::MAX_UTC,
        };
        self.audit.push(self.record("rule", &pattern, &stored));
        let decision = self.settings.policy.verdict(&stored);
        self.by_rules.insert(pattern, decision.clone());
        decision
    }

    fn decide_builtin(&mut self, pattern: &str, event: &Event, wall: DateTime<Utc>) -> Decision {
        let question = self.question(event);
        let prompt = Prompt::new(
            &question.template,
            &question.level,
            &question.samples,
            &self.settings.masker,
        );
        let verdict = builtin::classify(&prompt);
        self.metrics
            .llm_verdict(verdict.label.as_str(), VerdictSource::Builtin.as_str());
        let stored = self.stored(verdict, VerdictSource::Builtin, BUILTIN_MODEL.into(), wall);
        self.audit.push(self.record("verdict", pattern, &stored));
        let decision = self.verdicts.decided(pattern, stored);
        if decision.suppresses() {
            self.note_neighbour(pattern, event, Why::Verdict);
        }
        decision
    }

    /// Remembers a pattern decided as noise, so close new ones may
    /// inherit its decision.
    fn note_neighbour(&mut self, pattern: &str, event: &Event, why: Why) {
        if self.neighbours.contains(pattern) {
            return;
        }
        let question = self.question(event);
        self.neighbours
            .note(pattern, &question.template, &question.level, why);
    }

    /// Notes, at start, the patterns of the pattern stores that are
    /// decided as noise (an operator's suppression, a stored noise verdict,
    /// routine): with `patterns.new` as input, their events never come
    /// back, and a new pattern must still find them.
    fn note_known_neighbours(&mut self) {
        let Ok(spaces) = crate::state::patterns::load_spaces(&self.store, None) else {
            return;
        };
        let (wall, now) = (Utc::now(), Instant::now());
        for space in &spaces {
            for view in space.snapshot.views() {
                let id = view.id.to_string();
                let why = if self
                    .snapshot
                    .get(&id)
                    .is_some_and(|s| s.is_live(wall) && s.action == OperatorAction::Suppress)
                {
                    Why::Operator
                } else {
                    match self.verdicts.lookup(&id, wall, now) {
                        Lookup::Known(decision) if decision.suppresses() => Why::Verdict,
                        _ => continue,
                    }
                };
                self.neighbours
                    .note(&id, view.template, view.level.as_str(), why);
            }
        }
    }

    /// Whether an event is an error or worse: never learnt as routine.
    fn severe(&self, event: &Event) -> bool {
        text(event, &self.settings.fields.level)
            .and_then(|level| crate::patterns::Level::parse_value(&level))
            .is_some_and(|level| level >= crate::patterns::Level::Error)
    }

    /// Whether the learning period (`learn_for`) is on.
    fn learning(&self, now: Instant) -> bool {
        self.learning_until.is_some_and(|until| now < until)
    }

    /// Records a new pattern seen while learning as routine: a noise
    /// verdict that does not expire.
    fn learn(&mut self, pattern: &str, event: &Event, wall: DateTime<Utc>) -> Decision {
        let stored = StoredVerdict {
            verdict: crate::state::triage::Label::Noise,
            confidence: 1.0,
            reason: "seen while learning (learn_for): routine".to_string(),
            source: VerdictSource::Learned,
            provider: None,
            model: "learned".to_string(),
            decided_at: wall,
            expires_at: DateTime::<Utc>::MAX_UTC,
        };
        self.metrics
            .llm_verdict(stored.verdict.as_str(), VerdictSource::Learned.as_str());
        self.audit.push(self.record("verdict", pattern, &stored));
        self.note_neighbour(pattern, event, Why::Routine);
        self.verdicts.decided(pattern, stored)
    }

    /// The decision a new pattern inherits from a close neighbour whose
    /// decision still holds (kept in `inherited`), if any.
    fn inherit(
        &mut self,
        pattern: &str,
        event: &Event,
        wall: DateTime<Utc>,
        now: Instant,
    ) -> Option<()> {
        let (snapshot, verdicts) = (&self.snapshot, &self.verdicts);
        let live = |neighbour: &str, why: Why| match why {
            Why::Operator => snapshot
                .get(neighbour)
                .is_some_and(|s| s.is_live(wall) && s.action == OperatorAction::Suppress),
            Why::Verdict | Why::Routine => matches!(
                verdicts.lookup(neighbour, wall, now),
                Lookup::Known(decision) if decision.suppresses()
            ),
        };
        if let Some((_, from, why)) = self.inherited.get(pattern) {
            if live(from, *why) {
                return Some(());
            }
            self.inherited.remove(pattern);
        }
        let question = self.question(event);
        let found = self
            .neighbours
            .find(&question.template, &question.level, live)?;
        let reason = match found.why {
            Why::Operator => snapshot.get(&found.pattern).map_or_else(String::new, |s| {
                format!("suppressed by {}: {}", s.created_by, s.reason)
            }),
            Why::Verdict => "a classifier called it noise".to_string(),
            Why::Routine => "it was learnt as routine".to_string(),
        };
        let decision = self.settings.policy.inherited(&found.pattern, &reason);
        self.audit.push(
            AuditRecord::now(
                "inherit",
                pattern,
                "rules",
                &format!("inherited from pattern {}: {reason}", found.pattern),
                &self.component,
            )
            .with_detail(
                serde_json::json!({"from": found.pattern, "differences": found.differences}),
            ),
        );
        if self.inherited.len() >= MAX_RULE_DECISIONS {
            self.inherited.clear();
        }
        self.inherited
            .insert(pattern.to_string(), (decision, found.pattern, found.why));
        Some(())
    }

    /// The signed link that suppresses `pattern`, when links are on.
    fn link(&mut self, pattern: &str, wall: DateTime<Utc>) -> Option<Value> {
        let signer = self.links.as_ref()?;
        // An id a suppression would refuse gets no link that cannot work.
        if pattern.len() > 256 || !pattern.chars().all(|c| c.is_ascii_graphic()) {
            return None;
        }
        let now = wall.timestamp();
        if let Some((link, made)) = self.link_cache.get(pattern)
            && now - made < signer.ttl_secs() / 2
        {
            return Some(link.clone());
        }
        if self.link_cache.len() >= MAX_RULE_DECISIONS {
            self.link_cache.clear();
        }
        let link = Value::from(signer.suppress_url(pattern, now));
        self.link_cache
            .insert(pattern.to_string(), (link.clone(), now));
        Some(link)
    }

    /// The audit record of a verdict or a rule's decision.
    fn record(&self, action: &str, pattern: &str, stored: &StoredVerdict) -> AuditRecord {
        AuditRecord::now(
            action,
            pattern,
            &stored.model,
            &stored.reason,
            &self.component,
        )
        .with_detail(serde_json::json!({
            "verdict": stored.verdict.as_str(),
            "confidence": stored.confidence,
            "source": stored.source.as_str(),
            "provider": stored.provider,
            "policy": self.framer.policy_of(pattern),
        }))
    }

    fn stored(
        &self,
        verdict: crate::llm::Verdict,
        source: VerdictSource,
        model: String,
        wall: DateTime<Utc>,
    ) -> StoredVerdict {
        StoredVerdict {
            verdict: verdict.label,
            confidence: verdict.confidence,
            reason: verdict.reason,
            source,
            model,
            provider: None,
            decided_at: wall,
            expires_at: wall
                .checked_add_signed(self.settings.verdict_ttl)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }

    fn hold(&mut self, pattern: String, event: Event, now: Instant, out: &mut TransformOutput) {
        if let Some((of, oldest)) = self.pending.hold(&pattern, event, now) {
            self.metrics.warn_limited(
                "llm_pending_full",
                &format_args!(
                    "more than max_pending_events ({}) events wait for verdicts; releasing the oldest by on_error",
                    self.settings.max_pending
                ),
            );
            let decision = self
                .settings
                .policy
                .error("too many events waiting for verdicts (max_pending_events)");
            self.framer.apply(&of, &decision, oldest, out);
        }
    }

    /// Starts a question down the chain of providers.
    fn ask(
        &mut self,
        pattern: String,
        question: Question,
        _now: Instant,
        _out: &mut TransformOutput,
    ) {
        let Asker::Chain(chain) = &self.asker else {
            return;
        };
        let prompt = Prompt::new(
            &question.template,
            &question.level,
            &question.samples,
            &self.settings.masker,
        );
        let allowed = Allowed {
            local_only: question.local_only,
            names: question.providers.clone(),
        };
        let chain = Arc::clone(chain);
        // Also bounds a question that waits long for a concurrency slot.
        let limit = self.settings.question_limit;
        for comparer in &self.comparers {
            if !comparer.may_answer(&allowed) {
                continue;
            }
            let (comparer, prompt, allowed) =
                (Arc::clone(comparer), prompt.clone(), allowed.clone());
            let (pattern, name) = (pattern.clone(), comparer.names().join(","));
            self.comparisons.spawn(async move {
                let answer =
                    match tokio::time::timeout(limit, comparer.ask(&prompt, &allowed)).await {
                        Ok(answer) => answer,
                        Err(_) => Err(LlmError::Deadline(limit).to_string()),
                    };
                (pattern, name, answer)
            });
        }
        let name = pattern.clone();
        let fleet = self.shared.clone().map(|shared| Fleet {
            shared,
            component: self.metrics.key().id().to_string(),
            models: self.models.clone(),
        });
        let handle = self.questions.spawn(async move {
            let lease = match fleet {
                Some(fleet) => match fleet.wait_for_asker(&name).await {
                    Turn::Shared(verdict) => return (name, Ok(Reply::Shared(verdict))),
                    Turn::Ask(lease) => lease,
                },
                None => None,
            };
            let answer = match tokio::time::timeout(limit, chain.ask(&prompt, &allowed)).await {
                Ok(answer) => answer.map(Reply::Answered),
                Err(_) => Err(LlmError::Deadline(limit).to_string()),
            };
            // The fleet's claim is renewed while asking, and no longer.
            drop(lease);
            (name, answer)
        });
        self.asking.insert(handle.id(), pattern);
    }

    fn answered(
        &mut self,
        joined: Result<(Id, Asked), tokio::task::JoinError>,
        out: &mut TransformOutput,
    ) {
        let now = Instant::now();
        let (pattern, answer) = match joined {
            Ok((id, asked)) => {
                self.asking.remove(&id);
                asked
            }
            Err(error) => {
                let Some(pattern) = self.asking.remove(&error.id()) else {
                    return;
                };
                (pattern, Err(format!("the question failed: {error}")))
            }
        };
        match answer {
            Ok(Reply::Shared(verdict)) => {
                let verdict = self.verdicts.decided(&pattern, verdict);
                self.release(&pattern, &verdict, out);
            }
            Ok(Reply::Answered(answered)) => {
                let source = if answered.model == BUILTIN_MODEL {
                    VerdictSource::Builtin
                } else {
                    VerdictSource::Llm
                };
                self.metrics
                    .llm_verdict(answered.answer.verdict.label.as_str(), source.as_str());
                let mut stored =
                    self.stored(answered.answer.verdict, source, answered.model, Utc::now());
                stored.provider = Some(answered.provider);
                if self.framer.is_canary(&pattern)
                    && let Some(incumbent) = self.incumbents.remove(&pattern)
                {
                    let result = if incumbent == stored.verdict {
                        "agree"
                    } else {
                        "disagree"
                    };
                    self.metrics.llm_canary_comparison(result);
                }
                let waiting = self
                    .waiting_comparisons
                    .remove(&pattern)
                    .unwrap_or_default();
                self.audit.push(self.record("verdict", &pattern, &stored));
                if let Some(shared) = &self.shared {
                    shared.verdict_decided(self.metrics.key().id(), &pattern, &stored);
                }
                let verdict = self.verdicts.decided(&pattern, stored);
                self.release(&pattern, &verdict, out);
                for compared in waiting {
                    self.compared(compared);
                }
            }
            Err(error) => {
                self.metrics.error(
                    ErrorType::LlmRequestFailed,
                    Stage::Processing,
                    &format_args!("no verdict for pattern {pattern}: {error}"),
                );
                self.fail(&pattern, &error, now, out);
            }
        }
    }

    /// Releases the events held for `pattern` with its verdict's decision.
    fn release(&mut self, pattern: &str, verdict: &Decision, out: &mut TransformOutput) {
        let decision = self.on_release(pattern, verdict);
        let held = self.pending.take(pattern);
        if verdict.suppresses()
            && let Some(first) = held.first()
        {
            self.note_neighbour(pattern, first, Why::Verdict);
        }
        for event in held {
            self.framer.apply(pattern, &decision, event, out);
        }
    }

    /// Takes the fleet's live verdict on `pattern` (by one of this
    /// transform's models), when another instance already asked.
    fn adopt_shared(&mut self, pattern: &str, wall: DateTime<Utc>) {
        let Some(shared) = &self.shared else {
            return;
        };
        if let Some(verdict) = shared
            .verdict(self.metrics.key().id(), pattern)
            .filter(|v| v.is_live(wall) && self.models.contains(&v.model))
        {
            self.verdicts.decided(pattern, verdict);
        }
    }

    /// A compared provider's answer: kept beside the deciding verdict (or
    /// held until that arrives), counted as agreeing or not.
    fn compared(&mut self, (pattern, provider, answer): Compared) {
        let Some(decided) = self.verdicts.stored(&pattern).cloned() else {
            if self.verdicts.is_asking(&pattern) {
                self.waiting_comparisons
                    .entry(pattern.clone())
                    .or_default()
                    .push((pattern, provider, answer));
            } else {
                // The deciding question failed: nothing to compare with.
                self.metrics.llm_comparison(&provider, "undecided");
            }
            return;
        };
        let (model, verdict, confidence, reason) = match answer {
            Ok(answered) => (
                answered.model,
                Some(answered.answer.verdict.label),
                Some(answered.answer.verdict.confidence),
                answered.answer.verdict.reason,
            ),
            Err(error) => (String::new(), None, None, error),
        };
        let comparison = Comparison {
            provider,
            model,
            verdict,
            confidence,
            reason,
            decided: decided.verdict,
            decided_by: decided.provider.clone(),
            decided_reason: decided.reason.clone(),
            at: Utc::now(),
        };
        let result = match comparison.verdict {
            None => "failed",
            Some(_) if comparison.agrees() => "agree",
            Some(_) => "disagree",
        };
        self.metrics.llm_comparison(&comparison.provider, result);
        self.compared.push((pattern, comparison));
    }

    /// A question got no verdict: back off, release the pattern's events.
    fn fail(&mut self, pattern: &str, reason: &str, now: Instant, out: &mut TransformOutput) {
        self.metrics.llm_verdict(super::decision::UNKNOWN, "error");
        let failed = self.verdicts.failed(pattern, reason, now);
        let decision = self.on_release(pattern, &failed);
        for event in self.pending.take(pattern) {
            self.framer.apply(pattern, &decision, event, out);
        }
    }

    fn release_expired(&mut self, out: &mut TransformOutput) {
        let timed_out = self.timed_out.clone();
        for (pattern, event) in self.pending.expired(Instant::now()) {
            let decision = self.on_release(&pattern, &timed_out);
            self.framer.apply(&pattern, &decision, event, out);
        }
    }

    fn release_all(&mut self, out: &mut TransformOutput) {
        let shutdown = self.shutdown.clone();
        for (pattern, event) in self.pending.drain() {
            let decision = self.on_release(&pattern, &shutdown);
            self.framer.apply(&pattern, &decision, event, out);
        }
    }

    /// The decision for held events of `pattern` when they are released:
    /// an operator's suppression made while they waited wins over
    /// `otherwise` (the verdict, or `on_error`), as it does for new events.
    fn on_release(&mut self, pattern: &str, otherwise: &Decision) -> Decision {
        self.refresh_suppressions();
        let wall = Utc::now();
        match self.snapshot.get(pattern).filter(|s| s.is_live(wall)) {
            Some(suppression) => {
                let policy = self.settings.policy;
                self.operator
                    .entry(pattern.to_string())
                    .or_insert_with(|| policy.operator(suppression))
                    .clone()
            }
            None => otherwise.clone(),
        }
    }

    fn save(&mut self) {
        if !self.audit.is_empty() {
            self.suppressions.record(&std::mem::take(&mut self.audit));
        }
        if !self.compared.is_empty() {
            let compared = std::mem::take(&mut self.compared);
            let component = self.metrics.key().id().to_string();
            if let Err(error) = save_comparisons(&self.store, &component, &compared) {
                self.metrics.error(
                    ErrorType::StateSaveFailed,
                    Stage::Processing,
                    &format_args!("cannot save comparisons: {error}"),
                );
            }
        }
        if let Err(error) = self.verdicts.save(&self.store) {
            self.metrics.error(
                ErrorType::StateSaveFailed,
                Stage::Processing,
                &format_args!("cannot save verdicts: {error}"),
            );
        }
    }
}

/// What a question needs to share its pattern with a fleet.
struct Fleet {
    shared: Arc<dyn SharedState>,
    component: String,
    models: Vec<String>,
}

/// What a fleet's instance does about a question, once it may.
enum Turn {
    /// Another instance asked: its verdict.
    Shared(StoredVerdict),
    /// Ask; keep the claim's lease (if the fleet gave one) while asking.
    Ask(Option<ClaimLease>),
}

impl Fleet {
    /// Claims the fleet's question about `pattern`: this instance asks (it
    /// holds the claim, or the bucket is out of reach), or gets the verdict
    /// another instance shared while this one waited. A claim that runs out
    /// without a verdict (its owner died, or stopped asking) is claimed
    /// again, so one instance takes over.
    async fn wait_for_asker(&self, pattern: &str) -> Turn {
        let mut changes = self.shared.changes();
        let mut seen = None;
        // Each round waits a lease for a verdict, then looks at the claim
        // again (passing the revision it saw: one not renewed since is
        // taken over). Bounded by the fleet's size, by its owner's renewals,
        // and by the transform's end (it aborts its questions).
        loop {
            let until = match self.shared.claim(&self.component, pattern, seen).await {
                Claim::Asker(lease) => return Turn::Ask(Some(lease)),
                Claim::Alone => return Turn::Ask(None),
                Claim::Waiter { until, seen: now } => {
                    seen = Some(now);
                    until
                }
            };
            loop {
                if let Some(verdict) = self
                    .shared
                    .verdict(&self.component, pattern)
                    .filter(|v| v.is_live(Utc::now()) && self.models.contains(&v.model))
                {
                    return Turn::Shared(verdict);
                }
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return Turn::Ask(None) },
                    () = tokio::time::sleep_until(until) => break,
                }
            }
        }
    }
}

/// Runs a condition: its boolean, or why it failed.
fn run_condition(runner: &mut Option<VrlRunner>, event: &mut Event) -> Result<bool, String> {
    let Some(runner) = runner else {
        return Ok(false);
    };
    match runner.run(event.value_mut()) {
        Ok(Value::Boolean(result)) => Ok(result),
        Ok(other) => Err(format!("returned {other} instead of a boolean")),
        Err(error) => Err(error.to_string()),
    }
}

/// Runs a condition; a failure counts as an error and as `false`.
fn matches(
    runner: &mut Option<VrlRunner>,
    event: &mut Event,
    metrics: &ComponentMetrics,
    what: &str,
) -> bool {
    let Some(runner) = runner else {
        return false;
    };
    match runner.run(event.value_mut()) {
        Ok(Value::Boolean(result)) => result,
        Ok(_) => false,
        Err(error) => {
            metrics.error(
                ErrorType::ConditionFailed,
                Stage::Processing,
                &format_args!("`{what}` failed (taken as false): {error}"),
            );
            false
        }
    }
}

/// A field's text, borrowed from a cheap copy of its bytes when it is
/// valid UTF-8 (the common case: no copy of the text per event).
enum PatternText {
    Shared(bytes::Bytes),
    Owned(String),
}

impl PatternText {
    /// The text of the field at `path`; none when it is missing, null or
    /// empty.
    fn of(event: &Event, path: &OwnedValuePath) -> Option<Self> {
        let text = match event.get(path)? {
            Value::Bytes(bytes) if std::str::from_utf8(bytes).is_ok() => {
                Self::Shared(bytes.clone())
            }
            Value::Null => return None,
            Value::Bytes(bytes) => Self::Owned(String::from_utf8_lossy(bytes).into_owned()),
            other => Self::Owned(other.to_string_lossy().into_owned()),
        };
        (!text.as_str().is_empty()).then_some(text)
    }

    fn as_str(&self) -> &str {
        match self {
            // Checked in `of`.
            Self::Shared(bytes) => std::str::from_utf8(bytes).unwrap_or_default(),
            Self::Owned(text) => text,
        }
    }
}

/// A field as text (`None` when absent, null or empty).
fn text(event: &Event, path: &OwnedValuePath) -> Option<String> {
    let value = event.get(path)?;
    let text = match value {
        Value::Bytes(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::Null => return None,
        other => other.to_string_lossy().into_owned(),
    };
    (!text.is_empty()).then_some(text)
}

/// Each pattern's stored verdict by a model not in `models` (the model a
/// canary replaces): what the canary's verdicts are compared with.
fn incumbents(
    store: &StateStore,
    component: &str,
    models: &[String],
) -> HashMap<String, crate::state::triage::Label> {
    crate::state::triage::load_verdicts(store, Some(component))
        .unwrap_or_default()
        .into_iter()
        .filter(|saved| !models.contains(&saved.verdict.model))
        .take(super::verdicts::MAX_ENTRIES)
        .map(|saved| (saved.pattern_id, saved.verdict.verdict))
        .collect()
}

/// Where each transform keeps when its learning period began.
const LEARNING: &str = "llm_suppress_learning";

/// When the learning period of transform `component` began: stored at its
/// first start, so a restart continues the period rather than starting it
/// again.
fn learning_start(store: &StateStore, component: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Some(bytes) = store.get(LEARNING, component)?
        && let Some(start) = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
    {
        return Ok(start.with_timezone(&Utc));
    }
    let start = Utc::now();
    store.write(
        LEARNING,
        &[(component.to_string(), start.to_rfc3339().into_bytes())],
        &[],
    )?;
    Ok(start)
}
