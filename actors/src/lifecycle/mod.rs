//! The lifecycle logger: what every session did, kept and counted.
//!
//! A session's [`Recorder`] keeps its own timeline and writes its `tracing`
//! lines; the logger hears from it when it arrives ([`Began`]) and when it
//! ends ([`Ended`]), and, only while someone reads the live event stream,
//! at each phase ([`Happened`]). With that it keeps the registry of live
//! sessions' recorders, the most recent finished records (for
//! `GET /admin/sessions/{id}`, [`Recent`]), counts each ended session in the
//! metrics, feeds live readers ([`Subscribe`]) and batches history writes to
//! the store: every [`BATCH_INTERVAL`] or [`BATCH_EVENTS`] events, one batch
//! in flight at a time, the finished sessions' records plus an open row for
//! each live session that changed. What the store has not taken yet waits in
//! a bounded buffer (`pending.rs`). It asks the store to prune old sessions
//! at start and then every [`PRUNE_EVERY`]. The shutdown actor sends
//! [`Flush`] last; it answers once everything recorded before it is in the
//! file.

mod live;
mod pending;
mod progress;
mod recent;
mod recorder;
mod subscribers;
mod summary;
mod trace;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::ids::SessionId;
use crate::metrics::{Metrics, SessionMetrics};
use crate::phase::{Extra, PhaseEvent};
use crate::record::SessionRecord;
use crate::settings::LifecycleSettings;
use crate::store::{Prune, Pruned, WriteBatch, WriteFailed};
use pending::Pending;

pub use live::Live;
pub use recorder::{Recorder, Sink, SinkTo};
pub use subscribers::{EventFilter, EventStream};
pub use summary::Classify;

/// A session ended: its recorder and its terminal event (with how it ended).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Ended {
    /// The session that ended: its record is built from what the recorder holds.
    pub recorder: Recorder,
    /// Its last phase, sent to event readers like every other.
    pub event: PhaseEvent,
}

/// One phase event, sent only while live readers are subscribed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Happened(pub PhaseEvent);

/// Asks for a recently finished session's record.
#[derive(Message)]
#[rtype(result = "Option<Arc<SessionRecord>>")]
pub struct Recent(pub SessionId);

/// Answers once every record sent before it is in the history file (or
/// there is no history file).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;

/// Adds a live reader of phase events.
#[derive(Message)]
#[rtype(result = "EventStream")]
pub struct Subscribe(pub EventFilter);

/// How often pending history is written: a crash loses at most this much.
pub const BATCH_INTERVAL: Duration = Duration::from_millis(100);

/// Events that make a batch worth writing before the interval is up: about
/// 700 sessions. A transaction costs the same whatever it holds, so small
/// batches cost more per row: measured on this project's machine, a row cost
/// 15 µs of the store's CPU in batches of 20, 8 µs in batches of 100 and
/// 5 µs from 500 on.
pub const BATCH_EVENTS: usize = 4096;

/// How often old sessions are pruned (also once at start).
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// At most one warning about a falling-behind store per this long.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Where history goes, and what has not gone yet.
pub struct HistorySink {
    /// Where batches go: the SQLite writer on its own thread, so nothing here waits on disk.
    store: Recipient<WriteBatch>,
    /// The same, for pruning.
    prune: Recipient<Prune>,
    /// Finished sessions not yet written.
    pending: Pending,
    /// Whether a batch is being written (one at a time keeps them in order).
    in_flight: bool,
    /// Whether the last write failed (the next waits for the interval).
    failing: bool,
    /// `Flush`es waiting for the buffer to empty.
    waiters: Vec<oneshot::Sender<()>>,
    /// When drops were last warned about.
    warned: Option<Instant>,
}

impl HistorySink {
    /// History written through the store's writer.
    pub fn new(store: Recipient<WriteBatch>, prune: Recipient<Prune>) -> Self {
        Self {
            store,
            prune,
            pending: Pending::default(),
            in_flight: false,
            failing: false,
            waiters: Vec::new(),
            warned: None,
        }
    }
}

