//! Writing the history file: a batch of session rows in one transaction,
//! crash recovery at start, and retention.
//!
//! Every write is an upsert keyed on the session id: a session's row is
//! written open while it runs (so a crash leaves it to be found) and again,
//! whole, when it ends. A finished row is never overwritten.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, params};

use super::id_bound;
use crate::error::StoreError;
use crate::record::SessionRecord;

const UPSERT: &str = "
INSERT INTO sessions (
    id, request_id, requested_model, provider, model, uid, pid, process, priority, stream,
    received_at, metadata, phases, dropped_events, attempts,
    outcome, status, error_code, error, queued_ms, ttft_ms, duration_ms,
    prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens,
    ended_at, prompt, answer
) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
          ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30)
ON CONFLICT (id) DO UPDATE SET
    provider = excluded.provider, model = excluded.model, phases = excluded.phases,
    dropped_events = excluded.dropped_events, attempts = excluded.attempts,
    outcome = excluded.outcome, status = excluded.status, error_code = excluded.error_code,
    error = excluded.error, queued_ms = excluded.queued_ms, ttft_ms = excluded.ttft_ms,
    duration_ms = excluded.duration_ms, prompt_tokens = excluded.prompt_tokens,
    completion_tokens = excluded.completion_tokens, total_tokens = excluded.total_tokens,
    cached_tokens = excluded.cached_tokens, reasoning_tokens = excluded.reasoning_tokens,
    ended_at = excluded.ended_at, prompt = excluded.prompt, answer = excluded.answer
WHERE sessions.outcome IS NULL";

/// Writes `batch` in one transaction.
pub fn write_batch(conn: &mut Connection, batch: &[Arc<SessionRecord>]) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    {
        let mut upsert = tx.prepare_cached(UPSERT)?;
        for record in batch {
            super::rows::upsert(&mut upsert, record)?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Marks the sessions a crash left open as INTERRUPTED, ended at their last
/// event seen; returns how many there were.
pub fn recover(conn: &Connection) -> Result<usize, StoreError> {
    let last_us = "COALESCE(json_extract(phases, '$[#-1][1]'), 0)";
    let last = format!("({last_us} / 1000.0)");
    let sql = format!(
        "UPDATE sessions SET
            outcome = 'INTERRUPTED',
            error_code = 'interrupted',
            error = 'the daemon stopped before the session ended (a crash or a kill); it ended at its last event seen',
            duration_ms = {last},
            ended_at = received_at + CAST({last} AS INTEGER),
            attempts = COALESCE((SELECT max(json_extract(value, '$[2]')) FROM json_each(phases)), 0),
            phases = json_insert(phases, '$[#]', json_array('INTERRUPTED', {last_us}, 0,
                'the daemon stopped before the session ended'))
         WHERE outcome IS NULL"
    );
    Ok(conn.execute(&sql, [])?)
}

/// Sessions deleted per transaction, so pruning a large file never holds the
/// write lock for long (new batches are written between chunks).
const PRUNE_CHUNK: i64 = 5_000;

/// What one pruning step did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pruned {
    /// Sessions deleted by this pass, for the log line that says retention ran.
    pub removed: usize,
    /// Whether more are due (ask again).
    pub more: bool,
}

/// Deletes up to one chunk of the oldest finished sessions that are older
/// than `retention` or beyond the newest `max_sessions`, then gives freed
/// pages back to the file system.
pub fn prune(
    conn: &mut Connection,
    retention: Duration,
    max_sessions: u64,
    now: SystemTime,
) -> Result<Pruned, StoreError> {
    let oldest_kept = now
        .checked_sub(retention)
        .unwrap_or(UNIX_EPOCH)
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let by_age = id_bound(oldest_kept);
    let offset = i64::try_from(max_sessions).unwrap_or(i64::MAX);
    let by_count: Option<String> = conn
        .query_row(
            "SELECT id FROM sessions WHERE outcome IS NOT NULL ORDER BY id DESC LIMIT 1 OFFSET ?1",
            [offset - 1],
            |row| row.get(0),
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    // Delete ids below both bounds' maximum: older than the age cutoff, or
    // at or below the oldest of the newest `max_sessions`.
    let removed = conn.execute(
        "DELETE FROM sessions WHERE seq IN (
            SELECT seq FROM sessions
            WHERE outcome IS NOT NULL AND (id < ?1 OR (?2 IS NOT NULL AND id < ?2))
            ORDER BY id LIMIT ?3)",
        params![by_age, by_count, PRUNE_CHUNK],
    )?;
    if removed > 0 {
        conn.execute_batch("PRAGMA incremental_vacuum")?;
    }
    Ok(Pruned {
        removed,
        more: removed as i64 == PRUNE_CHUNK,
    })
}
