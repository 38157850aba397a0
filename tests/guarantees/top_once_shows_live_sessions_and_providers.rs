//! `switchboard top --once` against a daemon under load: it prints one
//! plain-text frame (no terminal control codes) listing every provider with
//! its in-flight and queued counts, and the live sessions oldest first with
//! their phase and route; `--provider` keeps one provider's rows.
//!
//! The load is real: requests to a fake provider that never answers, so
//! the sessions stay live while `top` looks, and a concurrency limit of two
//! so the third waits in the queue.

use crate::support;

use std::process::Output;
use std::time::Duration;

use support::{Daemon, body, live_sessions};
use switchboard_testkit::{FakeProvider, eventually};
use tokio::process::Command;

const WAIT: Duration = Duration::from_secs(10);

/// Runs `switchboard top --once --socket S` with `extra` arguments.
async fn top_once(daemon: &Daemon, extra: &[&str]) -> String {
    let socket = daemon.socket().to_str().expect("a UTF-8 socket path");
    let run = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["top", "--once", "--socket", socket])
        .args(extra)
        .kill_on_drop(true)
        .output();
    let output: Output = tokio::time::timeout(WAIT, run)
        .await
        .expect("timed out waiting for top --once to print its frame")
        .expect("the CLI runs");
    assert!(
        output.status.success(),
        "top --once failed: {:?}; stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("stdout is UTF-8")
}

/// Starts a request to `model` that stays live until the daemon ends.
fn hang(daemon: &Daemon, model: &str) -> tokio::task::JoinHandle<()> {
    let request = daemon
        .client()
        .post(daemon.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body(model, false))
        .send();
    tokio::spawn(async move {
        let _ = request.await;
    })
}

/// Waits until `count` sessions are live; their ids, oldest first.
async fn wait_live_ids(daemon: &Daemon, count: usize) -> Vec<String> {
    eventually(&format!("{count} live sessions"), WAIT, || async {
        let live = live_sessions(daemon).await;
        let ids: Vec<String> = live
            .iter()
            .filter_map(|s| s["id"].as_str().map(str::to_owned))
            .collect();
        (ids.len() == count).then_some(ids)
    })
    .await
}

/// The whitespace-separated cells of the row that starts with `key`.
fn cells<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    let row = text.lines().find(|l| l.starts_with(&format!("{key} ")));
    let row = row.unwrap_or_else(|| panic!("no row {key} in:\n{text}"));
    row.split_whitespace().collect()
}

/// The index of the line holding `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    let found = text.lines().position(|l| l.contains(needle));
    found.unwrap_or_else(|| panic!("no line with {needle} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_once_lists_providers_with_their_load_and_live_sessions_oldest_first() {
    let fake = FakeProvider::start().await;
    let idle = FakeProvider::start().await;
    let daemon = support::daemon(&fake)
        .provider_toml("fake", "max_concurrency = 2")
        .provider("idle", &idle.base_url())
        .env("IDLE_API_KEY", support::FAKE_KEY)
        .start()
        .await;
    let _first = hang(&daemon, "fake/hang");
    let oldest = wait_live_ids(&daemon, 1).await.remove(0);
    let _others = [hang(&daemon, "fake/hang"), hang(&daemon, "fake/hang")];
    let ids = wait_live_ids(&daemon, 3).await;
    assert_eq!(ids[0], oldest);
    assert!(
        fake.wait_until("two upstream calls", WAIT, |f| f.in_flight() == 2)
            .await,
        "timed out waiting for two upstream calls"
    );
    eventually("the third session queued", WAIT, || async {
        let live = live_sessions(&daemon).await;
        live.iter().any(|s| s["phase"] == "QUEUED").then_some(())
    })
    .await;

    let frame = top_once(&daemon, &[]).await;
    assert!(!frame.contains('\u{1b}'), "control codes in:\n{frame}");
    assert!(
        frame.starts_with("switchboard top · ok · 2 live · 1 queued"),
        "{frame}"
    );
    // PROVIDER HEALTH IN-FLIGHT MAX QUEUED REQ/S ERRORS P50 P99 TOK/S
    let row = cells(&frame, "fake");
    assert_eq!(&row[..5], ["fake", "ok", "2", "2", "1"], "{frame}");
    assert_eq!(row.len(), 10, "every rate column is filled: {frame}");
    let row = cells(&frame, "idle");
    assert_eq!(&row[..5], ["idle", "ok", "0", "64", "0"], "{frame}");
    for id in &ids {
        let session = cells(&frame, id);
        assert_eq!(session[1], "fake/hang", "{frame}");
    }
    assert!(frame.contains("QUEUED #1"), "the queued one: {frame}");
    assert!(
        line_of(&frame, &oldest) < line_of(&frame, &ids[1])
            && line_of(&frame, &ids[1]) < line_of(&frame, &ids[2]),
        "oldest first:\n{frame}"
    );

    let filtered = top_once(&daemon, &["--provider", "idle"]).await;
    assert!(filtered.contains("provider idle only"), "{filtered}");
    assert!(cells(&filtered, "idle").len() == 10, "{filtered}");
    assert!(
        !filtered.lines().any(|l| l.starts_with("fake ")),
        "{filtered}"
    );
    assert!(filtered.contains("No live sessions."), "{filtered}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_once_without_a_daemon_fails_with_a_message() {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let socket = dir.path().join("nobody.sock");
    let run = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["top", "--once", "--socket"])
        .arg(&socket)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(WAIT, run)
        .await
        .expect("timed out waiting for top --once to give up")
        .expect("the CLI runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("nobody.sock"), "{stderr}");
    assert!(output.stdout.is_empty());
}
