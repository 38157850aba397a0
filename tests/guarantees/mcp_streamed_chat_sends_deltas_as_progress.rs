//! A `chat` call that carries a progress token (`_meta.progressToken`) asks
//! the daemon for a stream and relays each text delta to the MCP client as a
//! progress notification as it arrives (the first before the provider has
//! finished), then answers the whole text; a call without one gets no
//! progress notifications. The server's log (here at `trace`) holds no
//! prompt text and no key.

use crate::support;

use serde_json::json;
use support::mcp::{ClientOptions, McpClient};
use support::*;
use switchboard_testkit::FakeProvider;

/// Content chunks the fake streams, and the pause between them: the whole
/// answer takes 4 × 400 ms, so the first delta is seen long before its end.
const CHUNKS: usize = 5;
const MODEL: &str = "fake/stream-5-400";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_with_a_progress_token_streams_its_deltas_as_progress() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).start().await;
    let options = ClientOptions {
        rust_log: "trace",
        ..ClientOptions::default()
    };
    let mut client = McpClient::start(daemon.socket(), &options).await;
    let prompt = "PROMPT-MARKER-7d1e stream me";
    let args = json!({"model": MODEL, "prompt": prompt});
    client.start_call("s", "chat", args, true).await;

    // The first delta arrives while the provider is still sending.
    let first = client
        .wait_for("the first progress notification", |e| {
            e["id"] == "s" && e["event"] == "progress"
        })
        .await;
    assert_eq!(first["message"], "w0 ", "{first}");
    assert!(
        fake.in_flight() == 1,
        "the provider is still streaming when the first delta arrives"
    );

    let result = client.result("s").await;
    assert_eq!(result["isError"], false, "{result}");
    let mut progress = vec![first];
    progress.extend(client.take_held("s", "progress"));
    let deltas: Vec<&str> = progress
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    let expected: Vec<String> = (0..CHUNKS).map(|i| format!("w{i} ")).collect();
    assert_eq!(deltas, expected, "one notification per delta, in order");
    let counts: Vec<f64> = progress
        .iter()
        .filter_map(|e| e["progress"].as_f64())
        .collect();
    assert!(
        counts.windows(2).all(|w| w[0] < w[1]),
        "progress increases: {counts:?}"
    );

    let whole = expected.concat();
    assert_eq!(result["texts"][0], whole.as_str(), "{result}");
    let answer = &result["structured"];
    assert_eq!(answer["text"], whole.as_str());
    assert_eq!(answer["streamed"], true);
    assert_eq!(answer["finish_reason"], "stop", "{answer}");
    assert_eq!(answer["session"]["provider"], "fake", "{answer}");
    let id = answer["session"]["id"].as_str().expect("a session id");
    assert_eq!(
        final_phases(&daemon, id).await.last().map(String::as_str),
        Some("COMPLETED")
    );
    let upstream = &fake.requests()[0].body;
    assert_eq!(
        upstream["stream"], true,
        "the daemon was asked for a stream"
    );

    // Without a progress token: a whole answer, no notifications.
    // (The fake echoes the prompt: the answer text must stay out of the log too.)
    let plain = client
        .call(
            "p",
            "chat",
            json!({"model": "fake/instant", "prompt": prompt}),
        )
        .await;
    assert_eq!(plain["isError"], false, "{plain}");
    assert_eq!(plain["structured"]["streamed"], false, "{plain}");
    assert_eq!(plain["texts"][0], prompt, "{plain}");
    assert!(client.take_held("p", "progress").is_empty());
    assert_eq!(fake.requests()[1].body["stream"], false);

    let log = client.stderr();
    assert!(log.contains("answered"), "the server logs its calls: {log}");
    assert!(
        !log.contains("PROMPT-MARKER"),
        "no prompt in the log: {log}"
    );
    assert!(!log.contains(FAKE_KEY), "no key in the log: {log}");
    client.close().await;
}
