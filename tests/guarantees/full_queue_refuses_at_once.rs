//! When `sessions.max_queued` requests already wait, the next one is refused
//! at once (503 `overloaded` with `Retry-After`, timeline RECEIVED,
//! REJECTED), however many come: refusals cost no lasting memory and the
//! daemon keeps serving. A waiting request whose deadline passes before it
//! could start is refused the same way, at its deadline.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;
use switchboard_testkit::FakeProvider;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_beyond_a_full_queue_is_refused_at_once() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .provider_toml("fake", "max_concurrency = 1")
        .toml("[sessions]\nmax_queued = 5")
        .start()
        .await;
    let occupier = spawn_chat(&daemon, &marked_body("fake/hang", "occupier"), &[]);
    assert!(
        fake.wait_until("the occupier upstream", Duration::from_secs(10), |f| f
            .in_flight()
            == 1)
            .await
    );
    let occupier_id = wait_live(&daemon, 1).await[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let waiting: Vec<_> = (0..5)
        .map(|n| {
            spawn_chat(
                &daemon,
                &marked_body("fake/delay-50", &format!("w{n}")),
                &[],
            )
        })
        .collect();
    let health = wait_health(&daemon, 1, 5).await;
    assert_eq!(health["queued_sessions"], 5, "{health}");

    let started = Instant::now();
    let refused = chat_json(&daemon, &marked_body("fake/delay-50", "seventh"), &[]).await;
    let took = started.elapsed();
    assert_eq!(refused.status(), 503);
    assert!(
        took < Duration::from_millis(800),
        "refused at once, not after a wait: {took:?}"
    );
    let retry_after = refused
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        retry_after.is_some_and(|s| s >= 1),
        "Retry-After in whole seconds: {:?}",
        refused.headers()
    );
    let id = session_id(&refused);
    assert_eq!(error_code(refused).await, "overloaded");
    assert_eq!(final_phases(&daemon, &id).await, ["RECEIVED", "REJECTED"]);

    // A flood of refusals: each one answered, none kept.
    let flood = |count: usize| {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let client = daemon.client();
                let url = daemon.url("/v1/chat/completions");
                let body = marked_body("fake/delay-50", "flood").to_string();
                tokio::spawn(async move {
                    let mut statuses = Vec::new();
                    for _ in 0..count / 8 {
                        let response = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(body.clone())
                            .send()
                            .await
                            .expect("the daemon answers");
                        statuses.push(response.status().as_u16());
                        let _ = response.bytes().await;
                    }
                    statuses
                })
            })
            .collect::<Vec<_>>();
        async move {
            let mut statuses = Vec::new();
            for task in tasks {
                statuses.extend(task.await.expect("join"));
            }
            statuses
        }
    };
    // Warm-up, so one-time allocations (pools, buffers, the ring of recent
    // timelines filling up) are not counted as growth.
    let warm = flood(1000).await;
    assert!(warm.iter().all(|&s| s == 503), "{warm:?}");
    let before = vm_rss_kb(daemon.pid());
    let statuses = flood(3000).await;
    let after = vm_rss_kb(daemon.pid());
    assert_eq!(statuses.len(), 3000);
    assert!(
        statuses.iter().all(|&s| s == 503),
        "every request beyond the full queue is refused"
    );
    assert!(
        after.saturating_sub(before) < 10 * 1024,
        "the daemon's RSS grew from {before} kB to {after} kB over 3000 refusals"
    );
    assert_eq!(fake.request_count(), 1, "only the occupier went upstream");

    // Still serving: the queue is intact, and freeing the slot runs it.
    let health = healthz(&daemon).await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["live_sessions"], 1, "{health}");
    assert_eq!(health["queued_sessions"], 5, "{health}");
    let cancel = daemon
        .client()
        .delete(daemon.url(&format!("/admin/sessions/{occupier_id}")))
        .send()
        .await
        .expect("cancel");
    assert_eq!(cancel.status(), 202);
    assert_eq!(occupier.await.expect("join").status(), 503);
    for task in waiting {
        assert_eq!(task.await.expect("join").status(), 200);
    }
    assert_eq!(fake.request_count(), 6);
    let health = wait_health(&daemon, 0, 0).await;
    assert_eq!(health["queued_sessions"], 0, "{health}");
    assert_eq!(health["live_sessions"], 0, "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_request_whose_deadline_passes_is_refused() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .provider_toml(
            "fake",
            "max_concurrency = 1\ntimeout_ms = 600\nmodels = [{ name = \"hang\", timeout_ms = 30000 }, \"instant\"]",
        )
        .start()
        .await;
    let occupier = spawn_chat(&daemon, &marked_body("fake/hang", "occupier"), &[]);
    assert!(
        fake.wait_until("the occupier upstream", Duration::from_secs(10), |f| f
            .in_flight()
            == 1)
            .await
    );

    let started = Instant::now();
    let response = chat_json(&daemon, &marked_body("fake/instant", "late"), &[]).await;
    let took = started.elapsed();
    assert_eq!(response.status(), 503);
    assert!(
        response.headers().contains_key("retry-after"),
        "{:?}",
        response.headers()
    );
    let id = session_id(&response);
    assert_eq!(error_code(response).await, "overloaded");
    assert!(
        took >= Duration::from_millis(550),
        "refused before its deadline: {took:?}"
    );
    assert!(
        took < Duration::from_millis(3000),
        "refused long after its deadline: {took:?}"
    );
    assert_eq!(fake.request_count(), 1, "it never went upstream");

    let phases = final_phases(&daemon, &id).await;
    assert_eq!(phases.first().map(String::as_str), Some("RECEIVED"));
    assert_eq!(
        phases.last().map(String::as_str),
        Some("REJECTED"),
        "{phases:?}"
    );
    assert!(phases.contains(&"QUEUED".to_owned()), "{phases:?}");
    assert!(
        !phases.contains(&"SESSION_ALLOCATED".to_owned()),
        "{phases:?}"
    );
    let (_, timeline) = get_json(&daemon, &format!("/admin/sessions/{id}")).await;
    let rejected: &Value = timeline["phases"]
        .as_array()
        .and_then(|p| p.last())
        .expect("last phase");
    assert!(
        rejected["detail"]
            .as_str()
            .is_some_and(|d| d.contains("deadline")),
        "the refusal says the deadline passed: {rejected}"
    );
    let health = wait_health(&daemon, 1, 0).await;
    assert_eq!(health["queued_sessions"], 0, "out of the queue: {health}");
    // It would fail (and say so) once the daemon is gone.
    occupier.abort();
}
