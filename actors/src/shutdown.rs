//! The shutdown actor: the drain protocol.
//!
//! On SIGTERM, SIGINT or [`Drain`] (from `POST /admin/drain`) it tells its
//! starter the drain began ([`DrainHooks::began`]: the daemon tells the
//! service manager, and on an inherited socket stops accepting), tells every
//! shard's supervisor to stop admitting (or, in [`DrainMode::Handover`], to
//! keep admitting what already reached it), waits until no session is live or
//! `drain_timeout_ms` has passed, cancels whatever is left (a second signal
//! cancels at once), flushes every lifecycle logger (so history holds every
//! request), and then hands a [`DrainReport`] to whoever started the system
//! — the daemon, which closes its socket and exits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::future::join_all;
use futures_util::stream;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, oneshot};

use crate::error::CancelReason;
use crate::lifecycle::Flush;
use crate::settings::ShutdownSettings;
use crate::supervisor::{BeginDrain, CancelAll, DrainMode, WaitIdle};

/// Begins a graceful shutdown; answers whether this call began it.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Drain(pub DrainReason);

/// A signal the daemon was sent.
#[derive(Message)]
#[rtype(result = "()")]
struct Signal(&'static str);

/// Why the daemon is draining.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrainReason {
    /// A signal, by name (`SIGTERM`).
    Signal(&'static str),
    /// `POST /admin/drain`.
    Operator,
}

/// How the drain went, for the daemon's last log line.
#[derive(Clone, Debug)]
pub struct DrainReport {
    /// What started it.
    pub reason: DrainReason,
    /// Sessions live when it began.
    pub live_at_start: usize,
    /// Sessions cancelled because the deadline passed (or a second signal came).
    pub cancelled: usize,
    /// How long the drain took.
    pub took: Duration,
}

/// After cancelling, how long to wait for sessions to report their end. They
/// stop within a turn of the event loop; this only bounds a pathological case.
const CANCEL_GRACE: Duration = Duration::from_secs(2);

/// How long the last history write may take before the daemon exits
/// anyway: a healthy file takes milliseconds; this bounds a file that is
/// locked by another process or on a stalled disk.
const FLUSH_GRACE: Duration = Duration::from_secs(10);

/// How the drain is run, and who hears of it.
#[derive(Debug)]
pub struct DrainHooks {
    /// Refuse what still arrives, or hand it over.
    pub mode: DrainMode,
    /// Told once, when the drain begins.
    pub began: oneshot::Sender<DrainReason>,
    /// Told once, when the drain is over.
    pub drained: oneshot::Sender<DrainReport>,
}

/// How the shutdown actor reaches one shard.
#[derive(Clone)]
pub struct ShardDrain {
    /// Its supervisor stops admitting.
    pub begin: Recipient<BeginDrain>,
    /// … says when it is idle.
    pub idle: Recipient<WaitIdle>,
    /// … cancels what is left.
    pub cancel: Recipient<CancelAll>,
    /// Its logger writes what it has.
    pub flush: Recipient<Flush>,
}

/// Runs the drain protocol once.
pub struct Shutdown {
    /// How long live sessions may take to finish once a drain starts.
    settings: ShutdownSettings,
    /// Each shard's drain handle: a drain is over when all of them are idle.
    shards: Vec<ShardDrain>,
    /// Whether what still arrives is refused or handed over.
    mode: DrainMode,
    /// Told when the drain begins; taken then, so a drain begins once.
    on_began: Option<oneshot::Sender<DrainReason>>,
    /// Where the report goes; taken when the drain ends.
    on_drained: Option<oneshot::Sender<DrainReport>>,
    /// Set when a refusing drain begins; the HTTP layer reads it to refuse
    /// without asking a supervisor.
    draining: Arc<AtomicBool>,
    /// Wakes a running drain to cancel everything now (second signal).
    force: Arc<Notify>,
}

impl Shutdown {
    /// A shutdown actor that reports to `hooks`.
    pub fn new(
        settings: ShutdownSettings,
        shards: Vec<ShardDrain>,
        hooks: DrainHooks,
        draining: Arc<AtomicBool>,
    ) -> Self {
        Self {
            settings,
            shards,
            mode: hooks.mode,
            on_began: Some(hooks.began),
            on_drained: Some(hooks.drained),
            draining,
            force: Arc::new(Notify::new()),
        }
    }

    fn begin(&mut self, reason: DrainReason, ctx: &mut Context<Self>) -> bool {
        let Some(began) = self.on_began.take() else {
            return false;
        };
        if self.mode == DrainMode::Refuse {
            self.draining.store(true, Ordering::Relaxed);
        }
        tracing::info!(
            ?reason,
            mode = ?self.mode,
            timeout_ms = self.settings.drain_timeout_ms,
            "draining"
        );
        let _ = began.send(reason);
        let run = drain(
            reason,
            self.mode,
            self.shards.clone(),
            self.settings.drain_timeout(),
            self.force.clone(),
        );
        ctx.spawn(run.into_actor(self).map(|report, act, _| {
            if let Some(tx) = act.on_drained.take() {
                let _ = tx.send(report);
            }
        }));
        true
    }

    fn listen_for_signals(&mut self, ctx: &mut Context<Self>) {
        for (kind, name) in [
            (SignalKind::terminate(), "SIGTERM"),
            (SignalKind::interrupt(), "SIGINT"),
        ] {
            match signal(kind) {
                Ok(mut signals) => {
                    let signals = stream::poll_fn(move |cx| {
                        signals.poll_recv(cx).map(|got| got.map(|()| Signal(name)))
                    });
                    ctx.add_message_stream(signals);
                }
                Err(err) => tracing::warn!(signal = name, %err, "cannot listen for signal"),
            }
        }
    }
}

/// The protocol itself, outside the actor so its mailbox stays free.
async fn drain(
    reason: DrainReason,
    mode: DrainMode,
    shards: Vec<ShardDrain>,
    timeout: Duration,
    force: Arc<Notify>,
) -> DrainReport {
    let began = Instant::now();
    let counts = join_all(shards.iter().map(|s| s.begin.send(BeginDrain(mode)))).await;
    let live_at_start = counts.into_iter().map(|n| n.unwrap_or(0)).sum();
    let all_idle = || join_all(shards.iter().map(|s| s.idle.send(WaitIdle)));
    let finished = tokio::select! {
        _ = all_idle() => true,
        _ = tokio::time::sleep(timeout) => false,
        _ = force.notified() => false,
    };
    let mut cancelled = 0;
    if !finished {
        let cancel = |shard: &ShardDrain| shard.cancel.send(CancelAll(CancelReason::Shutdown));
        let counts = join_all(shards.iter().map(cancel)).await;
        cancelled = counts.into_iter().map(|n| n.unwrap_or(0)).sum();
        let _ = tokio::time::timeout(CANCEL_GRACE, all_idle()).await;
    }
    let flushed = join_all(shards.iter().map(|s| s.flush.send(Flush)));
    if tokio::time::timeout(FLUSH_GRACE, flushed).await.is_err() {
        tracing::error!(
            grace_ms = FLUSH_GRACE.as_millis() as u64,
            "the history file could not be written before exit; the last sessions are not in it"
        );
    }
    DrainReport {
        reason,
        live_at_start,
        cancelled,
        took: began.elapsed(),
    }
}

impl Actor for Shutdown {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.listen_for_signals(ctx);
    }
}

impl Handler<Drain> for Shutdown {
    type Result = bool;

    fn handle(&mut self, Drain(reason): Drain, ctx: &mut Self::Context) -> bool {
        self.begin(reason, ctx)
    }
}

impl Handler<Signal> for Shutdown {
    type Result = ();

    fn handle(&mut self, Signal(name): Signal, ctx: &mut Self::Context) {
        if !self.begin(DrainReason::Signal(name), ctx) {
            tracing::warn!(signal = name, "second signal: cancelling live sessions now");
            self.force.notify_one();
        }
    }
}
