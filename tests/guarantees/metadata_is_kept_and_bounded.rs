//! A request's `metadata` object is kept with its session and shown by the
//! admin API, in the listing while it runs and in its timeline afterwards;
//! metadata larger than `sessions.metadata_max_bytes`, or not an object, is
//! refused with 400 before anything goes upstream.

use crate::support;

use serde_json::{Value, json};
use support::*;
use switchboard_testkit::FakeProvider;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_is_shown_while_live_and_afterwards() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).start().await;
    let metadata = json!({ "job": "nightly", "owner": "ci" });
    let mut body = marked_body("fake/delay-800", "with metadata");
    body["metadata"] = metadata.clone();
    let request = spawn_chat(&daemon, &body, &[]);

    let live = wait_live(&daemon, 1).await;
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0]["metadata"], metadata, "{}", live[0]);
    let id = live[0]["id"].as_str().expect("id").to_owned();
    let (status, shown) = get_json(&daemon, &format!("/admin/sessions/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(shown["live"], true, "{shown}");
    assert_eq!(shown["metadata"], metadata, "{shown}");

    let response = request.await.expect("join");
    assert_eq!(response.status(), 200);
    assert_eq!(session_id(&response), id);
    let phases = final_phases(&daemon, &id).await;
    assert_eq!(phases.last().map(String::as_str), Some("COMPLETED"));
    let (status, shown) = get_json(&daemon, &format!("/admin/sessions/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(shown["live"], false, "{shown}");
    assert_eq!(
        shown["metadata"], metadata,
        "kept after the session ended: {shown}"
    );

    // A request without metadata shows none.
    let plain = chat(&daemon, "fake/instant", false).await;
    assert_eq!(plain.status(), 200);
    let plain_id = session_id(&plain);
    final_phases(&daemon, &plain_id).await;
    let (_, shown) = get_json(&daemon, &format!("/admin/sessions/{plain_id}")).await;
    assert!(shown["metadata"].is_null(), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_over_the_limit_or_not_an_object_is_refused() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .toml("[sessions]\nmetadata_max_bytes = 64")
        .start()
        .await;
    let with = |metadata: Value| {
        let mut body = marked_body("fake/instant", "metadata");
        body["metadata"] = metadata;
        body
    };

    // Within the limit: kept.
    let small = json!({ "job": "nightly" });
    assert!(small.to_string().len() <= 64);
    let response = chat_json(&daemon, &with(small.clone()), &[]).await;
    assert_eq!(response.status(), 200);
    let id = session_id(&response);
    final_phases(&daemon, &id).await;
    let (_, shown) = get_json(&daemon, &format!("/admin/sessions/{id}")).await;
    assert_eq!(shown["metadata"], small, "{shown}");

    let big = json!({ "job": "nightly", "note": "x".repeat(80) });
    assert!(big.to_string().len() > 64);
    let response = chat_json(&daemon, &with(big), &[]).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("error body is JSON");
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("64")),
        "the message names the limit: {body}"
    );

    for wrong in [json!([1]), json!("nightly"), json!(7)] {
        let response = chat_json(&daemon, &with(wrong.clone()), &[]).await;
        assert_eq!(response.status(), 400, "metadata {wrong}");
        assert_eq!(
            error_code(response).await,
            "invalid_request",
            "metadata {wrong}"
        );
    }
    assert_eq!(
        fake.request_count(),
        1,
        "only the valid request went upstream"
    );
}
