//! Admission: which requests run now and which wait, and in what order —
//! one type that owns capacity and waiting, shared by every shard.
//!
//! A request needs a slot of its provider (`max_concurrency`) and, when it
//! starts a new session, one of the daemon's (`sessions.max_live`). With
//! both free it gets a [`Slot`] at once; otherwise it waits in its
//! provider's lane, in one of three classes (`x-priority`), first come first
//! served within a class, a request that has waited `starvation_ms` counting
//! as one class higher (two after twice as long); and when the queue is
//! full (`sessions.max_queued`) it is refused.
//!
//! Capacity is a permit, as in tower's concurrency limit: a [`Slot`] gives
//! its capacity back when it is dropped, and nothing else can — no counter is
//! decremented by hand, so a slot cannot be released twice. Giving it back
//! hands it at once to the best waiting request, on whatever shard that
//! request is: each waiter holds a [`Ticket`], a future that resolves to its
//! slot. Dropping a ticket (its deadline passed, its client left, it was
//! cancelled) takes it out of line. The lock is held only for bookkeeping;
//! slots are delivered after it is released.

mod core;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::ids::SessionId;
use crate::meta::Priority;
pub use core::Capacity;
use core::{Asked, Core, Grant, RawSlot};

/// The shared admission state (cheap to clone: every clone is the same).
#[derive(Clone, Debug)]
pub struct Admission(Arc<Mutex<Core>>);

/// What became of a request asking to run.
#[derive(Debug)]
pub enum Admit {
    /// It runs now, holding this slot.
    Now(Slot),
    /// It waits; the ticket resolves to its slot.
    Wait(Ticket),
    /// The queue is full: refuse it.
    Full,
}

/// Capacity held: a provider slot, a session slot, or both. Given back when
/// dropped.
#[derive(Debug)]
#[must_use = "a slot gives its capacity back as soon as it is dropped"]
pub struct Slot {
    /// Where it goes back to.
    admission: Admission,
    /// The provider slot, if held.
    provider: Option<Arc<str>>,
    /// Whether a session slot is held.
    session: bool,
}

/// A place in line; resolves to the request's slot. Dropping it before then
/// leaves the line (and gives back what it held, for a reroute).
#[derive(Debug)]
#[must_use = "a ticket leaves the line as soon as it is dropped"]
pub struct Ticket {
    /// Whose place it is.
    id: SessionId,
    /// Shared by every shard: capacity and the queue are exact however many take requests.
    admission: Admission,
    /// Where the grant comes; `None` once it came.
    grant: Option<oneshot::Receiver<Slot>>,
    /// A session slot the waiter already holds (a reroute), merged into the grant.
    held: Option<Slot>,
}

impl Admission {
    /// Empty admission for `lanes` (provider name, `max_concurrency`).
    pub fn new(
        max_live: usize,
        max_queued: usize,
        starvation: Duration,
        lanes: impl IntoIterator<Item = (Arc<str>, usize)>,
    ) -> Self {
        let core = Core::new(max_live, max_queued, starvation, lanes);
        Self(Arc::new(Mutex::new(core)))
    }

    fn core(&self) -> MutexGuard<'_, Core> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks for a slot of `provider` and a session slot, for a new request.
    pub fn admit(
        &self,
        id: SessionId,
        provider: &Arc<str>,
        class: Priority,
        now: Instant,
    ) -> Admit {
        let asked = self.core().ask(id, provider, class, true, now);
        self.answer(id, asked, None)
    }

    /// Asks for a slot of `provider` for a session that already holds its
    /// session slot (`held`, from [`Slot::into_session`]): a reroute.
    pub fn admit_held(
        &self,
        id: SessionId,
        provider: &Arc<str>,
        class: Priority,
        now: Instant,
        held: Slot,
    ) -> Admit {
        debug_assert!(held.session && held.provider.is_none());
        let asked = self.core().ask(id, provider, class, false, now);
        self.answer(id, asked, Some(held))
    }

