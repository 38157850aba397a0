//! The session actor: one per request, alive only while the request is.
//!
//! The supervisor starts it once the request is admitted, with the
//! admission [`Slot`] it holds until it stops (dropping the session gives the
//! capacity back). It sends [`Call`] to its provider and runs the returned
//! future in its own context, so its deadlines, an operator's [`Cancel`] or
//! the client going away can drop that future — which aborts the upstream
//! request — at any moment. When a target fails for good and the request
//! named an alias, it hands its slot to the supervisor and asks for the next
//! target ([`Reroute`]), waiting for that target's slot if it must. It relays
//! the answer (whole, or event by event), records every phase, and stops
//! itself; `stopped()` tells the supervisor with [`SessionEnded`]. It knows
//! the supervisor and its provider only through `Recipient`s of the
//! messages it sends.

mod relay;

use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::stream::BoxStream;
use tokio::sync::mpsc;

use crate::admission::{Slot, Ticket};
use crate::answer::{
    Answer, ClientGone, ReplyTx, STREAM_BUFFER_FRAMES, StreamItem, with_session_object,
};
use crate::error::{CancelReason, Deadline, GatewayError};
use crate::ids::{RequestId, SessionId};
use crate::lifecycle::Recorder;
use crate::meta::duration_ms;
use crate::outcome::Ending;
use crate::phase::{AttemptResult, Phase};
use crate::provider::{Call, Upstream};
use crate::request::ChatRequest;
use crate::supervisor::{Next, Reroute, SessionEnded, Target};
use relay::{StreamDeadlines, deadline, relay};

/// Cancels the session: its client gets an error, its upstream call is aborted.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Cancel(pub CancelReason);

/// The `session` object added to a non-streamed answer.
#[derive(serde::Serialize)]
struct SessionObject<'a> {
    id: SessionId,
    request_id: &'a RequestId,
    provider: &'a str,
    model: &'a str,
    attempts: u32,
    queued_ms: u64,
    duration_ms: u64,
}

/// How long a failed stream's final error item may wait for room in a full
/// channel (a client that stopped reading) before it is given up.
const FINAL_ITEM_GRACE: Duration = Duration::from_secs(5);

/// Everything a session needs to run, from the supervisor.
pub struct SessionSpec {
    /// Identity, route, arrival; shared with the registry and the logger.
    pub recorder: Recorder,
    /// The caller's request, rendered for each target in turn.
    pub request: ChatRequest,
    /// The first target.
    pub target: Target,
    /// When the total deadline passes.
    pub deadline: Instant,
    /// How long it waited for capacity.
    pub queued: Duration,
    /// Where the answer goes.
    pub reply: ReplyTx,
    /// Fires when the client goes away.
    pub gone: ClientGone,
    /// The capacity it holds.
    pub slot: Slot,
    /// Where to ask for the next target.
    pub reroute: Recipient<Reroute>,
    /// Where to say it has stopped.
    pub ended: Recipient<SessionEnded>,
}

/// One request, from allocation to its answer.
pub struct Session {
    /// Records phases; holds what is fixed about the session (its meta)
    /// and what changes (route, phase, timeline).
    recorder: Recorder,
    /// The caller's request.
    request: ChatRequest,
    /// The target being called.
    target: Target,
    /// The total deadline.
    deadline: Instant,
    /// Time spent queued.
    queued: Duration,
    /// The answer channel, until something has been sent on it.
    reply: Option<ReplyTx>,
    /// The client-gone signal, until it is being watched.
    gone: Option<ClientGone>,
    /// The stream channel once streaming, for a final error item.
    stream_tx: Option<mpsc::Sender<StreamItem>>,
    /// The running call, relay or reroute request, to abort it.
    call: Option<SpawnHandle>,
    /// Streams: when the first chunk must have come, set at the first call.
    first_token_by: Option<(Instant, Duration)>,
    /// Set once the session has finished, so it finishes once.
    finished: bool,
    /// Set once the client has been sent an answer (a body, or a stream's
    /// head): the status it saw is 200 from then on.
    answered: bool,
    /// The capacity it holds (handed over while it asks for a reroute).
    slot: Option<Slot>,
    /// Where to ask for the next target.
    reroute: Recipient<Reroute>,
    /// Where to say it has stopped.
    ended: Recipient<SessionEnded>,
}

