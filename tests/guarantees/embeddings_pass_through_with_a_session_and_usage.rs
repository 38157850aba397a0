//! `POST /v1/embeddings` goes to the provider's `{base_url}/embeddings`
//! with only `model` rewritten and the provider's key, as a session of its
//! own: the answer carries the session, its usage is in history, a request
//! without `input` gets OpenAI's 400, and the deadline applies (504).

use crate::support;

use serde_json::{Value, json};
use support::records::wait_history;
use support::*;
use switchboard_testkit::FakeProvider;

async fn embed(daemon: &Daemon, body: &Value) -> reqwest::Response {
    daemon
        .client()
        .post(daemon.url("/v1/embeddings"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("the daemon answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_get_a_session_usage_errors_and_deadlines() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .provider_toml("fake", "timeout_ms = 1000")
        .start()
        .await;

    let body = json!({"model": "fake/embedding-3", "input": ["two words", "three more words"]});
    let answer = embed(&daemon, &body).await;
    assert_eq!(answer.status(), 200);
    let id = session_id(&answer);
    let answer: Value = answer.json().await.expect("JSON answer");
    assert_eq!(answer["data"].as_array().map(Vec::len), Some(2), "{answer}");
    assert_eq!(answer["session"]["id"], id.as_str(), "{answer}");
    let seen = fake.requests();
    assert_eq!(seen[0].path, "/v1/embeddings");
    assert_eq!(seen[0].body["model"], "embedding-3");
    assert_eq!(seen[0].body["input"], body["input"]);
    let bearer = format!("Bearer {FAKE_KEY}");
    assert_eq!(seen[0].authorization.as_deref(), Some(bearer.as_str()));

    let missing = embed(&daemon, &json!({"model": "fake/embedding-3"})).await;
    assert_eq!(missing.status(), 400);
    let error: Value = missing.json().await.expect("JSON error");
    assert_eq!(error["error"]["param"], "input", "{error}");

    let hung = embed(&daemon, &json!({"model": "fake/hang", "input": "x"})).await;
    assert_eq!(hung.status(), 504);

    let rows = wait_history(&daemon, "limit=10", 3).await;
    let row = rows
        .iter()
        .find(|row| row["id"] == id.as_str())
        .expect("the embeddings session is in history");
    let reported = fake.usage_reported_for("embedding-3");
    assert_eq!(
        reported.prompt_tokens,
        5 + 8,
        "the fake counts input words + 8"
    );
    assert_eq!(
        row["usage"]["prompt_tokens"], reported.prompt_tokens,
        "{row}"
    );
    assert_eq!(row["usage"]["total_tokens"], reported.total_tokens, "{row}");
    assert_eq!(row["outcome"], "COMPLETED", "{row}");
    let outcomes: Vec<&Value> = rows.iter().map(|row| &row["outcome"]).collect();
    assert!(outcomes.contains(&&json!("TIMEOUT")), "{outcomes:?}");
    assert!(outcomes.contains(&&json!("REJECTED")), "{outcomes:?}");
}
