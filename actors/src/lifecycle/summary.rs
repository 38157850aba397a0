//! A session's progress turned into what history and metrics keep of it:
//! its record (open while it runs, whole once it ends) and its end summary.

use std::sync::Arc;

use crate::error::GatewayError;
use crate::meta::{Route, SessionMeta};
use crate::metrics::Ended;
use crate::outcome::{Ending, Outcome};
use crate::phase::{EventView, PhaseEvent};
use crate::record::{EndRecord, SessionRecord};

use super::progress::Progress;

/// Maps an error to the HTTP status and error code the client saw. Given by
/// the daemon, which owns the one mapping from errors to the wire, so the
/// actors never decide a status themselves.
pub type Classify = fn(&GatewayError) -> (u16, &'static str);

fn ms(duration: std::time::Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

/// The end summary of a session whose terminal event is `event`.
pub fn end_record(
    progress: &Progress,
    event: &PhaseEvent,
    ending: &Ending,
    classify: Classify,
) -> EndRecord {
    let marks = &progress.marks;
    let received = event.meta.received_at;
    let wire = ending.error.as_ref().map(classify);
    let status = match (ending.answered, wire) {
        (false, Some((status, _))) => status,
        _ => 200,
    };
    EndRecord {
        outcome: Outcome::of_phase(event.phase).unwrap_or(Outcome::Error),
        status,
        error_code: wire.map(|(_, code)| Arc::from(code)),
        error: event.detail.clone(),
        attempts: progress.attempts,
        queued_ms: ms(marks.queued),
        ttft_ms: marks
            .first_token
            .map(|at| ms(at.saturating_duration_since(received))),
        duration_ms: ms(event.elapsed()),
        usage: ending.usage,
        ended_at: event.wall(),
        exchange: ending.exchange.clone(),
    }
}

/// The record of a session with these events so far.
pub fn record(
    meta: &SessionMeta,
    route: &Route,
    events: Vec<EventView>,
    dropped_events: u32,
    end: Option<Arc<EndRecord>>,
) -> SessionRecord {
    let routed = !route.provider.is_empty();
    SessionRecord {
        id: meta.id,
        request_id: meta.request_id.clone(),
        requested: meta.requested.clone(),
        provider: routed.then(|| route.provider.clone()),
        model: routed.then(|| route.model.clone()),
        peer: meta.peer.clone(),
        priority: meta.priority,
        stream: meta.stream,
        received_at: meta.received_wall,
        metadata: meta.metadata.clone(),
        phases: events,
        dropped_events,
        end,
    }
}

/// What the metrics count of an ended session.
pub fn ended<'a>(
    record: &'a SessionRecord,
    progress: &'a Progress,
    end: &'a EndRecord,
    event: &'a PhaseEvent,
    ending: &'a Ending,
) -> Ended<'a> {
    let marks = &progress.marks;
    let received = event.meta.received_at;
    Ended {
        provider: record.provider.as_ref(),
        request_model: progress.first_model.as_ref().or(record.model.as_ref()),
        response_model: record.model.as_ref(),
        outcome: end.outcome,
        error: ending.error.as_ref(),
        error_code: end.error_code.as_deref(),
        duration: event.elapsed(),
        usage: end.usage,
        first_token: marks
            .first_token
            .map(|at| at.saturating_duration_since(received)),
        queued: marks.ever_queued.then_some(marks.queued),
        overhead: marks.overhead(received, event.at),
    }
}
