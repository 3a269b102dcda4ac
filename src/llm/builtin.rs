//! The built-in classifier: a deterministic heuristic, no network.
//!
//! It lets howl triage offline (an air-gapped host, CI, tests) and is the
//! default when no provider is configured. It is deliberately conservative:
//! it calls a pattern noise only when it belongs to a well-known family of
//! routine lines, and everything it does not recognise is important. Rules
//! are tried in order; the first that matches decides. "Text" is the
//! template and the samples together; the level is the pattern's.
//!
//! | # | rule | verdict | confidence |
//! |---|---|---|---|
//! | 1 | level `fatal` | important | 0.95 |
//! | 2 | SSH authentication chatter (`sshd`/`ssh` with invalid user, failed password, preauth, connection closed by, ...) | noise | 0.9 |
//! | 3 | health and readiness checks (`healthz`, `/health`, `readiness`, `heartbeat`, ...) that do not mention a failure | noise | 0.9 |
//! | 4 | level `debug` (or `trace`) | noise | 0.9 |
//! | 5 | retry and backoff notices (`retrying`, `backing off`, `will retry`, `attempt 2 of 5`, ...) below level `error` | noise | 0.8 |
//! | 6 | connection resets (`connection reset by peer`, `broken pipe`, `ECONNRESET`, `upstream prematurely closed`, ...) below level `error`, as seen during deploys | noise | 0.75 |
//! | 7 | level `error`, or failure words (`error`, `exception`, `panic`, `failed`, `refused`, `timeout`, `out of memory`, ...) | important | 0.8 |
//! | 8 | level `info` with no trouble words (`degraded`, `unavailable`, `lost`, `dropped`, `rejected`, `unable`, `cannot`, `exhausted`, `exceeded`, `expires`, `shutting down`, `failover`, ...) | noise | 0.7 |
//! | 9 | anything else (`warn`, an unknown level, trouble words) | important | 0.5 |
//!
//! With the default `min_confidence` of 0.7 every noise rule suppresses;
//! raise it to 0.75 to keep new `info` patterns, to 0.8 to keep connection
//! resets too, to 0.85 to keep retries too.
//!
//! Why rule 8: a new kind of `info` line that reports no trouble is a
//! deploy's or a feature's routine notice far more often than an incident,
//! and alerting on each one drowns the ones that matter (the alert
//! scenario, `scripts/alert-scenario`, measured every such alert as false).
//! Trouble words keep the ones that describe a state worth a look.

use std::sync::LazyLock;

use regex::Regex;

use super::contract::{Prompt, Verdict};
use crate::state::triage::Label;

/// One rule of the table above.
struct Rule {
    label: Label,
    confidence: f64,
    reason: &'static str,
    applies: fn(&Facts<'_>) -> bool,
}

/// What the rules look at.
struct Facts<'a> {
    text: &'a str,
    level: &'a str,
}

impl Facts<'_> {
    fn below_error(&self) -> bool {
        !matches!(self.level, "error" | "fatal")
    }
}

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("built-in classifier rule {pattern}: {e}"))
}

static SSH: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\bsshd?\b.*(invalid user|failed password|failed publickey|authentication failure|preauth|connection closed by|disconnected from|received disconnect|did not receive identification|not allowed because|maximum authentication attempts)",
    )
});
static HEALTH: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)(health[ _-]?check|/health\b|/healthz|/readyz|/livez|/ping\b|\bliveness\b|\breadiness\b|\bheartbeat\b|\bkeep-?alive\b)",
    )
});
static FAILURE: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)(\berror|exception|panic|\bfail|fatal|refused|denied|timed? ?out|unhealthy|unreachable|\bdown\b|out of memory|\boom\b|segfault|corrupt|crash)",
    )
});
static TROUBLE: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)(degraded|unavailable|\blost\b|\bdropp(ed|ing)\b|reject|\bunable\b|\bcannot\b|can't|could not|exhausted|\bfull\b|shutting down|shut ?down|terminat|\bkill|failover|fail(ing)? over|read-only|overload|throttl|\bevict|\bexpir|exceed|\binvalid\b|\bmissing\b|not found|\bstuck\b|\bslow\b|\blag\b|\brestart|\bwarn)",
    )
});
static RETRY: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)(\bretry(ing)?\b|\bretried\b|will retry|backing off|\bbackoff\b|\breconnect(ing)?\b|attempt \S+ of \S+)",
    )
});
static RESET: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)(connection reset|reset by peer|broken pipe|\beconnreset\b|\bepipe\b|upstream prematurely closed|client (closed|disconnected)|context canceled)",
    )
});