impl Session {
    /// A session ready to start.
    pub fn new(spec: SessionSpec) -> Self {
        Self {
            recorder: spec.recorder,
            request: spec.request,
            target: spec.target,
            deadline: spec.deadline,
            queued: spec.queued,
            reply: Some(spec.reply),
            gone: Some(spec.gone),
            stream_tx: None,
            call: None,
            first_token_by: None,
            finished: false,
            answered: false,
            slot: Some(spec.slot),
            reroute: spec.reroute,
            ended: spec.ended,
        }
    }

    fn start_call(&mut self, ctx: &mut Context<Self>) {
        let call = self.target.call.send(Call {
            wire: self.request.wire(),
            forwarded: self.request.forwarded().clone(),
            body: self.request.upstream_body(&self.target.route.model),
            model: self.target.route.model.clone(),
            stream: self.recorder.meta().stream,
            recorder: self.recorder.clone(),
            deadline: self.deadline,
            connect_timeout: self.target.deadlines.connect,
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
            Err(error) if falls_back(&error) => self.reroute(error, ctx),
            Err(error) => self.finish(Err(error), ctx),
            Ok(Upstream::Complete(body)) => {
                let wire = self.request.wire();
                match with_session_object(&body, &self.session_object(), wire) {
                    Ok((answer, usage)) => {
                        if let Some(usage) = usage {
                            self.recorder.add_usage(usage);
                        }
                        self.recorder.transcribe(&body, false);
                        let delivered = self.send_reply(Ok(Answer::Complete(answer)));
                        self.finish(delivered, ctx);
                    }
                    Err(reason) => self.finish(Err(self.invalid(reason)), ctx),
                }
            }
            Ok(Upstream::Stream(events)) => self.start_relay(events, ctx),
        }
    }

    /// The target failed for good: hands its slot to the supervisor and
    /// asks for the next target of the alias; without one, ends.
    fn reroute(&mut self, error: GatewayError, ctx: &mut Context<Self>) {
        let Some(slot) = self.slot.take() else {
            return self.finish(Err(error), ctx);
        };
        let next = self.reroute.send(Reroute {
            id: self.recorder.meta().id,
            slot,
        });
        let handle = ctx.spawn(next.into_actor(self).map(move |next, act, ctx| {
            act.call = None;
            match next {
                Ok(Next::Now(target, slot)) => act.call_next(target, slot, ctx),
                Ok(Next::Wait(target, ticket)) => act.wait_for(target, ticket, ctx),
                Ok(Next::Done) | Err(_) => act.finish(Err(error), ctx),
            }
        }));
        self.call = Some(handle);
    }

    /// Waits for the next target's slot (dropping the wait, as a deadline or
    /// cancel does, takes it out of line).
    fn wait_for(&mut self, target: Target, ticket: Ticket, ctx: &mut Context<Self>) {
        let handle = ctx.spawn(ticket.into_actor(self).map(move |slot, act, ctx| {
            act.call = None;
            act.recorder.record(Phase::Dequeued, None);
            act.call_next(target, slot, ctx);
        }));
        self.call = Some(handle);
    }

    fn call_next(&mut self, target: Target, slot: Slot, ctx: &mut Context<Self>) {
        self.target = target;
        self.slot = Some(slot);
        self.start_call(ctx);
    }

    fn start_relay(
        &mut self,
        events: BoxStream<'static, Result<bytes::Bytes, GatewayError>>,
        ctx: &mut Context<Self>,
    ) {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER_FRAMES);
        if let Err(error) = self.send_reply(Ok(Answer::Stream(rx))) {
            return self.finish(Err(error), ctx);
        }
        self.stream_tx = Some(tx.clone());
        let deadlines = StreamDeadlines {
            first_token: self.first_token_by,
            idle: self.target.deadlines.idle,
        };
        let relay = relay(
            events,
            tx,
            (self.recorder.clone(), self.request.wire()),
            deadlines,
        );
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
            .map_err(|_| GatewayError::Cancelled(CancelReason::ClientGone))?;
        self.answered = true;
        Ok(())
    }

    fn invalid(&self, reason: String) -> GatewayError {
        GatewayError::ProviderFailed {
            provider: self.target.route.provider.to_string(),
            reason,
        }
    }

