//! `x-priority` orders the queue: waiting `high` requests start before
//! `low` ones that came earlier, first come first served within a class; a
//! request that has waited `sessions.starvation_ms` counts as one class
//! higher (twice as long: two), so low work is not starved; any other
//! `x-priority` value is refused with 400.

use crate::support;

use std::time::Duration;

use serde_json::Value;
use support::*;
use switchboard_testkit::{Daemon, FakeProvider};

/// Occupies the provider's one slot with a request that never ends, and
/// waits until it is upstream; returns its session id and its task.
async fn occupy(
    daemon: &Daemon,
    fake: &FakeProvider,
) -> (String, tokio::task::JoinHandle<reqwest::Response>) {
    let occupier = spawn_chat(daemon, &marked_body("fake/hang", "occupier"), &[]);
    assert!(
        fake.wait_until("the occupier upstream", Duration::from_secs(10), |f| f
            .in_flight()
            == 1)
            .await
    );
    let live = wait_live(daemon, 1).await;
    assert_eq!(live.len(), 1, "{live:?}");
    (live[0]["id"].as_str().expect("id").to_owned(), occupier)
}

/// Queues one request with this marker and priority (none: no header) and
/// waits until the daemon counts `queued` waiting requests, so requests
/// join the line in the order they are sent.
async fn enqueue(
    daemon: &Daemon,
    marker: &str,
    priority: Option<&str>,
    queued: u64,
) -> tokio::task::JoinHandle<reqwest::Response> {
    let body = marked_body("fake/delay-10", marker);
    let task = match priority {
        Some(priority) => spawn_chat(daemon, &body, &[("x-priority", priority)]),
        None => spawn_chat(daemon, &body, &[]),
    };
    let health = wait_health(daemon, 1, queued).await;
    assert_eq!(health["queued_sessions"], queued, "{marker}: {health}");
    task
}

/// Frees the slot by cancelling the occupier.
async fn release(daemon: &Daemon, occupier: (String, tokio::task::JoinHandle<reqwest::Response>)) {
    let (id, task) = occupier;
    let cancel = daemon
        .client()
        .delete(daemon.url(&format!("/admin/sessions/{id}")))
        .send()
        .await
        .expect("cancel");
    assert_eq!(cancel.status(), 202);
    assert_eq!(task.await.expect("join").status(), 503);
}

/// The markers of the requests the fake provider received, in order,
/// without the occupier.
fn served(fake: &FakeProvider) -> Vec<String> {
    fake.requests()
        .iter()
        .map(marker_of)
        .filter(|m| m != "occupier")
        .collect()
}

/// The listed waiting sessions as (priority, queue_position), in listing
/// order (oldest first).
fn places(sessions: &[Value]) -> Vec<(String, u64)> {
    sessions
        .iter()
        .filter(|s| s["phase"] == "QUEUED")
        .map(|s| {
            (
                s["priority"].as_str().unwrap_or_default().to_owned(),
                s["queue_position"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn high_requests_start_before_earlier_low_ones() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .provider_toml("fake", "max_concurrency = 1")
        .start()
        .await;
    let occupier = occupy(&daemon, &fake).await;
    let mut waiting = Vec::new();
    for (n, marker) in ["low-0", "low-1", "low-2"].iter().enumerate() {
        waiting.push(enqueue(&daemon, marker, Some("low"), n as u64 + 1).await);
    }
    for (n, marker) in ["high-0", "high-1", "high-2"].iter().enumerate() {
        waiting.push(enqueue(&daemon, marker, Some("high"), n as u64 + 4).await);
    }

    // The listing (oldest first) shows the order they will be served in.
    let listed = places(&live_sessions(&daemon).await);
    assert_eq!(
        listed,
        [
            ("low".to_owned(), 4),
            ("low".to_owned(), 5),
            ("low".to_owned(), 6),
            ("high".to_owned(), 1),
            ("high".to_owned(), 2),
            ("high".to_owned(), 3),
        ],
        "priority and place in line of the waiting sessions, oldest first"
    );

    release(&daemon, occupier).await;
    for task in waiting {
        assert_eq!(task.await.expect("join").status(), 200);
    }
    assert_eq!(
        served(&fake),
        ["high-0", "high-1", "high-2", "low-0", "low-1", "low-2"],
        "high first, then low; first come first served within a class"
    );
    // (No max_in_flight check here: the fake may notice the cancelled
    // occupier's closed connection only after the next call has arrived.)
    assert_eq!(fake.request_count(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starving_low_request_overtakes_a_newer_normal_one() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .provider_toml("fake", "max_concurrency = 1")
        .toml("[sessions]\nstarvation_ms = 300")
        .start()
        .await;
    let occupier = occupy(&daemon, &fake).await;
    let low = enqueue(&daemon, "low", Some("low"), 1).await;
    // Past twice the starvation time the low request counts as high.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let normal = enqueue(&daemon, "normal", None, 2).await;
    let listed = places(&live_sessions(&daemon).await);
    assert_eq!(
        listed,
        [("low".to_owned(), 1), ("normal".to_owned(), 2)],
        "the starving low request is next in line"
    );
    release(&daemon, occupier).await;
    assert_eq!(low.await.expect("join").status(), 200);
    assert_eq!(normal.await.expect("join").status(), 200);
    assert_eq!(served(&fake), ["low", "normal"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_starvation_a_newer_normal_request_goes_first() {
    // The control for the test above: the same waits, but starvation_ms far
    // longer than them, so the low request keeps its class.
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .provider_toml("fake", "max_concurrency = 1")
        .toml("[sessions]\nstarvation_ms = 60000")
        .start()
        .await;
    let occupier = occupy(&daemon, &fake).await;
    let low = enqueue(&daemon, "low", Some("low"), 1).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let normal = enqueue(&daemon, "normal", Some("normal"), 2).await;
    release(&daemon, occupier).await;
    assert_eq!(low.await.expect("join").status(), 200);
    assert_eq!(normal.await.expect("join").status(), 200);
    assert_eq!(served(&fake), ["normal", "low"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_priority_is_refused() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).start().await;
    let response = chat_json(
        &daemon,
        &marked_body("fake/instant", "urgent"),
        &[("x-priority", "urgent")],
    )
    .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("error body is JSON");
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("x-priority")),
        "the message names the header: {body}"
    );
    assert_eq!(fake.request_count(), 0, "nothing went upstream");
    for class in ["high", "normal", "low"] {
        let response = chat_json(
            &daemon,
            &marked_body("fake/instant", class),
            &[("x-priority", class)],
        )
        .await;
        assert_eq!(response.status(), 200, "x-priority: {class}");
    }
}
