//! The supervisor: admission, the registry of live sessions, routing.
//!
//! The HTTP layer sends it every chat request as [`Submit`] (or, when the
//! request could not even be read, [`Refused`], so it is still recorded).
//! It routes `<provider>/<model>` to a provider, refuses what it must (unknown
//! model, draining, too many live sessions), and starts one [`Session`] per
//! admitted request. Sessions tell it when they end ([`SessionEnded`]).
//! Operators reach live sessions through it ([`ListSessions`], [`GetSession`],
//! [`CancelSession`], [`GetStatus`]); the shutdown actor drains through it ([`BeginDrain`],
//! [`WaitIdle`], [`CancelAll`]).
//!
//! Admission control (queues, per-provider limits, rate limits) goes in
//! [`Supervisor::admit`]: the one place a request is let in or refused.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::answer::{ClientGone, ReplyTx};
use crate::error::{CancelReason, GatewayError, truncate};
use crate::ids::{SessionId, SessionMap};
use crate::lifecycle::{LifecycleLogger, Recorder, Timeline, TimelineView};
use crate::meta::{Received, SessionMeta};
use crate::phase::Phase;
use crate::provider::Provider;
use crate::request::ChatRequest;
use crate::session::{Cancel, Session, SessionEnded, SessionSpec};
use crate::settings::{ActorSettings, SessionSettings};

/// A chat request to admit and answer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Submit {
    /// Ids, arrival time, caller.
    pub received: Received,
    /// The validated request.
    pub request: ChatRequest,
    /// Where the answer (or refusal) goes.
    pub reply: ReplyTx,
    /// Fires if the client goes away.
    pub gone: ClientGone,
}

/// A request refused before it could be submitted (unreadable, too large):
/// recorded as RECEIVED then REJECTED. The HTTP layer answers it itself.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Refused {
    /// Ids, arrival time, caller.
    pub received: Received,
    /// Why.
    pub error: GatewayError,
}

/// Lists live sessions.
#[derive(Message)]
#[rtype(result = "Vec<Arc<SessionMeta>>")]
pub struct ListSessions;

/// One session's timeline (live or recent), and whether it is live.
#[derive(Message)]
#[rtype(result = "Option<(TimelineView, bool)>")]
pub struct GetSession(pub SessionId);

/// Cancels a live session; answers whether there was one.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct CancelSession(pub SessionId);

/// Stop admitting; answers how many sessions are live.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct BeginDrain;

/// Answers once no session is live.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WaitIdle;

/// Cancels every live session; answers how many.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CancelAll(pub CancelReason);

/// Asks how many sessions are live and whether the daemon is draining.
#[derive(Message)]
#[rtype(result = "Status")]
pub struct GetStatus;

/// The supervisor's state, for health checks.
#[derive(Clone, Copy, Debug, MessageResponse)]
pub struct Status {
    /// Sessions live now.
    pub live: usize,
    /// Whether new requests are refused.
    pub draining: bool,
}

/// How long a client refused for overload or drain should wait. One second:
/// long enough for sessions to finish or a restarted daemon to come up.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The longest model name repeated back in errors and timelines: a caller
/// cannot make every log line carry a megabyte by sending a huge `model`.
const MAX_MODEL_SHOWN: usize = 128;

/// Where one model of one provider goes.
struct ModelRoute {
    /// The name sent to the provider.
    name: Arc<str>,
    /// Its total deadline.
    timeout: Duration,
}

/// Where one provider's requests go.
struct ProviderRoute {
    /// Configured name.
    name: Arc<str>,
    /// The provider actor.
    addr: Addr<Provider>,
    /// Total deadline for models without their own.
    timeout: Duration,
    /// The models served; empty means any.
    models: HashMap<String, ModelRoute>,
}

/// A live session as the registry knows it.
struct Live {
    addr: Addr<Session>,
    meta: Arc<SessionMeta>,
}

/// Admits requests and keeps the registry of live sessions.
pub struct Supervisor {
    /// Session limits and the default deadline.
    settings: SessionSettings,
    /// Providers by name.
    routes: HashMap<String, ProviderRoute>,
    /// Where phases are recorded.
    logger: Addr<LifecycleLogger>,
    /// Live sessions.
    live: SessionMap<Live>,
    /// Set by the drain: nothing new is admitted.
    draining: bool,
    /// Told when the last live session ends.
    idle_waiters: Vec<oneshot::Sender<()>>,
}

impl Supervisor {
    /// A supervisor routing to `providers` (started by the caller).
    pub fn new(
        settings: &ActorSettings,
        providers: HashMap<String, Addr<Provider>>,
        logger: Addr<LifecycleLogger>,
    ) -> Self {
        let default_timeout = Duration::from_millis(settings.sessions.timeout_ms);
        let routes = providers
            .into_iter()
            .filter_map(|(name, addr)| {
                let config = settings.providers.get(&name)?;
                let timeout = config
                    .timeout_ms
                    .map_or(default_timeout, Duration::from_millis);
                let models = config
                    .models
                    .iter()
                    .map(|entry| {
                        let model = entry.settings();
                        let route = ModelRoute {
                            name: model.name.as_str().into(),
                            timeout: model.timeout_ms.map_or(timeout, Duration::from_millis),
                        };
                        (model.name, route)
                    })
                    .collect();
                let route = ProviderRoute {
                    name: name.as_str().into(),
                    addr,
                    timeout,
                    models,
                };
                Some((name, route))
            })
            .collect();
        Self {
            settings: settings.sessions.clone(),
            routes,
            logger,
            live: SessionMap::default(),
            draining: false,
            idle_waiters: Vec::new(),
        }
    }

