//! The lifecycle logger: every phase of every session, recorded.
//!
//! Sessions, the supervisor and provider calls send it fire-and-forget
//! [`Record`]s through a [`Recorder`]. For each event it writes a `tracing`
//! line, keeps the session's bounded timeline (live ones, plus the most
//! recent finished ones, for `GET /admin/sessions/{id}`), hands it to live
//! readers ([`Subscribe`]), and, when a session ends, counts it in the
//! metrics. It batches history writes to the store (every
//! [`BATCH_INTERVAL`] or [`BATCH_EVENTS`] events, one batch in flight at a
//! time), keeping what the store has not taken yet in a bounded buffer
//! (`pending.rs`), and asks the store to prune old sessions at start and
//! then every [`PRUNE_EVERY`]. The shutdown actor sends [`Flush`] last; it
//! answers once everything recorded before it is in the file.

mod pending;
mod recorder;
mod subscribers;
mod summary;
mod timelines;
mod trace;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::ids::SessionId;
use crate::meta::SessionMeta;
use crate::metrics::{Metrics, SessionMetrics};
use crate::phase::{EventView, Extra, PhaseEvent};
use crate::record::EndRecord;
use crate::settings::LifecycleSettings;
use crate::store::{Prune, Pruned, WriteBatch, WriteFailed};
use pending::Pending;
use timelines::Timelines;

pub use recorder::Recorder;
pub use subscribers::{EventFilter, EventStream};
pub use summary::Classify;

/// Records one phase event. Fire-and-forget: the logger never slows a session.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Record(pub PhaseEvent);

/// Asks for a session's timeline, live or recently finished.
#[derive(Message)]
#[rtype(result = "Option<TimelineView>")]
pub struct Timeline(pub SessionId);

/// Answers once every record sent before it is in the history file (or
/// there is no history file).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;

/// Adds a live reader of phase events.
#[derive(Message)]
#[rtype(result = "EventStream")]
pub struct Subscribe(pub EventFilter);

/// A session's recorded events, as handed to admin answers.
#[derive(Clone, Debug)]
pub struct TimelineView {
    /// Who the session is.
    pub meta: Arc<SessionMeta>,
    /// Its events, oldest first.
    pub events: Vec<EventView>,
    /// Events not kept because the timeline was full.
    pub dropped_events: u32,
    /// How it ended, once it has.
    pub end: Option<Arc<EndRecord>>,
}

impl TimelineView {
    /// The session as history would store it now.
    pub fn record(&self) -> crate::record::SessionRecord {
        summary::record(
            &self.meta,
            &self.events,
            self.dropped_events,
            self.end.as_ref(),
        )
    }
}

/// How often pending history is written: a crash loses at most this much.
pub const BATCH_INTERVAL: Duration = Duration::from_millis(100);

/// Events that make a batch worth writing before the interval is up.
pub const BATCH_EVENTS: usize = 512;

/// How often old sessions are pruned (also once at start).
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// At most one warning about a falling-behind store per this long.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Where history goes, and what has not gone yet.
pub struct HistorySink {
    /// The store's writer.
    store: Recipient<WriteBatch>,
    /// The same, for pruning.
    prune: Recipient<Prune>,
    /// Not yet written.
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

/// Keeps timelines, counts sessions, writes history, feeds live readers.
pub struct LifecycleLogger {
    /// Timelines in memory.
    timelines: Timelines,
    /// The history file, when enabled.
    history: Option<HistorySink>,
    /// Session counting, when enabled.
    counting: Option<SessionMetrics>,
    /// The registry (drop counters, reader gauge).
    metrics: Arc<Metrics>,
    /// Live readers.
    subscribers: subscribers::Subscribers,
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
            timelines: Timelines::new(settings.max_events_per_session, settings.recent_sessions),
            history,
            counting,
            metrics,
            subscribers: subscribers::Subscribers::default(),
            classify,
        }
    }

    /// Keeps `event` and does what its phase calls for.
    fn note(&mut self, event: &PhaseEvent) {
        let kept = self.timelines.keep(event);
        if let (Extra::Attempt(result), Some(counting)) = (&event.extra, &mut self.counting) {
            counting.attempt(&event.meta.route().provider, *result);
        }
        let Extra::Ended(ending) = &event.extra else {
            if let Some(history) = &mut self.history {
                history.pending.changed(event.meta.id);
            }
            return;
        };
        let end = Arc::new(summary::end_record(kept, event, ending, self.classify));
        kept.end = Some(end.clone());
        if self.history.is_some() || self.counting.is_some() {
            let record = summary::record_of(kept);
            if let Some(counting) = &mut self.counting {
                counting.ended(&summary::ended(&record, kept, &end, event, ending));
            }
            if let Some(history) = &mut self.history {
                history.pending.finished(record);
            }
        }
        self.timelines.retire(event.meta.id);
    }

    /// Sends what is pending to the store, unless a batch is in flight.
    fn send_batch(&mut self, ctx: &mut Context<Self>) {
        let Some(history) = &mut self.history else {
            return;
        };
        if history.in_flight {
            return;
        }
        let timelines = &self.timelines;
        let batch = history.pending.take(|id| {
            timelines
                .get(&id)
                .filter(|kept| kept.end.is_none())
                .map(summary::record_of)
        });
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
                history.pending.give_back(batch);
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

impl Handler<Record> for LifecycleLogger {
    type Result = ();

    fn handle(&mut self, Record(event): Record, ctx: &mut Self::Context) {
        trace::trace_event(&event);
        self.note(&event);
        if self.subscribers.publish(&event) {
            self.metrics
                .event_subscribers
                .set(self.subscribers.len() as i64);
        }
        let due = self
            .history
            .as_ref()
            .is_some_and(|h| h.pending.events_since() >= BATCH_EVENTS);
        if due {
            self.send_batch(ctx);
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
            end: kept.end.clone(),
        })
    }
}

impl Handler<Flush> for LifecycleLogger {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Flush, ctx: &mut Self::Context) -> Self::Result {
        // Mailbox order is the guarantee: every Record sent before this Flush
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
        self.metrics
            .event_subscribers
            .set(self.subscribers.len() as i64);
        MessageResult(stream)
    }
}
