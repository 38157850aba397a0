//! The phases of a session's life and the event recorded at each.
//!
//! Sessions, the supervisor and provider calls produce [`PhaseEvent`]s through
//! a [`Recorder`](crate::lifecycle::Recorder); the
//! [`LifecycleLogger`](crate::lifecycle::LifecycleLogger) keeps them as
//! timelines and writes one `tracing` event per phase.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::meta::{Route, SessionMeta};
use crate::outcome::Ending;

/// Where a session is in its life. The order of the variants is the order in
/// which a successful session passes through them; the last five end a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[repr(u8)]
pub enum Phase {
    /// The daemon has read the request.
    Received,
    /// Waiting for capacity (admission control).
    Queued,
    /// Capacity found; leaving the queue.
    Dequeued,
    /// A session actor exists for the request.
    SessionAllocated,
    /// An attempt at the provider call began.
    ProviderCallStart,
    /// The first streamed chunk arrived from the provider.
    FirstToken,
    /// An attempt at the provider call ended (answer, failure or abort).
    ProviderCallEnd,
    /// The session let go of its provider call and its client.
    SessionReleased,
    /// Answered in full.
    Completed,
    /// A deadline passed.
    Timeout,
    /// The provider failed, or the answer could not be delivered.
    Error,
    /// The client went away, an operator cancelled it, or the drain ran out of time.
    Cancelled,
    /// Refused before a session was allocated.
    Rejected,
}

impl Phase {
    const ALL: [Phase; 13] = [
        Phase::Received,
        Phase::Queued,
        Phase::Dequeued,
        Phase::SessionAllocated,
        Phase::ProviderCallStart,
        Phase::FirstToken,
        Phase::ProviderCallEnd,
        Phase::SessionReleased,
        Phase::Completed,
        Phase::Timeout,
        Phase::Error,
        Phase::Cancelled,
        Phase::Rejected,
    ];

    /// The phase named `text` (its wire name), if any.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|phase| phase.as_str() == text)
    }

    /// The name used on the wire and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Received => "RECEIVED",
            Phase::Queued => "QUEUED",
            Phase::Dequeued => "DEQUEUED",
            Phase::SessionAllocated => "SESSION_ALLOCATED",
            Phase::ProviderCallStart => "PROVIDER_CALL_START",
            Phase::FirstToken => "FIRST_TOKEN",
            Phase::ProviderCallEnd => "PROVIDER_CALL_END",
            Phase::SessionReleased => "SESSION_RELEASED",
            Phase::Completed => "COMPLETED",
            Phase::Timeout => "TIMEOUT",
            Phase::Error => "ERROR",
            Phase::Cancelled => "CANCELLED",
            Phase::Rejected => "REJECTED",
        }
    }

    /// Whether this phase ends a session.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Phase::Completed | Phase::Timeout | Phase::Error | Phase::Cancelled | Phase::Rejected
        )
    }
}

/// A phase that several actors read and one writes, without messages:
/// the admin listing reads it while the session moves on.
#[derive(Debug)]
pub struct PhaseCell(AtomicU8);

impl PhaseCell {
    /// A cell holding `phase`.
    pub fn new(phase: Phase) -> Self {
        Self(AtomicU8::new(phase as u8))
    }

    /// The phase last stored.
    pub fn get(&self) -> Phase {
        Phase::ALL[usize::from(self.0.load(Ordering::Relaxed))]
    }

    /// Stores `phase`.
    pub fn set(&self, phase: Phase) {
        self.0.store(phase as u8, Ordering::Relaxed);
    }
}

/// One step of one session, as recorded.
#[derive(Clone, Debug)]
pub struct PhaseEvent {
    /// Who the event is about (ids, caller, arrival time).
    pub meta: Arc<SessionMeta>,
    /// Where the session's calls went at the time.
    pub route: Route,
    /// The step reached.
    pub phase: Phase,
    /// When it happened (monotonic; wall time is derived from the arrival's).
    pub at: Instant,
    /// The provider attempt this event belongs to (0 outside provider calls).
    pub attempt: u32,
    /// A short, sanitized explanation: never an API key, never prompt text.
    pub detail: Option<Arc<str>>,
    /// What the records need beyond the phase: how an attempt or the
    /// session ended.
    pub extra: Extra,
}

/// What some phase events carry besides their phase.
#[derive(Clone, Debug, Default)]
pub enum Extra {
    /// Nothing: most events.
    #[default]
    None,
    /// A PROVIDER_CALL_END: how the attempt went.
    Attempt(AttemptResult),
    /// A terminal event: how the session ended.
    Ended(Box<Ending>),
}

/// How one provider attempt ended, for `switchboard_upstream_attempts_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttemptResult {
    /// An answer (or a whole stream) came.
    Succeeded,
    /// The provider failed it: an error status, a broken connection.
    Failed,
    /// The daemon gave it up: a deadline, a cancel, the client leaving.
    Aborted,
}

impl AttemptResult {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptResult::Succeeded => "success",
            AttemptResult::Failed => "failure",
            AttemptResult::Aborted => "aborted",
        }
    }
}

/// One recorded event, as timelines and the history file keep it.
#[derive(Clone, Debug, PartialEq)]
pub struct EventView {
    /// What happened (its wire name: stored events are read back as text).
    pub phase: &'static str,
    /// When, by the wall clock.
    pub wall: SystemTime,
    /// When, since RECEIVED.
    pub elapsed: Duration,
    /// The provider attempt (0 outside provider calls).
    pub attempt: u32,
    /// Why, in the daemon's words: never prompt text, keys or provider bodies.
    pub detail: Option<Arc<str>>,
}

impl PhaseEvent {
    /// Time since the session's RECEIVED.
    pub fn elapsed(&self) -> Duration {
        self.at.saturating_duration_since(self.meta.received_at)
    }

    /// Wall-clock time of the event.
    pub fn wall(&self) -> SystemTime {
        self.meta.received_wall + self.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_cell_round_trips_every_phase() {
        let cell = PhaseCell::new(Phase::Received);
        for phase in Phase::ALL {
            cell.set(phase);
            assert_eq!(cell.get(), phase);
        }
    }

    #[test]
    fn only_the_last_five_phases_end_a_session() {
        let terminal: Vec<_> = Phase::ALL.into_iter().filter(|p| p.is_terminal()).collect();
        assert_eq!(terminal, &Phase::ALL[8..]);
    }
}
