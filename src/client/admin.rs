//! The operator commands `sessions`, `cancel` and `drain` over the daemon's
//! `/admin` endpoints, and `metrics`, which prints the daemon's scrape.
//! `top` cancels through [`cancel_session`] too.

use std::io::Write;

use anyhow::{Context, anyhow};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::table::{Align, age, client, route, table, yes_no};
use super::{Answer, Daemon, print_line, print_pretty, text};
use crate::cli::{ClientArgs, MetricsArgs};

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
    print_line(sessions_table(sessions).trim_end())
}

/// The live sessions table: one row per session, oldest first.
fn sessions_table(sessions: &[Value]) -> String {
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
    table(&columns, &rows)
}

/// `switchboard cancel ID`: cancels a live session.
pub async fn cancel(id: &str, args: &ClientArgs) -> anyhow::Result<()> {
    let daemon = Daemon::new(args)?;
    let answer = cancel_session(&daemon, id).await?;
    if args.json {
        return print_pretty(&answer);
    }
    let shown = answer.get("id").and_then(Value::as_str).unwrap_or(id);
    print_line(&format!("cancelled {shown}"))
}

/// Cancels a live session (`DELETE /admin/sessions/{id}`), as `cancel`
/// and `top`'s `c` key do; the daemon's answer, or "no live session".
pub(crate) async fn cancel_session(daemon: &Daemon, id: &str) -> anyhow::Result<Value> {
    let request = daemon.session_request(Method::DELETE, id)?;
    match daemon.json(request).await {
        Ok(answer) => Ok(answer),
        Err(Answer::Status(StatusCode::NOT_FOUND, _)) => Err(anyhow!("no live session {id}")),
        Err(other) => Err(other.into()),
    }
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

/// `switchboard reload`: asks the daemon to re-read its settings; prints
/// the keys applied and those that need a restart (the daemon's refusal,
/// naming the key, is the command's error).
pub async fn reload(args: &ClientArgs) -> anyhow::Result<()> {
    let daemon = Daemon::new(args)?;
    let answer = daemon
        .json(daemon.request(Method::POST, "/admin/reload"))
        .await?;
    if args.json {
        return print_pretty(&answer);
    }
    let keys = |field: &str| -> Vec<String> {
        let listed = answer.get(field).and_then(Value::as_array);
        let names = listed.into_iter().flatten().filter_map(Value::as_str);
        names.map(str::to_owned).collect()
    };
    let (changed, restart) = (keys("changed"), keys("needs_restart"));
    let mut text = match changed.is_empty() {
        true => "reloaded: nothing changed".to_owned(),
        false => format!(
            "reloaded: {} changed\n  {}",
            changed.len(),
            changed.join("\n  ")
        ),
    };
    if !restart.is_empty() {
        let listed = restart.join("\n  ");
        text.push_str(&format!("\nneeds a restart to take effect:\n  {listed}"));
    }
    print_line(&text)
}

/// `switchboard metrics`: the daemon's `/metrics` text, as it is.
pub async fn metrics(args: &MetricsArgs) -> anyhow::Result<()> {
    let daemon = Daemon::at(args.socket.as_deref())?;
    let body = daemon.body(daemon.request(Method::GET, "/metrics")).await?;
    let mut out = std::io::stdout().lock();
    out.write_all(&body)
        .and_then(|()| out.flush())
        .context("could not write to stdout")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_sessions_table_has_one_row_per_live_session() {
        let sessions = [
            json!({"id": "s1", "provider": "mock", "model": "echo", "phase": "QUEUED",
                   "age_ms": 12_345, "stream": true, "client": {"uid": 1000, "pid": 42}}),
            json!({"id": "s2", "provider": "fake", "model": "instant", "phase": "FIRST_TOKEN",
                   "age_ms": 80, "stream": false, "client": null}),
        ];
        let expected = [
            "ID  PROVIDER/MODEL  PHASE          AGE  STREAM  CLIENT",
            "s1  mock/echo       QUEUED       12.3s  yes     1000:42",
            "s2  fake/instant    FIRST_TOKEN   80ms  no      -",
            "",
        ];
        assert_eq!(sessions_table(&sessions), expected.join("\n"));
    }
}