const RULES: &[Rule] = &[
    Rule {
        label: Label::Important,
        confidence: 0.95,
        reason: "fatal-level lines always matter",
        applies: |f| f.level == "fatal",
    },
    Rule {
        label: Label::Noise,
        confidence: 0.9,
        reason: "routine SSH authentication chatter (scanners, failed logins)",
        applies: |f| SSH.is_match(f.text),
    },
    Rule {
        label: Label::Noise,
        confidence: 0.9,
        reason: "a health or readiness check that reports no failure",
        applies: |f| HEALTH.is_match(f.text) && !FAILURE.is_match(f.text),
    },
    Rule {
        label: Label::Noise,
        confidence: 0.9,
        reason: "debug-level chatter",
        applies: |f| matches!(f.level, "debug" | "trace"),
    },
    Rule {
        label: Label::Noise,
        confidence: 0.8,
        reason: "a retry or backoff notice that is not an error",
        applies: |f| f.below_error() && RETRY.is_match(f.text),
    },
    Rule {
        label: Label::Noise,
        confidence: 0.75,
        reason: "a connection reset below error level, as during deploys",
        applies: |f| f.below_error() && RESET.is_match(f.text),
    },
    Rule {
        label: Label::Important,
        confidence: 0.8,
        reason: "an error-level line or one reporting a failure",
        applies: |f| f.level == "error" || FAILURE.is_match(f.text),
    },
    Rule {
        label: Label::Noise,
        confidence: 0.7,
        reason: "an info-level notice that reports no trouble",
        applies: |f| f.level == "info" && !TROUBLE.is_match(f.text),
    },
];

/// Classifies a pattern by the table in the module docs.
pub fn classify(prompt: &Prompt) -> Verdict {
    let mut text = prompt.template().to_string();
    for sample in prompt.samples() {
        text.push('\n');
        text.push_str(sample);
    }
    let level = prompt.level().to_ascii_lowercase();
    let facts = Facts {
        text: &text,
        level: &level,
    };
    let (label, confidence, reason) = RULES.iter().find(|rule| (rule.applies)(&facts)).map_or(
        (
            Label::Important,
            0.5,
            "no noise rule matched; kept to be safe",
        ),
        |rule| (rule.label, rule.confidence, rule.reason),
    );
    Verdict {
        label,
        confidence,
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::llm::redact::Masker;

    fn verdict(template: &str, level: &str, sample: &str) -> (Label, f64) {
        let prompt = Prompt::new(template, level, &[Arc::from(sample)], &Masker::default());
        let verdict = classify(&prompt);
        (verdict.label, verdict.confidence)
    }

    #[test]
    fn recognises_each_noise_family() {
        let cases = [
            (
                "sshd[<NUM>]: Invalid user <*> from <IP> port <NUM>",
                "info",
                "sshd[811]: Invalid user admin from 203.0.113.9 port 52211",
            ),
            (
                "GET /healthz <NUM> <DURATION>",
                "info",
                "GET /healthz 200 1ms",
            ),
            ("cache warmed in <DURATION>", "debug", "cache warmed in 3ms"),
            (
                "upstream busy, retrying in <DURATION> (attempt <NUM> of <NUM>)",
                "warn",
                "upstream busy, retrying in 2s (attempt 2 of 5)",
            ),
            (
                "read tcp <IP>: connection reset by peer",
                "warn",
                "read tcp 10.0.0.4:443: connection reset by peer",
            ),
        ];
        for (template, level, sample) in cases {
            assert_eq!(
                verdict(template, level, sample).0,
                Label::Noise,
                "{template}"
            );
        }
    }

    #[test]
    fn keeps_failures_errors_and_the_unknown() {
        let cases = [
            (
                "health check failed for <*>",
                "warn",
                "health check failed for db-1",
            ),
            ("retrying payment <NUM>", "error", "retrying payment 17"),
            ("disk <PATH> is full", "error", "disk /var is full"),
            ("kernel panic", "fatal", "kernel panic"),
            ("order <NUM> shipped", "warn", "order 17 shipped"),
            ("order <NUM> shipped", "unknown", "order 17 shipped"),
            (
                "replica <*> lost its leader, serving read-only",
                "info",
                "replica db-2 lost its leader, serving read-only",
            ),
            ("queue <*> is full", "info", "queue jobs is full"),
            (
                "shutting down worker pool <NUM>",
                "info",
                "shutting down worker pool 3",
            ),
        ];
        for (template, level, sample) in cases {
            assert_eq!(
                verdict(template, level, sample).0,
                Label::Important,
                "{template} ({level})"
            );
        }
        assert_eq!(
            verdict("order <NUM> shipped", "warn", "order 17 shipped").1,
            0.5,
            "unknown lines are kept with low confidence"
        );
    }

    /// Info-level lines that announce trouble ahead are kept: a
    /// certificate about to expire or a quota exceeded is logged at `info`
    /// by many services, and rule 8 must not call it routine.
    #[test]
    fn an_info_notice_of_trouble_ahead_is_kept() {
        for (template, sample) in [
            (
                "certificate for <*> expires in <NUM> days",
                "certificate for api.example.com expires in 3 days",
            ),
            (
                "license expiring on <DATE>",
                "license expiring on 2027-01-01",
            ),
            (
                "quota exceeded for tenant <*>",
                "quota exceeded for tenant acme",
            ),
        ] {
            let (label, _) = verdict(template, "info", sample);
            assert_eq!(label, Label::Important, "{template}");
        }
    }

    #[test]
    fn a_routine_info_notice_is_noise_at_the_default_threshold_only() {
        let (label, confidence) = verdict(
            "feature flag <*> enabled for <NUM> tenants",
            "info",
            "feature flag dark-mode enabled for 12 tenants",
        );
        assert_eq!(label, Label::Noise);
        assert_eq!(
            confidence, 0.7,
            "exactly the default min_confidence: raising it to 0.75 keeps new info patterns"
        );
    }
}
