//! The `sql` source's cursor: the last value of the cursor column, plus
//! which rows at exactly that value were delivered already, so that a query
//! written `WHERE ts >= $1` (timestamps are rarely unique) neither repeats
//! nor skips rows sharing the last timestamp, across pages and restarts.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::event::Event;

/// A value of the cursor column, as bound to `$1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CursorValue {
    /// An integer column (bound as a 64-bit integer).
    Integer(i64),
    /// A text column.
    Text(String),
    /// A timestamp column (bound as `timestamptz` in PostgreSQL).
    Timestamp(#[serde(with = "rfc3339")] DateTime<Utc>),
}

impl std::fmt::Display for CursorValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Integer(value) => write!(f, "{value}"),
            Self::Text(value) => write!(f, "{value:?}"),
            Self::Timestamp(value) => f.write_str(&rfc3339::format(value)),
        }
    }
}

/// Where the next query starts: `$1` is `value`, and rows at exactly
/// `value` whose hash is in `seen` (as many times as counted) were
/// delivered already. Saved as JSON in the state store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqlCursor {
    /// The cursor column's value in the last row delivered.
    pub value: CursorValue,
    /// Hashes of the rows delivered at exactly `value`, with how many rows
    /// had each hash (identical rows are told apart by their number).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub seen: BTreeMap<u64, u32>,
}

impl SqlCursor {
    /// A cursor before any row at `value`.
    pub fn at(value: CursorValue) -> Self {
        Self {
            value,
            seen: BTreeMap::new(),
        }
    }
}

/// One row of an answer, decoded.
pub struct Row {
    pub event: Event,
    /// Its cursor column's value.
    pub cursor: CursorValue,
    /// The stable hash of its column values.
    pub hash: u64,
}

/// What one answer gives.
pub struct Advance {
    /// The rows not delivered before, in the answer's order.
    pub events: Vec<Event>,
    /// The cursor after them.
    pub cursor: SqlCursor,
    /// True when new rows were found (ask again at once).
    pub more: bool,
    /// True when the answer was as long as the query's `LIMIT` and every
    /// row of it was at the cursor's value and delivered already: asking
    /// again gives the same rows, never the ones after them.
    pub stuck: bool,
    /// The first row whose cursor value is below the one before it (the
    /// value before, the row's): the query does not order its rows by the
    /// cursor column, and following it would move the cursor back. Then no
    /// row is taken.
    pub disordered: Option<(CursorValue, CursorValue)>,
    /// How many rows delivered at the cursor's value were not in a
    /// complete answer any more (updated, deleted, or holding a column that
    /// changes at every query, such as `now()`): forgotten, so that `seen`
    /// stays the size of the rows at that value.
    pub forgotten: u32,
}

impl CursorValue {
    /// True when `self` certainly comes before `other`: integers and
    /// timestamps. Text is never said to, as the database's collation,
    /// not byte order, sorts it.
    fn before(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Integer(a), Self::Integer(b)) => a < b,
            (Self::Timestamp(a), Self::Timestamp(b)) => a < b,
            _ => false,
        }
    }
}

/// Skips the rows of `rows` delivered already (at `cursor.value`, with a
/// hash in `cursor.seen`) and moves the cursor over the others. With
/// `until` (a time window), the answer ends at the first row whose cursor
/// is at or past it. `limit` is the query's `LIMIT`, when it has a literal
/// one (`usize::MAX` when it has none).
pub fn advance(
    cursor: &SqlCursor,
    rows: Vec<Row>,
    until: Option<DateTime<Utc>>,
    limit: Option<usize>,
) -> Advance {
    let returned = rows.len();
    let mut previous = &cursor.value;
    for row in &rows {
        if row.cursor.before(previous) {
            return Advance {
                events: Vec::new(),
                cursor: cursor.clone(),
                more: false,
                stuck: false,
                disordered: Some((previous.clone(), row.cursor.clone())),
                forgotten: 0,
            };
        }
        previous = &row.cursor;
    }
    let mut next = cursor.clone();
    let mut to_skip = cursor.seen.clone();
    let mut events = Vec::new();
    let mut ended = false;
    for row in rows {
        if let (Some(until), CursorValue::Timestamp(at)) = (until, &row.cursor)
            && *at >= until
        {
            ended = true;
            break;
        }
        if row.cursor == cursor.value
            && let Some(count) = to_skip.get_mut(&row.hash)
            && *count > 0
        {
            *count -= 1;
            continue;
        }
        if row.cursor != next.value {
            next.value = row.cursor;
            next.seen.clear();
        }
        *next.seen.entry(row.hash).or_default() += 1;
        events.push(row.event);
    }
    let stuck = events.is_empty() && !ended && returned > 0 && limit.is_some_and(|l| returned >= l);
    // An answer shorter than its LIMIT holds every row at the cursor's
    // value: those of `seen` it did not have are gone or changed. Were they
    // kept, a row whose columns change at every query (`now() AS polled`)
    // would add a hash at every poll, and, since it is new each time, be
    // asked for again at once, forever: a loop at full speed.
    let complete = limit.is_some_and(|l| returned < l);
    // Asking again at once finds nothing when the answer was complete
    // and the cursor did not move.
    let settled = complete && next.value == cursor.value;
    let mut forgotten = 0;
    if settled {
        for (hash, left) in to_skip {
            if left == 0 {
                continue;
            }
            forgotten += left;
            if let Some(count) = next.seen.get_mut(&hash) {
                *count = count.saturating_sub(left);
                if *count == 0 {
                    next.seen.remove(&hash);
                }
            }
        }
    }
    Advance {
        more: !events.is_empty() && !ended && !settled,
        events,
        cursor: next,
        stuck,
        disordered: None,
        forgotten,
    }
}

