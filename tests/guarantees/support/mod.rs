//! Shared by the integration tests: a real daemon (the built binary) on a
//! temporary socket, pointed at a fake provider on loopback, and small
//! helpers to speak to it.

#![allow(dead_code, unused_imports)] // each test binary uses a different part

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_testkit::{DaemonBuilder, FakeProvider, eventually_debug};

pub mod conn;
pub mod footprint;
pub mod mcp;
pub mod notify;
pub mod python;
pub mod records;
pub mod scrape;

pub use switchboard_testkit::{Behavior, Daemon, SseReader};

/// The key the fake provider is configured with in every test.
pub const FAKE_KEY: &str = "sk-test-4f1c9a7e-SECRET";

/// A daemon builder with the fake provider configured as `fake`.
pub fn daemon(fake: &FakeProvider) -> DaemonBuilder {
    Daemon::builder(env!("CARGO_BIN_EXE_switchboard"))
        .provider("fake", &fake.base_url())
        .env("FAKE_API_KEY", FAKE_KEY)
}

/// A chat request body for `model`.
pub fn body(model: &str, stream: bool) -> String {
    json!({
        "model": model,
        "stream": stream,
        "messages": [{ "role": "user", "content": "hello from a test" }],
    })
    .to_string()
}

/// Sends a chat request and returns the response (status not checked).
pub async fn chat(daemon: &Daemon, model: &str, stream: bool) -> reqwest::Response {
    daemon
        .client()
        .post(daemon.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body(model, stream))
        .send()
        .await
        .expect("the daemon answers")
}

/// GETs an admin path as JSON.
pub async fn get_json(daemon: &Daemon, path: &str) -> (u16, Value) {
    let response = daemon
        .client()
        .get(daemon.url(path))
        .send()
        .await
        .expect("admin answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The `x-session-id` of an answer.
pub fn session_id(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("x-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("every chat answer carries x-session-id")
        .to_owned()
}

/// The phase names of a session's timeline.
pub async fn phases(daemon: &Daemon, id: &str) -> Vec<String> {
    let (status, timeline) = get_json(daemon, &format!("/admin/sessions/{id}")).await;
    assert_eq!(status, 200, "timeline of {id}: {timeline}");
    timeline["phases"]
        .as_array()
        .expect("phases array")
        .iter()
        .map(|p| p["phase"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// How long the waits below give the daemon for what it does within
/// ~100 ms (a session ended, a request queued): a wide margin on a noisy
/// machine shared with other builds.
pub const WAIT: Duration = Duration::from_secs(15);

/// A session listing as a failed wait shows it: how many, then which.
pub struct Saw(pub Vec<Value>);

impl std::fmt::Debug for Saw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "saw {}: {}", self.0.len(), Value::from(self.0.clone()))
    }
}

/// Waits until the session's timeline ends in a terminal phase; returns it.
/// Panics, with the phases so far, if it has not within [`WAIT`].
pub async fn final_phases(daemon: &Daemon, id: &str) -> Vec<String> {
    let terminal = ["COMPLETED", "TIMEOUT", "ERROR", "CANCELLED", "REJECTED"];
    let what = format!("session {id} to end");
    eventually_debug(&what, WAIT, || async {
        let phases = phases(daemon, id).await;
        let ended = phases
            .last()
            .is_some_and(|p| terminal.contains(&p.as_str()));
        if ended { Ok(phases) } else { Err(phases) }
    })
    .await
}

/// The live sessions (`GET /admin/sessions`), oldest first.
pub async fn live_sessions(daemon: &Daemon) -> Vec<Value> {
    let (_, list) = get_json(daemon, "/admin/sessions").await;
    list["sessions"].as_array().cloned().unwrap_or_default()
}

/// Waits until exactly `count` sessions are live and returns them, oldest
/// first. Panics with `timed out … waiting for N live sessions; last seen:
/// saw M: [...]` if that does not happen within [`WAIT`].
pub async fn wait_live(daemon: &Daemon, count: usize) -> Vec<Value> {
    let what = format!("{count} live sessions");
    eventually_debug(&what, WAIT, || async {
        let live = live_sessions(daemon).await;
        if live.len() == count {
            Ok(live)
        } else {
            Err(Saw(live))
        }
    })
    .await
}

/// Waits until the live sessions satisfy `done` and returns them, oldest
/// first. Panics, naming `what` and the last listing, after [`WAIT`].
pub async fn wait_listing(
    daemon: &Daemon,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    eventually_debug(what, WAIT, || async {
        let live = live_sessions(daemon).await;
        if done(&live) {
            Ok(live)
        } else {
            Err(Saw(live))
        }
    })
    .await
}

/// Asserts an error answer has OpenAI's shape and returns its `code`.
pub async fn error_code(response: reqwest::Response) -> String {
    let body: Value = response.json().await.expect("error body is JSON");
    let error = &body["error"];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(error["type"].is_string(), "{body}");
    assert!(error.get("param").is_some(), "{body}");
    error["code"].as_str().expect("code").to_owned()
}

/// Sends a chat request with this JSON `body` and extra `headers`
/// (status not checked).
pub async fn chat_json(
    daemon: &Daemon,
    body: &Value,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = daemon
        .client()
        .post(daemon.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("the daemon answers")
}

/// A chat request body for `model` whose user message is `marker`, so the
/// fake provider's log tells requests apart.
pub fn marked_body(model: &str, marker: &str) -> Value {
    json!({
        "model": model,
        "messages": [{ "role": "user", "content": marker }],
    })
}

/// The user message of a request the fake provider received.
pub fn marker_of(seen: &switchboard_testkit::SeenRequest) -> String {
    seen.body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// `GET /healthz` as JSON.
pub async fn healthz(daemon: &Daemon) -> Value {
    let (status, health) = get_json(daemon, "/healthz").await;
    assert_eq!(status, 200, "healthz: {health}");
    health
}

/// Waits until `/healthz` answers 200 with `live` running and `queued`
/// waiting sessions, and returns that answer. Panics with the last answer
/// if that does not happen within [`WAIT`].
pub async fn wait_health(daemon: &Daemon, live: u64, queued: u64) -> Value {
    let what = format!("{live} live and {queued} queued sessions in /healthz");
    eventually_debug(&what, WAIT, || async {
        let (status, health) = get_json(daemon, "/healthz").await;
        let reached = health["live_sessions"] == live && health["queued_sessions"] == queued;
        if status == 200 && reached {
            Ok(health)
        } else {
            Err((status, health))
        }
    })
    .await
}

/// The resident set size of process `pid`, in kB (`VmRSS` of
/// `/proc/<pid>/status`).
pub fn vm_rss_kb(pid: u32) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("reading /proc/<pid>/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// Starts a chat request with this JSON `body` and extra `headers` on a
/// task of its own; the handle yields the response (status not checked).
pub fn spawn_chat(
    daemon: &Daemon,
    body: &Value,
    headers: &[(&str, &str)],
) -> tokio::task::JoinHandle<reqwest::Response> {
    let mut request = daemon
        .client()
        .post(daemon.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    tokio::spawn(async move { request.send().await.expect("the daemon answers") })
}

/// The uid the tests run a second client as (Debian's `nobody`).
pub const NOBODY: u32 = 65534;

/// Fails clearly when a test built as root (`built_as_root`) runs as another
/// user: acting as [`NOBODY`] needs root.
pub fn assert_running_as_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "built as root but run as uid {euid}: running the client as uid {NOBODY} needs root \
         (rebuild as this user to have the test ignored)"
    );
}
