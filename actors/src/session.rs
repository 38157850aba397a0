//! The session actor: one per request, alive only while the request is.
//!
//! The supervisor starts it with everything the request needs. It sends
//! [`Call`] to its provider and runs the returned future in its own context,
//! so its deadline, an operator's [`Cancel`] or the client going away can drop
//! that future — which aborts the upstream request — at any moment. It relays
//! the answer (whole, or event by event), records every phase, and stops
//! itself; `stopped()` tells the supervisor with [`SessionEnded`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::sync::mpsc;

use crate::answer::{
    Answer, ClientGone, ReplyTx, STREAM_BUFFER_FRAMES, StreamItem, with_session_object,
};
use crate::error::{CancelReason, GatewayError};
use crate::ids::{RequestId, SessionId};
use crate::lifecycle::Recorder;
use crate::meta::{SessionMeta, duration_ms};
use crate::phase::Phase;
use crate::provider::sse::has_data;
use crate::provider::{Call, Provider, Upstream};

/// Cancels the session: its client gets an error, its upstream call is aborted.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Cancel(pub CancelReason);

/// Told to the supervisor when a session has stopped, however it ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionEnded(pub SessionId);

/// The `session` object added to a non-streamed answer.
#[derive(serde::Serialize)]
struct SessionObject<'a> {
    id: SessionId,
    request_id: &'a RequestId,
    provider: &'a str,
    model: &'a str,
    duration_ms: u64,
}

/// How long a failed stream's final error item may wait for room in a full
/// channel (a client that stopped reading) before it is given up.
const FINAL_ITEM_GRACE: Duration = Duration::from_secs(5);

/// Everything a session needs to run, from the supervisor.
pub struct SessionSpec {
    /// Identity, route, arrival; shared with the registry and the logger.
    pub recorder: Recorder,
    /// The provider to call.
    pub provider: Addr<Provider>,
    /// The body for the provider.
    pub body: Bytes,
    /// The total deadline's length (provider, model or global setting).
    pub timeout: Duration,
    /// Where the answer goes.
    pub reply: ReplyTx,
    /// Fires when the client goes away.
    pub gone: ClientGone,
    /// Who to tell when the session has stopped.
    pub on_end: Recipient<SessionEnded>,
}

/// One request, from allocation to its answer.
pub struct Session {
    /// Identity and route.
    meta: Arc<SessionMeta>,
    /// Records phases.
    recorder: Recorder,
    /// The provider to call.
    provider: Addr<Provider>,
    /// The body for the provider; taken when the call is made.
    body: Option<Bytes>,
    /// The total deadline's length.
    timeout: Duration,
    /// The answer channel, until something has been sent on it.
    reply: Option<ReplyTx>,
    /// The client-gone signal, until it is being watched.
    gone: Option<ClientGone>,
    /// The stream channel once streaming, for a final error item.
    stream_tx: Option<mpsc::Sender<StreamItem>>,
    /// The running provider call or stream relay, to abort it.
    call: Option<SpawnHandle>,
    /// Set once the session has finished, so it finishes once.
    finished: bool,
    /// Who to tell when stopped.
    on_end: Recipient<SessionEnded>,
}

impl Session {
    /// A session ready to start.
    pub fn new(spec: SessionSpec) -> Self {
        Self {
            meta: spec.recorder.meta().clone(),
            recorder: spec.recorder,
            provider: spec.provider,
            body: Some(spec.body),
            timeout: spec.timeout,
            reply: Some(spec.reply),
            gone: Some(spec.gone),
            stream_tx: None,
            call: None,
            finished: false,
            on_end: spec.on_end,
        }
    }

    fn start_call(&mut self, ctx: &mut Context<Self>) {
        let call = self.provider.send(Call {
            body: self.body.take().unwrap_or_default(),
            model: self.meta.model.clone(),
            stream: self.meta.stream,
            recorder: self.recorder.clone(),
        });
        let run = async move {
            match call.await {
                Ok(call) => call.0.await,
                Err(_) => Err(GatewayError::Internal(
                    "the provider actor is not running".into(),
                )),
            }
        };
        let handle = ctx.spawn(run.into_actor(self).map(|result, act, ctx| {
            act.call = None;
            act.on_upstream(result, ctx);
        }));
        self.call = Some(handle);
    }

    fn on_upstream(&mut self, result: Result<Upstream, GatewayError>, ctx: &mut Context<Self>) {
        match result {
            Err(error) => self.finish(Err(error), ctx),
            Ok(Upstream::Complete(body)) => {
                match with_session_object(&body, &self.session_object()) {
                    Ok(body) => {
                        let delivered = self.send_reply(Ok(Answer::Complete(body)));
                        self.finish(delivered, ctx);
                    }
                    Err(reason) => self.finish(Err(self.invalid(reason)), ctx),
                }
            }
            Ok(Upstream::Stream(events)) => self.start_relay(events, ctx),
        }
    }

