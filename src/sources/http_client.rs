//! `http_client`: poll any HTTP JSON endpoint, turn its answer into events
//! with a VRL `decode` program, and follow an optional cursor taken from
//! the answer (a VRL `cursor` expression) into the next request.
//!
//! The cursor is what APIs call `next`, `after` or `since`: the source
//! writes it into the request (`{{ cursor }}` in `query` values and in
//! `body`), and while answers bring events and move it, asks again at once,
//! so a backlog is paged through. It is saved by [`crate::sources::pull`]
//! only past answers whose events were delivered, so a restart goes on
//! from the last delivered page.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use toml::Spanned;
use vrl::value::{KeyString, Value};

use crate::components::source::{Source, SourceConfig, SourceContext};
use crate::components::{BuildContext, ComponentFuture};
use crate::diagnostic::BuildError;
use crate::event::{Event, fields};
use crate::http::{AuthConfig, RetryConfig, classify_http, user_headers};
use crate::options::Seconds;
use crate::secret::{Secret, SecretUrl};
use crate::sources::http_poll::{GetError, HttpClient, HttpSettings, Request};
use crate::sources::pull::{self, Mode, Page, Pull};
use crate::vrl_program::{VrlOrigin, VrlRunner, VrlSource, compile};

/// Options of the `http_client` source.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpClientConfig {
    /// The URL to poll: `http://` or `https://`. A secret (API URLs often
    /// carry a token): logs show only `scheme://host/***`.
    #[schemars(extend("x-placeholder" = "http://127.0.0.1:8080/api/events"))]
    endpoint: SecretUrl,
    /// `get` or `post`.
    #[serde(default)]
    method: Method,
    /// Query parameters added to `endpoint`, e.g. `{ after = "{{ cursor }}" }`;
    /// `{{ cursor }}` in a value is replaced by the cursor (URL-encoded).
    #[serde(default)]
    #[schemars(extend("x-default" = "`{}`"))]
    query: BTreeMap<String, String>,
    /// Extra request headers, e.g. `headers.X-Api-Key = "${API_KEY}"`.
    /// Values are secrets, kept out of logs and errors.
    #[serde(default)]
    #[schemars(extend("x-default" = "`{}`"))]
    headers: BTreeMap<String, Secret>,
    /// The request body (with `method = "post"`), sent as
    /// `application/json`; `{{ cursor }}` is replaced by the cursor,
    /// escaped as the inside of a JSON string.
    body: Option<String>,
    /// A VRL program run on the answer (`.` is its parsed JSON) that
    /// leaves in `.` the events: an array (one event per element), an
    /// object (one event) or `null` (none). Unset: the answer itself.
    #[schemars(with = "Option<VrlSource>")]
    decode: Option<Spanned<String>>,
    /// A VRL expression on the answer (run before `decode`) giving the
    /// next cursor: a string or a number; `null` keeps the current one.
    /// Unset: no cursor, every poll asks the same.
    #[schemars(with = "Option<VrlSource>")]
    cursor: Option<Spanned<String>>,
    /// The cursor of the first request, before any was saved; unset: empty.
    cursor_start: Option<String>,
    /// The time between two polls; a plain number is seconds.
    #[serde(default = "default_interval")]
    interval_secs: Seconds,
    /// Give up on one attempt after this long (it is then retried, as
    /// `retry` says); a plain number is seconds.
    #[serde(default = "default_timeout")]
    timeout_secs: Seconds,
    /// The largest answer accepted, in bytes; a larger one fails the poll.
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: usize,
    /// How failed requests are retried.
    #[serde(default)]
    retry: RetryConfig,
    /// Credentials (`bearer` or `basic`).
    auth: Option<AuthConfig>,
}

/// The HTTP methods the source polls with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Method {
    /// `GET`.
    #[default]
    Get,
    /// `POST`, with `body`.
    Post,
}

fn default_interval() -> Seconds {
    Seconds::from_secs(60)
}

