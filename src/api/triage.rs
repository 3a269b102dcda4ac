//! Triage endpoints: one-click suppressions and patterns with verdicts.
//!
//! - `POST /api/v1/suppressions` `{"pattern_id", "reason", "ttl"?, "created_by"?}`
//!   suppresses a pattern (201, or 200 when it replaced the pattern's
//!   suppression); in force at once in every running `llm_suppress`.
//! - `GET /api/v1/suppressions`: the suppressions in force.
//! - `DELETE /api/v1/suppressions/{id}` (the suppression id or the pattern
//!   id): ends one (200 with what was removed, 404 if there is none).
//! - `GET /api/v1/patterns`: every pattern howl knows (from `pattern`
//!   transforms' stores, verdicts and suppressions), with its verdicts and
//!   suppression.
//!
//! Answers about suppressions carry `silence_errors`: Alertmanager silences
//! that could not be created or expired (the suppression itself stands).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ApiError, ApiState, authorize};
use crate::options::duration::parse_duration;
use crate::shared::Shared;
use crate::state::patterns::load_spaces;
use crate::state::triage::{
    Comparison, StoredVerdict, Suppression, load_comparisons, load_verdicts,
};
use crate::suppressions::{Changed, NewSuppression, SuppressionError};

/// The body of `POST /api/v1/suppressions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateRequest {
    /// The pattern to suppress.
    pattern_id: String,
    /// Why (required: it is the audit trail).
    reason: String,
    /// How long, e.g. `7d`; absent: until deleted.
    #[serde(default)]
    ttl: Option<String>,
    /// Who decided; absent: `api`.
    #[serde(default)]
    created_by: Option<String>,
    /// `suppress` (the default) or `always_alert`.
    #[serde(default)]
    action: crate::suppressions::OperatorAction,
}

impl From<SuppressionError> for ApiError {
    fn from(error: SuppressionError) -> Self {
        match error {
            SuppressionError::Invalid(message) => Self::BadRequest(message),
            SuppressionError::State(error) => Self::Internal(error.to_string()),
        }
    }
}

/// A suppression as answered, with the silences that failed.
fn changed_json(changed: Changed) -> Value {
    let mut value = serde_json::to_value(&changed.suppression).unwrap_or(Value::Null);
    if let Some(object) = value.as_object_mut() {
        object.insert("replaced".into(), Value::Bool(changed.replaced));
        object.insert("silence_errors".into(), Value::from(changed.silence_errors));
    }
    value
}

pub(super) async fn create_suppression(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<CreateRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authorize(&state, &headers)?;
    let Json(request) = body.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let ttl = request
        .ttl
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("`ttl`: {e}")))?;
    let changed = state
        .cx
        .shared
        .suppressions
        .create(NewSuppression {
            via: "api".into(),
            action: request.action,
            pattern_id: request.pattern_id,
            reason: request.reason,
            ttl,
            created_by: request
                .created_by
                .filter(|c| !c.trim().is_empty())
                .unwrap_or_else(|| "api".into()),
        })
        .await?;
    let status = if changed.replaced {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(changed_json(changed))))
}

