//! A request for an alias is answered by the next target of its chain when
//! one fails for good; the answer and the timeline say which target
//! answered; `/v1/models` lists the alias with its fallbacks; and a provider
//! that keeps failing is marked unhealthy and skipped by the chain until its
//! cooldown ends.

use crate::support;

use std::time::Duration;

use serde_json::Value;
use support::*;
use switchboard_testkit::FakeProvider;

/// The alias used by both tests: a failing target, then a working one.
const ALIAS: &str = "[aliases]\nsmart = [\"first/status-500\", \"fake/instant\"]";

/// Providers `first` and `fake`, both the same fake provider under two
/// names, with `first_toml` in `[providers.first]`, and the alias.
async fn start(fake: &FakeProvider, first_toml: &str) -> Daemon {
    daemon(fake)
        .provider("first", &fake.base_url())
        .env("FIRST_API_KEY", "x")
        .provider_toml("first", first_toml)
        .toml(ALIAS)
        .start()
        .await
}

/// Sends a non-streamed request for the alias; returns the session id and
/// the answer's JSON body after checking it is a 200.
async fn ask_alias(daemon: &Daemon) -> (String, Value) {
    let response = chat(daemon, "smart", false).await;
    let status = response.status().as_u16();
    let id = session_id(&response);
    let body: Value = response.json().await.expect("the answer is JSON");
    assert_eq!(status, 200, "{body}\n{}", daemon.logs());
    (id, body)
}

/// The `detail`s of the finished timeline's PROVIDER_CALL_START events.
async fn call_targets(daemon: &Daemon, id: &str) -> Vec<String> {
    final_phases(daemon, id).await;
    let (status, session) = get_json(daemon, &format!("/admin/sessions/{id}")).await;
    assert_eq!(status, 200, "timeline of {id}: {session}");
    session["phases"]
        .as_array()
        .expect("phases array")
        .iter()
        .filter(|e| e["phase"] == "PROVIDER_CALL_START")
        .map(|e| e["detail"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The `/admin/providers` entry of `name`.
async fn provider_state(daemon: &Daemon, name: &str) -> Value {
    let (status, list) = get_json(daemon, "/admin/providers").await;
    assert_eq!(status, 200, "{list}");
    list["providers"]
        .as_array()
        .expect("providers array")
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no provider {name} in {list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_target_answers_when_the_first_fails() {
    let fake = FakeProvider::start().await;
    let daemon = start(&fake, "max_retries = 0").await;

    let (id, body) = ask_alias(&daemon).await;
    assert_eq!(body["session"]["provider"], "fake", "{body}");
    assert_eq!(body["session"]["model"], "instant", "{body}");
    assert_eq!(fake.requests_for("status-500").len(), 1, "first target");
    assert_eq!(fake.requests_for("instant").len(), 1, "second target");
    assert_eq!(
        call_targets(&daemon, &id).await,
        ["first/status-500", "fake/instant"]
    );
    assert_eq!(
        final_phases(&daemon, &id).await.last().map(String::as_str),
        Some("COMPLETED")
    );

    let (status, models) = get_json(&daemon, "/v1/models").await;
    assert_eq!(status, 200, "{models}");
    let smart = models["data"]
        .as_array()
        .expect("data array")
        .iter()
        .find(|m| m["id"] == "smart")
        .unwrap_or_else(|| panic!("alias not listed: {models}"));
    assert_eq!(
        smart["fallbacks"],
        serde_json::json!(["first/status-500", "fake/instant"]),
        "{smart}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_target_is_skipped() {
    let fake = FakeProvider::start().await;
    let daemon = start(
        &fake,
        "max_retries = 0\nunhealthy_after = 2\ncooldown_ms = 60000",
    )
    .await;

    for round in 1..=2 {
        let (id, body) = ask_alias(&daemon).await;
        assert_eq!(body["session"]["provider"], "fake", "round {round}: {body}");
        assert_eq!(
            call_targets(&daemon, &id).await,
            ["first/status-500", "fake/instant"],
            "round {round}"
        );
    }
    assert_eq!(fake.requests_for("status-500").len(), 2);

    let first = provider_state(&daemon, "first").await;
    assert_eq!(first["healthy"], false, "{first}");
    assert!(
        first["consecutive_failures"].as_u64().unwrap_or(0) >= 2,
        "{first}"
    );
    assert!(
        first["cooldown_left_ms"].as_u64().unwrap_or(0) > 0,
        "{first}"
    );
    assert!(
        first["recent_errors"]
            .as_array()
            .is_some_and(|errors| !errors.is_empty()),
        "{first}"
    );
    let fake_state = provider_state(&daemon, "fake").await;
    assert_eq!(fake_state["healthy"], true, "{fake_state}");

    let (id, body) = ask_alias(&daemon).await;
    assert_eq!(body["session"]["provider"], "fake", "{body}");
    assert_eq!(body["session"]["model"], "instant", "{body}");
    assert_eq!(call_targets(&daemon, &id).await, ["fake/instant"]);
    // A skipped target gets no request, not even a late one.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        fake.requests_for("status-500").len(),
        2,
        "the unhealthy target was called again"
    );
}
