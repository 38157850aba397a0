//! A provider's API key reaches the provider and nowhere else: not the
//! daemon's log (even at trace level), not admin answers. Prompt text stays
//! out of the log too. A provider whose key variable is unset answers with a
//! 502 naming the variable.

use crate::support;

use support::*;
use switchboard_testkit::FakeProvider;

const PROMPT: &str = "PROMPT-TEXT-7f3e do not log me";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_goes_only_to_the_provider() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).log_level("trace").start().await;
    let client = daemon.client();
    let mut ids = Vec::new();
    for (model, stream) in [
        ("fake/instant", false),
        ("fake/stream-3-10", true),
        ("fake/status-401", false),
    ] {
        let request = serde_json::json!({
            "model": model, "stream": stream,
            "messages": [{ "role": "user", "content": PROMPT }],
        });
        let response = client
            .post(daemon.url("/v1/chat/completions"))
            .body(request.to_string())
            .send()
            .await
            .expect("answered");
        ids.push(session_id(&response));
        let _ = response.bytes().await;
    }
    let seen = fake.requests();
    assert_eq!(seen.len(), 3);
    for request in &seen {
        assert_eq!(
            request.authorization.as_deref(),
            Some(format!("Bearer {FAKE_KEY}").as_str())
        );
    }
    let mut admin = vec![get_json(&daemon, "/admin/sessions").await.1.to_string()];
    for id in &ids {
        admin.push(
            get_json(&daemon, &format!("/admin/sessions/{id}"))
                .await
                .1
                .to_string(),
        );
    }
    // A finished session's line is written within logging::FLUSH_EVERY;
    // the two that completed say so (the 401 is an ERROR line).
    let logs = switchboard_testkit::eventually("the sessions' lines in the log", WAIT, || {
        let logs = daemon.logs();
        async move { (logs.matches("session COMPLETED").count() >= 2).then_some(logs) }
    })
    .await;
    for text in admin.iter().chain(std::iter::once(&logs)) {
        assert!(!text.contains(FAKE_KEY), "key leaked: {text}");
        assert!(!text.contains("4f1c9a7e"), "part of the key leaked: {text}");
        assert!(!text.contains("PROMPT-TEXT-7f3e"), "prompt leaked: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unset_key_variable_is_named_in_a_502() {
    let fake = FakeProvider::start().await;
    let daemon = Daemon::builder(env!("CARGO_BIN_EXE_switchboard"))
        .provider("fake", &fake.base_url())
        .start()
        .await;
    let response = chat(&daemon, "fake/instant", false).await;
    assert_eq!(response.status(), 502);
    let body: serde_json::Value = response.json().await.expect("json");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("FAKE_API_KEY")),
        "{body}"
    );
    assert_eq!(fake.request_count(), 0, "nothing is sent without the key");
}
