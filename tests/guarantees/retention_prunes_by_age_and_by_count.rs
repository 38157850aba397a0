//! Retention, applied when the daemon starts: all but the newest
//! `history.max_sessions` finished sessions are deleted, and so are those
//! received more than `history.retention_days` ago; the rest stay, in the
//! file and in `/admin/history`.

use crate::support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use support::*;
use switchboard_testkit::{FakeProvider, eventually_debug};

const DAY_MS: u64 = 86_400_000;

/// `[history] path = "<path>"` plus `extra` lines.
fn history_toml(path: &Path, extra: &str) -> String {
    format!("[history]\npath = \"{}\"\n{extra}", path.display())
}

/// The session ids in the file, read with a connection of our own.
fn ids_in_file(path: &Path) -> BTreeSet<String> {
    let conn = Connection::open(path).expect("opening the history file");
    conn.busy_timeout(Duration::from_secs(2))
        .expect("busy timeout");
    let mut select = conn.prepare("SELECT id FROM sessions").expect("prepares");
    select
        .query_map([], |row| row.get::<_, String>(0))
        .expect("queries")
        .collect::<Result<_, _>>()
        .expect("reads the ids")
}

/// The ids `/admin/history?limit=1000` lists.
async fn listed(daemon: &Daemon) -> BTreeSet<String> {
    let (status, page) = get_json(daemon, "/admin/history?limit=1000").await;
    assert_eq!(status, 200, "GET /admin/history answers 200: {page}");
    page["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("a sessions array: {page}"))
        .iter()
        .map(|row| row["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Runs a daemon on `path`, sends `count` instant requests, drains it;
/// returns the session ids, in the order sent.
async fn first_daemon(fake: &FakeProvider, path: &Path, count: usize) -> Vec<String> {
    let daemon = daemon(fake)
        .toml(&history_toml(path, "max_sessions = 1000"))
        .start()
        .await;
    let mut ids = Vec::new();
    for _ in 0..count {
        let response = chat(&daemon, "fake/instant", false).await;
        assert_eq!(response.status(), 200, "fake/instant answers 200");
        ids.push(session_id(&response));
        response.bytes().await.expect("the whole answer");
    }
    daemon.signal(libc::SIGTERM);
    let status = daemon
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("the first daemon exits within 20 s of SIGTERM");
    assert!(status.success(), "the first daemon exits 0, got {status}");
    let in_file = ids_in_file(path);
    assert_eq!(
        in_file,
        ids.iter().cloned().collect(),
        "after the drain the file holds all {count} sessions of the first daemon"
    );
    ids
}

/// Waits until the file holds exactly `expected`.
async fn wait_file_holds(path: &Path, expected: &BTreeSet<String>, what: &str) {
    eventually_debug(what, Duration::from_secs(15), || async {
        let path = path.to_owned();
        let found = tokio::task::spawn_blocking(move || ids_in_file(&path))
            .await
            .expect("reading the file");
        match &found == expected {
            true => Ok(()),
            false => Err(found),
        }
    })
    .await;
}

/// A UUID v7 text for a session received at `ms` (Unix milliseconds).
fn id_at(ms: u64, n: u64) -> String {
    format!("{:08x}-{:04x}-7000-8000-{:012x}", ms >> 16, ms & 0xffff, n)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_but_the_newest_max_sessions_are_pruned_at_start() {
    let fake = FakeProvider::start().await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let path = tmp.path().join("history.db");
    let ids = first_daemon(&fake, &path, 12).await;

    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(
        sorted, ids,
        "session ids (UUID v7) sort in the order the sessions arrived"
    );
    let newest: BTreeSet<String> = ids[7..].iter().cloned().collect();
    assert_eq!(newest.len(), 5);

    let second = daemon(&fake)
        .toml(&history_toml(&path, "max_sessions = 5"))
        .start()
        .await;
    wait_file_holds(
        &path,
        &newest,
        "the file to hold exactly the 5 newest of 12 sessions",
    )
    .await;
    assert_eq!(
        listed(&second).await,
        newest,
        "/admin/history lists exactly the 5 newest sessions"
    );
    assert_eq!(
        fake.request_count(),
        12,
        "only the first daemon's requests reached the provider"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_older_than_retention_days_are_pruned_at_start() {
    let fake = FakeProvider::start().await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let path = tmp.path().join("history.db");
    let recent = first_daemon(&fake, &path, 2).await;

    // Sessions as if received 40 and 10 days ago.
    let now = now_ms();
    let old: Vec<String> = (0..3)
        .map(|n| id_at(now - 40 * DAY_MS + n, n + 1))
        .collect();
    let kept: Vec<String> = (0..3)
        .map(|n| id_at(now - 10 * DAY_MS + n, n + 100))
        .collect();
    {
        let conn = Connection::open(&path).expect("opening the history file");
        let mut insert = conn
            .prepare(
                "INSERT INTO sessions (id, request_id, requested_model, provider, model,
                     priority, stream, outcome, status, received_at, ended_at)
                 VALUES (?1, ?2, 'fake/instant', 'fake', 'instant', 'normal', 0,
                     'COMPLETED', 200, ?3, ?3 + 5)",
            )
            .expect("prepares");
        for (id, age) in old
            .iter()
            .map(|id| (id, 40))
            .chain(kept.iter().map(|id| (id, 10)))
        {
            let received_at = i64::try_from(now - age * DAY_MS).expect("fits");
            insert
                .execute(rusqlite::params![id, format!("req-{id}"), received_at])
                .expect("inserting an aged session");
        }
    }
    let before: BTreeSet<String> = recent.iter().chain(&old).chain(&kept).cloned().collect();
    assert_eq!(
        ids_in_file(&path),
        before,
        "the file holds the 2 recent and 6 aged sessions before the second start"
    );

    let second = daemon(&fake)
        .toml(&history_toml(&path, "retention_days = 30"))
        .start()
        .await;
    let expected: BTreeSet<String> = recent.iter().chain(&kept).cloned().collect();
    wait_file_holds(
        &path,
        &expected,
        "the 40-day-old sessions deleted, the 10-day-old and recent ones kept",
    )
    .await;
    assert_eq!(
        listed(&second).await,
        expected,
        "/admin/history lists the recent and 10-day-old sessions, not the 40-day-old ones"
    );
}
