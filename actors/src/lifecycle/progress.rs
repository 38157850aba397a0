//! What a session has recorded so far: its bounded timeline, the instants
//! its summary is made of, its usage and (opt-in) its text. Kept by the
//! session's [`Recorder`](super::Recorder) itself, behind a lock nobody
//! else takes on the request path, so recording a phase is a push, not a
//! message.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::meta::Route;
use crate::phase::{AttemptResult, EventView, Phase};
use crate::record::SessionRecord;
use crate::transcript::Transcript;
use crate::usage::Usage;

/// A session's record so far.
#[derive(Debug, Default)]
pub struct Progress {
    /// Its events, oldest first, at most `max_events_per_session`.
    pub events: Vec<EventView>,
    /// Events not kept because the timeline was full.
    pub dropped_events: u32,
    /// The instants its summary is computed from.
    pub marks: Marks,
    /// The attempt whose PROVIDER_CALL_START has no END yet (0: none).
    pub open_attempt: u32,
    /// Attempts started so far, across retries and fallbacks.
    pub attempts: u32,
    /// How each ended attempt went, and at which provider (for
    /// `switchboard_upstream_attempts_total`, counted when the session ends).
    pub attempt_results: Vec<(Arc<str>, AttemptResult)>,
    /// Tokens reported so far.
    pub usage: Usage,
    /// The prompt and answer, when `history.record_prompts` is on.
    pub transcript: Option<Transcript>,
    /// Whether it has events the history file does not have yet.
    pub changed: bool,
    /// Where its calls go now (an alias's fallback moves it).
    pub route: Route,
    /// The model first asked for at a provider (the route moves on a fallback).
    pub first_model: Option<Arc<str>>,
    /// Its final record, once it has ended.
    pub record: Option<Arc<SessionRecord>>,
}

/// Instants of a session's life that its summary needs, kept even when the
/// event list is full.
#[derive(Clone, Copy, Debug, Default)]
pub struct Marks {
    /// When it began its current wait for capacity, if waiting.
    pub queued_since: Option<Instant>,
    /// Time waited for capacity so far.
    pub queued: Duration,
    /// Time waited before the first attempt began.
    pub queued_before_first_attempt: Duration,
    /// Whether it ever waited.
    pub ever_queued: bool,
    /// When the first attempt began.
    pub first_attempt: Option<Instant>,
    /// When the last attempt ended.
    pub last_attempt_end: Option<Instant>,
    /// When the first streamed chunk came.
    pub first_token: Option<Instant>,
}

impl Marks {
    fn note(&mut self, phase: Phase, at: Instant) {
        match phase {
            Phase::Queued => {
                self.ever_queued = true;
                self.queued_since.get_or_insert(at);
            }
            Phase::Dequeued => self.stop_waiting(at),
            Phase::ProviderCallStart if self.first_attempt.is_none() => {
                self.first_attempt = Some(at);
                self.queued_before_first_attempt = self.queued;
            }
            Phase::ProviderCallEnd => self.last_attempt_end = Some(at),
            Phase::FirstToken => {
                self.first_token.get_or_insert(at);
            }
            phase if phase.is_terminal() => self.stop_waiting(at),
            _ => {}
        }
    }

    fn stop_waiting(&mut self, at: Instant) {
        if let Some(since) = self.queued_since.take() {
            self.queued += at.saturating_duration_since(since);
        }
    }

    /// What the daemon itself added: arrival to the first attempt (less the
    /// wait for capacity), plus the last attempt's end to the session's end.
    /// `None` for a session that never called a provider.
    pub fn overhead(&self, received: Instant, ended: Instant) -> Option<Duration> {
        let first = self.first_attempt?;
        let before = first
            .saturating_duration_since(received)
            .saturating_sub(self.queued_before_first_attempt);
        let after = self
            .last_attempt_end
            .map_or(Duration::ZERO, |end| ended.saturating_duration_since(end));
        Some(before + after)
    }
}

impl Progress {
    /// Adds an event, keeping at most `max_events` (a full timeline still
    /// shows how the session ended: its last event is replaced by the end).
    pub fn push(&mut self, event: EventView, phase: Phase, at: Instant, max_events: usize) {
        self.marks.note(phase, at);
        self.changed = true;
        if self.events.len() < max_events {
            self.events.push(event);
        } else {
            self.dropped_events += 1;
            if let Some(last) = self.events.last_mut().filter(|_| phase.is_terminal()) {
                *last = event;
            }
        }
    }
}
