//! Chat platforms' callbacks. `POST /api/v1/slack/actions`: the Request URL of a Slack app's
//! interactivity. Slack posts a button press here, signed with the app's
//! signing secret; the request is checked and handed to the `slack` sink
//! whose secret signed it ([`crate::shared::SlackActions`]), which applies
//! it and updates the message. Slack wants an answer within 3 seconds, so
//! the answer (200, empty) comes as soon as the request is handed over.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use super::{ApiError, ApiState};
use crate::shared::SlackDelivery;

pub(super) async fn actions(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let delivered = state.cx.shared.slack_actions.deliver(
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        body,
        chrono::Utc::now().timestamp(),
    );
    match delivered {
        SlackDelivery::Accepted => Ok(StatusCode::OK),
        SlackDelivery::NoReceivers => Err(ApiError::NotFound(
            "no `slack` sink with `actions` runs in this howl".into(),
        )),
        SlackDelivery::Refused(why) => {
            tracing::warn!("a Slack action request was refused: {why}");
            Err(ApiError::BadSignature(why.to_string()))
        }
        SlackDelivery::Busy => Err(ApiError::Unavailable(
            "too many button presses waiting; retry".into(),
        )),
    }
}

/// `POST /api/v1/telegram/{sink}/updates`: Telegram's webhook for a
/// `telegram` sink with `actions.updates = "webhook"`.
pub(super) async fn telegram_updates(
    State(state): State<ApiState>,
    axum::extract::Path(sink): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    use crate::shared::WebhookDelivery;
    let token = headers
        .get("x-telegram-bot-api-secret-token")
        .and_then(|v| v.to_str().ok());
    match state
        .cx
        .shared
        .telegram_webhooks
        .deliver(&sink, token, body)
    {
        WebhookDelivery::Accepted => Ok(StatusCode::OK),
        WebhookDelivery::NoSink => Err(ApiError::NotFound(
            "no `telegram` sink of that id takes updates through a webhook".into(),
        )),
        WebhookDelivery::Refused => {
            tracing::warn!("a Telegram webhook request without the right secret token was refused");
            Err(ApiError::BadSignature(
                "missing or wrong X-Telegram-Bot-Api-Secret-Token".into(),
            ))
        }
        WebhookDelivery::Busy => Err(ApiError::Unavailable(
            "too many updates waiting; retry".into(),
        )),
    }
}
