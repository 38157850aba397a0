//! Tests of the fake provider's fault modes and of its connection and
//! abandonment counters, with raw TCP where the exact moment of a close
//! matters.

use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_testkit::{FakeProvider, SseReader};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One second: the longest any close should take to be noticed.
const SOON: Duration = Duration::from_secs(1);

/// A plain HTTP/1.1 client that ignores any proxy settings.
fn http1() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("building a reqwest client")
}

/// POSTs a chat request for `model` over reqwest.
async fn post(fake: &FakeProvider, model: &str) -> reqwest::Response {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "x"}]});
    http1()
        .post(format!("{}/chat/completions", fake.base_url()))
        .body(body.to_string())
        .send()
        .await
        .expect("sending a chat request to the fake provider")
}

/// Opens a raw TCP connection and writes a chat request for `model` on it.
async fn raw_chat(fake: &FakeProvider, model: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(fake.addr())
        .await
        .expect("connecting to the fake provider");
    let body = json!({"model": model, "messages": []}).to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes())
        .await
        .expect("writing a raw request");
    tcp
}

#[tokio::test]
async fn closing_a_hung_connection_counts_it_closed_and_the_request_abandoned() {
    let fake = FakeProvider::start().await;
    let tcp = raw_chat(&fake, "hang").await;
    assert!(
        fake.wait_until("the hang request", SOON, |f| f.in_flight() == 1)
            .await
    );
    assert_eq!(fake.open_connections(), 1);
    assert_eq!(fake.connections_closed(), 0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(fake.in_flight(), 1, "hang never answers");
    let closed_at = Instant::now();
    drop(tcp);
    let noticed = fake
        .wait_until("close noticed", SOON, |f| {
            f.connections_closed() == 1 && f.abandoned() == 1 && f.in_flight() == 0
        })
        .await;
    assert!(
        noticed,
        "closed={} abandoned={}",
        fake.connections_closed(),
        fake.abandoned()
    );
    assert!(closed_at.elapsed() < SOON);
    assert_eq!(fake.open_connections(), 0);
    assert_eq!(fake.connections_accepted(), 1);
}

#[tokio::test]
async fn reqwest_dropping_a_hung_request_is_noticed_too() {
    let fake = FakeProvider::start().await;
    let pending = tokio::spawn({
        let url = format!("{}/chat/completions", fake.base_url());
        async move { http1().post(url).body(r#"{"model":"hang"}"#).send().await }
    });
    assert!(
        fake.wait_until("the hang request", SOON, |f| f.in_flight() == 1)
            .await
    );
    pending.abort();
    assert!(
        fake.wait_until("abandoned", SOON, |f| f.abandoned() == 1
            && f.connections_closed() == 1)
            .await
    );
}

#[tokio::test]
async fn broken_sends_invalid_json_with_a_json_content_type() {
    let fake = FakeProvider::start().await;
    let resp = post(&fake, "broken").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let bytes = resp.bytes().await.expect("reading the broken body");
    assert!(serde_json::from_slice::<serde_json::Value>(&bytes).is_err());
    assert!(bytes.starts_with(b"{\"id\":\"chatcmpl-x\""));
}

#[tokio::test]
async fn cut_ends_the_body_abruptly_without_done() {
    let fake = FakeProvider::start().await;
    let (events, error) = SseReader::new(post(&fake, "cut-2").await).collect().await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(!events.iter().any(|e| e == "[DONE]"));
    assert!(error.is_some(), "the body must fail, not end cleanly");
    assert!(
        fake.wait_until("cut finished", SOON, |f| f.in_flight() == 0)
            .await
    );
    assert_eq!(fake.abandoned(), 0, "a scripted cut is not an abandonment");
    assert!(
        fake.wait_until("connection closed", SOON, |f| f.connections_closed() == 1)
            .await
    );
}

#[tokio::test]
async fn stall_sends_n_chunks_then_nothing_until_the_client_leaves() {
    let fake = FakeProvider::start().await;
    let mut sse = SseReader::new(post(&fake, "stall-2").await);
    assert!(sse.next_event().await.is_some());
    assert!(sse.next_event().await.is_some());
    let third = tokio::time::timeout(Duration::from_millis(300), sse.next_event()).await;
    assert!(
        third.is_err(),
        "stall must send nothing after its chunks: {third:?}"
    );
    assert_eq!(fake.in_flight(), 1);
    drop(sse);
    assert!(
        fake.wait_until("stall abandoned", SOON, |f| f.abandoned() == 1
            && f.in_flight() == 0)
            .await
    );
}

#[tokio::test]
async fn slowheaders_delays_the_head_then_streams() {
    let fake = FakeProvider::start().await;
    let started = Instant::now();
    let resp = post(&fake, "slowheaders-250").await;
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "head after {:?}",
        started.elapsed()
    );
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let (events, error) = SseReader::new(resp).collect().await;
    assert_eq!(error, None);
    assert_eq!(events.len(), 5, "3 chunks, stop, [DONE]: {events:?}");
}

#[tokio::test]
async fn dropping_the_provider_closes_its_connections() {
    let fake = FakeProvider::start().await;
    let mut tcp = raw_chat(&fake, "instant").await;
    let mut buf = vec![0u8; 4096];
    let n = tcp.read(&mut buf).await.expect("reading the response");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    drop(fake);
    let eof = tokio::time::timeout(SOON, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(
        eof.is_ok(),
        "the keep-alive connection stayed open after the provider was dropped"
    );
}

#[tokio::test]
async fn h2_stream_reset_is_abandonment_without_closing_the_connection() {
    let fake = FakeProvider::start().await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .expect("building an h2c client");
    let url = format!("{}/chat/completions", fake.base_url());
    let pending = tokio::spawn(client.post(&url).body(r#"{"model":"hang"}"#).send());
    assert!(
        fake.wait_until("the hang request", SOON, |f| f.in_flight() == 1)
            .await
    );
    pending.abort();
    assert!(
        fake.wait_until("stream reset noticed", SOON, |f| f.abandoned() == 1)
            .await
    );
    let resp = client
        .post(&url)
        .body(r#"{"model":"instant"}"#)
        .send()
        .await
        .expect("second h2 request");
    assert_eq!(resp.status(), 200);
    assert_eq!(fake.connections_accepted(), 1);
    assert_eq!(fake.connections_closed(), 0);
}
