//! Socket activation, as systemd does it but without systemd: the test binds
//! and listens on the socket (it plays the service manager, which keeps the
//! socket across restarts), and starts the daemon with it as fd 3,
//! `LISTEN_FDS=1` and `LISTEN_PID`.
//!
//! The daemon serves that socket, never removes its file, and drains by
//! handing over: it stops accepting when the drain begins, finishes what it
//! has, and connections that arrive meanwhile wait in the backlog until the
//! next process takes them — so a restart refuses nothing.

use crate::support;

use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use support::*;
use switchboard_testkit::FakeProvider;

/// A client on `path` that opens a fresh connection per request, as a
/// short-lived CLI tool does (a kept-alive connection closed by a draining
/// daemon between two requests is the one race HTTP/1.1 leaves to clients).
fn fresh_client(path: &Path) -> reqwest::Client {
    reqwest::Client::builder()
        .unix_socket(path.to_path_buf())
        .pool_max_idle_per_host(0)
        .build()
        .expect("a client on the inherited socket")
}

/// The service manager's socket: bound and listening before any daemon runs.
fn manager_socket(dir: &Path) -> (UnixListener, std::path::PathBuf) {
    let path = dir.join("activated.sock");
    let listener = UnixListener::bind(&path).expect("binding the manager's socket");
    (listener, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inherited_socket_is_served_and_left_in_place() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let (listener, path) = manager_socket(dir.path());
    let daemon = daemon(&fake).inherit_socket(&listener, &path).start().await;
    let answer = chat(&daemon, "fake/instant", false).await;
    assert_eq!(answer.status(), 200);
    assert!(
        daemon.logs().contains("\"inherited\":true"),
        "the daemon says it serves an inherited socket:\n{}",
        daemon.logs()
    );
    daemon.signal(libc::SIGTERM);
    daemon
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("timed out waiting for the daemon to exit after SIGTERM");
    assert!(
        path.exists(),
        "the socket file belongs to the service manager and must survive the daemon"
    );
    assert!(
        !dir.path().join("activated.sock.lock").exists(),
        "no lock file is made beside a socket the daemon does not own"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_an_inherited_socket_loses_no_request() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let (listener, path) = manager_socket(dir.path());
    let builder = daemon(&fake)
        .provider_toml("fake", "max_concurrency = 64")
        .inherit_socket(&listener, &path);
    let first = builder.clone().start().await;

    // A steady stream: a request every 20 ms, each 400 ms upstream, so some
    // are always in flight on the first process when it is told to stop.
    let client = fresh_client(&path);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let sender = {
        let (client, stop, sent) = (client.clone(), stop.clone(), sent.clone());
        tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let request = client
                    .post("http://switchboard/v1/chat/completions")
                    .header("content-type", "application/json")
                    .body(body("fake/delay-400", false))
                    .send();
                answers.push(tokio::spawn(request));
                sent.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answers
        })
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    let in_flight_at_stop = fake.in_flight();
    first.signal(libc::SIGTERM);
    first
        .wait_exit(Duration::from_secs(30))
        .await
        .expect("timed out waiting for the first process to drain and exit");
    // The manager starts the next process only now, as `systemctl restart`
    // does: until it accepts, connections wait in the socket's backlog.
    let second = builder.start().await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    stop.store(true, Ordering::Relaxed);
    let answers = sender.await.expect("the sender task");
    let mut statuses = Vec::new();
    for answer in answers {
        let answer = tokio::time::timeout(Duration::from_secs(30), answer)
            .await
            .expect("timed out waiting for an answer across the restart")
            .expect("join");
        statuses.push(
            answer
                .map(|a| a.status().as_u16())
                .map_err(|e| e.to_string()),
        );
    }
    let failed: Vec<_> = statuses.iter().filter(|s| **s != Ok(200)).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed across the restart: {failed:?}\nfirst:\n{}\nsecond:\n{}",
        failed.len(),
        statuses.len(),
        first.logs(),
        second.logs()
    );
    assert!(
        in_flight_at_stop > 0,
        "the first process had requests in flight when stopped"
    );
    assert!(
        statuses.len() >= 40,
        "a steady stream crossed the restart ({} requests)",
        sent.load(Ordering::Relaxed)
    );
}
