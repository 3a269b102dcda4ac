//! `loki_query`: follow a LogQL query through Loki's
//! `GET /loki/api/v1/query_range`, for logs that already live in Loki.
//!
//! Every `interval_secs` the source asks for the entries from its cursor up
//! to `delay_secs` ago, oldest first (`direction=forward`), `limit` at a
//! time, and asks again at once while an answer is full: a backlog is
//! drained page by page, never in one huge answer.
//!
//! **The cursor** is a timestamp (nanoseconds) and the entries already
//! taken at exactly that nanosecond, known by a hash of their stream's
//! labels and their line. Each query starts *at* the cursor's timestamp,
//! not after it, and skips the entries it already took there: entries that
//! share a nanosecond (several streams, or Loki's own batching) are split
//! by a page's `limit` without one being lost or repeated. A full page whose
//! entries all sit at one nanosecond cannot move the cursor: the next query
//! asks for twice as many, up to `MAX_LIMIT`, and past that the rest of that
//! nanosecond is skipped with a warning (a store holding more than 5,000
//! entries at one nanosecond in one query's streams is broken).
//!
//! The cursor is saved by [`crate::sources::pull`] only past pages the sinks
//! acknowledged. Entries whose timestamps are older than the cursor when
//! they reach Loki (later than `delay_secs`) are not seen: that is what
//! `delay_secs` is for.
//!
//! Each entry becomes one event: its line is the message, its stream's
//! labels are under `labels` (with the labels a `| json` or `| logfmt`
//! stage parsed), its structured metadata under `structured_metadata`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use vrl::value::{KeyString, ObjectMap, Value};

use crate::components::source::{Source, SourceConfig, SourceContext, TimeWindow};
use crate::components::{BuildContext, ComponentFuture};
use crate::diagnostic::BuildError;
use crate::event::Event;
use crate::http::{AuthConfig, Failure, RetryConfig, api_url, classify_http};
use crate::options::{HttpUrl, Seconds};
use crate::sources::http_poll::{GetError, HttpClient, HttpSettings, Request};
use crate::sources::pull::{self, Mode, Page, Pull};

/// Options of the `loki_query` source.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LokiQueryConfig {
    /// Loki's base URL, e.g. `http://127.0.0.1:3100`; a path prefix (Loki
    /// behind a proxy at `/loki/`) is kept, and `loki/api/v1/query_range`
    /// is asked under it.
    #[schemars(extend("x-placeholder" = "http://127.0.0.1:3100"))]
    endpoint: HttpUrl,
    /// The LogQL log query, e.g. `{service="api"} |= "error"`. Metric
    /// queries (`rate(...)`) give no lines and are refused when Loki
    /// answers with samples.
    #[schemars(extend("x-placeholder" = "{job=\"api\"}"))]
    query: String,
    /// The time between two polls; a plain number is seconds.
    #[serde(default = "default_interval")]
    interval_secs: Seconds,
    /// The most entries asked for in one request (Loki's own cap,
    /// `max_entries_limit_per_query`, is 5,000 by default).
    #[serde(default = "default_limit")]
    limit: u32,
    /// On the first start (no saved cursor), read this far back; `0`
    /// starts at the present.
    #[serde(default = "default_since")]
    since: Seconds,
    /// Each poll reads up to this long ago rather than up to now, so
    /// entries that reach Loki a little after their timestamp are still
    /// seen. Later ones are missed.
    #[serde(default = "default_delay")]
    delay_secs: Seconds,
    /// The tenant, sent as `X-Scope-OrgID` (Loki in multi-tenant mode).
    tenant: Option<String>,
    /// Give up on one attempt after this long (it is then retried, as
    /// `retry` says); a plain number is seconds.
    #[serde(default = "default_timeout")]
    timeout_secs: Seconds,
    /// How failed requests are retried within one interval.
    #[serde(default)]
    retry: RetryConfig,
    /// Credentials for Loki or the proxy in front of it (`bearer` or
    /// `basic`).
    auth: Option<AuthConfig>,
}

