//! The supervisor: admission, routing, the registry of live sessions — one
//! per shard.
//!
//! The HTTP layer sends it every chat request as [`Submit`] (or, when the
//! request could not even be read, [`Refused`], so it is still recorded). It
//! checks the caller's rate limit, resolves the model (or alias) to targets,
//! takes the first healthy target within its rate limit, and asks the
//! shared [`Admission`] for a slot: with one it starts the request's
//! [`Session`], without one the request waits (a task per waiting request
//! holds its ticket, its deadline and its client-gone signal, and tells the
//! supervisor how the wait ended: [`Waited`]), and a full queue refuses it.
//! A session holds its slot and gives it back by ending; it tells the
//! supervisor it has gone with [`SessionEnded`], and asks for the next
//! target of its alias with [`Reroute`]. Operators reach sessions through
//! it ([`ListSessions`], [`GetSession`], [`CancelSession`],
//! [`ListProviders`], [`GetStatus`]); the shutdown actor drains through it
//! ([`BeginDrain`], [`WaitIdle`], [`CancelAll`]).

mod handlers;
pub mod limits;
mod reload;
mod routes;
mod submit;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::admission::{Admission, Slot, Ticket};
use crate::answer::{ClientGone, ReplyTx};
use crate::error::{CancelReason, GatewayError};
use crate::ids::{SessionId, SessionMap};
use crate::lifecycle::{Recent, Recorder, Sink};
use crate::meta::{Received, Route, SessionMeta};
use crate::phase::Phase;
use crate::provider::ProviderHealth;
use crate::record::SessionRecord;
use crate::request::ChatRequest;
use crate::session::{Cancel, Session};
use crate::settings::{ActorSettings, SessionSettings};
use limits::Limits;
pub use reload::Reload;
use routes::MAX_MODEL_SHOWN;
// `Routes` is public for the `request` fuzz target, which resolves model
// names without running the actors.
pub use routes::{ProviderHandle, Routes, Target};

/// A chat request to admit and answer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Submit {
    /// Ids, arrival time, caller, priority.
    pub received: Received,
    /// Parsed once by the HTTP layer, so the supervisor never touches raw bytes.
    pub request: ChatRequest,
    /// Where the answer (or refusal) goes.
    pub reply: ReplyTx,
    /// Fires if the client goes away.
    pub gone: ClientGone,
}

/// A request refused before it could be submitted (unreadable, too large,
/// forbidden): recorded as RECEIVED then REJECTED. The HTTP layer answers it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Refused {
    /// Ids, arrival time, caller.
    pub received: Received,
    /// What the client is answered, and what the REJECTED row records.
    pub error: GatewayError,
}

/// Told by a session when it has stopped, however it ended (its slot has
/// already gone back with it).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionEnded(pub SessionId);

/// A session's target failed for good: it gives back its slot and asks for
/// the next target of its alias.
#[derive(Message)]
#[rtype(result = "Next")]
pub struct Reroute {
    /// The session giving its slot back; its registry entry moves to the next target.
    pub id: SessionId,
    /// The slot it held (its session slot is kept for the next target).
    pub slot: Slot,
}

/// Where a rerouted session goes next.
#[derive(Debug, MessageResponse)]
pub enum Next {
    /// This target, whose slot it holds now.
    Now(Target, Slot),
    /// This target, once the ticket resolves to its slot.
    Wait(Target, Ticket),
    /// No target is left.
    Done,
}

/// How a waiting request's wait ended, told by its waiting task.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Waited {
    /// The request whose wait ended: its waiting-registry entry is taken out.
    pub id: SessionId,
    /// Whether it starts, expired or was left: each has its own record.
    pub outcome: WaitOutcome,
}

/// How a wait for capacity ended.
#[derive(Debug)]
pub enum WaitOutcome {
    /// A slot came: start the session (with the client-gone signal back).
    Granted(Slot, ClientGone),
    /// Its deadline passed first.
    Expired,
    /// Its client went away first.
    Left,
}

/// Lists live and queued sessions, oldest first.
#[derive(Message)]
#[rtype(result = "Vec<SessionView>")]
pub struct ListSessions;

/// One session's record (live, queued or recent), and whether it is live.
#[derive(Message)]
#[rtype(result = "Option<(SessionRecord, bool)>")]
pub struct GetSession(pub SessionId);

