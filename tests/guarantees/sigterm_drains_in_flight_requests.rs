//! SIGTERM (or `POST /admin/drain`) stops new work with 503 + Retry-After,
//! lets in-flight requests finish (their answers closing their connections),
//! then exits 0 and removes the socket file.
//! Sessions still live when the drain deadline passes are cancelled with an
//! error their clients can see.

use crate::support;

use std::time::Duration;

use support::*;
use switchboard_testkit::FakeProvider;

async fn start_in_flight(
    daemon: &Daemon,
    count: usize,
    model: &str,
) -> Vec<tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>> {
    let client = daemon.client();
    let requests = (0..count)
        .map(|_| {
            tokio::spawn(
                client
                    .post(daemon.url("/v1/chat/completions"))
                    .body(body(model, false))
                    .send(),
            )
        })
        .collect();
    assert_eq!(wait_live(daemon, count).await.len(), count);
    requests
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_twenty_requests_finish_and_refuses_new_ones() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).start().await;
    // A connection opened before the drain, to send a request during it.
    let late_client = daemon.client();
    assert_eq!(
        late_client
            .get(daemon.url("/healthz"))
            .send()
            .await
            .expect("health")
            .status(),
        200
    );
    let requests = start_in_flight(&daemon, 20, "fake/delay-1000").await;

    daemon.signal(libc::SIGTERM);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = late_client
        .post(daemon.url("/v1/chat/completions"))
        .body(body("fake/instant", false))
        .send()
        .await
        .expect("a request during the drain is answered");
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(error_code(refused).await, "draining");

    for request in requests {
        let response = request
            .await
            .expect("join")
            .expect("in-flight request answered");
        assert_eq!(response.status(), 200);
        // Answers during a drain close their connection: nothing is left
        // idle for the daemon to close when the drain ends.
        assert_eq!(response.headers()["connection"], "close");
    }
    let status = daemon
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("the daemon exits");
    assert!(
        status.success(),
        "exit status {status:?}\n{}",
        daemon.logs()
    );
    assert!(!daemon.socket().exists(), "the socket file is removed");
    assert!(daemon.logs().contains("drained"), "{}", daemon.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_deadline_cancels_what_is_left() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .toml("[shutdown]\ndrain_timeout_ms = 500")
        .start()
        .await;
    let mut requests = start_in_flight(&daemon, 3, "fake/hang").await;
    let response = daemon
        .client()
        .post(daemon.url("/admin/drain"))
        .send()
        .await
        .expect("drain");
    assert_eq!(response.status(), 202);
    for request in requests.drain(..) {
        let response = request
            .await
            .expect("join")
            .expect("cancelled request answered");
        assert_eq!(response.status(), 503);
        assert!(response.headers().contains_key("retry-after"));
        assert_eq!(error_code(response).await, "shutting_down");
    }
    assert!(
        fake.wait_until("upstream aborted", Duration::from_secs(3), |f| f
            .abandoned()
            == 3)
            .await
    );
    let status = daemon
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("the daemon exits");
    assert!(status.success(), "{status:?}");
    assert!(!daemon.socket().exists());
}
