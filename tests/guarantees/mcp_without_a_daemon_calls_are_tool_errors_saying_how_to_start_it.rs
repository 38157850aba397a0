//! With no daemon on its socket, `switchboard mcp` still starts and lists
//! its tools; every call is a tool error (`isError: true`) saying how to
//! start the daemon (`switchboard serve`), and the server keeps running: once
//! a daemon listens there, the same server's calls succeed, and after it has
//! stopped they are tool errors again.

use crate::support;

use serde_json::json;
use support::mcp::{ClientOptions, McpClient, texts};
use support::records::EXIT;
use support::*;
use switchboard_testkit::FakeProvider;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_say_how_to_start_the_daemon_and_the_server_keeps_running() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let socket = dir.path().join("switchboard.sock");
    let mut client = McpClient::start(&socket, &ClientOptions::default()).await;
    assert_eq!(
        client.list_tools().await.len(),
        5,
        "tools listed without a daemon"
    );
    not_running(&mut client, "before").await;

    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).socket(&socket).start().await;
    let result = client
        .call(
            "up",
            "chat",
            json!({"model": "fake/instant", "prompt": "now it runs"}),
        )
        .await;
    assert_eq!(
        result["isError"], false,
        "the same server, now with a daemon: {result}"
    );

    daemon.signal(libc::SIGTERM);
    let exited = daemon.wait_exit(EXIT).await;
    assert!(exited.is_some(), "timed out waiting for the daemon to exit");
    not_running(&mut client, "after").await;
    assert_eq!(client.list_tools().await.len(), 5, "still serving");
    client.close().await;
}

/// Every tool answers a tool error that says how to start the daemon.
async fn not_running(client: &mut McpClient, when: &str) {
    let calls = [
        (
            "chat",
            json!({"model": "fake/instant", "prompt": "anyone?"}),
        ),
        ("models", json!({})),
        ("sessions", json!({})),
        ("session", json!({"id": "abc"})),
        ("cancel", json!({"id": "abc"})),
    ];
    for (tool, args) in calls {
        let result = client.call(&format!("{when}-{tool}"), tool, args).await;
        assert_eq!(result["isError"], true, "{tool} {when}: {result}");
        let text = texts(&result);
        assert!(text.contains("not running"), "{tool} {when}: {text}");
        assert!(
            text.contains("`switchboard serve`"),
            "{tool} {when}: {text}"
        );
    }
}
