//! Tests of the Prometheus / OpenMetrics text parser ([`Scrape`]): the
//! exposition `prometheus-client` 0.26 writes, escapes, special values,
//! the queries, and the malformed lines it must reject.

use switchboard_testkit::Scrape;

/// What `prometheus-client` 0.26 writes for a labelled counter, a gauge,
/// a histogram with a unit, and an info metric.
const OPENMETRICS: &str = r#"# HELP switchboard_requests Requests answered.
# TYPE switchboard_requests counter
switchboard_requests_total{provider="fake",outcome="ok"} 3
switchboard_requests_total{provider="fake",outcome="error"} 1
switchboard_requests_total{provider="other",outcome="ok"} 2
# HELP switchboard_in_flight Requests being served.
# TYPE switchboard_in_flight gauge
switchboard_in_flight 0
# HELP switchboard_latency_seconds Time to the last byte.
# TYPE switchboard_latency_seconds histogram
# UNIT switchboard_latency_seconds seconds
switchboard_latency_seconds_sum{provider="fake"} 0.75
switchboard_latency_seconds_count{provider="fake"} 3
switchboard_latency_seconds_bucket{le="0.1",provider="fake"} 1
switchboard_latency_seconds_bucket{le="1.0",provider="fake"} 3
switchboard_latency_seconds_bucket{le="+Inf",provider="fake"} 3
switchboard_latency_seconds_sum{provider="other"} 2.5
switchboard_latency_seconds_count{provider="other"} 1
switchboard_latency_seconds_bucket{le="0.1",provider="other"} 0
switchboard_latency_seconds_bucket{le="1.0",provider="other"} 0
switchboard_latency_seconds_bucket{le="+Inf",provider="other"} 1
# HELP switchboard_build Build information.
# TYPE switchboard_build info
switchboard_build_info{version="0.1.0"} 1
# EOF
"#;

