//! `switchboard session ID`: one session, live or finished: a block of
//! `label  value` lines (with the stored outcome, timings and token usage
//! once it has ended), then its phases as a table.

use anyhow::anyhow;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::table::{Align, age, client, fields, ms_field, route, table, yes_no};
use super::{Answer, Daemon, print_line, print_pretty, text};
use crate::cli::ClientArgs;

/// `switchboard session ID`: one session and its phases.
pub async fn session(id: &str, args: &ClientArgs) -> anyhow::Result<()> {
    let daemon = Daemon::new(args)?;
    let request = daemon.session_request(Method::GET, id)?;
    let session = match daemon.json(request).await {
        Ok(session) => session,
        Err(Answer::Status(StatusCode::NOT_FOUND, _)) => return Err(anyhow!("no session {id}")),
        Err(other) => return Err(other.into()),
    };
    if args.json {
        return print_pretty(&session);
    }
    print_line(detail(&session).trim_end())
}

/// The header block and phase table of `switchboard session`.
pub fn detail(session: &Value) -> String {
    let mut out = fields(&header(session));
    out.push('\n');
    out.push_str(&phases(session));
    let dropped = session
        .get("dropped_events")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if dropped > 0 {
        out.push_str(&format!("({dropped} earlier phase events were dropped)\n"));
    }
    out
}

/// The `label  value` lines: identity and route, then how it ended and its
/// timings (each only when the session has it), then caller and times.
fn header(session: &Value) -> Vec<(&'static str, String)> {
    let live = session.get("live").and_then(Value::as_bool) == Some(true);
    let duration = ms_field(session, "duration_ms").filter(|_| !live);
    let lines = [
        ("id", Some(text(session, "id"))),
        ("request id", Some(text(session, "request_id"))),
        ("provider/model", Some(route(session))),
        ("phase", Some(text(session, "phase"))),
        ("outcome", present(session, "outcome")),
        ("status", present(session, "status")),
        ("error code", present(session, "error_code")),
        ("error", present(session, "error")),
        ("attempts", present(session, "attempts")),
        (
            if live { "age" } else { "duration" },
            Some(duration.unwrap_or_else(|| age(session))),
        ),
        ("queue wait", ms_field(session, "queued_ms")),
        ("first token", ms_field(session, "ttft_ms")),
        ("tokens", tokens(session)),
        ("stream", Some(yes_no(session, "stream"))),
        ("live", Some(yes_no(session, "live"))),
        ("received at", Some(text(session, "received_at"))),
        ("ended at", present(session, "ended_at")),
        ("client", Some(client(session))),
        (
            "process",
            session.get("client").and_then(|c| present(c, "process")),
        ),
    ];
    lines
        .into_iter()
        .filter_map(|(label, value)| Some((label, value?)))
        .collect()
}

/// A field as display text, or `None` when it is missing or `null`.
fn present(value: &Value, key: &str) -> Option<String> {
    match value.get(key) {
        None | Some(Value::Null) => None,
        Some(_) => Some(text(value, key)),
    }
}

/// `12 prompt, 30 completion, 42 total`, or `None` when the provider
/// reported none of them.
fn tokens(session: &Value) -> Option<String> {
    let usage = session.get("usage")?;
    let counts = ["prompt_tokens", "completion_tokens", "total_tokens"];
    if counts.iter().all(|key| present(usage, key).is_none()) {
        return None;
    }
    Some(format!(
        "{} prompt, {} completion, {} total",
        text(usage, counts[0]),
        text(usage, counts[1]),
        text(usage, counts[2]),
    ))
}

/// The phases as a table: elapsed time, phase, attempt, detail.
fn phases(session: &Value) -> String {
    let phases = session
        .get("phases")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let rows: Vec<Vec<String>> = phases
        .iter()
        .map(|phase| {
            let elapsed = phase
                .get("elapsed_ms")
                .and_then(Value::as_f64)
                .map_or_else(|| "-".to_owned(), format_elapsed);
            vec![
                elapsed,
                text(phase, "phase"),
                text(phase, "attempt"),
                text(phase, "detail"),
            ]
        })
        .collect();
    use Align::{Left, Right};
    let columns = [
        ("ELAPSED", Right),
        ("PHASE", Left),
        ("ATTEMPT", Right),
        ("DETAIL", Left),
    ];
    table(&columns, &rows)
}