fn default_timeout() -> Seconds {
    Seconds::from_secs(30)
}

fn default_max_body_bytes() -> usize {
    16 * 1024 * 1024
}

/// The `source_type` of the events.
const SOURCE_TYPE: &str = "http_client";
/// The placeholder replaced by the cursor.
const CURSOR: &str = "{{ cursor }}";
/// The most answers asked for at once, one after the other, before the
/// source waits for the next interval: an API that ignores the cursor but
/// gives a new one with every answer (a timestamp, a fresh token) would
/// otherwise be asked in a loop, with the same events sent every time.
const MAX_PAGES_AT_ONCE: u32 = 1000;

impl SourceConfig for HttpClientConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        let interval = self.interval_secs.positive("interval_secs")?;
        if self.body.is_some() && self.method == Method::Get {
            return Err(
                BuildError::new("`body` is sent with `method = \"post\"` only").for_option("body"),
            );
        }
        if self.max_body_bytes == 0 {
            return Err(BuildError::new("`max_body_bytes` must be more than 0")
                .for_option("max_body_bytes"));
        }
        let program = |option: &Option<Spanned<String>>, name: &str| {
            option
                .as_ref()
                .map(|source| {
                    compile(
                        source.get_ref(),
                        VrlOrigin::Inline(source.span()),
                        &cx.file,
                        name,
                    )
                    .map(|program| VrlRunner::new(Arc::new(program)))
                })
                .transpose()
        };
        let (decode, cursor) = (
            program(&self.decode, "decode")?,
            program(&self.cursor, "cursor")?,
        );
        let uses_cursor = self.query.values().any(|v| v.contains(CURSOR))
            || self.body.as_deref().is_some_and(|b| b.contains(CURSOR));
        if cursor.is_some() && !uses_cursor {
            return Err(BuildError::new(format!(
                "`cursor` is set but no request option uses it: write `{CURSOR}` in a `query` \
                 value or in `body`"
            ))
            .for_option("cursor"));
        }
        let redactor = self
            .auth
            .as_ref()
            .map_or_else(Default::default, |a| a.redact(Default::default()))
            .secret_url(&self.endpoint);
        let (mut headers, redactor) = user_headers(&self.headers, self.auth.is_some(), redactor)?;
        if self.body.is_some() && !headers.contains_key(CONTENT_TYPE) {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        Ok(Box::new(HttpClientSource {
            puller: Poller {
                url: self.endpoint.url().clone(),
                method: match self.method {
                    Method::Get => reqwest::Method::GET,
                    Method::Post => reqwest::Method::POST,
                },
                query: self.query.clone(),
                headers,
                body: self.body.clone(),
                decode,
                cursor,
                pages_at_once: 0,
                http: HttpSettings::new(
                    self.timeout_secs.positive("timeout_secs")?,
                    &self.retry,
                    self.auth.as_ref(),
                    Duration::MAX,
                    self.max_body_bytes,
                )?
                .with_redactor(redactor),
                client: None,
            },
            initial: self.cursor_start.clone(),
            interval,
        }))
    }
}

struct HttpClientSource {
    puller: Poller,
    initial: Option<String>,
    interval: Duration,
}

impl Source for HttpClientSource {
    fn run(self: Box<Self>, cx: SourceContext) -> ComponentFuture {
        Box::pin(async move {
            let mut puller = self.puller;
            puller.client = Some(puller.http.client(Arc::clone(cx.out.metrics()))?);
            pull::run(puller, self.initial, self.interval, Mode::Follow, cx).await
        })
    }
}

struct Poller {
    url: reqwest::Url,
    method: reqwest::Method,
    query: BTreeMap<String, String>,
    headers: HeaderMap,
    body: Option<String>,
    decode: Option<VrlRunner>,
    cursor: Option<VrlRunner>,
    /// Answers in a row that asked for the next one at once.
    pages_at_once: u32,
    http: HttpSettings,
    client: Option<HttpClient>,
}