/// Parses `text`, failing the test with the parser's message if it is bad.
fn parse(text: &str) -> Scrape {
    Scrape::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

/// The parser's error for `text`, failing the test if it parsed.
fn reject(text: &str) -> String {
    match Scrape::parse(text) {
        Ok(scrape) => panic!("{text:?} should not parse, got {scrape:?}"),
        Err(e) => e,
    }
}

#[test]
fn parses_a_prometheus_client_exposition() {
    let scrape = parse(OPENMETRICS);
    assert!(scrape.ended_with_eof());
    assert_eq!(scrape.all().len(), 15);
    assert_eq!(
        scrape.value(
            "switchboard_requests_total",
            &[("outcome", "ok"), ("provider", "fake")]
        ),
        Some(3.0),
        "label order does not matter"
    );
    assert_eq!(scrape.value("switchboard_in_flight", &[]), Some(0.0));
    assert_eq!(
        scrape.value("switchboard_build_info", &[("version", "0.1.0")]),
        Some(1.0)
    );
    assert_eq!(
        scrape.metric_type("switchboard_requests_total"),
        Some("counter")
    );
    assert_eq!(scrape.metric_type("switchboard_requests"), Some("counter"));
    assert_eq!(
        scrape.metric_type("switchboard_latency_seconds_bucket"),
        Some("histogram")
    );
    assert_eq!(scrape.metric_type("switchboard_build_info"), Some("info"));
    assert_eq!(scrape.metric_type("nothing"), None);
    assert_eq!(
        scrape.unit("switchboard_latency_seconds_sum"),
        Some("seconds")
    );
    assert_eq!(
        scrape.help("switchboard_in_flight"),
        Some("Requests being served.")
    );
}

#[test]
fn value_needs_the_exact_label_set() {
    let scrape = parse(OPENMETRICS);
    let name = "switchboard_requests_total";
    assert_eq!(scrape.value(name, &[("provider", "fake")]), None);
    assert_eq!(
        scrape.value(
            name,
            &[("provider", "fake"), ("outcome", "ok"), ("extra", "x")]
        ),
        None
    );
    assert_eq!(scrape.value(name, &[]), None);
    assert_eq!(scrape.value("switchboard_requests", &[]), None);
}

#[test]
fn sum_adds_every_sample_with_the_given_labels() {
    let scrape = parse(OPENMETRICS);
    let name = "switchboard_requests_total";
    assert_eq!(scrape.sum(name, &[]), 6.0);
    assert_eq!(scrape.sum(name, &[("provider", "fake")]), 4.0);
    assert_eq!(scrape.sum(name, &[("outcome", "ok")]), 5.0);
    assert_eq!(scrape.sum(name, &[("provider", "none")]), 0.0);
    assert_eq!(scrape.sum("never_registered_total", &[]), 0.0);
    assert_eq!(scrape.samples(name).count(), 3);
    let first = scrape.samples(name).next().expect("a sample");
    assert_eq!(first.label("outcome"), Some("ok"));
    assert_eq!(first.timestamp, None);
}

#[test]
fn histogram_helpers_read_count_sum_and_buckets() {
    let scrape = parse(OPENMETRICS);
    let base = "switchboard_latency_seconds";
    assert_eq!(scrape.histogram_count(base, &[("provider", "fake")]), 3.0);
    assert_eq!(scrape.histogram_count(base, &[]), 4.0);
    assert_eq!(scrape.histogram_sum(base, &[("provider", "fake")]), 0.75);
    assert_eq!(scrape.histogram_sum(base, &[]), 3.25);
    let fake = [("provider", "fake")];
    assert_eq!(scrape.bucket(base, &fake, 0.1), Some(1.0));
    assert_eq!(
        scrape.bucket(base, &fake, 1.0),
        Some(3.0),
        "1 finds le=\"1.0\""
    );
    assert_eq!(scrape.bucket(base, &fake, f64::INFINITY), Some(3.0));
    assert_eq!(scrape.bucket(base, &[], f64::INFINITY), Some(4.0));
    assert_eq!(scrape.bucket(base, &fake, 0.5), None, "no such bound");
    assert_eq!(scrape.bucket(base, &[("provider", "x")], 0.1), None);
}

#[test]
fn label_values_are_unescaped() {
    let text = concat!(
        r#"m{a="q\"uote",b="back\\slash",c="new\nline",d="}, #{x=\"1\"} 9",e=""} 1"#,
        "\n",
        "m{a=\"carriage\r return\", b=\"λ\"} 2\n"
    );
    let scrape = parse(text);
    let samples: Vec<_> = scrape.samples("m").collect();
    assert_eq!(samples.len(), 2);
    assert_eq!(samples[0].label("a"), Some("q\"uote"));
    assert_eq!(samples[0].label("b"), Some("back\\slash"));
    assert_eq!(samples[0].label("c"), Some("new\nline"));
    assert_eq!(samples[0].label("d"), Some(r#"}, #{x="1"} 9"#));
    assert_eq!(samples[0].label("e"), Some(""));
    assert_eq!(samples[0].value, 1.0);
    assert_eq!(samples[1].label("a"), Some("carriage\r return"));
    assert_eq!(samples[1].label("b"), Some("λ"));
    assert_eq!(
        scrape.value("m", &[("a", "carriage\r return"), ("b", "λ")]),
        Some(2.0)
    );
}

#[test]
fn special_and_numeric_values_parse() {
    let text = "a +Inf\nb -Inf\nc NaN\nd 1.5e3\ne -0.25\nf 42\ng 1e-3\nh +7\n";
    let scrape = parse(text);
    let value = |name| scrape.value(name, &[]).expect("sample present");
    assert_eq!(value("a"), f64::INFINITY);
    assert_eq!(value("b"), f64::NEG_INFINITY);
    assert!(value("c").is_nan());
    assert_eq!(value("d"), 1500.0);
    assert_eq!(value("e"), -0.25);
    assert_eq!(value("f"), 42.0);
    assert_eq!(value("g"), 0.001);
    assert_eq!(value("h"), 7.0);
    assert!(!scrape.ended_with_eof(), "Prometheus text has no # EOF");
}

#[test]
fn timestamps_exemplars_comments_and_loose_spacing_are_accepted() {
    let text = concat!(
        "# a plain comment\n",
        "#no space is a comment too\n",
        "\n",
        "with_ts{a=\"b\"} 1 1700000000000\n",
        "float_ts 2 1700000000.5\n",
        "counter_total 3 # {trace_id=\"abc\"} 1.0 1700000000.25\n",
        "bucket_bucket{le=\"1.0\"} 4 # {user=\"42\"} 0.5\n",
        "spaced{ a = \"1\" , b=\"2\", } 5\n",
        "tabbed\t6\n",
        "colon:name 7\n",
        "# HELP escaped Says \\\"hi\\\"\\nand a \\d.\n",
        "# HELP nohelp\n",
        "# EOF\n",
        "\n",
    );
    let scrape = parse(text);
    assert_eq!(
        scrape.samples("with_ts").next().and_then(|s| s.timestamp),
        Some(1.7e12)
    );
    assert_eq!(
        scrape.samples("float_ts").next().and_then(|s| s.timestamp),
        Some(1_700_000_000.5)
    );
    assert_eq!(scrape.value("counter_total", &[]), Some(3.0));
    assert_eq!(scrape.bucket("bucket", &[], 1.0), Some(4.0));
    assert_eq!(scrape.value("spaced", &[("a", "1"), ("b", "2")]), Some(5.0));
    assert_eq!(scrape.value("tabbed", &[]), Some(6.0));
    assert_eq!(scrape.value("colon:name", &[]), Some(7.0));
    assert_eq!(scrape.help("escaped"), Some("Says \"hi\"\nand a \\d."));
    assert_eq!(scrape.help("nohelp"), Some(""));
    assert!(scrape.ended_with_eof());
}

#[test]
fn malformed_sample_lines_are_rejected() {
    for bad in [
        "name",
        "name ",
        "name{} ",
        "9name 1",
        "na-me 1",
        "name{a=\"b\"}1",
        "name{a=\"b\" 1",
        "name{a=\"b} 1",
        "name{a=b} 1",
        "name{a} 1",
        "name{=\"b\"} 1",
        "name{,} 1",
        "name{9a=\"b\"} 1",
        "name{a=\"b\"c=\"d\"} 1",
        "name{a=\"1\",a=\"2\"} 1",
        "name{a=\"\\t\"} 1",
        "name{a=\"b\\\"} 1",
        "name one",
        "name 1x",
        "name 0x10",
        "name inf",
        "name nan",
        "name 1 2 3",
        "name 1 NaN",
        "name 1 ts",
        "name 1 # exemplar",
        "name 1 # {a=\"b\"}",
        "name 1 # {a=\"b\"} 1 2 3",
        " name 1",
    ] {
        let error = reject(&format!("ok 1\n{bad}\n"));
        assert!(error.starts_with("line 2: "), "{bad:?}: {error}");
    }
}

#[test]
fn malformed_metadata_and_structure_are_rejected() {
    for (bad, why) in [
        ("# TYPE\n", "invalid metric name"),
        ("# TYPE m\n", "unknown metric type"),
        ("# TYPE m countr\n", "unknown metric type"),
        ("# TYPE 1m counter\n", "invalid metric name"),
        ("# TYPE m counter\n# TYPE m gauge\n", "a second # TYPE"),
        ("# HELP m a\n# HELP m b\n", "a second # HELP"),
        ("# UNIT m s\n# UNIT m s\n", "a second # UNIT"),
        ("m 1\n# EOF\nm2 2\n", "text after # EOF"),
        ("# EOF\n# EOF\n", "text after # EOF"),
        ("# EOF now\n", "text after # EOF"),
        (
            "m{a=\"1\",b=\"2\"} 1\nm{b=\"2\",a=\"1\"} 2\n",
            "same series",
        ),
        ("m 1\nm 2\n", "same series"),
    ] {
        let error = reject(bad);
        assert!(error.contains(why), "{bad:?}: {error}");
    }
}

#[test]
fn errors_name_the_line_and_quote_it() {
    let error = reject("ok 1\n# TYPE ok gauge\nbroken{ 1\n");
    assert!(error.starts_with("line 3: "), "{error}");
    assert!(error.contains("\"broken{ 1\""), "{error}");
}
