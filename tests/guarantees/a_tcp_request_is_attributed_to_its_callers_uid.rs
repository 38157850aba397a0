//! With `[server] listen_tcp` the whole API is also served on loopback TCP,
//! and each connection is attributed to the user that owns the client's
//! socket (found in the kernel's socket table), with its pid and process
//! name: the admin listing and history show who asked, exactly as for a
//! Unix-socket caller. A request from a web page (it carries `Origin`) is
//! refused with 403 in the route's own error shape. The metrics listener
//! still serves `GET /metrics` alone.

use crate::support;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use support::scrape::{free_port, tcp_get};
use support::*;
use switchboard_testkit::{Daemon, FakeProvider};

/// A plain HTTP client for the TCP listener (no proxy from the environment).
fn tcp_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a TCP client")
}

/// A daemon serving the API on `api` and metrics on `metrics`.
async fn tcp_daemon(fake: &FakeProvider, api: SocketAddr, metrics: SocketAddr) -> Daemon {
    daemon(fake)
        .toml(&format!(
            "[server]\nlisten_tcp = \"{api}\"\nmetrics_listen = \"{metrics}\""
        ))
        .start()
        .await
}

/// This test process's name as the kernel keeps it.
fn own_comm() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .expect("/proc/self/comm")
        .trim_end()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_request_is_attributed_to_its_callers_uid() {
    let fake = FakeProvider::start().await;
    let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let daemon = tcp_daemon(&fake, api, metrics).await;
    let client = tcp_client();

    let request = client
        .post(format!("http://{api}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body("fake/delay-1500", false))
        .send();
    let answer = tokio::spawn(request);
    let live = wait_live(&daemon, 1).await;
    let caller = &live[0]["client"];
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    assert_eq!(caller["uid"], uid, "the TCP caller's uid: {}", live[0]);
    assert_eq!(caller["pid"], std::process::id(), "its pid: {}", live[0]);
    assert_eq!(caller["process"], own_comm(), "its process: {}", live[0]);

    let answer = answer
        .await
        .expect("join")
        .expect("the daemon answers over TCP");
    assert_eq!(answer.status(), 200);
    let id = session_id(&answer);
    let completion: Value = answer.json().await.expect("a chat completion");
    assert!(
        completion["choices"][0]["message"]["content"].is_string(),
        "{completion}"
    );

    // The whole API is there: admin answers over TCP too, and history has
    // the caller's uid.
    let history = format!("http://{api}/admin/history?uid={uid}");
    let rows = eventually_json(&client, &history, |rows: &Value| {
        rows["sessions"]
            .as_array()
            .is_some_and(|rows| rows.iter().any(|row| row["id"] == id.as_str()))
    })
    .await;
    let row = rows["sessions"]
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row["id"] == id.as_str()))
        .expect("the TCP request's row");
    assert_eq!(row["client"]["uid"], uid, "{row}");
    assert_eq!(row["client"]["process"], own_comm(), "{row}");

    // The metrics listener serves GET /metrics alone, as before; the API
    // listener serves it too.
    let (status, _, scrape) = tcp_get(metrics, "/metrics").await;
    assert_eq!(status, 200);
    assert!(scrape.contains("switchboard_"), "{scrape}");
    assert_eq!(tcp_get(metrics, "/v1/models").await.0, 404);
    assert_eq!(tcp_get(api, "/metrics").await.0, 200);
    assert_eq!(tcp_get(api, "/v1/models").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_from_a_web_page_is_refused_over_tcp_in_its_routes_shape() {
    let fake = FakeProvider::start().await;
    let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let daemon = tcp_daemon(&fake, api, metrics).await;
    let client = tcp_client();
    let post = |path: &str, body: String| {
        client
            .post(format!("http://{api}{path}"))
            .header("origin", "https://example.com")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    let openai = post("/v1/chat/completions", body("fake/instant", false))
        .await
        .expect("the daemon answers");
    assert_eq!(openai.status(), 403);
    let shape: Value = openai.json().await.expect("JSON");
    assert_eq!(shape["error"]["code"], "forbidden", "{shape}");
    assert!(
        shape["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Origin"))
    );

    let messages = serde_json::json!({
        "model": "fake/instant", "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
    });
    let anthropic = post("/v1/messages", messages.to_string())
        .await
        .expect("the daemon answers");
    assert_eq!(anthropic.status(), 403);
    let shape: Value = anthropic.json().await.expect("JSON");
    assert_eq!(shape["type"], "error", "Anthropic's shape: {shape}");
    assert_eq!(shape["error"]["type"], "permission_error", "{shape}");
    assert_eq!(fake.request_count(), 0, "a refused request goes nowhere");

    // Without Origin the same caller is served, and the socket never asks.
    let plain = client
        .post(format!("http://{api}/v1/chat/completions"))
        .body(body("fake/instant", false))
        .send()
        .await
        .expect("the daemon answers");
    assert_eq!(plain.status(), 200);
    let over_socket = marked_body("fake/instant", "x");
    let over_socket = chat_json(&daemon, &over_socket, &[("origin", "https://example.com")]).await;
    assert_eq!(
        over_socket.status(),
        200,
        "the Unix socket does not look at Origin"
    );
}

/// GETs `url` until its JSON satisfies `done`; returns that JSON.
async fn eventually_json(
    client: &reqwest::Client,
    url: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let what = format!("{url} to list the request");
    switchboard_testkit::eventually_debug(&what, WAIT, || async {
        let answer = client.get(url).send().await;
        let json = match answer {
            Ok(answer) => answer.json::<Value>().await.unwrap_or(Value::Null),
            Err(err) => Value::String(err.to_string()),
        };
        if done(&json) { Ok(json) } else { Err(json) }
    })
    .await
}
