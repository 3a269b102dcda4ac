//! Notifications as Alertmanager (v4), SigNoz and Grafana send them,
//! turned into the documented envelope.

use super::*;

const ALERTMANAGER: &str = r#"{
  "version": "4", "groupKey": "{}:{alertname=\"DiskFull\"}", "truncatedAlerts": 0,
  "status": "firing", "receiver": "howl",
  "groupLabels": {"alertname": "DiskFull"},
  "commonLabels": {"alertname": "DiskFull", "severity": "critical"},
  "commonAnnotations": {}, "externalURL": "http://am:9093",
  "alerts": [
    {"status": "firing",
     "labels": {"alertname": "DiskFull", "severity": "critical", "instance": "db-1:9100"},
     "annotations": {"summary": "Disk 97% full on db-1", "runbook": "https://wiki/disk"},
     "startsAt": "2026-12-06T05:00:00.123456789Z", "endsAt": "0001-01-01T00:00:00Z",
     "generatorURL": "http://prom:9090/graph?g0.expr=x", "fingerprint": "1a2b3c4d5e6f7081"},
    {"status": "resolved",
     "labels": {"alertname": "DiskFull", "severity": "critical", "instance": "db-2:9100"},
     "annotations": {"description": "Disk full on db-2"},
     "startsAt": "2026-12-06T04:00:00Z", "endsAt": "2026-12-06T04:30:00+02:00",
     "generatorURL": "", "fingerprint": "ffff000011112222"}
  ]
}"#;

fn get<'a>(event: &'a Event, path: &str) -> &'a Value {
    let mut value = event.value();
    for part in path.split('.') {
        value = value
            .as_object()
            .and_then(|o| o.get(part))
            .unwrap_or_else(|| panic!("no {path} in {:?}", event.value()));
    }
    value
}

/// Whether the event has a value at `path` (dotted).
fn has(event: &Event, path: &str) -> bool {
    let mut value = event.value();
    for part in path.split('.') {
        match value.as_object().and_then(|o| o.get(part)) {
            Some(inner) => value = inner,
            None => return false,
        }
    }
    true
}

fn s(event: &Event, path: &str) -> String {
    get(event, path).to_string_lossy().into_owned()
}

#[test]
fn an_alertmanager_notification_gives_one_envelope_per_alert() {
    let events = decode(ALERTMANAGER.as_bytes(), Utc::now()).unwrap();
    assert_eq!(events.len(), 2);
    let firing = &events[0];
    assert_eq!(s(firing, "alert.name"), "DiskFull");
    assert_eq!(s(firing, "alert.state"), "firing");
    assert_eq!(s(firing, "alert.severity"), "critical");
    assert_eq!(s(firing, "alert.summary"), "Disk 97% full on db-1");
    assert_eq!(s(firing, "alert.key"), "DiskFull/1a2b3c4d5e6f7081");
    assert_eq!(s(firing, "alert.labels.instance"), "db-1:9100");
    assert_eq!(s(firing, "alert.annotations.runbook"), "https://wiki/disk");
    assert_eq!(s(firing, "alert.fingerprint"), "1a2b3c4d5e6f7081");
    assert_eq!(s(firing, "alert.source"), "alertmanager");
    assert_eq!(s(firing, "alert.receiver"), "howl");
    assert_eq!(s(firing, "alert.external_url"), "http://am:9093");
    assert_eq!(
        s(firing, "alert.generator_url"),
        "http://prom:9090/graph?g0.expr=x"
    );
    assert_eq!(
        s(firing, "alert.starts_at"),
        "2026-12-06T05:00:00.123456789Z"
    );
    assert!(!has(firing, "alert.ends_at"), "Go's zero time is no end");
    assert_eq!(s(firing, "message"), "Disk 97% full on db-1");
    assert_eq!(s(firing, "host"), "db-1:9100");
    assert_eq!(s(firing, "source_type"), "alert_webhook");
    assert_eq!(s(firing, "raw.version"), "4");
    assert_eq!(s(firing, "raw.alert.fingerprint"), "1a2b3c4d5e6f7081");
    assert!(
        !has(firing, "raw.alerts"),
        "not every alert copied into each event"
    );

    let resolved = &events[1];
    assert_eq!(s(resolved, "alert.state"), "resolved");
    assert_eq!(s(resolved, "alert.summary"), "Disk full on db-2");
    assert_eq!(s(resolved, "alert.ends_at"), "2026-12-06T02:30:00Z");
    assert_eq!(s(resolved, "timestamp"), "2026-12-06T02:30:00Z");
    assert!(!has(resolved, "alert.generator_url"));
}

