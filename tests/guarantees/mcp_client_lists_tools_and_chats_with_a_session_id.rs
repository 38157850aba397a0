//! A real MCP client (the Python `mcp` SDK, over stdio) lists the tools of
//! `switchboard mcp` with their schemas, calls `chat` and gets the answer
//! with the id of the daemon session that served it, the provider/model and
//! the usage; `models`, `sessions`, `session` answer from the daemon and
//! `cancel` stops a live call (calls run side by side); bad arguments are
//! tool errors that do not end the server.

use crate::support;

use serde_json::{Value, json};
use support::mcp::{ClientOptions, EVENT_TIMEOUT, McpClient, texts};
use support::*;
use switchboard_testkit::FakeProvider;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_lists_the_tools_and_chats_through_a_daemon_session() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .toml("[aliases]\nsmart = [\"fake/instant\"]")
        .start()
        .await;
    let mut client = McpClient::start(daemon.socket(), &ClientOptions::default()).await;
    assert_eq!(
        client.ready["server"]["name"], "switchboard",
        "{}",
        client.ready
    );

    let tools = client.list_tools().await;
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["chat", "models", "sessions", "session", "cancel"]);
    for tool in &tools {
        assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
        let description = tool["description"].as_str().unwrap_or_default();
        assert!(
            !description.is_empty() && !description.contains('\n'),
            "{tool}"
        );
    }
    let chat_schema = &tools[0]["inputSchema"];
    assert_eq!(chat_schema["required"], json!(["model"]));
    for field in [
        "model",
        "prompt",
        "messages",
        "max_tokens",
        "temperature",
        "priority",
    ] {
        assert!(
            chat_schema["properties"][field].is_object(),
            "{field}: {chat_schema}"
        );
    }
    assert_eq!(
        chat_schema["properties"]["priority"]["enum"],
        json!(["high", "normal", "low"])
    );
    assert_eq!(tools[3]["inputSchema"]["required"], json!(["id"]));

    let result = client
        .call(
            "a",
            "chat",
            json!({"model": "fake/instant", "prompt": "say hi to the MCP test"}),
        )
        .await;
    assert_eq!(result["isError"], false, "{result}");
    assert_eq!(
        result["texts"][0], "say hi to the MCP test",
        "the fake echoes: {result}"
    );
    let answer = &result["structured"];
    assert_eq!(answer["text"], "say hi to the MCP test");
    assert_eq!(answer["streamed"], false);
    assert_eq!(answer["session"]["provider"], "fake", "{answer}");
    assert_eq!(answer["session"]["model"], "instant", "{answer}");
    assert!(
        answer["usage"]["total_tokens"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{answer}"
    );
    let id = answer["session"]["id"]
        .as_str()
        .expect("a session id")
        .to_owned();
    assert!(
        texts(&result).contains(&format!("session {id}")),
        "{result}"
    );

    // The id is the daemon's: its timeline is there, ended COMPLETED.
    assert_eq!(
        final_phases(&daemon, &id).await.last().map(String::as_str),
        Some("COMPLETED")
    );
    let seen = fake.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(marker_of(&seen[0]), "say hi to the MCP test");

    // Options pass through: messages, max_tokens, temperature; priority as x-priority.
    let messages = json!([{"role": "system", "content": "be brief"},
                          {"role": "user", "content": "with options"}]);
    let args = json!({"model": "fake/instant", "messages": messages, "max_tokens": 7,
                      "temperature": 0.25, "priority": "high"});
    let result = client.call("b", "chat", args).await;
    assert_eq!(result["isError"], false, "{result}");
    let upstream = &fake.requests()[1].body;
    assert_eq!(upstream["messages"], messages);
    assert_eq!(upstream["max_tokens"], 7);
    assert_eq!(upstream["temperature"], 0.25);
    let id = result["structured"]["session"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (_, timeline) = get_json(&daemon, &format!("/admin/sessions/{id}")).await;
    assert_eq!(timeline["priority"], "high", "{timeline}");

    inspecting_tools_answer_from_the_daemon(&mut client, &id).await;
    the_cancel_tool_stops_a_live_call(&mut client, &fake).await;
    bad_arguments_are_tool_errors(&mut client).await;
    assert_eq!(fake.request_count(), 3, "bad calls never went upstream");
    client.close().await;
}

async fn inspecting_tools_answer_from_the_daemon(client: &mut McpClient, id: &str) {
    let models = client.call("m", "models", json!({})).await;
    assert_eq!(models["isError"], false, "{models}");
    let listed: Vec<&str> = models["structured"]["data"]
        .as_array()
        .expect("a model list")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(listed.contains(&"smart"), "{models}");

    let sessions = client.call("s", "sessions", json!({})).await;
    assert_eq!(sessions["isError"], false, "{sessions}");
    assert!(sessions["structured"]["sessions"].is_array(), "{sessions}");

    let session = client.call("t", "session", json!({"id": id})).await;
    assert_eq!(session["isError"], false, "{session}");
    assert_eq!(session["structured"]["id"], id);
    assert_eq!(session["structured"]["outcome"], "COMPLETED", "{session}");
    let structured: Value = serde_json::from_str(session["texts"][0].as_str().expect("text"))
        .expect("the text is the JSON");
    assert_eq!(structured, session["structured"]);

    let unknown = client
        .call("u", "session", json!({"id": "no-such-session"}))
        .await;
    assert_eq!(unknown["isError"], true, "{unknown}");
    assert!(texts(&unknown).contains("404"), "{unknown}");
}

/// While one call hangs upstream, other calls go on: `sessions` lists it
/// with its phase, `cancel` stops it, and the hung call ends as a tool error
/// with the daemon's `session_cancelled`.
async fn the_cancel_tool_stops_a_live_call(client: &mut McpClient, fake: &FakeProvider) {
    let args = json!({"model": "fake/hang", "prompt": "hang on"});
    client.start_call("hung", "chat", args, false).await;
    let upstream = fake
        .wait_until("the hung call upstream", EVENT_TIMEOUT, |f| {
            f.in_flight() == 1
        })
        .await;
    assert!(upstream, "timed out waiting for the hung call upstream");
    let sessions = client.call("live", "sessions", json!({})).await;
    let live = sessions["structured"]["sessions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(live.len(), 1, "{sessions}");
    assert!(live[0]["phase"].is_string(), "with its phase: {sessions}");
    let id = live[0]["id"].as_str().expect("an id");

    let cancelled = client.call("stop", "cancel", json!({"id": id})).await;
    assert_eq!(cancelled["isError"], false, "{cancelled}");
    let hung = client.result("hung").await;
    assert_eq!(hung["isError"], true, "{hung}");
    assert!(texts(&hung).contains("session_cancelled"), "{hung}");
    let again = client.call("again", "cancel", json!({"id": id})).await;
    assert_eq!(again["isError"], true, "not live any more: {again}");
    assert!(texts(&again).contains("no live session"), "{again}");
}

async fn bad_arguments_are_tool_errors(client: &mut McpClient) {
    let cases = [
        json!({"prompt": "no model"}),
        json!({"model": "fake/instant"}),
        json!({"model": "fake/instant", "prompt": "x", "messages": []}),
        json!({"model": "fake/instant", "prompt": "x", "priority": "urgent"}),
        json!({"model": "fake/instant", "prompt": "x", "max_tokens": -1}),
    ];
    for (n, args) in cases.into_iter().enumerate() {
        let result = client.call(&format!("bad{n}"), "chat", args.clone()).await;
        assert_eq!(result["isError"], true, "{args}: {result}");
        assert!(texts(&result).contains('`'), "names the argument: {result}");
    }
}
