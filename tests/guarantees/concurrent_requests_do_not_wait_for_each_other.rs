//! 200 concurrent requests to a provider that takes 1 s each all succeed, in
//! about 1 s of wall time: no request waits for another.

use crate::support;

use std::time::{Duration, Instant};

use support::*;
use switchboard_testkit::FakeProvider;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_slow_requests_finish_together() {
    let fake = FakeProvider::start().await;
    // Above the 200 sent, so no request waits for capacity.
    let daemon = daemon(&fake)
        .provider_toml("fake", "max_concurrency = 256")
        .start()
        .await;
    let client = daemon.client();
    let started = Instant::now();
    let requests = (0..200).map(|_| {
        let request = client
            .post(daemon.url("/v1/chat/completions"))
            .body(body("fake/delay-1000", false))
            .send();
        async move {
            let response = request.await.expect("answer");
            let status = response.status().as_u16();
            let value: serde_json::Value = response.json().await.expect("json");
            (status, value)
        }
    });
    let answers = futures_util::future::join_all(requests).await;
    let wall = started.elapsed();
    for (status, value) in &answers {
        assert_eq!(*status, 200, "{value}");
        assert_eq!(value["session"]["provider"], "fake");
    }
    assert_eq!(fake.max_in_flight(), 200, "all 200 were upstream at once");
    assert!(wall < Duration::from_secs(2), "took {wall:?}");
    assert!(wait_live(&daemon, 0).await.is_empty());
}
