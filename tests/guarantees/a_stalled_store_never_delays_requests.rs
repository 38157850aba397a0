//! While another connection holds the history file's write lock (a test's
//! rusqlite connection in `BEGIN EXCLUSIVE`, as a `sqlite3` user might),
//! requests answer as fast as ever and `/admin/history` still reads; the
//! sessions wait in memory, and once the lock is gone every one of them
//! reaches the file, COMPLETED, with nothing dropped.

use crate::support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde_json::Value;
use support::*;
use switchboard_testkit::{FakeProvider, Scrape, eventually_debug};

/// Requests sent one after another while the lock is held.
const SEQUENTIAL: usize = 50;
/// Requests sent all at once while the lock is held.
const CONCURRENT: usize = 50;
/// How long the lock is held at least.
const HOLD: Duration = Duration::from_secs(5);
/// The slowest a request to an instant provider may be: far below the 2 s
/// busy timeout a write waits for the lock, let alone the 5 s it is held.
const SLOWEST: Duration = Duration::from_secs(1);

/// `GET /metrics`, parsed.
async fn scrape(daemon: &Daemon) -> Scrape {
    let text = daemon
        .client()
        .get(daemon.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics answers")
        .text()
        .await
        .expect("metrics body");
    Scrape::parse(&text).unwrap_or_else(|e| panic!("/metrics parses: {e}\n{text}"))
}

/// The ids and outcomes of `/admin/history?limit=1000`.
async fn history(daemon: &Daemon) -> Vec<(String, String)> {
    let (status, page) = get_json(daemon, "/admin/history?limit=1000").await;
    assert_eq!(status, 200, "GET /admin/history answers 200: {page}");
    page["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("a sessions array: {page}"))
        .iter()
        .map(|row| {
            (
                row["id"].as_str().unwrap_or_default().to_owned(),
                row["outcome"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The session ids in the file, read with a connection of our own.
fn ids_in_file(path: &Path) -> HashSet<String> {
    let conn = Connection::open(path).expect("opening the history file");
    conn.busy_timeout(Duration::from_secs(1))
        .expect("busy timeout");
    let mut select = conn.prepare("SELECT id FROM sessions").expect("prepares");
    select
        .query_map([], |row| row.get::<_, String>(0))
        .expect("queries")
        .collect::<Result<_, _>>()
        .expect("reads the ids")
}

/// Sends one instant request; returns its session id and how long it took.
async fn timed_chat(daemon: &Daemon) -> (String, Duration) {
    let started = Instant::now();
    let response = chat(daemon, "fake/instant", false).await;
    assert_eq!(response.status(), 200, "fake/instant answers 200");
    let id = session_id(&response);
    response.bytes().await.expect("the whole answer");
    (id, started.elapsed())
}

/// Holds `BEGIN EXCLUSIVE` (with a write) on `path` from another thread
/// until `release` says so (or 60 s, should the test die first).
fn hold_lock(path: PathBuf, locked: tokio::sync::oneshot::Sender<()>, release: mpsc::Receiver<()>) {
    let conn = Connection::open(&path).expect("opening the history file to lock it");
    conn.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    conn.execute_batch(
        "BEGIN EXCLUSIVE;
         UPDATE sessions SET request_id = request_id WHERE id = 'no such session';",
    )
    .expect("taking the write lock");
    locked.send(()).expect("the test waits for the lock");
    let _ = release.recv_timeout(Duration::from_secs(60));
    conn.execute_batch("ROLLBACK").expect("releasing the lock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_answer_at_once_while_another_connection_holds_the_file() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).start().await;
    let path = daemon.dir().join("history.db");

    // A few sessions first, so the file has its schema and rows.
    let mut before = Vec::new();
    for _ in 0..3 {
        before.push(timed_chat(&daemon).await.0);
    }
    eventually_debug(
        "the first 3 sessions in /admin/history",
        Duration::from_secs(10),
        || async {
            let listed = history(&daemon).await;
            let ids: HashSet<&str> = listed.iter().map(|(id, _)| id.as_str()).collect();
            match before.iter().all(|id| ids.contains(id.as_str())) {
                true => Ok(()),
                false => Err(listed),
            }
        },
    )
    .await;

    // Take the lock on a thread of its own.
    let (locked_tx, locked_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let holder = tokio::task::spawn_blocking({
        let path = path.clone();
        move || hold_lock(path, locked_tx, release_rx)
    });
    tokio::time::timeout(Duration::from_secs(15), locked_rx)
        .await
        .expect("the write lock is taken within 15 s")
        .expect("the lock thread reports");
    let locked_at = Instant::now();
    let writes_before = scrape(&daemon)
        .await
        .histogram_count("switchboard_history_write_seconds", &[]);
    let write_time_before = scrape(&daemon)
        .await
        .histogram_sum("switchboard_history_write_seconds", &[]);

    // Requests, one after another, then all at once.
    let mut sent = Vec::new();
    let mut slowest = Duration::ZERO;
    for _ in 0..SEQUENTIAL {
        let (id, took) = timed_chat(&daemon).await;
        slowest = slowest.max(took);
        sent.push(id);
    }
    assert!(
        slowest < SLOWEST,
        "each sequential request answers in under {SLOWEST:?} while the file is locked; the slowest took {slowest:?}"
    );
    let burst_started = Instant::now();
    let burst: Vec<_> = (0..CONCURRENT)
        .map(|_| {
            let client = daemon.client();
            let url = daemon.url("/v1/chat/completions");
            tokio::spawn(async move {
                let started = Instant::now();
                let response = client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body("fake/instant", false))
                    .send()
                    .await
                    .expect("the daemon answers");
                assert_eq!(response.status(), 200, "fake/instant answers 200");
                let id = session_id(&response);
                response.bytes().await.expect("the whole answer");
                (id, started.elapsed())
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for request in burst {
        let (id, took) = request.await.expect("request task");
        slowest = slowest.max(took);
        sent.push(id);
    }
    let burst_wall = burst_started.elapsed();
    assert!(
        slowest < SLOWEST,
        "each of {CONCURRENT} concurrent requests answers in under {SLOWEST:?} while the file is locked; the slowest took {slowest:?}"
    );
    assert!(
        burst_wall < Duration::from_secs(2),
        "{CONCURRENT} concurrent requests all answer within 2 s (the lock is held {HOLD:?}); they took {burst_wall:?}"
    );
    assert_eq!(
        sent.iter().collect::<HashSet<_>>().len(),
        SEQUENTIAL + CONCURRENT,
        "every request has a session id of its own"
    );

    // The lock really stalls the writer: a write attempt ends (after the 2 s
    // busy timeout), having waited, and none of the new sessions is in the
    // file, as read directly or through /admin/history, which still answers
    // at once.
    let (writes, waited) = eventually_debug(
        "a history write attempt to end while the file is locked",
        Duration::from_secs(10),
        || async {
            let scrape = scrape(&daemon).await;
            let count = scrape.histogram_count("switchboard_history_write_seconds", &[]);
            let sum = scrape.histogram_sum("switchboard_history_write_seconds", &[]);
            match count > writes_before {
                true => Ok((count - writes_before, sum - write_time_before)),
                false => Err((count, sum)),
            }
        },
    )
    .await;
    assert!(
        waited >= 1.9 * writes,
        "each write attempt during the lock waited out the 2 s busy timeout: {writes} attempts took {waited} s"
    );
    let in_file = tokio::task::spawn_blocking({
        let path = path.clone();
        move || ids_in_file(&path)
    })
    .await
    .expect("reading the file");
    let written: Vec<&String> = sent.iter().filter(|id| in_file.contains(*id)).collect();
    assert!(
        written.is_empty(),
        "no session sent while the file is locked is in it yet; found {} of them: {written:?}",
        written.len()
    );
    assert!(
        before.iter().all(|id| in_file.contains(id)),
        "the sessions written before the lock are still readable: {in_file:?}"
    );
    let asked = Instant::now();
    let listed = history(&daemon).await;
    let took = asked.elapsed();
    assert!(
        took < SLOWEST,
        "/admin/history answers in under {SLOWEST:?} while the writer is stalled; it took {took:?}"
    );
    let listed: HashSet<String> = listed.into_iter().map(|(id, _)| id).collect();
    assert_eq!(
        listed,
        before.iter().cloned().collect::<HashSet<_>>(),
        "/admin/history lists only the 3 sessions written before the lock"
    );

    // Release the lock (after holding it at least HOLD).
    tokio::time::sleep_until((locked_at + HOLD).into()).await;
    release_tx.send(()).expect("the lock thread waits");
    holder.await.expect("the lock thread ends");

    // Every session reaches the file, COMPLETED.
    let expected: HashSet<&String> = sent.iter().chain(&before).collect();
    let listed = eventually_debug(
        "all 103 sessions COMPLETED in /admin/history after the lock is released",
        Duration::from_secs(15),
        || async {
            let listed = history(&daemon).await;
            let completed: HashSet<&String> = listed
                .iter()
                .filter(|(_, outcome)| outcome == "COMPLETED")
                .map(|(id, _)| id)
                .collect();
            let missing = expected
                .iter()
                .filter(|id| !completed.contains(*id))
                .count();
            match missing {
                0 => Ok(listed.clone()),
                _ => Err(format!("{missing} missing or not COMPLETED of {listed:?}")),
            }
        },
    )
    .await;
    assert_eq!(
        listed.len(),
        SEQUENTIAL + CONCURRENT + 3,
        "/admin/history lists exactly the sessions sent: {listed:?}"
    );
    let in_file = tokio::task::spawn_blocking({
        let path = path.clone();
        move || ids_in_file(&path)
    })
    .await
    .expect("reading the file");
    assert_eq!(
        in_file,
        expected
            .iter()
            .map(|id| (*id).clone())
            .collect::<HashSet<_>>(),
        "the file holds exactly the sessions sent"
    );

    // Nothing was dropped, and what was dropped would be counted.
    let scrape = scrape(&daemon).await;
    for what in ["sessions", "events"] {
        let dropped = scrape.value("switchboard_history_dropped_total", &[("what", what)]);
        assert!(
            dropped.is_none_or(|n| n == 0.0),
            "no {what} dropped at this volume (all sessions are in the file); switchboard_history_dropped_total{{what=\"{what}\"}} = {dropped:?}"
        );
    }
    let rows = get_json(&daemon, &format!("/admin/sessions/{}", sent[0]))
        .await
        .1;
    assert_eq!(
        rows["outcome"],
        Value::from("COMPLETED"),
        "a session sent during the lock shows COMPLETED: {rows}"
    );
}
