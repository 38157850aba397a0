//! Helpers for the history tests: reading the daemon's history file
//! directly, and waiting for sessions to reach it.
//!
//! The file is opened read-only with rusqlite, exactly as an operator's
//! `sqlite3` would, so the tests check what is really on disk rather than
//! what the daemon says about it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags};
use serde_json::Value;
use switchboard_testkit::{Daemon, eventually_debug};

use super::get_json;

/// How long the tests wait for something the daemon does within ~100 ms
/// (a batch written, a session ended): a wide margin on a noisy machine.
pub const SETTLE: Duration = Duration::from_secs(15);

/// How long a draining daemon gets to exit.
pub const EXIT: Duration = Duration::from_secs(60);

/// The history file a test daemon uses when the test does not choose one.
pub fn default_history(daemon: &Daemon) -> PathBuf {
    daemon.dir().join("history.db")
}

/// A settings snippet pointing `history.path` at `path`.
pub fn history_toml(path: &Path) -> String {
    let text = path.to_str().expect("the history path must be UTF-8");
    format!("[history]\npath = {}", serde_json::Value::from(text))
}

/// One phase of a stored row's `phases` JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredPhase {
    /// The phase name.
    pub phase: String,
    /// Milliseconds since the session was received.
    pub elapsed_ms: f64,
    /// The attempt it belongs to.
    pub attempt: i64,
    /// Its detail, if any.
    pub detail: Option<String>,
}

/// One row of the `sessions` table, the columns these tests check.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRow {
    /// Insertion order.
    pub seq: i64,
    /// The session id.
    pub id: String,
    /// The model the client asked for.
    pub requested_model: String,
    /// The provider it was routed to.
    pub provider: Option<String>,
    /// `COMPLETED`, `TIMEOUT`, ...; `None` while the session is live.
    pub outcome: Option<String>,
    /// The HTTP status answered.
    pub status: Option<i64>,
    /// The error code answered.
    pub error_code: Option<String>,
    /// Provider attempts made.
    pub attempts: i64,
    /// Unix milliseconds.
    pub received_at: i64,
    /// Unix milliseconds.
    pub ended_at: Option<i64>,
    /// The timeline.
    pub phases: Vec<StoredPhase>,
}

impl StoredRow {
    /// The phase names, in order.
    pub fn phase_names(&self) -> Vec<String> {
        self.phases.iter().map(|p| p.phase.clone()).collect()
    }

    /// The wall time (Unix ms) of the last phase: received_at + its elapsed.
    pub fn last_phase_ms(&self) -> Option<f64> {
        self.phases
            .last()
            .map(|p| self.received_at as f64 + p.elapsed_ms)
    }
}

/// Opens the history file read-only.
pub fn open_history(path: &Path) -> Result<Connection, String> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("opening {} read-only: {e}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| format!("busy timeout: {e}"))?;
    Ok(conn)
}

/// Every row of `sessions`, in insertion order.
pub fn read_rows(path: &Path) -> Result<Vec<StoredRow>, String> {
    let conn = open_history(path)?;
    let mut statement = conn
        .prepare(
            "SELECT seq, id, requested_model, provider, outcome, status, error_code, attempts,
                    received_at, ended_at, phases
             FROM sessions ORDER BY seq",
        )
        .map_err(|e| format!("preparing the select: {e}"))?;
    let rows = statement
        .query_map([], |row| {
            Ok((
                StoredRow {
                    seq: row.get(0)?,
                    id: row.get(1)?,
                    requested_model: row.get(2)?,
                    provider: row.get(3)?,
                    outcome: row.get(4)?,
                    status: row.get(5)?,
                    error_code: row.get(6)?,
                    attempts: row.get(7)?,
                    received_at: row.get(8)?,
                    ended_at: row.get(9)?,
                    phases: Vec::new(),
                },
                row.get::<_, String>(10)?,
            ))
        })
        .map_err(|e| format!("selecting rows: {e}"))?;
    let mut out = Vec::new();
    for row in rows {
        let (mut row, phases) = row.map_err(|e| format!("reading a row: {e}"))?;
        row.phases =
            parse_phases(&phases).map_err(|e| format!("phases of {}: {e}: {phases}", row.id))?;
        out.push(row);
    }
    Ok(out)
}

/// The rows of `read_rows`, or a panic saying why the file cannot be read.
pub fn rows(path: &Path) -> Vec<StoredRow> {
    read_rows(path).unwrap_or_else(|e| panic!("reading the history file: {e}"))
}

/// `[[phase, elapsed_us, attempt, detail], ...]` (microseconds as stored).
fn parse_phases(text: &str) -> Result<Vec<StoredPhase>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let items = value.as_array().ok_or("not an array")?;
    items
        .iter()
        .map(|item| {
            let phase = item[0].as_str().ok_or("no phase name")?.to_owned();
            let elapsed_ms = item[1].as_f64().ok_or("no elapsed_us")? / 1000.0;
            let attempt = item[2].as_i64().ok_or("no attempt")?;
            let detail = item[3].as_str().map(str::to_owned);
            Ok(StoredPhase {
                phase,
                elapsed_ms,
                attempt,
                detail,
            })
        })
        .collect()
}

