//! What a button under an alert message does, the same in every chat
//! (`telegram`, `slack`): the buttons a sink offers, what each carries as
//! its data (`s:SECONDS:PATTERN`, `a:PATTERN`, `u:DECISION_ID`, within
//! Telegram's 64 bytes), and applying a press to the process's operator
//! decisions ([`Suppressions`], shared with the API and `llm_suppress`).
//! Who may press, how presses arrive and how the message changes are each
//! platform's.

use std::time::Duration;

use serde::{Deserialize, Deserializer};
use vrl::path::OwnedValuePath;

use crate::event::Event;
use crate::options::FieldPath;
use crate::options::duration::parse_duration;
use crate::suppressions::{Actor, NewSuppression, OperatorAction, Suppressions};

/// One button, as written: `suppress:DURATION` or `always_alert`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ButtonSpec {
    /// Suppress the pattern for this long.
    Suppress(Duration),
    /// Have the pattern always alert.
    AlwaysAlert,
}

impl<'de> Deserialize<'de> for ButtonSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bad = |why: String| {
            serde::de::Error::custom(format!(
                "a button is `suppress:DURATION` (e.g. `suppress:7d`) or `always_alert`; `{text}` {why}"
            ))
        };
        match text.split_once(':') {
            None if text == "always_alert" => Ok(Self::AlwaysAlert),
            Some(("suppress", duration)) => match parse_duration(duration.trim()) {
                Ok(d) if d.as_secs() == 0 => Err(bad("suppresses for less than a second".into())),
                Ok(d) if d > MAX_SUPPRESSION => Err(bad(format!(
                    "suppresses for longer than {} days; leave the pattern suppressed without a \
                     ttl with `howl suppress` instead",
                    MAX_SUPPRESSION.as_secs() / 86_400
                ))),
                // Whole seconds: what the button's data holds.
                Ok(d) => Ok(Self::Suppress(Duration::from_secs(d.as_secs()))),
                Err(e) => Err(bad(format!("has no valid duration: {e}"))),
            },
            _ => Err(bad("is neither".to_string())),
        }
    }
}

/// The longest suppression a button may make: ten years.
const MAX_SUPPRESSION: Duration = Duration::from_secs(10 * 365 * 86_400);

/// The default buttons: suppress for a day, for a week, always alert.
pub fn default_buttons() -> Vec<ButtonSpec> {
    vec![
        ButtonSpec::Suppress(Duration::from_secs(86_400)),
        ButtonSpec::Suppress(Duration::from_secs(7 * 86_400)),
        ButtonSpec::AlwaysAlert,
    ]
}

/// The default field holding the pattern buttons act on.
pub fn default_pattern_field() -> FieldPath {
    FieldPath::parse("pattern.id").unwrap_or_else(|e| unreachable!("`pattern.id` is a path: {e}"))
}

/// The most bytes of data a button may carry (Telegram's limit; Slack's
/// is larger).
const MAX_DATA_BYTES: usize = 64;

/// The buttons a sink offers, and where it finds their pattern.
#[derive(Debug)]
pub struct Buttons {
    specs: Vec<ButtonSpec>,
    pattern_field: OwnedValuePath,
}

impl Buttons {
    /// Buttons from the options, or why they make no sense (none, or the
    /// same button twice).
    pub fn new(specs: &[ButtonSpec], pattern_field: &FieldPath) -> Result<Self, String> {
        if specs.is_empty() {
            return Err(
                "`actions.buttons` is empty; remove `actions` to send messages without buttons"
                    .into(),
            );
        }
        if let Some(twice) = specs
            .iter()
            .enumerate()
            .find(|(i, spec)| specs[..*i].contains(spec))
        {
            return Err(format!(
                "`actions.buttons` has the same button twice ({:?})",
                twice.1
            ));
        }
        Ok(Self {
            specs: specs.to_vec(),
            pattern_field: pattern_field.path().clone(),
        })
    }

    /// Whether `data` is what one of these buttons sends (or an Undo):
    /// a client that forges a press gets nothing the buttons do not offer
    /// (another duration, a decision the sink has no button for).
    pub fn permits(&self, data: &str) -> bool {
        match data.split_once(':') {
            Some(("s", rest)) => rest.split_once(':').is_some_and(|(secs, _)| {
                self.specs.iter().any(|spec| {
                    matches!(spec, ButtonSpec::Suppress(d) if d.as_secs().to_string() == secs)
                })
            }),
            Some(("a", _)) => self.specs.contains(&ButtonSpec::AlwaysAlert),
            Some(("u", rest)) => rest.split_once(':').is_some_and(|(id, made)| {
                id.starts_with(DECISION_ID_PREFIX) && made.parse::<i64>().is_ok()
            }),
            _ => false,
        }
    }

