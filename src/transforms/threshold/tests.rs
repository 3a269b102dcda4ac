//! The running transform: alert events, VRL rules, staleness in real time,
//! restarts through the state store, and option checks. (The state
//! machine's own cases are in `state_tests.rs`.)

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use vrl::value::Value;

use super::ThresholdConfig;
use crate::components::transform::TransformConfig;
use crate::event::Event;
use crate::event::metric::Metric;
use crate::state::StateHandle;
use crate::transforms::task_harness::{Harness, context, parse, parse_error};

const HIGH_CPU: &str = r#"
[[rules]]
name = "HighCpu"
metric = "cpu_usage_percent"
condition = "value > 80"
for_secs = 300
group_by = ["host"]
severity = "critical"
summary = "CPU {{ .value }}% > {{ .threshold }}% on {{ .tags.host }} for {{ .duration }}"
"#;

fn start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_763_800_000, 0).unwrap()
}

/// A sample of `name` on `host`, `secs` after the start.
fn sample(name: &str, host: &str, secs: i64, value: f64) -> Event {
    Metric::gauge(name, value)
        .tag("host", host)
        .tag("cpu", "total")
        .into_event(start() + TimeDelta::seconds(secs), "test")
        .unwrap()
}

/// Samples of `host` every 15 s over `from..=to` seconds.
fn samples(host: &str, from: i64, to: i64, value: f64) -> Vec<Event> {
    (from..=to)
        .step_by(15)
        .map(|secs| sample("cpu_usage_percent", host, secs, value))
        .collect()
}

fn field(event: &Event, path: &str) -> Value {
    let path = vrl::path::parse_value_path(path).unwrap();
    event.get(&path).cloned().unwrap_or(Value::Null)
}

fn text(event: &Event, path: &str) -> String {
    field(event, path).to_string_lossy().into_owned()
}

fn states(events: &[Event]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| (text(e, "alert.key"), text(e, "alert.state")))
        .collect()
}

fn harness(options: &str, dir: &tempfile::TempDir) -> Harness {
    Harness::start_with_state::<ThresholdConfig>(
        options,
        &[],
        StateHandle::new(dir.path().to_path_buf()),
    )
}

#[tokio::test(start_paused = true)]
async fn a_six_minute_breach_fires_and_resolves_and_a_four_minute_one_says_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(HIGH_CPU, &dir);
    let mut batch = samples("web-1", 0, 360, 93.0);
    batch.extend(samples("web-2", 0, 240, 97.0));
    batch.push(sample("cpu_usage_percent", "web-1", 375, 20.0));
    batch.push(sample("cpu_usage_percent", "web-2", 255, 20.0));
    batch.push(sample("memory_used_percent", "web-2", 255, 99.0));
    h.send(batch).await;
    let alerts = h.finish().await.default;
    assert_eq!(
        states(&alerts),
        [
            ("HighCpu/host=web-1".to_string(), "firing".to_string()),
            ("HighCpu/host=web-1".to_string(), "resolved".to_string()),
        ]
    );
    let (firing, resolved) = (&alerts[0], &alerts[1]);
    assert_eq!(text(firing, "alert.name"), "HighCpu");
    assert_eq!(text(firing, "alert.severity"), "critical");
    assert_eq!(field(firing, "alert.value"), Value::from_f64_or_zero(93.0));
    assert_eq!(
        field(firing, "alert.threshold"),
        Value::from_f64_or_zero(80.0)
    );
    assert_eq!(
        field(firing, "alert.for_secs"),
        Value::from_f64_or_zero(300.0)
    );
    assert_eq!(
        field(firing, "alert.active_for_secs"),
        Value::from_f64_or_zero(300.0)
    );
    assert_eq!(
        text(firing, "alert.summary"),
        "CPU 93% > 80% on web-1 for 5m"
    );
    assert_eq!(text(firing, "host"), "web-1", "for the sinks' host label");
    assert_eq!(field(firing, "tags"), vrl::value!({"host": "web-1"}));
    assert_eq!(
        field(firing, "timestamp"),
        Value::Timestamp(start() + TimeDelta::seconds(300))
    );
    assert_eq!(
        field(resolved, "alert.value"),
        Value::from_f64_or_zero(20.0)
    );
    assert_eq!(
        field(resolved, "alert.fired_at"),
        Value::Timestamp(start() + TimeDelta::seconds(300))
    );
    assert_eq!(
        field(resolved, "alert.resolved_at"),
        Value::Timestamp(start() + TimeDelta::seconds(375))
    );
    assert_eq!(field(resolved, "alert.stale"), Value::Boolean(false));
    assert_eq!(
        text(resolved, "alert.summary"),
        "CPU 93% > 80% on web-1 for 6m 15s"
    );
}

