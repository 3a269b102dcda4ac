//! The instrumentation contract every component follows.
//!
//! Like Vector's `internal_events`, components never call the `metrics` macros
//! or log their errors ad hoc: they hold a [`ComponentMetrics`] and report
//! through it, so every component emits the same series with the same labels
//! (`component_id`, `component_kind`, `component_type`):
//!
//! | series | meaning |
//! |---|---|
//! | `component_received_events_total` / `_bytes_total` | events that entered the component |
//! | `component_sent_events_total{output}` | events emitted (or delivered, for sinks) |
//! | `component_sent_bytes_total` | bytes a sink wrote or delivered |
//! | `component_discarded_events_total{intentional}` | events removed: `true` by policy (filter, `drop_newest`), `false` by failure |
//! | `component_errors_total{error_type,stage}` | failures, with a fixed `error_type` vocabulary |
//! | `source_lines_truncated_total` | lines cut at `max_line_bytes` |
//! | `buffer_events` | events waiting in the component's input buffer |
//! | `http_client_requests_total{status}` | requests a sink made, by status class (`2xx`, ..., `error`) |
//! | `http_client_request_duration_seconds` | their latency (histogram) |
//! | `http_client_retries_total` | retries a sink scheduled |
//! | `pattern_new_total` | patterns the `pattern` transform created |
//! | `patterns` | patterns it knows (gauge) |
//! | `pattern_evictions_total` | patterns it evicted at `max_patterns` |
//! | `llm_requests_total{provider,outcome}` | questions `llm_suppress` asked: `ok`, `rejected`, `failed` (retries ran out: outage, timeouts), `invalid` (unusable answer), `over_budget` (not sent) |
//! | `llm_request_duration_seconds{provider}` | how long a question took, retries included (histogram) |
//! | `llm_tokens_total{provider,kind}` | tokens the provider reported, `kind` = `input` or `output` |
//! | `llm_verdicts_total{verdict,source}` | verdicts reached per pattern (`noise`/`important`/`unknown`; `llm`, `builtin`, `error`) |
//! | `llm_cache_hits_total` | events decided by a stored verdict, without a question |
//! | `llm_pending_events` | events held while their pattern's verdict is pending (gauge) |
//! | `threshold_alerts{rule,state}` | groups of a `threshold` rule that are `pending` or `firing` (gauge) |
//! | `threshold_stale_resets_total{rule}` | groups a rule forgot because their samples stopped |
//! | `nats_partitions_owned` | partitions a `nats` source with `partitions.*` consumes now (gauge) |
//! | `nats_partition_lease_changes_total{change}` | its partition leases `taken`, `released` (given up gracefully) or `lost` (not renewed in time, or taken over) |
//!
//! Handles are registered once per component, so the hot path is an atomic
//! add. Error logs are rate limited per error type: a poison event repeated a
//! million times costs one log line every few seconds, not a million.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge};

use crate::component_key::ComponentKey;

/// The buckets (upper bounds, in seconds) of every histogram above, all of
/// them durations: from a fast local answer (5 ms) to a slow LLM question
/// with retries (2 min). The Prometheus exporter then exposes them as
/// histograms (`_bucket`, `_sum`, `_count`), which can be aggregated across
/// instances, rather than as summaries of quantiles, which cannot.
pub const DURATION_BUCKETS_SECONDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Where in a component's work an error happened (Vector's vocabulary).
#[derive(Clone, Copy, Debug)]
pub enum Stage {
    /// Reading or accepting input.
    Receiving,
    /// Transforming, encoding, rendering.
    Processing,
    /// Writing or delivering output.
    Sending,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Self::Receiving => "receiving",
            Self::Processing => "processing",
            Self::Sending => "sending",
        }
    }
}

