//! The provider actor: one per configured provider.
//!
//! A session sends [`Call`]; the handler builds the upstream request and
//! returns it as an un-started future ([`CallFuture`]) that the *session*
//! runs. So the provider's mailbox never waits on a socket, thousands of calls
//! are in flight at once, and when a session ends (deadline, cancel, client
//! gone) dropping its future really aborts the upstream request: the
//! connection is closed (HTTP/1.1) or the stream reset (HTTP/2), never left
//! running. The `openai` kind owns one pooled `reqwest::Client`; the `mock`
//! kind answers in-process.

mod mock;
mod openai;
pub mod sse;

use std::sync::Arc;

use actix::dev::{MessageResponse, OneshotSender};
use actix::prelude::*;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;

use crate::error::GatewayError;
use crate::lifecycle::Recorder;
use crate::settings::{ProviderKind, ProviderSettings};

pub use mock::last_user_text;

/// Asks the provider for one chat completion.
#[derive(Message)]
#[rtype(result = "CallFuture")]
pub struct Call {
    /// The body to send, `model` already rewritten for this provider.
    pub body: Bytes,
    /// The model name at the provider.
    pub model: Arc<str>,
    /// Whether to ask for, and read, a server-sent event stream.
    pub stream: bool,
    /// Records each attempt's PROVIDER_CALL_START / END.
    pub recorder: Recorder,
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

/// One configured provider.
pub struct Provider {
    /// Its configured name, for logs.
    name: Arc<str>,
    /// Its kind and what that kind needs (the pooled HTTP client).
    backend: Backend,
}

impl Provider {
    /// Builds the provider `name`; fails when its HTTP client cannot be made.
    pub fn new(name: &str, settings: &ProviderSettings) -> Result<Self, String> {
        let name: Arc<str> = name.into();
        let backend = match settings.kind {
            ProviderKind::Openai => Backend::Openai(openai::Openai::new(name.clone(), settings)?),
            ProviderKind::Mock => Backend::Mock(mock::Mock::new(name.clone(), settings)),
        };
        Ok(Self { name, backend })
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
