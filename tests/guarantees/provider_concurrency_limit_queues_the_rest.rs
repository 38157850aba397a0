//! A provider's `max_concurrency` bounds how many sessions call it at once;
//! the other requests wait in the queue (QUEUED, then DEQUEUED before their
//! session is allocated), are listed by `GET /admin/sessions` with their
//! place in line while they wait, and all get their answer in the end.

use crate::support;

use support::*;
use switchboard_testkit::FakeProvider;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_requests_share_four_slots() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .provider_toml("fake", "max_concurrency = 4")
        .start()
        .await;
    let requests: Vec<_> = (0..20)
        .map(|n| {
            spawn_chat(
                &daemon,
                &marked_body("fake/delay-500", &format!("r{n}")),
                &[],
            )
        })
        .collect();

    // While they run: the waiting ones are listed with their place in line.
    let listing = wait_listing(&daemon, "8 queued sessions in the listing", |sessions| {
        sessions.iter().filter(|s| s["phase"] == "QUEUED").count() >= 8
    })
    .await;
    let queued: Vec<_> = listing.iter().filter(|s| s["phase"] == "QUEUED").collect();
    assert!(
        queued.len() >= 8,
        "queued sessions are listed: {listing:#?}"
    );
    for session in &queued {
        let position = session["queue_position"].as_u64();
        assert!(
            position.is_some_and(|p| (1..=16).contains(&p)),
            "a queued session has a numeric place in line: {session}"
        );
        assert_eq!(session["provider"], "fake", "{session}");
        assert_eq!(session["priority"], "normal", "{session}");
    }
    let mut positions: Vec<u64> = queued
        .iter()
        .filter_map(|s| s["queue_position"].as_u64())
        .collect();
    positions.sort_unstable();
    positions.dedup();
    assert_eq!(
        positions.len(),
        queued.len(),
        "no two waiting sessions share a place in line: {queued:#?}"
    );
    let running: Vec<_> = listing.iter().filter(|s| s["phase"] != "QUEUED").collect();
    assert!(running.len() <= 4, "at most 4 run: {listing:#?}");
    for session in &running {
        assert!(
            session["queue_position"].is_null(),
            "a running session has no place in line: {session}"
        );
    }

    let mut ids = Vec::new();
    for request in requests {
        let response = request.await.expect("join");
        assert_eq!(response.status(), 200);
        ids.push(session_id(&response));
    }
    assert_eq!(fake.request_count(), 20);
    assert_eq!(
        fake.max_in_flight(),
        4,
        "the provider saw at most (and, under this load, exactly) 4 calls at once"
    );

    let mut waited = 0;
    for id in &ids {
        let phases = final_phases(&daemon, id).await;
        assert_eq!(
            phases.last().map(String::as_str),
            Some("COMPLETED"),
            "{id}: {phases:?}"
        );
        let at = |name: &str| phases.iter().position(|p| p == name);
        let allocated = at("SESSION_ALLOCATED").expect("every session is allocated");
        if let (Some(queued), Some(dequeued)) = (at("QUEUED"), at("DEQUEUED")) {
            assert!(
                queued < dequeued && dequeued < allocated,
                "QUEUED, DEQUEUED, then SESSION_ALLOCATED: {id}: {phases:?}"
            );
            waited += 1;
        } else {
            assert!(
                at("QUEUED").is_none() && at("DEQUEUED").is_none(),
                "QUEUED and DEQUEUED come as a pair: {id}: {phases:?}"
            );
        }
    }
    assert!(
        waited >= 16,
        "only {waited} of 20 timelines show the wait in the queue"
    );

    let health = wait_health(&daemon, 0, 0).await;
    assert_eq!(health["live_sessions"], 0, "{health}");
    assert_eq!(health["queued_sessions"], 0, "{health}");
    assert!(wait_live(&daemon, 0).await.is_empty());
}
