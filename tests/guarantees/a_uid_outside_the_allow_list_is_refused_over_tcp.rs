//! Over loopback TCP (`[server] listen_tcp`) a caller is the user owning
//! its socket, and the allow-list applies exactly as on the Unix socket: a
//! uid that is neither the daemon's nor in `allowed_uids` gets 403
//! `forbidden` (in the OpenAI shape on OpenAI routes, Anthropic's on
//! `/v1/messages`), nothing reaches the provider and the refusal is logged
//! with its uid; listing the uid lets it in, attributed to that uid.
//!
//! Needs root (to run the client as another user): built by anyone else it
//! is ignored, "needs root" (`cfg(built_as_root)` comes from `build.rs`).

use crate::support;

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::Command;

use serde_json::Value;
use support::scrape::free_port;
use support::*;
use switchboard_testkit::{Daemon, FakeProvider};

/// Python's standard library only: POSTs each path given and prints one
/// JSON line of `[status, body]` pairs.
const CLIENT: &str = r#"
import json, sys, urllib.request, urllib.error
base, out = sys.argv[1], []
for path, body in json.loads(sys.argv[2]):
    req = urllib.request.Request(base + path, data=body.encode(),
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            out.append([r.status, json.loads(r.read())])
    except urllib.error.HTTPError as e:
        out.append([e.code, json.loads(e.read())])
print(json.dumps(out))
"#;

/// POSTs a chat and a message to `api` as `NOBODY`; their statuses and bodies.
async fn post_as_nobody(api: SocketAddr) -> Vec<(u16, Value)> {
    let messages = serde_json::json!({
        "model": "fake/instant", "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
    });
    let requests = serde_json::json!([
        ["/v1/chat/completions", body("fake/instant", false)],
        ["/v1/messages", messages.to_string()],
    ]);
    let mut command = Command::new("python3");
    command
        .args([
            "-c",
            CLIENT,
            &format!("http://{api}"),
            &requests.to_string(),
        ])
        .current_dir("/")
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .uid(NOBODY)
        .gid(NOBODY);
    let output = tokio::task::spawn_blocking(move || command.output().expect("python3 runs"))
        .await
        .expect("join");
    let answers: Vec<(u16, Value)> = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "the client printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    answers
}

async fn tcp_daemon(fake: &FakeProvider, extra: &str) -> (Daemon, SocketAddr) {
    let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let anthropic = format!("anthropic_base_url = {:?}", fake.anthropic_base_url());
    let daemon = daemon(fake)
        .provider_toml("fake", &anthropic)
        .toml(&format!("[server]\nlisten_tcp = \"{api}\"\n{extra}"))
        .start()
        .await;
    (daemon, api)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(built_as_root), ignore = "needs root")]
async fn a_uid_outside_the_allow_list_is_refused_over_tcp() {
    assert_running_as_root();
    let fake = FakeProvider::start().await;

    let (refusing, api) = tcp_daemon(&fake, "").await;
    let answers = post_as_nobody(api).await;
    let (chat, message) = (&answers[0], &answers[1]);
    assert_eq!(chat.0, 403, "{chat:?}");
    assert_eq!(
        chat.1["error"]["code"], "forbidden",
        "OpenAI's shape: {chat:?}"
    );
    assert_eq!(message.0, 403, "{message:?}");
    assert_eq!(message.1["type"], "error", "Anthropic's shape: {message:?}");
    assert_eq!(
        message.1["error"]["type"], "permission_error",
        "{message:?}"
    );
    assert_eq!(fake.request_count(), 0, "a refused request goes nowhere");
    let logs = refusing.logs();
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("refusing a connection"))
        .collect();
    assert!(
        !warnings.is_empty() && warnings.iter().all(|line| line.contains("65534")),
        "the daemon logs the refused connections and who made them:\n{logs}"
    );

    let (allowing, api) = tcp_daemon(&fake, &format!("allowed_uids = [{NOBODY}]")).await;
    let answers = post_as_nobody(api).await;
    assert!(
        answers.iter().all(|(status, _)| *status == 200),
        "{answers:?}"
    );
    let path = format!("/admin/history?uid={NOBODY}");
    let what = format!("both requests in history as uid {NOBODY}");
    let rows = switchboard_testkit::eventually_debug(&what, WAIT, || async {
        let (_, history) = get_json(&allowing, &path).await;
        match history["sessions"].as_array() {
            Some(rows) if rows.len() == 2 => Ok(rows.clone()),
            _ => Err(history),
        }
    })
    .await;
    assert!(
        rows.iter().all(|row| row["client"]["process"] == "python3"),
        "{rows:?}"
    );
}
