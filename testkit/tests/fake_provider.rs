//! Tests of the fake provider's normal answers, routing and observations,
//! over real TCP with reqwest (HTTP/1.1 and h2c).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_testkit::{BEHAVIOR_HEADER, Behavior, FakeProvider, SseReader};

/// A plain HTTP/1.1 client that ignores any proxy settings.
fn http1() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("building a reqwest client")
}

/// A chat request body for `model` with one user message.
fn chat(model: &str, content: &str) -> String {
    json!({"model": model, "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": content}
    ]})
    .to_string()
}

/// POSTs `body` to the provider's chat endpoint.
async fn post(fake: &FakeProvider, body: String) -> reqwest::Response {
    http1()
        .post(format!("{}/chat/completions", fake.base_url()))
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-test")
        .body(body)
        .send()
        .await
        .expect("sending a chat request to the fake provider")
}

/// Reads a response body as JSON.
async fn json_of(resp: reqwest::Response) -> Value {
    let bytes = resp.bytes().await.expect("reading a response body");
    serde_json::from_slice(&bytes).expect("response body is JSON")
}

#[tokio::test]
async fn instant_answers_a_realistic_completion_echoing_the_last_user_message() {
    let fake = FakeProvider::start().await;
    let resp = post(&fake, chat("instant", "hello there")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body = json_of(resp).await;
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "instant");
    assert!(
        body["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("chatcmpl-"))
    );
    assert_eq!(body["choices"][0]["message"]["content"], "hello there");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let usage = &body["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(
            usage["prompt_tokens"].as_u64().unwrap_or(0)
                + usage["completion_tokens"].as_u64().unwrap_or(0)
        )
    );
    assert_eq!(fake.request_count(), 1);
    assert_eq!(fake.abandoned(), 0);
    assert!(
        fake.wait_until("in_flight == 0", Duration::from_secs(1), |f| f.in_flight()
            == 0)
            .await
    );
}

#[tokio::test]
async fn requests_are_recorded_with_path_auth_and_body() {
    let fake = FakeProvider::start().await;
    post(&fake, chat("gpt-4o", "hi")).await;
    let url = format!("http://{}/openai/v1/chat/completions", fake.addr());
    let resp = http1()
        .post(url)
        .body("not json")
        .send()
        .await
        .expect("sending");
    assert_eq!(
        resp.status(),
        200,
        "an unknown model falls back to the default (instant)"
    );
    let seen = fake.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].path, "/v1/chat/completions");
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer sk-test"));
    assert_eq!(seen[0].body["model"], "gpt-4o");
    assert_eq!(seen[1].path, "/openai/v1/chat/completions");
    assert_eq!(seen[1].body, Value::Null);
    assert!(seen[0].at <= seen[1].at);
}