/// Cancels a live or queued session; answers whether there was one.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct CancelSession(pub SessionId);

/// Lists providers with their load and health.
#[derive(Message)]
#[rtype(result = "Vec<ProviderView>")]
pub struct ListProviders;

/// A drain begins; answers how many sessions are live or queued.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct BeginDrain(pub DrainMode);

/// What a drain does with requests that still reach a supervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrainMode {
    /// Refuse them 503 with `Retry-After`: a plain `serve` owns its socket,
    /// so nothing else could take them while it drains.
    Refuse,
    /// Admit them: on a socket inherited from a service manager the daemon
    /// stops accepting when the drain begins, so only requests already on
    /// open connections still arrive, and the next process serves what
    /// waits in the socket's backlog.
    Handover,
}

/// Answers once no session is live or queued.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WaitIdle;

/// Cancels every live and queued session; answers how many.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CancelAll(pub CancelReason);

/// Asks how many sessions are live and queued and whether the daemon drains.
#[derive(Message)]
#[rtype(result = "Status")]
pub struct GetStatus;

/// A shard's state, for health checks.
#[derive(Clone, Copy, Debug, Default, MessageResponse)]
pub struct Status {
    /// Sessions running now.
    pub live: usize,
    /// Requests waiting for capacity.
    pub queued: usize,
    /// Whether new requests are refused.
    pub draining: bool,
}

/// A session as admin listings show it.
#[derive(Clone, Debug)]
pub struct SessionView {
    /// Who it is.
    pub meta: Arc<SessionMeta>,
    /// Where its calls go now.
    pub route: Route,
    /// Read from the recorder's cell at listing time, without taking its lock.
    pub phase: Phase,
    /// Its place in its provider's queue, when waiting (1 is next).
    pub position: Option<usize>,
}

/// A provider as `GET /admin/providers` shows it.
#[derive(Clone, Debug)]
pub struct ProviderView {
    /// As written in settings, so listings match history and metrics.
    pub name: Arc<str>,
    /// Calls running now (all shards).
    pub in_flight: usize,
    /// Requests waiting for one of its slots (all shards).
    pub queued: usize,
    /// The configured cap, shown beside `in_flight` so an operator sees saturation.
    pub max_concurrency: usize,
    /// Whether calls are failing now; an unhealthy provider is skipped by aliases.
    pub health: ProviderHealth,
}

/// How long a client refused for capacity or drain should wait. One second:
/// long enough for sessions to finish or a restarted daemon to come up.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// What is shared by every shard's supervisor: capacity and rate limits,
/// so both are exact however many shards take requests.
#[derive(Clone, Debug)]
pub struct Shared {
    /// Capacity and the queue.
    pub admission: Admission,
    /// Shared so a caller's rate is one count whichever shard serves it.
    pub limits: Arc<Limits>,
}

impl Shared {
    /// The shared state `settings` configure.
    pub fn new(settings: &ActorSettings) -> Self {
        let sessions = &settings.sessions;
        let lanes = settings
            .providers
            .iter()
            .map(|(name, p)| (Arc::from(name.as_str()), p.max_concurrency));
        Self {
            admission: Admission::new(
                sessions.max_live,
                sessions.max_queued,
                Duration::from_millis(sessions.starvation_ms),
                lanes,
            ),
            limits: Arc::new(Limits::new(settings)),
        }
    }
}

/// Everything needed to start a session.
struct NewSession {
    /// Records its phases (and holds its meta).
    recorder: Recorder,
    /// Kept while it waits, so nothing is parsed twice when it starts.
    request: ChatRequest,
    /// Its targets (one, or an alias's chain).
    targets: Vec<Target>,
    /// The target it was admitted for.
    index: usize,
    /// When its total deadline passes.
    deadline: std::time::Instant,
    /// Where the answer goes.
    reply: ReplyTx,
}

/// A request waiting for capacity.
struct Waiting {
    /// What starts it.
    new: NewSession,
    /// The task holding its ticket; aborting it takes it out of line.
    task: actix_rt::task::JoinHandle<()>,
}

