//! Bad input gets the documented status with an error in OpenAI's shape, is
//! recorded as REJECTED, and the daemon keeps serving.

use crate::support;

use support::*;
use switchboard_testkit::FakeProvider;

async fn post(daemon: &Daemon, body: impl Into<reqwest::Body>) -> reqwest::Response {
    daemon
        .client()
        .post(daemon.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("answered")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_bad_request_gets_its_status() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .provider("listed", &fake.base_url())
        .env("LISTED_API_KEY", "x")
        .provider_toml("listed", "models = [\"instant\"]")
        .toml("[server]\nmax_body_bytes = 1024")
        .start()
        .await;
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "malformed JSON",
            "{\"model\": \"fake/instant\", ".into(),
            400,
            "invalid_request",
        ),
        ("not an object", "[1, 2, 3]".into(), 400, "invalid_request"),
        (
            "missing model",
            r#"{"messages":[]}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "model not a string",
            r#"{"model":3,"messages":[]}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "missing messages",
            r#"{"model":"fake/instant"}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "stream not a bool",
            r#"{"model":"fake/instant","messages":[],"stream":"y"}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "no provider prefix",
            body("instant", false),
            404,
            "model_not_found",
        ),
        (
            "unknown provider",
            body("nowhere/instant", false),
            404,
            "model_not_found",
        ),
        (
            "unlisted model",
            body("listed/delay-5", false),
            404,
            "model_not_found",
        ),
        (
            "too large",
            body(&format!("fake/{}", "x".repeat(2000)), false),
            413,
            "request_too_large",
        ),
        ("empty body", String::new(), 400, "invalid_request"),
    ];
    for (what, payload, status, code) in cases {
        let response = post(&daemon, payload).await;
        assert_eq!(response.status().as_u16(), status, "{what}");
        let id = session_id(&response);
        assert_eq!(error_code(response).await, code, "{what}");
        assert_eq!(
            final_phases(&daemon, &id).await,
            ["RECEIVED", "REJECTED"],
            "{what}"
        );
    }
    // A body that grows past the limit without announcing its length.
    let chunks = futures_util::stream::iter(
        (0..8).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 512]))),
    );
    let response = post(&daemon, reqwest::Body::wrap_stream(chunks)).await;
    assert_eq!(response.status(), 413);

    let response = post(&daemon, b"\xff\xfe not utf-8".to_vec()).await;
    assert_eq!(response.status(), 400);

    assert_eq!(fake.request_count(), 0, "nothing bad reached the provider");
    let good = chat(&daemon, "listed/instant", false).await;
    assert_eq!(good.status(), 200, "the daemon keeps serving");
    assert!(wait_live(&daemon, 0).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_paths_and_methods_get_openai_errors() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).start().await;
    let client = daemon.client();
    let response = client
        .get(daemon.url("/v1/nothing"))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 404);
    error_code(response).await;
    let response = client
        .get(daemon.url("/v1/chat/completions"))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 405);
    error_code(response).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_failures_become_502_with_the_reason() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).start().await;
    let response = chat(&daemon, "fake/status-500", false).await;
    assert_eq!(response.status(), 502);
    let id = session_id(&response);
    let body: serde_json::Value = response.json().await.expect("json");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("500") && message.contains("fake failure 500"),
        "{message}"
    );
    assert_eq!(
        final_phases(&daemon, &id).await.last().map(String::as_str),
        Some("ERROR")
    );

    let response = chat(&daemon, "fake/broken", false).await;
    assert_eq!(response.status(), 502);
    assert_eq!(error_code(response).await, "provider_unavailable");

    let unreachable = daemon_builder_unreachable().start().await;
    let response = chat(&unreachable, "down/instant", false).await;
    assert_eq!(response.status(), 502);
    assert_eq!(error_code(response).await, "provider_unavailable");
}

fn daemon_builder_unreachable() -> switchboard_testkit::DaemonBuilder {
    // Port 9 (discard) on loopback: nothing listens, the connect is refused.
    Daemon::builder(env!("CARGO_BIN_EXE_switchboard"))
        .provider("down", "http://127.0.0.1:9/v1")
        .env("DOWN_API_KEY", "x")
}
