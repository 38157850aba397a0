//! What the daemon knows about a request when it arrives, and about a session
//! for its whole life.
//!
//! The HTTP layer makes a [`Received`] for every chat request; the supervisor
//! turns it into a [`SessionMeta`] once the route is known. Everything here is
//! cheap to share (`Arc`) because every phase event carries it.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde::Serialize;

use crate::ids::{RequestId, SessionId};
use crate::phase::{Phase, PhaseCell};

/// The calling process, from the socket's peer credentials (SO_PEERCRED).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Peer {
    /// The caller's user id: what access and rate limits are keyed on.
    pub uid: u32,
    /// The caller's process id, so an operator can tell which program it is.
    pub pid: Option<i32>,
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
}

impl Received {
    /// A request arriving now.
    pub fn now(request_id: RequestId, peer: Option<Peer>) -> Self {
        Self {
            session_id: SessionId::new(),
            request_id,
            at: Instant::now(),
            wall: SystemTime::now(),
            peer,
        }
    }
}

/// Everything about a session that does not change, plus its current phase.
#[derive(Debug)]
pub struct SessionMeta {
    /// The session's identity.
    pub id: SessionId,
    /// The caller's correlation id.
    pub request_id: RequestId,
    /// The configured provider name (`kimi`), empty when the request named none.
    pub provider: Arc<str>,
    /// The model as the provider knows it (`kimi-k2-turbo-preview`), or the
    /// requested name when it could not be routed.
    pub model: Arc<str>,
    /// Whether the caller asked for a stream.
    pub stream: bool,
    /// Arrival time (monotonic).
    pub received_at: Instant,
    /// Arrival time (wall clock).
    pub received_wall: SystemTime,
    /// Who sent it.
    pub peer: Option<Peer>,
    /// The latest recorded phase, read by admin listings.
    pub phase: PhaseCell,
}

impl SessionMeta {
    /// The meta of a request routed to `provider`/`model`.
    pub fn new(received: &Received, provider: Arc<str>, model: Arc<str>, stream: bool) -> Self {
        Self {
            id: received.session_id,
            request_id: received.request_id.clone(),
            provider,
            model,
            stream,
            received_at: received.at,
            received_wall: received.wall,
            peer: received.peer,
            phase: PhaseCell::new(Phase::Received),
        }
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
