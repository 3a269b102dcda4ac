use super::*;

fn labels(sample: &Sample) -> Vec<(&str, &str)> {
    sample
        .labels
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

fn find<'a>(samples: &'a [Sample], name: &str) -> &'a Sample {
    samples
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no sample {name}"))
}

#[test]
fn reads_the_example_of_the_format_documentation() {
    let text = r#"# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400"}    3 1395066363000

# Escaping in label values:
msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9

# Minimalistic line:
metric_without_timestamp_and_labels 12.47

# A weird metric from before the epoch:
something_weird{problem="division by zero"} +Inf -3982045

# A histogram, which has a pretty complex representation in the text format:
# HELP http_request_duration_seconds A histogram of the request duration.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.05"} 24054
http_request_duration_seconds_bucket{le="+Inf"} 144320
http_request_duration_seconds_sum 53423
http_request_duration_seconds_count 144320

# Finally a summary, which has a complex representation, too:
# HELP rpc_duration_seconds A summary of the RPC duration in seconds.
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile="0.01"} 3102
rpc_duration_seconds{quantile="0.99"} 76656
rpc_duration_seconds_sum 1.7560473e+07
rpc_duration_seconds_count 2693
"#;
    let samples = parse(text).unwrap();
    assert_eq!(samples.len(), 13);
    let first = &samples[0];
    assert_eq!(first.name, "http_requests_total");
    assert_eq!(labels(first), [("method", "post"), ("code", "200")]);
    assert_eq!(
        (first.value, first.timestamp_ms, first.kind),
        (1027.0, Some(1_395_066_363_000), MetricKind::Counter)
    );
    let msdos = find(&samples, "msdos_file_access_time_seconds");
    assert_eq!(
        labels(msdos),
        [
            ("path", r"C:\DIR\FILE.TXT"),
            ("error", "Cannot find file:\n\"FILE.TXT\"")
        ]
    );
    assert_eq!(msdos.value, 1.458_255_915e9);
    assert_eq!(
        find(&samples, "metric_without_timestamp_and_labels").kind,
        MetricKind::Gauge,
        "untyped"
    );
    let weird = find(&samples, "something_weird");
    assert_eq!(
        (weird.value, weird.timestamp_ms),
        (f64::INFINITY, Some(-3_982_045))
    );
    let bucket = find(&samples, "http_request_duration_seconds_bucket");
    assert_eq!(bucket.kind, MetricKind::Counter);
    assert_eq!(labels(bucket), [("le", "0.05")]);
    assert_eq!(
        find(&samples, "http_request_duration_seconds_sum").kind,
        MetricKind::Counter
    );
    let quantile = find(&samples, "rpc_duration_seconds");
    assert_eq!(quantile.kind, MetricKind::Gauge);
    let count = find(&samples, "rpc_duration_seconds_count");
    assert_eq!((count.kind, count.value), (MetricKind::Counter, 2693.0));
}

#[test]
fn odd_but_valid_lines_parse() {
    let text = "\
#   free text comment with # inside
# HELP odd_total help with \\\\ and \\n escapes and { braces }
# TYPE odd_total counter
odd_total{} 1
odd_total{ a = \"x\" , b=\"y\", } 2
odd_total{a=\"}{,=\\\"\"} 3\r
odd_total{a=\"tab\\tkept\"}\t4\t17
odd_total{a=\"ünïcödé ✓\"} 5
  indented_gauge 6  
name:with:colons{_under=\"\"} -7.5e-3
nan_value NaN
neg_inf -Inf
lower_inf inf
";
    let samples = parse(text).unwrap();
    let values: Vec<f64> = samples.iter().map(|s| s.value).collect();
    assert_eq!(&values[..7], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, -0.0075]);
    assert!(samples[0].labels.is_empty());
    assert_eq!(labels(&samples[1]), [("a", "x"), ("b", "y")]);
    assert_eq!(labels(&samples[2]), [("a", "}{,=\"")]);
    assert_eq!(labels(&samples[3]), [("a", "tab\\tkept")]);
    assert_eq!(samples[3].timestamp_ms, Some(17));
    assert_eq!(labels(&samples[4]), [("a", "ünïcödé ✓")]);
    assert_eq!(samples[5].name, "indented_gauge");
    assert_eq!(labels(&samples[6]), [("_under", "")]);
    assert!(samples[7].value.is_nan());
    assert_eq!(samples[8].value, f64::NEG_INFINITY);
    assert_eq!(samples[9].value, f64::INFINITY);
    assert!(samples[..5].iter().all(|s| s.kind == MetricKind::Counter));
}

#[test]
fn suffixes_belong_to_a_histogram_or_summary_only_when_declared() {
    let text = "\
# TYPE requests_count gauge
requests_count 3
# TYPE lat summary
lat_bucket 1
lat_sum 2
";
    let samples = parse(text).unwrap();
    assert_eq!(samples[0].kind, MetricKind::Gauge, "its own TYPE wins");
    assert_eq!(
        samples[1].kind,
        MetricKind::Gauge,
        "summaries have no buckets"
    );
    assert_eq!(samples[2].kind, MetricKind::Counter);
}

#[test]
fn an_empty_exposition_has_no_samples() {
    assert_eq!(parse(""), Ok(Vec::new()));
    assert_eq!(parse("\n# only comments\n\n"), Ok(Vec::new()));
}

#[test]
fn malformed_lines_fail_the_scrape_naming_the_line() {
    for (text, expected) in [
        ("ok 1\n9bad 1", "line 2: invalid metric name `9bad`"),
        ("m{a=\"x\" 1", "expected `,` or `}` after label `a`"),
        ("m{a=x} 1", "must be quoted"),
        ("m{a=\"x} 1", "unterminated value"),
        ("m{a=\"1\",a=\"2\"} 1", "appears twice"),
        ("m{1a=\"x\"} 1", "invalid label name"),
        ("m", "`m` has no value"),
        ("m one", "invalid value `one`"),
        ("m 1 12.5", "invalid timestamp"),
        ("m 1 2 3", "unexpected `3`"),
        ("# TYPE m histogramm", "unknown metric type"),
        ("# TYPE m", "needs a metric name and a type"),
    ] {
        let error = parse(text).unwrap_err().to_string();
        assert!(error.contains(expected), "{text:?}: {error}");
    }
}
