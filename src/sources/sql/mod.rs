//! `sql`: polls a query with a cursor parameter (`$1`) against PostgreSQL
//! or SQLite; every row is a log event, and the cursor column's last value
//! delivered is the next `$1`.
//!
//! The loop, the acknowledgements and the cursor's persistence are
//! [`super::pull`]'s; this module runs the query, decodes rows
//! ([`rows`]) and moves the cursor over them ([`cursor`]), skipping rows
//! delivered already at the cursor's value (queries on timestamps, which
//! are not unique, are written `>= $1`).
//!
//! The connection URL may hold a password: it is a [`Secret`], and every
//! error passes through a [`Redactor`] that knows the URL and its password
//! before it is logged.

mod cursor;
mod rows;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection as _};

use self::cursor::{CursorValue, Row, SqlCursor, advance, rfc3339};
use crate::components::source::{Source, SourceConfig, SourceContext, TimeWindow};
use crate::components::{BuildContext, ComponentFuture};
use crate::diagnostic::BuildError;
use crate::internal_events::ComponentMetrics;
use crate::options::Seconds;
use crate::secret::{Redactor, Secret};
use crate::sources::pull::{self, Page, Pull};

/// Options of the `sql` source.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlConfig {
    /// The database: `postgres://user:password@host:5432/db` (or
    /// `postgresql://`; add `?sslmode=require` for TLS) or
    /// `sqlite:///absolute/path.db`, `sqlite://relative/path.db` (relative
    /// to the working directory). It is a secret: write the password as
    /// `${ENV_VAR}`; it is never logged.
    #[schemars(extend(
        "x-placeholder" = "postgres://howl:${PGPASSWORD:-change-me}@127.0.0.1:5432/app"
    ))]
    url: Secret,
    /// The query, with the cursor as its parameter: `$1` (PostgreSQL; also
    /// SQLite) or `?` (SQLite). It must order its rows by the cursor column
    /// and should have a `LIMIT`, e.g. `SELECT id, ts AS timestamp, msg AS
    /// message FROM app_log WHERE id > $1 ORDER BY id LIMIT 1000`.
    #[schemars(extend(
        "x-placeholder" = "SELECT id, msg AS message FROM app_log WHERE id > $1 ORDER BY id LIMIT 1000"
    ))]
    query: String,
    /// The column of the result whose value in the last row delivered is
    /// the next `$1`: an integer, text or timestamp column.
    #[schemars(extend("x-placeholder" = "id"))]
    cursor_column: String,
    /// The first `$1`, when no cursor was saved: an integer (`0`), a string,
    /// or an RFC 3339 timestamp string (`"2026-01-01T00:00:00Z"`), which
    /// makes the cursor a timestamp.
    #[schemars(extend("x-placeholder" = 0))]
    cursor_start: CursorStart,
    /// The time between two polls when the last one found nothing new (a
    /// poll that found rows asks again at once); a plain number is seconds.
    #[serde(default = "default_interval")]
    interval_secs: Seconds,
    /// Give up on a query after this long: the poll is an error, the
    /// connection is closed (PostgreSQL is also told to cancel it, as its
    /// `statement_timeout`), and the same cursor is asked again at the next
    /// interval; a plain number is seconds.
    #[serde(default = "default_timeout")]
    timeout_secs: Seconds,
}

