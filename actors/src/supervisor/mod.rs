//! The supervisor: admission, routing, the registry of live sessions.
//!
//! The HTTP layer sends it every chat request as [`Submit`] (or, when the
//! request could not even be read, [`Refused`], so it is still recorded). It
//! checks the caller's rate limit, resolves the model (or alias) to targets,
//! takes the first healthy target within its rate limit, and admits the
//! request: at once when its provider and the daemon have room, else into
//! the bounded priority queue ([`admission`]), refusing what cannot wait.
//! Sessions tell it when they end ([`SessionEnded`]), which hands their slots
//! to the best waiting request at once; a session whose target failed for
//! good asks for the next one ([`Reroute`]). Operators reach sessions through
//! it ([`ListSessions`], [`GetSession`], [`CancelSession`], [`ListProviders`],
//! [`GetStatus`]); the shutdown actor drains through it ([`BeginDrain`],
//! [`WaitIdle`], [`CancelAll`]).

pub mod admission;
mod handlers;
mod queue;
mod routes;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::oneshot;

use crate::answer::{ClientGone, ReplyTx};
use crate::error::{CancelReason, GatewayError};
use crate::ids::{SessionId, SessionMap};
use crate::lifecycle::{Recent, Recorder, Sink};
use crate::meta::{Received, Route, SessionMeta};
use crate::provider::{Health, Provider, ProviderHealth};
use crate::record::SessionRecord;
use crate::request::ChatRequest;
use crate::session::Session;
use crate::settings::{ActorSettings, ClientSettings, SessionSettings};
use admission::Admission;
pub use routes::Target;
use routes::{MAX_MODEL_SHOWN, Routes};

/// A chat request to admit and answer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Submit {
    /// Ids, arrival time, caller, priority.
    pub received: Received,
    /// The validated request.
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
    /// Why.
    pub error: GatewayError,
}

/// A session's target failed for good: the next target of its alias, once
/// it has a slot; `None` when there is none left.
#[derive(Message)]
#[rtype(result = "Option<Target>")]
pub struct Reroute(pub SessionId);

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

/// Stop admitting; answers how many sessions are live or queued.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct BeginDrain;

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

/// The supervisor's state, for health checks.
#[derive(Clone, Copy, Debug, MessageResponse)]
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
    /// Who it is; its phase and route.
    pub meta: Arc<SessionMeta>,
    /// Its place in its provider's queue, when waiting (1 is next).
    pub position: Option<usize>,
}

/// A provider as `GET /admin/providers` shows it.
#[derive(Clone, Debug)]
pub struct ProviderView {
    /// Its configured name.
    pub name: Arc<str>,
    /// Calls running now.
    pub in_flight: usize,
    /// Requests waiting for one of its slots.
    pub queued: usize,
    /// `max_concurrency`.
    pub max_concurrency: usize,
    /// Its health, as the provider actor keeps it.
    pub health: Option<ProviderHealth>,
}

/// How long a client refused for capacity or drain should wait. One second:
/// long enough for sessions to finish or a restarted daemon to come up.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How often waiting requests are checked for clients that left. Their
/// deadlines have their own timer; this only frees queue room sooner.
const DEPARTURE_SWEEP: Duration = Duration::from_secs(1);

/// A request waiting in the queue, with what starting or resuming it needs.
enum Pending {
    /// A new request: its session starts when it leaves the queue.
    New(Box<NewSession>),
    /// A live session waiting for a slot of its next target.
    Reroute {
        /// Where the target goes.
        tx: oneshot::Sender<Target>,
        /// Which target of the session's chain.
        index: usize,
    },
}

/// Everything needed to start a session.
struct NewSession {
    /// Records its phases (and holds its meta).
    recorder: Recorder,
    /// The caller's request.
    request: ChatRequest,
    /// Its targets (one, or an alias's chain).
    targets: Vec<Target>,
    /// The target it was admitted for.
    index: usize,
    /// When its total deadline passes.
    deadline: Instant,
    /// When it began to wait (arrival, if it never waited).
    since: Instant,
    /// Where the answer goes.
    reply: ReplyTx,
    /// Fires if the client goes away.
    gone: ClientGone,
}

/// A running session as the registry knows it.
struct Live {
    /// Its actor.
    addr: Addr<Session>,
    /// Records its phases (and holds its meta).
    recorder: Recorder,
    /// Its targets.
    targets: Vec<Target>,
    /// The target it is on.
    index: usize,
    /// The provider whose slot it holds (none while waiting to reroute).
    slot: Option<Arc<str>>,
}

