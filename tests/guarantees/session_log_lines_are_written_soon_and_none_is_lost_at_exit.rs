//! A finished session's `info` line (the daemon's access log) is batched
//! rather than written on its own, yet it reaches the log within a moment
//! (`logging::FLUSH_EVERY`, 200 ms; a generous margin here), and the lines
//! still waiting when the daemon exits are written before it goes.

use crate::support;

use std::time::Duration;

use support::*;
use switchboard_testkit::FakeProvider;

/// Requests in each half of the test.
const EACH: usize = 40;

/// Far above the flush interval, for a loaded machine.
const SOON: Duration = Duration::from_secs(5);

/// Sends `EACH` requests one after another; every one must be answered 200.
async fn send(daemon: &switchboard_testkit::Daemon) {
    let client = daemon.client();
    for _ in 0..EACH {
        let answer = client
            .post(daemon.url("/v1/chat/completions"))
            .body(body("fake/instant", false))
            .send()
            .await
            .expect("answered");
        assert_eq!(answer.status(), 200);
        let _ = answer.bytes().await;
    }
}

fn completed(logs: &str) -> usize {
    logs.matches("session COMPLETED").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_lines_are_written_soon_and_the_last_ones_at_exit() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).start().await;
    send(&daemon).await;
    switchboard_testkit::eventually("every session's line in the log", SOON, || {
        let count = completed(&daemon.logs());
        async move { (count == EACH).then_some(()) }
    })
    .await;
    // The second half's lines are still in the buffer when SIGTERM comes.
    send(&daemon).await;
    daemon.signal(libc::SIGTERM);
    let status = daemon
        .wait_exit(SOON)
        .await
        .expect("timed out waiting for the daemon to exit");
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(
        completed(&daemon.logs()),
        2 * EACH,
        "one line per session, none lost at exit:\n{}",
        daemon.logs()
    );
}
