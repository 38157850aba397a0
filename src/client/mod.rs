//! The client commands (`chat`, `sessions`, `session`, `cancel`, `drain`,
//! `history`, `usage`, `events`, `metrics`, and `top` in [`crate::top`]):
//! each one is HTTP/1.1 to a running daemon over its Unix socket.
//!
//! This module picks the socket, runs the command on a current-thread tokio
//! runtime, and holds the small HTTP helper the commands share ([`Daemon`]):
//! sending a request, turning "cannot connect" into an operator-readable
//! error, and turning the daemon's OpenAI-shaped error bodies into errors.
//! `switchboard mcp` (`crate::mcp`) uses the same helper for its tool calls.

pub(crate) mod admin;
mod chat;
mod events;
mod history;
mod session;
pub(crate) mod table;
mod usage;

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde_json::Value;

use crate::cli::{ClientArgs, Command};

/// The variable that names the daemon's socket (the daemon reads the same one).
const SOCKET_ENV: &str = "SWITCHBOARD__SERVER__SOCKET";

/// The base URL of every request: the host is ignored over a Unix socket.
const BASE_URL: &str = "http://localhost";

/// Runs a client command against the daemon; `serve` is not one.
pub fn run(command: Command) -> anyhow::Result<()> {
    if matches!(
        command,
        Command::Serve(_)
            | Command::Mcp(_)
            | Command::Config(_)
            | Command::Completions(_)
            | Command::Service(_)
            | Command::Env(_)
    ) {
        bail!("not a client command");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    runtime.block_on(dispatch(command))
}

/// Sends the command to the module that implements it.
async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(_)
        | Command::Mcp(_)
        | Command::Config(_)
        | Command::Completions(_)
        | Command::Service(_)
        | Command::Env(_) => {
            bail!("not a client command")
        }
        Command::Top(args) => crate::top::run(args).await,
        Command::Chat(args) => chat::run(args).await,
        Command::Sessions(args) => admin::sessions(&args).await,
        Command::Session(args) => session::session(&args.id, &args.client).await,
        Command::Cancel(args) => admin::cancel(&args.id, &args.client).await,
        Command::Drain(args) => admin::drain(&args).await,
        Command::Reload(args) => admin::reload(&args).await,
        Command::History(args) => history::run(&args).await,
        Command::Usage(args) => usage::run(&args).await,
        Command::Events(args) => events::run(&args).await,
        Command::Metrics(args) => admin::metrics(&args).await,
    }
}

/// The socket to use: the `--socket` flag, else `SWITCHBOARD__SERVER__SOCKET`
/// (when set and not empty), else the daemon's default path.
fn resolve_socket(flag: Option<&Path>, env: Option<OsString>) -> PathBuf {
    if let Some(path) = flag {
        return path.to_path_buf();
    }
    match env {
        Some(value) if !value.is_empty() => PathBuf::from(value),
        _ => crate::settings::default_socket_path(),
    }
}

/// A connection to the daemon: an HTTP client bound to its socket (also
/// `top`'s).
#[derive(Clone)]
pub(crate) struct Daemon {
    /// The HTTP client; every connection it makes goes to `socket`.
    http: reqwest::Client,
    /// The socket path, for error messages.
    pub(crate) socket: PathBuf,
}

impl Daemon {
    /// A client for the socket the command's options name.
    fn new(args: &ClientArgs) -> anyhow::Result<Self> {
        Self::at(args.socket.as_deref())
    }

    /// A client for the socket `flag` names, else the usual one.
    pub(crate) fn at(flag: Option<&Path>) -> anyhow::Result<Self> {
        let socket = resolve_socket(flag, std::env::var_os(SOCKET_ENV));
        let http = reqwest::Client::builder()
            .unix_socket(socket.clone())
            .http1_only()
            .build()
            .context("could not build the HTTP client")?;
        Ok(Self { http, socket })
    }

