//! A `chat` call to a provider that never answers ends, once the session's
//! deadline passes, as a tool error (`isError: true`) carrying the daemon's
//! 504 and message, whole or streamed; a stream that stalls mid-answer ends
//! the same way. The error names the session, which ended TIMEOUT; the
//! upstream connection is closed, and the MCP server goes on serving.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::mcp::{ClientOptions, McpClient, texts};
use support::*;
use switchboard_testkit::FakeProvider;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_call_is_a_tool_error_once_its_deadline_passes() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .provider_toml("fake", "timeout_ms = 800")
        .start()
        .await;
    let mut client = McpClient::start(daemon.socket(), &ClientOptions::default()).await;

    for (n, streamed) in [false, true].into_iter().enumerate() {
        let id = format!("hang{n}");
        let started = Instant::now();
        client
            .start_call(
                &id,
                "chat",
                json!({"model": "fake/hang", "prompt": "hi"}),
                streamed,
            )
            .await;
        let result = client.result(&id).await;
        let took = started.elapsed();
        assert_eq!(result["isError"], true, "{result}");
        let text = texts(&result);
        assert!(text.contains("504"), "the daemon's status: {text}");
        assert!(text.contains("timeout"), "the daemon's error code: {text}");
        timed_out(&daemon, &text).await;
        assert!(
            took >= Duration::from_millis(700),
            "not before the deadline: {took:?}"
        );
        assert!(
            fake.wait_until("upstream closed", Duration::from_secs(10), |f| f
                .abandoned()
                == n + 1)
                .await,
            "abandoned {}",
            fake.abandoned()
        );
    }

    // A stream that stops mid-answer: the deltas so far, then a tool error.
    client
        .start_call(
            "stall",
            "chat",
            json!({"model": "fake/stall-2", "prompt": "hi"}),
            true,
        )
        .await;
    let result = client.result("stall").await;
    assert_eq!(result["isError"], true, "{result}");
    assert!(texts(&result).contains("timeout"), "{result}");
    timed_out(&daemon, &texts(&result)).await;
    assert_eq!(
        client.take_held("stall", "progress").len(),
        2,
        "two deltas came"
    );

    // Every call ended TIMEOUT in history (waits until all three are there).
    records::wait_history(&daemon, "outcome=TIMEOUT", 3).await;

    let after = client
        .call(
            "after",
            "chat",
            json!({"model": "fake/instant", "prompt": "still here"}),
        )
        .await;
    assert_eq!(after["isError"], false, "the server goes on: {after}");
    client.close().await;
}

/// The session a tool error names (`… (session <id>)`) ended TIMEOUT.
async fn timed_out(daemon: &Daemon, text: &str) {
    let id = text
        .rsplit_once("(session ")
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("the error names its session: {text}"));
    let phases = records::wait_last_phase(daemon, id, "TIMEOUT").await;
    assert_eq!(
        phases.last().map(String::as_str),
        Some("TIMEOUT"),
        "{phases:?}"
    );
}