fn default_interval() -> Seconds {
    Seconds::from_secs(10)
}

fn default_limit() -> u32 {
    1000
}

fn default_since() -> Seconds {
    Seconds::from_secs(0)
}

fn default_delay() -> Seconds {
    Seconds::from_secs(5)
}

fn default_timeout() -> Seconds {
    Seconds::from_secs(30)
}

/// The `source_type` of the events.
const SOURCE_TYPE: &str = "loki_query";
/// Answers larger than this fail the poll (lower `limit`).
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;
/// The most entries one request asks for while it tries to get past a
/// nanosecond holding more than `limit` entries.
const MAX_LIMIT: u32 = 5000;

impl LokiQueryConfig {
    fn puller(&self, until: Option<DateTime<Utc>>) -> Result<LokiPuller, BuildError> {
        if self.query.trim().is_empty() {
            return Err(BuildError::new(
                "`query` is empty: give a LogQL log query such as `{job=\"api\"}`",
            )
            .for_option("query"));
        }
        if self.limit == 0 || self.limit > MAX_LIMIT {
            return Err(BuildError::new(format!(
                "`limit` is {}: it must be from 1 to {MAX_LIMIT} (Loki's default cap)",
                self.limit
            ))
            .for_option("limit"));
        }
        self.interval_secs.positive("interval_secs")?;
        let mut headers = HeaderMap::new();
        // Structured metadata and parsed labels apart from stream labels
        // (Loki 3); older Lokis ignore the header.
        headers.insert(
            HeaderName::from_static("x-loki-response-encoding-flags"),
            HeaderValue::from_static("categorize-labels"),
        );
        if let Some(tenant) = &self.tenant {
            let value = HeaderValue::from_str(tenant).map_err(|_| {
                BuildError::new("`tenant` holds characters a header cannot carry")
                    .for_option("tenant")
            })?;
            headers.insert(HeaderName::from_static("x-scope-orgid"), value);
        }
        Ok(LokiPuller {
            url: api_url(self.endpoint.url(), "loki/api/v1/query_range"),
            query: self.query.clone(),
            limit: self.limit,
            boost: 1,
            delay: self.delay_secs.get(),
            until,
            headers,
            // Retries are not cut at the interval, as a scrape's are: the
            // lines wait in Loki, so a rate-limited Loki is waited for as
            // long as `retry.max_duration_secs` says.
            http: HttpSettings::new(
                self.timeout_secs.positive("timeout_secs")?,
                &self.retry,
                self.auth.as_ref(),
                Duration::MAX,
                MAX_ANSWER_BYTES,
            )?,
            client: None,
        })
    }
}

impl SourceConfig for LokiQueryConfig {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        let puller = self.puller(None)?;
        let since = chrono::Duration::from_std(self.since.get())
            .map_err(|_| BuildError::new("`since` is too far back").for_option("since"))?;
        Ok(Box::new(LokiQuery {
            puller,
            initial: Cursor::at(Utc::now() - since),
            interval: self.interval_secs.get(),
            mode: Mode::Follow,
        }))
    }

    fn build_window(
        &self,
        _cx: &BuildContext,
        window: TimeWindow,
    ) -> Option<Result<Box<dyn Source>, BuildError>> {
        Some(self.puller(Some(window.until)).map(|puller| {
            Box::new(LokiQuery {
                puller,
                initial: Cursor::at(window.since),
                interval: self.interval_secs.get(),
                mode: Mode::Window,
            }) as Box<dyn Source>
        }))
    }
}

struct LokiQuery {
    puller: LokiPuller,
    initial: Cursor,
    interval: Duration,
    mode: Mode,
}

impl Source for LokiQuery {
    fn run(self: Box<Self>, cx: SourceContext) -> ComponentFuture {
        Box::pin(async move {
            let mut puller = self.puller;
            puller.client = Some(puller.http.client(Arc::clone(cx.out.metrics()))?);
            pull::run(puller, self.initial, self.interval, self.mode, cx).await
        })
    }
}

