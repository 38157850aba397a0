//! A provider that streams one event larger than `max_event_bytes` cannot
//! make the daemon buffer it: the stream ends with an SSE error event in
//! OpenAI's shape (no `[DONE]`), the upstream request is aborted, the
//! session ends in ERROR in its timeline, history and metrics, and the
//! daemon goes on serving the next request.

use crate::support;

use std::time::Duration;

use serde_json::Value;
use support::records::{wait_history, within};
use support::scrape::scrape_until;
use support::*;
use switchboard_testkit::FakeProvider;

/// The cap the daemon is given: far below the event the fake sends.
const CAP: usize = 64 * 1024;

/// The fake's event: 16 MiB of content, 256 times the cap, in 4 KiB writes.
/// More than loopback's socket buffers hold (a 4 MiB send buffer here, and
/// a receive buffer that grows only as the daemon reads): were it smaller,
/// a daemon slowed by a loaded machine could see the fake finish writing
/// into the buffers before it closed, and the abort would go unseen.
const OVERSIZED: &str = "fake/bigevent-16777216-4096";

/// How long any one stream may take before the test gives up on it.
const GIVE_UP: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_event_ends_the_stream_with_an_error_and_the_session_in_error() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .provider_toml("fake", &format!("max_event_bytes = {CAP}"))
        .start()
        .await;
    let response = chat(&daemon, OVERSIZED, true).await;
    assert_eq!(response.status(), 200, "the stream begins before the event");
    let id = session_id(&response);
    let (events, broken) = within("the oversized stream to end", GIVE_UP, async {
        SseReader::new(response).collect().await
    })
    .await;
    assert_eq!(
        broken, None,
        "the stream ends cleanly after its error event"
    );
    assert_eq!(
        events.len(),
        1,
        "only the error event, no content, no [DONE]"
    );
    let error: Value = serde_json::from_str(&events[0]).expect("the error event is JSON");
    assert_eq!(error["error"]["code"], "provider_unavailable", "{error}");
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("max_event_bytes"), "{error}");

    assert!(
        fake.wait_until("the upstream stream abandoned", GIVE_UP, |f| f.abandoned()
            == 1)
            .await,
        "the daemon should abort the upstream call (abandoned {})",
        fake.abandoned()
    );
    let phases = final_phases(&daemon, &id).await;
    assert_eq!(
        phases.last().map(String::as_str),
        Some("ERROR"),
        "{phases:?}"
    );
    let (_, timeline) = get_json(&daemon, &format!("/admin/sessions/{id}")).await;
    let detail = timeline["phases"]
        .as_array()
        .and_then(|p| p.last())
        .map(|p| p["detail"].to_string())
        .unwrap_or_default();
    assert!(detail.contains("max_event_bytes"), "{timeline}");

    let rows = wait_history(&daemon, "outcome=ERROR", 1).await;
    assert_eq!(rows[0]["id"], id.as_str(), "{rows:?}");
    assert_eq!(rows[0]["error_code"], "provider_unavailable", "{rows:?}");
    scrape_until(&daemon, "one ERROR request in the metrics", |s| {
        let labels = [("provider", "fake"), ("outcome", "ERROR")];
        match s.sum("switchboard_requests_total", &labels) {
            1.0 => Ok(()),
            seen => Err(format!("{seen}")),
        }
    })
    .await;

    // The daemon goes on serving.
    let next = chat(&daemon, "fake/instant", true).await;
    assert_eq!(next.status(), 200);
    let (events, _) = within("the next stream", GIVE_UP, SseReader::new(next).collect()).await;
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
}
