//! How a session (and the provider call it makes) records its phases.
//!
//! The recorder keeps the session's timeline itself ([`Progress`]): a phase
//! is pushed under a lock only the session's own thread takes on the
//! request path, and written to the log at once. The lifecycle logger hears
//! from a session twice — [`Began`] when it arrives (so its open row can be
//! written, and a crash can be told apart), [`Ended`] when it ends (its
//! record, for history and metrics) — and for each event only while someone
//! reads the live event stream ([`Happened`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use actix::Recipient;

use super::progress::Progress;
use super::{Ended, Happened, Live};
use crate::error::GatewayError;
use crate::meta::{Route, SessionMeta};
use crate::outcome::{Ending, Outcome};
use crate::phase::{AttemptResult, EventView, Extra, Phase, PhaseCell, PhaseEvent};
use crate::record::SessionRecord;
use crate::transcript::Transcript;
use crate::usage::Usage;

/// Where recorders report: the logger's mailboxes, and how many live event
/// readers there are (so events are sent one by one only while someone
/// reads). Shared by every recorder (an `Arc`: cloning three mailbox
/// senders per session showed in profiles).
pub type Sink = Arc<SinkTo>;

/// What a [`Sink`] holds.
pub struct SinkTo {
    /// Sessions that arrived and have not ended (the logger's).
    pub live: Arc<Live>,
    /// Sessions that end.
    pub ended: Recipient<Ended>,
    /// Single events, for live readers.
    pub happened: Recipient<Happened>,
    /// Live readers now (kept by the logger).
    pub readers: Arc<AtomicUsize>,
    /// `lifecycle.max_events_per_session`.
    pub max_events: usize,
}

/// A session's recorder and what it has recorded.
struct Inner {
    /// Who the events are about: what is fixed at arrival.
    meta: Arc<SessionMeta>,
    /// Where it reports.
    sink: Sink,
    /// The latest phase, for admin listings to read without the lock.
    phase: PhaseCell,
    /// Its record so far, and its route.
    progress: Mutex<Progress>,
}

/// Records one session's phases. Cheap to clone; every clone records for
/// the same session. It also knows whether a provider attempt is open, so an
/// aborted call still gets its PROVIDER_CALL_END, and gathers the token
/// usage the provider reports.
#[derive(Clone)]
pub struct Recorder(Arc<Inner>);

impl Recorder {
    /// A recorder for the session described by `meta`, first routed to
    /// `route` (an empty provider: a request that named none).
    pub fn new(meta: Arc<SessionMeta>, route: Route, sink: Sink) -> Self {
        let progress = Progress {
            events: Vec::with_capacity(8),
            first_model: (!route.provider.is_empty()).then(|| route.model.clone()),
            route,
            ..Progress::default()
        };
        Self(Arc::new(Inner {
            meta,
            sink,
            phase: PhaseCell::new(Phase::Received),
            progress: Mutex::new(progress),
        }))
    }

    /// Where the session's calls go now.
    pub fn route(&self) -> Route {
        self.progress().route.clone()
    }

    /// Moves the session to another target (an alias's fallback).
    pub fn set_route(&self, route: Route) {
        self.progress().route = route;
    }

    /// The latest recorded phase.
    pub fn phase(&self) -> Phase {
        self.0.phase.get()
    }

    /// The same, also keeping the session's prompt and answer text.
    pub fn transcribing(self, transcript: Transcript) -> Self {
        self.progress().transcript = Some(transcript);
        self
    }

    /// The session this recorder is for.
    pub fn meta(&self) -> &Arc<SessionMeta> {
        &self.0.meta
    }

    fn progress(&self) -> MutexGuard<'_, Progress> {
        self.0
            .progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records RECEIVED at `at` (taken when the request arrived) and adds
    /// the session to the logger's live ones. Its detail names the route when it is
    /// not chat completions.
    pub fn received(&self, at: Instant) {
        let detail = self.0.meta.wire.received_detail().map(Arc::from);
        self.push(Phase::Received, at, 0, detail, Extra::None);
        self.0.sink.live.insert(self.clone());
    }

    /// Records `phase` now. Terminal phases go through [`Recorder::end`].
    pub fn record(&self, phase: Phase, detail: Option<Arc<str>>) {
        debug_assert!(!phase.is_terminal(), "{phase:?} must be recorded by end()");
        self.push(phase, Instant::now(), 0, detail, Extra::None);
    }

    /// A provider attempt begins; returns its number (1 for the first of
    /// the session, counting retries and fallbacks).
    pub fn attempt_started(&self) -> u32 {
        let attempt = {
            let mut progress = self.progress();
            progress.attempts += 1;
            progress.open_attempt = progress.attempts;
            progress.attempts
        };
        let detail = Some(Arc::from(self.route().to_string()));
        self.push(
            Phase::ProviderCallStart,
            Instant::now(),
            attempt,
            detail,
            Extra::None,
        );
        attempt
    }