#[tokio::test(start_paused = true)]
async fn the_default_summary_says_value_condition_group_and_duration() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(
        "[[rules]]\nname = \"Mem\"\nmetric = \"memory_*\"\ncondition = \"value >= 85\"\ngroup_by = [\"host\"]",
        &dir,
    );
    h.send(vec![sample("memory_used_percent", "db-1", 0, 91.256)])
        .await;
    let alerts = h.finish().await.default;
    assert_eq!(
        text(&alerts[0], "alert.summary"),
        "Mem: memory_used_percent is 91.26 (value >= 85) on host=db-1 for 0s"
    );
    assert_eq!(text(&alerts[0], "alert.severity"), "warning");
}

#[tokio::test(start_paused = true)]
async fn a_vrl_rule_judges_the_whole_event() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(
        r#"
[[rules]]
name = "DiskFull"
metric = "filesystem_used_percent"
vrl = 'to_float!(.metric.value) > 90 && .metric.tags.mountpoint != "/boot"'
group_by = ["host", "mountpoint"]
"#,
        &dir,
    );
    let disk = |mountpoint: &str, value: f64| {
        Metric::gauge("filesystem_used_percent", value)
            .tag("host", "db-1")
            .tag("mountpoint", mountpoint)
            .into_event(start(), "test")
            .unwrap()
    };
    h.send(vec![
        disk("/boot", 99.0),
        disk("/", 95.0),
        disk("/data", 50.0),
    ])
    .await;
    let alerts = h.finish().await.default;
    assert_eq!(
        states(&alerts),
        [(
            "DiskFull/host=db-1,mountpoint=/".to_string(),
            "firing".to_string()
        )]
    );
    assert_eq!(field(&alerts[0], "alert.threshold"), Value::Null);
    assert_eq!(
        text(&alerts[0], "alert.condition"),
        "to_float!(.metric.value) > 90 && .metric.tags.mountpoint != \"/boot\""
    );
}

#[tokio::test(start_paused = true)]
async fn a_host_that_stops_reporting_resolves_after_stale_after_of_real_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(&format!("stale_after_secs = 60\n{HIGH_CPU}"), &dir);
    h.send(samples("web-1", 0, 300, 95.0)).await;
    let firing = h.next(None).await;
    assert_eq!(text(&firing[0], "alert.state"), "firing");
    tokio::time::sleep(Duration::from_secs(50)).await;
    h.settle().await;
    assert!(h.take(None).is_empty(), "not stale yet");
    let resolved = h.next(None).await;
    assert_eq!(text(&resolved[0], "alert.state"), "resolved");
    assert_eq!(field(&resolved[0], "alert.stale"), Value::Boolean(true));
    assert_eq!(
        field(&resolved[0], "alert.resolved_at"),
        Value::Timestamp(start() + TimeDelta::seconds(360)),
        "stale from the last sample plus stale_after"
    );
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_restart_mid_pending_fires_on_time_and_one_mid_firing_does_not_fire_again() {
    let dir = tempfile::tempdir().unwrap();
    let first = harness(HIGH_CPU, &dir);
    first.send(samples("web-1", 0, 150, 95.0)).await;
    first.send(samples("web-2", 0, 300, 95.0)).await;
    let before = first.finish().await.default;
    assert_eq!(
        states(&before),
        [("HighCpu/host=web-2".to_string(), "firing".to_string())]
    );

    let second = harness(HIGH_CPU, &dir);
    let mut batch = samples("web-1", 165, 300, 95.0);
    batch.extend(samples("web-2", 315, 450, 95.0));
    batch.push(sample("cpu_usage_percent", "web-2", 465, 10.0));
    second.send(batch).await;
    let after = second.finish().await.default;
    assert_eq!(
        states(&after),
        [
            ("HighCpu/host=web-1".to_string(), "firing".to_string()),
            ("HighCpu/host=web-2".to_string(), "resolved".to_string()),
        ],
        "web-1 fires 300 s after its first breach, web-2 only resolves"
    );
    assert_eq!(
        field(&after[0], "alert.started_at"),
        Value::Timestamp(start())
    );
}

