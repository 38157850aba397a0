//! The supervisor's admission path: from a submitted request to a running
//! session, through the queue when it must wait, and back out of the queue
//! when a deadline passes or the client leaves.

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::admission::Admit;
use super::{DEPARTURE_SWEEP, Live, NewSession, Pending, RETRY_AFTER, Submit, Supervisor};
use crate::error::{CancelReason, GatewayError, Overload};
use crate::ids::SessionId;
use crate::lifecycle::Recorder;
use crate::meta::{SessionMeta, duration_ms};
use crate::phase::Phase;
use crate::session::{Session, SessionSpec};
use crate::transcript::Transcript;

impl Supervisor {
    /// Admits `submit`: runs it now, queues it, or refuses it.
    pub(super) fn submit(&mut self, submit: Submit, ctx: &mut Context<Self>) {
        let Submit {
            received,
            request,
            reply,
            gone,
        } = submit;
        let refused = |me: &Self, reply: crate::answer::ReplyTx, error: GatewayError| {
            me.reject(&received, request.model(), &error);
            let _ = reply.send(Err(error));
        };
        if self.draining {
            return refused(
                self,
                reply,
                GatewayError::Draining {
                    retry_after: RETRY_AFTER,
                },
            );
        }
        if let Err(error) = self.take_client_rate(&received) {
            return refused(self, reply, error);
        }
        let targets = match self.routes.resolve(request.model()) {
            Ok(targets) if !targets.is_empty() => targets,
            Ok(_) => {
                return refused(
                    self,
                    reply,
                    GatewayError::UnknownModel(request.model().into()),
                );
            }
            Err(error) => return refused(self, reply, error),
        };
        let index = match self.pick(&targets, 0) {
            Ok(index) => index,
            Err(error) => return refused(self, reply, error),
        };
        let target = &targets[index];
        let meta = SessionMeta::new(
            &received,
            request.model().into(),
            target.route.clone(),
            request.stream(),
        )
        .with_metadata(request.metadata().cloned());
        let recorder = Recorder::new(Arc::new(meta), self.sink.clone());
        let recorder = match self.transcribe {
            Some(max) => recorder.transcribing(Transcript::new(&request, max)),
            None => recorder,
        };
        recorder.received(received.at);
        let provider = target.route.provider.clone();
        let deadline = received.at + target.deadlines.total;
        let id = received.session_id;
        let new = NewSession {
            recorder,
            request,
            targets,
            index,
            deadline,
            since: received.at,
            reply,
            gone,
        };
        let now = Instant::now();
        let priority = received.priority;
        match self.admission.admit(
            id,
            &provider,
            priority,
            true,
            now,
            Pending::New(Box::new(new)),
        ) {
            Admit::Now(Pending::New(new)) => {
                if !self.start(id, *new, ctx) {
                    self.pump(ctx);
                }
            }
            Admit::Now(Pending::Reroute { .. }) => {}
            Admit::Queued => self.queued(id, deadline, ctx),
            Admit::Full(pending) => self.refuse_full(pending),
        }
    }

    /// Starts the session of an admitted request (its slots are taken).
    /// Returns false when its client had already left (its slots are then
    /// given back).
    pub(super) fn start(
        &mut self,
        id: SessionId,
        new: NewSession,
        ctx: &mut Context<Self>,
    ) -> bool {
        let NewSession {
            recorder,
            request,
            targets,
            index,
            deadline,
            since,
            reply,
            gone,
        } = new;
        let provider = targets[index].route.provider.clone();
        if reply.is_closed() {
            // The client left while it waited: nothing to start.
            self.admission.release(&provider, true);
            end_unstarted(&recorder, GatewayError::Cancelled(CancelReason::ClientGone));
            return false;
        }
        let spec = SessionSpec {
            recorder: recorder.clone(),
            request,
            target: targets[index].clone(),
            deadline,
            queued: since.saturating_duration_since(recorder.meta().received_at),
            reply,
            gone,
            supervisor: ctx.address(),
        };
        let addr = Session::new(spec).start();
        let live = Live {
            addr,
            recorder,
            targets,
            index,
            slot: Some(provider),
        };
        self.live.insert(id, live);
        true
    }

    /// A request began to wait: QUEUED, its deadline watched.
    fn queued(&mut self, id: SessionId, deadline: Instant, ctx: &mut Context<Self>) {
        let position = self.admission.position(id, Instant::now()).unwrap_or(0);
        if let Some(Pending::New(new)) = self.admission.get(id) {
            new.recorder
                .record(Phase::Queued, Some(format!("position {position}").into()));
        }
        self.expiries.push(Reverse((deadline, id)));
        if self.expiries.len() > 2 * self.admission.queued() + 1024 {
            // Deadlines of requests that left the queue early: drop them
            // now rather than when they come up, so the heap stays bounded
            // by the queue, not by the rate of arrivals.
            let admission = &self.admission;
            self.expiries
                .retain(|Reverse((_, id))| admission.contains(*id));
        }
        self.arm_expiry(ctx);
        if self.sweep.is_none() {
            self.sweep =
                Some(ctx.run_interval(DEPARTURE_SWEEP, |act, ctx| act.sweep_departed(ctx)));
        }
    }

