//! Everything that can go wrong, as the actors see it: with a request
//! ([`GatewayError`]) and with the history file ([`StoreError`]).
//!
//! The HTTP layer maps each variant to a status and OpenAI's error shape in one
//! `match`; the actors never think in HTTP statuses. [`GatewayError::detail`]
//! is the sanitized form that goes into phase events and logs: it never holds
//! provider-supplied text (which may quote a prompt) or an API key.

use std::fmt;
use std::time::Duration;

/// Who or what cancelled a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelReason {
    /// The client closed its connection.
    ClientGone,
    /// An operator sent `DELETE /admin/sessions/{id}`.
    Operator,
    /// The daemon's drain deadline passed while the session was still live.
    Shutdown,
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CancelReason::ClientGone => "the client disconnected",
            CancelReason::Operator => "an operator cancelled it",
            CancelReason::Shutdown => "the daemon is shutting down",
        })
    }
}

/// Which of a session's deadlines passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Deadline {
    /// Arrival to the last byte of the answer (`timeout_ms`).
    Total,
    /// Connecting to the provider (`connect_timeout_ms`).
    Connect,
    /// Streams: the call to the first chunk (`first_token_timeout_ms`).
    FirstToken,
    /// Streams: the longest silence between chunks (`idle_timeout_ms`).
    Idle,
    /// The client sending the request's body (`server.body_timeout_ms`).
    Body,
}

impl Deadline {
    /// Its name in messages and settings (`first_token`).
    pub fn name(self) -> &'static str {
        match self {
            Deadline::Total => "total",
            Deadline::Connect => "connect",
            Deadline::FirstToken => "first_token",
            Deadline::Idle => "idle",
            Deadline::Body => "body",
        }
    }

    /// Whether another target of an alias may do better once it passed:
    /// only when the provider could not even be reached; the others are
    /// spent time a fallback cannot give back.
    pub fn falls_back(self) -> bool {
        matches!(self, Deadline::Connect)
    }

    /// Whether a client that asked for a stream learns of it as an SSE error
    /// event, even before the stream began (so its SSE reader sees which
    /// deadline passed); the total deadline is a plain 504 until then.
    pub fn ends_a_stream_with_an_event(self) -> bool {
        !matches!(self, Deadline::Total | Deadline::Body)
    }

    /// Whether the caller, not the provider, ran out of time: its request
    /// never arrived whole.
    pub fn is_the_callers(self) -> bool {
        matches!(self, Deadline::Body)
    }
}

impl fmt::Display for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which capacity limit refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overload {
    /// `sessions.max_queued` requests were already waiting.
    QueueFull {
        /// The limit.
        max_queued: usize,
    },
    /// It waited for capacity until its deadline passed.
    WaitedPastDeadline {
        /// How long it waited.
        waited_ms: u64,
    },
}

impl fmt::Display for Overload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Overload::QueueFull { max_queued } => write!(
                f,
                "{max_queued} requests are already waiting (sessions.max_queued)"
            ),
            Overload::WaitedPastDeadline { waited_ms } => write!(
                f,
                "the request waited {waited_ms} ms for capacity and its deadline passed"
            ),
        }
    }
}

/// Why a request could not be answered.
#[derive(Clone, Debug, thiserror::Error)]
pub enum GatewayError {
    /// The request itself is wrong (malformed JSON, a missing field).
    #[error("{message}")]
    BadRequest {
        /// What is wrong, for the caller.
        message: String,
        /// The offending field, when there is one.
        param: Option<&'static str>,
    },
    /// The body is larger than `max_body_bytes`.
    #[error("request body is larger than the limit of {limit} bytes (server.max_body_bytes)")]
    BodyTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The model names no configured provider, or a model that provider
    /// lacks; holds the model as requested (shortened).
    #[error(
        "unknown model `{0}`: use `<provider>/<model>` with a configured provider, or an alias (see GET /v1/models)"
    )]
    UnknownModel(String),
    /// The daemon is draining and takes no new work.
    #[error("the daemon is shutting down and takes no new requests")]
    Draining {
        /// When a client may try again (a restarted daemon will be up by then).
        retry_after: Duration,
    },
    /// No capacity: the queue is full, or the request waited past its deadline.
    #[error("the daemon is at capacity: {why}; try again shortly")]
    Overloaded {
        /// Which limit was reached.
        why: Overload,
        /// When a client may try again.
        retry_after: Duration,
    },
    /// A rate limit (the caller's or the provider's) is spent for now.
    #[error("rate limit of {scope} reached; retry after {} s", retry_after_secs(.retry_after))]
    RateLimited {
        /// Whose limit: `uid 1000` or `provider kimi`.
        scope: String,
        /// Exactly when the next request would be allowed.
        retry_after: Duration,
    },
    /// The caller may not use the daemon.
    #[error("{0}")]
    Forbidden(String),
    /// The provider needs an API key and its environment variable is unset.
    #[error("provider `{provider}` has no API key: set the environment variable {var}")]
    MissingApiKey {
        /// The provider's configured name.
        provider: String,
        /// The environment variable that should hold the key.
        var: String,
    },
    /// The provider answered with an error status.
    #[error("provider `{provider}` answered HTTP {status}: {message}")]
    ProviderStatus {
        /// The provider's configured name.
        provider: String,
        /// The HTTP status it sent.
        status: u16,
        /// Its error message, shortened; for the caller only, never logged.
        message: String,
        /// Its error `type` or `code`, when it sent one: safe to log.
        code: Option<String>,
    },
    /// The provider could not be reached, or the connection broke.
    #[error("provider `{provider}` failed: {reason}")]
    ProviderFailed {
        /// The provider's configured name.
        provider: String,
        /// What went wrong (our words, not the provider's).
        reason: String,
    },
    /// The model's provider (every target of the alias) has no endpoint
    /// for the request's API, e.g. no `anthropic_base_url`.
    #[error("{}", not_served(.provider, *.wire))]
    NotServed {
        /// The (first) provider asked.
        provider: String,
        /// The API it lacks.
        wire: crate::wire::Wire,
    },
    /// Every target of an alias failed or was skipped.
    #[error("no target of the requested alias is left to try")]
    NoTargetLeft,
    /// A deadline passed before the answer was complete.
    #[error("the {which} deadline of {timeout_ms} ms passed")]
    Timeout {
        /// Which deadline.
        which: Deadline,
        /// Its length.
        timeout_ms: u64,
    },
    /// The session was cancelled before it could answer.
    #[error("session cancelled: {0}")]
    Cancelled(CancelReason),
    /// No route has this path.
    #[error("no route for {method} {path}")]
    NoRoute {
        /// The request's method.
        method: String,
        /// Its path (shortened).
        path: String,
    },
    /// The path is a route, but not for this method.
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed {
        /// The request's method.
        method: String,
        /// Its path.
        path: String,
    },
    /// An admin request named a session that is not live (or not known).
    #[error("no session {0}")]
    SessionNotFound(String),
    /// The history file cannot answer (disabled, or failing).
    #[error("{0}")]
    HistoryUnavailable(String),
    /// A fault in the daemon itself.
    #[error("internal error: {0}")]
    Internal(String),
}

