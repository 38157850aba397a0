//! The supervisor's message handlers.

use std::time::Instant;

use actix::prelude::*;
use futures_util::future::join_all;
use tokio::sync::oneshot;

use super::admission::Admit;
use super::queue::end_unstarted;
use super::{
    BeginDrain, CancelAll, CancelSession, GetSession, GetStatus, ListProviders, ListSessions,
    Pending, ProviderView, Refused, Reroute, SessionView, Status, Submit, Supervisor, Target,
    WaitIdle,
};
use crate::error::{CancelReason, GatewayError};
use crate::lifecycle::Recent;
use crate::phase::Phase;
use crate::provider::GetHealth;
use crate::record::SessionRecord;
use crate::session::{Cancel, SessionEnded};

impl Handler<Submit> for Supervisor {
    type Result = ();

    fn handle(&mut self, submit: Submit, ctx: &mut Self::Context) {
        self.submit(submit, ctx);
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

    fn handle(&mut self, SessionEnded(id): SessionEnded, ctx: &mut Self::Context) {
        if let Some(live) = self.live.remove(&id) {
            match &live.slot {
                Some(provider) => self.admission.release(provider, true),
                None => {
                    // It was waiting for its next target: out of line too.
                    self.admission.remove(id);
                    self.admission.release_session();
                }
            }
        }
        self.pump(ctx);
        self.notify_if_idle();
    }
}

impl Handler<Reroute> for Supervisor {
    type Result = ResponseFuture<Option<Target>>;

    fn handle(&mut self, Reroute(id): Reroute, ctx: &mut Self::Context) -> Self::Result {
        let Some(live) = self.live.get_mut(&id) else {
            return Box::pin(async { None });
        };
        if let Some(provider) = live.slot.take() {
            self.admission.release(&provider, false);
        }
        let (from, priority) = (live.index + 1, live.recorder.meta().priority);
        let next = self
            .live
            .get(&id)
            .map(|live| self.pick(&live.targets, from));
        let (tx, rx) = oneshot::channel();
        if let Some(Ok(index)) = next {
            let provider = self.live[&id].targets[index].route.provider.clone();
            let pending = Pending::Reroute { tx, index };
            match self
                .admission
                .admit(id, &provider, priority, false, Instant::now(), pending)
            {
                Admit::Now(Pending::Reroute { tx, index }) => self.resume(id, index, tx),
                Admit::Queued => {
                    let position = self.admission.position(id, Instant::now()).unwrap_or(0);
                    let detail = format!("position {position}, for {provider}");
                    self.live[&id]
                        .recorder
                        .record(Phase::Queued, Some(detail.into()));
                }
                _ => {}
            }
        }
        self.pump(ctx);
        Box::pin(async move { rx.await.ok() })
    }
}

impl Handler<ListSessions> for Supervisor {
    type Result = Vec<SessionView>;

    fn handle(&mut self, _: ListSessions, _: &mut Self::Context) -> Self::Result {
        let now = Instant::now();
        let live = self.live.iter().map(|(id, live)| SessionView {
            meta: live.recorder.meta().clone(),
            position: self.admission.position(*id, now),
        });
        let queued = self
            .admission
            .waiting()
            .filter_map(|(id, pending)| match pending {
                Pending::New(new) => Some(SessionView {
                    meta: new.recorder.meta().clone(),
                    position: self.admission.position(id, now),
                }),
                Pending::Reroute { .. } => None,
            });
        let mut sessions: Vec<_> = live.chain(queued).collect();
        sessions.sort_by_key(|view| view.meta.received_at);
        sessions
    }
}

impl Handler<GetSession> for Supervisor {
    type Result = ResponseFuture<Option<(SessionRecord, bool)>>;

    fn handle(&mut self, GetSession(id): GetSession, _: &mut Self::Context) -> Self::Result {
        let recorder = match (self.live.get(&id), self.admission.get(id)) {
            (Some(live), _) => Some(&live.recorder),
            (None, Some(Pending::New(new))) => Some(&new.recorder),
            _ => None,
        };
        if let Some(recorder) = recorder {
            let record = recorder.snapshot();
            return Box::pin(async move { Some((record, true)) });
        }
        let recent = self.recent.send(Recent(id));
        Box::pin(async move {
            recent
                .await
                .ok()
                .flatten()
                .map(|r| (SessionRecord::clone(&r), false))
        })
    }
}

impl Handler<CancelSession> for Supervisor {
    type Result = bool;

    fn handle(&mut self, CancelSession(id): CancelSession, _: &mut Self::Context) -> bool {
        if let Some(live) = self.live.get(&id) {
            live.addr.do_send(Cancel(CancelReason::Operator));
            return true;
        }
        match self.admission.remove(id) {
            Some(pending) => {
                cancel_waiting(pending, CancelReason::Operator);
                self.notify_if_idle();
                true
            }
            None => false,
        }
    }
}

impl Handler<ListProviders> for Supervisor {
    type Result = ResponseFuture<Vec<ProviderView>>;

    fn handle(&mut self, _: ListProviders, _: &mut Self::Context) -> Self::Result {
        let views: Vec<_> = self
            .routes
            .providers()
            .map(|(name, addr)| {
                let view = ProviderView {
                    name: name.clone(),
                    in_flight: self.admission.in_flight(name),
                    queued: self.admission.queued_for(name),
                    max_concurrency: self.max_concurrency.get(name).copied().unwrap_or(0),
                    health: None,
                };
                (view, addr.send(GetHealth))
            })
            .collect();
        Box::pin(async move {
            let (views, asks): (Vec<_>, Vec<_>) = views.into_iter().unzip();
            let healths = join_all(asks).await;
            let mut views: Vec<ProviderView> = views
                .into_iter()
                .zip(healths)
                .map(|(view, health)| ProviderView {
                    health: health.ok(),
                    ..view
                })
                .collect();
            views.sort_by(|a, b| a.name.cmp(&b.name));
            views
        })
    }
}

impl Handler<GetStatus> for Supervisor {
    type Result = Status;

    fn handle(&mut self, _: GetStatus, _: &mut Self::Context) -> Status {
        Status {
            live: self.live.len(),
            queued: self.admission.queued(),
            draining: self.draining,
        }
    }
}

impl Handler<BeginDrain> for Supervisor {
    type Result = usize;

    fn handle(&mut self, _: BeginDrain, _: &mut Self::Context) -> usize {
        self.draining = true;
        self.live.len() + self.admission.queued()
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
        // Sessions waiting for a fallback target are live, and cancelled above.
        let waiting: Vec<_> = self
            .admission
            .waiting()
            .filter(|(_, pending)| matches!(pending, Pending::New(_)))
            .map(|(id, _)| id)
            .collect();
        let cancelled = self.live.len() + waiting.len();
        for id in waiting {
            if let Some(pending) = self.admission.remove(id) {
                cancel_waiting(pending, reason);
            }
        }
        self.notify_if_idle();
        cancelled
    }
}

/// Ends a waiting request that never got a session: its client gets the
/// error (a waiting reroute's session is cancelled on its own).
fn cancel_waiting(pending: Pending, reason: CancelReason) {
    if let Pending::New(new) = pending {
        let error = GatewayError::Cancelled(reason);
        end_unstarted(&new.recorder, error.clone());
        let _ = new.reply.send(Err(error));
    }
}