    /// A request to `path` (segments already joined, e.g. `/admin/drain`).
    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{BASE_URL}{path}"))
    }

    /// A request to `/admin/sessions/{id}`, with `id` escaped as one segment.
    pub(crate) fn session_request(
        &self,
        method: Method,
        id: &str,
    ) -> anyhow::Result<RequestBuilder> {
        let mut url = Url::parse(BASE_URL).context("bad base URL")?;
        url.path_segments_mut()
            .map_err(|()| anyhow!("bad base URL"))?
            .extend(["admin", "sessions", id]);
        Ok(self.http.request(method, url))
    }

    /// A GET of `path` with `query` appended, each name and value
    /// form-encoded (pairs whose value is `None` are left out).
    fn get_with(
        &self,
        path: &str,
        query: &[(&str, Option<String>)],
    ) -> anyhow::Result<RequestBuilder> {
        let mut url = Url::parse(BASE_URL)
            .and_then(|base| base.join(path))
            .context("bad URL")?;
        let given: Vec<(&str, &str)> = query
            .iter()
            .filter_map(|(name, value)| Some((*name, value.as_deref()?)))
            .collect();
        if !given.is_empty() {
            url.query_pairs_mut().extend_pairs(given);
        }
        Ok(self.http.get(url))
    }

    /// Sends a request, explaining a daemon that cannot be reached.
    async fn send(&self, request: RequestBuilder) -> anyhow::Result<Response> {
        request.send().await.map_err(|err| self.explain(&err))
    }

    /// Turns a transport error into a readable one.
    fn explain(&self, err: &reqwest::Error) -> anyhow::Error {
        let reason = root_cause(err);
        if err.is_connect() {
            anyhow!(
                "cannot reach the switchboard daemon at {}: {reason} (is `switchboard serve` running?)",
                self.socket.display()
            )
        } else {
            anyhow!(
                "the request to the daemon at {} failed: {reason}",
                self.socket.display()
            )
        }
    }

    /// Sends a request and reads a JSON answer. A non-2xx answer becomes
    /// `Err(Answer::Status)`, so callers can treat 404 their own way.
    pub(crate) async fn json(&self, request: RequestBuilder) -> Result<Value, Answer> {
        let body = self.body(request).await?;
        serde_json::from_slice(&body)
            .map_err(|err| Answer::Transport(anyhow!("the daemon's answer is not JSON ({err})")))
    }

    /// Sends a request and reads the whole answer, as [`Daemon::json`] does.
    pub(crate) async fn body(&self, request: RequestBuilder) -> Result<Bytes, Answer> {
        let response = self.open(request).await?;
        response
            .bytes()
            .await
            .map_err(|err| Answer::Transport(self.explain(&err)))
    }

    /// Sends a request and returns a 2xx answer unread (for streams); any
    /// other status becomes `Err(Answer::Status)` with its body's error.
    async fn open(&self, request: RequestBuilder) -> Result<Response, Answer> {
        let response = self.send(request).await.map_err(Answer::Transport)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response
            .bytes()
            .await
            .map_err(|err| Answer::Transport(self.explain(&err)))?;
        Err(Answer::Status(status, error_text(status, &body)))
    }
}

/// Why a JSON request did not give a JSON answer.
pub(crate) enum Answer {
    /// The daemon answered with this status; the text is [`error_text`]'s.
    Status(StatusCode, String),
    /// No usable answer at all.
    Transport(anyhow::Error),
}

impl From<Answer> for anyhow::Error {
    fn from(answer: Answer) -> Self {
        match answer {
            Answer::Status(_, text) => anyhow!(text),
            Answer::Transport(err) => err,
        }
    }
}

/// The innermost error in a chain (for a socket: the OS's reason).
pub(crate) fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// `404 Not Found`, and the bare number for codes without a reason (`499`).
fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// `<status>: <error.message> (<error.code>)` from an error body, or the
/// body's text when it is not in the daemon's error shape.
pub(crate) fn error_text(status: StatusCode, body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    match parsed.as_ref().and_then(error_fields) {
        Some(message) => format!("{}: {message}", status_text(status)),
        None => {
            let text = String::from_utf8_lossy(body);
            let text: String = text.trim().chars().take(200).collect();
            if text.is_empty() {
                status_text(status)
            } else {
                format!("{}: {text}", status_text(status))
            }
        }
    }
}