/// `cursor_start`: an integer or a string (a TOML date-time, unquoted, is
/// taken as its text).
#[derive(Debug, Clone, JsonSchema)]
#[serde(untagged)]
enum CursorStart {
    Integer(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for CursorStart {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = CursorStart;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "an integer, a string, or an RFC 3339 timestamp (\"2026-01-01T00:00:00Z\")",
                )
            }

            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<CursorStart, E> {
                Ok(CursorStart::Integer(value))
            }

            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<CursorStart, E> {
                i64::try_from(value)
                    .map(CursorStart::Integer)
                    .map_err(|_| E::custom("the integer is too large for a 64-bit cursor"))
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<CursorStart, E> {
                Ok(CursorStart::Text(value.to_string()))
            }

            // An unquoted TOML date-time arrives as a one-entry table.
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<CursorStart, A::Error> {
                let entry: Option<(String, String)> = map.next_entry()?;
                match entry {
                    Some((_, datetime)) => Ok(CursorStart::Text(datetime.to_string())),
                    None => Err(serde::de::Error::custom("expected a date-time")),
                }
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

fn default_interval() -> Seconds {
    Seconds::from_secs(10)
}

fn default_timeout() -> Seconds {
    Seconds::from_secs(60)
}

/// The `source_type` of the events.
const SOURCE_TYPE: &str = "sql";
/// Give up on connecting after this long; the poll is then an error,
/// tried again next interval.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Which database, with its connection options (parsed, not connected).
#[derive(Clone)]
enum Database {
    Postgres(PgConnectOptions),
    Sqlite(SqliteConnectOptions),
}

impl Database {
    /// Parses the URL; errors never repeat it. sqlx's own statement logs
    /// are off: its "slow statement" warning, after a second, named no
    /// source and came before howl's own error for the same query.
    fn parse(url: &str, redactor: &Redactor) -> Result<Self, BuildError> {
        let hidden = "(the URL is not shown: it may hold a password)";
        let refused = |error: sqlx::Error| {
            BuildError::new(format!(
                "`url` is not a valid connection URL: {}; a password holding `@`, `:`, `/`, \
                 `?`, `#` or `%` must be percent-encoded (`%40`, `%3A`, `%2F`, `%3F`, `%23`, \
                 `%25`) {hidden}",
                redactor.redact(&error.to_string())
            ))
            .for_option("url")
        };
        let lower = url.trim_start().to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(refused)?;
            let options = match options.get_application_name() {
                Some(_) => options,
                None => options.application_name("howl"),
            };
            Ok(Self::Postgres(options.disable_statement_logging()))
        } else if lower.starts_with("sqlite:") {
            Ok(Self::Sqlite(
                SqliteConnectOptions::from_str(url)
                    .map_err(refused)?
                    .disable_statement_logging(),
            ))
        } else {
            Err(BuildError::new(format!(
                "`url` must start with `postgres://`, `postgresql://` or `sqlite:` {hidden}"
            ))
            .for_option("url"))
        }
    }
}

/// The secrets of a connection URL: the whole URL, and its password (in
/// the user info or a `password=` parameter) as written and
/// percent-decoded.
fn url_redactor(url: &str) -> Redactor {
    let mut redactor = Redactor::default().secret(url);
    if let Ok(parsed) = reqwest::Url::parse(url) {
        if let Some(password) = parsed.password() {
            redactor = redactor
                .credentials(parsed.username(), password)
                .secret(&percent_decode(password));
        }
        for (key, value) in parsed.query_pairs() {
            if key == "password" {
                redactor = redactor.secret(&value);
            }
        }
    }
    redactor
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The literal `LIMIT n` that ends a query, if it has one: a page that
/// long, all delivered already, is a cursor that cannot move. A query
/// with no `LIMIT` (nor `FETCH FIRST`) at all is `usize::MAX`: its answer
/// holds every row after the cursor. `None`: a limit of unknown size.
fn query_limit(query: &str) -> Option<usize> {
    static ANY: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(?i)\b(limit|fetch)\b").expect("a valid regex")
    });
    if !ANY.is_match(query) {
        return Some(usize::MAX);
    }
    static LIMIT: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(?i)\blimit\s+(\d+)(\s+offset\s+\d+)?\s*;?\s*$").expect("a valid regex")
    });
    LIMIT
        .captures(query)
        .and_then(|c| c.get(1))
        .and_then(|n| n.as_str().parse().ok())
}

impl SqlConfig {
    /// Checks the options: the database, and the query with its cursor.
    fn checked(&self) -> Result<Checked, BuildError> {
        let interval = self.interval_secs.positive("interval_secs")?;
        let timeout = self.timeout_secs.positive("timeout_secs")?;
        let redactor = url_redactor(self.url.expose());
        let database = Database::parse(self.url.expose(), &redactor)?;
        let query = self.query.trim();
        if query.is_empty() {
            return Err(BuildError::new(
                "`query` is empty: give a query with the cursor as `$1`, e.g. `SELECT id, msg AS \
                 message FROM app_log WHERE id > $1 ORDER BY id LIMIT 1000`",
            )
            .for_option("query"));
        }
        let dollar = regex::Regex::new(r"\$1\b").expect("a valid regex");
        let has_placeholder = match database {
            Database::Postgres(_) => dollar.is_match(query),
            Database::Sqlite(_) => dollar.is_match(query) || query.contains('?'),
        };
        if !has_placeholder {
            let written = match database {
                Database::Postgres(_) => "`$1`",
                Database::Sqlite(_) => "`?` or `$1`",
            };
            return Err(BuildError::new(format!(
                "`query` has no cursor parameter: write {written} where the last `{}` \
                 delivered goes, e.g. `WHERE {} > $1 ORDER BY {} LIMIT 1000`",
                self.cursor_column, self.cursor_column, self.cursor_column
            ))
            .for_option("query"));
        }
        if self.cursor_column.trim().is_empty() {
            return Err(BuildError::new(
                "`cursor_column` is empty: name the column whose last value is the next `$1`",
            )
            .for_option("cursor_column"));
        }
        let start = match &self.cursor_start {
            CursorStart::Integer(value) => CursorValue::Integer(*value),
            CursorStart::Text(text) => match rfc3339::parse(text) {
                Some(at) => CursorValue::Timestamp(at),
                None => CursorValue::Text(text.clone()),
            },
        };
        Ok(Checked {
            database,
            redactor,
            interval,
            timeout,
            start,
        })
    }

    fn source(&self, checked: Checked, window: Option<TimeWindow>) -> Box<dyn Source> {
        let (initial, until, mode) = match window {
            Some(window) => (
                CursorValue::Timestamp(window.since),
                Some(window.until),
                pull::Mode::Window,
            ),
            None => (checked.start, None, pull::Mode::Follow),
        };
        Box::new(Sql {
            database: checked.database,
            redactor: Arc::new(checked.redactor),
            query: self.query.trim().to_string(),
            column: self.cursor_column.trim().to_string(),
            limit: query_limit(&self.query),
            initial: SqlCursor::at(initial),
            until,
            mode,
            interval: checked.interval,
            timeout: checked.timeout,
        })
    }
}

struct Checked {
    database: Database,
    redactor: Redactor,
    interval: Duration,
    timeout: Duration,
    start: CursorValue,
}

