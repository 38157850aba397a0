//! An event of a stream that is far larger than a read, but within
//! `max_event_bytes`, is reassembled and forwarded whole and unchanged,
//! however many small writes the provider cut it into; the session ends
//! COMPLETED.

use crate::support;

use std::time::Duration;

use serde_json::Value;
use support::records::within;
use support::*;
use switchboard_testkit::{FakeProvider, big_event_content};

/// How long any one stream may take before the test gives up on it.
const GIVE_UP: Duration = Duration::from_secs(30);

/// Streams `model` and checks the answer: the big content chunk intact,
/// the `stop` chunk, `[DONE]`, and a COMPLETED session.
async fn assert_arrives_intact(daemon: &Daemon, model: &str, content_bytes: usize) {
    let response = chat(daemon, model, true).await;
    assert_eq!(response.status(), 200, "{model}");
    let id = session_id(&response);
    let (events, broken) = within("the big stream to end", GIVE_UP, async {
        SseReader::new(response).collect().await
    })
    .await;
    assert_eq!(broken, None, "{model}");
    assert_eq!(events.len(), 3, "{model}: big chunk, stop chunk, [DONE]");
    let chunk: Value = serde_json::from_str(&events[0]).expect("the big chunk is JSON");
    let content = chunk["choices"][0]["delta"]["content"]
        .as_str()
        .expect("the big chunk carries content");
    assert_eq!(content.len(), content_bytes, "{model}");
    assert!(
        content == big_event_content(content_bytes),
        "{model}: the content arrived changed"
    );
    assert_eq!(events[2], "[DONE]", "{model}");
    let phases = final_phases(daemon, &id).await;
    assert_eq!(
        phases.last().map(String::as_str),
        Some("COMPLETED"),
        "{model}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_megabyte_event_in_one_kilobyte_writes_arrives_whole() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).start().await;
    assert_arrives_intact(&daemon, "fake/bigevent-524288-1024", 524_288).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_just_under_the_cap_passes() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .provider_toml("fake", "max_event_bytes = 65536")
        .start()
        .await;
    // About 200 bytes of the chunk's JSON around 65,000 of content.
    assert_arrives_intact(&daemon, "fake/bigevent-65000-333", 65_000).await;
}