#[tokio::test(start_paused = true)]
async fn events_that_are_not_metrics_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(HIGH_CPU, &dir);
    h.send(vec![
        Event::from_value(vrl::value!({"message": "a log line"})),
        Event::from_value(vrl::value!({"metric": {"name": "cpu_usage_percent", "value": "high"}})),
    ])
    .await;
    assert!(h.finish().await.default.is_empty());
}

#[test]
fn rejects_rules_that_cannot_work() {
    let rule = |body: &str| format!("[[rules]]\nname = \"R\"\nmetric = \"m\"\n{body}");
    for (options, expected, option) in [
        ("rules = []".to_string(), "`rules` is empty", Some("rules")),
        (rule(""), "needs a `condition`", Some("rules[0]")),
        (
            rule("condition = \"value > 1\"\nvrl = 'true'"),
            "not both",
            None,
        ),
        (rule("vrl = '.metric.value'"), "returns a boolean", None),
        (
            format!(
                "{}\n{}",
                rule("condition = \"value > 1\""),
                rule("condition = \"value > 2\"")
            ),
            "two rules are named `R`",
            Some("rules[1].name"),
        ),
        (
            "[[rules]]\nname = \"a b\"\nmetric = \"m\"\ncondition = \"value > 1\"".to_string(),
            "`name` must be",
            Some("rules[0].name"),
        ),
        (
            "[[rules]]\nname = \"R\"\nmetric = \"[\"\ncondition = \"value > 1\"".to_string(),
            "not a valid glob",
            Some("rules[0].metric"),
        ),
        (
            format!(
                "stale_after_secs = 0\n{}",
                rule("condition = \"value > 1\"")
            ),
            "`stale_after_secs`",
            Some("stale_after_secs"),
        ),
    ] {
        let config: ThresholdConfig = parse(&options);
        let Err(error) = config.build(&context(&options)) else {
            panic!("options build: {options}")
        };
        assert!(
            error.message.contains(expected),
            "{options}\n=> {}",
            error.message
        );
        assert_eq!(error.option.as_deref(), option, "{options}");
    }
}

#[test]
fn values_a_rule_cannot_take_fail_while_parsing_where_they_are_written() {
    let rule = |body: &str| format!("[[rules]]\nname = \"R\"\nmetric = \"m\"\n{body}");
    for (options, expected, at) in [
        (rule("condition = \"> 80\""), "use `vrl`", "\"> 80\""),
        (
            rule("condition = \"value > 1\"\nfor_secs = -1"),
            "invalid duration",
            "-1",
        ),
        (
            rule("condition = \"value > 1\"\nsummary = \"{{ .value\""),
            "invalid template",
            "\"{{ .value\"",
        ),
        (
            format!("max_groups = 0\n{}", rule("condition = \"value > 1\"")),
            "nonzero",
            "0",
        ),
    ] {
        let (message, span) = parse_error::<ThresholdConfig>(&options);
        assert!(message.contains(expected), "{options}\n=> {message}");
        assert_eq!(span, at, "{options}\n=> {message}");
    }
}

#[tokio::test(start_paused = true)]
async fn for_secs_takes_a_duration_with_units() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(
        &HIGH_CPU.replace("for_secs = 300", "for_secs = \"5m\""),
        &dir,
    );
    h.send(samples("web-1", 0, 300, 93.0)).await;
    let fired = h.finish().await.default;
    assert_eq!(
        states(&fired),
        [("HighCpu/host=web-1".to_string(), "firing".to_string())]
    );
    assert_eq!(
        field(&fired[0], "alert.for_secs"),
        Value::from_f64_or_zero(300.0)
    );
}
