//! A chain of providers: asked in order, the first that may answer and
//! does answer decides.
//!
//! Teams rarely run one endpoint: a fast primary, a second one, a local
//! model that some data must not leave, a paid fallback within a budget.
//! So a question goes down the chain, skipping:
//!
//! - providers the question may not reach (`local_required` keeps some
//!   events to providers marked `local`; a policy may name a subset);
//! - providers marked down: a provider whose question failed (an outage,
//!   timeouts, a refusal) is taken out of service and checked in the
//!   background with a cheap, token-free health check (its list of models),
//!   first after `backoff`, then after twice as long each time, up to an
//!   hour; it is put back when the check passes;
//! - providers over their own budget (not an error while another answers).
//!
//! A provider that answers with something unusable (garbage, a refusal to
//! answer, a cut answer) fails only that question: the next one is asked,
//! and the provider stays in service.
//!
//! Every attempt is counted in `llm_requests_total{provider=NAME,outcome}`,
//! under the provider's name in the chain.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::budget::Budget;
use super::{Answer, Classifier, LlmError, Prompt, builtin};
use crate::internal_events::ComponentMetrics;

/// The longest wait between health checks of a provider that is down.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// One provider of a chain.
pub struct Member {
    /// Its name in the chain (metrics, verdicts, the audit trail).
    pub name: String,
    /// `kind/model` (`openai/llama3.2`), or `builtin`: stored with verdicts.
    pub model: String,
    /// Whether data may go to it when it must stay local.
    pub local: bool,
    /// Who answers.
    pub classifier: Arc<dyn Classifier>,
    /// Its own request budget.
    pub budget: Budget,
}

/// What a question may reach.
#[derive(Debug, Clone, Default)]
pub struct Allowed {
    /// Only providers marked `local`.
    pub local_only: bool,
    /// Only these providers, by name (`None`: any).
    pub names: Option<Arc<[String]>>,
}

/// An answer, with who gave it.
#[derive(Debug)]
pub struct Answered {
    /// The answer.
    pub answer: Answer,
    /// The provider's name in the chain.
    pub provider: String,
    /// `kind/model`, or `builtin`.
    pub model: String,
}

/// The providers, in order, with their health.
pub struct Chain {
    members: Vec<Slot>,
    backoff: Duration,
    metrics: Arc<ComponentMetrics>,
}

struct Slot {
    member: Member,
    health: Mutex<Health>,
}

#[derive(Default)]
struct Health {
    /// Set while the provider is out of service: when to check it next.
    check_at: Option<Instant>,
    /// Failed checks (and the failed question) since it went down.
    failures: u32,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Chain {
    /// A chain of `members`, in order; a failed provider is first checked
    /// again after `backoff`.
    pub fn new(members: Vec<Member>, backoff: Duration, metrics: Arc<ComponentMetrics>) -> Self {
        Self {
            members: members
                .into_iter()
                .map(|member| Slot {
                    member,
                    health: Mutex::new(Health::default()),
                })
                .collect(),
            backoff,
            metrics,
        }
    }

    /// The providers' names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.members
            .iter()
            .map(|s| s.member.name.as_str())
            .collect()
    }

