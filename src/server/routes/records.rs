//! Sessions as admin answers show them, the same for one still in memory and
//! one read back from the history file.

use std::time::SystemTime;

use serde_json::{Value, json};
use switchboard_actors::meta::duration_ms;
use switchboard_actors::phase::EventView;
use switchboard_actors::record::SessionRecord;
use switchboard_actors::usage::Usage;

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

fn usage(usage: &Usage) -> Value {
    json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total(),
        "cached_tokens": usage.cached_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    })
}

fn phase(event: &EventView) -> Value {
    json!({
        "phase": event.phase,
        "at": rfc3339(event.wall),
        "elapsed_ms": (event.elapsed.as_secs_f64() * 1e6).round() / 1e3,
        "attempt": event.attempt,
        "detail": event.detail.as_deref(),
    })
}

/// A session's row: identity, route, caller, outcome, timings, usage.
pub fn record(record: &SessionRecord) -> Value {
    let metadata: Option<Value> = record
        .metadata
        .as_deref()
        .and_then(|raw| serde_json::from_str(raw).ok());
    let end = record.end.as_deref();
    let mut value = json!({
        "id": record.id,
        "request_id": record.request_id,
        "requested_model": &*record.requested,
        "provider": record.provider.as_deref(),
        "model": record.model.as_deref(),
        "phase": record.phase(),
        "priority": record.priority,
        "stream": record.stream,
        "client": record.peer,
        "metadata": metadata,
        "received_at": rfc3339(record.received_at),
        "outcome": end.map(|e| e.outcome),
        "status": end.map(|e| e.status),
        "error_code": end.and_then(|e| e.error_code.as_deref()),
        "error": end.and_then(|e| e.error.as_deref()),
        "attempts": end.map(|e| e.attempts),
        "queued_ms": end.map(|e| e.queued_ms),
        "ttft_ms": end.and_then(|e| e.ttft_ms),
        "duration_ms": end.map(|e| e.duration_ms),
        "usage": end.map(|e| usage(&e.usage)),
        "ended_at": end.map(|e| rfc3339(e.ended_at)),
    });
    if let Some(exchange) = end.and_then(|e| e.exchange.as_deref()) {
        value["prompt"] = json!(exchange.prompt);
        value["answer"] = json!(exchange.answer);
    }
    value
}

/// A session with its phases, as `GET /admin/sessions/{id}` shows it;
/// `age_ms` is the time since arrival while live, its duration once ended.
pub fn detail(session: &SessionRecord, live: bool, age_ms: Option<u64>) -> Value {
    let mut value = record(session);
    value["live"] = json!(live);
    let ended_age = session
        .end
        .as_ref()
        .map(|e| e.duration_ms.round() as u64)
        .or_else(|| session.phases.last().map(|e| duration_ms(e.elapsed)));
    value["age_ms"] = json!(if live { age_ms } else { ended_age });
    value["phases"] = session.phases.iter().map(phase).collect();
    value["dropped_events"] = json!(session.dropped_events);
    value
}