/// `PRAGMA user_version` of the file.
pub fn user_version(path: &Path) -> i64 {
    let conn = open_history(path).unwrap_or_else(|e| panic!("{e}"));
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .expect("reading user_version")
}

/// Polls the file until `check` accepts its rows; returns what it returned.
/// `check` answers `Err(what it saw)` while not yet.
pub async fn wait_rows<T>(
    path: &Path,
    what: &str,
    mut check: impl FnMut(&[StoredRow]) -> Result<T, String>,
) -> T {
    eventually_debug(what, SETTLE, || {
        let seen = read_rows(path).and_then(|rows| check(&rows));
        async move { seen }
    })
    .await
}

/// The session ids of a history page (or an admin listing).
pub fn ids_of(list: &Value) -> Vec<String> {
    list["sessions"]
        .as_array()
        .map(|sessions| {
            sessions
                .iter()
                .map(|s| s["id"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `GET /admin/history?{query}`, asserting a 200.
pub async fn history(daemon: &Daemon, query: &str) -> Value {
    let (status, page) = get_json(daemon, &format!("/admin/history?{query}")).await;
    assert_eq!(
        status, 200,
        "GET /admin/history?{query} answers 200: {page}"
    );
    page
}

/// Waits until `GET /admin/history?{query}` lists exactly `count` sessions;
/// returns them.
pub async fn wait_history(daemon: &Daemon, query: &str, count: usize) -> Vec<Value> {
    let what = format!("{count} sessions in /admin/history?{query}");
    eventually_debug(&what, SETTLE, || async {
        let (status, page) = get_json(daemon, &format!("/admin/history?{query}")).await;
        let sessions = page["sessions"].as_array().cloned().unwrap_or_default();
        if status == 200 && sessions.len() == count {
            Ok(sessions)
        } else {
            let seen: Vec<(Value, Value)> = sessions
                .iter()
                .map(|s| (s["id"].clone(), s["outcome"].clone()))
                .collect();
            Err((status, seen))
        }
    })
    .await
}

/// Waits until session `id`'s timeline (live or ended) has `last` as its
/// latest phase; returns the phases.
pub async fn wait_last_phase(daemon: &Daemon, id: &str, last: &str) -> Vec<String> {
    let what = format!("session {id} to reach {last}");
    eventually_debug(&what, SETTLE, || async {
        let (status, timeline) = get_json(daemon, &format!("/admin/sessions/{id}")).await;
        let phases: Vec<String> = timeline["phases"]
            .as_array()
            .map(|p| {
                p.iter()
                    .map(|e| e["phase"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        if status == 200 && phases.last().map(String::as_str) == Some(last) {
            Ok(phases)
        } else {
            Err((status, phases))
        }
    })
    .await
}

/// The id of the one live session not in `known`.
pub fn new_live_id(live: &[Value], known: &HashSet<String>) -> String {
    let fresh: Vec<&str> = live
        .iter()
        .filter_map(|s| s["id"].as_str())
        .filter(|id| !known.contains(*id))
        .collect();
    assert_eq!(
        fresh.len(),
        1,
        "exactly one new live session beside {known:?}: {live:?}"
    );
    fresh[0].to_owned()
}

/// Sends SIGTERM and waits for the daemon to exit; asserts it exited 0.
pub async fn drain_and_exit(daemon: &Daemon) -> ExitStatus {
    daemon.signal(libc::SIGTERM);
    let status = daemon
        .wait_exit(EXIT)
        .await
        .unwrap_or_else(|| panic!("the daemon did not exit within {EXIT:?} of SIGTERM"));
    assert!(
        status.success(),
        "a drained daemon exits 0, got {status:?}\n{}",
        daemon.logs()
    );
    status
}

/// An RFC 3339 time from an admin answer, as Unix milliseconds.
pub fn rfc3339_ms(value: &Value) -> i64 {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("an RFC 3339 time, got {value}"));
    let at = humantime::parse_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    unix_ms(at)
}

/// Unix milliseconds of `at`.
pub fn unix_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

/// The phase names of an admin timeline (`GET /admin/sessions/{id}`).
pub fn timeline_phases(timeline: &Value) -> Vec<String> {
    timeline["phases"]
        .as_array()
        .map(|p| {
            p.iter()
                .map(|e| e["phase"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Awaits `future`, panicking with `what` if it takes longer than `limit`
/// (so a lost answer fails the test instead of hanging it).
pub async fn within<F: std::future::Future>(what: &str, limit: Duration, future: F) -> F::Output {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {limit:?} waiting for {what}"))
}
