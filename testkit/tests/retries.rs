//! Tests of the fake provider's retry-test behaviors over real HTTP with
//! reqwest: failing n times then succeeding (`fail…`, `glmfail…`,
//! `kimifail…`) with their retry hints and per-model counters, the GLM and
//! Kimi error shapes, `refuse`'s connection error, and `requests_for`.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_testkit::{BEHAVIOR_HEADER, Behavior, FakeProvider, KimiError, SseReader};

/// One second: the longest any close should take to be noticed.
const SOON: Duration = Duration::from_secs(1);

/// A plain HTTP/1.1 client that ignores any proxy settings.
fn http1() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("building a reqwest client")
}

/// A chat request body for `model`, streamed if `stream`.
fn chat(model: &str, stream: bool) -> String {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
        .to_string()
}

/// Sends a chat request for `model` with `client`; the transport's result.
async fn try_post(
    client: &reqwest::Client,
    fake: &FakeProvider,
    model: &str,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(format!("{}/chat/completions", fake.base_url()))
        .header("content-type", "application/json")
        .body(chat(model, false))
        .send()
        .await
}

/// POSTs a non-streaming chat request for `model`.
async fn post(fake: &FakeProvider, model: &str) -> reqwest::Response {
    try_post(&http1(), fake, model)
        .await
        .expect("sending a chat request to the fake provider")
}

/// Reads a response body as JSON.
async fn json_of(resp: reqwest::Response) -> Value {
    let bytes = resp.bytes().await.expect("reading a response body");
    serde_json::from_slice(&bytes).expect("response body is JSON")
}

/// `err` and its sources' messages, joined, to look for the transport's cause.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

/// Asserts `resp` is a successful, non-streamed completion for `model`.
async fn assert_success(resp: reqwest::Response, model: &str) {
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("retry-after").is_none());
    assert!(resp.headers().get("retry-after-ms").is_none());
    let body = json_of(resp).await;
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], model);
    assert_eq!(body["choices"][0]["message"]["content"], "hi");
}

#[tokio::test]
async fn fail_answers_the_status_n_times_then_succeeds() {
    let fake = FakeProvider::start().await;
    for _ in 0..2 {
        let resp = post(&fake, "fail-2-503").await;
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers()["content-type"], "application/json");
        assert!(resp.headers().get("retry-after").is_none());
        assert!(resp.headers().get("retry-after-ms").is_none());
        let expected = json!({"error": {
            "message": "fake failure 503", "type": "server_error", "code": "503"
        }});
        assert_eq!(json_of(resp).await, expected);
    }
    assert_success(post(&fake, "fail-2-503").await, "fail-2-503").await;
    assert_success(post(&fake, "fail-2-503").await, "fail-2-503").await;
    let attempts = fake.requests_for("fail-2-503");
    assert_eq!(attempts.len(), 4);
    assert!(attempts.windows(2).all(|w| w[0].at <= w[1].at));
    assert_eq!(fake.request_count(), 4);
    assert_eq!(fake.abandoned(), 0);
}

#[tokio::test]
async fn fail_counts_per_exact_model_string_and_per_provider() {
    let fake = FakeProvider::start().await;
    let other = FakeProvider::start().await;
    assert_eq!(post(&fake, "fail-1-500").await.status(), 500);
    assert_eq!(post(&fake, "fake/fail-1-500").await.status(), 500);
    assert_eq!(post(&fake, "fail-1-502").await.status(), 502);
    assert_eq!(post(&other, "fail-1-500").await.status(), 500);
    assert_eq!(post(&fake, "fail-1-500").await.status(), 200);
    assert_eq!(post(&fake, "fake/fail-1-500").await.status(), 200);
    assert_eq!(post(&fake, "fail-1-502").await.status(), 200);
    assert_eq!(post(&other, "fail-1-500").await.status(), 200);
    assert_eq!(fake.requests_for("fail-1-500").len(), 2);
    assert_eq!(fake.requests_for("fake/fail-1-500").len(), 2);
    assert_eq!(fake.requests_for("fail-1-502").len(), 2);
    assert_eq!(fake.requests_for("gpt-4o").len(), 0);
    assert_eq!(other.requests_for("fail-1-500").len(), 2);
    assert_eq!(fake.requests().len(), 6);
}

