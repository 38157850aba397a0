//! The MCP client's name and version (its `clientInfo`, whether it came in
//! `initialize` or, on the 2026 protocol, with each request) go into the
//! chat request's `metadata` as `mcp_client` / `mcp_client_version`, so the
//! admin API and the history file show which agent asked. A long name is
//! cut short; a daemon whose `sessions.metadata_max_bytes` is too small for
//! it still serves the call, without the metadata.

use crate::support;

use serde_json::{Value, json};
use support::mcp::{ClientOptions, McpClient};
use support::records::{default_history, open_history, wait_history};
use support::*;
use switchboard_testkit::FakeProvider;

/// The longest `mcp_client` kept, as `src/mcp/identity.rs` cuts it.
const MAX_NAME_BYTES: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_name_and_version_are_kept_in_history() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).start().await;
    let long_name = "agent-".repeat(50);
    let clients = [
        ("auto", "claude-code", "1.2.3"),
        ("legacy", "Claude Desktop", "0.9.0"),
        ("auto", long_name.as_str(), "2.0.0"),
    ];
    let mut ids = Vec::new();
    for (mode, name, version) in clients {
        let options = ClientOptions {
            mode,
            name: name.into(),
            version: version.into(),
            ..ClientOptions::default()
        };
        let mut client = McpClient::start(daemon.socket(), &options).await;
        let result = client
            .call(
                "a",
                "chat",
                json!({"model": "fake/instant", "prompt": "who asks?"}),
            )
            .await;
        assert_eq!(result["isError"], false, "{mode} {name}: {result}");
        let id = result["structured"]["session"]["id"].as_str().expect("id");
        ids.push(id.to_owned());
        client.close().await;
    }
    let expected = [
        json!({"mcp_client": "claude-code", "mcp_client_version": "1.2.3"}),
        json!({"mcp_client": "Claude Desktop", "mcp_client_version": "0.9.0"}),
        json!({"mcp_client": &long_name[..MAX_NAME_BYTES], "mcp_client_version": "2.0.0"}),
    ];

    wait_history(&daemon, "outcome=COMPLETED", ids.len()).await;
    let stored = stored_metadata(&daemon);
    for (id, metadata) in ids.iter().zip(&expected) {
        let (status, timeline) = get_json(&daemon, &format!("/admin/sessions/{id}")).await;
        assert_eq!(status, 200, "{timeline}");
        assert_eq!(&timeline["metadata"], metadata, "{timeline}");
        let row = stored
            .iter()
            .find(|(row, _)| row == id)
            .expect("a history row");
        assert_eq!(&row.1, metadata, "in the history file");
    }
    let (_, page) = get_json(&daemon, "/admin/history?outcome=COMPLETED").await;
    let listed: Vec<&Value> = page["sessions"]
        .as_array()
        .expect("a history page")
        .iter()
        .map(|s| &s["metadata"])
        .collect();
    for metadata in &expected {
        assert!(
            listed.contains(&metadata),
            "{metadata} in /admin/history: {page}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_refusing_the_metadata_still_serves_the_call() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .toml("[sessions]\nmetadata_max_bytes = 16")
        .start()
        .await;
    let mut client = McpClient::start(daemon.socket(), &ClientOptions::default()).await;
    let result = client
        .call(
            "a",
            "chat",
            json!({"model": "fake/instant", "prompt": "no room"}),
        )
        .await;
    assert_eq!(result["isError"], false, "{result}");
    let id = result["structured"]["session"]["id"].as_str().expect("id");
    let (_, timeline) = get_json(&daemon, &format!("/admin/sessions/{id}")).await;
    assert_eq!(timeline["outcome"], "COMPLETED", "{timeline}");
    assert!(timeline["metadata"].is_null(), "{timeline}");
    assert_eq!(
        fake.request_count(),
        1,
        "the refused request never went upstream"
    );
    assert!(
        client
            .stderr()
            .contains("refused the MCP client's metadata")
    );
    client.close().await;
}

/// `(id, metadata)` of every row of the history file, read as `sqlite3` would.
fn stored_metadata(daemon: &Daemon) -> Vec<(String, Value)> {
    let conn = open_history(&default_history(daemon)).expect("the history file opens");
    let mut select = conn
        .prepare("SELECT id, metadata FROM sessions")
        .expect("the select prepares");
    select
        .query_map([], |row| {
            let text: Option<String> = row.get(1)?;
            let metadata = text.map_or(Value::Null, |t| {
                serde_json::from_str(&t).unwrap_or_default()
            });
            Ok((row.get(0)?, metadata))
        })
        .expect("the select runs")
        .map(|row| row.expect("a row"))
        .collect()
}
