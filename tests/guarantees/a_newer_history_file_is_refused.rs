//! The daemon refuses a history file it cannot safely use, before touching
//! it: one written by a newer daemon (a higher `PRAGMA user_version`), which
//! it leaves as it found it, and one another running daemon is using.

use crate::support;

use std::time::Duration;

use support::records::*;
use support::*;
use switchboard_testkit::FakeProvider;

/// How long a daemon that must refuse to start may take to exit.
const REFUSAL: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_file_from_a_newer_daemon_is_refused_naming_its_version() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().expect("a temp dir for the history file");
    let path = dir.path().join("history.db");
    future_file(&path);

    let (status, output) = daemon(&fake)
        .toml(&history_toml(&path))
        .start_expect_failure(REFUSAL)
        .await;
    assert!(
        !status.success(),
        "the daemon refuses the file: {status:?}\n{output}"
    );
    assert!(
        output.contains("99"),
        "the refusal names the file's version, 99:\n{output}"
    );
    assert!(
        output.contains("newer"),
        "the refusal says the file is newer:\n{output}"
    );

    assert_eq!(user_version(&path), 99, "user_version is still 99");
    let conn = open_history(&path).unwrap_or_else(|e| panic!("{e}"));
    let x: i64 = conn
        .query_row("SELECT x FROM future", [], |row| row.get(0))
        .expect("the newer schema's table is still there");
    assert_eq!(x, 42, "and so is its row");
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name IN ('sessions', 'events')",
            [],
            |row| row.get(0),
        )
        .expect("listing tables");
    assert_eq!(tables, 0, "no schema of this daemon's was added");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusing_a_newer_history_file_writes_nothing_to_it() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().expect("a temp dir for the history file");
    let path = dir.path().join("history.db");
    future_file(&path);
    let before = std::fs::read(&path).expect("reading the file");

    let (status, output) = daemon(&fake)
        .toml(&history_toml(&path))
        .start_expect_failure(REFUSAL)
        .await;
    assert!(
        !status.success(),
        "the daemon refuses the file: {status:?}\n{output}"
    );
    let after = std::fs::read(&path).expect("reading the file again");
    // Bytes 18 and 19 of an SQLite header are its file format write/read
    // versions: 1 for a rollback journal, 2 for WAL.
    assert!(
        before == after,
        "a refused file is left byte for byte as it was ({} bytes before, {} after; \
         header bytes 18-19 (journal mode) {:?} before, {:?} after)",
        before.len(),
        after.len(),
        &before[18..20],
        &after[18..20]
    );
}

/// Creates a history file "from a newer daemon": `user_version = 99`, a
/// table this daemon does not know, with one row, in rollback-journal mode.
fn future_file(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).expect("creating the file");
    conn.execute_batch(
        "CREATE TABLE future (x INTEGER); INSERT INTO future VALUES (42);
         PRAGMA user_version = 99;",
    )
    .expect("a file from the future");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_on_the_same_history_file_refuses_to_start() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().expect("a temp dir for the history file");
    let path = dir.path().join("history.db");
    let first = daemon(&fake).toml(&history_toml(&path)).start().await;

    let second = daemon(&fake).toml(&history_toml(&path));
    let (status, output) = second.start_expect_failure(REFUSAL).await;
    assert!(
        !status.success(),
        "a second daemon on the same file does not start: {status:?}\n{output}"
    );
    assert!(
        output.contains("another switchboard daemon is using the history file"),
        "the refusal says another daemon uses the file:\n{output}"
    );
    assert!(
        output.contains(path.to_str().expect("UTF-8 path")),
        "the refusal names the file:\n{output}"
    );

    // The first one is undisturbed: it still serves and records.
    let answered = chat(&first, "fake/instant", false).await;
    assert_eq!(answered.status(), 200, "the first daemon still answers");
    let id = session_id(&answered);
    wait_rows(
        &path,
        "the first daemon's new session in the file",
        |rows| match rows.iter().find(|r| r.id == id) {
            Some(row) if row.outcome.as_deref() == Some("COMPLETED") => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    drain_and_exit(&first).await;
}