impl SourceConfig for SqlConfig {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        let checked = self.checked()?;
        Ok(self.source(checked, None))
    }

    fn build_window(
        &self,
        _cx: &BuildContext,
        window: TimeWindow,
    ) -> Option<Result<Box<dyn Source>, BuildError>> {
        let checked = match self.checked() {
            Ok(checked) => checked,
            Err(error) => return Some(Err(error)),
        };
        if !matches!(checked.start, CursorValue::Timestamp(_)) {
            return Some(Err(BuildError::new(format!(
                "this sql source cannot read a time window: its cursor `{}` is not a timestamp \
                 (`cursor_start` is not an RFC 3339 timestamp such as \
                 \"2026-01-01T00:00:00Z\"); only a source whose cursor is a timestamp column can \
                 start at `--since`",
                self.cursor_column.trim()
            ))
            .for_option("cursor_start")));
        }
        Some(Ok(self.source(checked, Some(window))))
    }
}

struct Sql {
    database: Database,
    redactor: Arc<Redactor>,
    query: String,
    column: String,
    limit: Option<usize>,
    initial: SqlCursor,
    until: Option<DateTime<Utc>>,
    mode: pull::Mode,
    interval: Duration,
    timeout: Duration,
}

impl Source for Sql {
    fn run(self: Box<Self>, cx: SourceContext) -> ComponentFuture {
        Box::pin(async move {
            let this = *self;
            let poller = Poller {
                database: this.database,
                connection: None,
                redactor: this.redactor,
                query: this.query,
                column: this.column,
                limit: this.limit,
                until: this.until,
                timeout: this.timeout,
                metrics: Arc::clone(cx.out.metrics()),
            };
            pull::run(poller, this.initial, this.interval, this.mode, cx).await
        })
    }
}

/// An open connection.
enum Connection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

struct Poller {
    database: Database,
    /// One connection, opened at the first poll, checked (ping) before
    /// each query, and opened again when it broke.
    connection: Option<Connection>,
    redactor: Arc<Redactor>,
    query: String,
    column: String,
    limit: Option<usize>,
    until: Option<DateTime<Utc>>,
    /// The longest wait for a query's rows (`timeout_secs`).
    timeout: Duration,
    metrics: Arc<ComponentMetrics>,
}

impl Poller {
    /// The connection, opened (again) when there is none or it no longer
    /// answers (within [`CONNECT_TIMEOUT`]: a connection whose peer
    /// vanished without closing it would hang forever). The error says why,
    /// secrets not yet hidden.
    async fn connection(&mut self) -> Result<&mut Connection, String> {
        let ping = async {
            match &mut self.connection {
                Some(Connection::Postgres(connection)) => connection.ping().await.is_ok(),
                Some(Connection::Sqlite(connection)) => connection.ping().await.is_ok(),
                None => false,
            }
        };
        let alive = tokio::time::timeout(CONNECT_TIMEOUT, ping)
            .await
            .unwrap_or(false);
        if !alive {
            self.connection = None;
            let timeout = self.timeout;
            let connect = async {
                Ok::<_, sqlx::Error>(match &self.database {
                    Database::Postgres(options) => {
                        Connection::Postgres(connect_postgres(options, timeout).await?)
                    }
                    Database::Sqlite(options) => Connection::Sqlite(options.connect().await?),
                })
            };
            let connection = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
                Ok(Ok(connection)) => connection,
                Ok(Err(error)) => {
                    return Err(match &self.database {
                        Database::Postgres(_) => {
                            format!("cannot connect to the database: {error}")
                        }
                        // Which file, as the path may not be the one meant
                        // (a relative one is from howl's working directory).
                        Database::Sqlite(options) => {
                            let path = options.get_filename();
                            let from = match std::env::current_dir() {
                                Ok(cwd) if path.is_relative() => {
                                    format!(" (from the working directory {})", cwd.display())
                                }
                                _ => String::new(),
                            };
                            format!(
                                "cannot open the SQLite database {}{from}: {error} (the file \
                                 must exist)",
                                path.display()
                            )
                        }
                    });
                }
                Err(_) => {
                    return Err(format!(
                        "cannot connect to the database: no answer within {}s",
                        CONNECT_TIMEOUT.as_secs()
                    ));
                }
            };
            self.connection = Some(connection);
        }
        self.connection
            .as_mut()
            .ok_or_else(|| "no connection to the database".to_string())
    }

    /// Runs the query from `cursor`: the decoded rows (cut short at
    /// [`MAX_PAGE_ROWS`] or [`MAX_PAGE_BYTES`]), or the error with the URL's
    /// secrets hidden. Waits at most `timeout` for the rows.
    async fn fetch(&mut self, cursor: &CursorValue) -> anyhow::Result<Fetched> {
        let timeout = self.timeout;
        let query = self.query.clone();
        let fetched = match self.connection().await {
            Err(message) => Err(message),
            Ok(connection) => {
                match tokio::time::timeout(timeout, read_page(connection, &query, cursor)).await {
                    Ok(Ok(fetched)) => Ok(fetched),
                    Ok(Err(error)) => Err(format!(
                        "the query failed (from `$1` = {cursor}): {}",
                        describe_error(&error, &query, cursor)
                    )),
                    Err(_) => Err(format!(
                        "the query gave no answer within {}s (timeout_secs; from `$1` = \
                         {cursor}): the connection is closed and opened again at the next poll",
                        timeout.as_secs_f64()
                    )),
                }
            }
        };
        // A query given up on, or whose rows were not all read, leaves the
        // connection in the middle of an answer: closing it stops the
        // server (rather than reading the rest of the answer at the next
        // poll, or waiting for a query that does not end). After a failed
        // query the next poll starts afresh too, with nothing of the
        // session's state that may have caused it.
        if !matches!(fetched, Ok(Fetched { cut: false, .. })) {
            self.connection = None;
        }
        fetched.map_err(|message| anyhow::anyhow!("{}", self.redactor.redact(&message)))
    }
}