/// Where the next query starts: a nanosecond, and the entries already
/// taken at it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Nanoseconds since the Unix epoch.
    ns: i64,
    /// Hashes of the entries taken at `ns` (see [`entry_hash`]).
    seen: BTreeSet<u64>,
}

impl Cursor {
    fn at(time: DateTime<Utc>) -> Self {
        Self::at_ns(nanos(time))
    }

    fn at_ns(ns: i64) -> Self {
        Self {
            ns,
            seen: BTreeSet::new(),
        }
    }
}

/// `time` in nanoseconds, clamped to what they can say: no log line is
/// older than 1970 (a `--since` of centuries starts there, not at the
/// far end of the range, which would read nothing), and past 2262 is as
/// late as it gets.
fn nanos(time: DateTime<Utc>) -> i64 {
    time.max(DateTime::UNIX_EPOCH)
        .timestamp_nanos_opt()
        .unwrap_or(i64::MAX)
}

/// The querying side of the source.
struct LokiPuller {
    url: reqwest::Url,
    query: String,
    limit: u32,
    /// How many times `limit` the next request asks for (more than once
    /// only while stuck at one nanosecond).
    boost: u32,
    delay: Duration,
    /// The end of the window (`patterns train`); `None`: follow.
    until: Option<DateTime<Utc>>,
    headers: HeaderMap,
    http: HttpSettings,
    client: Option<HttpClient>,
}

impl Pull for LokiPuller {
    type Cursor = Cursor;

    async fn pull(&mut self, cursor: &Cursor) -> anyhow::Result<Page<Cursor>> {
        let end = match self.until {
            Some(until) => nanos(until),
            None => nanos(Utc::now() - chrono::Duration::from_std(self.delay).unwrap_or_default()),
        };
        if cursor.ns >= end {
            return Ok(Page {
                events: Vec::new(),
                bytes: 0,
                cursor: cursor.clone(),
                more: false,
            });
        }
        let limit = self.limit.saturating_mul(self.boost).min(MAX_LIMIT);
        let mut url = self.url.clone();
        url.query_pairs_mut()
            .append_pair("query", &self.query)
            .append_pair("start", &cursor.ns.to_string())
            .append_pair("end", &end.to_string())
            .append_pair("limit", &limit.to_string())
            .append_pair("direction", "forward");
        let Some(client) = &self.client else {
            anyhow::bail!("loki_query polled before it ran");
        };
        let request = Request {
            method: reqwest::Method::GET,
            url: &url,
            headers: &self.headers,
            body: None,
        };
        let response = match client
            .send(&request, "application/json", classify_http)
            .await
        {
            Ok(response) => response,
            Err(GetError::Failed(Failure::Rejected {
                status: Some(reqwest::StatusCode::BAD_REQUEST),
                reason,
                body,
            })) if self.boost > 1 => {
                // Loki caps `limit` lower than the larger one asked to get
                // past a crowded nanosecond (`max_entries_limit_per_query`):
                // asking again would be refused for ever.
                client.metrics().warn_limited(
                    "entries_skipped",
                    &format_args!(
                        "more than {} entries share the nanosecond {} and Loki refuses a larger \
                         `limit` ({reason}: {body}): the rest of them are skipped",
                        self.limit, cursor.ns
                    ),
                );
                self.boost = 1;
                return Ok(Page {
                    events: Vec::new(),
                    bytes: 0,
                    cursor: Cursor::at_ns(cursor.ns.saturating_add(1)),
                    more: true,
                });
            }
            Err(GetError::Failed(failure)) => anyhow::bail!("the query failed: {failure}"),
            Err(error @ GetError::TooLarge(_)) => {
                anyhow::bail!("{error}: lower `limit`")
            }
        };
        let entries = parse_answer(&response.body)?;
        if entries.len() >= limit as usize && entries.iter().all(|e| e.ns < cursor.ns) {
            // Nothing to learn from it, and the same answer would come
            // again: a proxy or a fake that ignores `start`.
            anyhow::bail!(
                "Loki answered {} entries, all from before the query's start ({}): it does not \
                 honour the time range asked",
                entries.len(),
                cursor.ns
            );
        }
        let mut page = next_page(cursor, entries, limit, end);
        self.boost = match page.outcome {
            Outcome::Moved => 1,
            Outcome::Stuck if limit < MAX_LIMIT => {
                // Ask again at once, for more.
                page.more = true;
                self.boost.saturating_mul(2)
            }
            Outcome::Stuck => {
                client.metrics().warn_limited(
                    "entries_skipped",
                    &format_args!(
                        "more than {MAX_LIMIT} entries share the nanosecond {}: the rest of \
                         them are skipped",
                        cursor.ns
                    ),
                );
                // Past the rest of that nanosecond; a window (`patterns
                // train`) goes on at once, as it ends when a poll has no
                // more.
                page.cursor = Cursor::at_ns(cursor.ns.saturating_add(1));
                page.more = self.until.is_some();
                1
            }
        };
        let now = Utc::now();
        let events = page
            .entries
            .into_iter()
            .map(|e| e.into_event(now))
            .collect();
        Ok(Page {
            events,
            bytes: response.body.len(),
            cursor: page.cursor,
            more: page.more,
        })
    }
}

