//! Under a service manager (`NOTIFY_SOCKET`, bound here by the test as
//! systemd would), SIGHUP sends `RELOADING=1` with `MONOTONIC_USEC=`, then
//! `READY=1` once the reload is over, and the daemon keeps serving.

use crate::support;

use support::notify::NotifySocket;
use support::*;
use switchboard_testkit::FakeProvider;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_is_framed_by_reloading_then_ready_for_the_service_manager() {
    let fake = FakeProvider::start().await;
    let socket = NotifySocket::bind();
    let daemon = daemon(&fake)
        .env("NOTIFY_SOCKET", socket.env_value())
        .start()
        .await;
    socket.read_until("READY=1 at start", |m| m.contains("READY=1"));

    daemon.signal(libc::SIGHUP);
    let seen = socket.read_until("RELOADING=1", |m| m.contains("RELOADING=1"));
    let reloading = seen.last().expect("the RELOADING=1 datagram");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    socket.read_until("READY=1 after the reload", |m| m.contains("READY=1"));
    assert!(
        daemon.exit_status().is_none(),
        "SIGHUP does not end the daemon"
    );
    assert_eq!(chat(&daemon, "fake/x", false).await.status(), 200);
}