    /// The pattern an alert's buttons act on.
    pub fn pattern(&self, event: &Event) -> Option<String> {
        match event.get(&self.pattern_field)? {
            vrl::value::Value::Null => None,
            value => Some(value.to_string_lossy().into_owned()),
        }
    }

    /// The `(label, data)` of each button for `pattern`; `None` when the
    /// pattern is empty or too long for a button's data.
    pub fn for_pattern(&self, pattern: &str) -> Option<Vec<(String, String)>> {
        self.specs
            .iter()
            .map(|spec| {
                let (label, data) = match spec {
                    ButtonSpec::Suppress(d) => (
                        format!("Suppress {}", human(*d)),
                        format!("s:{}:{pattern}", d.as_secs()),
                    ),
                    ButtonSpec::AlwaysAlert => ("Always alert".to_string(), format!("a:{pattern}")),
                };
                (!pattern.is_empty() && data.len() <= MAX_DATA_BYTES).then_some((label, data))
            })
            .collect()
    }
}

impl Buttons {
    /// The buttons of a review digest's suggestions (`.review`): one per
    /// suggestion these buttons can apply (a suppression, with this
    /// sink's first suppression duration; always alert, when the sink
    /// has that button), labelled with the pattern's template. Throttles
    /// are config changes: no button.
    pub fn for_suggestions(&self, event: &Event) -> Vec<(String, String)> {
        let Some(review) = event.get_field("review") else {
            return Vec::new();
        };
        let Ok(review) = serde_json::to_value(review) else {
            return Vec::new();
        };
        let suppress = self.specs.iter().find_map(|spec| match spec {
            ButtonSpec::Suppress(d) => Some(*d),
            ButtonSpec::AlwaysAlert => None,
        });
        let always = self.specs.contains(&ButtonSpec::AlwaysAlert);
        let suggestions = review["spaces"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|space| space["suggestions"].as_array().into_iter().flatten());
        let mut buttons = Vec::new();
        for suggestion in suggestions {
            let pattern = suggestion["pattern_id"].as_str().unwrap_or_default();
            let short: String = suggestion["template"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .take(40)
                .collect();
            let button = match (suggestion["kind"].as_str(), suppress) {
                (Some("suppress"), Some(d)) => Some((
                    format!("Suppress {}: {short}", human(d)),
                    format!("s:{}:{pattern}", d.as_secs()),
                )),
                (Some("always_alert"), _) if always => {
                    Some((format!("Always alert: {short}"), format!("a:{pattern}")))
                }
                _ => None,
            };
            if let Some((label, data)) = button
                && !pattern.is_empty()
                && data.len() <= MAX_DATA_BYTES
            {
                buttons.push((label, data));
            }
        }
        buttons
    }
}

/// The data of the Undo button of a decision: its id and when it was
/// made (a replaced decision keeps its id; Undo must end only the one its
/// button was made for).
pub fn undo_data(decision: &crate::state::triage::Suppression) -> String {
    format!(
        "u:{}:{}",
        decision.id,
        decision.created_at.timestamp_micros()
    )
}

/// `7d`, `12h`, `30m`, `45s`: the largest unit that divides the duration.
pub fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs >= size && secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

/// Who pressed, for the record and the message.
pub struct Presser {
    /// How the message names them: `@alice`.
    pub shown: String,
    /// The decision's `created_by`: `telegram @alice (id 7)`.
    pub created_by: String,
    /// The chat they pressed in, for the reason: `Telegram`, `Slack`.
    pub platform: &'static str,
}

/// What a press did.
pub enum Applied {
    /// A decision was made: the line the message gets, and the Undo data.
    Decided {
        /// The answer to the presser.
        answer: String,
        /// The line that says who did what.
        status: String,
        /// The data of the Undo button.
        undo: String,
    },
    /// A decision was undone: the pattern's buttons come back.
    Undone {
        /// The pattern whose buttons to show again.
        pattern: String,
    },
    /// Nothing changed (the decision to undo had already ended).
    Nothing {
        /// The answer to the presser.
        answer: String,
    },
}

/// How decision ids start (`sup-`): Undo takes only these, never a
/// pattern id, so it ends exactly the decision its button was made for.
const DECISION_ID_PREFIX: &str = "sup-";

/// Applies the press of one of `buttons` with `data` by `presser`; an
/// error says why nothing changed.
pub async fn apply(
    suppressions: &Suppressions,
    buttons: &Buttons,
    data: &str,
    presser: &Presser,
) -> Result<Applied, String> {
    const UNKNOWN: &str = "unknown button";
    if !buttons.permits(data) {
        return Err(UNKNOWN.to_string());
    }
    let who = &presser.shown;
    let (kind, rest) = data.split_once(':').ok_or(UNKNOWN)?;
    let decide = |pattern: &str, action, ttl: Option<Duration>, reason: String| NewSuppression {
        via: presser.platform.to_ascii_lowercase(),
        pattern_id: pattern.to_string(),
        action,
        reason,
        ttl,
        created_by: presser.created_by.clone(),
    };
    match kind {
        "s" => {
            // `permits` let through only a duration of a configured button.
            let (secs, pattern) = rest.split_once(':').ok_or(UNKNOWN)?;
            let ttl = Duration::from_secs(secs.parse().map_err(|_| UNKNOWN)?);
            let changed = suppressions
                .create(decide(
                    pattern,
                    OperatorAction::Suppress,
                    Some(ttl),
                    format!(
                        "suppressed for {} from {} by {who}",
                        human(ttl),
                        presser.platform
                    ),
                ))
                .await
                .map_err(|e| e.to_string())?;
            let mut answer = format!("Suppressed for {}.", human(ttl));
            if !changed.silence_errors.is_empty() {
                answer.push_str(" The Alertmanager silence failed; howl's log says why.");
            }
            Ok(Applied::Decided {
                answer,
                status: format!("Suppressed for {} by {who}", human(ttl)),
                undo: undo_data(&changed.suppression),
            })
        }
        "a" => {
            let changed = suppressions
                .create(decide(
                    rest,
                    OperatorAction::AlwaysAlert,
                    None,
                    format!("set to always alert from {} by {who}", presser.platform),
                ))
                .await
                .map_err(|e| e.to_string())?;
            Ok(Applied::Decided {
                answer: "It will always alert.".to_string(),
                status: format!("Always alerts (set by {who})"),
                undo: undo_data(&changed.suppression),
            })
        }
        "u" => {
            let (id, made) = rest.split_once(':').ok_or(UNKNOWN)?;
            // The decision the button was made for, if it is still there
            // and was not replaced since.
            let current = suppressions
                .list()
                .map_err(|e| e.to_string())?
                .into_iter()
                .find(|s| s.id == id && s.created_at.timestamp_micros().to_string() == made);
            if current.is_none() {
                return Ok(Applied::Nothing {
                    answer: "Nothing to undo: that decision ended or was replaced since."
                        .to_string(),
                });
            }
            undo(suppressions, id, presser).await
        }
        _ => Err(UNKNOWN.to_string()),
    }
}

/// Ends decision `id` for `presser`.
async fn undo(suppressions: &Suppressions, id: &str, presser: &Presser) -> Result<Applied, String> {
    let who = &presser.shown;
    match suppressions
        .remove(
            id,
            &Actor {
                who: presser.created_by.clone(),
                via: presser.platform.to_ascii_lowercase(),
            },
        )
        .await
        .map_err(|e| e.to_string())?
    {
        Some(changed) => {
            tracing::info!(user = %who, id = %changed.suppression.id, "a decision was undone from {}", presser.platform);
            Ok(Applied::Undone {
                pattern: changed.suppression.pattern_id,
            })
        }
        None => Ok(Applied::Nothing {
            answer: "Nothing to undo: it already ended.".to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buttons(specs: &str) -> Result<Buttons, String> {
        #[derive(Deserialize)]
        struct Options {
            buttons: Vec<ButtonSpec>,
        }
        let options: Options =
            toml::from_str(&format!("buttons = {specs}")).map_err(|e| e.message().to_string())?;
        Buttons::new(&options.buttons, &default_pattern_field())
    }

    #[test]
    fn buttons_carry_their_action_within_64_bytes() {
        let buttons = buttons("['suppress:1d', 'suppress:12h', 'always_alert']").unwrap();
        assert_eq!(
            buttons.for_pattern("3f9a0c1d2e4b5a69").unwrap(),
            [
                (
                    "Suppress 1d".to_string(),
                    "s:86400:3f9a0c1d2e4b5a69".to_string()
                ),
                (
                    "Suppress 12h".to_string(),
                    "s:43200:3f9a0c1d2e4b5a69".to_string()
                ),
                ("Always alert".to_string(), "a:3f9a0c1d2e4b5a69".to_string()),
            ]
        );
        assert!(
            buttons.for_pattern(&"x".repeat(60)).is_none(),
            "over 64 bytes"
        );
        assert!(buttons.for_pattern("").is_none());
    }

    #[test]
    fn buttons_that_make_no_sense_are_refused_while_reading() {
        for (specs, expected) in [
            ("['suppress:forever']", "no valid duration"),
            ("['suppress:0s']", "less than a second"),
            ("['suppress:500ms']", "less than a second"),
            ("['suppress:3651d']", "longer than 3650 days"),
            ("['mute']", "is neither"),
            ("[]", "is empty"),
            ("['suppress:1d', 'suppress:24h']", "the same button twice"),
        ] {
            let error = buttons(specs).err().unwrap();
            assert!(error.contains(expected), "{specs}: {error}");
        }
    }

    #[tokio::test]
    async fn presses_decide_undo_and_refuse_what_no_button_sends() {
        let dir = tempfile::tempdir().unwrap();
        let suppressions = Suppressions::new(crate::state::StateHandle::new(dir.path().into()));
        let presser = Presser {
            shown: "@alice".into(),
            created_by: "telegram @alice (id 7)".into(),
            platform: "Telegram",
        };
        let buttons = buttons("['suppress:1h', 'always_alert']").unwrap();
        let Applied::Decided { status, undo, .. } =
            apply(&suppressions, &buttons, "s:3600:p1", &presser)
                .await
                .unwrap()
        else {
            panic!("a decision")
        };
        assert_eq!(status, "Suppressed for 1h by @alice");
        let listed = suppressions.list().unwrap();
        assert_eq!(
            listed[0].reason,
            "suppressed for 1h from Telegram by @alice"
        );
        assert_eq!(listed[0].created_by, "telegram @alice (id 7)");
        assert!(matches!(
            apply(&suppressions, &buttons, &undo, &presser).await.unwrap(),
            Applied::Undone { pattern } if pattern == "p1"
        ));
        assert!(matches!(
            apply(&suppressions, &buttons, &undo, &presser)
                .await
                .unwrap(),
            Applied::Nothing { .. }
        ));
        let Applied::Decided { undo: old_undo, .. } =
            apply(&suppressions, &buttons, "s:3600:p2", &presser)
                .await
                .unwrap()
        else {
            panic!("a decision")
        };
        // Someone replaces the decision (it keeps its id): the old Undo
        // must not end the new one.
        suppressions
            .create(NewSuppression {
                pattern_id: "p2".into(),
                via: "api".into(),
                action: OperatorAction::AlwaysAlert,
                reason: "must page".into(),
                ttl: None,
                created_by: "alice".into(),
            })
            .await
            .unwrap();
        assert!(matches!(
            apply(&suppressions, &buttons, &old_undo, &presser)
                .await
                .unwrap(),
            Applied::Nothing { .. }
        ));
        assert_eq!(
            suppressions.list().unwrap()[0].action,
            OperatorAction::AlwaysAlert
        );
        for forged in [
            "",
            "s:0:p",
            "s:-5:p",
            "s:+3600:p",
            "s:03600:p",
            "s:7200:p",
            "s:99999999999999999999:p",
            "x:p",
            "s:60",
            "a:with space",
            "u:",
            "u:p2",
        ] {
            assert!(
                apply(&suppressions, &buttons, forged, &presser)
                    .await
                    .is_err(),
                "{forged:?} was applied"
            );
        }
        let left = suppressions.list().unwrap();
        assert_eq!(left.len(), 1, "only p2's suppression");
        assert_eq!(left[0].pattern_id, "p2");
        let only_suppress = super::tests::buttons("['suppress:1h']").unwrap();
        assert!(
            apply(&suppressions, &only_suppress, "a:p3", &presser)
                .await
                .is_err(),
            "no always-alert button"
        );
    }
}
