//! Under a service manager (`NOTIFY_SOCKET`, bound here by the test as
//! systemd would), SIGHUP sends `RELOADING=1` with `MONOTONIC_USEC=`, then
//! `READY=1` once the reload is over, and the daemon keeps serving.

mod support;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use support::*;
use switchboard_testkit::FakeProvider;

/// Reads datagrams until one satisfies `want`, returning everything read.
fn read_until(socket: &UnixDatagram, what: &str, want: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = want(&message);
            seen.push(message);
            if done {
                return seen;
            }
        }
    }
    panic!("timed out waiting for {what}; saw {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_is_framed_by_reloading_then_ready_for_the_service_manager() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let notify_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&notify_path).expect("binding the notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("a read timeout");
    let daemon = daemon(&fake)
        .env("NOTIFY_SOCKET", notify_path.to_str().expect("UTF-8 path"))
        .start()
        .await;
    read_until(&socket, "READY=1 at start", |m| m.contains("READY=1"));

    daemon.signal(libc::SIGHUP);
    let seen = read_until(&socket, "RELOADING=1", |m| m.contains("RELOADING=1"));
    let reloading = seen.last().expect("the RELOADING=1 datagram");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    read_until(&socket, "READY=1 after the reload", |m| {
        m.contains("READY=1")
    });
    assert!(
        daemon.exit_status().is_none(),
        "SIGHUP does not end the daemon"
    );
    assert_eq!(chat(&daemon, "fake/x", false).await.status(), 200);
}
