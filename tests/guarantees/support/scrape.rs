//! Helpers for the metrics, usage and events tests: scraping and checking
//! `/metrics` (parsed with [`Scrape`], never grepped), reading
//! `/admin/usage`, and reading `/admin/events` streams event by event.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use switchboard_testkit::{Daemon, Scrape, SseReader, eventually_debug};

/// How long a test waits for metrics, history or events to catch up with
/// what it did: far more than they need, for two shared, noisy cores.
pub const SETTLE: Duration = Duration::from_secs(20);

/// The OpenMetrics content type the daemon answers `/metrics` with.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Parses an exposition strictly; panics with the parser's reason and the
/// text if it is malformed or truncated (no `# EOF`).
pub fn parse(text: &str) -> Scrape {
    let scrape = Scrape::parse(text)
        .unwrap_or_else(|e| panic!("the scrape is not valid OpenMetrics: {e}\n{text}"));
    assert!(
        scrape.ended_with_eof(),
        "the scrape does not end with # EOF (truncated?):\n{text}"
    );
    scrape
}

/// `GET /metrics` on the daemon's socket: 200, the OpenMetrics content
/// type, and a valid exposition.
pub async fn scrape(daemon: &Daemon) -> Scrape {
    let response = daemon
        .client()
        .get(daemon.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics answers");
    assert_eq!(response.status(), 200, "GET /metrics on the socket");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, OPENMETRICS, "content type of GET /metrics");
    parse(&response.text().await.expect("the scrape's body"))
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0,
/// then released), for `server.metrics_listen`.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener.local_addr().expect("a bound address").port()
}

/// `GET http://<addr><path>` over plain TCP: status, content type, body.
pub async fn tcp_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    tcp_request(addr, reqwest::Method::GET, path).await
}

/// `method http://<addr><path>` over plain TCP: status, content type, body.
pub async fn tcp_request(
    addr: SocketAddr,
    method: reqwest::Method,
    path: &str,
) -> (u16, String, String) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a TCP client");
    let response = client
        .request(method.clone(), format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} http://{addr}{path}: {e}"));
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (
        status,
        content_type,
        response.text().await.unwrap_or_default(),
    )
}

/// A sample's labels as `&str` pairs, without `le` (so buckets of one
/// series share a key).
pub fn series_labels(sample: &switchboard_testkit::Sample) -> Vec<(String, String)> {
    let mut labels: Vec<(String, String)> = sample
        .labels
        .iter()
        .filter(|(name, _)| name != "le")
        .cloned()
        .collect();
    labels.sort();
    labels
}

