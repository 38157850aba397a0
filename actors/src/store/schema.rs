//! The history file's schema, versioned in `PRAGMA user_version`.
//!
//! [`MIGRATIONS`] is the schema's whole history: entry `n` takes a file from
//! version `n` to `n + 1`. A file from an older daemon is upgraded at start,
//! one step at a time, each in its own transaction; a file written by a
//! newer daemon is refused, so an older binary never misreads (or prunes) a
//! schema it does not know.
//!
//! One row per session. Its phase events are a JSON array in `phases`
//! (`[phase, elapsed_us, attempt, detail]` each), written with the row in one
//! statement instead of a row per event, which made a session's write about
//! five times cheaper; the `events` view shows them as rows of (session,
//! seq, phase, at, elapsed_ms, attempt, detail) for anyone using `sqlite3`.

use rusqlite::{Connection, Transaction};

use crate::error::StoreError;

/// Version 1: sessions, their phases, the `events` view.
const V1: &str = r#"
CREATE TABLE sessions (
    seq               INTEGER PRIMARY KEY,
    id                TEXT NOT NULL UNIQUE,
    request_id        TEXT NOT NULL,
    requested_model   TEXT NOT NULL,
    provider          TEXT,
    model             TEXT,
    uid               INTEGER,
    pid               INTEGER,
    process           TEXT,
    priority          TEXT NOT NULL,
    stream            INTEGER NOT NULL,
    outcome           TEXT,
    status            INTEGER,
    error_code        TEXT,
    error             TEXT,
    attempts          INTEGER NOT NULL DEFAULT 0,
    queued_ms         REAL,
    ttft_ms           REAL,
    duration_ms       REAL,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    total_tokens      INTEGER,
    cached_tokens     INTEGER,
    reasoning_tokens  INTEGER,
    received_at       INTEGER NOT NULL,
    ended_at          INTEGER,
    metadata          TEXT,
    phases            TEXT NOT NULL DEFAULT '[]',
    dropped_events    INTEGER NOT NULL DEFAULT 0,
    prompt            TEXT,
    answer            TEXT
);
CREATE VIEW events AS
SELECT s.id AS session,
       CAST(e.key AS INTEGER) + 1 AS seq,
       json_extract(e.value, '$[0]') AS phase,
       strftime('%Y-%m-%dT%H:%M:%fZ',
                (s.received_at + json_extract(e.value, '$[1]') / 1000.0) / 1000.0,
                'unixepoch') AS at,
       json_extract(e.value, '$[1]') / 1000.0 AS elapsed_ms,
       json_extract(e.value, '$[2]') AS attempt,
       json_extract(e.value, '$[3]') AS detail
FROM sessions AS s, json_each(s.phases) AS e;
"#;

/// Every step of the schema's history, oldest first.
pub const MIGRATIONS: &[&str] = &[V1];

/// The version a file is at after [`MIGRATIONS`].
pub fn current_version() -> u32 {
    MIGRATIONS.len() as u32
}

/// Brings `conn`'s file to the newest version in `migrations`; refuses a file
/// newer than that. Returns the version the file was at.
pub fn migrate(conn: &mut Connection, migrations: &[&str]) -> Result<u32, StoreError> {
    let known = migrations.len() as u32;
    let found: u32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if found > known {
        return Err(StoreError::NewerSchema { found, known });
    }
    for (version, step) in migrations.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        apply(&tx, step, version as u32 + 1)?;
        tx.commit()?;
    }
    Ok(found)
}

fn apply(tx: &Transaction<'_>, step: &str, version: u32) -> Result<(), StoreError> {
    tx.execute_batch(step)?;
    tx.pragma_update(None, "user_version", version)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(conn: &Connection) -> u32 {
        conn.pragma_query_value(None, "user_version", |row| row.get(0))
            .expect("user_version reads")
    }

    #[test]
    fn a_new_file_gets_every_step() {
        let mut conn = Connection::open_in_memory().expect("opens");
        assert_eq!(migrate(&mut conn, MIGRATIONS).expect("migrates"), 0);
        assert_eq!(version(&conn), current_version());
        let again = migrate(&mut conn, MIGRATIONS).expect("a second start changes nothing");
        assert_eq!(again, current_version());
    }

    #[test]
    fn an_older_file_is_upgraded_and_keeps_its_rows() {
        let steps: &[&str] = &[
            "CREATE TABLE t (a INTEGER);",
            "ALTER TABLE t ADD COLUMN b INTEGER DEFAULT 7;",
        ];
        let mut conn = Connection::open_in_memory().expect("opens");
        migrate(&mut conn, &steps[..1]).expect("version 1");
        conn.execute("INSERT INTO t (a) VALUES (1)", [])
            .expect("row");
        assert_eq!(migrate(&mut conn, steps).expect("upgrades"), 1);
        assert_eq!(version(&conn), 2);
        let b: i64 = conn
            .query_row("SELECT b FROM t WHERE a = 1", [], |row| row.get(0))
            .expect("the old row has the new column");
        assert_eq!(b, 7);
    }

    #[test]
    fn a_newer_file_is_refused() {
        let mut conn = Connection::open_in_memory().expect("opens");
        conn.pragma_update(None, "user_version", 99).expect("set");
        match migrate(&mut conn, MIGRATIONS) {
            Err(StoreError::NewerSchema { found: 99, known }) => {
                assert_eq!(known, current_version())
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn the_events_view_shows_phases_as_rows() {
        let mut conn = Connection::open_in_memory().expect("opens");
        migrate(&mut conn, MIGRATIONS).expect("migrates");
        conn.execute(
            "INSERT INTO sessions (id, request_id, requested_model, priority, stream, received_at, phases)
             VALUES ('s', 'r', 'm', 'normal', 0, 1000, '[[\"RECEIVED\",0,0,null],[\"COMPLETED\",2500,0,\"ok\"]]')",
            [],
        )
        .expect("row");
        let rows: Vec<(i64, String, f64, Option<String>)> = conn
            .prepare("SELECT seq, phase, elapsed_ms, detail FROM events WHERE session = 's' ORDER BY seq")
            .expect("prepares")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .expect("queries")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1], (2, "COMPLETED".into(), 2.5, Some("ok".into())));
    }
}