    fn start_relay(
        &mut self,
        events: BoxStream<'static, Result<Bytes, GatewayError>>,
        ctx: &mut Context<Self>,
    ) {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER_FRAMES);
        if let Err(error) = self.send_reply(Ok(Answer::Stream(rx))) {
            return self.finish(Err(error), ctx);
        }
        self.stream_tx = Some(tx.clone());
        let relay = relay(events, tx, self.recorder.clone());
        let handle = ctx.spawn(relay.into_actor(self).map(|result, act, ctx| {
            act.call = None;
            act.finish(result, ctx);
        }));
        self.call = Some(handle);
    }

    fn send_reply(&mut self, answer: Result<Answer, GatewayError>) -> Result<(), GatewayError> {
        let reply = self
            .reply
            .take()
            .ok_or(GatewayError::Internal("answered twice".into()))?;
        reply
            .send(answer)
            .map_err(|_| GatewayError::Cancelled(CancelReason::ClientGone))
    }

    fn invalid(&self, reason: String) -> GatewayError {
        GatewayError::ProviderFailed {
            provider: self.meta.provider.to_string(),
            reason,
        }
    }

    fn session_object(&self) -> SessionObject<'_> {
        SessionObject {
            id: self.meta.id,
            request_id: &self.meta.request_id,
            provider: &self.meta.provider,
            model: &self.meta.model,
            duration_ms: self.meta.age_ms(),
        }
    }

    /// Ends the session once: aborts any running call, tells the client how
    /// it ended if it has not been told, records the last phases, stops.
    fn finish(&mut self, result: Result<(), GatewayError>, ctx: &mut Context<Self>) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        if let Some(call) = self.call.take() {
            ctx.cancel_future(call);
        }
        let (phase, detail) = match &result {
            Ok(()) => (Phase::Completed, None),
            Err(error) => {
                self.recorder
                    .attempt_ended(format!("aborted: {}", error.detail()));
                self.deliver_error(error.clone());
                (terminal_phase(error), Some(Arc::from(error.detail())))
            }
        };
        self.recorder.record(Phase::SessionReleased, None);
        self.recorder.record(phase, detail);
        ctx.stop();
    }

    fn deliver_error(&mut self, error: GatewayError) {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(Err(error));
        } else if let Some(tx) = self.stream_tx.take()
            && let Err(mpsc::error::TrySendError::Full(item)) =
                tx.try_send(StreamItem::Failed(error))
        {
            actix_rt::spawn(async move {
                let _ = tokio::time::timeout(FINAL_ITEM_GRACE, tx.send(item)).await;
            });
        }
    }
}

fn terminal_phase(error: &GatewayError) -> Phase {
    match error {
        GatewayError::Timeout { .. } => Phase::Timeout,
        GatewayError::Cancelled(_) => Phase::Cancelled,
        _ => Phase::Error,
    }
}

/// Relays the provider's events to the client, recording FIRST_TOKEN and the
/// end of the provider call; stops at the first failure on either side.
async fn relay(
    mut events: BoxStream<'static, Result<Bytes, GatewayError>>,
    tx: mpsc::Sender<StreamItem>,
    recorder: Recorder,
) -> Result<(), GatewayError> {
    let client_gone = |_| GatewayError::Cancelled(CancelReason::ClientGone);
    let mut first = true;
    while let Some(data) = events.next().await {
        let data = data?;
        if first && has_data(&data) {
            first = false;
            recorder.first_token();
        }
        tx.send(StreamItem::Data(data)).await.map_err(client_gone)?;
    }
    recorder.attempt_ended("stream complete");
    tx.send(StreamItem::Done).await.map_err(client_gone)
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.recorder.record(Phase::SessionAllocated, None);
        let deadline = self.meta.received_at + self.timeout;
        let timeout_ms = duration_ms(self.timeout);
        ctx.run_later(
            deadline.saturating_duration_since(Instant::now()),
            move |act, ctx| {
                act.finish(
                    Err(GatewayError::Timeout {
                        which: "total",
                        timeout_ms,
                    }),
                    ctx,
                );
            },
        );
        if let Some(gone) = self.gone.take() {
            ctx.spawn(gone.into_actor(self).map(|(), act, ctx| {
                act.finish(Err(GatewayError::Cancelled(CancelReason::ClientGone)), ctx);
            }));
        }
        self.start_call(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if !self.finished {
            // Stopped from outside (the system is going down): still record an end.
            self.recorder.attempt_ended("aborted: session stopped");
            self.recorder.record(Phase::SessionReleased, None);
            self.recorder
                .record(Phase::Error, Some("session stopped unexpectedly".into()));
        }
        self.on_end.do_send(SessionEnded(self.meta.id));
    }
}

impl Handler<Cancel> for Session {
    type Result = ();

    fn handle(&mut self, Cancel(reason): Cancel, ctx: &mut Self::Context) {
        self.finish(Err(GatewayError::Cancelled(reason)), ctx);
    }
}