/// Borrows owned label pairs for [`Scrape::value`].
pub fn borrowed(labels: &[(String, String)]) -> Vec<(&str, &str)> {
    labels
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

/// The samples named `name` whose value is not 0, keyed by the values of
/// `keys` (a missing label reads `-`), to compare a whole family with what
/// is expected, so an extra or missing series fails as surely as a wrong
/// count.
pub fn nonzero(scrape: &Scrape, name: &str, keys: &[&str]) -> BTreeMap<Vec<String>, f64> {
    let mut found = BTreeMap::new();
    for sample in scrape.samples(name).filter(|s| s.value != 0.0) {
        let key: Vec<String> = keys
            .iter()
            .map(|k| sample.label(k).unwrap_or("-").to_owned())
            .collect();
        *found.entry(key).or_insert(0.0) += sample.value;
    }
    found
}

/// `expected` as [`nonzero`] returns it.
pub fn table<const N: usize>(expected: &[([&str; N], f64)]) -> BTreeMap<Vec<String>, f64> {
    expected
        .iter()
        .map(|(key, value)| (key.iter().map(|k| (*k).to_owned()).collect(), *value))
        .collect()
}

/// A histogram series: its base name and its labels without `le`.
type Series = (String, Vec<(String, String)>);

/// Checks every histogram in the scrape: in each series the buckets, in
/// order of `le`, never decrease, the last is `+Inf`, and it equals the
/// series' `_count`. Returns how many series were checked.
pub fn assert_histograms_consistent(scrape: &Scrape) -> usize {
    let mut series: BTreeMap<Series, Vec<(f64, f64)>> = BTreeMap::new();
    for sample in scrape.all() {
        let Some(base) = sample.name.strip_suffix("_bucket") else {
            continue;
        };
        let le = sample
            .label("le")
            .unwrap_or_else(|| panic!("a bucket without `le`: {sample:?}"));
        let le: f64 = match le {
            "+Inf" => f64::INFINITY,
            text => text
                .parse()
                .unwrap_or_else(|_| panic!("a bucket whose le is not a number: {sample:?}")),
        };
        series
            .entry((base.to_owned(), series_labels(sample)))
            .or_default()
            .push((le, sample.value));
    }
    for ((base, labels), buckets) in &series {
        let mut sorted = buckets.clone();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(
            sorted.windows(2).all(|w| w[0].1 <= w[1].1),
            "{base}{labels:?}: buckets are not cumulative: {sorted:?}"
        );
        let (last_le, last) = *sorted.last().expect("at least one bucket");
        assert_eq!(
            last_le,
            f64::INFINITY,
            "{base}{labels:?}: no +Inf bucket: {sorted:?}"
        );
        let count = scrape.value(&format!("{base}_count"), &borrowed(labels));
        assert_eq!(
            count,
            Some(last),
            "{base}{labels:?}: the +Inf bucket must equal _count"
        );
        assert!(
            scrape
                .value(&format!("{base}_sum"), &borrowed(labels))
                .is_some(),
            "{base}{labels:?}: no _sum"
        );
    }
    series.len()
}

/// Scrapes until `ready` accepts the scrape; returns that scrape. On timeout
/// the panic shows what `ready` last said.
pub async fn scrape_until<F>(daemon: &Daemon, what: &str, ready: F) -> Scrape
where
    F: Fn(&Scrape) -> Result<(), String>,
{
    eventually_debug(what, SETTLE, || async {
        let scrape = scrape(daemon).await;
        match ready(&scrape) {
            Ok(()) => Ok(scrape),
            Err(seen) => Err(seen),
        }
    })
    .await
}

/// Waits until gauge `name{labels}` reads `want`.
pub async fn wait_gauge(daemon: &Daemon, name: &str, labels: &[(&str, &str)], want: f64) {
    scrape_until(
        daemon,
        &format!("{name}{labels:?} == {want}"),
        |s| match s.value(name, labels) {
            Some(v) if v == want => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
}

/// `GET /admin/usage?by=<by>`: its rows by key (asserting the answer's shape).
pub async fn usage_rows(daemon: &Daemon, by: &str) -> BTreeMap<String, Value> {
    let response = daemon
        .client()
        .get(daemon.url(&format!("/admin/usage?by={by}")))
        .send()
        .await
        .expect("GET /admin/usage answers");
    let status = response.status().as_u16();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "GET /admin/usage?by={by}: {answer}");
    assert_eq!(answer["by"], by, "{answer}");
    let rows = answer["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("usage rows: {answer}"));
    let mut by_key = BTreeMap::new();
    for row in rows {
        let key = row["key"]
            .as_str()
            .unwrap_or_else(|| panic!("a usage row's key is a string: {row}"))
            .to_owned();
        assert!(
            by_key.insert(key.clone(), row.clone()).is_none(),
            "two usage rows for {key:?}: {answer}"
        );
    }
    by_key
}

/// Waits until `GET /admin/usage?by=<by>` counts `requests` finished
/// sessions in all; returns its rows.
pub async fn usage_settled(daemon: &Daemon, by: &str, requests: u64) -> BTreeMap<String, Value> {
    eventually_debug(
        &format!("/admin/usage?by={by} to count {requests} requests"),
        SETTLE,
        || async {
            let rows = usage_rows(daemon, by).await;
            let counted: u64 = rows.values().filter_map(|r| r["requests"].as_u64()).sum();
            if counted == requests {
                Ok(rows)
            } else {
                Err(rows)
            }
        },
    )
    .await
}

/// Opens `GET /admin/events<query>` on the socket; asserts it is an SSE
/// stream and returns its reader (subscribed once this returns: the daemon
/// answers only after the reader is registered).
pub async fn open_events(daemon: &Daemon, query: &str) -> SseReader {
    let response = daemon
        .client()
        .get(daemon.url(&format!("/admin/events{query}")))
        .send()
        .await
        .expect("GET /admin/events answers");
    assert_eq!(response.status(), 200, "GET /admin/events{query}");
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream",
        "GET /admin/events{query}"
    );
    SseReader::new(response)
}

/// The next event of an events stream, as JSON; panics if none comes within
/// [`SETTLE`] or the stream ends.
pub async fn next_event(reader: &mut SseReader, what: &str) -> Value {
    let data = tokio::time::timeout(SETTLE, reader.next_event())
        .await
        .unwrap_or_else(|_| panic!("no event within {SETTLE:?} while waiting for {what}"))
        .unwrap_or_else(|| {
            panic!(
                "the events stream ended while waiting for {what} ({:?})",
                reader.error()
            )
        });
    serde_json::from_str(&data).unwrap_or_else(|e| panic!("an event is not JSON ({e}): {data}"))
}

/// Reads events until one satisfies `last` (included); returns them all.
pub async fn events_until(
    reader: &mut SseReader,
    what: &str,
    last: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let event = next_event(reader, what).await;
        let done = last(&event);
        events.push(event);
        if done {
            return events;
        }
    }
}

/// Whether `event` is phase `phase` of session `id`.
pub fn is(event: &Value, id: &str, phase: &str) -> bool {
    event["session"] == id && event["phase"] == phase
}