/// Connects to PostgreSQL, and has the server cancel a query after
/// `timeout` too, rather than go on with it (or wait on its lock) once howl
/// gave up. Set by a statement, not a startup `options`, which PgBouncer
/// refuses; where it fails (another server speaking PostgreSQL's protocol),
/// howl's own limit still holds. At least 1 ms: 0 means none.
async fn connect_postgres(
    options: &PgConnectOptions,
    timeout: Duration,
) -> Result<PgConnection, sqlx::Error> {
    use sqlx::Executor as _;
    let mut connection = options.connect().await?;
    let set = format!("SET statement_timeout = {}", timeout.as_millis().max(1));
    if let Err(error) = connection.execute(set.as_str()).await {
        tracing::debug!("cannot set statement_timeout: {error}");
    }
    Ok(connection)
}

/// The most rows of one answer read into memory: a query without a `LIMIT`
/// (or with a huge one) is read a page of this many rows at a time.
const MAX_PAGE_ROWS: usize = 100_000;
/// The most bytes of one answer read into memory (at least one row is):
/// a page of wide rows (50 MB texts) stops at the row that passes this.
const MAX_PAGE_BYTES: usize = 16 << 20;

/// The rows of one answer, decoded.
struct Fetched {
    rows: Vec<rows::Decoded>,
    /// True when the answer was cut at [`MAX_PAGE_ROWS`] or
    /// [`MAX_PAGE_BYTES`]: more rows may follow.
    cut: bool,
}

/// Runs `query` from `cursor` on `connection` and decodes its rows, until
/// the answer ends or reaches a page's bounds. The statement is not kept
/// prepared on the connection: PostgreSQL refuses to run a prepared
/// statement whose result types changed (`cached plan must not change
/// result type`, after an `ALTER TABLE`), which would fail every poll
/// until the connection closed.
async fn read_page(
    connection: &mut Connection,
    query: &str,
    cursor: &CursorValue,
) -> Result<Fetched, sqlx::Error> {
    match connection {
        Connection::Postgres(connection) => {
            let query = sqlx::query(query).persistent(false);
            let query = match cursor {
                CursorValue::Integer(value) => query.bind(*value),
                CursorValue::Text(value) => query.bind(value.clone()),
                CursorValue::Timestamp(at) => query.bind(*at),
            };
            collect(query.fetch(connection), rows::pg_row).await
        }
        Connection::Sqlite(connection) => {
            // SQLite keeps timestamps as text and compares text as text:
            // bind them in SQLite's own form, what `CURRENT_TIMESTAMP` and
            // `datetime()` write, so that `ts >= $1` on such a column
            // compares in time (and can use an index). That form sorts as
            // time does, which RFC 3339 with a varying fraction (`…00Z`
            // after `…00.5Z`) does not.
            let query = sqlx::query(query).persistent(false);
            let query = match cursor {
                CursorValue::Integer(value) => query.bind(*value),
                CursorValue::Text(value) => query.bind(value.clone()),
                CursorValue::Timestamp(at) => query.bind(sqlite_text(at)),
            };
            collect(query.fetch(connection), rows::sqlite_row).await
        }
    }
}

async fn collect<R>(
    mut stream: impl futures_util::Stream<Item = Result<R, sqlx::Error>> + Unpin,
    decode: fn(&R) -> rows::Decoded,
) -> Result<Fetched, sqlx::Error> {
    use futures_util::TryStreamExt as _;
    let mut rows = Vec::new();
    let mut bytes = 0;
    while let Some(row) = stream.try_next().await? {
        let decoded = decode(&row);
        bytes += decoded.bytes;
        rows.push(decoded);
        if rows.len() >= MAX_PAGE_ROWS || bytes >= MAX_PAGE_BYTES {
            return Ok(Fetched { rows, cut: true });
        }
    }
    Ok(Fetched { rows, cut: false })
}

/// A failed query's error, with what PostgreSQL adds to it: where in the
/// query (a syntax error), its detail and hint, and, when the error is
/// about types, what `$1` was sent as.
fn describe_error(error: &sqlx::Error, query: &str, cursor: &CursorValue) -> String {
    use sqlx::postgres::{PgDatabaseError, PgErrorPosition};
    let mut text = error.to_string();
    let Some(pg) = error
        .as_database_error()
        .and_then(|error| error.try_downcast_ref::<PgDatabaseError>())
    else {
        return text;
    };
    if let Some(PgErrorPosition::Original(at)) = pg.position() {
        let near: String = query.chars().skip(at.saturating_sub(1)).take(40).collect();
        text.push_str(&format!(" (at character {at} of the query: `{near}`)"));
    }
    if let Some(detail) = pg.detail() {
        text.push_str(&format!("; {detail}"));
    }
    if let Some(hint) = pg.hint() {
        text.push_str(&format!("; hint: {hint}"));
    }
    // undefined_function (no operator for these types), datatype_mismatch,
    // invalid_text_representation, invalid_datetime_format.
    if matches!(pg.code(), "42883" | "42804" | "22P02" | "22007") {
        let sent = match cursor {
            CursorValue::Integer(_) => "a bigint",
            CursorValue::Text(_) => "text",
            CursorValue::Timestamp(_) => "a timestamptz",
        };
        text.push_str(&format!(
            "; `$1` is the cursor, sent as {sent}: `cursor_start` (or the cursor saved) must \
             be of the type of the cursor column"
        ));
    }
    text
}

