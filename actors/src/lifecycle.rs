//! The lifecycle logger: every phase of every session, recorded.
//!
//! Sessions, the supervisor and provider calls send it fire-and-forget
//! [`Record`]s through a [`Recorder`]; it writes one `tracing` event per phase
//! and keeps a bounded timeline per session (live ones, plus the most recent
//! finished ones) for `GET /admin/sessions/{id}`. The shutdown actor sends
//! [`Flush`] last, so nothing recorded before the drain ended is lost.
//! Persistence to the store will hang off [`LifecycleLogger::retire`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;

use crate::ids::{SessionId, SessionMap};
use crate::meta::{SessionMeta, duration_ms};
use crate::phase::{Phase, PhaseEvent};
use crate::settings::LifecycleSettings;

/// Records one phase event. Fire-and-forget: the logger never slows a session.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Record(pub PhaseEvent);

/// Asks for a session's timeline, live or recently finished.
#[derive(Message)]
#[rtype(result = "Option<TimelineView>")]
pub struct Timeline(pub SessionId);

/// Answers once every record sent before it has been handled.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;

/// A session's recorded events, as handed to admin answers.
#[derive(Clone, Debug)]
pub struct TimelineView {
    /// Who the session is.
    pub meta: Arc<SessionMeta>,
    /// Its events, oldest first.
    pub events: Vec<EventView>,
    /// Events not kept because the timeline was full.
    pub dropped_events: u32,
}

/// One recorded event.
#[derive(Clone, Debug)]
pub struct EventView {
    /// What happened.
    pub phase: Phase,
    /// When, by the wall clock.
    pub wall: SystemTime,
    /// When, since RECEIVED.
    pub elapsed: Duration,
    /// The provider attempt (0 outside provider calls).
    pub attempt: u32,
    /// Sanitized explanation.
    pub detail: Option<Arc<str>>,
}

/// A timeline as kept in memory.
struct Kept {
    meta: Arc<SessionMeta>,
    events: Vec<EventView>,
    dropped_events: u32,
}

/// Keeps timelines and writes phase events to the log.
pub struct LifecycleLogger {
    /// Limits on what is kept.
    settings: LifecycleSettings,
    /// Timelines of live and recently finished sessions.
    timelines: SessionMap<Kept>,
    /// Finished sessions, oldest first, so the oldest is forgotten first.
    finished: VecDeque<SessionId>,
}

impl LifecycleLogger {
    /// A logger keeping what `settings` allows.
    pub fn new(settings: LifecycleSettings) -> Self {
        Self {
            settings,
            timelines: SessionMap::default(),
            finished: VecDeque::new(),
        }
    }

    fn keep(&mut self, event: &PhaseEvent) {
        let max_events = self.settings.max_events_per_session;
        let kept = self.timelines.entry(event.meta.id).or_insert_with(|| Kept {
            meta: event.meta.clone(),
            events: Vec::with_capacity(8),
            dropped_events: 0,
        });
        let view = EventView {
            phase: event.phase,
            wall: event.wall(),
            elapsed: event.elapsed(),
            attempt: event.attempt,
            detail: event.detail.clone(),
        };
        if kept.events.len() < max_events {
            kept.events.push(view);
        } else {
            // A full timeline still shows how the session ended.
            kept.dropped_events += 1;
            if let Some(last) = kept.events.last_mut().filter(|_| event.phase.is_terminal()) {
                *last = view;
            }
        }
    }

    /// A session has ended: its timeline becomes a recent one, and the oldest
    /// recent one beyond the limit is forgotten.
    fn retire(&mut self, id: SessionId) {
        self.finished.push_back(id);
        while self.finished.len() > self.settings.recent_sessions {
            if let Some(old) = self.finished.pop_front() {
                self.timelines.remove(&old);
            }
        }
    }
}

impl Actor for LifecycleLogger {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Sessions record several events each; a roomy mailbox keeps `send`
        // callers (Flush, Timeline) from waiting behind a burst.
        ctx.set_mailbox_capacity(4096);
    }
}

impl Handler<Record> for LifecycleLogger {
    type Result = ();

    fn handle(&mut self, Record(event): Record, _: &mut Self::Context) {
        trace_event(&event);
        self.keep(&event);
        if event.phase.is_terminal() {
            self.retire(event.meta.id);
        }
    }
}

impl Handler<Timeline> for LifecycleLogger {
    type Result = Option<TimelineView>;

    fn handle(&mut self, Timeline(id): Timeline, _: &mut Self::Context) -> Self::Result {
        self.timelines.get(&id).map(|kept| TimelineView {
            meta: kept.meta.clone(),
            events: kept.events.clone(),
            dropped_events: kept.dropped_events,
        })
    }
}

impl Handler<Flush> for LifecycleLogger {
    type Result = ();

