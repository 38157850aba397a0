//! The locked state of [`super::Admission`]: capacity taken, and who waits
//! for it, in what order. Plain bookkeeping with no actors and no timers;
//! every method runs under the admission's lock and returns the grants to
//! hand out once the lock is released.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::ids::{SessionId, SessionMap};
use crate::meta::Priority;

/// A grant to deliver: the waiter's channel and what it gets (the caller
/// turns the raw grant into a [`super::Slot`] after unlocking).
pub type Grant = (oneshot::Sender<super::Slot>, RawSlot);

/// Capacity taken, not yet wrapped in a [`super::Slot`].
#[derive(Debug)]
pub struct RawSlot {
    /// The provider slot taken, if any.
    pub provider: Option<Arc<str>>,
    /// Whether a session slot was taken.
    pub session: bool,
}

/// One provider's capacity and waiting line.
#[derive(Debug, Default)]
struct Lane {
    /// The provider's cap: slots beyond it queue.
    max: usize,
    /// Held by live `Slot`s; moved only by taking or dropping one.
    in_flight: usize,
    /// Waiting requests by class (low, normal, high), oldest first. Entries
    /// removed early stay as stale ids until they reach the front (or a
    /// compaction), so removal is O(1).
    classes: [VecDeque<(SessionId, u64)>; 3],
    /// Live (not removed) entries in `classes`.
    waiting: usize,
    /// Stale entries in `classes`.
    stale: usize,
    /// Its provider was removed by a reload: it grants nothing more and
    /// goes once its last slot is back and nobody waits in it.
    retired: bool,
}

/// A waiting request.
#[derive(Debug)]
struct Waiter {
    /// The provider whose slot it waits for.
    provider: Arc<str>,
    /// Its class as sent.
    class: Priority,
    /// When it began to wait.
    since: Instant,
    /// Arrival order, to break ties and to tell a live entry from a stale one.
    seq: u64,
    /// Whether it also needs a session slot (a new request does; a session
    /// moving to its fallback target already holds one).
    needs_session: bool,
    /// Where its grant goes.
    grant: oneshot::Sender<super::Slot>,
}

/// What an ask found.
#[derive(Debug)]
pub enum Asked {
    /// Room now: taken.
    Taken(RawSlot),
    /// No room: it waits; its grant comes on the channel.
    Waiting(oneshot::Receiver<super::Slot>),
    /// The queue is full.
    Full,
}

/// Capacity and the queue.
#[derive(Debug)]
pub struct Core {
    /// `sessions.max_live`.
    max_live: usize,
    /// `sessions.max_queued`: waiting new requests at most.
    max_queued: usize,
    /// `sessions.starvation_ms`.
    starvation: Duration,
    /// Session slots taken.
    running: usize,
    /// Lanes by provider name.
    lanes: HashMap<Arc<str>, Lane>,
    /// Waiting requests by session id.
    waiters: SessionMap<Waiter>,
    /// Waiting requests that need a session slot (bounded by `max_queued`).
    queued_new: usize,
    /// The next arrival number.
    seq: u64,
}

impl Core {
    /// Empty state for `lanes` (provider name, `max_concurrency`).
    pub fn new(
        max_live: usize,
        max_queued: usize,
        starvation: Duration,
        lanes: impl IntoIterator<Item = (Arc<str>, usize)>,
    ) -> Self {
        let lanes = lanes
            .into_iter()
            .map(|(name, max)| {
                (
                    name,
                    Lane {
                        max,
                        ..Lane::default()
                    },
                )
            })
            .collect();
        Self {
            max_live,
            max_queued,
            starvation: starvation.max(Duration::from_millis(1)),
            running: 0,
            lanes,
            waiters: SessionMap::default(),
            queued_new: 0,
            seq: 0,
        }
    }

