//! Reading the daemon's `GET /metrics` text into the per-provider counters
//! `top` differences over its window ([`super::window`]).
//!
//! Only what `top` shows is kept: requests and failed requests
//! (`switchboard_requests_total`), the session duration histogram
//! (`gen_ai_client_operation_duration_seconds`, all models and error types
//! added up) and output tokens (`gen_ai_client_token_usage_sum`). A line
//! this parser does not understand is skipped: a figure goes missing
//! rather than `top` failing on a scrape format it did not expect.

use std::collections::BTreeMap;

/// The counter of finished requests, by provider, model and outcome.
const REQUESTS: &str = "switchboard_requests_total";
/// The session duration histogram's buckets.
const DURATION_BUCKET: &str = "gen_ai_client_operation_duration_seconds_bucket";
/// The token histogram's sums, by provider and token type.
const TOKENS_SUM: &str = "gen_ai_client_token_usage_sum";
/// The label that names the provider on `switchboard_` metrics.
const PROVIDER: &str = "provider";
/// The label that names it on the OpenTelemetry GenAI metrics.
const GEN_AI_PROVIDER: &str = "gen_ai_provider_name";

/// Outcomes that are not failures: the request was answered, or its
/// client (or an operator) gave up on it.
const NOT_ERRORS: [&str; 2] = ["COMPLETED", "CANCELLED"];

/// Cumulative counts of one provider, as of one scrape.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters {
    /// Requests that ended, whatever their outcome.
    pub requests: f64,
    /// Requests that ended in ERROR, TIMEOUT, REJECTED or INTERRUPTED.
    pub errors: f64,
    /// Output (completion) tokens the provider reported.
    pub output_tokens: f64,
    /// Session durations: cumulative count at or below each bound, in
    /// seconds, sorted by bound; the last bound is `+Inf`.
    pub duration: Vec<(f64, f64)>,
}

/// Every provider's counters from one scrape, by provider name.
pub type Scrape = BTreeMap<String, Counters>;

/// One sample line: metric name, labels, value.
struct Line<'a> {
    name: &'a str,
    labels: Vec<(&'a str, String)>,
    value: f64,
}

impl Line<'_> {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The counters in an OpenMetrics (or Prometheus text) scrape. Requests
/// that never reached a provider (`provider="_none"`) are left out.
pub fn parse(text: &str) -> Scrape {
    let mut scrape = Scrape::new();
    for line in text.lines().filter_map(sample) {
        match line.name {
            REQUESTS => add_request(&mut scrape, &line),
            DURATION_BUCKET => add_bucket(&mut scrape, &line),
            TOKENS_SUM if line.label("gen_ai_token_type") == Some("output") => {
                if let Some(provider) = line.label(GEN_AI_PROVIDER) {
                    entry(&mut scrape, provider).output_tokens += line.value;
                }
            }
            _ => {}
        }
    }
    for counters in scrape.values_mut() {
        counters.duration.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    scrape
}

fn entry<'a>(scrape: &'a mut Scrape, provider: &str) -> &'a mut Counters {
    scrape.entry(provider.to_owned()).or_default()
}

fn add_request(scrape: &mut Scrape, line: &Line<'_>) {
    let Some(provider) = line.label(PROVIDER).filter(|p| *p != "_none") else {
        return;
    };
    let failed = line
        .label("outcome")
        .is_some_and(|o| !NOT_ERRORS.contains(&o));
    let counters = entry(scrape, provider);
    counters.requests += line.value;
    if failed {
        counters.errors += line.value;
    }
}

/// Adds a bucket to its provider's histogram: label sets of one provider
/// (models, error types) share the bounds, so their counts add up.
fn add_bucket(scrape: &mut Scrape, line: &Line<'_>) {
    let (Some(provider), Some(bound)) = (line.label(GEN_AI_PROVIDER), line.label("le")) else {
        return;
    };
    let Some(bound) = parse_number(bound) else {
        return;
    };
    let buckets = &mut entry(scrape, provider).duration;
    match buckets.iter_mut().find(|(b, _)| *b == bound) {
        Some((_, count)) => *count += line.value,
        None => buckets.push((bound, line.value)),
    }
}

/// A sample line, or `None` for comments, blanks and what does not parse.
fn sample(line: &str) -> Option<Line<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let (name, rest) = line.split_at(name_end);
    let (labels, rest) = match rest.strip_prefix('{') {
        Some(inner) => labels(inner)?,
        None => (Vec::new(), rest),
    };
    let value = parse_number(rest.split_whitespace().next()?)?;
    Some(Line {
        name,
        labels,
        value,
    })
}

/// Parses `a="x",b="y\"z"}rest` into the labels and what follows the `}`.
fn labels(mut text: &str) -> Option<(Vec<(&str, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        text = text.trim_start_matches([',', ' ']);
        if let Some(rest) = text.strip_prefix('}') {
            return Some((labels, rest));
        }
        let (name, rest) = text.split_once("=\"")?;
        let (value, rest) = quoted(rest)?;
        labels.push((name.trim(), value));
        text = rest;
    }
}

/// Reads an escaped label value up to its closing quote.
fn quoted(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[at + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            other => value.push(other),
        }
    }
    None
}

/// A sample value or bound: a float, `+Inf`, `-Inf` or `NaN`.
fn parse_number(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = r#"# HELP switchboard_requests Requests
# TYPE switchboard_requests counter
switchboard_requests_total{provider="fake",model="a",outcome="COMPLETED"} 7
switchboard_requests_total{provider="fake",model="b",outcome="TIMEOUT"} 2
switchboard_requests_total{provider="fake",model="b",outcome="CANCELLED"} 1
switchboard_requests_total{provider="_none",model="_none",outcome="REJECTED"} 5
gen_ai_client_operation_duration_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="fake",le="0.01"} 1
gen_ai_client_operation_duration_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="fake",le="+Inf"} 7
gen_ai_client_operation_duration_seconds_bucket{gen_ai_provider_name="fake",error_type="timeout",le="0.01"} 0
gen_ai_client_operation_duration_seconds_bucket{gen_ai_provider_name="fake",error_type="timeout",le="+Inf"} 2
gen_ai_client_token_usage_sum{gen_ai_provider_name="fake",gen_ai_token_type="output"} 40
gen_ai_client_token_usage_sum{gen_ai_provider_name="fake",gen_ai_token_type="input"} 99
weird line without a value
other_metric{label="with \"quotes\", commas} and braces"} 3 # {trace_id="x"} 1
"#;

    #[test]
    fn counters_are_added_up_per_provider() {
        let scrape = parse(SCRAPE);
        assert_eq!(scrape.keys().collect::<Vec<_>>(), ["fake"]);
        let fake = &scrape["fake"];
        assert_eq!(fake.requests, 10.0);
        assert_eq!(fake.errors, 2.0);
        assert_eq!(fake.output_tokens, 40.0);
        assert_eq!(fake.duration, [(0.01, 1.0), (f64::INFINITY, 9.0)]);
    }

    #[test]
    fn escaped_label_values_and_exemplars_parse() {
        let line = sample(r#"m{a="x \"y\" } z",b="\\n"} 3.5 # {t="1"} 1"#).expect("parses");
        assert_eq!(line.name, "m");
        assert_eq!(line.label("a"), Some(r#"x "y" } z"#));
        assert_eq!(line.label("b"), Some("\\n"));
        assert_eq!(line.value, 3.5);
        assert!(sample("# TYPE m counter").is_none());
        assert!(sample("m{a=\"unterminated} 1").is_none());
    }
}