impl Pull for Poller {
    type Cursor = Option<String>;

    async fn pull(&mut self, cursor: &Option<String>) -> anyhow::Result<Page<Option<String>>> {
        let current = cursor.as_deref().unwrap_or("");
        let mut url = self.url.clone();
        if !self.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in &self.query {
                pairs.append_pair(name, &value.replace(CURSOR, current));
            }
        }
        let body = self
            .body
            .as_ref()
            .map(|body| Bytes::from(body.replace(CURSOR, &json_string_inside(current))));
        let Some(client) = &self.client else {
            anyhow::bail!("http_client polled before it ran");
        };
        let request = Request {
            method: self.method.clone(),
            url: &url,
            headers: &self.headers,
            body,
        };
        let response = match client
            .send(&request, "application/json", classify_http)
            .await
        {
            Ok(response) => response,
            Err(GetError::Failed(failure)) => anyhow::bail!("the request failed: {failure}"),
            Err(error @ GetError::TooLarge(_)) => anyhow::bail!("{error}"),
        };
        let bytes = response.body.len();
        let answer: serde_json::Value = serde_json::from_slice(&response.body)
            .map_err(|e| anyhow::anyhow!("the answer is not JSON: {e}"))?;
        let mut value = Value::from(answer);
        let next = match &mut self.cursor {
            Some(program) => next_cursor(program, &mut value, cursor)?,
            None => cursor.clone(),
        };
        if let Some(program) = &mut self.decode {
            program
                .run(&mut value)
                .map_err(|e| anyhow::anyhow!("`decode` failed: {e}"))?;
        }
        let events = into_events(value);
        let mut more = self.cursor.is_some() && next != *cursor && !events.is_empty();
        self.pages_at_once = if more { self.pages_at_once + 1 } else { 0 };
        if self.pages_at_once >= MAX_PAGES_AT_ONCE {
            client.metrics().warn_limited(
                "pages_at_once",
                &format_args!(
                    "{MAX_PAGES_AT_ONCE} answers in a row brought events and a new cursor; \
                     waiting for the next interval (does the API honour the cursor?)"
                ),
            );
            self.pages_at_once = 0;
            more = false;
        }
        Ok(Page {
            events,
            bytes,
            cursor: next,
            more,
        })
    }
}

