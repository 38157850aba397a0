//! The supervisor's admission path: from a submitted request to a running
//! session, through a wait for capacity when there is none, and back out of
//! line when its deadline passes or its client leaves first.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::{
    Live, NewSession, RETRY_AFTER, Submit, Supervisor, Target, WaitOutcome, Waited, Waiting,
};
use crate::admission::{Admit, Slot, Ticket};
use crate::answer::ClientGone;
use crate::error::{CancelReason, GatewayError, Overload};
use crate::ids::SessionId;
use crate::lifecycle::Recorder;
use crate::meta::{Received, SessionMeta, duration_ms};
use crate::phase::Phase;
use crate::session::{Session, SessionSpec};
use crate::transcript::Transcript;

impl Supervisor {
    /// Admits `submit`: runs it now, makes it wait, or refuses it.
    pub(super) fn submit(&mut self, submit: Submit, ctx: &mut Context<Self>) {
        let Submit {
            received,
            request,
            reply,
            gone,
        } = submit;
        let (targets, index) = match self.route(&received, request.model(), request.wire()) {
            Ok(routed) => routed,
            Err(error) => {
                self.reject(&received, request.model(), &error);
                let _ = reply.send(Err(error));
                return;
            }
        };
        let target = &targets[index];
        let meta = SessionMeta::new(&received, request.model().into(), request.stream())
            .with_metadata(request.metadata().cloned());
        let route = target.route.clone();
        let mut recorder = Recorder::new(Arc::new(meta), route, self.sink.clone());
        if let Some(max) = self.transcribe {
            recorder = recorder.transcribing(Transcript::new(&request, max));
        }
        recorder.received(received.at);
        let provider = target.route.provider.clone();
        let new = NewSession {
            recorder,
            request,
            deadline: received.at + target.deadlines.total,
            targets,
            index,
            reply,
        };
        let id = received.session_id;
        let admission = self.shared.admission.clone();
        match admission.admit(id, &provider, received.priority, Instant::now()) {
            Admit::Now(slot) => self.start(id, new, (gone, slot), Duration::ZERO, ctx),
            Admit::Wait(ticket) => self.wait(new, ticket, gone, ctx),
            Admit::Full => self.refuse_full(new),
        }
    }

    /// The targets for a request and the one to try first, or why it is refused.
    fn route(
        &self,
        received: &Received,
        model: &str,
        wire: crate::wire::Wire,
    ) -> Result<(Vec<Target>, usize), GatewayError> {
        if self.refusing {
            return Err(GatewayError::Draining {
                retry_after: RETRY_AFTER,
            });
        }
        if let Some(peer) = &received.peer {
            self.routes.limits().take_client(peer.uid)?;
        }
        let targets = self.routes.resolve(model, wire)?;
        if targets.is_empty() {
            let shown = crate::error::truncate(model, super::MAX_MODEL_SHOWN);
            return Err(GatewayError::UnknownModel(shown));
        }
        let index = self.pick(&targets, 0)?;
        Ok((targets, index))
    }

    /// The first target from `from` on that is healthy (unless none is) and
    /// within its provider's rate limit.
    pub(super) fn pick(&self, targets: &[Target], from: usize) -> Result<usize, GatewayError> {
        let now = Instant::now();
        let healthy = |t: &Target| self.routes.healthy(&t.route.provider, now);
        // A reroute's chain may name a provider a reload has removed since.
        let routed = |i: &usize| self.routes.routes(&targets[*i].route.provider);
        let order = (from..targets.len())
            .filter(|&i| healthy(&targets[i]))
            .chain((from..targets.len()).filter(|&i| !healthy(&targets[i])))
            .filter(routed);
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
            None => GatewayError::NoTargetLeft,
        })
    }

    /// Starts the session of an admitted request, which holds `slot`, after
    /// it `queued` this long.
    fn start(
        &mut self,
        id: SessionId,
        new: NewSession,
        (gone, slot): (ClientGone, Slot),
        queued: Duration,
        ctx: &mut Context<Self>,
    ) {
        let NewSession {
            recorder,
            request,
            targets,
            index,
            deadline,
            reply,
        } = new;
        if reply.is_closed() {
            // The client left while it waited: nothing to start (the slot
            // goes back as it is dropped).
            recorder.end_with(false, GatewayError::Cancelled(CancelReason::ClientGone));
            return;
        }
        // Recorded here, not in the session's `started`: the session is
        // listed as live from this line on, so its phase must say so.
        recorder.record(Phase::SessionAllocated, None);
        let spec = SessionSpec {
            recorder: recorder.clone(),
            request,
            target: targets[index].clone(),
            deadline,
            queued,
            reply,
            gone,
            slot,
            reroute: ctx.address().recipient(),
            ended: ctx.address().recipient(),
        };
        let addr = Session::new(spec).start();
        let live = Live {
            addr,
            recorder,
            targets,
            index,
        };
        self.live.insert(id, live);
    }

    /// A request waits for capacity: QUEUED, and a task that holds its
    /// ticket until a slot comes, its deadline passes or its client leaves.
    fn wait(
        &mut self,
        new: NewSession,
        ticket: Ticket,
        mut gone: ClientGone,
        ctx: &mut Context<Self>,
    ) {
        let id = ticket.id();
        let position = self
            .shared
            .admission
            .position(id, Instant::now())
            .unwrap_or(0);
        let detail = format!("position {position}");
        new.recorder.record(Phase::Queued, Some(detail.into()));
        let supervisor = ctx.address();
        let deadline = tokio::time::Instant::from_std(new.deadline);
        let task = actix_rt::spawn(async move {
            let outcome = tokio::select! {
                slot = ticket => WaitOutcome::Granted(slot, gone),
                () = tokio::time::sleep_until(deadline) => WaitOutcome::Expired,
                () = &mut gone => WaitOutcome::Left,
            };
            supervisor.do_send(Waited { id, outcome });
        });
        self.waiting.insert(id, Waiting { new, task });
    }

    /// A wait ended: start the session, or refuse it, or record it left.
    pub(super) fn waited(&mut self, Waited { id, outcome }: Waited, ctx: &mut Context<Self>) {
        let Some(Waiting { new, .. }) = self.waiting.remove(&id) else {
            return; // cancelled meanwhile; a granted slot goes back as it drops
        };
        let waited = new.recorder.meta().received_at.elapsed();
        match outcome {
            WaitOutcome::Granted(slot, gone) => {
                let detail = format!("waited {} ms", duration_ms(waited));
                new.recorder.record(Phase::Dequeued, Some(detail.into()));
                self.start(id, new, (gone, slot), waited, ctx);
            }
            WaitOutcome::Expired => {
                let error = GatewayError::Overloaded {
                    why: Overload::WaitedPastDeadline {
                        waited_ms: duration_ms(waited),
                    },
                    retry_after: RETRY_AFTER,
                };
                new.recorder.end_with(false, error.clone());
                let _ = new.reply.send(Err(error));
            }
            WaitOutcome::Left => {
                let error = GatewayError::Cancelled(CancelReason::ClientGone);
                new.recorder.end_with(false, error);
            }
        }
        self.notify_if_idle();
    }

    /// The queue was full: REJECTED, 503 with `Retry-After`.
    fn refuse_full(&mut self, new: NewSession) {
        let error = GatewayError::Overloaded {
            why: Overload::QueueFull {
                max_queued: self.settings.max_queued,
            },
            retry_after: RETRY_AFTER,
        };
        new.recorder.end_with(false, error.clone());
        let _ = new.reply.send(Err(error));
    }
}