/// Declares [`ErrorType`] from one list, so the enum, its labels and
/// [`ErrorType::ALL`] cannot drift apart.
macro_rules! error_types {
    ($($(#[doc = $doc:literal])* $variant:ident => $label:literal,)*) => {
        /// What went wrong, as the `error_type` label of
        /// `component_errors_total`: a fixed vocabulary, so a dashboard or an
        /// alert rule written today still matches tomorrow. Each value says
        /// what failed, not where; `stage` and the component labels say where.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorType {
            $($(#[doc = $doc])* $variant,)*
        }

        impl ErrorType {
            /// Every value, in the order of the documentation.
            pub const ALL: &[Self] = &[$(Self::$variant),*];

            /// The label value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $label,)*
                }
            }
        }
    };
}

error_types! {
    /// A file could not be opened.
    OpenFailed => "open_failed",
    /// Reading input failed (a file, stdin).
    ReadFailed => "read_failed",
    /// Writing output failed (stdout, a file).
    WriteFailed => "write_failed",
    /// A request body or a frame could not be decoded (bad JSON, bad
    /// encoding, a frame that is not what `decoding.codec` says).
    DecodeFailed => "decode_failed",
    /// An answer could not be parsed (a Prometheus exposition).
    ParseFailed => "parse_failed",
    /// An answer was larger than the configured limit.
    BodyTooLarge => "body_too_large",
    /// A query was answered with an error (PromQL).
    QueryFailed => "query_failed",
    /// A request was refused for good (a 4xx other than 408 and 429); not retried.
    RequestRejected => "request_rejected",
    /// A request kept failing until `retry.max_duration_secs` was spent.
    RetriesExhausted => "retries_exhausted",
    /// A question to an LLM provider failed.
    LlmRequestFailed => "llm_request_failed",
    /// A file source's checkpoint could not be written.
    CheckpointFailed => "checkpoint_failed",
    /// State could not be read from the store under `data_dir`.
    StateReadFailed => "state_read_failed",
    /// State could not be written to the store under `data_dir`.
    StateSaveFailed => "state_save_failed",
    /// A template (`{{ .field }}`) could not be rendered for an event.
    TemplateFailed => "template_failed",
    /// A VRL condition failed on an event (instead of returning a boolean).
    ConditionFailed => "condition_failed",
    /// A VRL program (`remap`, a webhook's `payload`) failed on an event.
    ScriptFailed => "script_failed",
    /// An event could not be encoded for its destination.
    EncodingFailed => "encoding_failed",
    /// A metric event lacked the shape a transform needs.
    InvalidMetric => "invalid_metric",
    /// An alert event lacked what an alert sink needs.
    InvalidAlert => "invalid_alert",
    /// A sink's own delivery task stopped unexpectedly.
    DeliveryTaskFailed => "delivery_task_failed",
    /// A lease (a `nats` source's partition) was not renewed in time: the
    /// holder stopped consuming what it covered.
    LeaseLost => "lease_lost",
    /// Instances of a fleet disagree on a setting they must share (a
    /// `nats` partition count).
    ConfigMismatch => "config_mismatch",
}

/// How often a repeated error is logged at most.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The metric handles and log limiter of one component.
#[derive(Debug)]
pub struct ComponentMetrics {
    key: ComponentKey,
    received_events: Counter,
    received_bytes: Counter,
    sent: Mutex<Vec<(Option<String>, Counter)>>,
    sent_bytes: Counter,
    discarded_intentional: Counter,
    discarded_unintentional: Counter,
    truncated: Counter,
    log_limiter: Mutex<HashMap<(&'static str, String), LimiterState>>,
    progress: Progress,
}

/// Running totals a component keeps for howl itself (the `metrics` counters
/// cannot be read back): what a sink has taken, what it has settled (sent
/// or discarded), and what its buffer lost, so that at the graceful
/// shutdown limit howl can say how many events each sink did not deliver.
#[derive(Debug, Default)]
struct Progress {
    taken: AtomicU64,
    settled: AtomicU64,
    lost_in_buffer: AtomicU64,
    kept_on_disk: AtomicU64,
}

#[derive(Debug)]
struct LimiterState {
    last_logged: Instant,
    suppressed: u64,
}

impl ComponentMetrics {
    /// Registers the series of one component.
    pub fn new(key: ComponentKey) -> Self {
        let labels = labels(&key);
        Self {
            received_events: metrics::counter!("component_received_events_total", &labels),
            received_bytes: metrics::counter!("component_received_bytes_total", &labels),
            sent: Mutex::new(Vec::new()),
            sent_bytes: metrics::counter!("component_sent_bytes_total", &labels),
            discarded_intentional: metrics::counter!(
                "component_discarded_events_total",
                &with(&labels, "intentional", "true")
            ),
            discarded_unintentional: metrics::counter!(
                "component_discarded_events_total",
                &with(&labels, "intentional", "false")
            ),
            truncated: metrics::counter!("source_lines_truncated_total", &labels),
            log_limiter: Mutex::new(HashMap::new()),
            progress: Progress::default(),
            key,
        }
    }

    /// The component these metrics describe.
    pub fn key(&self) -> &ComponentKey {
        &self.key
    }

    /// Counts events entering a transform (bytes are counted only where
    /// they are meaningful: at sources and sinks).
    pub fn received_events(&self, events: usize) {
        self.received_events.increment(events as u64);
        self.progress
            .taken
            .fetch_add(events as u64, Ordering::Relaxed);
    }

    /// Counts events and their bytes entering a source or sink.
    pub fn received(&self, events: usize, bytes: usize) {
        self.received_events.increment(events as u64);
        self.received_bytes.increment(bytes as u64);
        self.progress
            .taken
            .fetch_add(events as u64, Ordering::Relaxed);
    }

    /// Counts events leaving on `output` (`None` = the default output).
    pub fn sent(&self, output: Option<&str>, events: usize) {
        if events == 0 {
            return;
        }
        self.progress
            .settled
            .fetch_add(events as u64, Ordering::Relaxed);
        let mut sent = lock(&self.sent);
        if let Some((_, counter)) = sent.iter().find(|(name, _)| name.as_deref() == output) {
            counter.increment(events as u64);
            return;
        }
        let label = output.unwrap_or("_default").to_string();
        let counter = metrics::counter!(
            "component_sent_events_total",
            &with(&labels(&self.key), "output", &label)
        );
        counter.increment(events as u64);
        sent.push((output.map(str::to_string), counter));
    }

    /// Counts bytes a sink wrote or delivered.
    pub fn sent_bytes(&self, bytes: usize) {
        self.sent_bytes.increment(bytes as u64);
    }

    /// Counts events removed by policy: a filter, a throttle.
    pub fn discarded_intentionally(&self, events: usize, reason: &str) {
        if events > 0 {
            self.progress
                .settled
                .fetch_add(events as u64, Ordering::Relaxed);
            self.discarded_intentional.increment(events as u64);
            tracing::trace!(component = %self.key, events, reason, "discarded events");
        }
    }

    /// Counts events lost to a failure and logs why (rate limited).
    pub fn discarded_on_error(&self, events: usize, reason: &dyn Display) {
        if events > 0 {
            self.progress
                .settled
                .fetch_add(events as u64, Ordering::Relaxed);
            self.count_lost(events, reason);
        }
    }

    /// Counts events a full `drop_newest` buffer in front of the component
    /// shed, before the component ever saw them.
    pub fn shed_by_buffer(&self, events: usize) {
        if events > 0 {
            self.discarded_intentional.increment(events as u64);
            tracing::trace!(component = %self.key, events, "buffer full (when_full = drop_newest): events discarded");
        }
    }

    /// Counts events still in the component's buffer when it stopped for
    /// good (it failed, or was stopped at the graceful shutdown limit).
    pub fn lost_in_buffer(&self, events: usize) {
        if events > 0 {
            self.progress
                .lost_in_buffer
                .fetch_add(events as u64, Ordering::Relaxed);
            self.count_lost(
                events,
                &format_args!(
                    "{events} events were still in the buffer when the component stopped"
                ),
            );
        }
    }

    /// Records how many events a sink's disk buffer keeps for the next
    /// start when the sink stops (read again then, not lost).
    pub fn kept_in_disk_buffer(&self, events: u64) {
        self.progress.kept_on_disk.store(events, Ordering::Relaxed);
    }

    /// Counts events (or, where no event count is known, bytes) a disk
    /// buffer lost to damage, by `reason` (`torn_tail`, `checksum`,
    /// `decode`, `bad_header`, `missing_segment`).
    pub fn buffer_lost(&self, events: u64, bytes: u64, reason: &'static str) {
        let labels = with(&labels(&self.key), "reason", reason);
        if events > 0 {
            metrics::counter!("buffer_lost_events_total", &labels).increment(events);
            self.count_lost(
                events as usize,
                &format_args!("{events} events lost to a damaged disk buffer ({reason})"),
            );
        }
        if bytes > 0 {
            metrics::counter!("buffer_lost_bytes_total", &labels).increment(bytes);
        }
    }

    /// Counts one thing recovery of a disk buffer had to repair.
    pub fn buffer_recovery(&self, case: &'static str) {
        metrics::counter!(
            "buffer_recoveries_total",
            &with(&labels(&self.key), "case", case)
        )
        .increment(1);
    }

    /// Reports the bytes a disk buffer's files take.
    pub fn disk_buffer_size(&self, bytes: u64) {
        metrics::gauge!("buffer_size_bytes", &labels(&self.key)).set(bytes as f64);
    }

    /// Events a sink did not deliver: those it took but never sent nor
    /// discarded, and those left in its buffer (in memory: lost; on disk:
    /// kept for the next start). Meaningful once the sink has stopped.
    pub fn undelivered(&self) -> Undelivered {
        let taken = self.progress.taken.load(Ordering::Relaxed);
        let settled = self.progress.settled.load(Ordering::Relaxed);
        Undelivered {
            in_flight: taken.saturating_sub(settled),
            in_buffer: self.progress.lost_in_buffer.load(Ordering::Relaxed),
            on_disk: self.progress.kept_on_disk.load(Ordering::Relaxed),
        }
    }

    fn count_lost(&self, events: usize, reason: &dyn Display) {
        self.discarded_unintentional.increment(events as u64);
        self.log_limited("discarded", reason, |suppressed| {
            tracing::warn!(component = %self.key, events, suppressed, "events discarded: {reason}");
        });
    }

    /// Counts and logs (rate limited) an error.
    pub fn error(&self, error_type: ErrorType, stage: Stage, message: &dyn Display) {
        let error_type = error_type.as_str();
        let mut labels = labels(&self.key);
        labels.push(("error_type", error_type.to_string()));
        labels.push(("stage", stage.as_str().to_string()));
        // Logged before it is counted: whoever sees the count can find
        // the log line.
        self.log_limited(error_type, message, |suppressed| {
            tracing::error!(
                component = %self.key,
                error_type,
                stage = stage.as_str(),
                suppressed,
                "{message}"
            );
        });
        metrics::counter!("component_errors_total", &labels).increment(1);
    }

    /// Counts lines cut at the source's line limit.
    pub fn truncated(&self, lines: usize, limit: usize) {
        if lines > 0 {
            self.truncated.increment(lines as u64);
            self.log_limited("line_truncated", &"", |suppressed| {
                tracing::warn!(component = %self.key, limit, suppressed, "line longer than max_line_bytes was truncated");
            });
        }
    }

    /// Counts one HTTP request by status class, with its latency.
    pub fn http_request(&self, status_class: &'static str, latency: Duration) {
        let component = labels(&self.key);
        let mut by_status = component.clone();
        by_status.push(("status", status_class.to_string()));
        metrics::counter!("http_client_requests_total", &by_status).increment(1);
        metrics::histogram!("http_client_request_duration_seconds", &component)
            .record(latency.as_secs_f64());
    }

    /// Counts one retry of an HTTP request.
    pub fn http_retry(&self) {
        metrics::counter!("http_client_retries_total", &labels(&self.key)).increment(1);
    }

    /// Logs a warning, rate limited per `kind` like errors are.
    pub fn warn_limited(&self, kind: &'static str, message: &dyn Display) {
        self.log_limited(kind, message, |suppressed| {
            tracing::warn!(component = %self.key, suppressed, "{message}");
        });
    }

    /// Reports a `pattern` transform's counts after a batch.
    pub fn pattern_stats(&self, new: u64, live: usize, evictions: u64) {
        let labels = labels(&self.key);
        if new > 0 {
            metrics::counter!("pattern_new_total", &labels).increment(new);
        }
        metrics::gauge!("patterns", &labels).set(live as f64);
        metrics::counter!("pattern_evictions_total", &labels).absolute(evictions);
    }

    /// Counts one storm of the `pattern` transform, which grouped `grouped`
    /// new patterns.
    pub fn pattern_storm(&self, grouped: u64) {
        let labels = labels(&self.key);
        metrics::counter!("pattern_storms_total", &labels).increment(1);
        metrics::counter!("pattern_storm_grouped_total", &labels).increment(grouped);
    }

    /// Sets how many partitions a partitioned `nats` source consumes.
    pub fn partitions_owned(&self, owned: usize) {
        metrics::gauge!("nats_partitions_owned", &labels(&self.key)).set(owned as f64);
    }

    /// Counts one change of a partition lease: `taken`, `released` or
    /// `lost`.
    pub fn partition_lease_change(&self, change: &'static str) {
        let labels = with(&labels(&self.key), "change", change);
        metrics::counter!("nats_partition_lease_changes_total", &labels).increment(1);
    }

    /// Counts one spike or silence alert event of the `pattern` transform
    /// (`kind` is `spike` or `silence`, `state` `firing` or `resolved`).
    pub fn pattern_anomaly(&self, kind: &'static str, state: &'static str) {
        let mut labels = labels(&self.key);
        labels.push(("kind", kind.to_string()));
        labels.push(("state", state.to_string()));
        metrics::counter!("pattern_anomalies_total", &labels).increment(1);
    }

    /// Counts one question to an LLM provider by outcome, with its latency
    /// when it was sent.
    pub fn llm_request(&self, provider: &str, outcome: &'static str, latency: Option<Duration>) {
        let mut labels = labels(&self.key);
        labels.push(("provider", provider.to_string()));
        if let Some(latency) = latency {
            metrics::histogram!("llm_request_duration_seconds", &labels)
                .record(latency.as_secs_f64());
        }
        labels.push(("outcome", outcome.to_string()));
        metrics::counter!("llm_requests_total", &labels).increment(1);
    }

    /// Counts the tokens a provider reported for one question.
    pub fn llm_tokens(&self, provider: &str, input: u64, output: u64) {
        let mut labels = labels(&self.key);
        labels.push(("provider", provider.to_string()));
        for (kind, tokens) in [("input", input), ("output", output)] {
            metrics::counter!("llm_tokens_total", &with(&labels, "kind", kind)).increment(tokens);
        }
    }

    /// Counts a verdict reached for a pattern.
    pub fn llm_verdict(&self, verdict: &str, source: &str) {
        let labels = with(
            &with(&labels(&self.key), "verdict", verdict),
            "source",
            source,
        );
        metrics::counter!("llm_verdicts_total", &labels).increment(1);
    }

    /// Counts a compared provider's answer (`compare`): `agree`,
    /// `disagree` with the deciding verdict, `failed` (no verdict), or
    /// `undecided` (the deciding question failed).
    pub fn llm_comparison(&self, provider: &str, result: &'static str) {
        let labels = with(
            &with(&labels(&self.key), "provider", provider),
            "result",
            result,
        );
        metrics::counter!("llm_comparisons_total", &labels).increment(1);
    }

    /// Counts a canary's verdict against the incumbent's (`agree` or
    /// `disagree`).
    pub fn llm_canary_comparison(&self, result: &'static str) {
        let labels = with(&labels(&self.key), "result", result);
        metrics::counter!("llm_canary_comparisons_total", &labels).increment(1);
    }

    /// Counts events decided by a stored verdict.
    pub fn llm_cache_hits(&self, events: u64) {
        if events > 0 {
            metrics::counter!("llm_cache_hits_total", &labels(&self.key)).increment(events);
        }
    }

    /// Reports how many events wait for their pattern's verdict.
    pub fn llm_pending(&self, events: usize) {
        metrics::gauge!("llm_pending_events", &labels(&self.key)).set(events as f64);
    }

    /// Registers the series of one `threshold` rule.
    pub fn threshold_rule(&self, rule: &str) -> ThresholdRuleMetrics {
        let mut labels = labels(&self.key);
        labels.push(("rule", rule.to_string()));
        ThresholdRuleMetrics {
            pending: metrics::gauge!("threshold_alerts", &with(&labels, "state", "pending")),
            firing: metrics::gauge!("threshold_alerts", &with(&labels, "state", "firing")),
            stale_resets: metrics::counter!("threshold_stale_resets_total", &labels),
        }
    }

    /// The gauge of this component's input buffer fill.
    pub fn buffer_gauge(&self) -> Gauge {
        metrics::gauge!("buffer_events", &labels(&self.key))
    }

    /// Runs `log` unless the same kind of message was logged recently; passes
    /// the number of messages swallowed since the last one.
    ///
    /// Messages are told apart by kind *and* their first words, so one
    /// failing query or file cannot hide another's (different) problem,
    /// while a million identical failures still cost one line. The set of
    /// keys is bounded: beyond it, messages share their kind's key.
    fn log_limited(&self, kind: &'static str, message: &dyn Display, log: impl FnOnce(u64)) {
        const SUBJECT_CHARS: usize = 48;
        const MAX_KEYS: usize = 256;
        let now = Instant::now();
        let subject: String = message.to_string().chars().take(SUBJECT_CHARS).collect();
        let mut limiter = lock(&self.log_limiter);
        let key = if limiter.len() < MAX_KEYS || limiter.contains_key(&(kind, subject.clone())) {
            (kind, subject)
        } else {
            (kind, String::new())
        };
        let state = limiter.entry(key).or_insert(LimiterState {
            last_logged: now - LOG_INTERVAL,
            suppressed: 0,
        });
        if now.duration_since(state.last_logged) >= LOG_INTERVAL {
            let suppressed = std::mem::take(&mut state.suppressed);
            state.last_logged = now;
            drop(limiter);
            log(suppressed);
        } else {
            state.suppressed += 1;
        }
    }
}

/// What a sink left undelivered when it stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Undelivered {
    /// Taken from its buffer but neither sent nor discarded.
    pub in_flight: u64,
    /// Still waiting in its memory buffer (lost).
    pub in_buffer: u64,
    /// Still in its disk buffer, read again on the next start (this
    /// includes what was in flight from it).
    pub on_disk: u64,
}

impl Undelivered {
    /// What was not delivered and is not kept on disk either: gone from
    /// this run (a `file` source still reads it again next start).
    pub fn lost(&self) -> u64 {
        if self.on_disk > 0 {
            self.in_buffer
        } else {
            self.in_flight + self.in_buffer
        }
    }
}

/// The series of one `threshold` rule: its state is always visible, so an
/// operator can tell "nothing breaches" from "something is pending".
#[derive(Debug, Clone)]
pub struct ThresholdRuleMetrics {
    pending: Gauge,
    firing: Gauge,
    stale_resets: Counter,
}

impl ThresholdRuleMetrics {
    /// Reports how many groups are pending and firing now.
    pub fn groups(&self, pending: usize, firing: usize) {
        self.pending.set(pending as f64);
        self.firing.set(firing as f64);
    }

    /// Counts groups forgotten because their samples stopped.
    pub fn stale_resets(&self, groups: u64) {
        if groups > 0 {
            self.stale_resets.increment(groups);
        }
    }
}

fn labels(key: &ComponentKey) -> Vec<(&'static str, String)> {
    vec![
        ("component_id", key.id().to_string()),
        ("component_kind", key.kind().as_str().to_string()),
        ("component_type", key.type_name().to_string()),
    ]
}

fn with(
    labels: &[(&'static str, String)],
    name: &'static str,
    value: &str,
) -> Vec<(&'static str, String)> {
    let mut labels = labels.to_vec();
    labels.push((name, value.to_string()));
    labels
}

/// Locks a mutex, recovering from poisoning: metrics bookkeeping must never
/// take the pipeline down because another thread panicked.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