/// Timestamps saved as RFC 3339 text in UTC with nanoseconds (chrono's own
/// serde support is not built).
pub mod rfc3339 {
    use super::*;

    pub fn format(value: &DateTime<Utc>) -> String {
        value.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    pub fn parse(text: &str) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(text.trim())
            .ok()
            .map(|at| at.with_timezone(&Utc))
    }

    pub fn serialize<S: serde::Serializer>(
        value: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(value))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse(&text).ok_or_else(|| serde::de::Error::custom("not an RFC 3339 timestamp"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn row(id: i64, at: i64, hash: u64) -> Row {
        Row {
            event: Event::log(Bytes::from(id.to_string()), Utc::now(), "sql"),
            cursor: CursorValue::Integer(at),
            hash,
        }
    }

    fn ids(advance: &Advance) -> Vec<String> {
        advance
            .events
            .iter()
            .map(|e| {
                e.get_field("message")
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    }

    #[test]
    fn rows_sharing_the_cursor_value_are_neither_repeated_nor_skipped_across_pages() {
        // Rows (id, ts): 1..=2 at ts 10, 3..=5 at ts 20, 6 at 30; pages of
        // `ts >= $1 ORDER BY ts LIMIT 4` (the group at 20 straddles two).
        let all = [(1, 10), (2, 10), (3, 20), (4, 20), (5, 20), (6, 30)];
        let query = |cursor: &SqlCursor| -> Vec<Row> {
            let from = match cursor.value {
                CursorValue::Integer(v) => v,
                _ => unreachable!(),
            };
            all.iter()
                .filter(|(_, ts)| *ts >= from)
                .take(4)
                .map(|&(id, ts)| row(id, ts, id as u64 * 7919))
                .collect()
        };
        let mut cursor = SqlCursor::at(CursorValue::Integer(0));
        let mut delivered = Vec::new();
        for _ in 0..20 {
            let page = advance(&cursor, query(&cursor), None, Some(4));
            assert!(!page.stuck);
            delivered.extend(ids(&page));
            cursor = page.cursor;
            // A restart reads the cursor back from JSON.
            cursor = serde_json::from_str(&serde_json::to_string(&cursor).unwrap()).unwrap();
            if !page.more {
                break;
            }
        }
        assert_eq!(delivered, ["1", "2", "3", "4", "5", "6"]);
        assert_eq!(cursor.value, CursorValue::Integer(30));
        assert_eq!(cursor.seen.len(), 1);
    }

    #[test]
    fn identical_rows_at_one_value_are_counted_and_a_full_page_of_seen_rows_is_stuck() {
        let cursor = SqlCursor::at(CursorValue::Integer(0));
        let page = advance(&cursor, vec![row(1, 5, 9), row(1, 5, 9)], None, Some(3));
        assert_eq!(page.events.len(), 2);
        assert_eq!(page.cursor.seen.get(&9), Some(&2));
        // The same two again plus a third identical one: only the third.
        let again = advance(
            &page.cursor,
            vec![row(1, 5, 9), row(1, 5, 9), row(1, 5, 9)],
            None,
            Some(3),
        );
        assert_eq!(again.events.len(), 1);
        assert!(!again.stuck);
        // Now the page is full of rows delivered already: stuck.
        let stuck = advance(
            &again.cursor,
            vec![row(1, 5, 9), row(1, 5, 9), row(1, 5, 9)],
            None,
            Some(3),
        );
        assert!(stuck.stuck && !stuck.more && stuck.events.is_empty());
        // A short page of rows seen is just nothing new.
        let idle = advance(
            &again.cursor,
            vec![row(1, 5, 9), row(1, 5, 9), row(1, 5, 9)],
            None,
            Some(4),
        );
        assert!(!idle.stuck && !idle.more && idle.cursor == again.cursor);
        assert_eq!(idle.forgotten, 0);
        // Two of them deleted: forgotten, the third still known.
        let fewer = advance(&again.cursor, vec![row(1, 5, 9)], None, Some(4));
        assert!(fewer.events.is_empty() && !fewer.more && fewer.forgotten == 2);
        assert_eq!(fewer.cursor.seen.get(&9), Some(&1));
    }

    #[test]
    fn rows_out_of_the_cursor_order_are_refused_rather_than_moving_the_cursor_back() {
        // `ORDER BY id DESC`: following it would read the same rows again
        // and again (each page from a lower cursor) and skip older ones.
        let cursor = SqlCursor::at(CursorValue::Integer(0));
        let page = advance(&cursor, vec![row(1, 20, 1), row(2, 19, 2)], None, Some(2));
        assert_eq!(
            page.disordered,
            Some((CursorValue::Integer(20), CursorValue::Integer(19)))
        );
        assert!(page.events.is_empty() && !page.more && page.cursor == cursor);
        // A row below the cursor itself (a query that reads before `$1`).
        let at_10 = SqlCursor::at(CursorValue::Integer(10));
        let page = advance(&at_10, vec![row(1, 9, 1)], None, None);
        assert!(page.disordered.is_some());
        // Equal values (`>=` queries) and text (sorted by collation) pass.
        let page = advance(&at_10, vec![row(1, 10, 1), row(2, 10, 2)], None, None);
        assert!(page.disordered.is_none() && page.events.len() == 2);
        let text = |id: i64, value: &str| Row {
            event: Event::log(Bytes::from(id.to_string()), Utc::now(), "sql"),
            cursor: CursorValue::Text(value.into()),
            hash: id as u64,
        };
        let cursor = SqlCursor::at(CursorValue::Text(String::new()));
        let page = advance(&cursor, vec![text(1, "b"), text(2, "B")], None, None);
        assert!(page.disordered.is_none() && page.events.len() == 2);
    }

    #[test]
    fn rows_that_change_at_every_query_neither_loop_nor_grow_the_cursor() {
        // `SELECT id, ts, now() AS polled ... WHERE ts >= $1`: the one row
        // at the cursor's value has a new hash at every query.
        let mut cursor = SqlCursor::at(CursorValue::Integer(0));
        for poll in 0..50u64 {
            let page = advance(&cursor, vec![row(1, 5, 1000 + poll)], None, Some(10));
            assert_eq!(page.events.len(), 1, "delivered again, as it changed");
            assert_eq!(page.more, poll == 0, "poll {poll}: asked again at once");
            assert_eq!(page.forgotten, u32::from(poll > 0));
            cursor = page.cursor;
            assert_eq!(cursor.seen.len(), 1, "poll {poll}: {:?}", cursor.seen);
        }
        // Rows inserted at the cursor's value keep the others' hashes.
        let page = advance(&cursor, vec![row(1, 5, 1049), row(2, 5, 7)], None, Some(10));
        assert_eq!((page.events.len(), page.forgotten), (1, 0));
        assert_eq!(page.cursor.seen.len(), 2);
        // A full answer may not hold every row at the value: nothing is
        // forgotten then.
        let full = advance(&page.cursor, vec![row(3, 5, 8)], None, Some(1));
        assert_eq!(full.forgotten, 0);
        assert_eq!(full.cursor.seen.len(), 3);
        // Nor when the limit is not known (`LIMIT $2`, `FETCH FIRST`).
        let unknown = advance(&page.cursor, vec![row(3, 5, 8)], None, None);
        assert_eq!(unknown.forgotten, 0);
        assert_eq!(unknown.cursor.seen.len(), 3);
    }

    #[test]
    fn a_window_ends_at_its_first_row_at_or_past_until() {
        let t = |s: i64| DateTime::from_timestamp(s, 0).unwrap();
        let at = |id: i64, s: i64| Row {
            event: Event::log(Bytes::from(id.to_string()), Utc::now(), "sql"),
            cursor: CursorValue::Timestamp(t(s)),
            hash: id as u64,
        };
        let cursor = SqlCursor::at(CursorValue::Timestamp(t(0)));
        let page = advance(
            &cursor,
            vec![at(1, 5), at(2, 9), at(3, 10)],
            Some(t(10)),
            None,
        );
        assert_eq!(ids(&page), ["1", "2"]);
        assert!(!page.more);
        assert_eq!(page.cursor.value, CursorValue::Timestamp(t(9)));
    }

    #[test]
    fn the_cursor_is_saved_as_readable_json() {
        let mut cursor = SqlCursor::at(CursorValue::Timestamp(
            DateTime::parse_from_rfc3339("2026-01-02T03:04:05.123456Z")
                .unwrap()
                .with_timezone(&Utc),
        ));
        cursor.seen.insert(42, 1);
        let json = serde_json::to_string(&cursor).unwrap();
        assert_eq!(
            json,
            r#"{"value":{"timestamp":"2026-01-02T03:04:05.123456Z"},"seen":{"42":1}}"#
        );
        assert_eq!(serde_json::from_str::<SqlCursor>(&json).unwrap(), cursor);
        let plain = serde_json::to_string(&SqlCursor::at(CursorValue::Integer(7))).unwrap();
        assert_eq!(plain, r#"{"value":{"integer":7}}"#);
    }
}