#[tokio::test]
async fn fail_zero_times_succeeds_at_once() {
    let fake = FakeProvider::start().await;
    assert_success(post(&fake, "fail-0-503").await, "fail-0-503").await;
}

#[tokio::test]
async fn fail_with_a_stream_request_fails_as_json_then_streams() {
    let fake = FakeProvider::start().await;
    let url = format!("{}/chat/completions", fake.base_url());
    let send = || http1().post(&url).body(chat("fail-1-502", true)).send();
    let resp = send().await.expect("first streamed request");
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(json_of(resp).await["error"]["code"], "502");
    let resp = send().await.expect("second streamed request");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let (events, error) = SseReader::new(resp).collect().await;
    assert_eq!(error, None);
    assert_eq!(events.len(), 5, "3 chunks, stop, [DONE]: {events:?}");
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
}

#[tokio::test]
async fn fail_after_sends_retry_after_in_seconds() {
    let fake = FakeProvider::start().await;
    let resp = post(&fake, "fail-1-429-after-2").await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "2");
    assert!(resp.headers().get("retry-after-ms").is_none());
    assert_eq!(json_of(resp).await["error"]["message"], "fake failure 429");
    let model = "fail-1-429-after-2";
    assert_success(post(&fake, model).await, model).await;
}

#[tokio::test]
async fn failms_sends_retry_after_ms() {
    let fake = FakeProvider::start().await;
    for _ in 0..3 {
        let resp = post(&fake, "failms-3-503-after-250").await;
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers()["retry-after-ms"], "250");
        assert!(resp.headers().get("retry-after").is_none());
        assert_eq!(json_of(resp).await["error"]["type"], "server_error");
    }
    let model = "failms-3-503-after-250";
    assert_success(post(&fake, model).await, model).await;
    assert_eq!(fake.requests_for(model).len(), 4);
}

#[tokio::test]
async fn glm_always_answers_429_in_glms_shape() {
    let fake = FakeProvider::start().await;
    for code in ["1302", "1113", "1302"] {
        let resp = post(&fake, &format!("glm-{code}")).await;
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["content-type"], "application/json");
        let expected = json!({"error": {"code": code, "message": format!("glm error {code}")}});
        assert_eq!(json_of(resp).await, expected);
    }
    assert_eq!(fake.requests_for("glm-1302").len(), 2);
}

#[tokio::test]
async fn glmfail_fails_like_glm_n_times_then_succeeds() {
    let fake = FakeProvider::start().await;
    for _ in 0..2 {
        let resp = post(&fake, "glmfail-2-1305").await;
        assert_eq!(resp.status(), 429);
        let expected = json!({"error": {"code": "1305", "message": "glm error 1305"}});
        assert_eq!(json_of(resp).await, expected);
    }
    assert_success(post(&fake, "glmfail-2-1305").await, "glmfail-2-1305").await;
}

#[tokio::test]
async fn kimi_always_answers_429_in_kimis_shape() {
    let fake = FakeProvider::start().await;
    let kinds = [
        ("overloaded", "engine_overloaded_error"),
        ("ratelimit", "rate_limit_reached_error"),
        ("quota", "exceeded_current_quota_error"),
    ];
    for (kind, error_type) in kinds {
        for _ in 0..2 {
            let resp = post(&fake, &format!("kimi-{kind}")).await;
            assert_eq!(resp.status(), 429);
            let expected = json!({"error": {"message": "kimi error", "type": error_type}});
            assert_eq!(json_of(resp).await, expected);
        }
    }
}

#[tokio::test]
async fn kimifail_fails_like_kimi_n_times_then_succeeds() {
    let fake = FakeProvider::start().await;
    let resp = post(&fake, "kimifail-1-ratelimit").await;
    assert_eq!(resp.status(), 429);
    assert_eq!(
        json_of(resp).await["error"]["type"],
        "rate_limit_reached_error"
    );
    let model = "kimifail-1-ratelimit";
    assert_success(post(&fake, model).await, model).await;
}