/// Keeps live recorders and recent records, counts sessions, writes
/// history, feeds live readers.
pub struct LifecycleLogger {
    /// Live sessions' recorders (they add themselves).
    live: Arc<Live>,
    /// Recently finished sessions.
    recent: recent::Recent,
    /// The history file, when enabled.
    history: Option<HistorySink>,
    /// Session counting, when enabled.
    counting: Option<SessionMetrics>,
    /// The registry (drop counters, reader gauge).
    metrics: Arc<Metrics>,
    /// Event stream readers, each with a bounded queue so a slow one is dropped, not waited for.
    subscribers: subscribers::Subscribers,
    /// How many there are, read by every recorder.
    readers: Arc<AtomicUsize>,
    /// Errors to statuses and codes, from the daemon.
    classify: Classify,
}

impl LifecycleLogger {
    /// A logger keeping what `settings` allows.
    pub fn new(
        settings: &LifecycleSettings,
        classify: Classify,
        metrics: Arc<Metrics>,
        counting: Option<SessionMetrics>,
        history: Option<HistorySink>,
    ) -> Self {
        Self {
            live: Arc::default(),
            recent: recent::Recent::new(settings.recent_sessions),
            history,
            counting,
            metrics,
            subscribers: subscribers::Subscribers::default(),
            readers: Arc::new(AtomicUsize::new(0)),
            classify,
        }
    }

    /// Where recorders add themselves when their session arrives.
    pub fn live(&self) -> Arc<Live> {
        self.live.clone()
    }

    /// The count of live readers recorders check before sending each event.
    pub fn readers(&self) -> Arc<AtomicUsize> {
        self.readers.clone()
    }

    /// A session ended: its final record, counted, kept, queued for history.
    fn ended(&mut self, recorder: &Recorder, event: &PhaseEvent) {
        self.live.remove(&event.meta.id);
        let Extra::Ended(ending) = &event.extra else {
            return;
        };
        let mut progress = recorder.lock();
        let end = Arc::new(summary::end_record(&progress, event, ending, self.classify));
        let events = std::mem::take(&mut progress.events);
        let record = summary::record(
            &event.meta,
            &progress.route,
            events,
            progress.dropped_events,
            Some(end.clone()),
        );
        let record = Arc::new(record);
        progress.record = Some(record.clone());
        progress.changed = false;
        if let Some(counting) = &mut self.counting {
            for (provider, result) in &progress.attempt_results {
                counting.attempt(provider, *result);
            }
            counting.ended(&summary::ended(&record, &progress, &end, event, ending));
        }
        drop(progress);
        if let Some(history) = &mut self.history {
            history.pending.recorded(record.phases.len());
            history.pending.finished(record.clone());
        }
        self.recent.keep(record);
    }

    /// Open rows of the live sessions that changed since the last batch.
    fn open_rows(&self) -> Vec<Arc<SessionRecord>> {
        let mut rows = Vec::new();
        for recorder in self.live.lock().values() {
            let mut progress = recorder.lock();
            if std::mem::take(&mut progress.changed) && progress.record.is_none() {
                let events = progress.events.clone();
                let meta = recorder.meta();
                rows.push(Arc::new(summary::record(
                    meta,
                    &progress.route,
                    events,
                    progress.dropped_events,
                    None,
                )));
            }
        }
        rows
    }

    /// Sends what is pending to the store, unless a batch is in flight.
    fn send_batch(&mut self, ctx: &mut Context<Self>) {
        let open = match &self.history {
            Some(history) if !history.in_flight => self.open_rows(),
            _ => return,
        };
        let Some(history) = &mut self.history else {
            return;
        };
        let mut batch = history.pending.take();
        batch.extend(open);
        if batch.is_empty() {
            for waiter in history.waiters.drain(..) {
                let _ = waiter.send(());
            }
            return;
        }
        history.in_flight = true;
        let write = history.store.send(WriteBatch(batch));
        ctx.spawn(
            write
                .into_actor(self)
                .map(|result, act, ctx| act.written(result, ctx)),
        );
    }

    /// A batch was written, or came back.
    fn written(
        &mut self,
        result: Result<Result<(), WriteFailed>, MailboxError>,
        ctx: &mut Context<Self>,
    ) {
        let Some(history) = &mut self.history else {
            return;
        };
        history.in_flight = false;
        match result {
            Ok(Ok(())) => {
                if std::mem::replace(&mut history.failing, false) {
                    tracing::info!("history writes resumed; catching up");
                }
            }
            Ok(Err(WriteFailed { batch, error })) => {
                if !std::mem::replace(&mut history.failing, true) {
                    tracing::warn!(%error, "cannot write history now; keeping it in memory (bounded) and retrying");
                }
                // Released before `send_batch` below, which takes it again.
                let live = self.live.lock();
                for record in batch {
                    match (&record.end, live.get(&record.id)) {
                        (Some(_), _) => history.pending.finished(record),
                        (None, Some(recorder)) => recorder.lock().changed = true,
                        (None, None) => {} // ended since: its final record waits
                    }
                }
            }
            Err(_) => tracing::error!("the history store is not running; a batch was lost"),
        }
        let due = history.pending.events_since() >= BATCH_EVENTS || !history.waiters.is_empty();
        if !history.failing && due {
            self.send_batch(ctx);
        }
    }

