//! How a session (and the provider call it makes) records its phases.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use actix::Recipient;

use super::Record;
use crate::error::GatewayError;
use crate::meta::SessionMeta;
use crate::outcome::{Ending, Outcome};
use crate::phase::{AttemptResult, Extra, Phase, PhaseEvent};
use crate::transcript::Transcript;
use crate::usage::Usage;

/// Records one session's phases, fire-and-forget.
///
/// Cheap to clone; every clone records for the same session. It also knows
/// whether a provider attempt is open, so an aborted call still gets its
/// PROVIDER_CALL_END, and gathers the token usage the provider reports, so
/// the terminal event carries it.
#[derive(Clone)]
pub struct Recorder {
    /// Who the events are about.
    meta: Arc<SessionMeta>,
    /// Where they go.
    logger: Recipient<Record>,
    /// The attempt whose PROVIDER_CALL_START has no END yet (0: none).
    open_attempt: Arc<AtomicU32>,
    /// Attempts made so far, across retries and fallbacks.
    attempts: Arc<AtomicU32>,
    /// Set when the first streamed chunk arrived.
    first_token: Arc<AtomicBool>,
    /// Tokens reported so far; locked only when a report is found.
    usage: Arc<Mutex<Usage>>,
    /// The prompt and answer text, when `history.record_prompts` is on.
    transcript: Option<Arc<Mutex<Transcript>>>,
}

impl Recorder {
    /// A recorder for the session described by `meta`.
    pub fn new(meta: Arc<SessionMeta>, logger: Recipient<Record>) -> Self {
        Self {
            meta,
            logger,
            open_attempt: Arc::new(AtomicU32::new(0)),
            attempts: Arc::new(AtomicU32::new(0)),
            first_token: Arc::new(AtomicBool::new(false)),
            usage: Arc::default(),
            transcript: None,
        }
    }

    /// The same, also keeping the session's prompt and answer text.
    pub fn transcribing(mut self, transcript: Transcript) -> Self {
        self.transcript = Some(Arc::new(Mutex::new(transcript)));
        self
    }

    /// Adds answer text to the transcript, if one is kept: a whole body
    /// (`stream` false) or streamed events.
    pub fn transcribe(&self, bytes: &[u8], stream: bool) {
        if let Some(transcript) = &self.transcript {
            let mut transcript = transcript.lock().unwrap_or_else(PoisonError::into_inner);
            match stream {
                true => transcript.events(bytes),
                false => transcript.body(bytes),
            }
        }
    }

    /// The session this recorder is for.
    pub fn meta(&self) -> &Arc<SessionMeta> {
        &self.meta
    }

    /// Records `phase` now. Terminal phases go through [`Recorder::end`].
    pub fn record(&self, phase: Phase, detail: Option<Arc<str>>) {
        debug_assert!(!phase.is_terminal(), "{phase:?} must be recorded by end()");
        self.send(phase, Instant::now(), 0, detail, Extra::None);
    }

    /// Records `phase` at `at` (used for RECEIVED, taken when the request arrived).
    pub fn record_at(&self, phase: Phase, at: Instant, detail: Option<Arc<str>>) {
        self.send(phase, at, 0, detail, Extra::None);
    }

    /// A provider attempt begins; returns its number (1 for the first of
    /// the session, counting retries and fallbacks).
    pub fn attempt_started(&self) -> u32 {
        let attempt = self.attempts.fetch_add(1, Ordering::Relaxed) + 1;
        self.open_attempt.store(attempt, Ordering::Relaxed);
        let detail = Some(Arc::from(self.meta.route().to_string()));
        self.send(
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
        self.attempts.load(Ordering::Relaxed)
    }

    /// The open provider attempt ends, however it ended. Does nothing when no
    /// attempt is open, so callers on every exit path may call it.
    pub fn attempt_ended(&self, result: AttemptResult, detail: impl Into<Arc<str>>) {
        let attempt = self.open_attempt.swap(0, Ordering::Relaxed);
        if attempt != 0 {
            let detail = Some(detail.into());
            let extra = Extra::Attempt(result);
            self.send(
                Phase::ProviderCallEnd,
                Instant::now(),
                attempt,
                detail,
                extra,
            );
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
        self.send(
            Phase::FirstToken,
            Instant::now(),
            attempt,
            None,
            Extra::None,
        );
    }

    /// The provider reported tokens (a later report completes an earlier one).
    pub fn add_usage(&self, usage: Usage) {
        self.usage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .merge(usage);
    }

    /// Records the session's last phase and how it ended: COMPLETED without
    /// an error; else TIMEOUT, ERROR or CANCELLED for a session that was
    /// `allocated`, REJECTED (or CANCELLED) for a request that never was.
    pub fn end(&self, allocated: bool, mut ending: Ending) {
        let phase = Outcome::phase_for(ending.error.as_ref(), allocated);
        let detail = ending.error.as_ref().map(|e| Arc::from(e.detail()));
        ending.usage = *self.usage.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(transcript) = &self.transcript {
            let transcript = transcript.lock().unwrap_or_else(PoisonError::into_inner);
            ending.exchange = Some(Arc::new(transcript.exchange()));
        }
        let extra = Extra::Ended(Box::new(ending));
        self.send(phase, Instant::now(), 0, detail, extra);
    }

    /// [`Recorder::end`] for a request that failed with `error`.
    pub fn end_with(&self, allocated: bool, error: GatewayError) {
        let ending = Ending {
            error: Some(error),
            ..Ending::default()
        };
        self.end(allocated, ending);
    }

    fn send(
        &self,
        phase: Phase,
        at: Instant,
        attempt: u32,
        detail: Option<Arc<str>>,
        extra: Extra,
    ) {
        self.meta.phase.set(phase);
        self.logger.do_send(Record(PhaseEvent {
            meta: self.meta.clone(),
            phase,
            at,
            attempt,
            detail,
            extra,
        }));
    }
}
