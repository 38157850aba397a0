//! A stream whose provider goes silent between chunks (`idle_timeout_ms`) or
//! never sends a first chunk (`first_token_timeout_ms`) is cut at that
//! deadline, not at the session's total one: the upstream request is
//! aborted, the client gets an error event naming the deadline instead of
//! `[DONE]`, and the session ends in TIMEOUT with a detail naming it. A
//! model's own deadline overrides the provider's.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;
use switchboard_testkit::FakeProvider;

/// How long any one stream may take before the test gives up on it.
const GIVE_UP: Duration = Duration::from_secs(10);

/// Reads every event of a streamed answer, with the instant each arrived.
async fn read_all(response: reqwest::Response) -> Vec<(Instant, String)> {
    let mut reader = SseReader::new(response);
    let mut events = Vec::new();
    let read = async {
        while let Some(event) = reader.next_event().await {
            events.push((Instant::now(), event));
        }
    };
    let finished = tokio::time::timeout(GIVE_UP, read).await;
    assert!(
        finished.is_ok(),
        "the stream was still open after {GIVE_UP:?}: {events:?}"
    );
    events
}

/// Parses an error event and checks its shape; returns its `error` object.
fn timeout_error(event: &str) -> Value {
    let parsed: Value = serde_json::from_str(event)
        .unwrap_or_else(|e| panic!("the last event is not JSON ({e}): {event}"));
    let error = parsed["error"].clone();
    assert_eq!(error["code"], "timeout", "{parsed}");
    assert!(error["type"].is_string(), "{parsed}");
    error
}

/// The finished timeline's last event (phase and detail).
async fn last_event(daemon: &Daemon, id: &str) -> Value {
    final_phases(daemon, id).await;
    let (status, session) = get_json(daemon, &format!("/admin/sessions/{id}")).await;
    assert_eq!(status, 200, "timeline of {id}: {session}");
    session["phases"]
        .as_array()
        .and_then(|p| p.last())
        .cloned()
        .unwrap_or(Value::Null)
}

/// Asserts the session ended in TIMEOUT with a detail containing `word`.
async fn assert_timed_out(daemon: &Daemon, id: &str, word: &str) {
    let last = last_event(daemon, id).await;
    assert_eq!(last["phase"], "TIMEOUT", "{last}");
    assert!(
        last["detail"].as_str().is_some_and(|d| d.contains(word)),
        "the TIMEOUT detail should name the {word} deadline: {last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_stream_is_cut_at_the_idle_deadline() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .provider_toml("fake", "idle_timeout_ms = 300")
        .start()
        .await;
    let response = chat(&daemon, "fake/stall-3", true).await;
    assert_eq!(response.status(), 200);
    let id = session_id(&response);
    let events = read_all(response).await;
    let texts: Vec<&str> = events.iter().map(|(_, e)| e.as_str()).collect();
    assert_eq!(events.len(), 4, "3 chunks then an error event: {texts:?}");
    assert!(!texts.contains(&"[DONE]"), "{texts:?}");
    for chunk in &texts[..3] {
        let chunk: Value = serde_json::from_str(chunk).expect("chunk is JSON");
        assert_eq!(chunk["object"], "chat.completion.chunk", "{chunk}");
    }
    let error = timeout_error(texts[3]);
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("idle")),
        "{error}"
    );
    let silence = events[3].0 - events[2].0;
    assert!(
        silence >= Duration::from_millis(250),
        "cut {silence:?} after the last chunk, before the 300 ms idle deadline"
    );
    assert!(
        silence < Duration::from_millis(1000),
        "cut {silence:?} after the last chunk, for a 300 ms idle deadline"
    );
    assert!(
        fake.wait_until(
            "stream abandoned, connection closed",
            Duration::from_secs(2),
            |f| { f.abandoned() == 1 && f.connections_closed() == 1 }
        )
        .await,
        "abandoned {} closed {}",
        fake.abandoned(),
        fake.connections_closed()
    );
    assert_timed_out(&daemon, &id, "idle").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_without_a_first_chunk_is_cut_at_the_first_token_deadline() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .provider_toml("fake", "first_token_timeout_ms = 300")
        .start()
        .await;
    let started = Instant::now();
    let response = chat(&daemon, "fake/slowheaders-2000", true).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let id = session_id(&response);
    let events = read_all(response).await;
    let took = started.elapsed();
    let texts: Vec<&str> = events.iter().map(|(_, e)| e.as_str()).collect();
    assert_eq!(events.len(), 1, "a single error event: {texts:?}");
    let error = timeout_error(texts[0]);
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("first_token")),
        "{error}"
    );
    assert!(
        took >= Duration::from_millis(250),
        "cut after {took:?}, before the 300 ms first-token deadline"
    );
    assert!(
        took < Duration::from_millis(1500),
        "cut after {took:?}; the provider answers at 2 s"
    );
    assert!(
        fake.wait_until("request abandoned", Duration::from_secs(2), |f| f
            .abandoned()
            == 1)
            .await,
        "abandoned {}",
        fake.abandoned()
    );
    assert_timed_out(&daemon, &id, "first_token").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_models_idle_deadline_applies_to_that_model_only() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .provider_toml(
            "fake",
            "models = [{ name = \"stall-2\", idle_timeout_ms = 200 }, \"instant\", \"stream-3-400\"]",
        )
        .start()
        .await;

    let started = Instant::now();
    let response = chat(&daemon, "fake/stall-2", true).await;
    assert_eq!(response.status(), 200);
    let id = session_id(&response);
    let events = read_all(response).await;
    let texts: Vec<&str> = events.iter().map(|(_, e)| e.as_str()).collect();
    assert_eq!(events.len(), 3, "2 chunks then an error event: {texts:?}");
    let error = timeout_error(texts[2]);
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("idle")),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(2000),
        "cut after {:?} for a 200 ms idle deadline",
        started.elapsed()
    );
    assert!(
        fake.wait_until("stream abandoned", Duration::from_secs(2), |f| f
            .abandoned()
            == 1)
            .await
    );
    assert_timed_out(&daemon, &id, "idle").await;

    // Neither a quick stream nor one silent for 400 ms between chunks is
    // cut: the 200 ms belongs to `stall-2` alone.
    for model in ["fake/instant", "fake/stream-3-400"] {
        let response = chat(&daemon, model, true).await;
        assert_eq!(response.status(), 200, "{model}");
        let id = session_id(&response);
        let events = read_all(response).await;
        let texts: Vec<&str> = events.iter().map(|(_, e)| e.as_str()).collect();
        assert_eq!(texts.last(), Some(&"[DONE]"), "{model}: {texts:?}");
        assert!(texts.len() >= 4, "{model}: {texts:?}");
        assert_eq!(
            final_phases(&daemon, &id).await.last().map(String::as_str),
            Some("COMPLETED"),
            "{model}"
        );
    }
}