    /// The models whose stored verdicts this chain may reuse.
    pub fn models(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|s| s.member.model.clone())
            .collect()
    }

    /// Whether any provider may answer a question with `allowed` (in
    /// service or not).
    pub fn may_answer(&self, allowed: &Allowed) -> bool {
        self.members.iter().any(|slot| {
            (!allowed.local_only || slot.member.local)
                && allowed
                    .names
                    .as_ref()
                    .is_none_or(|names| names.contains(&slot.member.name))
        })
    }

    /// Whether the named provider is in service now.
    pub fn is_up(&self, name: &str) -> bool {
        self.members
            .iter()
            .find(|s| s.member.name == name)
            .is_some_and(|s| lock(&s.health).check_at.is_none())
    }

    /// Asks the first provider that may answer and does. `Err` says, per
    /// provider, why none did.
    pub async fn ask(&self, prompt: &Prompt, allowed: &Allowed) -> Result<Answered, String> {
        let mut why: Vec<String> = Vec::new();
        for slot in &self.members {
            let member = &slot.member;
            if allowed.local_only && !member.local {
                continue;
            }
            if let Some(names) = &allowed.names
                && !names.contains(&member.name)
            {
                continue;
            }
            if lock(&slot.health).check_at.is_some() {
                why.push(format!(
                    "{}: down (waiting for its health check)",
                    member.name
                ));
                continue;
            }
            if let Err(limit) = member.budget.try_take() {
                self.metrics.llm_request(&member.name, "over_budget", None);
                why.push(format!("{}: over its `{limit}` budget", member.name));
                continue;
            }
            let started = Instant::now();
            match member.classifier.classify(prompt).await {
                Ok(answer) => {
                    self.metrics
                        .llm_request(&member.name, "ok", Some(started.elapsed()));
                    if let Some(usage) = answer.usage {
                        self.metrics
                            .llm_tokens(&member.name, usage.input, usage.output);
                    }
                    return Ok(Answered {
                        answer,
                        provider: member.name.clone(),
                        model: member.model.clone(),
                    });
                }
                Err(error) => {
                    let outcome = error.outcome();
                    self.metrics
                        .llm_request(&member.name, outcome, Some(started.elapsed()));
                    if takes_out_of_service(&error) {
                        self.take_down(slot, &error);
                    }
                    why.push(format!("{}: {error}", member.name));
                }
            }
        }
        if why.is_empty() {
            return Err(if allowed.local_only {
                "no provider marked `local` may answer this event (local_required)".into()
            } else {
                "no provider of the chain may answer this event".into()
            });
        }
        Err(why.join("; "))
    }

    fn take_down(&self, slot: &Slot, error: &LlmError) {
        let mut health = lock(&slot.health);
        if health.check_at.is_none() {
            health.failures = 1;
            health.check_at = Some(Instant::now() + self.backoff);
            tracing::warn!(
                provider = %slot.member.name,
                "LLM provider out of service ({error}); the next one in the chain answers, and it is checked again in {}s",
                self.backoff.as_secs()
            );
        }
    }

    /// Checks the providers that are down, each when its time comes, until
    /// `stop`; a provider that passes is put back in service.
    pub async fn check_health(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let next = self
                .members
                .iter()
                .filter_map(|s| lock(&s.health).check_at)
                .min();
            let wait = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    // Nothing is down: look again shortly.
                    None => tokio::time::sleep(self.backoff.min(Duration::from_secs(1))).await,
                }
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = wait => {}
            }
            let now = Instant::now();
            for slot in &self.members {
                let due = lock(&slot.health).check_at.is_some_and(|at| at <= now);
                if !due {
                    continue;
                }
                let result = slot.member.classifier.health_check().await;
                let mut health = lock(&slot.health);
                match result {
                    Ok(()) => {
                        tracing::info!(provider = %slot.member.name, "LLM provider back in service (its health check passed)");
                        *health = Health::default();
                    }
                    Err(reason) => {
                        health.failures = health.failures.saturating_add(1);
                        let wait = self
                            .backoff
                            .saturating_mul(1 << (health.failures - 1).min(16))
                            .min(MAX_BACKOFF);
                        health.check_at = Some(Instant::now() + wait);
                        tracing::debug!(provider = %slot.member.name, "LLM provider still down: {reason}; next check in {}s", wait.as_secs());
                    }
                }
            }
        }
    }
}

/// Whether an error says the provider itself is in trouble (so later
/// questions should skip it), not just this answer.
fn takes_out_of_service(error: &LlmError) -> bool {
    matches!(error.outcome(), "failed" | "rejected")
}

/// The built-in classifier as a member of a chain: never fails, never
/// leaves howl (a last resort after the models).
pub struct BuiltinClassifier;