    fn handle(&mut self, _: Flush, _: &mut Self::Context) {
        // Mailbox order is the guarantee: every Record sent before this Flush
        // has been handled. The store's batch will be written here too.
    }
}

/// One `tracing` event per phase: the end of a session at `info` (or `warn`
/// when it failed), the steps in between at `debug`.
fn trace_event(event: &PhaseEvent) {
    // Fields are only gathered for a level that is on: at the default level
    // most phases are not written, and reading the route takes a lock.
    macro_rules! emit {
        ($level:ident, $tracing_level:expr) => {{
            if !tracing::enabled!($tracing_level) {
                return;
            }
            let meta = &event.meta;
            let route = meta.route();
            tracing::$level!(
                session_id = %meta.id,
                request_id = %meta.request_id,
                phase = event.phase.as_str(),
                provider = &*route.provider,
                model = &*route.model,
                attempt = event.attempt,
                elapsed_ms = duration_ms(event.elapsed()),
                uid = meta.peer.map(|peer| peer.uid),
                detail = event.detail.as_deref().unwrap_or(""),
                "session {}",
                event.phase.as_str()
            )
        }};
    }
    match event.phase {
        Phase::Timeout | Phase::Error => emit!(warn, tracing::Level::WARN),
        phase if phase.is_terminal() => emit!(info, tracing::Level::INFO),
        _ => emit!(debug, tracing::Level::DEBUG),
    }
}

/// How a session (and the provider call it makes) records its phases.
///
/// Cheap to clone; every clone records for the same session. It also knows
/// whether a provider attempt is open, so an aborted call still gets its
/// PROVIDER_CALL_END.
#[derive(Clone)]
pub struct Recorder {
    /// Who the events are about.
    meta: Arc<SessionMeta>,
    /// Where they go.
    logger: Addr<LifecycleLogger>,
    /// The attempt whose PROVIDER_CALL_START has no END yet (0: none).
    open_attempt: Arc<AtomicU32>,
    /// Attempts made so far, across retries and fallbacks.
    attempts: Arc<AtomicU32>,
    /// Set when the first streamed chunk arrived.
    first_token: Arc<AtomicBool>,
}

impl Recorder {
    /// A recorder for the session described by `meta`.
    pub fn new(meta: Arc<SessionMeta>, logger: Addr<LifecycleLogger>) -> Self {
        Self {
            meta,
            logger,
            open_attempt: Arc::new(AtomicU32::new(0)),
            attempts: Arc::new(AtomicU32::new(0)),
            first_token: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The session this recorder is for.
    pub fn meta(&self) -> &Arc<SessionMeta> {
        &self.meta
    }

    /// Records `phase` now.
    pub fn record(&self, phase: Phase, detail: Option<Arc<str>>) {
        self.record_full(phase, Instant::now(), 0, detail);
    }

    /// Records `phase` at `at` (used for RECEIVED, taken when the request arrived).
    pub fn record_at(&self, phase: Phase, at: Instant, detail: Option<Arc<str>>) {
        self.record_full(phase, at, 0, detail);
    }

    /// A provider attempt begins; returns its number (1 for the first of
    /// the session, counting retries and fallbacks).
    pub fn attempt_started(&self) -> u32 {
        let attempt = self.attempts.fetch_add(1, Ordering::Relaxed) + 1;
        self.open_attempt.store(attempt, Ordering::Relaxed);
        let detail = Some(Arc::from(self.meta.route().to_string()));
        self.record_full(Phase::ProviderCallStart, Instant::now(), attempt, detail);
        attempt
    }

    /// Attempts made so far.
    pub fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// The open provider attempt ends, however it ended. Does nothing when no
    /// attempt is open, so callers on every exit path may call it.
    pub fn attempt_ended(&self, detail: impl Into<Arc<str>>) {
        let attempt = self.open_attempt.swap(0, Ordering::Relaxed);
        if attempt != 0 {
            let detail = Some(detail.into());
            self.record_full(Phase::ProviderCallEnd, Instant::now(), attempt, detail);
        }
    }

    /// Whether the first streamed chunk has arrived.
    pub fn first_token_seen(&self) -> bool {
        self.first_token.load(Ordering::Relaxed)
    }

    /// The first streamed chunk arrived.
    pub fn first_token(&self) {
        self.first_token.store(true, Ordering::Relaxed);
        let attempt = self.open_attempt.load(Ordering::Relaxed);
        self.record_full(Phase::FirstToken, Instant::now(), attempt, None);
    }

    fn record_full(&self, phase: Phase, at: Instant, attempt: u32, detail: Option<Arc<str>>) {
        self.meta.phase.set(phase);
        self.logger.do_send(Record(PhaseEvent {
            meta: self.meta.clone(),
            phase,
            at,
            attempt,
            detail,
        }));
    }
}
