//! `switchboard events`: phase events as they happen (`GET /admin/events`,
//! server-sent events read as they arrive), one line each, like
//! `docker events`; with `--json`, each event's JSON as the daemon sent it.
//!
//! It runs until Ctrl-C or the daemon ends the stream (both exit 0). A
//! stream the daemon ended with `event: dropped` (this reader fell behind)
//! is an error: its reason goes to stderr and the exit status is non-zero.

use std::io::{ErrorKind, Write};

use anyhow::{Context, anyhow, bail};
use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::signal::unix::{SignalKind, signal};

use super::{Daemon, text};
use crate::cli::EventsArgs;

/// The widest phase name, so that the columns after it line up.
const PHASE_WIDTH: usize = "PROVIDER_CALL_START".len();

/// `switchboard events`: follows the daemon's phase events.
pub async fn run(args: &EventsArgs) -> anyhow::Result<()> {
    // Listen for Ctrl-C before anything can arrive, so it always exits 0.
    let mut interrupt = signal(SignalKind::interrupt()).context("could not catch Ctrl-C")?;
    let daemon = Daemon::new(&args.client)?;
    let query = [
        ("session", args.session.clone()),
        ("provider", args.provider.clone()),
        ("phase", args.phase.clone()),
    ];
    let response = daemon
        .open(daemon.get_with("/admin/events", &query)?)
        .await?;
    let mut events = response.bytes_stream().eventsource();
    loop {
        let next = tokio::select! {
            next = events.next() => next,
            _ = interrupt.recv() => return Ok(()),
        };
        let event = match next {
            None => return Ok(()),
            Some(Ok(event)) => event,
            Some(Err(EventStreamError::Transport(err))) => {
                return Err(daemon.explain(&err)).context("the event stream broke off");
            }
            Some(Err(err)) => bail!("the event stream broke off: {err}"),
        };
        match shown(&event, args.client.json) {
            Shown::Line(line) if !emit(&line)? => return Ok(()),
            Shown::Line(_) => {}
            Shown::Dropped(reason) => bail!("the daemon dropped this event reader: {reason}"),
        }
    }
}

/// What one server-sent event comes to.
#[derive(Debug, PartialEq)]
enum Shown {
    /// A line for stdout.
    Line(String),
    /// The stream's last event: the daemon let this reader go, for this reason.
    Dropped(String),
}

/// The line for `event`, or why the stream ends.
fn shown(event: &Event, json: bool) -> Shown {
    let value: Option<Value> = serde_json::from_str(&event.data).ok();
    if event.event == "dropped" {
        let reason = value.as_ref().and_then(|v| v.get("reason")?.as_str());
        return Shown::Dropped(reason.unwrap_or(&event.data).to_owned());
    }
    match value {
        Some(value) if !json => Shown::Line(line(&value)),
        _ => Shown::Line(event.data.clone()),
    }
}

/// `<at>  <session>  <provider>/<model>  <PHASE>  attempt <n>  <detail>`
/// (the detail only when there is one). An unrouted session's event has
/// no provider: the model as requested is shown instead.
fn line(event: &Value) -> String {
    let provider = event.get("provider").and_then(Value::as_str);
    let route = match provider.filter(|p| !p.is_empty()) {
        Some(provider) => format!("{provider}/{}", text(event, "model")),
        None => text(event, "requested_model"),
    };
    let mut line = format!(
        "{}  {}  {route}  {:<PHASE_WIDTH$}  attempt {}",
        text(event, "at"),
        text(event, "session"),
        text(event, "phase"),
        text(event, "attempt"),
    );
    if let Some(detail) = event.get("detail").and_then(Value::as_str) {
        line.push_str("  ");
        line.push_str(detail);
    }
    line
}

/// Writes a line to stdout at once; `false` when stdout was closed (as by
/// `| head`), which ends the command quietly.
fn emit(line: &str) -> anyhow::Result<bool> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == ErrorKind::BrokenPipe => Ok(false),
        Err(err) => Err(anyhow!(err).context("could not write to stdout")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, data: &str) -> Event {
        Event {
            event: name.to_owned(),
            data: data.to_owned(),
            ..Event::default()
        }
    }

    const START: &str = r#"{"session":"0197a1b2-0002-7000-8000-000000000002","request_id":"r1","phase":"PROVIDER_CALL_START","at":"2026-12-01T10:00:01.250Z","elapsed_ms":0.8,"attempt":1,"detail":"fake/instant","provider":"fake","model":"instant"}"#;

    #[test]
    fn an_event_is_one_line_like_docker_events() {
        assert_eq!(
            shown(&event("message", START), false),
            Shown::Line(
                "2026-12-01T10:00:01.250Z  0197a1b2-0002-7000-8000-000000000002  fake/instant  \
                 PROVIDER_CALL_START  attempt 1  fake/instant"
                    .to_owned()
            )
        );
        let unrouted = r#"{"session":"s1","phase":"REJECTED","at":"t","attempt":0,"detail":null,"requested_model":"nope/x","provider":null,"model":null}"#;
        assert_eq!(
            shown(&event("message", unrouted), false),
            Shown::Line("t  s1  nope/x  REJECTED             attempt 0".to_owned())
        );
        let unknown = r#"{"session":"s1","phase":"RECEIVED","at":"t","attempt":0,"provider":null,"model":null}"#;
        assert_eq!(
            shown(&event("message", unknown), false),
            Shown::Line("t  s1  -  RECEIVED             attempt 0".to_owned())
        );
    }

    #[test]
    fn json_lines_are_the_daemons_own() {
        assert_eq!(
            shown(&event("message", START), true),
            Shown::Line(START.to_owned())
        );
    }

    #[test]
    fn a_dropped_event_ends_the_stream_with_its_reason() {
        let dropped = event("dropped", r#"{"reason":"this reader fell behind"}"#);
        assert_eq!(
            shown(&dropped, false),
            Shown::Dropped("this reader fell behind".to_owned())
        );
        assert_eq!(
            shown(&event("dropped", "gone"), true),
            Shown::Dropped("gone".to_owned())
        );
    }
}