#[test]
fn grafana_is_told_apart_and_keeps_its_values_and_links() {
    let body = r#"{
      "receiver": "howl", "status": "firing", "orgId": 1, "version": "1",
      "state": "alerting", "title": "[FIRING:1] HighLatency",
      "alerts": [{"status": "firing",
        "labels": {"alertname": "HighLatency", "grafana_folder": "api"},
        "annotations": {}, "startsAt": "2026-12-06T07:00:00+02:00",
        "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "",
        "values": {"B": 44.2, "C": 1}, "silenceURL": "http://grafana/silence",
        "dashboardURL": "", "valueString": "[ metric='' value=44.2 ]"}]
    }"#;
    let events = decode(body.as_bytes(), Utc::now()).unwrap();
    let e = &events[0];
    assert_eq!(s(e, "alert.source"), "grafana");
    assert_eq!(
        s(e, "alert.summary"),
        "HighLatency",
        "the name when nothing else"
    );
    assert!(
        s(e, "alert.key").starts_with("HighLatency/"),
        "a key from the labels when there is no fingerprint"
    );
    assert_eq!(
        get(e, "alert.values.B"),
        &Value::from(serde_json::json!(44.2))
    );
    assert_eq!(s(e, "alert.silence_url"), "http://grafana/silence");
    assert!(!has(e, "alert.dashboard_url"));
    assert_eq!(s(e, "alert.starts_at"), "2026-12-06T05:00:00Z");
    assert_eq!(s(e, "raw.alert.valueString"), "[ metric='' value=44.2 ]");
}