    /// Asks for a slot of `provider` (and a session slot if `needs_session`).
    /// A request that finds others waiting for its provider waits behind
    /// them, even if a slot is free this instant.
    pub fn ask(
        &mut self,
        id: SessionId,
        provider: &Arc<str>,
        class: Priority,
        needs_session: bool,
        now: Instant,
    ) -> Asked {
        let session_free = !needs_session || self.running < self.max_live;
        let Some(lane) = self.lanes.get_mut(provider) else {
            return Asked::Full;
        };
        if lane.waiting == 0 && lane.in_flight < lane.max && session_free {
            lane.in_flight += 1;
            self.running += usize::from(needs_session);
            return Asked::Taken(RawSlot {
                provider: Some(provider.clone()),
                session: needs_session,
            });
        }
        if needs_session && self.queued_new >= self.max_queued {
            return Asked::Full;
        }
        self.seq += 1;
        lane.classes[class as usize].push_back((id, self.seq));
        lane.waiting += 1;
        self.queued_new += usize::from(needs_session);
        let (grant, rx) = oneshot::channel();
        let waiter = Waiter {
            provider: provider.clone(),
            class,
            since: now,
            seq: self.seq,
            needs_session,
            grant,
        };
        self.waiters.insert(id, waiter);
        Asked::Waiting(rx)
    }

    /// Gives back what `slot` held, and hands every slot that can now be
    /// used to the best waiting request for it.
    pub fn release(&mut self, slot: RawSlot, now: Instant) -> Vec<Grant> {
        if let Some(provider) = slot.provider
            && let Some(lane) = self.lanes.get_mut(&provider)
        {
            debug_assert!(lane.in_flight > 0, "a provider slot was released twice");
            lane.in_flight -= 1;
            if lane.is_spent() {
                self.lanes.remove(&provider);
            }
        }
        if slot.session {
            debug_assert!(self.running > 0, "a session slot was released twice");
            self.running -= 1;
        }
        self.pump(now)
    }

    /// Takes a waiting request out of line (its deadline passed, its client
    /// left, it was cancelled); returns whether it was waiting.
    pub fn leave(&mut self, id: SessionId) -> bool {
        let Some(waiter) = self.waiters.remove(&id) else {
            return false;
        };
        self.queued_new -= usize::from(waiter.needs_session);
        if let Some(lane) = self.lanes.get_mut(&waiter.provider) {
            lane.waiting -= 1;
            lane.stale += 1;
            if lane.stale > lane.waiting + 64 {
                let waiters = &self.waiters;
                for class in &mut lane.classes {
                    class.retain(|(id, seq)| waiters.get(id).is_some_and(|w| w.seq == *seq));
                }
                lane.stale = 0;
            }
            if lane.is_spent() {
                self.lanes.remove(&waiter.provider);
            }
        }
        true
    }

    /// Hands every slot that can be used to the best waiting request for it.
    fn pump(&mut self, now: Instant) -> Vec<Grant> {
        let mut grants = Vec::new();
        while let Some((provider, class)) = self.best(now) {
            let lane = self.lanes.get_mut(&provider).expect("best() names a lane");
            let (id, _) = lane.classes[class]
                .pop_front()
                .expect("best() names a head");
            let waiter = self.waiters.remove(&id).expect("best() skips stale heads");
            lane.waiting -= 1;
            lane.in_flight += 1;
            self.running += usize::from(waiter.needs_session);
            self.queued_new -= usize::from(waiter.needs_session);
            let raw = RawSlot {
                provider: Some(provider),
                session: waiter.needs_session,
            };
            grants.push((waiter.grant, raw));
        }
        grants
    }

    /// The lane and class of the best head that can run now.
    fn best(&mut self, now: Instant) -> Option<(Arc<str>, usize)> {
        let session_free = self.running < self.max_live;
        let mut best: Option<(Priority, u64, Arc<str>, usize)> = None;
        for (name, lane) in &mut self.lanes {
            if lane.waiting == 0 || lane.in_flight >= lane.max {
                continue;
            }
            for (index, class) in lane.classes.iter_mut().enumerate() {
                let Some(waiter) = live_head(class, &self.waiters, &mut lane.stale) else {
                    continue;
                };
                if waiter.needs_session && !session_free {
                    continue;
                }
                let effective = effective(waiter, now, self.starvation);
                let key = (effective, std::cmp::Reverse(waiter.seq));
                let better = best
                    .as_ref()
                    .is_none_or(|(c, s, _, _)| key > (*c, std::cmp::Reverse(*s)));
                if better {
                    best = Some((effective, waiter.seq, name.clone(), index));
                }
            }
        }
        best.map(|(_, _, name, index)| (name, index))
    }

