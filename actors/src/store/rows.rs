//! A [`SessionRecord`] to and from a `sessions` row.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Row, Statement, params};

use crate::ids::{RequestId, SessionId};
use crate::meta::{Peer, Priority};
use crate::outcome::{Exchange, Outcome};
use crate::phase::{EventView, Phase};
use crate::record::{EndRecord, SessionRecord};
use crate::usage::Usage;

/// The columns [`read`] expects, in order (`phases` last: lists leave it out).
pub const COLUMNS: &str = "id, request_id, requested_model, provider, model, uid, pid, process, \
    priority, stream, received_at, metadata, dropped_events, attempts, outcome, status, \
    error_code, error, queued_ms, ttft_ms, duration_ms, prompt_tokens, completion_tokens, \
    total_tokens, cached_tokens, reasoning_tokens, ended_at, prompt, answer";

/// Milliseconds since the Unix epoch.
pub fn unix_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn from_unix_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn count(n: Option<u64>) -> Option<i64> {
    n.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

/// The phases as `[[phase, elapsed_us, attempt, detail], …]`, written by
/// hand: phase names are fixed ASCII and numbers integers, so only the
/// detail needs JSON escaping (serde for a whole array was a tenth of a
/// row's cost).
fn phases_json(phases: &[EventView]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(24 + phases.len() * 40);
    out.push('[');
    for (i, event) in phases.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let micros = u64::try_from(event.elapsed.as_micros()).unwrap_or(u64::MAX);
        let _ = write!(out, "[\"{}\",{micros},{},", event.phase, event.attempt);
        match &event.detail {
            Some(detail) => {
                out.push_str(&serde_json::to_string(&**detail).unwrap_or_else(|_| "null".into()))
            }
            None => out.push_str("null"),
        }
        out.push(']');
    }
    out.push(']');
    out
}

/// Runs the upsert statement (see `write.rs`) for `record`.
pub fn upsert(statement: &mut Statement<'_>, record: &SessionRecord) -> rusqlite::Result<usize> {
    let peer = record.peer.as_ref();
    let end = record.end.as_deref();
    let usage = end.map(|e| e.usage).unwrap_or_default();
    let exchange = end.and_then(|e| e.exchange.as_deref());
    let attempts = end.map_or_else(
        || record.phases.iter().map(|e| e.attempt).max().unwrap_or(0),
        |e| e.attempts,
    );
    statement.execute(params![
        record.id.to_string(),
        record.request_id.as_str(),
        &*record.requested,
        record.provider.as_deref(),
        record.model.as_deref(),
        peer.map(|p| p.uid),
        peer.and_then(|p| p.pid),
        peer.and_then(|p| p.process.as_deref()),
        record.priority.as_str(),
        record.stream,
        unix_ms(record.received_at),
        record.metadata.as_deref(),
        phases_json(&record.phases),
        record.dropped_events,
        attempts,
        end.map(|e| e.outcome.as_str()),
        end.map(|e| e.status),
        end.and_then(|e| e.error_code.as_deref()),
        end.and_then(|e| e.error.as_deref()),
        end.map(|e| e.queued_ms),
        end.and_then(|e| e.ttft_ms),
        end.map(|e| e.duration_ms),
        count(usage.prompt_tokens),
        count(usage.completion_tokens),
        count(usage.total_tokens),
        count(usage.cached_tokens),
        count(usage.reasoning_tokens),
        end.map(|e| unix_ms(e.ended_at)),
        exchange.and_then(|x| x.prompt.as_deref()),
        exchange.and_then(|x| x.answer.as_deref()),
    ])
}

/// A stored phase name as the daemon spells it (stored text is trusted no
/// further than that).
fn phase_name(text: &str) -> &'static str {
    match Phase::parse(text) {
        Some(phase) => phase.as_str(),
        None if text == Outcome::Interrupted.as_str() => Outcome::Interrupted.as_str(),
        None => "UNKNOWN",
    }
}

/// Reads the `phases` JSON of a session received at `received`.
fn read_phases(json: &str, received: SystemTime) -> Vec<EventView> {
    let rows: Vec<(String, u64, u32, Option<String>)> =
        serde_json::from_str(json).unwrap_or_default();
    rows.into_iter()
        .map(|(phase, elapsed_us, attempt, detail)| {
            let elapsed = Duration::from_micros(elapsed_us);
            EventView {
                phase: phase_name(&phase),
                wall: received + elapsed,
                elapsed,
                attempt,
                detail: detail.map(Arc::from),
            }
        })
        .collect()
}

fn text(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<Arc<str>>> {
    Ok(row.get::<_, Option<String>>(index)?.map(Arc::from))
}

fn tokens(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<u64>> {
    Ok(row
        .get::<_, Option<i64>>(index)?
        .and_then(|n| u64::try_from(n).ok()))
}

/// A row selected with [`COLUMNS`] (and `phases` after them, when
/// `with_phases`) as a record.
pub fn read(row: &Row<'_>, with_phases: bool) -> rusqlite::Result<SessionRecord> {
    let id: String = row.get(0)?;
    let received_at = from_unix_ms(row.get(10)?);
    let peer = row
        .get::<_, Option<u32>>(5)?
        .map(|uid| -> rusqlite::Result<Peer> {
            Ok(Peer {
                uid,
                pid: row.get(6)?,
                process: text(row, 7)?,
            })
        });
    let phases = match with_phases {
        true => read_phases(&row.get::<_, String>(29)?, received_at),
        false => Vec::new(),
    };
    Ok(SessionRecord {
        id: SessionId::parse(&id).unwrap_or_default(),
        request_id: RequestId::from_stored(&row.get::<_, String>(1)?),
        requested: row.get::<_, String>(2)?.into(),
        provider: text(row, 3)?,
        model: text(row, 4)?,
        peer: peer.transpose()?,
        priority: Priority::parse(&row.get::<_, String>(8)?).unwrap_or_default(),
        stream: row.get(9)?,
        received_at,
        metadata: text(row, 11)?,
        dropped_events: row.get(12)?,
        end: read_end(row)?.map(Arc::new),
        phases,
    })
}

fn read_end(row: &Row<'_>) -> rusqlite::Result<Option<EndRecord>> {
    let Some(outcome) = row
        .get::<_, Option<String>>(14)?
        .and_then(|o| Outcome::parse(&o))
    else {
        return Ok(None);
    };
    let (prompt, answer): (Option<String>, Option<String>) = (row.get(27)?, row.get(28)?);
    let exchange =
        (prompt.is_some() || answer.is_some()).then(|| Arc::new(Exchange { prompt, answer }));
    Ok(Some(EndRecord {
        outcome,
        status: row.get::<_, Option<u16>>(15)?.unwrap_or(0),
        error_code: text(row, 16)?,
        error: text(row, 17)?,
        attempts: row.get(13)?,
        queued_ms: row.get::<_, Option<f64>>(18)?.unwrap_or(0.0),
        ttft_ms: row.get(19)?,
        duration_ms: row.get::<_, Option<f64>>(20)?.unwrap_or(0.0),
        usage: Usage {
            prompt_tokens: tokens(row, 21)?,
            completion_tokens: tokens(row, 22)?,
            total_tokens: tokens(row, 23)?,
            cached_tokens: tokens(row, 24)?,
            reasoning_tokens: tokens(row, 25)?,
        },
        ended_at: from_unix_ms(row.get::<_, Option<i64>>(26)?.unwrap_or(0)),
        exchange,
    }))
}