    /// Attempts made so far.
    pub fn attempts(&self) -> u32 {
        self.progress().attempts
    }

    /// The open provider attempt ends, however it ended. Does nothing when no
    /// attempt is open, so callers on every exit path may call it.
    pub fn attempt_ended(&self, result: AttemptResult, detail: impl Into<Arc<str>>) {
        let attempt = {
            let mut progress = self.progress();
            let attempt = std::mem::take(&mut progress.open_attempt);
            if attempt != 0 {
                let provider = progress.route.provider.clone();
                progress.attempt_results.push((provider, result));
            }
            attempt
        };
        if attempt != 0 {
            let extra = Extra::Attempt(result);
            self.push(
                Phase::ProviderCallEnd,
                Instant::now(),
                attempt,
                Some(detail.into()),
                extra,
            );
        }
    }

    /// Whether the first streamed chunk has arrived.
    pub fn first_token_seen(&self) -> bool {
        self.progress().marks.first_token.is_some()
    }

    /// The first streamed chunk arrived.
    pub fn first_token(&self) {
        let attempt = self.progress().open_attempt;
        self.push(
            Phase::FirstToken,
            Instant::now(),
            attempt,
            None,
            Extra::None,
        );
    }

    /// The provider reported tokens (a later report completes an earlier one).
    pub fn add_usage(&self, usage: Usage) {
        self.progress().usage.merge(usage);
    }

    /// Adds answer text to the transcript, if one is kept: a whole body
    /// (`stream` false) or streamed events.
    pub fn transcribe(&self, bytes: &[u8], stream: bool) {
        if let Some(transcript) = &mut self.progress().transcript {
            match stream {
                true => transcript.events(bytes),
                false => transcript.body(bytes),
            }
        }
    }

    /// Records the session's last phase and how it ended: COMPLETED without
    /// an error; else TIMEOUT, ERROR or CANCELLED for a session that was
    /// `allocated`, REJECTED (or CANCELLED) for a request that never was.
    /// The logger is told, and writes it to history and the metrics.
    pub fn end(&self, allocated: bool, mut ending: Ending) {
        let phase = Outcome::phase_for(ending.error.as_ref(), allocated);
        let detail = ending.error.as_ref().map(|e| Arc::from(e.detail()));
        {
            let progress = self.progress();
            ending.usage = progress.usage;
            if let Some(transcript) = &progress.transcript {
                ending.exchange = Some(Arc::new(transcript.exchange()));
            }
        }
        let extra = Extra::Ended(Box::new(ending));
        let at = Instant::now();
        self.push(phase, at, 0, detail.clone(), Extra::None);
        self.0.sink.ended.do_send(Ended {
            recorder: self.clone(),
            event: self.event(phase, at, 0, detail, extra),
        });
    }

    /// [`Recorder::end`] for a request that failed with `error`.
    pub fn end_with(&self, allocated: bool, error: GatewayError) {
        let ending = Ending {
            error: Some(error),
            ..Ending::default()
        };
        self.end(allocated, ending);
    }

    /// The session's record as it stands: the final one once it has ended.
    pub fn snapshot(&self) -> SessionRecord {
        let progress = self.progress();
        match &progress.record {
            Some(record) => SessionRecord::clone(record),
            None => {
                let events = progress.events.clone();
                let route = &progress.route;
                super::summary::record(&self.0.meta, route, events, progress.dropped_events, None)
            }
        }
    }

    /// The lock on the record, for the logger.
    pub(super) fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress()
    }

    fn event(
        &self,
        phase: Phase,
        at: Instant,
        attempt: u32,
        detail: Option<Arc<str>>,
        extra: Extra,
    ) -> PhaseEvent {
        PhaseEvent {
            meta: self.0.meta.clone(),
            route: self.route(),
            phase,
            at,
            attempt,
            detail,
            extra,
        }
    }

    fn push(
        &self,
        phase: Phase,
        at: Instant,
        attempt: u32,
        detail: Option<Arc<str>>,
        extra: Extra,
    ) {
        let meta = &self.0.meta;
        self.0.phase.set(phase);
        let elapsed = at.saturating_duration_since(meta.received_at);
        let view = EventView {
            phase: phase.as_str(),
            wall: meta.received_wall + elapsed,
            elapsed,
            attempt,
            detail: detail.clone(),
        };
        self.progress()
            .push(view, phase, at, self.0.sink.max_events);
        let route = || self.route();
        super::trace::trace(meta, route, phase, elapsed, attempt, detail.as_deref());
        if self.0.sink.readers.load(Ordering::Relaxed) > 0 && !phase.is_terminal() {
            let event = self.event(phase, at, attempt, detail, extra);
            self.0.sink.happened.do_send(Happened(event));
        }
    }
}
