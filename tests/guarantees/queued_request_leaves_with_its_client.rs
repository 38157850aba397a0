//! A request waiting in the queue whose client disconnects leaves the queue
//! (its room is freed, its timeline ends CANCELLED) and never reaches the
//! provider, even when a slot frees up afterwards.

use crate::support;

use std::time::Duration;

use support::*;
use switchboard_testkit::{FakeProvider, raw_post};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_departed_client_is_taken_out_of_line() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .provider_toml("fake", "max_concurrency = 1")
        .start()
        .await;
    let holder = spawn_chat(
        &daemon,
        &serde_json::from_str(&body("fake/hang", false)).expect("json"),
        &[],
    );
    wait_health(&daemon, 1, 0).await;
    let waiting = raw_post(
        daemon.socket(),
        "/v1/chat/completions",
        &body("fake/delay-10", false),
        &[],
    )
    .await;
    assert_eq!(wait_health(&daemon, 1, 1).await["queued_sessions"], 1);
    let queued = live_sessions(&daemon)
        .await
        .into_iter()
        .find(|s| s["phase"] == "QUEUED")
        .expect("the waiting request is listed");
    let id = queued["id"].as_str().expect("id").to_owned();

    drop(waiting);
    let health = wait_health(&daemon, 1, 0).await;
    assert_eq!(health["queued_sessions"], 0, "{health}");
    let phases = final_phases(&daemon, &id).await;
    assert_eq!(
        phases.first().map(String::as_str),
        Some("RECEIVED"),
        "{phases:?}"
    );
    assert!(phases.contains(&"QUEUED".to_owned()), "{phases:?}");
    assert_eq!(
        phases.last().map(String::as_str),
        Some("CANCELLED"),
        "{phases:?}"
    );
    assert!(
        !phases.contains(&"SESSION_ALLOCATED".to_owned()),
        "{phases:?}"
    );

    // Free the slot: nothing is left to run, and the provider never saw it.
    let holder_id = live_sessions(&daemon).await[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let cancel = daemon
        .client()
        .delete(daemon.url(&format!("/admin/sessions/{holder_id}")))
        .send()
        .await
        .expect("cancel");
    assert_eq!(cancel.status(), 202);
    let _ = holder.await;
    wait_health(&daemon, 0, 0).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        fake.requests_for("delay-10").is_empty(),
        "the departed request never went upstream"
    );
}
