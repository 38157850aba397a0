//! The provider actor: one per configured provider on each shard.
//!
//! A session sends [`Call`]; the handler builds the upstream request and
//! returns it as an un-started future ([`CallFuture`]) that the *session*
//! runs. So the provider's mailbox never waits on a socket, thousands of calls
//! are in flight at once, and when a session ends (deadline, cancel, client
//! gone) dropping its future really aborts the upstream request: the
//! connection is closed (HTTP/1.1) or the stream reset (HTTP/2), never left
//! running. The future retries what may pass and records each attempt's
//! outcome on the provider's [`Health`] (shared by every shard), which marks
//! the provider unhealthy after `unhealthy_after` failures in a row, so
//! fallbacks skip it for `cooldown_ms`.
//!
//! The `openai` kind owns keep-alive pools (one per shard, so a connection
//! is only ever driven by the thread that uses it): the daemon's own
//! HTTP/1.1 client ([`h1`]) for plain `http://` endpoints, whose connection
//! the call's future drives itself, and hyper-util's for `https://` and
//! HTTP/2; both go through the proxy the environment names ([`proxy`]).
//! The `mock` kind answers in-process.

mod client;
mod exchange;
pub mod h1;
mod health;
mod mock;
mod openai;
pub mod proxy;
mod retry;
pub mod sse;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::dev::{MessageResponse, OneshotSender};
use actix::prelude::*;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;

use crate::error::GatewayError;
use crate::lifecycle::Recorder;
use crate::request::Forwarded;
use crate::settings::{ProviderKind, ProviderSettings};
use crate::wire::Wire;

pub use client::endpoint;
pub use health::Health;

/// Asks the provider for one answer: a chat completion, an Anthropic
/// message, a token count or embeddings (its `wire`).
#[derive(Message)]
#[rtype(result = "CallFuture")]
pub struct Call {
    /// Which API, so which endpoint and headers.
    pub wire: Wire,
    /// The caller's headers to pass on (Anthropic's version and beta).
    pub forwarded: Forwarded,
    /// The body to send, `model` already rewritten for this provider.
    pub body: Bytes,
    /// The model name at the provider.
    pub model: Arc<str>,
    /// Whether to ask for, and read, a server-sent event stream.
    pub stream: bool,
    /// Records each attempt's PROVIDER_CALL_START / END.
    pub recorder: Recorder,
    /// The session's total deadline: no retry waits past it.
    pub deadline: Instant,
    /// How long connecting may take (this model's or this provider's).
    pub connect_timeout: Duration,
}

/// A provider's health as admin answers show it.
#[derive(Clone, Debug)]
pub struct ProviderHealth {
    /// Whether calls go to it (not in a cooldown).
    pub healthy: bool,
    /// How long the cooldown still lasts.
    pub cooldown_left: Option<Duration>,
    /// Failed attempts in a row.
    pub consecutive_failures: u32,
    /// Attempts that got an answer, since start.
    pub successes: u64,
    /// Attempts that failed, since start.
    pub failures: u64,
    /// The last few failures: when, and the sanitized detail.
    pub recent_errors: Vec<(SystemTime, String)>,
}

/// What the provider answered: a whole JSON body, or its server-sent events
/// as it framed them, complete events only, `[DONE]` left out.
pub enum Upstream {
    /// A non-streamed answer, as the provider sent it.
    Complete(Bytes),
    /// Complete SSE events as they arrive; ends at `[DONE]` or EOF.
    Stream(BoxStream<'static, Result<Bytes, GatewayError>>),
}

/// The upstream call, not yet started: the caller runs it, and aborts it by
/// dropping it.
pub struct CallFuture(pub BoxFuture<'static, Result<Upstream, GatewayError>>);

impl<A, M> MessageResponse<A, M> for CallFuture
where
    A: Actor,
    M: Message<Result = CallFuture>,
{
    fn handle(self, _: &mut A::Context, tx: Option<OneshotSender<M::Result>>) {
        if let Some(tx) = tx {
            // The session may have ended meanwhile; then nobody runs the call.
            let _ = tx.send(self);
        }
    }
}

/// How a provider of each kind makes calls.
enum Backend {
    Openai(openai::Openai),
    Mock(mock::Mock),
}

/// One configured provider (on one shard).
pub struct Provider {
    /// Its configured name, for logs.
    name: Arc<str>,
    /// Its kind and what that kind needs (the pooled HTTP clients).
    backend: Backend,
}

impl Provider {
    /// Builds the provider `name`, recording attempts on `health`; fails
    /// when its HTTP client cannot be made.
    pub fn new(
        name: &str,
        settings: &ProviderSettings,
        health: Arc<Health>,
    ) -> Result<Self, String> {
        let name: Arc<str> = name.into();
        let backend = match settings.kind {
            ProviderKind::Openai => {
                Backend::Openai(openai::Openai::new(name.clone(), settings, health)?)
            }
            ProviderKind::Mock => Backend::Mock(mock::Mock::new(name.clone(), settings)),
        };
        Ok(Self { name, backend })
    }

    /// Logs, once at start, which of its endpoints provider `name` calls
    /// through a proxy the environment names.
    pub fn log_proxies(name: &str, settings: &ProviderSettings) {
        if settings.kind != ProviderKind::Openai {
            return;
        }
        for (endpoint, proxy) in openai::proxied(name, settings) {
            tracing::info!(provider = name, %endpoint, %proxy, "calls go through a proxy");
        }
    }

    /// The health of provider `name` configured with `settings`, to share
    /// between its actors on every shard.
    pub fn health_for(settings: &ProviderSettings) -> Arc<Health> {
        let cooldown = Duration::from_millis(settings.cooldown_ms);
        Arc::new(Health::new(settings.unhealthy_after, cooldown))
    }
}

impl Actor for Provider {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Calls are answered at once (the work runs in the session), so a
        // deep mailbox only absorbs bursts of new sessions.
        ctx.set_mailbox_capacity(1024);
        tracing::debug!(provider = &*self.name, "provider started");
    }
}

impl Handler<Call> for Provider {
    type Result = CallFuture;

    fn handle(&mut self, call: Call, _: &mut Self::Context) -> CallFuture {
        match &self.backend {
            Backend::Openai(backend) => backend.call(call),
            Backend::Mock(backend) => backend.call(call),
        }
    }
}