impl Pull for Poller {
    type Cursor = SqlCursor;

    async fn pull(&mut self, cursor: &SqlCursor) -> anyhow::Result<Page<SqlCursor>> {
        let Fetched { rows: decoded, cut } = self.fetch(&cursor.value).await?;
        let now = Utc::now();
        let mut bytes = 0;
        let returned = decoded.len();
        let mut page = Vec::with_capacity(returned);
        for row in decoded {
            bytes += row.bytes;
            for (column, type_name) in &row.unknown {
                self.metrics.warn_limited(
                    "sql_unknown_type",
                    &format_args!(
                        "column `{column}` is of type {type_name}, and its value could not be \
                         read (a type with no mapping that is not text, or a value out of \
                         range, such as a year past 262143): its field is null (cast it in the \
                         query, e.g. `{column}::text`)"
                    ),
                );
            }
            let value = rows::cursor_value(&row.fields, &self.column, &cursor.value)
                .map_err(|error| anyhow::anyhow!("{}", error.describe(&self.column)))?;
            let hash = rows::hash_fields(&row.fields);
            let (event, bad_timestamp) = rows::to_event(row.fields, now, SOURCE_TYPE);
            if bad_timestamp.is_some() {
                self.metrics.warn_limited(
                    "sql_bad_timestamp",
                    &format_args!(
                        "column `timestamp` is neither a timestamp nor RFC 3339 text: the event \
                         is stamped with the time it was read"
                    ),
                );
            }
            page.push(Row {
                event,
                cursor: value,
                hash,
            });
        }
        // A page cut short is as full as one at the query's LIMIT.
        let limit = if cut { Some(returned) } else { self.limit };
        let advanced = advance(cursor, page, self.until, limit);
        if advanced.forgotten > 0 {
            self.metrics.warn_limited(
                "sql_rows_changed",
                &format_args!(
                    "{} rows delivered at `{}` = {} are not in the answer any more as they were \
                     (updated, deleted, or with a column that changes at every query, such as \
                     `now()` or `random()`): rows at the cursor's value that change are \
                     delivered again; select only stored columns",
                    advanced.forgotten, self.column, cursor.value
                ),
            );
        }
        if let Some((before, after)) = &advanced.disordered {
            anyhow::bail!(
                "the rows are not in the order of `{column}` (cursor_column): a row with \
                 `{column}` = {after} came after {before}, so the cursor would go back and rows \
                 be read again or skipped; end the query with `ORDER BY {column}` (ascending)",
                column = self.column,
            );
        }
        if advanced.stuck {
            let bound = if cut {
                format!(
                    "the most howl reads at once: {MAX_PAGE_ROWS} rows or {MAX_PAGE_BYTES} bytes"
                )
            } else {
                "its LIMIT".to_string()
            };
            anyhow::bail!(
                "no progress: all {returned} rows of the answer ({bound}) have `{}` = {} and \
                 were delivered already, so the rows after them cannot be read; raise the \
                 query's LIMIT above the number of rows that share one `{}` value",
                self.column,
                cursor.value,
                self.column
            );
        }
        Ok(Page {
            events: advanced.events,
            bytes,
            cursor: advanced.cursor,
            more: advanced.more,
        })
    }
}

