//! The operator commands (`sessions`, `session`, `cancel`, `drain`) over the
//! daemon's `/admin` endpoints, and the plain-text tables they print.

use anyhow::anyhow;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::{Answer, Daemon, print_line, print_pretty, text};
use crate::cli::ClientArgs;

/// `switchboard sessions`: the live sessions as a table.
pub async fn sessions(args: &ClientArgs) -> anyhow::Result<()> {
    let daemon = Daemon::new(args)?;
    let answer = daemon
        .json(daemon.request(Method::GET, "/admin/sessions"))
        .await?;
    if args.json {
        return print_pretty(&answer);
    }
    let sessions = answer
        .get("sessions")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("the daemon's answer has no sessions list"))?;
    if sessions.is_empty() {
        return print_line("No live sessions.");
    }
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|session| {
            vec![
                text(session, "id"),
                route(session),
                text(session, "phase"),
                age(session),
                yes_no(session, "stream"),
                client(session),
            ]
        })
        .collect();
    use Align::{Left, Right};
    let columns = [
        ("ID", Left),
        ("PROVIDER/MODEL", Left),
        ("PHASE", Left),
        ("AGE", Right),
        ("STREAM", Left),
        ("CLIENT", Left),
    ];
    print_line(table(&columns, &rows).trim_end())
}

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

/// `switchboard cancel ID`: cancels a live session.
pub async fn cancel(id: &str, args: &ClientArgs) -> anyhow::Result<()> {
    let daemon = Daemon::new(args)?;
    let request = daemon.session_request(Method::DELETE, id)?;
    let answer = match daemon.json(request).await {
        Ok(answer) => answer,
        Err(Answer::Status(StatusCode::NOT_FOUND, _)) => {
            return Err(anyhow!("no live session {id}"));
        }
        Err(other) => return Err(other.into()),
    };
    if args.json {
        return print_pretty(&answer);
    }
    let shown = answer.get("id").and_then(Value::as_str).unwrap_or(id);
    print_line(&format!("cancelled {shown}"))
}

/// `switchboard drain`: asks the daemon to drain and exit.
pub async fn drain(args: &ClientArgs) -> anyhow::Result<()> {
    let daemon = Daemon::new(args)?;
    let answer = daemon
        .json(daemon.request(Method::POST, "/admin/drain"))
        .await?;
    if args.json {
        return print_pretty(&answer);
    }
    if answer.get("began").and_then(Value::as_bool) == Some(false) {
        print_line("already draining")
    } else {
        print_line(
            "draining: the daemon stops taking requests, lets live sessions finish, then exits",
        )
    }
}

/// The header block and phase table of `switchboard session`.
fn detail(session: &Value) -> String {
    let live = session.get("live").and_then(Value::as_bool) == Some(true);
    let fields = [
        ("id", text(session, "id")),
        ("request id", text(session, "request_id")),
        ("provider/model", route(session)),
        ("phase", text(session, "phase")),
        (if live { "age" } else { "duration" }, age(session)),
        ("stream", yes_no(session, "stream")),
        ("live", yes_no(session, "live")),
        ("received at", text(session, "received_at")),
        ("client", client(session)),
    ];
    let width = fields
        .iter()
        .map(|(label, _)| label.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (label, value) in fields {
        out.push_str(&format!("{label:<width$}  {value}\n"));
    }
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
    out.push('\n');
    out.push_str(&table(&columns, &rows));
    let dropped = session
        .get("dropped_events")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if dropped > 0 {
        out.push_str(&format!("({dropped} earlier phase events were dropped)\n"));
    }
    out
}

/// `provider/model`.
fn route(session: &Value) -> String {
    format!("{}/{}", text(session, "provider"), text(session, "model"))
}

/// `age_ms` in [`format_age`]'s form.
fn age(session: &Value) -> String {
    match session.get("age_ms").and_then(Value::as_f64) {
        // Whole milliseconds are all a human needs here.
        Some(ms) if ms >= 0.0 => format_age(ms as u64),
        _ => "-".to_owned(),
    }
}

/// A boolean field as `yes`/`no`.
fn yes_no(value: &Value, key: &str) -> String {
    match value.get(key).and_then(Value::as_bool) {
        Some(true) => "yes".to_owned(),
        Some(false) => "no".to_owned(),
        None => "-".to_owned(),
    }
}

/// The caller as `uid:pid` (`-` for what is unknown).
fn client(session: &Value) -> String {
    match session.get("client") {
        Some(peer) if peer.is_object() => format!("{}:{}", text(peer, "uid"), text(peer, "pid")),
        _ => "-".to_owned(),
    }
}

/// A duration for people: `850ms`, `12.3s`, `4m05s`, `2h03m` (truncated,
/// never rounded up into the next unit).
fn format_age(ms: u64) -> String {
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    if ms < 60_000 {
        let tenths = ms / 100;
        return format!("{}.{}s", tenths / 10, tenths % 10);
    }
    let secs = ms / 1_000;
    if secs < 3_600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3_600, secs % 3_600 / 60)
    }
}

