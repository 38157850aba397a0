//! When the MCP client cancels a `chat` call (the SDK's cancellation, which
//! sends `notifications/cancelled`), `switchboard mcp` drops its request to
//! the daemon; the daemon sees its client go away, so the session ends
//! CANCELLED and the upstream call is aborted (the provider sees its
//! connection close) — while waiting for a whole answer, and mid-stream.
//! The MCP server goes on serving.

use crate::support;

use std::time::Duration;

use serde_json::json;
use support::mcp::{ClientOptions, McpClient};
use support::*;
use switchboard_testkit::FakeProvider;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_call_ends_its_session_cancelled_and_closes_upstream() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).start().await;
    let mut client = McpClient::start(daemon.socket(), &ClientOptions::default()).await;

    // Waiting for a whole answer from a provider that never gives one.
    client
        .start_call(
            "hung",
            "chat",
            json!({"model": "fake/hang", "prompt": "hi"}),
            false,
        )
        .await;
    let id = live_session_upstream(&fake, &daemon).await;
    client.cancel("hung").await;
    cancelled_with_upstream_closed(&fake, &daemon, &id, 1).await;

    // Mid-stream: two deltas came, then the provider stalls.
    client
        .start_call(
            "stalled",
            "chat",
            json!({"model": "fake/stall-2", "prompt": "hi"}),
            true,
        )
        .await;
    for n in 0..2 {
        client
            .wait_for(&format!("delta {n}"), |e| {
                e["id"] == "stalled" && e["event"] == "progress"
            })
            .await;
    }
    let id = live_session_upstream(&fake, &daemon).await;
    client.cancel("stalled").await;
    cancelled_with_upstream_closed(&fake, &daemon, &id, 2).await;

    let after = client
        .call(
            "after",
            "chat",
            json!({"model": "fake/instant", "prompt": "still here"}),
        )
        .await;
    assert_eq!(after["isError"], false, "the server goes on: {after}");
    client.close().await;
}

/// Waits until one session is live with its request upstream; its id.
async fn live_session_upstream(fake: &FakeProvider, daemon: &Daemon) -> String {
    assert!(
        fake.wait_until("the request upstream", Duration::from_secs(15), |f| f
            .in_flight()
            == 1)
            .await,
        "timed out waiting for the request upstream"
    );
    let live = wait_live(daemon, 1).await;
    assert_eq!(live.len(), 1, "{live:?}");
    live[0]["id"].as_str().expect("a session id").to_owned()
}

/// The session ended CANCELLED, the provider saw `abandoned` requests
/// dropped with their connections closed, and nothing is left live.
async fn cancelled_with_upstream_closed(
    fake: &FakeProvider,
    daemon: &Daemon,
    id: &str,
    abandoned: usize,
) {
    assert!(
        fake.wait_until("upstream closed", Duration::from_secs(15), |f| f
            .abandoned()
            == abandoned
            && f.connections_closed() == abandoned
            && f.in_flight() == 0)
            .await,
        "timed out waiting for the upstream call to be dropped: abandoned {} closed {} in flight {}",
        fake.abandoned(),
        fake.connections_closed(),
        fake.in_flight()
    );
    let phases = records::wait_last_phase(daemon, id, "CANCELLED").await;
    assert_eq!(
        phases.last().map(String::as_str),
        Some("CANCELLED"),
        "{phases:?}"
    );
    let (_, timeline) = get_json(daemon, &format!("/admin/sessions/{id}")).await;
    assert_eq!(timeline["outcome"], "CANCELLED", "{timeline}");
    assert!(wait_live(daemon, 0).await.is_empty(), "nothing left live");
}