impl Classifier for BuiltinClassifier {
    fn provider(&self) -> &'static str {
        "builtin"
    }

    fn classify<'a>(
        &'a self,
        prompt: &'a Prompt,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Answer, LlmError>> + Send + 'a>>
    {
        Box::pin(std::future::ready(Ok(Answer {
            verdict: builtin::classify(prompt),
            usage: None,
        })))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;
    use crate::component_key::{ComponentKey, ComponentKind};
    use crate::http::Failure;
    use crate::llm::{Masker, Verdict};
    use crate::state::triage::Label;

    /// A provider that answers `label`, or fails while `down`.
    struct Fake {
        label: Label,
        down: AtomicBool,
        asked: AtomicUsize,
    }

    impl Fake {
        fn new(label: Label) -> Arc<Self> {
            Arc::new(Self {
                label,
                down: AtomicBool::new(false),
                asked: AtomicUsize::new(0),
            })
        }
    }

    impl Classifier for Fake {
        fn provider(&self) -> &'static str {
            "fake"
        }

        fn classify<'a>(
            &'a self,
            _prompt: &'a Prompt,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<Answer, LlmError>> + Send + 'a>,
        > {
            self.asked.fetch_add(1, Ordering::SeqCst);
            let result = if self.down.load(Ordering::SeqCst) {
                Err(LlmError::Http(Failure::GaveUp {
                    attempts: 1,
                    elapsed: Duration::ZERO,
                    last: "HTTP 503".into(),
                }))
            } else {
                Ok(Answer {
                    verdict: Verdict {
                        label: self.label,
                        confidence: 0.9,
                        reason: "fake".into(),
                    },
                    usage: None,
                })
            };
            Box::pin(std::future::ready(result))
        }

        fn health_check(
            &self,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>>
        {
            let up = !self.down.load(Ordering::SeqCst);
            Box::pin(std::future::ready(if up {
                Ok(())
            } else {
                Err("down".into())
            }))
        }
    }

    fn member(name: &str, fake: &Arc<Fake>, local: bool, per_minute: u64) -> Member {
        Member {
            name: name.into(),
            model: format!("openai/{name}"),
            local,
            classifier: Arc::clone(fake) as Arc<dyn Classifier>,
            budget: Budget::new(per_minute, 0),
        }
    }

    fn metrics() -> Arc<ComponentMetrics> {
        Arc::new(ComponentMetrics::new(ComponentKey::new(
            ComponentKind::Transform,
            "triage",
            "llm_suppress",
        )))
    }

    fn prompt() -> Prompt {
        Prompt::new("disk full on <*>", "error", &[], &Masker::default())
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_primary_is_skipped_until_its_health_check_passes() {
        let (primary, secondary) = (Fake::new(Label::Noise), Fake::new(Label::Important));
        let chain = Arc::new(Chain::new(
            vec![
                member("primary", &primary, false, 0),
                member("secondary", &secondary, false, 0),
            ],
            Duration::from_secs(30),
            metrics(),
        ));
        let stop = CancellationToken::new();
        tokio::spawn(Arc::clone(&chain).check_health(stop.clone()));
        let all = Allowed::default();

        assert_eq!(
            chain.ask(&prompt(), &all).await.unwrap().provider,
            "primary"
        );
        primary.down.store(true, Ordering::SeqCst);
        let answered = chain.ask(&prompt(), &all).await.unwrap();
        assert_eq!(
            (answered.provider.as_str(), answered.model.as_str()),
            ("secondary", "openai/secondary")
        );
        assert!(!chain.is_up("primary"));
        let asked = primary.asked.load(Ordering::SeqCst);
        chain.ask(&prompt(), &all).await.unwrap();
        assert_eq!(
            primary.asked.load(Ordering::SeqCst),
            asked,
            "a provider that is down is not asked"
        );

        // Still down at the first check: the next one is later.
        tokio::time::sleep(Duration::from_secs(31)).await;
        assert!(!chain.is_up("primary"));
        primary.down.store(false, Ordering::SeqCst);
        // The second check, 60 s after the first.
        tokio::time::sleep(Duration::from_secs(70)).await;
        assert!(chain.is_up("primary"), "back once its health check passes");
        assert_eq!(
            chain.ask(&prompt(), &all).await.unwrap().provider,
            "primary"
        );
        stop.cancel();
    }

    #[tokio::test]
    async fn local_only_questions_never_reach_a_remote_provider() {
        let (remote, local) = (Fake::new(Label::Noise), Fake::new(Label::Important));
        let chain = Chain::new(
            vec![
                member("cloud", &remote, false, 0),
                member("local", &local, true, 0),
            ],
            Duration::from_secs(30),
            metrics(),
        );
        let local_only = Allowed {
            local_only: true,
            names: None,
        };
        assert_eq!(
            chain.ask(&prompt(), &local_only).await.unwrap().provider,
            "local"
        );
        local.down.store(true, Ordering::SeqCst);
        let error = chain.ask(&prompt(), &local_only).await.unwrap_err();
        assert!(error.contains("local"), "{error}");
        let error = chain.ask(&prompt(), &local_only).await.unwrap_err();
        assert!(error.contains("local"), "{error}");
        assert_eq!(
            remote.asked.load(Ordering::SeqCst),
            0,
            "nothing went to the cloud"
        );
    }

    #[tokio::test]
    async fn an_over_budget_provider_is_skipped_and_a_policy_can_name_providers() {
        let (cheap, paid) = (Fake::new(Label::Noise), Fake::new(Label::Important));
        let chain = Chain::new(
            vec![
                member("cheap", &cheap, false, 1),
                member("paid", &paid, false, 0),
            ],
            Duration::from_secs(30),
            metrics(),
        );
        let all = Allowed::default();
        assert_eq!(chain.ask(&prompt(), &all).await.unwrap().provider, "cheap");
        assert_eq!(chain.ask(&prompt(), &all).await.unwrap().provider, "paid");
        let only_cheap = Allowed {
            local_only: false,
            names: Some(Arc::from(vec!["cheap".to_string()])),
        };
        let error = chain.ask(&prompt(), &only_cheap).await.unwrap_err();
        assert!(
            error.contains("cheap: over its `requests_per_minute` budget"),
            "{error}"
        );
        assert_eq!(paid.asked.load(Ordering::SeqCst), 1);
    }
}
