//! What the daemon knows about a request when it arrives, and about a session
//! for its whole life.
//!
//! The HTTP layer makes a [`Received`] for every chat request; the supervisor
//! turns it into a [`SessionMeta`] once the route is known. A session's
//! meta never changes, so it is shared (`Arc`) without a lock: every phase
//! event carries it. What does change — the route after a fallback, the
//! current phase — is kept by the session's recorder.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde::Serialize;

use crate::ids::{RequestId, SessionId};
use crate::wire::Wire;

/// The calling process, from the socket's peer credentials (SO_PEERCRED).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Peer {
    /// The caller's user id: what access and rate limits are keyed on.
    pub uid: u32,
    /// The caller's process id, so an operator can tell which program it is.
    pub pid: Option<i32>,
    /// The caller's process name (`/proc/<pid>/comm`, read once when the
    /// connection was accepted): usage is added up by it, and a pid alone
    /// means nothing once the process has exited.
    pub process: Option<Arc<str>>,
}

/// A request as it arrived, before anything is known about its route.
#[derive(Clone, Debug)]
pub struct Received {
    /// The session this request will be (or would have been).
    pub session_id: SessionId,
    /// The caller's correlation id, or one made for it.
    pub request_id: RequestId,
    /// Arrival time, the zero of every `elapsed_ms`.
    pub at: Instant,
    /// Arrival wall-clock time, for people reading timelines.
    pub wall: SystemTime,
    /// Who sent it, when the socket could tell.
    pub peer: Option<Peer>,
    /// Its class in the queue (`x-priority`).
    pub priority: Priority,
    /// The API it came in on.
    pub wire: Wire,
}

impl Received {
    /// A request arriving now on `wire`.
    pub fn now(request_id: RequestId, peer: Option<Peer>, priority: Priority, wire: Wire) -> Self {
        Self {
            session_id: SessionId::new(),
            request_id,
            at: Instant::now(),
            wall: SystemTime::now(),
            peer,
            priority,
            wire,
        }
    }
}

/// A request's class when it has to wait for capacity (`x-priority`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Background work: served after the others, unless it has waited long.
    Low = 0,
    /// The default.
    #[default]
    Normal = 1,
    /// Interactive work: served first.
    High = 2,
}

impl Priority {
    /// Reads `high`, `normal` or `low` (any case).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "high" => Some(Priority::High),
            "normal" => Some(Priority::Normal),
            "low" => Some(Priority::Low),
            _ => None,
        }
    }

    /// The name on the wire (`x-priority`) and in history.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
        }
    }

    /// The class `steps` above this one, at most `High`.
    pub fn raised(self, steps: u64) -> Self {
        match (self as u64).saturating_add(steps) {
            0 => Priority::Low,
            1 => Priority::Normal,
            _ => Priority::High,
        }
    }
}

/// Where a session's calls go now: the provider and the model as the
/// provider knows it. A fallback moves it to the next target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Route {
    /// The configured provider name (`kimi`); empty when the request named none.
    pub provider: Arc<str>,
    /// The model as the provider knows it, or as requested when unroutable.
    pub model: Arc<str>,
}

/// Everything about a session that is fixed when it arrives.
#[derive(Debug)]
pub struct SessionMeta {
    /// The session's identity.
    pub id: SessionId,
    /// The caller's correlation id.
    pub request_id: RequestId,
    /// The model as requested: `<provider>/<model>` or an alias.
    pub requested: Arc<str>,
    /// Whether the caller asked for a stream.
    pub stream: bool,
    /// Its class in the queue.
    pub priority: Priority,
    /// The API it came in on.
    pub wire: Wire,
    /// The request's `metadata` object, as JSON, bounded in size.
    pub metadata: Option<Arc<str>>,
    /// Arrival time (monotonic).
    pub received_at: Instant,
    /// Arrival time (wall clock).
    pub received_wall: SystemTime,
    /// Who sent it.
    pub peer: Option<Peer>,
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
}

impl SessionMeta {
    /// The meta of a request for `requested`.
    pub fn new(received: &Received, requested: Arc<str>, stream: bool) -> Self {
        Self {
            id: received.session_id,
            request_id: received.request_id.clone(),
            requested,
            stream,
            priority: received.priority,
            wire: received.wire,
            metadata: None,
            received_at: received.at,
            received_wall: received.wall,
            peer: received.peer.clone(),
        }
    }

    /// The same, keeping the request's `metadata`.
    pub fn with_metadata(mut self, metadata: Option<Arc<str>>) -> Self {
        self.metadata = metadata;
        self
    }

    /// Milliseconds since arrival.
    pub fn age_ms(&self) -> u64 {
        duration_ms(self.received_at.elapsed())
    }
}

/// A duration in whole milliseconds, saturating.
pub fn duration_ms(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_parse_and_rise_to_high_at_most() {
        assert_eq!(Priority::parse(" HIGH "), Some(Priority::High));
        assert_eq!(Priority::parse("urgent"), None);
        assert_eq!(Priority::Low.raised(1), Priority::Normal);
        assert_eq!(Priority::Low.raised(7), Priority::High);
        assert_eq!(Priority::High.raised(0), Priority::High);
    }
}