/// A phase's time since the request arrived: `+12.345 ms`.
fn format_elapsed(ms: f64) -> String {
    format!("+{ms:.3} ms")
}

/// How a column's cells line up.
#[derive(Clone, Copy, Debug)]
enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A table: a header row, then `rows`, each column as wide as its widest
/// cell, two spaces between columns, no trailing spaces; each line ends in
/// `\n`.
fn table(columns: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = columns.iter().map(|(h, _)| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = columns.iter().map(|(h, _)| (*h).to_owned()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(columns.iter().zip(&widths))
            .map(|(cell, ((_, align), &width))| match align {
                Align::Left => format!("{cell:<width$}"),
                Align::Right => format!("{cell:>width$}"),
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ages_read_naturally() {
        assert_eq!(format_age(0), "0ms");
        assert_eq!(format_age(850), "850ms");
        assert_eq!(format_age(999), "999ms");
        assert_eq!(format_age(1_000), "1.0s");
        assert_eq!(format_age(12_345), "12.3s");
        assert_eq!(format_age(59_999), "59.9s");
        assert_eq!(format_age(60_000), "1m00s");
        assert_eq!(format_age(245_000), "4m05s");
        assert_eq!(format_age(3_599_999), "59m59s");
        assert_eq!(format_age(3_600_000), "1h00m");
        assert_eq!(format_age(7_380_000), "2h03m");
    }

    #[test]
    fn elapsed_has_three_decimals() {
        assert_eq!(format_elapsed(12.345), "+12.345 ms");
        assert_eq!(format_elapsed(0.0), "+0.000 ms");
        assert_eq!(format_elapsed(200.5), "+200.500 ms");
    }

    #[test]
    fn table_columns_fit_their_widest_cell() {
        let rows = vec![
            vec!["a".to_owned(), "5".to_owned(), "x".to_owned()],
            vec!["longer".to_owned(), "1234".to_owned(), String::new()],
        ];
        let columns = [
            ("ID", Align::Left),
            ("N", Align::Right),
            ("NOTE", Align::Left),
        ];
        assert_eq!(
            table(&columns, &rows),
            "ID         N  NOTE\n\
             a          5  x\n\
             longer  1234\n"
        );
    }

    #[test]
    fn sessions_rows_show_route_age_and_client() {
        let session = json!({
            "id": "s1", "provider": "mock", "model": "echo", "phase": "QUEUED",
            "age_ms": 12_345, "stream": true, "client": {"uid": 1000, "pid": 42},
        });
        assert_eq!(route(&session), "mock/echo");
        assert_eq!(age(&session), "12.3s");
        assert_eq!(yes_no(&session, "stream"), "yes");
        assert_eq!(client(&session), "1000:42");
        assert_eq!(client(&json!({"client": {"uid": 7, "pid": null}})), "7:-");
        assert_eq!(client(&json!({"client": null})), "-");
    }

    #[test]
    fn detail_has_a_header_block_and_a_phase_table() {
        let session = json!({
            "id": "s1", "request_id": "r1", "provider": "mock", "model": "echo",
            "phase": "COMPLETED", "age_ms": 203, "stream": false, "client": null,
            "live": false, "received_at": "2025-01-01T00:00:00.000Z",
            "phases": [
                {"phase": "RECEIVED", "at": "…", "elapsed_ms": 0.0, "attempt": 0, "detail": null},
                {"phase": "PROVIDER_CALL_END", "at": "…", "elapsed_ms": 203.25, "attempt": 1, "detail": "ok"},
            ],
            "dropped_events": 2,
        });
        let expected = [
            "id              s1",
            "request id      r1",
            "provider/model  mock/echo",
            "phase           COMPLETED",
            "duration        203ms",
            "stream          no",
            "live            no",
            "received at     2025-01-01T00:00:00.000Z",
            "client          -",
            "",
            "    ELAPSED  PHASE              ATTEMPT  DETAIL",
            "  +0.000 ms  RECEIVED                 0  -",
            "+203.250 ms  PROVIDER_CALL_END        1  ok",
            "(2 earlier phase events were dropped)",
            "",
        ];
        assert_eq!(detail(&session), expected.join("\n"));
    }
}
