//! A streamed answer reaches the client chunk by chunk as the provider sends
//! it — the first chunk long before the provider has finished — and ends
//! with `data: [DONE]`.

use crate::support;

use std::time::{Duration, Instant};

use support::*;
use switchboard_testkit::FakeProvider;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_arrive_before_the_provider_finishes() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).start().await;
    let started = Instant::now();
    let response = chat(&daemon, "fake/stream-5-300", true).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let id = session_id(&response);
    let mut reader = SseReader::new(response);
    let mut arrivals = Vec::new();
    let mut events = Vec::new();
    while let Some(event) = reader.next_event().await {
        arrivals.push(started.elapsed());
        events.push(event);
    }
    // The provider sends 5 chunks 300 ms apart, so it finishes at ~1.2 s.
    assert!(
        arrivals[0] < Duration::from_millis(600),
        "first chunk at {:?}",
        arrivals[0]
    );
    assert!(
        arrivals[1] - arrivals[0] >= Duration::from_millis(200),
        "{arrivals:?}"
    );
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    let chunks: Vec<serde_json::Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).expect("chunk is JSON"))
        .collect();
    assert!(chunks.len() >= 5, "{events:?}");
    assert_eq!(chunks[0]["object"], "chat.completion.chunk");
    let phases = final_phases(&daemon, &id).await;
    assert_eq!(
        phases,
        [
            "RECEIVED",
            "SESSION_ALLOCATED",
            "PROVIDER_CALL_START",
            "FIRST_TOKEN",
            "PROVIDER_CALL_END",
            "SESSION_RELEASED",
            "COMPLETED"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_stream_ends_in_an_error_event_not_done() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).start().await;
    let response = chat(&daemon, "fake/cut-2", true).await;
    assert_eq!(response.status(), 200);
    let id = session_id(&response);
    let (events, _) = SseReader::new(response).collect().await;
    assert_eq!(events.len(), 3, "{events:?}");
    let last: serde_json::Value = serde_json::from_str(&events[2]).expect("error event");
    assert_eq!(last["error"]["code"], "provider_unavailable", "{last}");
    assert_eq!(
        final_phases(&daemon, &id).await.last().map(String::as_str),
        Some("ERROR")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_provider_streams_word_by_word() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .toml("[providers.mock]\nkind = \"mock\"\nstream_interval_ms = 5\nmodels = [\"echo\"]")
        .start()
        .await;
    let response = chat(&daemon, "mock/echo", true).await;
    let (events, _) = SseReader::new(response).collect().await;
    let text: String = events
        .iter()
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(e).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "hello from a test");
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
}