    fn session_object(&self) -> SessionObject<'_> {
        SessionObject {
            id: self.recorder.meta().id,
            request_id: &self.recorder.meta().request_id,
            provider: &self.target.route.provider,
            model: &self.target.route.model,
            attempts: self.recorder.attempts(),
            queued_ms: duration_ms(self.queued),
            duration_ms: self.recorder.meta().age_ms(),
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
        // A client that was sent a 200 head (an answer, or a stream that
        // began) saw that status, whatever comes after.
        let mut answered = self.answered;
        if let Err(error) = &result {
            self.recorder.attempt_ended(
                AttemptResult::Aborted,
                format!("aborted: {}", error.detail()),
            );
            answered |= self.deliver_error(error.clone());
        }
        self.recorder.record(Phase::SessionReleased, None);
        let ending = Ending {
            error: result.err(),
            answered,
            ..Ending::default()
        };
        self.recorder.end(true, ending);
        ctx.stop();
    }

    /// Tells the client how the session failed: an error answer, or an
    /// error event on a stream (a stream deadline gets an event even before
    /// the stream began, so the client's SSE reader sees which one passed).
    /// Returns whether that made a 200 stream of it.
    fn deliver_error(&mut self, error: GatewayError) -> bool {
        if let Some(reply) = self.reply.take() {
            let as_stream = self.recorder.meta().stream && ends_stream_with_event(&error);
            let answer = if as_stream {
                let (tx, rx) = mpsc::channel(1);
                let _ = tx.try_send(StreamItem::Failed(error));
                Ok(Answer::Stream(rx))
            } else {
                Err(error)
            };
            return reply.send(answer).is_ok() && as_stream;
        } else if let Some(tx) = self.stream_tx.take()
            && let Err(mpsc::error::TrySendError::Full(item)) =
                tx.try_send(StreamItem::Failed(error))
        {
            actix_rt::spawn(async move {
                let _ = tokio::time::timeout(FINAL_ITEM_GRACE, tx.send(item)).await;
            });
        }
        false
    }

    fn arm_deadlines(&mut self, ctx: &mut Context<Self>) {
        let total = self
            .deadline
            .saturating_duration_since(self.recorder.meta().received_at);
        let timeout_ms = duration_ms(total);
        let left = self.deadline.saturating_duration_since(Instant::now());
        ctx.run_later(left, move |act, ctx| {
            let error = GatewayError::Timeout {
                which: Deadline::Total,
                timeout_ms,
            };
            act.finish(Err(error), ctx);
        });
        if let (true, Some(length)) = (
            self.recorder.meta().stream,
            self.target.deadlines.first_token,
        ) {
            self.first_token_by = Some((Instant::now() + length, length));
            ctx.run_later(length, move |act, ctx| {
                if !act.recorder.first_token_seen() {
                    act.finish(Err(deadline(Deadline::FirstToken, length)), ctx);
                }
            });
        }
    }
}

/// Whether another target of an alias may do better after `error`.
fn falls_back(error: &GatewayError) -> bool {
    match error {
        GatewayError::ProviderStatus { .. }
        | GatewayError::ProviderFailed { .. }
        | GatewayError::MissingApiKey { .. } => true,
        GatewayError::Timeout { which, .. } => which.falls_back(),
        _ => false,
    }
}

/// Whether a stream's client learns of `error` as an SSE error event.
fn ends_stream_with_event(error: &GatewayError) -> bool {
    matches!(error, GatewayError::Timeout { which, .. } if which.ends_a_stream_with_an_event())
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.arm_deadlines(ctx);
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
            self.recorder
                .attempt_ended(AttemptResult::Aborted, "aborted: session stopped");
            self.recorder.record(Phase::SessionReleased, None);
            let error = GatewayError::Internal("session stopped unexpectedly".into());
            self.recorder.end_with(true, error);
        }
        // Gives the capacity back before the supervisor hears of the end.
        self.slot = None;
        self.ended.do_send(SessionEnded(self.recorder.meta().id));
    }
}

impl Handler<Cancel> for Session {
    type Result = ();

    fn handle(&mut self, Cancel(reason): Cancel, ctx: &mut Self::Context) {
        self.finish(Err(GatewayError::Cancelled(reason)), ctx);
    }
}
