//! A session as it is remembered: what history stores and admin answers
//! show, the same whether the session is still in memory or only on disk.
//!
//! The lifecycle logger builds a [`SessionRecord`] from a session's meta and
//! timeline (an open one while it runs, a full one when it ends) and hands it
//! to the store; the store reads the same type back for queries.

use std::sync::Arc;
use std::time::SystemTime;

use crate::ids::{RequestId, SessionId};
use crate::meta::{Peer, Priority};
use crate::outcome::{Exchange, Outcome};
use crate::phase::EventView;
use crate::usage::Usage;

/// One session's row.
#[derive(Clone, Debug)]
pub struct SessionRecord {
    /// The session's identity.
    pub id: SessionId,
    /// The caller's correlation id.
    pub request_id: RequestId,
    /// The model as requested: `<provider>/<model>` or an alias.
    pub requested: Arc<str>,
    /// The provider that was called last; `None` when the request never
    /// reached one (refused before routing).
    pub provider: Option<Arc<str>>,
    /// The model as that provider knows it.
    pub model: Option<Arc<str>>,
    /// Who sent it.
    pub peer: Option<Peer>,
    /// Its class in the queue.
    pub priority: Priority,
    /// Whether the caller asked for a stream.
    pub stream: bool,
    /// Arrival, by the wall clock.
    pub received_at: SystemTime,
    /// The request's `metadata` object, as JSON.
    pub metadata: Option<Arc<str>>,
    /// Its phase events so far, oldest first (empty when the store fell
    /// behind and phase detail was dropped).
    pub phases: Vec<EventView>,
    /// Events not kept: the timeline was full, or the store fell behind.
    pub dropped_events: u32,
    /// How it ended; `None` while it runs.
    pub end: Option<Arc<EndRecord>>,
}

/// What is known once a session has ended.
#[derive(Clone, Debug)]
pub struct EndRecord {
    /// The outcome.
    pub outcome: Outcome,
    /// The HTTP status the client saw (200 for a stream that began, even if
    /// it then failed; 499 when it had left).
    pub status: u16,
    /// The daemon's error code (`timeout`, `provider_error`, ...), on failure.
    pub error_code: Option<Arc<str>>,
    /// The sanitized error detail, on failure: never provider text or keys.
    pub error: Option<Arc<str>>,
    /// Provider attempts made, across retries and fallbacks.
    pub attempts: u32,
    /// Time spent waiting for capacity.
    pub queued_ms: f64,
    /// Streams: time from arrival to the first chunk.
    pub ttft_ms: Option<f64>,
    /// Arrival to the end.
    pub duration_ms: f64,
    /// Tokens the provider reported.
    pub usage: Usage,
    /// When it ended, by the wall clock.
    pub ended_at: SystemTime,
    /// The prompt and answer, when the operator opted in.
    pub exchange: Option<Arc<Exchange>>,
}

impl SessionRecord {
    /// The last phase reached: the outcome once ended, else the last event.
    pub fn phase(&self) -> &'static str {
        match &self.end {
            Some(end) => end.outcome.as_str(),
            None => self.phases.last().map_or("RECEIVED", |event| event.phase),
        }
    }
}
