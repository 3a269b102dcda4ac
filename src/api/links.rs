//! `/api/v1/links/suppress`: where the signed links alerts carry lead
//! (see [`crate::shared::LinkSigner`]). Opening one (`GET`) changes
//! nothing: it shows a small page with the pattern, its template, a few
//! samples and the durations to choose from. The page's form (`POST`, the
//! same signed parameters and a duration) suppresses the pattern. A link
//! that was changed, or has expired, is refused (403) and changes nothing.
//!
//! The signature is the credential, so these endpoints need no `[api]
//! auth_token`: a link forwarded to someone lets them suppress that one
//! pattern, for at most 30 days, until the link expires, and the audit
//! trail records it (`via = "link"`).

use std::time::Duration;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::ApiState;
use crate::suppressions::{NewSuppression, OperatorAction};

/// The durations the page offers (`d` in the form).
const CHOICES: [(&str, u64); 3] = [("1d", 86_400), ("7d", 7 * 86_400), ("30d", 30 * 86_400)];

/// A link's parameters.
#[derive(Debug, Deserialize)]
pub(super) struct Link {
    /// The pattern.
    p: String,
    /// The expiry (Unix seconds).
    e: i64,
    /// The signature.
    s: String,
    /// The chosen duration (the form's).
    #[serde(default)]
    d: Option<String>,
}

/// `GET`: the confirmation page.
pub(super) async fn page(State(state): State<ApiState>, Query(link): Query<Link>) -> Response {
    if let Err(refusal) = check(&state, &link) {
        return *refusal;
    }
    let summary = super::triage::pattern_summary(&state.cx.shared, &link.p);
    let mut body = String::new();
    body.push_str(&format!("<p>Pattern <code>{}</code></p>", escape(&link.p)));
    match &summary {
        Some(summary) => {
            body.push_str(&format!(
                "<p><b>{}</b> · seen {} time(s)</p><pre>{}</pre>",
                escape(&summary.level),
                summary.count,
                escape(&summary.template)
            ));
            if !summary.samples.is_empty() {
                body.push_str("<p>Samples:</p><ul>");
                for sample in &summary.samples {
                    body.push_str(&format!("<li><code>{}</code></li>", escape(sample)));
                }
                body.push_str("</ul>");
            }
        }
        None => body.push_str("<p>(howl has not saved this pattern's template yet.)</p>"),
    }
    body.push_str(&format!(
        "<form method=\"post\"><input type=\"hidden\" name=\"p\" value=\"{}\">\
         <input type=\"hidden\" name=\"e\" value=\"{}\"><input type=\"hidden\" name=\"s\" value=\"{}\">\
         <p>Suppress it for:</p>",
        escape(&link.p),
        link.e,
        escape(&link.s)
    ));
    for (label, _) in CHOICES {
        body.push_str(&format!(
            "<button type=\"submit\" name=\"d\" value=\"{label}\">{label}</button> "
        ));
    }
    body.push_str("</form>");
    html(StatusCode::OK, "Suppress this pattern?", &body)
}

/// `POST`: suppresses the pattern for the chosen duration.
pub(super) async fn apply(State(state): State<ApiState>, Form(link): Form<Link>) -> Response {
    if let Err(refusal) = check(&state, &link) {
        return *refusal;
    }
    // A link suppresses a pattern nobody decided about yet: it never
    // overrides an operator's decision (an always-alert, a longer
    // suppression), and a replayed link changes nothing more.
    if let Some(current) = current_decision(&state, &link.p) {
        return html(
            StatusCode::CONFLICT,
            "Already decided",
            &format!("<p>{}</p>", escape(&current)),
        );
    }
    let Some((label, secs)) = CHOICES
        .iter()
        .find(|(label, _)| link.d.as_deref() == Some(label))
    else {
        return html(
            StatusCode::BAD_REQUEST,
            "Not suppressed",
            "<p>Choose a duration on the link's page.</p>",
        );
    };
    let created = state
        .cx
        .shared
        .suppressions
        .create(NewSuppression {
            pattern_id: link.p.clone(),
            via: "link".into(),
            action: OperatorAction::Suppress,
            reason: format!("suppressed for {label} from a signed link"),
            ttl: Some(Duration::from_secs(*secs)),
            created_by: "link".into(),
        })
        .await;
    match created {
        Ok(changed) => html(
            StatusCode::OK,
            "Suppressed",
            &format!(
                "<p>Pattern <code>{}</code> is suppressed for {label} (<code>{}</code>).</p>",
                escape(&link.p),
                escape(&changed.suppression.id)
            ),
        ),
        Err(error) => html(
            StatusCode::BAD_REQUEST,
            "Not suppressed",
            &format!("<p>{}</p>", escape(&error.to_string())),
        ),
    }
}

/// The live decision about `pattern`, in words, if there is one.
fn current_decision(state: &ApiState, pattern: &str) -> Option<String> {
    let now = chrono::Utc::now();
    let snapshot = state.cx.shared.suppressions.snapshot().ok()?;
    let current = snapshot.get(pattern).filter(|s| s.is_live(now))?;
    let until = current.expires_at.map_or_else(
        || "until it is ended".to_string(),
        |at| format!("until {}", at.format("%Y-%m-%d %H:%M UTC")),
    );
    Some(format!(
        "This pattern already has a decision: {} by {}, {until} ({}). Change it in howl \
         (`howl suppressions`, the API, or a chat button), not with a link.",
        current.action.as_str(),
        current.created_by,
        current.reason
    ))
}

/// Checks the signature and the expiry; the page that refuses the link
/// otherwise.
fn check(state: &ApiState, link: &Link) -> Result<(), Box<Response>> {
    let Some(signer) = &state.cx.shared.links else {
        return Err(Box::new(html(
            StatusCode::NOT_FOUND,
            "No links",
            "<p>This howl makes no links (<code>[api.links]</code> is not set).</p>",
        )));
    };
    signer
        .verify(&link.p, link.e, &link.s, chrono::Utc::now().timestamp())
        .map_err(|why| {
            Box::new(html(
                StatusCode::FORBIDDEN,
                "Refused",
                &format!("<p>{why}.</p>"),
            ))
        })
}

fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>howl: {title}</title>\
         <meta name=\"viewport\" content=\"width=device-width\"></head>\
         <body style=\"font-family:sans-serif;max-width:48em;margin:2em auto\">\
         <h1>{title}</h1>{body}</body></html>"
    );
    let mut response = (status, Html(page)).into_response();
    // The page holds a signed link: no caching, no framing.
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// HTML-escapes text for element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
