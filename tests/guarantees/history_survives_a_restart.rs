//! Sessions recorded by one daemon are there for the next one on the same
//! history file: `/admin/history` lists them with their outcomes,
//! `GET /admin/sessions/{id}` and `switchboard session ID` show one with its
//! phases, read back from the file (`"live": false`). History pages follow
//! the `next` cursor newest first, and bad filters get a 400 naming the
//! parameter.

use crate::support;

use std::collections::HashSet;

use serde_json::Value;
use support::records::*;
use support::*;
use switchboard_testkit::FakeProvider;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_daemon_shows_the_sessions_of_the_one_before() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().expect("a temp dir for the history file");
    let path = dir.path().join("history.db");

    let first = daemon(&fake)
        .toml(&history_toml(&path))
        .provider_toml("fake", "max_retries = 0")
        .start()
        .await;
    let answered = chat(&first, "fake/instant", false).await;
    assert_eq!(answered.status(), 200, "fake/instant is answered");
    let ok_id = session_id(&answered);
    let failed = chat(&first, "fake/status-500", false).await;
    assert_eq!(failed.status(), 502, "a provider 500 is answered 502");
    let failed_id = session_id(&failed);
    assert_eq!(error_code(failed).await, "provider_error");
    wait_history(&first, "", 2).await;
    let (status, before) = get_json(&first, &format!("/admin/sessions/{ok_id}")).await;
    assert_eq!(status, 200, "the first daemon shows its session: {before}");
    drain_and_exit(&first).await;

    let second = daemon(&fake).toml(&history_toml(&path)).start().await;
    assert_ne!(
        first.socket(),
        second.socket(),
        "the second daemon has a socket of its own"
    );
    let listed = history(&second, "").await;
    assert_eq!(
        ids_of(&listed),
        [failed_id.as_str(), ok_id.as_str()],
        "the second daemon lists the first one's two sessions, newest first: {listed}"
    );
    let sessions = listed["sessions"].as_array().expect("sessions");
    assert_eq!(sessions[0]["outcome"], "ERROR", "{}", sessions[0]);
    assert_eq!(sessions[0]["status"], 502, "{}", sessions[0]);
    assert_eq!(
        sessions[0]["error_code"], "provider_error",
        "{}",
        sessions[0]
    );
    assert_eq!(sessions[1]["outcome"], "COMPLETED", "{}", sessions[1]);
    assert_eq!(sessions[1]["status"], 200, "{}", sessions[1]);
    assert_eq!(sessions[1]["error_code"], Value::Null, "{}", sessions[1]);

    let (status, after) = get_json(&second, &format!("/admin/sessions/{ok_id}")).await;
    assert_eq!(
        status, 200,
        "the second daemon finds {ok_id} in the file: {after}"
    );
    assert_eq!(after["id"], ok_id.as_str(), "{after}");
    assert_eq!(after["live"], false, "read back from the file: {after}");
    assert_eq!(after["outcome"], "COMPLETED", "{after}");
    let phases = timeline_phases(&after);
    assert_eq!(
        phases,
        [
            "RECEIVED",
            "SESSION_ALLOCATED",
            "PROVIDER_CALL_START",
            "PROVIDER_CALL_END",
            "SESSION_RELEASED",
            "COMPLETED"
        ],
        "the phases, in order, from RECEIVED to COMPLETED: {after}"
    );
    assert_eq!(
        phases,
        timeline_phases(&before),
        "the same phases the first daemon showed"
    );
    let elapsed = |timeline: &Value| -> Vec<f64> {
        timeline["phases"]
            .as_array()
            .expect("phases")
            .iter()
            .map(|p| p["elapsed_ms"].as_f64().expect("elapsed_ms"))
            .collect()
    };
    let (was, is) = (elapsed(&before), elapsed(&after));
    assert!(
        was.iter().zip(&is).all(|(a, b)| (a - b).abs() < 0.01),
        "elapsed times survive the restart: {was:?} then {is:?}"
    );
    assert!(
        is.windows(2).all(|w| w[0] <= w[1]),
        "elapsed times never go backwards: {is:?}"
    );

    // The CLI, against the second daemon.
    let table = cli(&["session", &ok_id, "--socket", socket(&second)]).await;
    assert!(
        table.contains(&ok_id),
        "`switchboard session` prints the id:\n{table}"
    );
    let mut from = 0;
    for phase in &phases {
        let at = table[from..]
            .find(phase.as_str())
            .unwrap_or_else(|| panic!("{phase} after byte {from} of:\n{table}"));
        from += at + phase.len();
    }
    let json = cli(&["session", &ok_id, "--socket", socket(&second), "--json"]).await;
    let parsed: Value = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("`switchboard session --json` prints JSON ({e}):\n{json}"));
    assert_eq!(parsed["id"], ok_id.as_str(), "{parsed}");
    assert_eq!(parsed["live"], false, "{parsed}");
    assert_eq!(parsed["outcome"], "COMPLETED", "{parsed}");
    assert_eq!(timeline_phases(&parsed), phases, "{parsed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_follow_the_next_cursor_newest_first() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).start().await;
    let mut sent = Vec::new();
    for _ in 0..5 {
        let response = chat(&daemon, "fake/instant", false).await;
        assert_eq!(response.status(), 200);
        sent.push(session_id(&response));
    }
    wait_history(&daemon, "", 5).await;
    let newest_first: Vec<String> = sent.iter().rev().cloned().collect();

    let first = history(&daemon, "limit=2").await;
    assert_eq!(
        ids_of(&first),
        newest_first[..2],
        "page 1: the two newest: {first}"
    );
    let next = first["next"]
        .as_str()
        .unwrap_or_else(|| panic!("page 1 has a next cursor: {first}"));
    let second = history(&daemon, &format!("limit=2&before={next}")).await;
    assert_eq!(
        ids_of(&second),
        newest_first[2..4],
        "page 2: the next two: {second}"
    );
    let next = second["next"]
        .as_str()
        .unwrap_or_else(|| panic!("page 2 has a next cursor: {second}"));
    let third = history(&daemon, &format!("limit=2&before={next}")).await;
    assert_eq!(
        ids_of(&third),
        newest_first[4..],
        "page 3: the oldest one: {third}"
    );
    assert_eq!(third["next"], Value::Null, "the last page: {third}");
    let seen: HashSet<String> = [&first, &second, &third]
        .into_iter()
        .flat_map(ids_of)
        .collect();
    assert_eq!(seen.len(), 5, "five sessions, none on two pages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_history_filters_get_400_naming_the_parameter() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).start().await;
    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("since=yesterday", "since"),
        ("until=yesterday", "until"),
        ("outcome=DONE", "outcome"),
        ("uid=abc", "uid"),
        ("before=xyz", "before"),
    ] {
        let (status, body) = get_json(&daemon, &format!("/admin/history?{query}")).await;
        assert_eq!(status, 400, "?{query} is refused: {body}");
        assert_eq!(
            body["error"]["param"], param,
            "?{query}: error.param names the parameter: {body}"
        );
        assert_eq!(body["error"]["code"], "invalid_request", "?{query}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(param),
            "?{query}: the message names `{param}`: {body}"
        );
    }
    let (status, body) = get_json(&daemon, "/admin/history?colour=blue").await;
    assert_eq!(status, 400, "an unknown parameter is refused: {body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("colour"),
        "the message names the unknown parameter: {body}"
    );
    // Good values of the same parameters are accepted.
    let (status, body) = get_json(
        &daemon,
        "/admin/history?limit=1000&since=1h&until=2999-01-01T00:00:00Z&outcome=COMPLETED&uid=0",
    )
    .await;
    assert_eq!(status, 200, "valid filters are accepted: {body}");
}

/// The daemon's socket as text.
fn socket(daemon: &Daemon) -> &str {
    daemon.socket().to_str().expect("UTF-8 socket path")
}

/// Runs the `switchboard` CLI; asserts it exits 0 and returns its stdout.
async fn cli(args: &[&str]) -> String {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
    command.args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SWITCHBOARD_") {
            command.env_remove(key);
        }
    }
    let output = tokio::time::timeout(SETTLE, command.output())
        .await
        .unwrap_or_else(|_| panic!("`switchboard {args:?}` did not finish within {SETTLE:?}"))
        .expect("running the switchboard CLI");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "`switchboard {args:?}` exits 0, got {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
