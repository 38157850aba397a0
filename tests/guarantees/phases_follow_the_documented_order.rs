//! A completed session's timeline has the documented phases in order, with
//! elapsed times that never go backwards; a refused one is RECEIVED then
//! REJECTED.

use crate::support;

use support::*;
use switchboard_testkit::FakeProvider;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_session_passes_every_phase_in_order() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).start().await;
    let response = chat(&daemon, "fake/delay-50", false).await;
    assert_eq!(response.status(), 200);
    let id = session_id(&response);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["session"]["id"], id.as_str());
    assert_eq!(body["session"]["model"], "delay-50");
    assert!(
        body["session"]["duration_ms"]
            .as_u64()
            .is_some_and(|ms| ms >= 50)
    );
    let phases = final_phases(&daemon, &id).await;
    assert_eq!(
        phases,
        [
            "RECEIVED",
            "SESSION_ALLOCATED",
            "PROVIDER_CALL_START",
            "PROVIDER_CALL_END",
            "SESSION_RELEASED",
            "COMPLETED"
        ]
    );
    let (_, timeline) = get_json(&daemon, &format!("/admin/sessions/{id}")).await;
    assert_eq!(timeline["live"], false);
    let elapsed: Vec<f64> = timeline["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .map(|p| p["elapsed_ms"].as_f64().expect("elapsed_ms"))
        .collect();
    assert!(elapsed.windows(2).all(|w| w[0] <= w[1]), "{elapsed:?}");
    assert!(
        elapsed[3] - elapsed[2] >= 45.0,
        "the call took the provider's 50 ms: {elapsed:?}"
    );
    for phase in timeline["phases"].as_array().expect("phases") {
        assert!(
            phase["at"].as_str().is_some_and(|at| at.ends_with('Z')),
            "{phase}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_is_received_then_rejected() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).start().await;
    let response = chat(&daemon, "nowhere/model", false).await;
    assert_eq!(response.status(), 404);
    let id = session_id(&response);
    assert_eq!(final_phases(&daemon, &id).await, ["RECEIVED", "REJECTED"]);
}