/// A phase's time since the request arrived: `+12.345 ms`.
fn format_elapsed(ms: f64) -> String {
    format!("+{ms:.3} ms")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn elapsed_has_three_decimals() {
        assert_eq!(format_elapsed(12.345), "+12.345 ms");
        assert_eq!(format_elapsed(0.0), "+0.000 ms");
        assert_eq!(format_elapsed(200.5), "+200.500 ms");
    }

    #[test]
    fn a_live_session_has_a_header_block_and_a_phase_table() {
        let session = json!({
            "id": "s1", "request_id": "r1", "provider": "mock", "model": "echo",
            "phase": "FIRST_TOKEN", "age_ms": 203, "stream": true, "client": null,
            "live": true, "received_at": "2025-01-01T00:00:00.000Z",
            "outcome": null, "status": null, "duration_ms": null, "usage": null,
            "phases": [
                {"phase": "RECEIVED", "at": "…", "elapsed_ms": 0.0, "attempt": 0, "detail": null},
                {"phase": "FIRST_TOKEN", "at": "…", "elapsed_ms": 203.25, "attempt": 1, "detail": null},
            ],
            "dropped_events": 2,
        });
        let expected = [
            "id              s1",
            "request id      r1",
            "provider/model  mock/echo",
            "phase           FIRST_TOKEN",
            "age             203ms",
            "stream          yes",
            "live            yes",
            "received at     2025-01-01T00:00:00.000Z",
            "client          -",
            "",
            "    ELAPSED  PHASE        ATTEMPT  DETAIL",
            "  +0.000 ms  RECEIVED           0  -",
            "+203.250 ms  FIRST_TOKEN        1  -",
            "(2 earlier phase events were dropped)",
            "",
        ];
        assert_eq!(detail(&session), expected.join("\n"));
    }

    #[test]
    fn a_finished_session_shows_how_it_ended_its_timings_and_tokens() {
        let session = json!({
            "id": "s2", "request_id": "r2", "provider": "fake", "model": "status-500",
            "phase": "ERROR", "age_ms": 12, "stream": false, "live": false,
            "client": {"uid": 1000, "pid": 42, "process": "curl"},
            "received_at": "2025-01-01T00:00:00.000Z", "ended_at": "2025-01-01T00:00:00.012Z",
            "outcome": "ERROR", "status": 502, "error_code": "provider_error",
            "error": "upstream answered 500", "attempts": 1, "queued_ms": 0.0,
            "ttft_ms": null, "duration_ms": 12.3456,
            "usage": {"prompt_tokens": 9, "completion_tokens": null, "total_tokens": 9},
            "phases": [], "dropped_events": 0,
        });
        let expected = [
            "id              s2",
            "request id      r2",
            "provider/model  fake/status-500",
            "phase           ERROR",
            "outcome         ERROR",
            "status          502",
            "error code      provider_error",
            "error           upstream answered 500",
            "attempts        1",
            "duration        12.346 ms",
            "queue wait      0.000 ms",
            "tokens          9 prompt, - completion, 9 total",
            "stream          no",
            "live            no",
            "received at     2025-01-01T00:00:00.000Z",
            "ended at        2025-01-01T00:00:00.012Z",
            "client          1000:42",
            "process         curl",
            "",
            "ELAPSED  PHASE  ATTEMPT  DETAIL",
            "",
        ];
        assert_eq!(detail(&session), expected.join("\n"));
    }

    #[test]
    fn no_reported_tokens_means_no_tokens_line() {
        let none = json!({"usage": {"prompt_tokens": null, "completion_tokens": null}});
        assert_eq!(tokens(&none), None);
        assert_eq!(tokens(&json!({"usage": null})), None);
    }
}