    /// The queue was full: REJECTED, 503 with `Retry-After`.
    fn refuse_full(&mut self, pending: Pending) {
        let Pending::New(new) = pending else { return };
        let error = GatewayError::Overloaded {
            why: Overload::QueueFull {
                max_queued: self.settings.max_queued,
            },
            retry_after: RETRY_AFTER,
        };
        new.recorder.end_with(false, error.clone());
        let _ = new.reply.send(Err(error));
    }

    /// Hands freed slots to the best waiting requests.
    pub(super) fn pump(&mut self, ctx: &mut Context<Self>) {
        loop {
            let now = Instant::now();
            let mut given_back = false;
            for (id, pending) in self.admission.pump(now) {
                match pending {
                    Pending::New(mut new) => {
                        let waited = now.saturating_duration_since(new.since);
                        new.recorder
                            .record(Phase::Dequeued, Some(waited_detail(waited)));
                        new.since = now;
                        given_back |= !self.start(id, *new, ctx);
                    }
                    Pending::Reroute { tx, index } => self.resume(id, index, tx),
                }
            }
            if !given_back {
                break;
            }
        }
        if self.admission.queued() == 0 {
            self.stop_watching(ctx);
        }
    }

    /// Moves a live session to target `index` (its slot is taken).
    pub(super) fn resume(
        &mut self,
        id: SessionId,
        index: usize,
        tx: tokio::sync::oneshot::Sender<super::Target>,
    ) {
        let Some(live) = self.live.get_mut(&id) else {
            return;
        };
        let target = live.targets[index].clone();
        live.index = index;
        live.slot = Some(target.route.provider.clone());
        live.recorder.meta().set_route(target.route.clone());
        if live.recorder.meta().phase.get() == Phase::Queued {
            live.recorder.record(Phase::Dequeued, None);
        }
        if tx.send(target).is_err() {
            // The session ended meanwhile; its end released nothing of this slot.
            live.slot = None;
            self.admission
                .release(&live.targets[index].route.provider, false);
        }
    }

    /// Refuses waiting requests whose deadline passed.
    fn expire(&mut self, ctx: &mut Context<Self>) {
        self.expiry_timer = None;
        let now = Instant::now();
        while let Some(Reverse((deadline, id))) = self.expiries.peek().copied() {
            if deadline > now {
                break;
            }
            self.expiries.pop();
            if let Some(Pending::New(new)) = self.admission.remove(id) {
                let waited = now.saturating_duration_since(new.since);
                let error = GatewayError::Overloaded {
                    why: Overload::WaitedPastDeadline {
                        waited_ms: duration_ms(waited),
                    },
                    retry_after: RETRY_AFTER,
                };
                new.recorder.end_with(false, error.clone());
                let _ = new.reply.send(Err(error));
            }
        }
        self.arm_expiry(ctx);
        self.notify_if_idle();
    }

    /// Arms the expiry timer for the soonest deadline, if it is not already.
    fn arm_expiry(&mut self, ctx: &mut Context<Self>) {
        // Deadlines of requests that already left the queue stay in the heap
        // until they come up; drop them first so the timer is for a real one.
        while let Some(Reverse((_, id))) = self.expiries.peek() {
            if self.admission.contains(*id) {
                break;
            }
            self.expiries.pop();
        }
        let Some(Reverse((soonest, _))) = self.expiries.peek().copied() else {
            if let Some((_, handle)) = self.expiry_timer.take() {
                ctx.cancel_future(handle);
            }
            return;
        };
        if self
            .expiry_timer
            .as_ref()
            .is_some_and(|(at, _)| *at <= soonest)
        {
            return;
        }
        if let Some((_, handle)) = self.expiry_timer.take() {
            ctx.cancel_future(handle);
        }
        let wait = soonest.saturating_duration_since(Instant::now());
        let handle = ctx.run_later(wait, |act, ctx| act.expire(ctx));
        self.expiry_timer = Some((soonest, handle));
    }

    /// Takes out of line the waiting requests whose client has gone.
    fn sweep_departed(&mut self, ctx: &mut Context<Self>) {
        let gone: Vec<SessionId> = self
            .admission
            .waiting()
            .filter_map(|(id, pending)| match pending {
                Pending::New(new) if new.reply.is_closed() => Some(id),
                _ => None,
            })
            .collect();
        for id in gone {
            if let Some(Pending::New(new)) = self.admission.remove(id) {
                end_unstarted(
                    &new.recorder,
                    GatewayError::Cancelled(CancelReason::ClientGone),
                );
            }
        }
        if self.admission.queued() == 0 {
            self.stop_watching(ctx);
        }
        self.notify_if_idle();
    }

    /// Nothing waits: no timer, no sweep.
    fn stop_watching(&mut self, ctx: &mut Context<Self>) {
        if let Some(sweep) = self.sweep.take() {
            ctx.cancel_future(sweep);
        }
        if let Some((_, timer)) = self.expiry_timer.take() {
            ctx.cancel_future(timer);
        }
        self.expiries.clear();
    }
}

/// Records the end of a request that never got a session.
pub(super) fn end_unstarted(recorder: &crate::lifecycle::Recorder, error: GatewayError) {
    recorder.end_with(false, error);
}

fn waited_detail(waited: Duration) -> Arc<str> {
    format!("waited {} ms", duration_ms(waited)).into()
}
