//! `GET /admin/sessions` lists live sessions while they run and is empty
//! afterwards; `DELETE /admin/sessions/{id}` cancels one: its client gets an
//! error at once and its upstream request is aborted.

use crate::support;

use std::time::{Duration, Instant};

use support::*;
use switchboard_testkit::FakeProvider;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_sessions_are_listed_while_they_run() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).start().await;
    let requests: Vec<_> = (0..3)
        .map(|_| {
            let client = daemon.client();
            let request = client
                .post(daemon.url("/v1/chat/completions"))
                .body(body("fake/delay-1500", false));
            tokio::spawn(request.send())
        })
        .collect();
    let live = wait_live(&daemon, 3).await;
    assert_eq!(live.len(), 3, "{live:?}");
    for session in &live {
        assert_eq!(session["provider"], "fake");
        assert_eq!(session["model"], "delay-1500");
        assert_eq!(session["stream"], false);
        assert!(session["age_ms"].is_u64());
        assert!(
            session["client"]["uid"].is_u64(),
            "peer credentials: {session}"
        );
        let phase = session["phase"].as_str().expect("phase");
        assert!(
            ["SESSION_ALLOCATED", "PROVIDER_CALL_START"].contains(&phase),
            "{phase}"
        );
    }
    for request in requests {
        assert_eq!(request.await.expect("join").expect("answer").status(), 200);
    }
    assert!(wait_live(&daemon, 0).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_cancels_a_session_and_its_upstream_call() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).start().await;
    let client = daemon.client();
    let waiting = tokio::spawn(
        client
            .post(daemon.url("/v1/chat/completions"))
            .body(body("fake/hang", false))
            .send(),
    );
    let live = wait_live(&daemon, 1).await;
    let id = live[0]["id"].as_str().expect("id").to_owned();
    assert!(
        fake.wait_until("upstream", Duration::from_secs(5), |f| f.in_flight() == 1)
            .await
    );

    let started = Instant::now();
    let cancel = client
        .delete(daemon.url(&format!("/admin/sessions/{id}")))
        .send()
        .await
        .expect("cancel");
    assert_eq!(cancel.status(), 202);
    let response = waiting.await.expect("join").expect("answer");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["x-should-retry"], "false");
    assert_eq!(error_code(response).await, "session_cancelled");
    assert!(
        fake.wait_until("upstream aborted", Duration::from_secs(3), |f| f
            .abandoned()
            == 1)
            .await
    );
    assert_eq!(
        final_phases(&daemon, &id).await.last().map(String::as_str),
        Some("CANCELLED")
    );

    let again = client
        .delete(daemon.url(&format!("/admin/sessions/{id}")))
        .send()
        .await
        .expect("again");
    assert_eq!(
        again.status(),
        404,
        "a finished session cannot be cancelled"
    );
    let (status, _) = get_json(&daemon, "/admin/sessions/not-a-session").await;
    assert_eq!(status, 404);
}