    /// Finds the provider, model and deadline for `request`.
    fn route(
        &self,
        request: &ChatRequest,
    ) -> Result<(&ProviderRoute, Arc<str>, Duration), GatewayError> {
        let unknown = || {
            GatewayError::UnknownModel(format!(
                "unknown model `{}`: use `<provider>/<model>` with a configured provider (see GET /v1/models)",
                truncate(request.model(), MAX_MODEL_SHOWN)
            ))
        };
        let (provider, model) = request.provider_and_model().ok_or_else(unknown)?;
        let route = self.routes.get(provider).ok_or_else(unknown)?;
        if route.models.is_empty() {
            return Ok((route, model.into(), route.timeout));
        }
        let model = route.models.get(model).ok_or_else(unknown)?;
        Ok((route, model.name.clone(), model.timeout))
    }

    /// The one place a routed request is let in or refused.
    fn admit(&self) -> Result<(), GatewayError> {
        if self.draining {
            return Err(GatewayError::Draining {
                retry_after: RETRY_AFTER,
            });
        }
        if self.live.len() >= self.settings.max_live {
            return Err(GatewayError::Overloaded {
                limit: self.settings.max_live,
                retry_after: RETRY_AFTER,
            });
        }
        Ok(())
    }

    fn reject(&self, received: &Received, model: &str, error: &GatewayError) {
        let model = truncate(model, MAX_MODEL_SHOWN);
        let meta = SessionMeta::new(received, "".into(), model.into(), false);
        let recorder = Recorder::new(Arc::new(meta), self.logger.clone());
        recorder.record_at(Phase::Received, received.at);
        recorder.record(Phase::Rejected, Some(error.detail().into()));
    }

    fn notify_if_idle(&mut self) {
        if self.live.is_empty() {
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

impl Handler<Submit> for Supervisor {
    type Result = ();

    fn handle(&mut self, submit: Submit, ctx: &mut Self::Context) {
        let Submit {
            received,
            request,
            reply,
            gone,
        } = submit;
        let admitted = self
            .route(&request)
            .and_then(|route| self.admit().map(|()| route));
        let (route, model, timeout) = match admitted {
            Ok(found) => found,
            Err(error) => {
                self.reject(&received, request.model(), &error);
                let _ = reply.send(Err(error));
                return;
            }
        };
        let meta = SessionMeta::new(
            &received,
            route.name.clone(),
            model.clone(),
            request.stream(),
        );
        let meta = Arc::new(meta);
        let recorder = Recorder::new(meta.clone(), self.logger.clone());
        recorder.record_at(Phase::Received, received.at);
        let spec = SessionSpec {
            recorder,
            provider: route.addr.clone(),
            body: request.upstream_body(&model),
            timeout,
            reply,
            gone,
            on_end: ctx.address().recipient(),
        };
        let addr = Session::new(spec).start();
        self.live.insert(meta.id, Live { addr, meta });
    }
}

impl Handler<Refused> for Supervisor {
    type Result = ();

    fn handle(&mut self, refused: Refused, _: &mut Self::Context) {
        self.reject(&refused.received, "", &refused.error);
    }
}

impl Handler<SessionEnded> for Supervisor {
    type Result = ();

    fn handle(&mut self, SessionEnded(id): SessionEnded, _: &mut Self::Context) {
        self.live.remove(&id);
        self.notify_if_idle();
    }
}

impl Handler<ListSessions> for Supervisor {
    type Result = Vec<Arc<SessionMeta>>;

    fn handle(&mut self, _: ListSessions, _: &mut Self::Context) -> Self::Result {
        let mut sessions: Vec<_> = self.live.values().map(|live| live.meta.clone()).collect();
        sessions.sort_by_key(|meta| meta.received_at);
        sessions
    }
}

impl Handler<GetSession> for Supervisor {
    type Result = ResponseFuture<Option<(TimelineView, bool)>>;

    fn handle(&mut self, GetSession(id): GetSession, _: &mut Self::Context) -> Self::Result {
        let live = self.live.contains_key(&id);
        let timeline = self.logger.send(Timeline(id));
        Box::pin(async move { timeline.await.ok().flatten().map(|view| (view, live)) })
    }
}

impl Handler<CancelSession> for Supervisor {
    type Result = bool;

    fn handle(&mut self, CancelSession(id): CancelSession, _: &mut Self::Context) -> bool {
        match self.live.get(&id) {
            Some(live) => {
                live.addr.do_send(Cancel(CancelReason::Operator));
                true
            }
            None => false,
        }
    }
}

impl Handler<BeginDrain> for Supervisor {
    type Result = usize;

    fn handle(&mut self, _: BeginDrain, _: &mut Self::Context) -> usize {
        self.draining = true;
        self.live.len()
    }
}

impl Handler<GetStatus> for Supervisor {
    type Result = Status;

    fn handle(&mut self, _: GetStatus, _: &mut Self::Context) -> Status {
        Status {
            live: self.live.len(),
            draining: self.draining,
        }
    }
}

impl Handler<WaitIdle> for Supervisor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: WaitIdle, _: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.idle_waiters.push(tx);
        self.notify_if_idle();
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<CancelAll> for Supervisor {
    type Result = usize;

    fn handle(&mut self, CancelAll(reason): CancelAll, _: &mut Self::Context) -> usize {
        for live in self.live.values() {
            live.addr.do_send(Cancel(reason));
        }
        self.live.len()
    }
}