/// A running session as the registry knows it.
struct Live {
    /// Where an operator's cancel and a drain are sent.
    addr: Addr<Session>,
    /// Records its phases (and holds its meta).
    recorder: Recorder,
    /// An alias's whole chain, so a reroute can move on without resolving again.
    targets: Vec<Target>,
    /// The target it is on.
    index: usize,
}

/// Admits requests and keeps one shard's registry of live sessions.
pub struct Supervisor {
    /// Session limits and the default deadline.
    settings: SessionSettings,
    /// Targets by model and alias.
    routes: Routes,
    /// `max_concurrency` by provider, for listings.
    max_concurrency: HashMap<Arc<str>, usize>,
    /// Capacity and rate limits, shared by every shard.
    shared: Shared,
    /// Where recorders report.
    sink: Sink,
    /// Where recently finished sessions are kept, for admin answers.
    recent: Recipient<Recent>,
    /// `history.max_record_bytes`, when prompts and answers are recorded.
    transcribe: Option<usize>,
    /// Sessions with a slot, by id: what listings, cancels and drains act on.
    live: SessionMap<Live>,
    /// Requests waiting for capacity.
    waiting: SessionMap<Waiting>,
    /// Set when a drain begins, for status answers.
    draining: bool,
    /// Set by a [`DrainMode::Refuse`] drain: nothing new is admitted.
    refusing: bool,
    /// Told when nothing is live or queued.
    idle_waiters: Vec<oneshot::Sender<()>>,
}

impl Supervisor {
    /// A supervisor routing to this shard's `providers`, with capacity and
    /// limits `shared` by every shard, its sessions recording to `sink`.
    pub fn new(
        settings: &ActorSettings,
        providers: HashMap<String, ProviderHandle>,
        shared: Shared,
        sink: Sink,
        recent: Recipient<Recent>,
    ) -> Self {
        let history = &settings.history;
        let transcribe =
            (history.enabled && history.record_prompts).then_some(history.max_record_bytes);
        let max_concurrency = settings
            .providers
            .iter()
            .map(|(name, p)| (Arc::from(name.as_str()), p.max_concurrency))
            .collect();
        Self {
            settings: settings.sessions.clone(),
            routes: Routes::new(settings, providers, shared.limits.clone()),
            max_concurrency,
            shared,
            sink,
            recent,
            transcribe,
            live: SessionMap::default(),
            waiting: SessionMap::default(),
            draining: false,
            refusing: false,
            idle_waiters: Vec::new(),
        }
    }

    /// Records a refusal: RECEIVED, then REJECTED with why.
    fn reject(&self, received: &Received, requested: &str, error: &GatewayError) {
        let requested = crate::error::truncate(requested, MAX_MODEL_SHOWN);
        let route = Route {
            provider: "".into(),
            model: requested.as_str().into(),
        };
        let meta = SessionMeta::new(received, requested.into(), false);
        let recorder = Recorder::new(Arc::new(meta), route, self.sink.clone());
        recorder.received(received.at);
        recorder.end_with(false, error.clone());
    }

    fn notify_if_idle(&mut self) {
        if self.live.is_empty() && self.waiting.is_empty() {
            for waiter in self.idle_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }

    /// Cancels every live session and waiting request with `reason`.
    fn cancel_all(&mut self, reason: CancelReason) -> usize {
        for live in self.live.values() {
            live.addr.do_send(Cancel(reason));
        }
        let waiting: Vec<SessionId> = self.waiting.keys().copied().collect();
        for id in &waiting {
            self.cancel_waiting(*id, reason);
        }
        self.notify_if_idle();
        self.live.len() + waiting.len()
    }

    /// Ends a waiting request that never got a session: out of line, its
    /// client told why.
    fn cancel_waiting(&mut self, id: SessionId, reason: CancelReason) -> bool {
        self.end_waiting(id, GatewayError::Cancelled(reason))
    }

    /// Ends a waiting request with `error`: out of line, recorded, its
    /// client answered.
    fn end_waiting(&mut self, id: SessionId, error: GatewayError) -> bool {
        let Some(waiting) = self.waiting.remove(&id) else {
            return false;
        };
        waiting.task.abort();
        waiting.new.recorder.end_with(false, error.clone());
        let _ = waiting.new.reply.send(Err(error));
        true
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Submits arrive by `do_send`; this bounds only `send` callers (admin).
        ctx.set_mailbox_capacity(1024);
    }
}