/// `<message> (<code>)` from `{"error":{"message","code",…}}`.
pub(crate) fn error_fields(value: &Value) -> Option<String> {
    let error = value.get("error")?;
    let message = error.get("message")?.as_str()?;
    Some(match error.get("code").and_then(Value::as_str) {
        Some(code) => format!("{message} ({code})"),
        None => message.to_owned(),
    })
}

/// Writes `text` and a newline to stdout, flushed.
pub(crate) fn print_line(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .context("could not write to stdout")
}

/// Writes `value` pretty-printed to stdout.
fn print_pretty(value: &Value) -> anyhow::Result<()> {
    print_line(&serde_json::to_string_pretty(value)?)
}

/// A JSON field as display text: strings bare, `null`/missing as `-`.
pub(crate) fn text(value: &Value, key: &str) -> String {
    match value.get(key) {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_wins_then_the_variable_then_the_default() {
        let flag = Path::new("/tmp/flag.sock");
        assert_eq!(
            resolve_socket(Some(flag), Some("/tmp/env.sock".into())),
            flag
        );
        assert_eq!(
            resolve_socket(None, Some("/tmp/env.sock".into())),
            Path::new("/tmp/env.sock")
        );
        assert_eq!(
            resolve_socket(None, Some(OsString::new())),
            crate::settings::default_socket_path()
        );
        assert_eq!(
            resolve_socket(None, None),
            crate::settings::default_socket_path()
        );
    }

    #[test]
    fn a_session_id_is_one_escaped_path_segment() {
        let args = ClientArgs {
            socket: Some("/tmp/unused.sock".into()),
            json: false,
        };
        let daemon = Daemon::new(&args).expect("client builds");
        let request = daemon
            .session_request(Method::GET, "a/b?c")
            .expect("url builds")
            .build()
            .expect("request builds");
        assert_eq!(
            request.url().as_str(),
            "http://localhost/admin/sessions/a%2Fb%3Fc"
        );
    }

    #[test]
    fn query_values_are_form_encoded_and_absent_ones_left_out() {
        let daemon = Daemon::at(Some(Path::new("/tmp/unused.sock"))).expect("client builds");
        let query = [
            ("model", Some("a b&c=d".to_owned())),
            ("since", Some("2026-12-01T10:00:00+02:00".to_owned())),
            ("uid", None),
        ];
        let request = daemon
            .get_with("/admin/history", &query)
            .expect("url builds")
            .build()
            .expect("request builds");
        assert_eq!(
            request.url().as_str(),
            "http://localhost/admin/history?model=a+b%26c%3Dd&since=2026-12-01T10%3A00%3A00%2B02%3A00"
        );
        let bare = daemon
            .get_with("/metrics", &[("uid", None)])
            .expect("url builds");
        assert_eq!(
            bare.build().expect("builds").url().as_str(),
            "http://localhost/metrics"
        );
    }

    #[test]
    fn error_bodies_become_status_message_code() {
        let body = br#"{"error":{"message":"no model x","type":"invalid_request_error","code":"model_not_found","param":"model"}}"#;
        assert_eq!(
            error_text(StatusCode::NOT_FOUND, body),
            "404 Not Found: no model x (model_not_found)"
        );
        let status = StatusCode::from_u16(499).expect("valid status");
        assert_eq!(
            error_text(status, br#"{"error":{"message":"gone","code":null}}"#),
            "499: gone"
        );
        assert_eq!(
            error_text(StatusCode::BAD_GATEWAY, b"upstream down\n"),
            "502 Bad Gateway: upstream down"
        );
        assert_eq!(error_text(StatusCode::BAD_GATEWAY, b""), "502 Bad Gateway");
    }

    #[test]
    fn text_shows_null_as_a_dash() {
        let value = serde_json::json!({"a": "x", "b": null, "c": 3});
        assert_eq!(text(&value, "a"), "x");
        assert_eq!(text(&value, "b"), "-");
        assert_eq!(text(&value, "c"), "3");
        assert_eq!(text(&value, "d"), "-");
    }
}
