//! Live readers of phase events (`GET /admin/events`).
//!
//! Each reader has a bounded channel. The logger never waits for one: an
//! event that does not fit drops that reader (its channel is closed, with a
//! flag saying why, so the HTTP layer can send a last event saying so), and
//! the event is serialized once however many readers want it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::phase::{Phase, PhaseEvent};

/// Events buffered per reader: a few seconds of a busy daemon's events for a
/// reader that pauses, while one that stopped reading is found out quickly.
pub const READER_BUFFER: usize = 1024;

/// Which events a reader wants; unset fields match everything.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    /// Only this session's.
    pub session: Option<crate::ids::SessionId>,
    /// Only sessions routed to this provider.
    pub provider: Option<String>,
    /// Only this phase.
    pub phase: Option<Phase>,
}

/// A reader's end: encoded events, and whether it was dropped for falling behind.
#[derive(Debug)]
pub struct EventStream {
    /// One JSON object per event.
    pub events: mpsc::Receiver<Bytes>,
    /// Set when the logger dropped this reader for falling behind.
    pub lagged: Arc<AtomicBool>,
}

/// One reader, as the logger holds it.
struct Reader {
    filter: EventFilter,
    tx: mpsc::Sender<Bytes>,
    lagged: Arc<AtomicBool>,
}

/// An event as readers get it.
#[derive(Serialize)]
struct Wire<'a> {
    session: String,
    request_id: &'a str,
    phase: &'static str,
    at: String,
    elapsed_ms: f64,
    attempt: u32,
    detail: Option<&'a str>,
    requested_model: &'a str,
    /// `None` for a request that never reached a provider, as in history.
    provider: Option<&'a str>,
    model: Option<&'a str>,
}

/// The live readers.
#[derive(Default)]
pub struct Subscribers {
    readers: Vec<Reader>,
}

impl Subscribers {
    /// Adds a reader of the events `filter` matches.
    pub fn subscribe(&mut self, filter: EventFilter) -> EventStream {
        let (tx, events) = mpsc::channel(READER_BUFFER);
        let lagged = Arc::new(AtomicBool::new(false));
        self.readers.push(Reader {
            filter,
            tx,
            lagged: lagged.clone(),
        });
        EventStream { events, lagged }
    }

    /// Counted so the recorder can skip building events nobody reads.
    pub fn len(&self) -> usize {
        self.readers.len()
    }

    /// Sends `event` to every reader that wants it; drops readers that are
    /// full or gone. Returns whether the set of readers changed.
    pub fn publish(&mut self, event: &PhaseEvent) -> bool {
        if self.readers.is_empty() {
            return false;
        }
        let route = &event.route;
        let mut encoded: Option<Bytes> = None;
        let before = self.readers.len();
        self.readers.retain(|reader| {
            if !matches(&reader.filter, event, &route.provider) {
                return !reader.tx.is_closed();
            }
            let bytes = encoded.get_or_insert_with(|| encode(event, &route.provider, &route.model));
            match reader.tx.try_send(bytes.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    reader.lagged.store(true, Ordering::Relaxed);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        self.readers.len() != before
    }
}

fn matches(filter: &EventFilter, event: &PhaseEvent, provider: &str) -> bool {
    filter.session.is_none_or(|id| id == event.meta.id)
        && filter.phase.is_none_or(|phase| phase == event.phase)
        && filter.provider.as_deref().is_none_or(|p| p == provider)
}

fn encode(event: &PhaseEvent, provider: &str, model: &str) -> Bytes {
    let wire = Wire {
        session: event.meta.id.to_string(),
        request_id: event.meta.request_id.as_str(),
        phase: event.phase.as_str(),
        at: humantime::format_rfc3339_millis(event.wall()).to_string(),
        elapsed_ms: (event.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        attempt: event.attempt,
        detail: event.detail.as_deref(),
        requested_model: &event.meta.requested,
        provider: (!provider.is_empty()).then_some(provider),
        model: (!provider.is_empty()).then_some(model),
    };
    serde_json::to_vec(&wire)
        .map(Bytes::from)
        .unwrap_or_default()
}
