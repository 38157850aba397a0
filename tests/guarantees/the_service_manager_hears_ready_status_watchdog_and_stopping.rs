//! The notify protocol, without systemd: the test binds the datagram socket
//! a service manager would (`NOTIFY_SOCKET`), asks for a watchdog
//! (`WATCHDOG_USEC`), and reads what the daemon sends: `READY=1` only once
//! it serves, `STATUS=` with its load, `WATCHDOG=1` at half the interval,
//! and `STOPPING=1` when SIGTERM begins the drain.

use crate::support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::notify::NotifySocket;
use support::*;
use switchboard_testkit::FakeProvider;

/// 600 ms asked: pings every 300 ms, a few within the test's second.
const WATCHDOG_USEC: &str = "600000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_manager_hears_ready_status_watchdog_and_stopping() {
    let fake = FakeProvider::start().await;
    let socket = Arc::new(NotifySocket::bind());
    let builder = daemon(&fake)
        .env("NOTIFY_SOCKET", socket.env_value())
        .env("WATCHDOG_USEC", WATCHDOG_USEC);
    let daemon = builder.start().await;

    let reader = socket.clone();
    let first = tokio::task::spawn_blocking(move || {
        reader.read_until("READY=1", |m| m.lines().any(|l| l == "READY=1"))
    })
    .await
    .expect("join");
    assert!(
        first.iter().all(|m| !m.contains("STOPPING")),
        "nothing but start-up before READY=1: {first:?}"
    );
    // READY=1 came after the daemon served: it answers right away.
    assert_eq!(chat(&daemon, "fake/instant", false).await.status(), 200);

    let reader = socket.clone();
    let started = Instant::now();
    let beats = tokio::task::spawn_blocking(move || {
        let mut pings = 0;
        reader.read_until("three WATCHDOG=1 with STATUS=", move |m| {
            pings += usize::from(m.lines().any(|l| l == "WATCHDOG=1"));
            pings >= 3
        })
    })
    .await
    .expect("join");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "three pings at half of 600 ms took {took:?}: {beats:?}"
    );
    let status = beats
        .iter()
        .flat_map(|m| m.lines())
        .find(|l| l.starts_with("STATUS="))
        .unwrap_or_else(|| panic!("a STATUS= line beside the pings: {beats:?}"));
    assert!(
        status.contains("live") && status.contains("queued"),
        "STATUS= tells the load: {status}"
    );

    daemon.signal(libc::SIGTERM);
    let reader = socket.clone();
    let stopping = tokio::task::spawn_blocking(move || {
        reader.read_until("STOPPING=1", |m| m.lines().any(|l| l == "STOPPING=1"))
    })
    .await
    .expect("join");
    assert!(!stopping.is_empty());
    daemon
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("timed out waiting for the daemon to exit after SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_a_service_manager_nothing_is_sent_and_serving_is_unchanged() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).start().await;
    assert_eq!(chat(&daemon, "fake/instant", false).await.status(), 200);
    assert!(
        !daemon.logs().contains("cannot notify"),
        "no NOTIFY_SOCKET, no attempt to notify:\n{}",
        daemon.logs()
    );
}
