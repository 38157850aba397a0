//! A client that stops half-way through a request cannot hold a connection
//! forever: a stalled head is closed `server.header_timeout_ms` after its
//! first byte, on fresh and kept-alive connections alike, while an idle
//! kept-alive connection lives for `server.keep_alive_ms`; a stalled body
//! is listed (`/admin/sessions`, `/healthz`) as the request it is, can be
//! cancelled, and gets 408 at `server.body_timeout_ms`, recorded TIMEOUT.

use crate::support;

use std::time::{Duration, Instant};

use support::*;
use switchboard_testkit::FakeProvider;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Short deadlines, so the test sees them pass; keep-alive much longer than
/// the head's, so telling them apart means something.
const TIMEOUTS: &str =
    "[server]\nheader_timeout_ms = 800\nbody_timeout_ms = 1500\nkeep_alive_ms = 6000";

/// Generous bound for "closed soon after the deadline" on a noisy machine.
const SLACK: Duration = Duration::from_secs(3);

/// Reads until the daemon closes the connection; how long that took.
async fn closed_after(stream: &mut UnixStream, within: Duration) -> Duration {
    let started = Instant::now();
    let mut sink = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut sink))
        .await
        .expect("timed out waiting for the daemon to close the connection")
        .ok();
    started.elapsed()
}

/// One answered request on `stream`, read whole (Content-Length bodies).
async fn one_answered_request(stream: &mut UnixStream) {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write a request");
    let (status, headers) = switchboard_testkit::client::read_head(stream).await;
    assert_eq!(status, 200);
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .expect("healthz has a content-length");
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.expect("read the body");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_head_is_closed_on_fresh_and_kept_alive_connections() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).toml(TIMEOUTS).start().await;

    let mut fresh = UnixStream::connect(daemon.socket()).await.expect("connect");
    fresh.write_all(b"GET /hea").await.expect("write");
    let took = closed_after(&mut fresh, Duration::from_millis(800) + SLACK).await;
    assert!(
        took >= Duration::from_millis(600),
        "closed too soon: {took:?}"
    );

    let mut kept = UnixStream::connect(daemon.socket()).await.expect("connect");
    one_answered_request(&mut kept).await;
    kept.write_all(b"GET /hea").await.expect("write");
    let took = closed_after(&mut kept, Duration::from_millis(800) + SLACK).await;
    assert!(
        took >= Duration::from_millis(600),
        "closed too soon: {took:?}"
    );

    let (status, _) = get_json(&daemon, "/healthz").await;
    assert_eq!(status, 200, "the daemon keeps serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_kept_alive_connection_outlives_the_header_timeout() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).toml(TIMEOUTS).start().await;
    let mut kept = UnixStream::connect(daemon.socket()).await.expect("connect");
    one_answered_request(&mut kept).await;
    // Three header timeouts of silence: still open, and still serving.
    tokio::time::sleep(Duration::from_millis(2400)).await;
    one_answered_request(&mut kept).await;
    // It closes once idle for keep_alive_ms (6 s), not much later.
    let took = closed_after(&mut kept, Duration::from_secs(6) + SLACK).await;
    assert!(took >= Duration::from_secs(5), "closed too soon: {took:?}");
}

/// Sends a chat head announcing a 100,055-byte body, then one byte of it.
async fn stalled_body(daemon: &Daemon) -> UnixStream {
    let mut stream = UnixStream::connect(daemon.socket()).await.expect("connect");
    let head = "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n\
                Content-Type: application/json\r\nContent-Length: 100055\r\n\r\n{";
    stream.write_all(head.as_bytes()).await.expect("write");
    stream
}

/// The one live session whose body is still arriving.
async fn the_arrival(daemon: &Daemon) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, listing) = get_json(daemon, "/admin/sessions").await;
        let sessions = listing["sessions"].as_array().cloned().unwrap_or_default();
        if let Some(found) = sessions.iter().find(|s| s["receiving_body"] == true) {
            return found.clone();
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for a session receiving its body: {listing}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_listed_and_answered_408_at_its_deadline() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).toml(TIMEOUTS).start().await;
    let started = Instant::now();
    let mut stream = stalled_body(&daemon).await;
    let arrival = the_arrival(&daemon).await;
    assert_eq!(arrival["phase"], "RECEIVED", "{arrival}");
    let (_, health) = get_json(&daemon, "/healthz").await;
    assert_eq!(health["receiving_requests"], 1, "{health}");

    let (status, headers) = tokio::time::timeout(
        Duration::from_millis(1500) + SLACK,
        switchboard_testkit::client::read_head(&mut stream),
    )
    .await
    .expect("timed out waiting for the 408");
    assert_eq!(status, 408);
    assert!(started.elapsed() >= Duration::from_millis(1300));
    let id = headers
        .iter()
        .find(|(name, _)| name == "x-session-id")
        .map(|(_, v)| v.clone())
        .expect("the 408 names its session");
    assert_eq!(id, arrival["id"].as_str().expect("id"));
    assert_eq!(final_phases(&daemon, &id).await, ["RECEIVED", "TIMEOUT"]);
    let (_, health) = get_json(&daemon, "/healthz").await;
    assert_eq!(health["receiving_requests"], 0, "{health}");
    assert_eq!(fake.request_count(), 0, "nothing went upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_can_be_cancelled_by_an_operator() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).toml(TIMEOUTS).start().await;
    let mut stream = stalled_body(&daemon).await;
    let id = the_arrival(&daemon).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let cancelled = daemon
        .client()
        .delete(daemon.url(&format!("/admin/sessions/{id}")))
        .send()
        .await
        .expect("admin answers");
    assert_eq!(cancelled.status(), 202);
    let (status, _) =
        tokio::time::timeout(SLACK, switchboard_testkit::client::read_head(&mut stream))
            .await
            .expect("timed out waiting for the cancelled request's answer");
    assert_eq!(status, 503);
    assert_eq!(final_phases(&daemon, &id).await, ["RECEIVED", "CANCELLED"]);
}