#[tokio::test]
async fn header_picks_a_counted_failure_for_a_plain_model() {
    let fake = FakeProvider::start().await;
    let send = |behavior: &'static str| {
        http1()
            .post(format!("{}/chat/completions", fake.base_url()))
            .header(BEHAVIOR_HEADER, behavior)
            .body(chat("gpt-4o", false))
            .send()
    };
    let resp = send("failms-1-502-after-40").await.expect("sending");
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["retry-after-ms"], "40");
    let resp = send("kimifail-1-overloaded").await.expect("sending");
    assert_eq!(resp.status(), 429, "another header behavior counts apart");
    assert_eq!(
        send("failms-1-502-after-40")
            .await
            .expect("sending")
            .status(),
        200
    );
    assert_eq!(
        send("kimifail-1-overloaded")
            .await
            .expect("sending")
            .status(),
        200
    );
    assert_eq!(fake.requests_for("gpt-4o").len(), 4);
}

#[tokio::test]
async fn counted_failures_built_in_rust_work_as_the_default() {
    let fake = FakeProvider::start_with(Behavior::KimiFail {
        times: 1,
        kind: KimiError::Overloaded,
    })
    .await;
    assert_eq!(post(&fake, "gpt-4o").await.status(), 429);
    assert_eq!(post(&fake, "gpt-4o-mini").await.status(), 429);
    assert_eq!(post(&fake, "gpt-4o").await.status(), 200);
    assert_eq!(post(&fake, "gpt-4o-mini").await.status(), 200);
}

#[tokio::test]
async fn refuse_closes_the_connection_without_an_answer() {
    let fake = FakeProvider::start().await;
    let client = http1();
    let err = try_post(&client, &fake, "refuse")
        .await
        .expect_err("refuse must not produce an HTTP response");
    assert!(!err.is_timeout(), "{err:?}");
    assert!(err.status().is_none(), "{err:?}");
    assert!(err.is_request(), "{err:?}");
    let chain = error_chain(&err);
    assert!(
        chain.contains("connection closed before message completed"),
        "{chain}"
    );
    assert_eq!(fake.request_count(), 1);
    assert_eq!(fake.requests().len(), 1);
    assert_eq!(fake.requests_for("refuse").len(), 1);
    assert!(
        fake.wait_until("refused connection closed", SOON, |f| {
            f.connections_closed() == 1 && f.in_flight() == 0
        })
        .await
    );
    assert_eq!(fake.abandoned(), 0, "a refusal is not an abandonment");
    // Each refusal closes its connection; the same client then reconnects.
    let err = try_post(&client, &fake, "fake/refuse").await;
    assert!(err.is_err(), "{err:?}");
    assert_success(
        try_post(&client, &fake, "instant").await.expect("sending"),
        "instant",
    )
    .await;
    assert_eq!(fake.connections_accepted(), 3);
    assert_eq!(fake.request_count(), 3);
}

#[tokio::test]
async fn refuse_by_header_and_over_h2c_fails_the_call() {
    let fake = FakeProvider::start().await;
    let resp = http1()
        .post(format!("{}/chat/completions", fake.base_url()))
        .header(BEHAVIOR_HEADER, "refuse")
        .body(chat("gpt-4o", false))
        .send()
        .await;
    assert!(resp.is_err(), "{resp:?}");
    let h2c = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .expect("building an h2c client");
    let resp = try_post(&h2c, &fake, "refuse").await;
    assert!(resp.is_err(), "{resp:?}");
    assert!(
        fake.wait_until("both connections closed", SOON, |f| f.connections_closed()
            == 2)
            .await
    );
    assert_eq!(fake.requests_for("gpt-4o").len(), 1);
    assert_eq!(fake.requests_for("refuse").len(), 1);
    assert_eq!(fake.abandoned(), 0);
}

#[tokio::test]
async fn concurrent_attempts_fail_exactly_n_times() {
    let fake = FakeProvider::start().await;
    let h2c = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .expect("building an h2c client");
    let calls = (0..20).map(|_| async {
        let resp = try_post(&h2c, &fake, "fail-3-504")
            .await
            .expect("h2c request");
        resp.status().as_u16()
    });
    let statuses = futures_util::future::join_all(calls).await;
    assert_eq!(
        statuses.iter().filter(|&&s| s == 504).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        17,
        "{statuses:?}"
    );
    assert_eq!(fake.requests_for("fail-3-504").len(), 20);
}
