//! A failed provider call is retried when a second try may succeed (429,
//! 5xx, refused connections, GLM's and Kimi's "busy" answers) and never when
//! it cannot (other 4xx, quota exhausted, GLM's permanent codes); the
//! provider's own hint (`Retry-After`, `retry-after-ms`) decides the wait;
//! every attempt shows in the timeline; and no retry starts that would end
//! past the session's deadline.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;
use switchboard_testkit::FakeProvider;

/// The finished timeline's phase events (`phase`, `attempt`, `detail`, ...).
async fn timeline(daemon: &Daemon, id: &str) -> Vec<Value> {
    final_phases(daemon, id).await;
    let (status, session) = get_json(daemon, &format!("/admin/sessions/{id}")).await;
    assert_eq!(status, 200, "timeline of {id}: {session}");
    session["phases"].as_array().cloned().unwrap_or_default()
}

/// The `attempt` numbers of the timeline's PROVIDER_CALL_START events.
fn call_starts(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .filter(|e| e["phase"] == "PROVIDER_CALL_START")
        .map(|e| e["attempt"].as_u64().unwrap_or(0))
        .collect()
}

/// Sends a non-streamed request for `fake/<model>` and returns its status,
/// session id and JSON body.
async fn ask(daemon: &Daemon, model: &str) -> (u16, String, Value) {
    let response = chat(daemon, &format!("fake/{model}"), false).await;
    let status = response.status().as_u16();
    let id = session_id(&response);
    let body: Value = response.json().await.expect("the answer is JSON");
    (status, id, body)
}

/// Asserts a request for `model` succeeded after exactly `attempts` attempts,
/// seen by the fake, in the timeline and in the answer's `session`; returns
/// the requests the fake saw.
async fn assert_succeeds_after(
    daemon: &Daemon,
    fake: &FakeProvider,
    model: &str,
    attempts: usize,
) -> Vec<switchboard_testkit::SeenRequest> {
    let (status, id, body) = ask(daemon, model).await;
    assert_eq!(status, 200, "{model}: {body}\n{}", daemon.logs());
    assert_eq!(
        body["session"]["attempts"], attempts as u64,
        "{model}: {body}"
    );
    let seen = fake.requests_for(model);
    assert_eq!(seen.len(), attempts, "{model}: requests the fake saw");
    let events = timeline(daemon, &id).await;
    let expected: Vec<u64> = (1..=attempts as u64).collect();
    assert_eq!(call_starts(&events), expected, "{model}: {events:#?}");
    assert_eq!(
        events.last().and_then(|e| e["phase"].as_str()),
        Some("COMPLETED"),
        "{model}: {events:#?}"
    );
    seen
}

