//! The supervisor's message handlers.

use std::time::Instant;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::{
    BeginDrain, CancelAll, CancelSession, DrainMode, GetSession, GetStatus, ListProviders,
    ListSessions, Next, ProviderView, Refused, Reroute, SessionEnded, SessionView, Status, Submit,
    Supervisor, WaitIdle, Waited,
};
use crate::admission::Admit;
use crate::error::CancelReason;
use crate::lifecycle::{Recent, Recorder};
use crate::phase::Phase;
use crate::record::SessionRecord;
use crate::session::Cancel;

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

impl Handler<Waited> for Supervisor {
    type Result = ();

    fn handle(&mut self, waited: Waited, ctx: &mut Self::Context) {
        self.waited(waited, ctx);
    }
}

impl Handler<SessionEnded> for Supervisor {
    type Result = ();

    fn handle(&mut self, SessionEnded(id): SessionEnded, _: &mut Self::Context) {
        self.live.remove(&id);
        self.notify_if_idle();
    }
}

impl Handler<Reroute> for Supervisor {
    type Result = Next;

    fn handle(&mut self, Reroute { id, slot }: Reroute, _: &mut Self::Context) -> Next {
        let held = slot.into_session();
        let Some(live) = self.live.get(&id) else {
            return Next::Done;
        };
        let from = live.index + 1;
        let Ok(index) = self.pick(&live.targets, from) else {
            return Next::Done;
        };
        let live = self.live.get_mut(&id).expect("looked up above");
        live.index = index;
        let target = live.targets[index].clone();
        let recorder = &live.recorder;
        recorder.set_route(target.route.clone());
        let (provider, class) = (&target.route.provider, recorder.meta().priority);
        match self
            .shared
            .admission
            .admit_held(id, provider, class, Instant::now(), held)
        {
            Admit::Now(slot) => Next::Now(target, slot),
            Admit::Wait(ticket) => {
                let position = self.shared.admission.position(id, Instant::now());
                let detail = format!("position {}, for {provider}", position.unwrap_or(0));
                recorder.record(Phase::Queued, Some(detail.into()));
                Next::Wait(target, ticket)
            }
            Admit::Full => Next::Done,
        }
    }
}

impl Handler<ListSessions> for Supervisor {
    type Result = Vec<SessionView>;

    fn handle(&mut self, _: ListSessions, _: &mut Self::Context) -> Self::Result {
        let now = Instant::now();
        let admission = &self.shared.admission;
        let view = |recorder: &Recorder, position| SessionView {
            meta: recorder.meta().clone(),
            route: recorder.route(),
            phase: recorder.phase(),
            position,
        };
        let live = self.live.values().map(|live| view(&live.recorder, None));
        let waiting = self
            .waiting
            .iter()
            .map(|(id, waiting)| view(&waiting.new.recorder, admission.position(*id, now)));
        let mut sessions: Vec<_> = live.chain(waiting).collect();
        sessions.sort_by_key(|view| view.meta.received_at);
        sessions
    }
}

impl Handler<GetSession> for Supervisor {
    type Result = ResponseFuture<Option<(SessionRecord, bool)>>;

    fn handle(&mut self, GetSession(id): GetSession, _: &mut Self::Context) -> Self::Result {
        let recorder = self
            .live
            .get(&id)
            .map(|live| &live.recorder)
            .or_else(|| self.waiting.get(&id).map(|w| &w.new.recorder));
        if let Some(recorder) = recorder {
            let record = recorder.snapshot();
            return Box::pin(async move { Some((record, true)) });
        }
        let recent = self.recent.send(Recent(id));
        Box::pin(async move {
            let record = recent.await.ok().flatten()?;
            Some((SessionRecord::clone(&record), false))
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
        let cancelled = self.cancel_waiting(id, CancelReason::Operator);
        self.notify_if_idle();
        cancelled
    }
}

impl Handler<ListProviders> for Supervisor {
    type Result = Vec<ProviderView>;

    fn handle(&mut self, _: ListProviders, _: &mut Self::Context) -> Self::Result {
        let admission = &self.shared.admission;
        let mut views: Vec<ProviderView> = self
            .routes
            .providers()
            .map(|(name, health)| ProviderView {
                name: name.clone(),
                in_flight: admission.in_flight(name),
                queued: admission.queued_for(name),
                max_concurrency: self.max_concurrency.get(name).copied().unwrap_or(0),
                health: health.view(),
            })
            .collect();
        views.sort_by(|a, b| a.name.cmp(&b.name));
        views
    }
}

impl Handler<GetStatus> for Supervisor {
    type Result = Status;

    fn handle(&mut self, _: GetStatus, _: &mut Self::Context) -> Status {
        Status {
            live: self.live.len(),
            queued: self.waiting.len(),
            draining: self.draining,
        }
    }
}

impl Handler<BeginDrain> for Supervisor {
    type Result = usize;

    fn handle(&mut self, BeginDrain(mode): BeginDrain, _: &mut Self::Context) -> usize {
        self.draining = true;
        self.refusing = mode == DrainMode::Refuse;
        self.live.len() + self.waiting.len()
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
        self.cancel_all(reason)
    }
}
