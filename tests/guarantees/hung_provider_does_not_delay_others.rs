//! While 50 requests hang on a provider that never answers, requests to a
//! second provider still answer promptly.

use crate::support;

use std::time::{Duration, Instant};

use support::*;
use switchboard_testkit::FakeProvider;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_hung_requests_leave_another_provider_fast() {
    let stuck = FakeProvider::start().await;
    let healthy = FakeProvider::start().await;
    let daemon = daemon(&healthy)
        .provider("stuck", &stuck.base_url())
        .env("STUCK_API_KEY", "sk-stuck")
        .start()
        .await;
    let client = daemon.client();
    let mut hung = Vec::new();
    for _ in 0..50 {
        let request = client
            .post(daemon.url("/v1/chat/completions"))
            .body(body("stuck/hang", false))
            .send();
        hung.push(tokio::spawn(request));
    }
    assert!(
        stuck
            .wait_until("50 hung upstream", Duration::from_secs(10), |f| f
                .in_flight()
                == 50)
            .await,
        "only {} reached the hung provider",
        stuck.in_flight()
    );
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        let response = chat(&daemon, "fake/instant", false).await;
        assert_eq!(response.status(), 200);
        slowest = slowest.max(started.elapsed());
    }
    // An instant provider through the daemon takes a millisecond or two; the
    // margin is for a shared, noisy machine, far below any "waited" outcome.
    assert!(
        slowest < Duration::from_millis(500),
        "slowest took {slowest:?}"
    );
    assert_eq!(stuck.in_flight(), 50, "the hung requests are still hung");
    assert_eq!(live_sessions(&daemon).await.len(), 50);
    for request in hung {
        request.abort();
    }
}