#[test]
fn the_same_labels_give_the_same_key_without_a_fingerprint() {
    let body =
        |order: &str| format!(r#"{{"alerts": [{{"labels": {order}, "annotations": {{}}}}]}}"#);
    let a = decode(
        body(r#"{"alertname": "X", "a": "1", "b": "2"}"#).as_bytes(),
        Utc::now(),
    )
    .unwrap();
    let b = decode(
        body(r#"{"b": "2", "alertname": "X", "a": "1"}"#).as_bytes(),
        Utc::now(),
    )
    .unwrap();
    let c = decode(
        body(r#"{"alertname": "X", "a": "1", "b": "3"}"#).as_bytes(),
        Utc::now(),
    )
    .unwrap();
    assert_eq!(s(&a[0], "alert.key"), s(&b[0], "alert.key"));
    assert_eq!(
        s(&a[0], "alert.key").len(),
        "X/".len() + 16,
        "64 bits of SHA-256"
    );
    assert_ne!(s(&a[0], "alert.key"), s(&c[0], "alert.key"));
    assert_eq!(s(&a[0], "alert.state"), "firing", "no status: firing");
}

#[test]
fn what_is_not_a_notification_says_why() {
    for (body, expected) in [
        ("{oops", "invalid JSON"),
        ("[1, 2]", "not a JSON object"),
        (r#"{"status": "firing"}"#, "no `alerts` array"),
        (r#"{"alerts": [1]}"#, "alert 0 is not a JSON object"),
    ] {
        let error = decode(body.as_bytes(), Utc::now()).unwrap_err();
        assert!(error.contains(expected), "{body}: {error}");
    }
    assert!(decode(br#"{"alerts": []}"#, Utc::now()).unwrap().is_empty());
}

/// A mapping compiled as the option would be.
fn program(source: &str) -> Arc<vrl::compiler::Program> {
    let file = crate::diagnostic::SourceFile::new("t.toml", String::new());
    Arc::new(
        compile(
            source,
            VrlOrigin::File(std::path::Path::new("mapping.vrl")),
            &file,
            "mapping",
        )
        .expect("the mapping compiles"),
    )
}

const UPTIME_MAPPING: &str = r#"
.alert.name = "SiteDown"
.alert.state = if .check.up == true { "resolved" } else { "firing" }
.alert.severity = "critical"
.alert.summary = "down: " + string!(.check.url)
.alert.labels = { "site": .check.url, "region": .check.region, "attempts": .check.attempts }
.alert.starts_at = .since
.alert.fingerprint = .id
"#;

#[test]
fn a_mapped_payload_gives_the_same_envelope_and_keeps_the_original() {
    let body = r#"{"id": "chk-42", "since": "2026-12-06T05:00:00+01:00",
        "check": {"url": "https://shop.example", "up": false, "region": "eu", "attempts": 3}}"#;
    let events = mapped::decode(&program(UPTIME_MAPPING), body.as_bytes(), Utc::now()).unwrap();
    assert_eq!(events.len(), 1);
    let alert = &events[0];
    assert_eq!(s(alert, "alert.name"), "SiteDown");
    assert_eq!(s(alert, "alert.state"), "firing");
    assert_eq!(s(alert, "alert.severity"), "critical");
    assert_eq!(s(alert, "alert.summary"), "down: https://shop.example");
    assert_eq!(s(alert, "alert.key"), "SiteDown/chk-42");
    assert_eq!(s(alert, "alert.labels.site"), "https://shop.example");
    assert_eq!(
        s(alert, "alert.labels.attempts"),
        "3",
        "non-text labels become text"
    );
    assert_eq!(s(alert, "alert.source"), "generic");
    assert_eq!(s(alert, "alert.starts_at"), "2026-12-06T04:00:00Z");
    assert_eq!(s(alert, "timestamp"), "2026-12-06T04:00:00Z");
    assert_eq!(s(alert, "message"), "down: https://shop.example");
    assert_eq!(s(alert, "raw.check.region"), "eu", "the payload as sent");
    assert!(!has(alert, "raw.alert"), "not the mapping's output");

    let resolved = r#"{"id": "chk-42", "check": {"url": "https://shop.example", "up": true}}"#;
    let events = mapped::decode(&program(UPTIME_MAPPING), resolved.as_bytes(), Utc::now()).unwrap();
    assert_eq!(s(&events[0], "alert.state"), "resolved");
    assert_eq!(
        s(&events[0], "alert.key"),
        "SiteDown/chk-42",
        "the same key, so the message is edited"
    );
}

#[test]
fn a_mapping_may_make_several_alerts_and_a_body_may_carry_several_payloads() {
    let mapping = program(
        r#".alerts = map_values(array!(.incidents)) -> |i| { { "name": i.title, "labels": { "team": .team }, "raw": i } }"#,
    );
    let body = r#"[{"team": "db", "incidents": [{"title": "Lag"}, {"title": "Full"}]},
                   {"team": "web", "incidents": [{"title": "5xx"}]}]"#;
    let events = mapped::decode(&mapping, body.as_bytes(), Utc::now()).unwrap();
    let names: Vec<_> = events.iter().map(|e| s(e, "alert.name")).collect();
    assert_eq!(names, ["Lag", "Full", "5xx"]);
    assert_eq!(
        s(&events[2], "raw.title"),
        "5xx",
        "each keeps the `raw` it was given"
    );
    assert!(!has(&events[2], "alert.raw"));
    assert_ne!(
        s(&events[0], "alert.key"),
        s(&events[1], "alert.key"),
        "keys from the labels differ with the name"
    );
}

#[test]
fn what_a_mapping_gets_wrong_is_refused_with_the_reason() {
    let cases = [
        (
            r#".alert.severity = "high""#,
            "{}",
            "`.alert.name` is missing",
        ),
        (
            r#".alert.name = "A"; .alert.state = "pending""#,
            "{}",
            "\"pending\"",
        ),
        (
            r#".alert.name = "A"; .alert.starts_at = 5"#,
            "{}",
            "`.alert.starts_at` must be",
        ),
        (
            r#".alert.name = "A"; .alert.starts_at = "yesterday""#,
            "{}",
            "not an RFC 3339 time",
        ),
        (
            r#".alert.name = "A"; .alert.labels = "x""#,
            "{}",
            "`.alert.labels` must be an object",
        ),
        (r#".x = 1"#, "{}", "no `.alert`"),
        (r#".alert = "A""#, "{}", "not an object"),
        (
            r#".alert.name = string!(.n)"#,
            r#"{"n": 1}"#,
            "`mapping` failed",
        ),
        (r#".alert.name = "A""#, "[{}, 7]", "payload 1"),
        (r#".alert.name = "A""#, "\"text\"", "neither a JSON object"),
        (r#".alert.name = "A""#, "{", "invalid JSON"),
    ];
    for (source, body, expected) in cases {
        let error =
            mapped::decode(&program(source), body.as_bytes(), Utc::now()).expect_err(source);
        assert!(error.contains(expected), "{source} on {body}: {error}");
    }
}

#[test]
fn a_payload_of_many_alerts_is_not_copied_per_alert() {
    // 20,000 alerts from one payload: a copy of the payload per alert
    // would be 20,000 copies of 20,000 items (gigabytes).
    let items: Vec<String> = (0..20_000)
        .map(|i| format!("{{\"name\": \"a{i}\"}}"))
        .collect();
    let body = format!("{{\"items\": [{}]}}", items.join(","));
    let events = mapped::decode(&program(".alerts = .items"), body.as_bytes(), Utc::now()).unwrap();
    assert_eq!(events.len(), 20_000);
    assert_eq!(s(&events[19_999], "alert.name"), "a19999");
    assert_eq!(
        get(&events[0], "raw"),
        &Value::Null,
        "no `raw` given: none kept"
    );
}
