//! When a session's deadline passes, the client gets 504 (or an error event
//! mid-stream), the upstream connection is really closed, and the timeline
//! ends in TIMEOUT.

use crate::support;

use std::time::{Duration, Instant};

use support::*;
use switchboard_testkit::FakeProvider;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_provider_gets_504_and_a_closed_connection() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .provider_toml("fake", "timeout_ms = 500")
        .start()
        .await;
    let started = Instant::now();
    let response = chat(&daemon, "fake/hang", false).await;
    let took = started.elapsed();
    assert_eq!(response.status(), 504);
    let id = session_id(&response);
    assert_eq!(error_code(response).await, "timeout");
    assert!(
        took >= Duration::from_millis(480),
        "answered early: {took:?}"
    );
    assert!(
        took < Duration::from_millis(1500),
        "answered late: {took:?}"
    );
    assert!(
        fake.wait_until("upstream closed", Duration::from_secs(2), |f| f
            .connections_closed()
            == 1
            && f.abandoned() == 1)
            .await,
        "closed {} abandoned {}",
        fake.connections_closed(),
        fake.abandoned()
    );
    let phases = final_phases(&daemon, &id).await;
    assert_eq!(
        phases.last().map(String::as_str),
        Some("TIMEOUT"),
        "{phases:?}"
    );
    assert!(
        phases.contains(&"PROVIDER_CALL_END".to_owned()),
        "{phases:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_model_deadline_overrides_the_provider_one() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .provider_toml(
            "fake",
            "timeout_ms = 5000\nmodels = [\"instant\", { name = \"hang\", timeout_ms = 300 }]",
        )
        .start()
        .await;
    let started = Instant::now();
    let response = chat(&daemon, "fake/hang", false).await;
    assert_eq!(response.status(), 504);
    assert!(
        started.elapsed() < Duration::from_millis(2000),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(chat(&daemon, "fake/instant", false).await.status(), 200);
    assert_eq!(
        chat(&daemon, "fake/delay-10", false).await.status(),
        404,
        "not a listed model"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_stream_gets_an_error_event_at_the_deadline() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .provider_toml("fake", "timeout_ms = 800")
        .start()
        .await;
    let response = chat(&daemon, "fake/stall-3", true).await;
    assert_eq!(response.status(), 200);
    let id = session_id(&response);
    let (events, _) = SseReader::new(response).collect().await;
    assert_eq!(events.len(), 4, "3 chunks then an error event: {events:?}");
    let last: serde_json::Value = serde_json::from_str(&events[3]).expect("error event is JSON");
    assert_eq!(last["error"]["code"], "timeout", "{last}");
    assert!(!events.iter().any(|e| e == "[DONE]"));
    assert!(
        fake.wait_until("stream abandoned", Duration::from_secs(2), |f| f
            .abandoned()
            == 1)
            .await
    );
    assert_eq!(
        final_phases(&daemon, &id).await.last().map(String::as_str),
        Some("TIMEOUT")
    );
}
