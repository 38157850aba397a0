//! Every request that reaches the daemon is one row in the history file —
//! no duplicates, none missing — with the outcome, HTTP status and error
//! code its client saw: answered, timed out, failed upstream, abandoned by
//! its client, cancelled by an operator, refused for a full queue, and cut
//! off by the drain's deadline. `/admin/history` agrees while the daemon
//! runs, and its `outcome` filter picks exactly the matching sessions.

use crate::support;

use std::collections::HashSet;

use serde_json::Value;
use support::records::*;
use support::*;
use switchboard_testkit::{FakeProvider, eventually_debug, raw_post};

/// What one request's row must say.
#[derive(Debug)]
struct Expected {
    /// How the request was made to end, for messages.
    what: &'static str,
    id: String,
    requested_model: &'static str,
    outcome: &'static str,
    status: i64,
    error_code: Option<&'static str>,
    attempts: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_is_one_row_with_the_outcome_its_client_saw() {
    let fake = FakeProvider::start().await;
    // `fake`: one call at a time (one more may wait), no retries.
    // `tight`: the same fake provider with a 400 ms total deadline.
    let daemon = daemon(&fake)
        .provider_toml("fake", "max_concurrency = 1\nmax_retries = 0")
        .provider("tight", &fake.base_url())
        .env("TIGHT_API_KEY", FAKE_KEY)
        .provider_toml("tight", "timeout_ms = 400\nmax_retries = 0")
        .toml("[sessions]\nmax_queued = 1\n\n[shutdown]\ndrain_timeout_ms = 1000")
        .start()
        .await;
    let path = default_history(&daemon);
    let mut expected: Vec<Expected> = Vec::new();

    // 1. Answered.
    let answered = chat(&daemon, "fake/instant", false).await;
    assert_eq!(answered.status(), 200, "fake/instant is answered");
    expected.push(Expected {
        what: "answered",
        id: session_id(&answered),
        requested_model: "fake/instant",
        outcome: "COMPLETED",
        status: 200,
        error_code: None,
        attempts: 1,
    });

    // 2. The total deadline passes.
    let timed_out = chat(&daemon, "tight/hang", false).await;
    assert_eq!(
        timed_out.status(),
        504,
        "a hung call past its 400 ms deadline"
    );
    let timeout_id = session_id(&timed_out);
    assert_eq!(error_code(timed_out).await, "timeout");
    expected.push(Expected {
        what: "timed out",
        id: timeout_id.clone(),
        requested_model: "tight/hang",
        outcome: "TIMEOUT",
        status: 504,
        error_code: Some("timeout"),
        attempts: 1,
    });

    // 3. The provider fails and is not retried.
    let failed = chat(&daemon, "fake/status-500", false).await;
    assert_eq!(failed.status(), 502, "a provider 500 is answered 502");
    let failed_id = session_id(&failed);
    assert_eq!(error_code(failed).await, "provider_error");
    expected.push(Expected {
        what: "provider error",
        id: failed_id,
        requested_model: "fake/status-500",
        outcome: "ERROR",
        status: 502,
        error_code: Some("provider_error"),
        attempts: 1,
    });
    eventually_debug("no call left at the fake", SETTLE, || async {
        if fake.in_flight() == 0 {
            Ok(())
        } else {
            Err(fake.in_flight())
        }
    })
    .await;

    // 4. The client goes away while waiting on a hung call.
    let connection = raw_post(
        daemon.socket(),
        "/v1/chat/completions",
        &body("fake/hang", false),
        &[("content-type", "application/json")],
    )
    .await;
    let live = wait_live(&daemon, 1).await;
    let gone_id = live[0]["id"].as_str().expect("live session id").to_owned();
    wait_upstream(&fake, 1).await;
    drop(connection);
    wait_last_phase(&daemon, &gone_id, "CANCELLED").await;
    wait_health(&daemon, 0, 0).await;
    expected.push(Expected {
        what: "client disconnected",
        id: gone_id.clone(),
        requested_model: "fake/hang",
        outcome: "CANCELLED",
        status: 499,
        error_code: Some("client_closed_request"),
        attempts: 1,
    });

    // 5. The queue is full: one call running, one waiting, one more refused.
    let occupier = spawn_chat(&daemon, &marked_body("fake/hang", "occupier"), &[]);
    let live = wait_live(&daemon, 1).await;
    let occupier_id = live[0]["id"].as_str().expect("occupier id").to_owned();
    wait_upstream(&fake, 1).await;
    let waiter = spawn_chat(&daemon, &marked_body("fake/hang", "waiter"), &[]);
    wait_health(&daemon, 1, 1).await;
    let live = wait_live(&daemon, 2).await;
    let waiter_id = new_live_id(&live, &HashSet::from([occupier_id.clone()]));
    let refused = chat(&daemon, "fake/instant", false).await;
    assert_eq!(refused.status(), 503, "a request beyond the full queue");
    let refused_id = session_id(&refused);
    assert_eq!(error_code(refused).await, "overloaded");
    expected.push(Expected {
        what: "queue full",
        id: refused_id.clone(),
        requested_model: "fake/instant",
        outcome: "REJECTED",
        status: 503,
        error_code: Some("overloaded"),
        attempts: 0,
    });

    // 6. An operator cancels the running one; the waiting one takes its place.
    let cancel = daemon
        .client()
        .delete(daemon.url(&format!("/admin/sessions/{occupier_id}")))
        .send()
        .await
        .expect("DELETE /admin/sessions/{id} answers");
    assert_eq!(cancel.status(), 202, "cancelling a live session");
    let cancelled = within("the cancelled client's answer", SETTLE, occupier)
        .await
        .expect("the occupier's task");
    assert_eq!(cancelled.status(), 503, "the cancelled client's answer");
    assert_eq!(
        session_id(&cancelled),
        occupier_id,
        "the answer names the session the admin listing showed"
    );
    assert_eq!(error_code(cancelled).await, "session_cancelled");
    expected.push(Expected {
        what: "operator cancel",
        id: occupier_id.clone(),
        requested_model: "fake/hang",
        outcome: "CANCELLED",
        status: 503,
        error_code: Some("session_cancelled"),
        attempts: 1,
    });
    wait_health(&daemon, 1, 0).await;
    wait_last_phase(&daemon, &waiter_id, "PROVIDER_CALL_START").await;

    // Before the drain, /admin/history shows the six that ended.
    let finished = wait_history(&daemon, "", 6).await;
    for want in &expected {
        let row = finished
            .iter()
            .find(|s| s["id"] == want.id.as_str())
            .unwrap_or_else(|| {
                panic!(
                    "{} ({}) in /admin/history: {finished:?}",
                    want.what, want.id
                )
            });
        assert_eq!(row["outcome"], want.outcome, "{}: {row}", want.what);
        assert_eq!(row["status"], want.status, "{}: {row}", want.what);
        assert_eq!(
            row["error_code"],
            want.error_code.map_or(Value::Null, Value::from),
            "{}: {row}",
            want.what
        );
    }
    assert!(
        !finished.iter().any(|s| s["id"] == waiter_id.as_str()),
        "the still-running session is not listed as finished: {finished:?}"
    );
    let timeouts = ids_of(&history(&daemon, "outcome=TIMEOUT").await);
    assert_eq!(
        timeouts,
        [timeout_id.as_str()],
        "?outcome=TIMEOUT lists exactly the timed-out session"
    );
    let cancelled: HashSet<String> = ids_of(&history(&daemon, "outcome=CANCELLED").await)
        .into_iter()
        .collect();
    assert_eq!(
        cancelled,
        HashSet::from([gone_id.clone(), occupier_id.clone()]),
        "?outcome=CANCELLED lists the abandoned and the operator-cancelled sessions"
    );
    let rejected = ids_of(&history(&daemon, "outcome=REJECTED").await);
    assert_eq!(
        rejected,
        [refused_id.as_str()],
        "?outcome=REJECTED lists exactly the queue-full refusal"
    );

    // 7. The drain's deadline cancels the one still running.
    daemon.signal(libc::SIGTERM);
    let cut = within("the drain-cancelled client's answer", EXIT, waiter)
        .await
        .expect("the waiter's task");
    assert_eq!(cut.status(), 503, "cancelled by the drain's deadline");
    assert_eq!(session_id(&cut), waiter_id);
    assert_eq!(error_code(cut).await, "shutting_down");
    expected.push(Expected {
        what: "drain cancel",
        id: waiter_id.clone(),
        requested_model: "fake/hang",
        outcome: "CANCELLED",
        status: 503,
        error_code: Some("shutting_down"),
        attempts: 1,
    });
    let status = daemon
        .wait_exit(EXIT)
        .await
        .expect("the daemon exits after its drain");
    assert!(status.success(), "{status:?}\n{}", daemon.logs());

    // The file, read directly: one row per request, each as its client saw it.
    let stored = rows(&path);
    let distinct: HashSet<&str> = stored.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        stored.len(),
        expected.len(),
        "one row per request, {} requests: {stored:#?}",
        expected.len()
    );
    assert_eq!(distinct.len(), stored.len(), "no id twice: {stored:#?}");
    for want in &expected {
        let row = stored
            .iter()
            .find(|r| r.id == want.id)
            .unwrap_or_else(|| panic!("a row for {} ({}): {stored:#?}", want.what, want.id));
        assert_eq!(
            row.requested_model, want.requested_model,
            "{}: {row:?}",
            want.what
        );
        assert_eq!(
            row.outcome.as_deref(),
            Some(want.outcome),
            "{}: {row:?}",
            want.what
        );
        assert_eq!(row.status, Some(want.status), "{}: {row:?}", want.what);
        assert_eq!(
            row.error_code.as_deref(),
            want.error_code,
            "{}: {row:?}",
            want.what
        );
        assert_eq!(
            row.attempts, want.attempts,
            "{}: attempts {row:?}",
            want.what
        );
        let ended = row
            .ended_at
            .unwrap_or_else(|| panic!("{}: a finished row has ended_at: {row:?}", want.what));
        assert!(
            ended >= row.received_at,
            "{}: ended_at {ended} >= received_at {}",
            want.what,
            row.received_at
        );
        let phases = row.phase_names();
        assert_eq!(
            phases.first().map(String::as_str),
            Some("RECEIVED"),
            "{}: {phases:?}",
            want.what
        );
        assert_eq!(
            phases.last().map(String::as_str),
            Some(want.outcome),
            "{}: the last phase is the outcome: {phases:?}",
            want.what
        );
    }
}

/// Waits until the fake provider has exactly `count` calls open.
async fn wait_upstream(fake: &FakeProvider, count: usize) {
    let what = format!("{count} calls open at the fake provider");
    eventually_debug(&what, SETTLE, || async {
        if fake.in_flight() == count {
            Ok(())
        } else {
            Err(fake.in_flight())
        }
    })
    .await;
}
