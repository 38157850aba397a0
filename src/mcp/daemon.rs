//! The MCP server's line to the daemon: every tool call is an HTTP request
//! over the daemon's Unix socket (through [`crate::client::Daemon`], as the
//! CLI's commands make them), and every way one can fail becomes a
//! [`Failure`] whose message the MCP client is shown as a tool error.

use std::path::Path;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::Value;

use crate::client::{Daemon, error_text, root_cause};

/// The largest answer read from the daemon. Its own answers are bounded
/// (a provider's non-streamed answer by `max_response_bytes`, 8 MiB by
/// default); this is eight times that, so only a broken daemon reaches it,
/// and it cannot make this process hold more.
pub const MAX_ANSWER_BYTES: usize = 64 << 20;

/// The header naming the session that served a request (answers and errors).
pub const SESSION_HEADER: &str = "x-session-id";

/// Why a request to the daemon gave no usable answer.
#[derive(Debug)]
pub enum Failure {
    /// Nothing answers on the socket: the daemon is not running there.
    NotRunning(String),
    /// The daemon answered with an error status.
    Status {
        /// The status, e.g. 504.
        status: StatusCode,
        /// `<status>: <error.message> (<error.code>)`.
        text: String,
        /// The error's `param` (which request field was wrong), if any.
        param: Option<String>,
        /// The session that answered it (`x-session-id`), so the client can
        /// look it up with the `session` tool.
        session: Option<String>,
    },
    /// The request or its answer broke off, or the answer is unreadable.
    Broken(String),
}

impl Failure {
    /// What the MCP client is shown.
    pub fn message(&self) -> String {
        match self {
            Failure::NotRunning(text) | Failure::Broken(text) => text.clone(),
            Failure::Status {
                text,
                session: Some(id),
                ..
            } => format!("the daemon answered {text} (session {id})"),
            Failure::Status { text, .. } => format!("the daemon answered {text}"),
        }
    }

    /// The tool error the MCP client is shown (`isError: true`).
    pub fn into_result(self) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text(self.message())])
    }

    /// A short label for this process's log (never the daemon's message,
    /// which may quote the request).
    pub fn kind(&self) -> String {
        match self {
            Failure::NotRunning(_) => "daemon not running".to_owned(),
            Failure::Status { status, .. } => format!("status {}", status.as_u16()),
            Failure::Broken(_) => "broken answer".to_owned(),
        }
    }
}

/// A client of the daemon at one socket.
pub struct Link {
    /// The CLI's HTTP-over-the-socket helper.
    daemon: Daemon,
}

impl Link {
    /// A link to the socket `flag` names, else `SWITCHBOARD__SERVER__SOCKET`,
    /// else the daemon's default path (as every client command picks it).
    pub fn new(flag: Option<&Path>) -> anyhow::Result<Self> {
        Ok(Self {
            daemon: Daemon::at(flag)?,
        })
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.daemon.socket
    }

    /// A request to `path`.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.daemon.request(method, path)
    }

    /// A request to `/admin/sessions/{id}`, the id escaped as one segment.
    pub fn session_request(&self, method: Method, id: &str) -> Result<RequestBuilder, Failure> {
        self.daemon
            .session_request(method, id)
            .map_err(|err| Failure::Broken(format!("{err:#}")))
    }

    /// Sends a request; a 2xx answer comes back unread, any other status as
    /// [`Failure::Status`] with the daemon's error message.
    pub async fn open(&self, request: RequestBuilder) -> Result<Response, Failure> {
        let response = request.send().await.map_err(|err| self.transport(&err))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let session = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = self.read(response).await?;
        let param = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|value| value.pointer("/error/param")?.as_str().map(str::to_owned));
        Err(Failure::Status {
            status,
            text: error_text(status, &body),
            param,
            session,
        })
    }

    /// Sends a request and reads its JSON answer.
    pub async fn json(&self, request: RequestBuilder) -> Result<Value, Failure> {
        let response = self.open(request).await?;
        let body = self.read(response).await?;
        serde_json::from_slice(&body)
            .map_err(|err| Failure::Broken(format!("the daemon's answer is not JSON ({err})")))
    }

    /// Reads a whole answer, at most [`MAX_ANSWER_BYTES`].
    pub async fn read(&self, response: Response) -> Result<Bytes, Failure> {
        let mut body = BytesMut::new();
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|err| self.transport(&err))?;
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(Failure::Broken(format!(
                    "the daemon's answer is over {} MiB",
                    MAX_ANSWER_BYTES >> 20
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    /// A transport error as a [`Failure`]; a refused or missing socket says
    /// how to start the daemon.
    pub fn transport(&self, err: &reqwest::Error) -> Failure {
        let reason = root_cause(err);
        let socket = self.socket().display();
        if err.is_connect() {
            Failure::NotRunning(format!(
                "the switchboard daemon is not running at {socket} ({reason}): start it with \
                 `switchboard serve` (if it listens on another socket, give that one to \
                 `switchboard mcp --socket PATH`)"
            ))
        } else {
            Failure::Broken(format!(
                "the request to the daemon at {socket} failed: {reason}"
            ))
        }
    }
}
