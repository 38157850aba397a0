//! The timelines the logger keeps in memory: every live session's, and the
//! most recent finished ones, each bounded in events.
//!
//! Besides the events themselves, each timeline keeps the few instants the
//! session's summary is made of (queue wait, first attempt, first token), so
//! the summary is right even when the event list is full.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ids::{SessionId, SessionMap};
use crate::meta::SessionMeta;
use crate::phase::{EventView, Phase, PhaseEvent};
use crate::record::EndRecord;

/// A timeline as kept in memory.
pub struct Kept {
    /// Who the session is.
    pub meta: Arc<SessionMeta>,
    /// Its events, oldest first, at most `max_events_per_session`.
    pub events: Vec<EventView>,
    /// Events not kept because the timeline was full.
    pub dropped_events: u32,
    /// How it ended, once it has.
    pub end: Option<Arc<EndRecord>>,
    /// The model first asked for at a provider (the route may move on a
    /// fallback); `None` for a request never routed.
    pub first_model: Option<Arc<str>>,
    /// The instants its summary is computed from.
    pub marks: Marks,
}

/// Instants of a session's life that its summary needs.
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
    /// The highest attempt number seen.
    pub attempts: u32,
}

impl Marks {
    fn note(&mut self, event: &PhaseEvent) {
        self.attempts = self.attempts.max(event.attempt);
        match event.phase {
            Phase::Queued => {
                self.ever_queued = true;
                self.queued_since.get_or_insert(event.at);
            }
            Phase::Dequeued => self.stop_waiting(event.at),
            Phase::ProviderCallStart if self.first_attempt.is_none() => {
                self.first_attempt = Some(event.at);
                self.queued_before_first_attempt = self.queued;
            }
            Phase::ProviderCallEnd => self.last_attempt_end = Some(event.at),
            Phase::FirstToken => {
                self.first_token.get_or_insert(event.at);
            }
            phase if phase.is_terminal() => self.stop_waiting(event.at),
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

/// Live and recently finished timelines.
pub struct Timelines {
    /// Events kept per session.
    max_events: usize,
    /// Finished timelines kept.
    max_recent: usize,
    /// Timelines by session.
    kept: SessionMap<Kept>,
    /// Finished sessions, oldest first, so the oldest is forgotten first.
    finished: VecDeque<SessionId>,
}

impl Timelines {
    /// Empty timelines with these bounds.
    pub fn new(max_events: usize, max_recent: usize) -> Self {
        Self {
            max_events,
            max_recent,
            kept: SessionMap::default(),
            finished: VecDeque::new(),
        }
    }

    /// Adds `event` to its session's timeline (making one for a new session)
    /// and returns the timeline.
    pub fn keep(&mut self, event: &PhaseEvent) -> &mut Kept {
        let max_events = self.max_events;
        let kept = self.kept.entry(event.meta.id).or_insert_with(|| {
            let route = event.meta.route();
            Kept {
                meta: event.meta.clone(),
                events: Vec::with_capacity(8),
                dropped_events: 0,
                end: None,
                first_model: (!route.provider.is_empty()).then_some(route.model),
                marks: Marks::default(),
            }
        });
        kept.marks.note(event);
        let view = event.view();
        if kept.events.len() < max_events {
            kept.events.push(view);
        } else {
            // A full timeline still shows how the session ended.
            kept.dropped_events += 1;
            if let Some(last) = kept.events.last_mut().filter(|_| event.phase.is_terminal()) {
                *last = view;
            }
        }
        kept
    }

    /// A session has ended: its timeline becomes a recent one, and the oldest
    /// recent one beyond the limit is forgotten.
    pub fn retire(&mut self, id: SessionId) {
        self.finished.push_back(id);
        while self.finished.len() > self.max_recent {
            if let Some(old) = self.finished.pop_front() {
                self.kept.remove(&old);
            }
        }
    }

    /// A session's timeline, if kept.
    pub fn get(&self, id: &SessionId) -> Option<&Kept> {
        self.kept.get(id)
    }
}
