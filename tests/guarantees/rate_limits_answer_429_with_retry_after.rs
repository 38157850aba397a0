//! Rate limits per calling uid (`[clients] requests_per_minute`, overridden
//! per uid by `[clients.per_uid]`) and per provider (`[providers.<name>]
//! requests_per_minute`): a request over a limit gets 429
//! `rate_limit_exceeded` with `Retry-After` in whole seconds and a message
//! naming whose limit it is, goes nowhere upstream, and its timeline is
//! RECEIVED, REJECTED.

use crate::support;

use serde_json::Value;
use support::*;
use switchboard_testkit::{Daemon, FakeProvider};

/// Sends `count` requests one after the other; returns their responses.
async fn send(daemon: &Daemon, count: usize) -> Vec<reqwest::Response> {
    let mut responses = Vec::new();
    for n in 0..count {
        responses
            .push(chat_json(daemon, &marked_body("fake/instant", &format!("r{n}")), &[]).await);
    }
    responses
}

/// Checks a 429 answer: `Retry-After` within `1..=max_secs`, the OpenAI
/// error shape with `rate_limit_exceeded`, a message containing `scope`, and
/// a RECEIVED, REJECTED timeline. Returns the Retry-After seconds.
async fn assert_limited(
    daemon: &Daemon,
    response: reqwest::Response,
    scope: &str,
    max_secs: u64,
) -> u64 {
    assert_eq!(response.status(), 429);
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("Retry-After in whole seconds: {:?}", response.headers()));
    assert!(
        (1..=max_secs).contains(&retry_after),
        "Retry-After {retry_after} not within 1..={max_secs}"
    );
    let id = session_id(&response);
    let body: Value = response.json().await.expect("error body is JSON");
    let error = &body["error"];
    assert_eq!(error["code"], "rate_limit_exceeded", "{body}");
    assert!(error["type"].is_string(), "{body}");
    assert!(error.get("param").is_some(), "{body}");
    assert!(
        error["message"].as_str().is_some_and(|m| m.contains(scope)),
        "the message names {scope:?}: {body}"
    );
    assert_eq!(final_phases(daemon, &id).await, ["RECEIVED", "REJECTED"]);
    retry_after
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_limit_gets_429() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .toml("[clients]\nrequests_per_minute = 3")
        .start()
        .await;
    let mut responses = send(&daemon, 4).await;
    let fourth = responses.pop().expect("4 answers");
    for response in responses {
        assert_eq!(response.status(), 200);
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let retry_after = assert_limited(&daemon, fourth, &format!("uid {uid}"), 20).await;
    assert!(
        retry_after >= 15,
        "3 a minute: the next one is ~20 s away, not {retry_after} s"
    );
    assert_eq!(fake.request_count(), 3, "the refused one went nowhere");
    // Other routes are not counted against the limit.
    assert_eq!(healthz(&daemon).await["status"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_uid_override_replaces_the_default_limit() {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .toml(&format!(
            "[clients]\nrequests_per_minute = 3\n[clients.per_uid]\n{uid} = 5"
        ))
        .start()
        .await;
    let mut responses = send(&daemon, 6).await;
    let sixth = responses.pop().expect("6 answers");
    for (n, response) in responses.into_iter().enumerate() {
        assert_eq!(response.status(), 200, "request {n} of the 5 allowed");
    }
    assert_limited(&daemon, sixth, &format!("uid {uid}"), 12).await;
    assert_eq!(fake.request_count(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_over_its_limit_gets_429() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .provider_toml("fake", "requests_per_minute = 2")
        .start()
        .await;
    let mut responses = send(&daemon, 3).await;
    let third = responses.pop().expect("3 answers");
    for response in responses {
        assert_eq!(response.status(), 200);
    }
    let retry_after = assert_limited(&daemon, third, "provider fake", 30).await;
    assert!(
        retry_after >= 20,
        "2 a minute: the next one is ~30 s away, not {retry_after} s"
    );
    assert_eq!(fake.request_count(), 2, "the refused one went nowhere");
}
