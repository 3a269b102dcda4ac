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

/// Reviews off the async threads (a review reads every pattern store).
async fn run(state: &ApiState, commit: bool) -> Result<Json<Value>, ApiError> {
    let store = store(state)?;
    tokio::task::spawn_blocking(move || review::review(&store, chrono::Utc::now(), commit))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map(|digest| answer(&digest))
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// A dry run.
pub(super) async fn preview(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    run(&state, false).await
}

/// A review that leaves its checkpoint and keeps its suggestions.
pub(super) async fn commit(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    run(&state, true).await
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
    let waiting = review::rules(&store).map_err(|e| ApiError::Internal(e.to_string()))?;
    let Some(rule) = waiting.into_iter().find(|rule| rule.id == id) else {
        // The id is the client's: not echoed (it may hold anything).
        return Err(ApiError::NotFound(
            "no such suggestion is waiting (applied already, or from an older review)".into(),
        ));
    };
    let (action, ttl) = match rule.kind {
        RuleKind::Suppress => (
            OperatorAction::Suppress,
            Some(Duration::from_secs(7 * 86_400)),
        ),
        RuleKind::AlwaysAlert => (OperatorAction::AlwaysAlert, None),
        RuleKind::Throttle => {
            // A topology change: route the pattern's events through a
            // throttle of their own; the suggestion stays until then.
            let short: String = rule
                .pattern_id
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(16)
                .collect();
            return Ok(Json(json!({
                "applied": false,
                "rule": rule,
                "config": format!(
                    "[transforms.split_{short}]\ntype = \"route\"\ninputs = [\"YOUR_INPUT\"]\n\
                     route.noisy = '.pattern.id == \"{short}\"'\n\n\
                     [transforms.throttle_{short}]\ntype = \"throttle\"\ninputs = [\"split_{short}.noisy\"]\n\
                     threshold = 10\nwindow_secs = \"1h\"\n\n\
                     # then feed your sink from `throttle_{short}` and `split_{short}._unmatched`\n"
                ),
                "message": "a throttle is a change to the topology; add this to it:",
            })));
        }
    };
    if review::take_rule(&store, &rule.id)
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .is_none()
    {
        return Err(ApiError::NotFound(
            "the suggestion was applied meanwhile".into(),
        ));
    }
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