    fn answer(&self, id: SessionId, asked: Asked, held: Option<Slot>) -> Admit {
        match asked {
            Asked::Taken(raw) => Admit::Now(merge(self.slot(raw), held)),
            Asked::Waiting(grant) => Admit::Wait(Ticket {
                id,
                admission: self.clone(),
                grant: Some(grant),
                held,
            }),
            Asked::Full => Admit::Full,
        }
    }

    fn slot(&self, raw: RawSlot) -> Slot {
        Slot {
            admission: self.clone(),
            provider: raw.provider,
            session: raw.session,
        }
    }

    /// Hands grants out (after the lock is released). A grant whose waiter
    /// is gone comes back as a slot and is dropped, which hands it on.
    fn deliver(&self, grants: Vec<Grant>) {
        for (tx, raw) in grants {
            let _ = tx.send(self.slot(raw));
        }
    }

    /// Where a waiting request stands in its lane (1 is next).
    pub fn position(&self, id: SessionId, now: Instant) -> Option<usize> {
        self.core().position(id, now)
    }

    /// Requests waiting in total.
    pub fn queued(&self) -> usize {
        self.core().queued()
    }

    /// Requests waiting for `provider`.
    pub fn queued_for(&self, provider: &str) -> usize {
        self.core().queued_for(provider)
    }

    /// Slots of `provider` taken.
    pub fn in_flight(&self, provider: &str) -> usize {
        self.core().in_flight(provider)
    }

    /// Session slots taken.
    pub fn running(&self) -> usize {
        self.core().running()
    }

    /// Takes new limits and lanes (provider name, `max_concurrency`) from a
    /// reload, keeping every slot in flight; see [`Core::resize`]. Slots a
    /// raised limit frees go to waiters at once.
    pub fn resize(&self, capacity: Capacity, lanes: impl IntoIterator<Item = (Arc<str>, usize)>) {
        let grants = self.core().resize(capacity, lanes, Instant::now());
        self.deliver(grants);
    }

    /// Whether `provider` has a lane that still grants slots (not removed
    /// by a reload).
    pub fn serves(&self, provider: &str) -> bool {
        self.core().serves(provider)
    }
}

/// `slot` with `held`'s session slot added to it.
fn merge(mut slot: Slot, held: Option<Slot>) -> Slot {
    if let Some(mut held) = held {
        slot.session |= std::mem::take(&mut held.session);
    }
    slot
}

impl Slot {
    /// The provider whose slot this holds.
    pub fn provider(&self) -> Option<&Arc<str>> {
        self.provider.as_ref()
    }

    /// Gives back the provider slot and keeps the session slot: a session
    /// whose target failed for good, before it asks for the next one.
    pub fn into_session(mut self) -> Slot {
        let provider = Slot {
            admission: self.admission.clone(),
            provider: self.provider.take(),
            session: false,
        };
        drop(provider);
        self
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.provider.is_none() && !self.session {
            return;
        }
        let raw = RawSlot {
            provider: self.provider.take(),
            session: std::mem::take(&mut self.session),
        };
        let grants = self.admission.core().release(raw, Instant::now());
        self.admission.deliver(grants);
    }
}

impl Ticket {
    /// Whose place this is.
    pub fn id(&self) -> SessionId {
        self.id
    }
}

impl Future for Ticket {
    type Output = Slot;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Slot> {
        let Some(grant) = self.grant.as_mut() else {
            panic!("a ticket was polled after it resolved");
        };
        match Pin::new(grant).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(slot)) => {
                self.grant = None;
                let held = self.held.take();
                Poll::Ready(merge(slot, held))
            }
            // The sender lives in the line until it is granted or the ticket
            // leaves, so it cannot be dropped while the ticket waits.
            Poll::Ready(Err(_)) => unreachable!("a waiting ticket lost its grant"),
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.grant.is_some() {
            self.admission.core().leave(self.id);
        }
        // Dropped here, outside the lock: a grant already on its way, and a
        // held session slot, are given back.
        self.grant = None;
        self.held = None;
    }
}
