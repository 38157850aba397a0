//! The history file and every admin answer about sessions hold neither the
//! provider's API key nor, unless `history.record_prompts` is on, what a
//! program sent or got back. With it on, the prompt and the answer are kept
//! (cut to `history.max_record_bytes`), and the key still is not. The file
//! is owner-only (0600) in an owner-only directory (0700) the daemon makes.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;
use serde_json::{Value, json};
use support::*;
use switchboard_testkit::{FakeProvider, Scrape, eventually_debug};

/// In every request's user message; longer than 16 bytes.
const MARKER: &str = "MARKER-c81f2e-the-user-said-this";

/// `path` with `suffix` appended (`history.db` → `history.db-wal`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// `[history] path = "<path>"` plus `extra` lines.
fn history_toml(path: &Path, extra: &str) -> String {
    format!("[history]\npath = \"{}\"\n{extra}", path.display())
}

/// A request for `model` whose user message is [`MARKER`].
fn marked(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "stream": stream,
        "messages": [{ "role": "user", "content": MARKER }],
    })
}

/// Sends `body`; returns the status and session id, having read the answer.
async fn send(daemon: &Daemon, body: &Value) -> (u16, String) {
    let response = chat_json(daemon, body, &[]).await;
    let status = response.status().as_u16();
    let id = session_id(&response);
    response.bytes().await.expect("the whole answer");
    (status, id)
}

/// A GET's status and body text.
async fn get_text(daemon: &Daemon, path: &str) -> (u16, String) {
    let response = daemon
        .client()
        .get(daemon.url(path))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status().as_u16();
    (status, response.text().await.expect("a text body"))
}

/// Waits until `/admin/history` lists every one of `ids` with an outcome;
/// returns the page.
async fn wait_in_history(daemon: &Daemon, ids: &[String]) -> Value {
    eventually_debug(
        "every session listed in /admin/history",
        Duration::from_secs(10),
        || async {
            let (status, page) = get_json(daemon, "/admin/history?limit=1000").await;
            let listed: Vec<&str> = page["sessions"]
                .as_array()
                .map(|rows| rows.iter().filter_map(|r| r["id"].as_str()).collect())
                .unwrap_or_default();
            match status == 200 && ids.iter().all(|id| listed.contains(&id.as_str())) {
                true => Ok(page.clone()),
                false => Err((status, page)),
            }
        },
    )
    .await
}

/// SIGTERM, and waits for a clean exit (the drain flushes history).
async fn drain(daemon: &Daemon) {
    daemon.signal(libc::SIGTERM);
    let status = daemon
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("the daemon exits within 20 s of SIGTERM");
    assert!(
        status.success(),
        "the drained daemon exits 0, got {status}\n{}",
        daemon.logs()
    );
}