pub(super) async fn list_suppressions(
    State(state): State<ApiState>,
) -> Result<Json<Vec<Suppression>>, ApiError> {
    state
        .cx
        .shared
        .suppressions
        .list()
        .map(Json)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// `GET /api/v1/audit`'s query.
#[derive(Debug, Deserialize)]
pub(super) struct AuditQuery {
    /// At most this many records (default 100, at most 10,000).
    #[serde(default)]
    limit: Option<usize>,
    /// Only about this pattern.
    #[serde(default)]
    pattern_id: Option<String>,
}

/// The audit trail, newest first.
pub(super) async fn audit(
    State(state): State<ApiState>,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Vec<crate::state::audit::AuditRecord>>, ApiError> {
    let limit = query.limit.unwrap_or(100).min(10_000);
    let audit = state.cx.shared.suppressions.audit().clone();
    // Reading thousands of records is blocking work.
    tokio::task::spawn_blocking(move || audit.list(limit, query.pattern_id.as_deref()))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map(Json)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// `DELETE /api/v1/suppressions/{id}`'s query: who asks (for the audit
/// trail; `howl unsuppress` sends `$USER`).
#[derive(Debug, Deserialize)]
pub(super) struct DeleteQuery {
    #[serde(default)]
    by: Option<String>,
}

pub(super) async fn delete_suppression(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<DeleteQuery>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let by = crate::suppressions::Actor {
        who: query
            .by
            .filter(|by| !by.trim().is_empty())
            .map_or_else(|| "api".to_string(), |by| by.chars().take(256).collect()),
        via: "api".into(),
    };
    match state.cx.shared.suppressions.remove(&id, &by).await? {
        Some(changed) => Ok(Json(changed_json(changed))),
        None => Err(ApiError::NotFound(format!(
            "no suppression has the id or pattern id `{id}`"
        ))),
    }
}

/// One pattern in `GET /api/v1/patterns`.
#[derive(Debug, Default, Serialize)]
pub(super) struct PatternRow {
    pattern_id: String,
    /// The pattern spaces (`<pattern transform>[/<scope>]`) that know it.
    spaces: Vec<String>,
    template: Option<String>,
    level: Option<String>,
    count: u64,
    first_seen: Option<String>,
    last_seen: Option<String>,
    /// Verdicts by `llm_suppress` transform.
    verdicts: BTreeMap<String, VerdictRow>,
    /// What providers asked only to compare (`compare`) said.
    comparisons: Vec<ComparisonRow>,
    suppression: Option<Suppression>,
}

#[derive(Debug, Serialize)]
pub(super) struct ComparisonRow {
    /// The `llm_suppress` transform.
    component: String,
    #[serde(flatten)]
    comparison: Comparison,
    /// Whether it agrees with the verdict that decided.
    agrees: bool,
}

#[derive(Debug, Serialize)]
pub(super) struct VerdictRow {
    #[serde(flatten)]
    verdict: StoredVerdict,
    /// Whether it has expired (the pattern is asked again on its next
    /// event).
    expired: bool,
}

pub(super) async fn list_patterns(
    State(state): State<ApiState>,
) -> Result<Json<Vec<PatternRow>>, ApiError> {
    let shared = state.cx.shared.clone();
    tokio::task::spawn_blocking(move || patterns(&shared))
        .await
        .map_err(|e| ApiError::Internal(format!("listing patterns failed: {e}")))?
        .map(Json)
}

/// Joins the pattern store, the verdicts and the suppressions by pattern id;
/// the most seen patterns first.
/// What a link's page shows of a pattern.
pub(super) struct PatternSummary {
    pub template: String,
    pub level: String,
    pub count: u64,
    pub samples: Vec<String>,
}

/// A pattern as the pattern stores know it (the first store that has it).
pub(super) fn pattern_summary(shared: &Shared, pattern_id: &str) -> Option<PatternSummary> {
    let store = shared.state.store().ok()?;
    let spaces = load_spaces(&store, None).ok()?;
    spaces.iter().find_map(|space| {
        space
            .snapshot
            .views()
            .find(|view| view.id.to_string() == pattern_id)
            .map(|view| PatternSummary {
                template: view.template.to_string(),
                level: view.level.as_str().to_string(),
                count: view.count,
                samples: view.samples.iter().take(3).cloned().collect(),
            })
    })
}

fn patterns(shared: &Shared) -> Result<Vec<PatternRow>, ApiError> {
    let internal = |e: crate::state::StateError| ApiError::Internal(e.to_string());
    let store = shared.state.store().map_err(internal)?;
    let mut rows: BTreeMap<String, PatternRow> = BTreeMap::new();
    for space in load_spaces(&store, None).map_err(internal)? {
        let name = if space.scope.is_empty() {
            space.namespace.clone()
        } else {
            format!("{}/{}", space.namespace, space.scope)
        };
        for view in space.snapshot.views() {
            let entry = row(&mut rows, &view.id.to_string());
            entry.spaces.push(name.clone());
            entry
                .template
                .get_or_insert_with(|| view.template.to_string());
            entry
                .level
                .get_or_insert_with(|| view.level.as_str().to_string());
            entry.count += view.count;
            merge_time(&mut entry.first_seen, view.first_seen_ms, |a, b| a < b);
            merge_time(&mut entry.last_seen, view.last_seen_ms, |a, b| a > b);
        }
    }
    let now = Utc::now();
    for saved in load_verdicts(&store, None).map_err(internal)? {
        let expired = !saved.verdict.is_live(now);
        row(&mut rows, &saved.pattern_id).verdicts.insert(
            saved.component,
            VerdictRow {
                verdict: saved.verdict,
                expired,
            },
        );
    }
    for saved in load_comparisons(&store, None).map_err(internal)? {
        let agrees = saved.comparison.agrees();
        row(&mut rows, &saved.pattern_id)
            .comparisons
            .push(ComparisonRow {
                component: saved.component,
                comparison: saved.comparison,
                agrees,
            });
    }
    for suppression in shared.suppressions.list().map_err(internal)? {
        let id = suppression.pattern_id.clone();
        row(&mut rows, &id).suppression = Some(suppression);
    }
    let mut rows: Vec<PatternRow> = rows.into_values().collect();
    rows.sort_by(|a, b| b.count.cmp(&a.count).then(a.pattern_id.cmp(&b.pattern_id)));
    Ok(rows)
}

/// The row of pattern `id`, created empty when new.
fn row<'a>(rows: &'a mut BTreeMap<String, PatternRow>, id: &str) -> &'a mut PatternRow {
    rows.entry(id.to_string()).or_insert_with(|| PatternRow {
        pattern_id: id.to_string(),
        ..PatternRow::default()
    })
}

/// Keeps the earlier (or later) of a stored RFC 3339 time and `ms`.
fn merge_time(slot: &mut Option<String>, ms: i64, better: fn(i64, i64) -> bool) {
    let Some(at) = DateTime::<Utc>::from_timestamp_millis(ms) else {
        return;
    };
    let current = slot
        .as_deref()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.timestamp_millis());
    if current.is_none_or(|current| better(ms, current)) {
        *slot = Some(at.to_rfc3339_opts(SecondsFormat::Secs, true));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patterns::{Miner, MinerConfig};
    use crate::state::patterns::save_spaces;
    use crate::state::triage::Label;
    use crate::state::triage::{VerdictSource, save_verdicts};

    #[tokio::test]
    async fn patterns_join_the_pattern_store_verdicts_and_suppressions() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Shared::new(dir.path().to_path_buf());
        let store = shared.state.store().unwrap();
        let mut miner = Miner::new(MinerConfig::default()).unwrap();
        let id = miner
            .observe("GET /healthz 200 1ms", None, 1_000)
            .id
            .to_string();
        miner.observe("GET /healthz 200 2ms", None, 2_000);
        save_spaces(&store, "patterns", [("", &miner)]).unwrap();
        let now = Utc::now();
        let verdict = StoredVerdict {
            verdict: Label::Noise,
            confidence: 0.9,
            reason: "health check".into(),
            source: VerdictSource::Builtin,
            model: "builtin".into(),
            provider: None,
            decided_at: now,
            expires_at: now + chrono::Duration::days(7),
        };
        save_verdicts(&store, "triage", [(id.as_str(), &verdict)], []).unwrap();
        shared
            .suppressions
            .create(crate::suppressions::NewSuppression {
                via: "test".into(),
                action: crate::suppressions::OperatorAction::Suppress,
                pattern_id: "feedfeedfeedfeed".into(),
                reason: "known".into(),
                ttl: None,
                created_by: "ops".into(),
            })
            .await
            .unwrap();

        let rows = patterns(&shared).unwrap();
        assert_eq!(rows.len(), 2);
        let health = &rows[0];
        assert_eq!(health.pattern_id, id);
        assert_eq!(health.count, 2, "the most seen first");
        assert_eq!(health.spaces, ["patterns"]);
        assert!(health.template.as_deref().unwrap().contains("<DUR"));
        assert_eq!(health.first_seen.as_deref(), Some("1970-01-01T00:00:01Z"));
        assert_eq!(health.verdicts["triage"].verdict.verdict, Label::Noise);
        assert!(!health.verdicts["triage"].expired);
        let suppressed = &rows[1];
        assert_eq!(suppressed.pattern_id, "feedfeedfeedfeed");
        assert!(
            suppressed.template.is_none(),
            "known from its suppression only"
        );
        assert_eq!(suppressed.suppression.as_ref().unwrap().reason, "known");
    }
}
