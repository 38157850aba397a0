//! A client that goes away — while waiting for a whole answer, or in the
//! middle of a stream — makes its session CANCELLED, and the upstream
//! request is aborted (the provider sees its connection close).

use crate::support;

use std::time::Duration;

use support::*;
use switchboard_testkit::{FakeProvider, raw_post};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_while_waiting_cancels_and_closes_upstream() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).start().await;
    let connection = raw_post(
        daemon.socket(),
        "/v1/chat/completions",
        &body("fake/hang", false),
        &[],
    )
    .await;
    assert!(
        fake.wait_until("request upstream", Duration::from_secs(5), |f| f
            .in_flight()
            == 1)
            .await
    );
    let live = wait_live(&daemon, 1).await;
    let id = live[0]["id"].as_str().expect("id").to_owned();
    drop(connection);
    upstream_closed_and_session_cancelled(&fake, &daemon, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_mid_stream_cancels_and_closes_upstream() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).start().await;
    let response = chat(&daemon, "fake/stall-3", true).await;
    assert_eq!(response.status(), 200);
    let id = session_id(&response);
    let mut events = SseReader::new(response);
    for _ in 0..3 {
        assert!(events.next_event().await.is_some());
    }
    assert_eq!(live_sessions(&daemon).await.len(), 1);
    drop(events);
    upstream_closed_and_session_cancelled(&fake, &daemon, &id).await;
}

/// The provider saw its request abandoned and its connection closed, the
/// session ended CANCELLED, and nothing is left live.
async fn upstream_closed_and_session_cancelled(fake: &FakeProvider, daemon: &Daemon, id: &str) {
    assert!(
        fake.wait_until("upstream closed", Duration::from_secs(3), |f| f.abandoned()
            == 1
            && f.connections_closed() == 1)
            .await,
        "abandoned {} closed {}",
        fake.abandoned(),
        fake.connections_closed()
    );
    let phases = final_phases(daemon, id).await;
    assert_eq!(
        phases.last().map(String::as_str),
        Some("CANCELLED"),
        "{phases:?}"
    );
    assert!(wait_live(daemon, 0).await.is_empty());
}
