//! On `POST /v1/messages` the chat route's guarantees hold in Anthropic's
//! dialect: a 529 `overloaded_error` is retried and the retry answers; a
//! stream ends with the provider's `message_stop` (no `[DONE]`), a broken
//! one with an Anthropic `event: error`, and a stalled one with an error
//! event once its idle deadline passes (session TIMEOUT); the token usage
//! of a message and of a stream is in history as the provider reported it;
//! `anthropic-version` is added when the client sent none, and the
//! client's own version and beta headers pass through.

use crate::support;

use serde_json::{Value, json};
use support::records::wait_history;
use support::*;
use switchboard_testkit::FakeProvider;

async fn start(fake: &FakeProvider) -> Daemon {
    let settings = format!(
        "anthropic_base_url = {:?}\nidle_timeout_ms = 400",
        fake.anthropic_base_url()
    );
    daemon(fake).provider_toml("fake", &settings).start().await
}

async fn message(daemon: &Daemon, model: &str, stream: bool) -> reqwest::Response {
    message_with(daemon, model, stream, &[]).await
}

async fn message_with(
    daemon: &Daemon,
    model: &str,
    stream: bool,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let body = json!({
        "model": model,
        "max_tokens": 32,
        "stream": stream,
        "messages": [{"role": "user", "content": "three word prompt"}],
    });
    let mut request = daemon
        .client()
        .post(daemon.url("/v1/messages"))
        .header("content-type", "application/json")
        .body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("the daemon answers")
}

/// The `event:` names of an SSE body, in order.
fn event_names(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|line| line.strip_prefix("event: "))
        .collect()
}

/// The JSON of the last `data:` line of an SSE body.
fn last_data(text: &str) -> Value {
    let line = text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .next_back()
        .expect("a data line");
    serde_json::from_str(line).expect("the last event is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_provider_is_retried_and_usage_reaches_history() {
    let fake = FakeProvider::start().await;
    let daemon = start(&fake).await;

    let retried = message(&daemon, "fake/fail-1-529", false).await;
    assert_eq!(retried.status(), 200);
    let id = session_id(&retried);
    let answer: Value = retried.json().await.expect("JSON answer");
    assert_eq!(answer["type"], "message", "{answer}");
    assert_eq!(answer["session"]["attempts"], 2, "{answer}");
    let attempts = fake.requests_for("fail-1-529");
    assert_eq!(attempts.len(), 2, "one retry");
    let version = attempts[1].headers.get("anthropic-version");
    assert_eq!(version.and_then(|v| v.to_str().ok()), Some("2023-06-01"));
    let phases = final_phases(&daemon, &id).await;
    let starts = phases
        .iter()
        .filter(|p| *p == "PROVIDER_CALL_START")
        .count();
    assert_eq!(starts, 2, "{phases:?}");

    let streamed = message(&daemon, "fake/stream-3-10", true).await;
    assert_eq!(streamed.status(), 200);
    let text = streamed.text().await.expect("the stream reads to its end");
    let names = event_names(&text);
    assert_eq!(names.first(), Some(&"message_start"), "{text}");
    assert_eq!(names.last(), Some(&"message_stop"), "{text}");
    assert!(!text.contains("[DONE]"), "no OpenAI end marker: {text}");

    let rows = wait_history(&daemon, "limit=10", 2).await;
    for (row, model) in rows.iter().zip(["stream-3-10", "fail-1-529"]) {
        let reported = fake.usage_reported_for(model);
        assert_eq!(row["outcome"], "COMPLETED", "{row}");
        assert_eq!(
            row["usage"]["prompt_tokens"], reported.prompt_tokens,
            "{row}"
        );
        assert_eq!(
            row["usage"]["completion_tokens"], reported.completion_tokens,
            "{row}"
        );
        assert_eq!(row["usage"]["total_tokens"], reported.total_tokens, "{row}");
    }
    assert_eq!(fake.usage_reported_for("stream-3-10").completion_tokens, 3);
    let (_, timeline) = get_json(&daemon, &format!("/admin/sessions/{id}")).await;
    assert_eq!(
        timeline["phases"][0]["detail"], "/v1/messages",
        "{timeline}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_and_stalled_streams_end_with_anthropic_error_events() {
    let fake = FakeProvider::start().await;
    let daemon = start(&fake).await;

    let broken = message(&daemon, "fake/cut-2", true).await;
    assert_eq!(broken.status(), 200);
    let text = broken.text().await.expect("the stream reads to its end");
    assert_eq!(event_names(&text).last(), Some(&"error"), "{text}");
    let error = last_data(&text);
    assert_eq!(error["type"], "error", "{text}");
    assert_eq!(error["error"]["type"], "api_error", "{text}");

    let stalled = message(&daemon, "fake/stall-2", true).await;
    let id = session_id(&stalled);
    let text = stalled.text().await.expect("the stream reads to its end");
    assert_eq!(event_names(&text).last(), Some(&"error"), "{text}");
    let error = last_data(&text);
    let why = error["error"]["message"].as_str().unwrap_or_default();
    assert!(why.contains("idle"), "{text}");
    let phases = final_phases(&daemon, &id).await;
    assert_eq!(
        phases.last().map(String::as_str),
        Some("TIMEOUT"),
        "{phases:?}"
    );
    let headers = [
        ("anthropic-version", "2099-01-01"),
        ("anthropic-beta", "tools-x"),
    ];
    let own = message_with(&daemon, "fake/instant", false, &headers).await;
    assert_eq!(own.status(), 200);
    let seen = fake.requests_for("instant");
    let header = |name: &str| seen[0].headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(header("anthropic-version"), Some("2099-01-01"));
    assert_eq!(header("anthropic-beta"), Some("tools-x"));
    let versions = seen[0].headers.get_all("anthropic-version").iter().count();
    assert_eq!(versions, 1, "the client's version replaces the default");
    let wrong = daemon
        .client()
        .post(daemon.url("/v1/messages"))
        .body(r#"{"model":"fake/instant"}"#)
        .send()
        .await
        .expect("the daemon answers");
    assert_eq!(wrong.status(), 400);
    let body: Value = wrong.json().await.expect("JSON error");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("messages")
    );
}