    /// Every interval: write what waits, count and warn about drops.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        self.send_batch(ctx);
        let Some(history) = &mut self.history else {
            return;
        };
        let dropped = history.pending.take_dropped();
        if dropped == Default::default() {
            return;
        }
        let family = &self.metrics.history_dropped;
        family
            .get_or_create(&crate::metrics::WhatLabel { what: "events" })
            .inc_by(dropped.events);
        family
            .get_or_create(&crate::metrics::WhatLabel { what: "sessions" })
            .inc_by(dropped.sessions);
        if history.warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            history.warned = Some(Instant::now());
            tracing::warn!(
                dropped_events = dropped.events,
                dropped_sessions = dropped.sessions,
                "the history store is falling behind: dropping phase detail (and sessions if it goes on); see switchboard_history_dropped_total"
            );
        }
    }

    /// Prunes one chunk; asks again at once while more are due.
    fn prune(&mut self, ctx: &mut Context<Self>) {
        let Some(history) = &self.history else { return };
        let prune = history.prune.send(Prune);
        ctx.spawn(prune.into_actor(self).map(|result, act, ctx| match result {
            Ok(Ok(Pruned { more: true, .. })) => act.prune(ctx),
            Ok(Err(error)) => tracing::warn!(%error, "cannot prune history"),
            _ => {}
        }));
    }

    /// Hands `event` to live readers; keeps the reader count current.
    fn publish(&mut self, event: &PhaseEvent) {
        if self.subscribers.publish(event) {
            self.readers_changed();
        }
    }

    fn readers_changed(&self) {
        let readers = self.subscribers.len();
        self.readers.store(readers, Ordering::Relaxed);
        self.metrics.event_subscribers.set(readers as i64);
    }

    fn due(&self) -> bool {
        self.history
            .as_ref()
            .is_some_and(|h| !h.in_flight && h.pending.events_since() >= BATCH_EVENTS)
    }
}

impl Actor for LifecycleLogger {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Sessions record several events each; a roomy mailbox keeps `send`
        // callers (Flush, Timeline) from waiting behind a burst.
        ctx.set_mailbox_capacity(4096);
        if self.history.is_some() {
            ctx.run_interval(BATCH_INTERVAL, |act, ctx| act.tick(ctx));
            self.prune(ctx);
            ctx.run_interval(PRUNE_EVERY, |act, ctx| act.prune(ctx));
        }
    }
}

impl Handler<Ended> for LifecycleLogger {
    type Result = ();

    fn handle(&mut self, Ended { recorder, event }: Ended, ctx: &mut Self::Context) {
        self.ended(&recorder, &event);
        self.publish(&event);
        if self.due() {
            self.send_batch(ctx);
        }
    }
}

impl Handler<Happened> for LifecycleLogger {
    type Result = ();

    fn handle(&mut self, Happened(event): Happened, _: &mut Self::Context) {
        self.publish(&event);
    }
}

impl Handler<Recent> for LifecycleLogger {
    type Result = Option<Arc<SessionRecord>>;

    fn handle(&mut self, Recent(id): Recent, _: &mut Self::Context) -> Self::Result {
        self.recent.get(&id)
    }
}

impl Handler<Flush> for LifecycleLogger {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Flush, ctx: &mut Self::Context) -> Self::Result {
        // Mailbox order is the guarantee: every Ended sent before this Flush
        // has been handled, so it is pending or written by now.
        let Some(history) = &mut self.history else {
            return Box::pin(async {});
        };
        let (tx, rx) = oneshot::channel();
        history.waiters.push(tx);
        self.send_batch(ctx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<Subscribe> for LifecycleLogger {
    type Result = MessageResult<Subscribe>;

    fn handle(&mut self, Subscribe(filter): Subscribe, _: &mut Self::Context) -> Self::Result {
        let stream = self.subscribers.subscribe(filter);
        self.readers_changed();
        MessageResult(stream)
    }
}