#[tokio::test]
async fn delay_waits_at_least_the_delay() {
    let fake = FakeProvider::start().await;
    let started = Instant::now();
    let resp = post(&fake, chat("delay-300", "x")).await;
    assert_eq!(resp.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(json_of(resp).await["choices"][0]["message"]["content"], "x");
}

#[tokio::test]
async fn status_returns_that_status_with_an_openai_error() {
    let fake = FakeProvider::start().await;
    let resp = post(&fake, chat("status-503", "x")).await;
    assert_eq!(resp.status(), 503);
    let body = json_of(resp).await;
    assert_eq!(body["error"]["message"], "fake failure 503");
    assert_eq!(body["error"]["code"], "503");
    assert_eq!(fake.abandoned(), 0);
}

#[tokio::test]
async fn header_overrides_model_and_default_applies_to_plain_models() {
    let fake = FakeProvider::start_with(Behavior::Status(429)).await;
    assert_eq!(post(&fake, chat("gpt-4o", "x")).await.status(), 429);
    fake.set_default(Behavior::Instant);
    assert_eq!(post(&fake, chat("gpt-4o", "x")).await.status(), 200);
    let resp = http1()
        .post(format!("{}/chat/completions", fake.base_url()))
        .header(BEHAVIOR_HEADER, "status-502")
        .body(chat("instant", "x"))
        .send()
        .await
        .expect("sending");
    assert_eq!(resp.status(), 502);
    let resp = http1()
        .post(format!("{}/chat/completions", fake.base_url()))
        .header(BEHAVIOR_HEADER, "nonsense")
        .body(chat("instant", "x"))
        .send()
        .await
        .expect("sending");
    assert_eq!(
        resp.status(),
        400,
        "a typo in the header is reported, not ignored"
    );
}

#[tokio::test]
async fn models_route_lists_and_unknown_routes_404() {
    let fake = FakeProvider::start().await;
    let resp = http1()
        .get(format!("{}/models", fake.base_url()))
        .send()
        .await
        .expect("sending");
    assert_eq!(resp.status(), 200);
    assert_eq!(json_of(resp).await["object"], "list");
    let resp = http1()
        .get(format!("{}/nope", fake.base_url()))
        .send()
        .await
        .expect("sending");
    assert_eq!(resp.status(), 404);
    assert!(json_of(resp).await["error"]["message"].is_string());
    let resp = http1()
        .get(format!("{}/chat/completions", fake.base_url()))
        .send()
        .await
        .expect("sending");
    assert_eq!(resp.status(), 404);
    assert_eq!(fake.request_count(), 0, "only chat requests are counted");
}

#[tokio::test]
async fn stream_sends_chunks_over_time_and_ends_with_done() {
    let fake = FakeProvider::start().await;
    let started = Instant::now();
    let resp = post(&fake, chat("stream-5-50", "x")).await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut sse = SseReader::new(resp);
    let mut arrivals = Vec::new();
    let mut events = Vec::new();
    while let Some(event) = sse.next_event().await {
        arrivals.push(started.elapsed());
        events.push(event);
    }
    assert_eq!(sse.error(), None);
    assert_eq!(
        events.len(),
        7,
        "5 content chunks, a stop chunk and [DONE]: {events:?}"
    );
    for (i, event) in events.iter().take(5).enumerate() {
        let chunk: Value = serde_json::from_str(event).expect("chunk is JSON");
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["choices"][0]["delta"]["content"], format!("w{i} "));
    }
    let stop: Value = serde_json::from_str(&events[5]).expect("stop chunk is JSON");
    assert_eq!(stop["choices"][0]["finish_reason"], "stop");
    assert_eq!(events[6], "[DONE]");
    // The fifth chunk cannot leave before 4 x 50 ms; the first arrives long
    // before it unless the body was buffered instead of streamed.
    assert!(arrivals[4] >= Duration::from_millis(200), "{arrivals:?}");
    assert!(
        arrivals[4] - arrivals[0] >= Duration::from_millis(100),
        "chunks bunched: {arrivals:?}"
    );
    assert!(
        fake.wait_until("stream finished", Duration::from_secs(1), |f| f.in_flight()
            == 0)
            .await
    );
    assert_eq!(fake.abandoned(), 0);
}

#[tokio::test]
async fn stream_flag_turns_delay_into_a_three_chunk_stream() {
    let fake = FakeProvider::start().await;
    let body = json!({"model": "delay-100", "stream": true, "messages": []}).to_string();
    let started = Instant::now();
    let resp = post(&fake, body).await;
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let (events, error) = SseReader::new(resp).collect().await;
    assert_eq!(error, None);
    assert_eq!(events.len(), 5, "{events:?}");
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
}

#[tokio::test]
async fn h2c_carries_500_concurrent_requests_on_one_connection() {
    let fake = FakeProvider::start().await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .expect("building an h2c client");
    let url = format!("{}/chat/completions", fake.base_url());
    let calls = (0..500).map(|i| {
        let request = client.post(&url).body(chat("delay-1000", &format!("n{i}")));
        async move {
            let resp = request.send().await.expect("h2c request");
            assert_eq!(resp.version(), reqwest::Version::HTTP_2);
            assert_eq!(resp.status(), 200);
            let bytes = resp.bytes().await.expect("h2c body");
            let body: Value = serde_json::from_slice(&bytes).expect("h2c body is JSON");
            assert_eq!(body["choices"][0]["message"]["content"], format!("n{i}"));
        }
    });
    let started = Instant::now();
    futures_util::future::join_all(calls).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(fake.request_count(), 500);
    assert_eq!(fake.connections_accepted(), 1);
    assert_eq!(fake.max_in_flight(), 500);
    assert_eq!(fake.abandoned(), 0);
}

/// The load the benchmark needs: 10,000 concurrent calls on one h2c
/// connection. Run with `cargo test -p switchboard-testkit -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load check, ~10k requests"]
async fn h2c_carries_10000_concurrent_requests_on_one_connection() {
    let fake = FakeProvider::start().await;
    fake.set_recording(false);
    let client = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .expect("building an h2c client");
    let url = format!("{}/chat/completions", fake.base_url());
    let calls = (0..10_000).map(|_| {
        let request = client.post(&url).body(chat("delay-1000", "x"));
        async move {
            let resp = request.send().await.expect("h2c request");
            assert_eq!(resp.status(), 200);
            resp.bytes().await.expect("h2c body");
        }
    });
    let started = Instant::now();
    futures_util::future::join_all(calls).await;
    eprintln!("10k h2c calls took {:?}", started.elapsed());
    assert_eq!(fake.request_count(), 10_000);
    assert_eq!(fake.connections_accepted(), 1);
    assert_eq!(fake.max_in_flight(), 10_000);
    assert!(fake.requests().is_empty());
}