impl GatewayError {
    /// A `BadRequest` about `param`.
    pub fn bad_request(message: impl Into<String>, param: Option<&'static str>) -> Self {
        Self::BadRequest {
            message: message.into(),
            param,
        }
    }

    /// The sanitized text for phase events and logs: no provider text, no keys.
    pub fn detail(&self) -> String {
        match self {
            GatewayError::ProviderStatus {
                status,
                code: Some(code),
                ..
            } => format!("provider answered HTTP {status} ({code})"),
            GatewayError::ProviderStatus { status, .. } => {
                format!("provider answered HTTP {status}")
            }
            other => other.to_string(),
        }
    }

    /// When the client may retry, for errors where waiting helps.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GatewayError::Draining { retry_after }
            | GatewayError::Overloaded { retry_after, .. }
            | GatewayError::RateLimited { retry_after, .. } => Some(*retry_after),
            GatewayError::Cancelled(CancelReason::Shutdown) => Some(Duration::from_secs(1)),
            _ => None,
        }
    }
}

/// Why `provider` cannot take a request on `wire`, and what would fix it.
fn not_served(provider: &str, wire: crate::wire::Wire) -> String {
    use crate::wire::Wire;
    match wire {
        Wire::Messages | Wire::CountTokens => format!(
            "provider `{provider}` has no Anthropic Messages endpoint \
             (set providers.{provider}.anthropic_base_url)"
        ),
        Wire::Embeddings | Wire::Chat => format!(
            "provider `{provider}` serves no {} (only kind = \"openai\" providers do)",
            wire.describe()
        ),
    }
}

/// Why the history file could not be opened, written or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file was written by a newer daemon whose schema this one does not know.
    #[error(
        "the history file has schema version {found}, newer than this daemon's {known}: \
         it was written by a newer switchboard; upgrade this one, or point history.path at another file"
    )]
    NewerSchema {
        /// The file's `user_version`.
        found: u32,
        /// The newest version this daemon knows.
        known: u32,
    },
    /// Another daemon is using the file (it holds its lock).
    #[error(
        "another switchboard daemon is using the history file {path} (it holds {path}.lock); \
         stop it, or give this one another history.path"
    )]
    InUse {
        /// The history file.
        path: String,
    },
    /// The file or its directory could not be made or opened.
    #[error("history file {path}: {reason}")]
    Io {
        /// The file or directory.
        path: String,
        /// The operating system's reason.
        reason: String,
    },
    /// SQLite refused (the file is locked by another process, full, corrupt...).
    #[error("history file: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// History is turned off (`history.enabled = false`).
    #[error("history is disabled (history.enabled = false)")]
    Disabled,
    /// The store's thread is not running.
    #[error("the history store is not running")]
    Stopped,
}

impl From<StoreError> for GatewayError {
    fn from(error: StoreError) -> Self {
        GatewayError::HistoryUnavailable(error.to_string())
    }
}

impl StoreError {
    /// Whether the file was only locked by someone else for now (a retry
    /// later may succeed), as opposed to broken.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    }
}

/// Whole seconds to wait, rounded up: waiting less would be refused again.
pub fn retry_after_secs(wait: &Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

/// Shortens provider-supplied text to at most `max` bytes on a char boundary.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_text_stays_out_of_the_detail() {
        let err = GatewayError::ProviderStatus {
            provider: "kimi".into(),
            status: 400,
            message: "your prompt 'secret plans' was refused".into(),
            code: Some("content_filter".into()),
        };
        assert!(err.to_string().contains("secret plans"));
        assert!(!err.detail().contains("secret plans"));
        assert!(err.detail().contains("400"));
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h…");
        assert_eq!(truncate("short", 10), "short");
    }
}