/// The cursor the `cursor` expression gives on `answer`; `null` keeps
/// `current`.
fn next_cursor(
    program: &mut VrlRunner,
    answer: &mut Value,
    current: &Option<String>,
) -> anyhow::Result<Option<String>> {
    let result = program
        .run(answer)
        .map_err(|e| anyhow::anyhow!("`cursor` failed: {e}"))?;
    // A JSON string arrives as `Value::String`, one VRL made as `Bytes`:
    // both are strings.
    if let Some(text) = result.to_str_lossy() {
        return Ok(Some(text.into_owned()));
    }
    Ok(match result {
        Value::Null => current.clone(),
        Value::Integer(n) => Some(n.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Timestamp(t) => Some(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        other => anyhow::bail!(
            "`cursor` gave {}, not a string or a number",
            other.kind_str()
        ),
    })
}

/// The events of a decoded answer: the elements of an array, an object,
/// or nothing for `null`; each stamped with `timestamp` (now) and
/// `source_type` when it has none.
fn into_events(value: Value) -> Vec<Event> {
    let items = match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items,
        other => vec![other],
    };
    let now = Utc::now();
    items
        .into_iter()
        .filter(|item| !item.is_null())
        .map(|item| {
            let mut event = Event::from_value(item);
            if let Value::Object(map) = event.value_mut() {
                map.entry(KeyString::from(fields::TIMESTAMP))
                    .or_insert(Value::Timestamp(now));
                map.entry(KeyString::from(fields::SOURCE_TYPE))
                    .or_insert(Value::from(SOURCE_TYPE));
            }
            event
        })
        .collect()
}

/// `text` escaped to sit inside a JSON string's quotes.
fn json_string_inside(text: &str) -> String {
    let quoted = serde_json::Value::from(text).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::{build_error, test_context};

    #[test]
    fn an_answer_becomes_events_and_its_cursor_the_next_one() {
        let options = "endpoint = \"http://127.0.0.1:1/e\"\nquery = { after = \"{{ cursor }}\" }\n\
                       decode = '. = .items'\ncursor = '.next'";
        let config: HttpClientConfig = toml::from_str(options).unwrap();
        let cx = test_context(options);
        let program = |source: &Spanned<String>, what| {
            VrlRunner::new(Arc::new(
                compile(
                    source.get_ref(),
                    VrlOrigin::Inline(source.span()),
                    &cx.file,
                    what,
                )
                .unwrap(),
            ))
        };
        let mut decode = program(config.decode.as_ref().unwrap(), "decode");
        let mut cursor = program(config.cursor.as_ref().unwrap(), "cursor");
        let answer = serde_json::json!({"items": [{"message": "a"}, {"message": "b", "timestamp": "x"}], "next": 7});
        let mut value = Value::from(answer);
        let next = next_cursor(&mut cursor, &mut value, &None).unwrap();
        assert_eq!(next.as_deref(), Some("7"));
        decode.run(&mut value).unwrap();
        let events = into_events(value);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].get_field("message"), Some(&Value::from("a")));
        assert_eq!(
            events[1].get_field("timestamp"),
            Some(&Value::from("x")),
            "kept"
        );
        assert_eq!(
            events[0].get_field("source_type"),
            Some(&Value::from("http_client"))
        );
        // `null` keeps the cursor; a table is an error.
        let mut value = Value::from(serde_json::json!({"items": []}));
        let kept = next_cursor(&mut cursor, &mut value, &Some("7".into())).unwrap();
        assert_eq!(kept.as_deref(), Some("7"));
        let mut value = Value::from(serde_json::json!({"next": {"a": 1}}));
        let error = next_cursor(&mut cursor, &mut value, &None).unwrap_err();
        assert!(
            error.to_string().contains("not a string or a number"),
            "{error}"
        );
        assert!(into_events(Value::Null).is_empty());
    }

    #[test]
    fn a_string_cursor_from_the_answer_or_made_by_vrl_is_taken() {
        let cx = test_context("");
        for (expression, expected) in [
            (".next", "abc"),
            ("upcase(string!(.next))", "ABC"),
            ("to_string!(.n)", "7"),
        ] {
            let program = compile(expression, VrlOrigin::Inline(0..0), &cx.file, "cursor")
                .unwrap_or_else(|e| panic!("{expression}: {e}"));
            let mut runner = VrlRunner::new(Arc::new(program));
            let mut value = Value::from(serde_json::json!({"next": "abc", "n": 7}));
            let next = next_cursor(&mut runner, &mut value, &None)
                .unwrap_or_else(|e| panic!("{expression}: {e}"));
            assert_eq!(next.as_deref(), Some(expected), "{expression}");
        }
    }

    #[test]
    fn a_cursor_in_a_json_body_is_escaped() {
        assert_eq!(json_string_inside("a\"b\\c"), "a\\\"b\\\\c");
    }

    #[test]
    fn rejects_options_that_cannot_work_and_points_at_them() {
        let endpoint = "endpoint = \"http://127.0.0.1:1/e\"\n";
        for (rest, expected) in [
            (
                "body = \"{}\"",
                "`body` is sent with `method = \"post\"` only",
            ),
            ("cursor = '.next'", "no request option uses it"),
            ("decode = '. = '", "VRL error in `decode`"),
            ("interval_secs = 0", "`interval_secs` must be more than 0"),
            (
                "headers.\"bad header\" = \"x\"",
                "is not a valid header name",
            ),
        ] {
            let error = build_error::<HttpClientConfig>(&format!("{endpoint}{rest}"));
            assert!(error.contains(expected), "{rest}: {error}");
        }
    }
}