/// The raw bytes of the file and of its write-ahead log if there is one.
fn raw_history(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![(
        path.display().to_string(),
        std::fs::read(path).expect("the history file exists"),
    )];
    let wal = with_suffix(path, "-wal");
    if let Ok(bytes) = std::fs::read(&wal) {
        files.push((wal.display().to_string(), bytes));
    }
    files
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// The `prompt` and `answer` columns of session `id`, read from the file.
fn recorded(path: &Path, id: &str) -> (Option<String>, Option<String>) {
    let conn = Connection::open(path).expect("opening the history file");
    conn.query_row(
        "SELECT prompt, answer FROM sessions WHERE id = ?1",
        [id],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .unwrap_or_else(|e| panic!("session {id} is in the file: {e}"))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neither_the_file_nor_admin_answers_hold_the_key_or_the_prompt() {
    let fake = FakeProvider::start().await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("state").join("switchboard");
    let path = dir.join("history.db");
    assert!(!dir.exists(), "the history directory does not exist yet");
    let daemon = daemon(&fake).toml(&history_toml(&path, "")).start().await;

    // An event reader over all the requests below.
    let events = daemon
        .client()
        .get(daemon.url("/admin/events"))
        .send()
        .await
        .expect("GET /admin/events answers");
    assert_eq!(events.status(), 200, "GET /admin/events answers 200");
    let mut reader = SseReader::new(events);
    eventually_debug(
        "one reader of /admin/events",
        Duration::from_secs(10),
        || async {
            let (_, text) = get_text(&daemon, "/metrics").await;
            let scrape = Scrape::parse(&text).map_err(|e| e.to_string())?;
            let readers = scrape.value("switchboard_event_subscribers", &[]);
            match readers == Some(1.0) {
                true => Ok(()),
                false => Err(format!("switchboard_event_subscribers = {readers:?}")),
            }
        },
    )
    .await;

    let mut with_metadata = marked("fake/instant", false);
    with_metadata["metadata"] = json!({ "job": "records-test-job" });
    let mut ids = Vec::new();
    for (body, expected) in [
        (marked("fake/instant", false), 200),
        (marked("fake/stream-3-10", true), 200),
        (marked("fake/status-400", false), 502),
        (with_metadata, 200),
    ] {
        let (status, id) = send(&daemon, &body).await;
        assert_eq!(status, expected, "status of {body}");
        ids.push(id);
    }
    // The marker and the key did go to the provider: what follows checks
    // they went no further.
    let seen = fake.requests();
    assert_eq!(seen.len(), 4, "the fake provider got all 4 requests");
    for request in &seen {
        assert_eq!(marker_of(request), MARKER, "the provider got the prompt");
        assert_eq!(
            request.authorization.as_deref(),
            Some(format!("Bearer {FAKE_KEY}").as_str()),
            "the provider got the key"
        );
    }

    // Every session's last phase, as the event reader saw it.
    let mut captured = Vec::new();
    let terminal = ["COMPLETED", "ERROR", "TIMEOUT", "CANCELLED", "REJECTED"];
    let mut ended = std::collections::HashSet::new();
    while ended.len() < ids.len() {
        let event = tokio::time::timeout(Duration::from_secs(10), reader.next_event())
            .await
            .unwrap_or_else(|_| {
                panic!("an event within 10 s; ended so far {ended:?} of {ids:?}; got {captured:?}")
            })
            .unwrap_or_else(|| panic!("the event stream goes on; got {captured:?}"));
        let parsed: Value = serde_json::from_str(&event).expect("each event is JSON");
        if terminal.contains(&parsed["phase"].as_str().unwrap_or_default()) {
            ended.insert(parsed["session"].as_str().unwrap_or_default().to_owned());
        }
        captured.push(event);
    }
    assert_eq!(
        ended,
        ids.iter().cloned().collect(),
        "the event reader saw exactly our 4 sessions end"
    );
    drop(reader);

    // Every admin answer about them.
    let page = wait_in_history(&daemon, &ids).await;
    assert_eq!(
        page["sessions"].as_array().map(Vec::len),
        Some(4),
        "/admin/history lists our 4 sessions: {page}"
    );
    let row = page["sessions"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["id"] == ids[3].as_str()))
        .unwrap_or_else(|| panic!("the session with metadata is listed: {page}"));
    assert_eq!(
        row["metadata"],
        json!({ "job": "records-test-job" }),
        "metadata is kept: {row}"
    );
    assert!(
        row.get("prompt").is_none_or(Value::is_null)
            && row.get("answer").is_none_or(Value::is_null),
        "no prompt or answer in a row when they are not recorded: {row}"
    );
    let mut answers = vec![
        ("/admin/history".to_owned(), page.to_string()),
        ("/admin/events".to_owned(), captured.join("\n")),
    ];
    for id in &ids {
        let path = format!("/admin/sessions/{id}");
        let (status, text) = get_text(&daemon, &path).await;
        assert_eq!(status, 200, "GET {path}: {text}");
        answers.push((path, text));
    }
    let (status, usage) = get_text(&daemon, "/admin/usage?by=model").await;
    assert_eq!(status, 200, "GET /admin/usage?by=model: {usage}");
    assert!(
        usage.contains("fake/instant"),
        "usage by model has fake/instant: {usage}"
    );
    answers.push(("/admin/usage?by=model".to_owned(), usage));
    let (status, metrics) = get_text(&daemon, "/metrics").await;
    assert_eq!(status, 200, "GET /metrics");
    answers.push(("/metrics".to_owned(), metrics));
    for (what, text) in &answers {
        for secret in [FAKE_KEY, "4f1c9a7e", "Bearer", MARKER] {
            assert!(!text.contains(secret), "{what} holds {secret:?}: {text}");
        }
    }

    // The file and its directory are private.
    assert_eq!(mode(&dir), 0o700, "the history directory is 0700");
    assert_eq!(mode(&path), 0o600, "the history file is 0600");
    let wal = with_suffix(&path, "-wal");
    assert!(wal.exists(), "a running daemon keeps the file in WAL mode");
    assert_eq!(mode(&wal), 0o600, "the write-ahead log is 0600");

    drain(&daemon).await;
    let files = raw_history(&path);
    let all: Vec<u8> = files.iter().flat_map(|(_, b)| b.clone()).collect();
    for id in &ids {
        assert!(
            contains(&all, id),
            "session {id} is in the file's bytes (so they are what was written)"
        );
    }
    assert!(
        contains(&all, "records-test-job"),
        "the metadata is in the file's bytes"
    );
    for (file, bytes) in &files {
        for secret in [FAKE_KEY, "4f1c9a7e", "Bearer", MARKER] {
            assert!(!contains(bytes, secret), "{file} holds {secret:?}");
        }
    }
    assert_eq!(mode(&path), 0o600, "the history file is still 0600");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_prompts_and_answers_are_kept_but_the_key_is_not() {
    let fake = FakeProvider::start().await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let path = tmp.path().join("history.db");
    let daemon = daemon(&fake)
        .toml(&history_toml(&path, "record_prompts = true"))
        .start()
        .await;
    let plain = marked("fake/instant", false);
    let (status, plain_id) = send(&daemon, &plain).await;
    assert_eq!(status, 200, "fake/instant answers 200");
    let (status, stream_id) = send(&daemon, &marked("fake/stream-3-10", true)).await;
    assert_eq!(status, 200, "fake/stream-3-10 answers 200");
    let ids = [plain_id.clone(), stream_id.clone()];
    let page = wait_in_history(&daemon, &ids).await;
    let text = page.to_string();
    assert!(
        !text.contains(FAKE_KEY) && !text.contains("Bearer"),
        "/admin/history holds no key even with prompts recorded: {text}"
    );
    drain(&daemon).await;

    let messages = plain["messages"].to_string();
    let (prompt, answer) = recorded(&path, &plain_id);
    assert_eq!(
        prompt.as_deref(),
        Some(messages.as_str()),
        "the prompt column holds the request's messages"
    );
    assert_eq!(
        answer.as_deref(),
        Some(MARKER),
        "the answer column holds the answer (the fake echoes the user message)"
    );
    let (prompt, answer) = recorded(&path, &stream_id);
    assert_eq!(
        prompt.as_deref(),
        Some(messages.as_str()),
        "the streamed request's prompt is recorded"
    );
    assert_eq!(
        answer.as_deref(),
        Some("w0 w1 w2 "),
        "the streamed answer is its chunks' text joined"
    );
    let files = raw_history(&path);
    let all: Vec<u8> = files.iter().flat_map(|(_, b)| b.clone()).collect();
    assert!(
        contains(&all, MARKER),
        "with record_prompts the marker is in the file's bytes"
    );
    for (file, bytes) in &files {
        for secret in [FAKE_KEY, "4f1c9a7e", "Bearer"] {
            assert!(!contains(bytes, secret), "{file} holds {secret:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_text_is_cut_to_max_record_bytes() {
    let fake = FakeProvider::start().await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let path = tmp.path().join("history.db");
    let daemon = daemon(&fake)
        .toml(&history_toml(
            &path,
            "record_prompts = true\nmax_record_bytes = 16",
        ))
        .start()
        .await;
    let plain = marked("fake/instant", false);
    let (status, id) = send(&daemon, &plain).await;
    assert_eq!(status, 200, "fake/instant answers 200");
    wait_in_history(&daemon, std::slice::from_ref(&id)).await;
    drain(&daemon).await;

    let messages = plain["messages"].to_string();
    let (prompt, answer) = recorded(&path, &id);
    let prompt = prompt.expect("a prompt is recorded");
    assert!(
        prompt.len() <= 16,
        "the stored prompt is at most 16 bytes: {prompt:?}"
    );
    assert_eq!(
        prompt,
        messages[..16],
        "the stored prompt is the messages' first 16 bytes"
    );
    assert_eq!(
        answer.as_deref(),
        Some(&MARKER[..16]),
        "the stored answer is the answer's first 16 bytes"
    );
    let all: Vec<u8> = raw_history(&path)
        .into_iter()
        .flat_map(|(_, b)| b)
        .collect();
    assert!(
        !contains(&all, MARKER),
        "the whole marker is nowhere in the file when cut to 16 bytes"
    );
}