/// Asserts a request for `model` got 502 with `code` after a single attempt,
/// and returns the error message.
async fn assert_fails_at_once(
    daemon: &Daemon,
    fake: &FakeProvider,
    model: &str,
    code: &str,
) -> String {
    let (status, id, body) = ask(daemon, model).await;
    assert_eq!(status, 502, "{model}: {body}");
    assert_eq!(body["error"]["code"], code, "{model}: {body}");
    // Give a wrongly scheduled retry time to show up before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fake.requests_for(model).len(),
        1,
        "{model} must not be retried"
    );
    let events = timeline(daemon, &id).await;
    assert_eq!(call_starts(&events), [1], "{model}: {events:#?}");
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_seconds_sets_the_wait() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).start().await;
    let seen = assert_succeeds_after(&daemon, &fake, "fail-1-429-after-1", 2).await;
    let gap = seen[1].at - seen[0].at;
    // The default backoff (250 ms base) would retry well within a second.
    assert!(
        gap >= Duration::from_secs(1),
        "retried {gap:?} after a Retry-After: 1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_ms_sets_the_wait() {
    let fake = FakeProvider::start().await;
    // A backoff of 2.5 s or more, so a retry ~50 ms later can only come from
    // the provider's hint.
    let daemon = daemon(&fake)
        .provider_toml("fake", "retry_base_ms = 5000\nretry_cap_ms = 5000")
        .start()
        .await;
    let started = Instant::now();
    let seen = assert_succeeds_after(&daemon, &fake, "failms-1-503-after-50", 2).await;
    let gap = seen[1].at - seen[0].at;
    assert!(
        gap >= Duration::from_millis(50),
        "retried {gap:?} after retry-after-ms: 50"
    );
    assert!(
        gap < Duration::from_millis(2000),
        "retried {gap:?} after retry-after-ms: 50: the backoff won over the hint"
    );
    assert!(started.elapsed() < Duration::from_millis(2000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glm_busy_code_is_retried() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .provider_toml("fake", "retry_base_ms = 50")
        .start()
        .await;
    assert_succeeds_after(&daemon, &fake, "glmfail-1-1302", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glm_permanent_code_is_not_retried() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .provider_toml("fake", "retry_base_ms = 50")
        .start()
        .await;
    let message = assert_fails_at_once(&daemon, &fake, "glm-1113", "provider_error").await;
    assert!(
        message.contains("429") && message.contains("1113"),
        "the message should summarize the provider's answer: {message:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kimi_quota_is_final_and_overload_is_retried() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .provider_toml("fake", "retry_base_ms = 50")
        .start()
        .await;
    assert_fails_at_once(&daemon, &fake, "kimi-quota", "provider_error").await;
    assert_succeeds_after(&daemon, &fake, "kimifail-1-overloaded", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_error_is_not_retried() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .provider_toml("fake", "retry_base_ms = 50")
        .start()
        .await;
    assert_fails_at_once(&daemon, &fake, "status-400", "provider_error").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_are_retried_up_to_max_retries() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .provider_toml("fake", "max_retries = 2\nretry_base_ms = 50")
        .start()
        .await;
    let (status, id, body) = ask(&daemon, "refuse").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "provider_unavailable", "{body}");
    // Give a fourth attempt, which must not come, time to show up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.requests_for("refuse").len(), 3, "1 try + 2 retries");
    let events = timeline(&daemon, &id).await;
    assert_eq!(call_starts(&events), [1, 2, 3], "{events:#?}");
    let ends = events
        .iter()
        .filter(|e| e["phase"] == "PROVIDER_CALL_END")
        .count();
    assert_eq!(ends, 3, "one PROVIDER_CALL_END per attempt: {events:#?}");
    assert_eq!(
        events.last().and_then(|e| e["phase"].as_str()),
        Some("ERROR"),
        "{events:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_retry_starts_past_the_deadline() {
    let fake = FakeProvider::start().await;
    // Each backoff is 0.5..1 s, so 5 retries would need 2.5..5 s: far past
    // the 1.5 s deadline.
    let daemon = daemon(&fake)
        .provider_toml(
            "fake",
            "timeout_ms = 1500\nretry_base_ms = 1000\nretry_cap_ms = 1000\nmax_retries = 5",
        )
        .start()
        .await;
    let started = Instant::now();
    let response = chat(&daemon, "fake/fail-10-503", false).await;
    let took = started.elapsed();
    let status = response.status().as_u16();
    let id = session_id(&response);
    let body: Value = response.json().await.expect("error body is JSON");
    assert!(status == 502 || status == 504, "{status}: {body}");
    assert!(
        took < Duration::from_millis(2500),
        "answered after {took:?}"
    );
    // Nothing may still be scheduled: wait past any backoff, then count.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let seen = fake.requests_for("fail-10-503");
    assert!(
        !seen.is_empty() && seen.len() < 6,
        "{} attempts within a 1.5 s deadline",
        seen.len()
    );
    // The deadline runs from the request's arrival, which is before the
    // first attempt reached the fake.
    let last = seen[seen.len() - 1].at - seen[0].at;
    assert!(
        last < Duration::from_millis(1500),
        "an attempt started {last:?} after the first, past the 1.5 s deadline"
    );
    let events = timeline(&daemon, &id).await;
    assert_eq!(
        call_starts(&events).len(),
        seen.len(),
        "one PROVIDER_CALL_START per attempt: {events:#?}"
    );
}
