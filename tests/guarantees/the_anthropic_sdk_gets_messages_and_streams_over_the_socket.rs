//! The `anthropic` Python SDK, pointed at the daemon's Unix socket, gets a
//! message and a stream from an Anthropic-compatible provider (the fake
//! provider's Anthropic mode): the provider sees its own key as `x-api-key`
//! and `Bearer`, never the client's; an unknown model, or one whose
//! provider has no Anthropic endpoint, is a 404 in Anthropic's error shape
//! (the SDK raises `NotFoundError`); a client that leaves mid-stream
//! cancels the session and its upstream call.

use crate::support;

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use support::python::{ensure, json_result, run, script};
use support::*;
use switchboard_testkit::{FakeProvider, eventually};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// What the script sends as its API key; the provider must never see it.
const CLIENT_KEY: &str = "sk-ant-client-key-MUST-NOT-FORWARD";

/// The prompt the script sends has 5 words, so the fake reports 5 + 8 input tokens.
const PROMPT_TOKENS: u64 = 13;

async fn start(fake: &FakeProvider) -> Daemon {
    ensure(&["anthropic", "httpx"], &["anthropic", "httpx"]);
    let anthropic = format!("anthropic_base_url = {:?}", fake.anthropic_base_url());
    daemon(fake)
        .provider_toml("fake", &anthropic)
        .provider("plain", &fake.base_url())
        .env("PLAIN_API_KEY", "sk-plain")
        .toml("[aliases]\nclaude-test = [\"fake/instant\"]")
        .start()
        .await
}

async fn sdk(daemon: &Daemon, mode: &str, model: &str) -> Value {
    let args = [
        daemon.socket().to_string_lossy().into_owned(),
        mode.into(),
        model.into(),
    ];
    json_result(&run(script("anthropic/client.py"), args.to_vec()).await)
}

/// The provider got its own key both ways, the SDK's version header, and
/// nothing of the client's key anywhere in its headers.
fn saw_only_the_providers_key(seen: &switchboard_testkit::SeenRequest) {
    let header = |name: &str| seen.headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(header("x-api-key"), Some(FAKE_KEY));
    assert_eq!(
        seen.authorization.as_deref(),
        Some(format!("Bearer {FAKE_KEY}").as_str())
    );
    // The SDK sends its own version, which passes through.
    assert!(header("anthropic-version").is_some_and(|v| v.starts_with("20")));
    for (name, value) in &seen.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        assert!(
            !value.contains(CLIENT_KEY),
            "the client's key went upstream in {name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_and_a_stream_come_through_with_the_providers_key() {
    let fake = FakeProvider::start().await;
    let daemon = start(&fake).await;

    let message = sdk(&daemon, "message", "claude-test").await;
    assert_eq!(message["text"], "hello from the anthropic sdk", "{message}");
    assert_eq!(message["usage"]["input"], PROMPT_TOKENS, "{message}");
    assert_eq!(message["session"]["provider"], "fake", "{message}");
    let seen = fake.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/messages");
    assert_eq!(
        seen[0].body["model"], "instant",
        "only `model` is rewritten"
    );
    assert_eq!(seen[0].body["max_tokens"], 64, "the rest passes through");
    saw_only_the_providers_key(&seen[0]);

    let stream = sdk(&daemon, "stream", "fake/stream-4-20").await;
    assert_eq!(stream["text"], "w0 w1 w2 w3 ", "{stream}");
    assert_eq!(stream["usage"]["input"], PROMPT_TOKENS, "{stream}");
    assert_eq!(stream["usage"]["output"], 4, "{stream}");
    let events: Vec<&str> = stream["events"]
        .as_array()
        .expect("event list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(events.first(), Some(&"message_start"), "{events:?}");
    assert_eq!(events.last(), Some(&"message_stop"), "{events:?}");
    let seen = fake.requests();
    assert_eq!(seen[1].body["stream"], true);
    saw_only_the_providers_key(&seen[1]);
    assert!(
        !daemon.logs().contains(CLIENT_KEY) && !daemon.logs().contains(FAKE_KEY),
        "no key in the daemon's log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_models_and_providers_without_the_endpoint_get_anthropic_404s() {
    let fake = FakeProvider::start().await;
    let daemon = start(&fake).await;
    let unknown = sdk(&daemon, "error", "nope/x").await;
    assert_eq!(unknown["error"], "NotFoundError", "{unknown}");
    assert_eq!(unknown["status"], 404);
    assert_eq!(unknown["body"]["type"], "error", "{unknown}");
    assert_eq!(
        unknown["body"]["error"]["type"], "not_found_error",
        "{unknown}"
    );
    let plain = sdk(&daemon, "error", "plain/instant").await;
    assert_eq!(plain["error"], "NotFoundError", "{plain}");
    let why = plain["body"]["error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(why.contains("anthropic_base_url"), "{plain}");
    assert_eq!(fake.request_count(), 0, "nothing went upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_stream_cancels_upstream() {
    let fake = FakeProvider::start().await;
    let daemon = start(&fake).await;
    let socket = daemon.socket().to_string_lossy().into_owned();
    let mut child = tokio::process::Command::new("python3")
        .arg(script("anthropic/client.py"))
        .args([socket.as_str(), "disconnect", "fake/stall-3"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
        .await
        .expect("timed out waiting for the script's first delta")
        .expect("stdout reads");
    assert_eq!(first.as_deref(), Some("READ"));
    let live = wait_live(&daemon, 1).await;
    let id = live[0]["id"].as_str().expect("live session id").to_owned();
    assert_eq!(fake.in_flight(), 1);
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"go\n").await.expect("stdin writes");
    let status = tokio::time::timeout(Duration::from_secs(120), child.wait())
        .await
        .expect("timed out waiting for the script to exit")
        .expect("the script exits");
    assert!(status.success());
    eventually(
        "the upstream call abandoned",
        Duration::from_secs(10),
        || async { (fake.abandoned() == 1 && fake.in_flight() == 0).then_some(()) },
    )
    .await;
    let phases = final_phases(&daemon, &id).await;
    assert_eq!(
        phases.last().map(String::as_str),
        Some("CANCELLED"),
        "{phases:?}"
    );
}