/// A timestamp in SQLite's text form, UTC: `2026-03-01 10:00:00`, with
/// the fraction only when there is one (`2026-03-01 10:00:00.25`).
fn sqlite_text(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.f").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_timestamps_are_sent_in_sqlite_s_text_form_which_sorts_as_time() {
        let at = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc)
        };
        assert_eq!(
            sqlite_text(&at("2026-03-01T10:00:00Z")),
            "2026-03-01 10:00:00"
        );
        let times = [
            at("2026-03-01T10:00:00Z"),
            at("2026-03-01T10:00:00.25Z"),
            at("2026-03-01T10:00:00.5Z"),
            at("2026-03-01T10:00:01Z"),
        ];
        let texts: Vec<String> = times.iter().map(sqlite_text).collect();
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(texts, sorted, "text order is time order");
        assert_eq!(texts[1], "2026-03-01 10:00:00.250");
    }
    use crate::sources::{build_failure, parse_error, test_context};

    const PG: &str = "url = \"postgres://howl:pw@127.0.0.1:5432/app\"\n";
    const LITE: &str = "url = \"sqlite://log.db\"\n";

    #[test]
    fn refuses_bad_options_and_points_at_them() {
        for (options, expected, option) in [
            (
                format!("{PG}query = \" \"\ncursor_column = \"id\"\ncursor_start = 0"),
                "`query` is empty",
                "query",
            ),
            (
                format!(
                    "{PG}query = \"SELECT id FROM t WHERE id > ? LIMIT 9\"\n\
                     cursor_column = \"id\"\ncursor_start = 0"
                ),
                "`query` has no cursor parameter: write `$1`",
                "query",
            ),
            (
                format!(
                    "{LITE}query = \"SELECT id FROM t WHERE id > 1\"\n\
                     cursor_column = \"id\"\ncursor_start = 0"
                ),
                "write `?` or `$1`",
                "query",
            ),
            (
                format!(
                    "{PG}query = \"SELECT id FROM t WHERE id > $10\"\n\
                     cursor_column = \"id\"\ncursor_start = 0"
                ),
                "no cursor parameter",
                "query",
            ),
            (
                format!("{PG}query = \"SELECT $1\"\ncursor_column = \"\"\ncursor_start = 0"),
                "`cursor_column` is empty",
                "cursor_column",
            ),
            (
                "url = \"mysql://howl:hunter2@db/app\"\nquery = \"SELECT $1\"\n\
                 cursor_column = \"id\"\ncursor_start = 0"
                    .to_string(),
                "`url` must start with `postgres://`, `postgresql://` or `sqlite:`",
                "url",
            ),
            (
                format!(
                    "{PG}query = \"SELECT $1\"\ncursor_column = \"id\"\ncursor_start = 0\n\
                     interval_secs = 0"
                ),
                "`interval_secs` must be more than 0",
                "interval_secs",
            ),
            (
                format!(
                    "{PG}query = \"SELECT $1\"\ncursor_column = \"id\"\ncursor_start = 0\n\
                     timeout_secs = 0"
                ),
                "`timeout_secs` must be more than 0",
                "timeout_secs",
            ),
        ] {
            let error = build_failure::<SqlConfig>(&options);
            assert!(error.message.contains(expected), "{options}: {error}");
            assert_eq!(error.option.as_deref(), Some(option), "{options}");
            assert!(!error.message.contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn a_bad_url_is_refused_without_showing_it() {
        let options = "url = \"postgres://howl:hunter2@[::1/app?sslmode=sometimes\"\n\
                       query = \"SELECT $1\"\ncursor_column = \"id\"\ncursor_start = 0";
        let error = build_failure::<SqlConfig>(options);
        assert_eq!(error.option.as_deref(), Some("url"));
        assert!(
            error.message.contains("not a valid connection URL"),
            "{error}"
        );
        assert!(!error.message.contains("hunter2"), "{error}");
        // A password with a `/` and an `@`, not percent-encoded: the error
        // says how to write it, and shows none of it.
        let options = "url = \"postgres://howl:Secr3t/Pa@ss:word@127.0.0.1:5432/app\"\n\
                       query = \"SELECT $1\"\ncursor_column = \"id\"\ncursor_start = 0";
        let error = build_failure::<SqlConfig>(options);
        assert!(
            error
                .message
                .contains("must be percent-encoded (`%40`, `%3A`, `%2F`"),
            "{error}"
        );
        for piece in ["Secr3t", "Pa@ss", "ss:word"] {
            assert!(!error.message.contains(piece), "{error}");
        }
        // The debug form of the options hides it too.
        let config: SqlConfig = toml::from_str(options).unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
        let (message, _) = parse_error::<SqlConfig>(
            "url = 5\nquery = \"SELECT $1\"\ncursor_column = \"id\"\ncursor_start = 0",
        );
        assert!(message.contains("expected a string"), "{message}");
    }

    #[test]
    fn builds_postgres_and_sqlite_sources_with_their_placeholders() {
        for options in [
            format!(
                "{PG}query = \"SELECT id FROM t WHERE id > $1 ORDER BY id LIMIT 10\"\n\
                 cursor_column = \"id\"\ncursor_start = 0\ninterval_secs = \"1m\""
            ),
            "url = \"postgresql://localhost/app?sslmode=require\"\n\
             query = \"SELECT ts FROM t WHERE ts >= $1 ORDER BY ts\"\n\
             cursor_column = \"ts\"\ncursor_start = \"2026-01-01T00:00:00Z\""
                .to_string(),
            format!(
                "{LITE}query = \"SELECT id FROM t WHERE id > ? ORDER BY id\"\n\
                 cursor_column = \"id\"\ncursor_start = 0"
            ),
            "url = \"sqlite:///var/lib/app/log.db\"\n\
             query = \"SELECT id FROM t WHERE id > $1\"\ncursor_column = \"id\"\n\
             cursor_start = \"a\""
                .to_string(),
        ] {
            let config: SqlConfig = toml::from_str(&options).unwrap();
            assert!(config.build(&test_context(&options)).is_ok(), "{options}");
        }
        let config: SqlConfig = toml::from_str(&format!(
            "{PG}query = \"SELECT $1\"\ncursor_column = \"id\"\ncursor_start = 0"
        ))
        .unwrap();
        assert_eq!(config.interval_secs.get(), Duration::from_secs(10));
    }

    #[test]
    fn cursor_start_takes_integers_strings_and_toml_date_times() {
        let start = |value: &str| {
            let config: SqlConfig = toml::from_str(&format!(
                "{PG}query = \"SELECT $1\"\ncursor_column = \"id\"\ncursor_start = {value}"
            ))
            .unwrap();
            config.checked().map(|checked| checked.start).unwrap()
        };
        assert_eq!(start("-5"), CursorValue::Integer(-5));
        assert_eq!(start("\"abc\""), CursorValue::Text("abc".into()));
        let new_year = CursorValue::Timestamp(DateTime::from_timestamp(1_767_225_600, 0).unwrap());
        assert_eq!(start("\"2026-01-01T00:00:00Z\""), new_year);
        assert_eq!(start("2026-01-01T01:00:00+01:00"), new_year);
        let (message, at) = parse_error::<SqlConfig>(&format!(
            "{PG}query = \"SELECT $1\"\ncursor_column = \"id\"\ncursor_start = 1.5"
        ));
        assert!(
            message.contains("an integer, a string, or an RFC 3339 timestamp"),
            "{message}"
        );
        assert_eq!(at, "1.5");
    }

    #[test]
    fn only_a_timestamp_cursor_reads_a_time_window() {
        let window = TimeWindow {
            since: DateTime::from_timestamp(0, 0).unwrap(),
            until: DateTime::from_timestamp(60, 0).unwrap(),
        };
        let options = format!(
            "{PG}query = \"SELECT id FROM t WHERE id > $1\"\ncursor_column = \"id\"\n\
             cursor_start = 0"
        );
        let config: SqlConfig = toml::from_str(&options).unwrap();
        let Some(Err(error)) = config.build_window(&test_context(&options), window) else {
            panic!("an integer cursor read a window");
        };
        assert!(
            error
                .message
                .contains("cannot read a time window: its cursor `id` is not a timestamp")
        );
        assert_eq!(error.option.as_deref(), Some("cursor_start"));
        let options = format!(
            "{PG}query = \"SELECT ts FROM t WHERE ts >= $1 ORDER BY ts\"\n\
             cursor_column = \"ts\"\ncursor_start = \"2026-01-01T00:00:00+02:00\""
        );
        let config: SqlConfig = toml::from_str(&options).unwrap();
        assert!(matches!(
            config.build_window(&test_context(&options), window),
            Some(Ok(_))
        ));
    }

    /// Runs a built source until it ends by itself (a window) and returns
    /// the `id`s of its events.
    async fn run_to_end(source: Box<dyn Source>, data_dir: &std::path::Path) -> Vec<i64> {
        use crate::component_key::{ComponentKey, ComponentKind};
        let key = ComponentKey::new(ComponentKind::Source, "s", "sql");
        let (cx, mut rx) = crate::sources::test_source_context(key, data_dir, Default::default());
        let running = tokio::spawn(source.run(cx));
        let mut ids = Vec::new();
        let collect = async {
            while let Some(batch) = rx.recv().await {
                for mut event in batch {
                    ids.push(event.get_field("id").and_then(|v| v.as_integer()).unwrap());
                    event.finalize(crate::event::EventStatus::Delivered);
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), collect)
            .await
            .expect("the window source ended");
        running.await.unwrap().unwrap();
        ids
    }

    #[tokio::test]
    async fn a_window_reads_from_since_to_until_in_sqlite_and_saves_no_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let url = format!("sqlite://{}", path.display());
        let db = sqlx::SqlitePool::connect_with(
            SqliteConnectOptions::from_str(&url)
                .unwrap()
                .create_if_missing(true),
        )
        .await
        .unwrap();
        sqlx::query("CREATE TABLE log (id INTEGER, ts TEXT, msg TEXT)")
            .execute(&db)
            .await
            .unwrap();
        // Rows 0..30, two a second, in SQLite's own text form.
        for id in 0..30i64 {
            sqlx::query("INSERT INTO log VALUES (?, ?, 'x')")
                .bind(id)
                .bind(format!("2026-03-01 00:00:{:02}", id / 2))
                .execute(&db)
                .await
                .unwrap();
        }
        let options = format!(
            "url = \"{url}\"\nquery = \"SELECT id, ts, msg AS message FROM log WHERE \
             julianday(ts) >= julianday($1) ORDER BY julianday(ts), id LIMIT 3\"\n\
             cursor_column = \"ts\"\ncursor_start = \"2026-01-01T00:00:00Z\""
        );
        let config: SqlConfig = toml::from_str(&options).unwrap();
        let at = |s: i64| DateTime::from_timestamp(1_772_323_200 + s, 0).unwrap();
        assert_eq!(at(0).to_rfc3339(), "2026-03-01T00:00:00+00:00");
        let window = TimeWindow {
            since: at(5),
            until: at(9),
        };
        let source = config
            .build_window(&test_context(&options), window)
            .unwrap()
            .unwrap();
        let state = dir.path().join("state");
        let ids = run_to_end(source, &state).await;
        assert_eq!(ids, (10..18).collect::<Vec<_>>());
        // No cursor was saved: a follow run starts at cursor_start.
        let saved = crate::state::StateHandle::new(state)
            .store()
            .unwrap()
            .get("source_cursors", "s")
            .unwrap();
        assert_eq!(saved, None);
    }

    /// A poller of `query` (cursor column `id`, from 0) on `url`.
    fn poller(url: &str, query: &str, timeout_secs: f64) -> Poller {
        use crate::component_key::{ComponentKey, ComponentKind};
        let options = format!(
            "url = \"{url}\"\nquery = \"{query}\"\ncursor_column = \"id\"\n\
             cursor_start = 0\ntimeout_secs = {timeout_secs}"
        );
        let config: SqlConfig = toml::from_str(&options).unwrap();
        let checked = config.checked().unwrap();
        Poller {
            database: checked.database,
            connection: None,
            redactor: Arc::new(checked.redactor),
            query: config.query.trim().to_string(),
            column: "id".to_string(),
            limit: query_limit(&config.query),
            until: None,
            timeout: checked.timeout,
            metrics: Arc::new(ComponentMetrics::new(ComponentKey::new(
                ComponentKind::Source,
                "s",
                "sql",
            ))),
        }
    }

    #[tokio::test]
    async fn an_answer_without_limit_is_read_a_bounded_page_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("wide.db").display());
        let mut db = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        // Ten rows of 3 MiB each: 16 MiB are passed at the sixth.
        sqlx::query(
            "CREATE TABLE wide AS WITH RECURSIVE n(id) AS (SELECT 1 UNION ALL SELECT id + 1 \
             FROM n WHERE id < 10) SELECT id, replace(hex(zeroblob(1572864)), '0', 'x') AS body \
             FROM n",
        )
        .execute(&mut db)
        .await
        .unwrap();
        let mut wide = poller(
            &url,
            "SELECT id, body FROM wide WHERE id > $1 ORDER BY id",
            60.0,
        );
        let mut cursor = SqlCursor::at(CursorValue::Integer(0));
        let mut pages = Vec::new();
        for _ in 0..5 {
            let page = wide.pull(&cursor).await.unwrap();
            pages.push((page.events.len(), page.more));
            cursor = page.cursor;
            if !page.more {
                break;
            }
        }
        assert_eq!(pages, [(6, true), (4, true), (0, false)]);
        assert_eq!(cursor.value, CursorValue::Integer(10));
        // Endless rows (a recursive query with no end): a page of the most
        // rows, not all memory.
        let mut endless = poller(
            &url,
            "WITH RECURSIVE c(id) AS (SELECT $1 + 1 UNION ALL SELECT id + 1 FROM c) \
             SELECT id FROM c",
            60.0,
        );
        let page = tokio::time::timeout(
            Duration::from_secs(60),
            endless.pull(&SqlCursor::at(CursorValue::Integer(0))),
        )
        .await
        .expect("a page of an endless answer")
        .unwrap();
        assert_eq!(page.events.len(), MAX_PAGE_ROWS);
        assert!(page.more);
        assert_eq!(
            page.cursor.value,
            CursorValue::Integer(MAX_PAGE_ROWS as i64)
        );
    }

    #[tokio::test]
    async fn a_query_waiting_on_a_lock_times_out_and_the_next_poll_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("locked.db").display());
        let options = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true);
        let mut writer = options.connect().await.unwrap();
        for statement in [
            "CREATE TABLE log (id INTEGER PRIMARY KEY, msg TEXT)",
            "INSERT INTO log VALUES (1, 'a')",
            // A writer holding the database (journal mode `delete`, not
            // WAL): readers wait on it, up to SQLite's busy timeout (5 s).
            "BEGIN EXCLUSIVE",
            "INSERT INTO log VALUES (2, 'b')",
        ] {
            sqlx::query(statement).execute(&mut writer).await.unwrap();
        }
        let mut poller = poller(
            &url,
            "SELECT id, msg AS message FROM log WHERE id > $1 ORDER BY id LIMIT 10",
            0.5,
        );
        let cursor = SqlCursor::at(CursorValue::Integer(0));
        let started = std::time::Instant::now();
        let error = tokio::time::timeout(Duration::from_secs(10), poller.pull(&cursor))
            .await
            .expect("the poll ended")
            .unwrap_err()
            .to_string();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert!(
            error.contains("no answer within 0.5s (timeout_secs; from `$1` = 0)"),
            "{error}"
        );
        assert!(poller.connection.is_none(), "the connection was closed");
        sqlx::query("COMMIT").execute(&mut writer).await.unwrap();
        let page = poller.pull(&cursor).await.unwrap();
        assert_eq!(page.events.len(), 2);
        assert_eq!(page.cursor.value, CursorValue::Integer(2));
    }

    #[tokio::test]
    async fn a_missing_sqlite_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nowhere.db");
        let url = format!("sqlite://{}", path.display());
        let mut poller = poller(&url, "SELECT 1 AS id WHERE 1 > $1", 5.0);
        let error = poller
            .pull(&SqlCursor::at(CursorValue::Integer(0)))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(&format!(
                "cannot open the SQLite database {}",
                path.display()
            )) && error.contains("unable to open database file"),
            "{error}"
        );
        assert!(!path.exists(), "the file was created");
    }

    #[test]
    fn reads_the_literal_limit_and_hides_url_passwords_in_every_form() {
        assert_eq!(
            query_limit("SELECT 1 FROM t WHERE id > $1 ORDER BY id LIMIT 1000"),
            Some(1000)
        );
        assert_eq!(query_limit("select 1 limit 5 offset 2"), Some(5));
        assert_eq!(query_limit("SELECT (SELECT 1 LIMIT 1) LIMIT $2"), None);
        assert_eq!(query_limit("SELECT 1 LIMIT 20;\n"), Some(20));
        assert_eq!(query_limit("SELECT 1"), Some(usize::MAX));
        assert_eq!(query_limit("SELECT 1 FETCH FIRST 9 ROWS ONLY"), None);
        let redactor = url_redactor("postgres://howl:p%40ss@db/app");
        let shown = redactor.redact("failed for postgres://howl:p%40ss@db/app, p@ss, p%40ss");
        assert!(
            !shown.contains("p@ss") && !shown.contains("p%40ss"),
            "{shown}"
        );
        let redactor = url_redactor("postgres://db/app?user=howl&password=hunter%232");
        assert_eq!(redactor.redact("hunter#2"), "***");
    }
}