    /// Where a waiting request stands in its lane (1 is next), in the order
    /// the lane would serve it now.
    pub fn position(&self, id: SessionId, now: Instant) -> Option<usize> {
        let waiter = self.waiters.get(&id)?;
        let key = |w: &Waiter| (effective(w, now, self.starvation), std::cmp::Reverse(w.seq));
        let mine = key(waiter);
        let ahead = self
            .waiters
            .values()
            .filter(|other| other.provider == waiter.provider && key(other) > mine)
            .count();
        Some(ahead + 1)
    }

    /// Requests waiting in total.
    pub fn queued(&self) -> usize {
        self.waiters.len()
    }

    /// Requests waiting for `provider`.
    pub fn queued_for(&self, provider: &str) -> usize {
        self.lanes.get(provider).map_or(0, |lane| lane.waiting)
    }

    /// Slots of `provider` taken.
    pub fn in_flight(&self, provider: &str) -> usize {
        self.lanes.get(provider).map_or(0, |lane| lane.in_flight)
    }

    /// Session slots taken.
    pub fn running(&self) -> usize {
        self.running
    }

    /// Takes new limits and lanes (a reload). Slots in flight stay taken
    /// wherever they are: a lane lowered below its in-flight count grants
    /// nothing until enough come back; a lane whose provider is gone is
    /// retired (its waiters are the supervisors' to refuse) and removed
    /// once empty; raised limits are handed to waiters at once.
    pub fn resize(
        &mut self,
        capacity: Capacity,
        lanes: impl IntoIterator<Item = (Arc<str>, usize)>,
        now: Instant,
    ) -> Vec<Grant> {
        self.max_live = capacity.max_live;
        self.max_queued = capacity.max_queued;
        self.starvation = capacity.starvation.max(Duration::from_millis(1));
        for lane in self.lanes.values_mut() {
            lane.retired = true;
        }
        for (name, max) in lanes {
            let lane = self.lanes.entry(name).or_default();
            lane.max = max;
            lane.retired = false;
        }
        self.lanes.retain(|_, lane| !lane.is_spent());
        for lane in self.lanes.values_mut().filter(|lane| lane.retired) {
            lane.max = 0;
        }
        self.pump(now)
    }

    /// Whether `provider` has a lane that still grants slots.
    pub fn serves(&self, provider: &str) -> bool {
        self.lanes.get(provider).is_some_and(|lane| !lane.retired)
    }
}

/// The daemon-wide limits, as [`Core::resize`] takes them.
#[derive(Clone, Copy, Debug)]
pub struct Capacity {
    /// `sessions.max_live`.
    pub max_live: usize,
    /// `sessions.max_queued`.
    pub max_queued: usize,
    /// `sessions.starvation_ms`.
    pub starvation: Duration,
}

impl Lane {
    /// A retired lane with nothing left in it.
    fn is_spent(&self) -> bool {
        self.retired && self.in_flight == 0 && self.waiting == 0
    }
}

/// The first live (not removed) entry of `class`, dropping stale ones.
fn live_head<'a>(
    class: &mut VecDeque<(SessionId, u64)>,
    waiters: &'a SessionMap<Waiter>,
    stale: &mut usize,
) -> Option<&'a Waiter> {
    loop {
        let &(id, seq) = class.front()?;
        match waiters.get(&id) {
            Some(waiter) if waiter.seq == seq => return Some(waiter),
            _ => {
                class.pop_front();
                *stale = stale.saturating_sub(1);
            }
        }
    }
}

/// The class a waiting request is served as: its own, raised one step per
/// `starvation` waited.
fn effective(waiter: &Waiter, now: Instant, starvation: Duration) -> Priority {
    let waited = now.saturating_duration_since(waiter.since);
    let steps = (waited.as_nanos() / starvation.as_nanos()) as u64;
    waiter.class.raised(steps)
}
