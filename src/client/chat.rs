//! `switchboard chat`: one chat request, its answer on stdout (whole, or
//! token by token with `--stream`), and a one-line session summary on stderr
//! so stdout holds nothing but the answer.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use anyhow::{Context, anyhow, bail};
use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::StreamExt;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{Method, Response};
use serde_json::{Value, json};

use super::{Daemon, error_fields, error_text, print_line, text};
use crate::cli::ChatArgs;

/// Sends the prompt and prints the answer.
pub async fn run(args: ChatArgs) -> anyhow::Result<()> {
    let daemon = Daemon::new(&args.client)?;
    let body = json!({
        "model": args.model,
        "messages": [{ "role": "user", "content": args.prompt.join(" ") }],
        "stream": args.stream,
    });
    let request = daemon
        .request(Method::POST, "/v1/chat/completions")
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_string());
    let started = Instant::now();
    let response = daemon.send(request).await?;
    let status = response.status();
    if !status.is_success() {
        let body = response.bytes().await.map_err(|err| daemon.explain(&err))?;
        bail!(error_text(status, &body));
    }
    if args.stream {
        stream(&daemon, response, &args, started).await
    } else {
        complete(&daemon, response, &args, started).await
    }
}

/// Prints a whole (non-streamed) answer.
async fn complete(
    daemon: &Daemon,
    response: Response,
    args: &ChatArgs,
    started: Instant,
) -> anyhow::Result<()> {
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(|err| daemon.explain(&err))?;
    let answer: Value = serde_json::from_slice(&body).context("the daemon's answer is not JSON")?;
    if args.client.json {
        print_line(String::from_utf8_lossy(&body).trim_end())?;
    } else {
        let message = answer
            .pointer("/choices/0/message")
            .ok_or_else(|| anyhow!("the answer has no choices[0].message"))?;
        let content = message.get("content").and_then(Value::as_str);
        print_line(content.unwrap_or_default())?;
    }
    let summary = match answer.get("session") {
        Some(session) => format!(
            "session {} · {}/{} · {} ms",
            text(session, "id"),
            text(session, "provider"),
            text(session, "model"),
            text(session, "duration_ms"),
        ),
        None => fallback_summary(&headers, &args.model, started),
    };
    note(&summary);
    Ok(())
}

/// Prints a streamed answer as it arrives.
async fn stream(
    daemon: &Daemon,
    response: Response,
    args: &ChatArgs,
    started: Instant,
) -> anyhow::Result<()> {
    let headers = response.headers().clone();
    let mut events = response.bytes_stream().eventsource();
    let mut out = std::io::stdout();
    let json = args.client.json;
    let mut done = false;
    while let Some(event) = events.next().await {
        let data = match event {
            Ok(event) => event.data,
            Err(EventStreamError::Transport(err)) => {
                end_text(&mut out, json)?;
                return Err(daemon.explain(&err)).context("the stream broke off");
            }
            Err(err) => {
                end_text(&mut out, json)?;
                bail!("the stream broke off: {err}");
            }
        };
        let event = Event::of(&data);
        if json && !matches!(event, Event::Done) {
            writeln!(out, "{data}").context("could not write to stdout")?;
        }
        match event {
            Event::Done => {
                done = true;
                break;
            }
            Event::Text(delta) if !json => {
                write!(out, "{delta}").context("could not write to stdout")?;
            }
            Event::Failed(message) => {
                end_text(&mut out, json)?;
                bail!("the stream failed: {message}");
            }
            Event::Text(_) | Event::Other => {}
        }
        out.flush().context("could not write to stdout")?;
    }
    end_text(&mut out, json)?;
    if !done {
        bail!("the stream ended without [DONE]");
    }
    note(&fallback_summary(&headers, &args.model, started));
    Ok(())
}

/// Ends the streamed text with a newline (JSON lines already end in one).
fn end_text(out: &mut impl Write, json: bool) -> anyhow::Result<()> {
    if !json {
        writeln!(out).context("could not write to stdout")?;
    }
    out.flush().context("could not write to stdout")
}

/// The summary from the `x-session-id` header and the measured wall time.
fn fallback_summary(headers: &HeaderMap, model: &str, started: Instant) -> String {
    let id = headers
        .get("x-session-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    format!(
        "session {id} · {model} · {} ms",
        started.elapsed().as_millis()
    )
}

/// Prints a line on stderr, dim when stderr is a terminal.
fn note(line: &str) {
    let mut err = std::io::stderr();
    let line = if err.is_terminal() {
        format!("\x1b[2m{line}\x1b[0m")
    } else {
        line.to_owned()
    };
    // Nothing useful to do if stderr is gone.
    let _ = writeln!(err, "{line}");
}

/// What one server-sent event says.
#[derive(Debug, PartialEq)]
enum Event {
    /// `[DONE]`: the answer is complete.
    Done,
    /// A chunk; its `choices[0].delta.content` (empty when it has none).
    Text(String),
    /// An error event: `<message> (<code>)`.
    Failed(String),
    /// Anything else (not JSON): shown with `--json`, otherwise skipped.
    Other,
}

impl Event {
    /// Reads one event's data.
    fn of(data: &str) -> Self {
        if data.trim() == "[DONE]" {
            return Self::Done;
        }
        let Ok(value) = serde_json::from_str::<Value>(data) else {
            return Self::Other;
        };
        if let Some(message) = error_fields(&value) {
            return Self::Failed(message);
        }
        let delta = value
            .pointer("/choices/0/delta/content")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Self::Text(delta.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_classified() {
        assert_eq!(Event::of("[DONE]"), Event::Done);
        assert_eq!(
            Event::of(r#"{"choices":[{"index":0,"delta":{"content":"hi "}}]}"#),
            Event::Text("hi ".into())
        );
        assert_eq!(
            Event::of(r#"{"choices":[{"index":0,"delta":{"role":"assistant"}}]}"#),
            Event::Text(String::new())
        );
        assert_eq!(
            Event::of(
                r#"{"error":{"message":"cancelled","type":"server_error","code":"session_cancelled","param":null}}"#
            ),
            Event::Failed("cancelled (session_cancelled)".into())
        );
        assert_eq!(Event::of("not json"), Event::Other);
    }
}
