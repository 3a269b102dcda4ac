//! The review over the API: `GET /api/v1/review` (a dry run: nothing
//! changes), `POST /api/v1/review` (a review that leaves its checkpoint,
//! what the schedule does), `GET /api/v1/rules` (suggestions waiting), and
//! `POST /api/v1/rules/{id}/apply`.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::{ApiError, ApiState, authorize};
use crate::review::{self, RuleKind, Suggestion};
use crate::suppressions::{NewSuppression, OperatorAction};

fn store(state: &ApiState) -> Result<std::sync::Arc<crate::state::StateStore>, ApiError> {
    state
        .cx
        .shared
        .state
        .store()
        .map_err(|e| ApiError::Internal(e.to_string()))
}

fn answer(digest: &review::Digest) -> Json<Value> {
    Json(json!({ "text": review::render(digest), "digest": digest }))
}

/// A dry run.
pub(super) async fn preview(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let store = store(&state)?;
    review::review(&store, chrono::Utc::now(), false)
        .map(|digest| answer(&digest))
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// A review that leaves its checkpoint and keeps its suggestions.
pub(super) async fn commit(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let store = store(&state)?;
    review::review(&store, chrono::Utc::now(), true)
        .map(|digest| answer(&digest))
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// The suggestions waiting.
pub(super) async fn rules(
    State(state): State<ApiState>,
) -> Result<Json<Vec<Suggestion>>, ApiError> {
    let store = store(&state)?;
    review::rules(&store)
        .map(Json)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Applies a suggestion: a suppression for 7 days or an always-alert
/// decision; a throttle is a config change, which the answer spells out.
pub(super) async fn apply(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let store = store(&state)?;
    let Some(rule) =
        review::take_rule(&store, &id).map_err(|e| ApiError::Internal(e.to_string()))?
    else {
        return Err(ApiError::NotFound(format!(
            "no suggestion `{id}` is waiting (applied already, or from an older review)"
        )));
    };
    let (action, ttl) = match rule.kind {
        RuleKind::Suppress => (
            OperatorAction::Suppress,
            Some(Duration::from_secs(7 * 86_400)),
        ),
        RuleKind::AlwaysAlert => (OperatorAction::AlwaysAlert, None),
        RuleKind::Throttle => {
            return Ok(Json(json!({
                "applied": false,
                "rule": rule,
                "config": format!(
                    "[transforms.throttle_{short}]\ntype = \"throttle\"\ninputs = [\"...\"]\nkey_field = \"pattern.id\"\nthreshold = 10\nwindow_secs = \"1h\"\n",
                    short = rule.pattern_id.chars().filter(char::is_ascii_alphanumeric).take(8).collect::<String>()
                ),
                "message": "a throttle is a change to the topology: add the `config` above before the sink",
            })));
        }
    };
    let changed = state
        .cx
        .shared
        .suppressions
        .create(NewSuppression {
            pattern_id: rule.pattern_id.clone(),
            via: "review".into(),
            action,
            reason: format!("suggested by the review ({}): {}", rule.id, rule.reason),
            ttl,
            created_by: "review".into(),
        })
        .await?;
    Ok(Json(
        json!({ "applied": true, "rule": rule, "decision": changed.suppression }),
    ))
}