/// Admits requests and keeps the registry of live sessions.
pub struct Supervisor {
    /// Session limits and the default deadline.
    settings: SessionSettings,
    /// Per-caller rate limits.
    clients: ClientSettings,
    /// Targets by model and alias.
    routes: Routes,
    /// `max_concurrency` by provider, for listings.
    max_concurrency: HashMap<Arc<str>, usize>,
    /// Who runs and who waits.
    admission: Admission<Pending>,
    /// Deadlines of waiting new requests, soonest first.
    expiries: BinaryHeap<Reverse<(Instant, SessionId)>>,
    /// The timer for the soonest expiry, when armed.
    expiry_timer: Option<(Instant, SpawnHandle)>,
    /// The departure sweep, while anything waits.
    sweep: Option<SpawnHandle>,
    /// One limiter per calling uid (bounded: only allowed uids get here).
    client_limiters: HashMap<u32, DefaultDirectRateLimiter>,
    /// Where recorders report.
    sink: Sink,
    /// Where recently finished sessions are kept, for admin answers.
    recent: Recipient<Recent>,
    /// `history.max_record_bytes`, when prompts and answers are recorded.
    transcribe: Option<usize>,
    /// Running sessions.
    live: SessionMap<Live>,
    /// Set by the drain: nothing new is admitted.
    draining: bool,
    /// Told when nothing is live or queued.
    idle_waiters: Vec<oneshot::Sender<()>>,
}

impl Supervisor {
    /// A supervisor routing to `providers` (started by the caller, with the
    /// health cells they write), its sessions recording to `sink`.
    pub fn new(
        settings: &ActorSettings,
        providers: HashMap<String, (Addr<Provider>, Arc<Health>)>,
        sink: Sink,
        recent: Recipient<Recent>,
    ) -> Self {
        let history = &settings.history;
        let transcribe =
            (history.enabled && history.record_prompts).then_some(history.max_record_bytes);
        let lanes: Vec<(Arc<str>, usize)> = settings
            .providers
            .iter()
            .map(|(name, p)| (Arc::from(name.as_str()), p.max_concurrency))
            .collect();
        let sessions = &settings.sessions;
        let admission = Admission::new(
            sessions.max_live,
            sessions.max_queued,
            Duration::from_millis(sessions.starvation_ms),
            lanes.iter().cloned(),
        );
        Self {
            settings: sessions.clone(),
            clients: settings.clients.clone(),
            routes: Routes::new(settings, providers),
            max_concurrency: lanes.into_iter().collect(),
            admission,
            expiries: BinaryHeap::new(),
            expiry_timer: None,
            sweep: None,
            client_limiters: HashMap::new(),
            sink,
            recent,
            transcribe,
            live: SessionMap::default(),
            draining: false,
            idle_waiters: Vec::new(),
        }
    }

    /// Takes one request from the caller's rate limit.
    fn take_client_rate(&mut self, received: &Received) -> Result<(), GatewayError> {
        let Some(uid) = received.peer.as_ref().map(|peer| peer.uid) else {
            return Ok(());
        };
        let Some(limit) = self.clients.limit_for(uid).and_then(NonZeroU32::new) else {
            return Ok(());
        };
        let limiter = self
            .client_limiters
            .entry(uid)
            .or_insert_with(|| RateLimiter::direct(Quota::per_minute(limit)));
        limiter
            .check()
            .map_err(|not_until| GatewayError::RateLimited {
                scope: format!("uid {uid} (clients.requests_per_minute)"),
                retry_after: not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                )),
            })
    }

    /// The first target from `from` on that is healthy (unless none is) and
    /// within its provider's rate limit.
    fn pick(&self, targets: &[Target], from: usize) -> Result<usize, GatewayError> {
        let now = Instant::now();
        let healthy = |t: &Target| self.routes.healthy(&t.route.provider, now);
        let order = (from..targets.len())
            .filter(|&i| healthy(&targets[i]))
            .chain((from..targets.len()).filter(|&i| !healthy(&targets[i])));
        let mut soonest: Option<(Duration, &Arc<str>)> = None;
        for index in order {
            let provider = &targets[index].route.provider;
            match self.routes.take_rate(provider) {
                Ok(()) => return Ok(index),
                Err(wait) if soonest.is_none_or(|(w, _)| wait < w) => {
                    soonest = Some((wait, provider))
                }
                Err(_) => {}
            }
        }
        Err(match soonest {
            Some((retry_after, provider)) => GatewayError::RateLimited {
                scope: format!("provider {provider} (requests_per_minute)"),
                retry_after,
            },
            None => GatewayError::ProviderFailed {
                provider: String::new(),
                reason: "no target left to try".into(),
            },
        })
    }

    /// Records a refusal: RECEIVED, then REJECTED with why.
    fn reject(&self, received: &Received, requested: &str, error: &GatewayError) {
        let requested = crate::error::truncate(requested, MAX_MODEL_SHOWN);
        let route = Route {
            provider: "".into(),
            model: requested.as_str().into(),
        };
        let meta = SessionMeta::new(received, requested.into(), route, false);
        let recorder = Recorder::new(Arc::new(meta), self.sink.clone());
        recorder.received(received.at);
        recorder.end_with(false, error.clone());
    }

    fn notify_if_idle(&mut self) {
        if self.live.is_empty() && self.admission.queued() == 0 {
            for waiter in self.idle_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Submits arrive by `do_send`; this bounds only `send` callers (admin).
        ctx.set_mailbox_capacity(1024);
    }
}