/// One log entry of an answer.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    ns: i64,
    labels: Arc<BTreeMap<String, String>>,
    line: String,
    metadata: BTreeMap<String, String>,
    parsed: BTreeMap<String, String>,
}

impl Entry {
    fn into_event(self, now: DateTime<Utc>) -> Event {
        let timestamp = DateTime::from_timestamp_nanos(self.ns);
        let time = if self.ns == 0 { now } else { timestamp };
        let mut event = Event::log(Bytes::from(self.line), time, SOURCE_TYPE);
        let mut labels = object(&self.labels);
        labels.extend(object(&self.parsed));
        event.insert_field("labels", Value::Object(labels));
        if !self.metadata.is_empty() {
            event.insert_field("structured_metadata", Value::Object(object(&self.metadata)));
        }
        event
    }
}

fn object(pairs: &BTreeMap<String, String>) -> ObjectMap {
    pairs
        .iter()
        .map(|(k, v)| (KeyString::from(k.as_str()), Value::from(v.as_str())))
        .collect()
}

/// A stable hash of an entry (its stream's labels and its line): saved in
/// cursors, so it must not change between howl versions (std's hasher
/// may).
fn entry_hash(entry: &Entry) -> u64 {
    let mut hasher = Sha256::new();
    for (name, value) in entry.labels.iter() {
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(value.as_bytes());
        hasher.update([0]);
    }
    hasher.update([1]);
    hasher.update(entry.line.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// Whether a page moved the cursor.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Moved,
    /// Full, and all at the cursor's nanosecond: ask for more next time.
    Stuck,
}

/// What one answer gives: the entries not taken before, the cursor after
/// them, whether Loki has more now.
#[derive(Debug)]
struct NextPage {
    entries: Vec<Entry>,
    cursor: Cursor,
    more: bool,
    outcome: Outcome,
}

/// Cuts one answer (asked from `cursor` to `end` with `limit`) into the
/// entries to send and the next cursor.
fn next_page(cursor: &Cursor, mut entries: Vec<Entry>, limit: u32, end: i64) -> NextPage {
    // An answer that reaches `end` holds everything before it (forward
    // order), full or not: a Loki whose `end` is inclusive, or one giving
    // more than `limit`.
    let full = entries.len() >= limit as usize && entries.iter().all(|e| e.ns < end);
    // Whether Loki's `end` is inclusive or not, an entry at `end` or after
    // belongs to the next window; one before the cursor to no window.
    entries.retain(|e| e.ns >= cursor.ns && e.ns < end);
    entries.sort_by_key(|e| e.ns);
    let mut seen_at_cursor = cursor.seen.clone();
    entries.retain(|e| e.ns != cursor.ns || seen_at_cursor.insert(entry_hash(e)));
    if !full {
        // Loki gave everything up to `end`.
        return NextPage {
            entries,
            cursor: Cursor {
                ns: end,
                seen: BTreeSet::new(),
            },
            more: false,
            outcome: Outcome::Moved,
        };
    }
    // Full: everything before the last nanosecond is complete; at the last
    // one there may be more.
    let last = entries.last().map_or(cursor.ns, |e| e.ns);
    if last == cursor.ns {
        // Every entry was at the cursor's nanosecond (some possibly taken
        // before): keep them all as seen, and ask for more next time.
        let stuck = entries.is_empty();
        return NextPage {
            entries,
            cursor: Cursor {
                ns: cursor.ns,
                seen: seen_at_cursor,
            },
            more: !stuck,
            outcome: if stuck {
                Outcome::Stuck
            } else {
                Outcome::Moved
            },
        };
    }
    let seen = entries
        .iter()
        .filter(|e| e.ns == last)
        .map(entry_hash)
        .collect();
    NextPage {
        entries,
        cursor: Cursor { ns: last, seen },
        more: true,
        outcome: Outcome::Moved,
    }
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    #[serde(default)]
    result: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Stream {
    #[serde(default)]
    stream: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<Vec<serde_json::Value>>,
}

/// The entries of a `query_range` answer, or why it has none.
fn parse_answer(body: &[u8]) -> anyhow::Result<Vec<Entry>> {
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|e| anyhow::anyhow!("Loki's answer is not its query_range JSON: {e}"))?;
    if answer.status != "success" {
        anyhow::bail!(
            "Loki answered `{}`: {}",
            answer.status,
            answer.error.as_deref().unwrap_or("no reason given")
        );
    }
    let Some(data) = answer.data else {
        anyhow::bail!("Loki's answer has no `data`");
    };
    if data.result_type != "streams" {
        anyhow::bail!(
            "the query gives {} (a metric query), not log lines: loki_query needs a log \
             query such as `{{job=\"api\"}} |= \"error\"`",
            data.result_type
        );
    }
    let mut entries = Vec::new();
    for stream in data.result {
        let stream: Stream = serde_json::from_value(stream)
            .map_err(|e| anyhow::anyhow!("a stream of Loki's answer is malformed: {e}"))?;
        let labels = Arc::new(stream.stream);
        for value in stream.values {
            entries.push(parse_entry(&labels, value)?);
        }
    }
    Ok(entries)
}

/// `["<ns>", "<line>"]` or `["<ns>", "<line>", {metadata}]`; the metadata is
/// flat (Loki 2.9) or `{"structuredMetadata": {..}, "parsed": {..}}`
/// (Loki 3 with `categorize-labels`).
fn parse_entry(
    labels: &Arc<BTreeMap<String, String>>,
    value: Vec<serde_json::Value>,
) -> anyhow::Result<Entry> {
    let mut parts = value.into_iter();
    let (Some(ns), Some(line)) = (parts.next(), parts.next()) else {
        anyhow::bail!("an entry of Loki's answer is not `[timestamp, line]`");
    };
    let ns = ns
        .as_str()
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or_else(|| anyhow::anyhow!("an entry's timestamp `{ns}` is not nanoseconds"))?;
    let serde_json::Value::String(line) = line else {
        anyhow::bail!("an entry's line is not a string");
    };
    let strings = |value: Option<&serde_json::Value>| -> BTreeMap<String, String> {
        value
            .and_then(|v| v.as_object())
            .map(|object| {
                object
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (metadata, parsed) = match parts.next() {
        Some(serde_json::Value::Object(object))
            if object.contains_key("structuredMetadata") || object.contains_key("parsed") =>
        {
            (
                strings(object.get("structuredMetadata")),
                strings(object.get("parsed")),
            )
        }
        Some(flat @ serde_json::Value::Object(_)) => (strings(Some(&flat)), BTreeMap::new()),
        _ => (BTreeMap::new(), BTreeMap::new()),
    };
    Ok(Entry {
        ns,
        labels: Arc::clone(labels),
        line,
        metadata,
        parsed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::{build_failure, test_context};

    fn entry(ns: i64, stream: &str, line: &str) -> Entry {
        Entry {
            ns,
            labels: Arc::new(BTreeMap::from([("job".to_string(), stream.to_string())])),
            line: line.to_string(),
            metadata: BTreeMap::new(),
            parsed: BTreeMap::new(),
        }
    }

    fn lines(page: &NextPage) -> Vec<&str> {
        page.entries.iter().map(|e| e.line.as_str()).collect()
    }

    #[test]
    fn entries_sharing_a_nanosecond_across_pages_are_neither_lost_nor_repeated() {
        // Loki holds a@10, b@20, c@20, d@20, e@30; pages of 3.
        let store = [
            entry(10, "x", "a"),
            entry(20, "x", "b"),
            entry(20, "y", "c"),
            entry(20, "z", "d"),
            entry(30, "x", "e"),
        ];
        let ask = |cursor: &Cursor, limit: usize| -> Vec<Entry> {
            store
                .iter()
                .filter(|e| e.ns >= cursor.ns && e.ns < 100)
                .take(limit)
                .cloned()
                .collect()
        };
        let mut cursor = Cursor {
            ns: 0,
            seen: BTreeSet::new(),
        };
        let mut got = Vec::new();
        let mut limit = 3;
        for _ in 0..10 {
            let page = next_page(&cursor, ask(&cursor, limit), limit as u32, 100);
            got.extend(lines(&page).into_iter().map(str::to_string));
            cursor = page.cursor;
            // As `pull` does: stuck at one nanosecond, ask for more.
            match page.outcome {
                Outcome::Stuck => limit *= 2,
                Outcome::Moved if !page.more => break,
                Outcome::Moved => limit = 3,
            }
        }
        assert_eq!(got, ["a", "b", "c", "d", "e"]);
        assert_eq!(
            cursor,
            Cursor {
                ns: 100,
                seen: BTreeSet::new()
            }
        );
    }

    #[test]
    fn a_full_page_at_one_nanosecond_asks_for_more_instead_of_looping() {
        let cursor = Cursor {
            ns: 20,
            seen: [
                entry_hash(&entry(20, "x", "b")),
                entry_hash(&entry(20, "y", "c")),
            ]
            .into(),
        };
        // Loki answers the same two entries again (limit 2): nothing new.
        let page = next_page(
            &cursor,
            vec![entry(20, "x", "b"), entry(20, "y", "c")],
            2,
            100,
        );
        assert!(page.entries.is_empty());
        assert_eq!(page.outcome, Outcome::Stuck);
        assert_eq!(page.cursor, cursor);
        assert!(!page.more, "wait for the next poll, with a larger limit");
    }

    #[test]
    fn an_empty_window_moves_the_cursor_to_its_end_and_entries_past_it_wait() {
        let cursor = Cursor {
            ns: 50,
            seen: BTreeSet::new(),
        };
        let page = next_page(&cursor, Vec::new(), 10, 80);
        assert!(page.entries.is_empty() && !page.more);
        assert_eq!(page.cursor.ns, 80);
        // An inclusive `end`: the entry at 80 is left for the next window.
        let page = next_page(
            &cursor,
            vec![entry(60, "x", "a"), entry(80, "x", "b")],
            10,
            80,
        );
        assert_eq!(lines(&page), ["a"]);
        assert_eq!(page.cursor.ns, 80);
        // Full, but reaching `end`: the window is read, the cursor at its
        // end (not stuck at 50, asking for ever more).
        let page = next_page(
            &cursor,
            vec![entry(80, "x", "b"), entry(80, "y", "c")],
            2,
            80,
        );
        assert!(page.entries.is_empty() && !page.more);
        assert_eq!(page.outcome, Outcome::Moved);
        assert_eq!(page.cursor.ns, 80);
    }

    #[test]
    fn times_out_of_the_nanosecond_range_are_clamped_to_its_right_end() {
        let ago = |days| Utc::now() - chrono::Duration::days(days);
        assert_eq!(nanos(ago(200_000)), 0, "centuries ago: from the start");
        assert_eq!(nanos(ago(30_000)), 0, "before 1970: from the start");
        assert!(nanos(ago(1)) > 0);
        let later = Utc::now() + chrono::Duration::days(200_000);
        assert_eq!(nanos(later), i64::MAX);
    }

    #[test]
    fn reads_labels_and_both_shapes_of_structured_metadata() {
        let body = br#"{"status":"success","data":{"resultType":"streams","result":[
            {"stream":{"job":"api"},"values":[
                ["1700000000000000001","one"],
                ["1700000000000000002","two",{"trace_id":"abc"}],
                ["1700000000000000003","three",{"structuredMetadata":{"pod":"p1"},"parsed":{"level":"error"}}]
            ]}]}}"#;
        let entries = parse_answer(body).unwrap();
        assert_eq!(entries.len(), 3);
        let events: Vec<Event> = entries
            .into_iter()
            .map(|e| e.into_event(Utc::now()))
            .collect();
        let field = |event: &Event, path: &str| {
            let path = vrl::path::parse_value_path(path).unwrap();
            event.get(&path).cloned()
        };
        assert_eq!(field(&events[0], "labels.job"), Some(Value::from("api")));
        assert_eq!(field(&events[0], "message"), Some(Value::from("one")));
        assert_eq!(
            field(&events[1], "structured_metadata.trace_id"),
            Some(Value::from("abc"))
        );
        assert_eq!(
            field(&events[2], "structured_metadata.pod"),
            Some(Value::from("p1"))
        );
        assert_eq!(
            field(&events[2], "labels.level"),
            Some(Value::from("error"))
        );
        assert_eq!(
            field(&events[2], "timestamp"),
            Some(Value::Timestamp(DateTime::from_timestamp_nanos(
                1_700_000_000_000_000_003
            )))
        );
    }

    #[test]
    fn metric_queries_and_errors_are_refused_with_loki_s_reason() {
        let metric = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        let error = parse_answer(metric).unwrap_err().to_string();
        assert!(error.contains("metric query"), "{error}");
        let failed = br#"{"status":"error","error":"parse error at line 1"}"#;
        let error = parse_answer(failed).unwrap_err().to_string();
        assert!(error.contains("parse error at line 1"), "{error}");
        let error = parse_answer(b"<html>").unwrap_err().to_string();
        assert!(error.contains("not its query_range JSON"), "{error}");
    }

    #[test]
    fn rejects_bad_options_and_points_at_them() {
        let endpoint = "endpoint = \"http://127.0.0.1:3100\"\n";
        for (rest, expected, option) in [
            ("query = \" \"", "`query` is empty", "query"),
            (
                "query = \"{a=\\\"b\\\"}\"\nlimit = 0",
                "`limit` is 0",
                "limit",
            ),
            (
                "query = \"{a=\\\"b\\\"}\"\nlimit = 9000",
                "`limit` is 9000",
                "limit",
            ),
            (
                "query = \"{a=\\\"b\\\"}\"\ntenant = \"a\\nb\"",
                "`tenant` holds characters",
                "tenant",
            ),
            (
                "query = \"{a=\\\"b\\\"}\"\ninterval_secs = 0",
                "`interval_secs` must be more than 0",
                "interval_secs",
            ),
        ] {
            let error = build_failure::<LokiQueryConfig>(&format!("{endpoint}{rest}"));
            assert!(error.message.contains(expected), "{rest}: {error}");
            assert_eq!(error.option.as_deref(), Some(option), "{rest}");
        }
        let good = format!("{endpoint}query = \"{{a=\\\"b\\\"}}\"\nsince = \"24h\"");
        let config: LokiQueryConfig = toml::from_str(&good).unwrap();
        assert!(config.build(&test_context(&good)).is_ok());
    }
}
