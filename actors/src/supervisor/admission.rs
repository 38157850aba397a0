//! Admission: which requests run now and which wait, and in what order.
//!
//! Pure bookkeeping for the supervisor — no actors, no timers. A request
//! needs a slot of its provider (`max_concurrency`) and, when it would start
//! a new session, one of the daemon's (`sessions.max_live`). Without both it
//! waits in its provider's lane, in one of three classes (`x-priority`),
//! first come first served within a class; a request that has waited
//! `starvation_ms` counts as one class higher (two after twice as long). A
//! freed slot goes at once to the best waiting request that can use it:
//! [`Admission::pump`] is called on every release, never on a timer.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ids::{SessionId, SessionMap};
use crate::meta::Priority;

/// What became of a request asking to run.
#[derive(Debug)]
pub enum Admit<P> {
    /// It runs now: its slots are taken.
    Now(P),
    /// It waits.
    Queued,
    /// The queue is full: refuse it.
    Full(P),
}

/// One provider's capacity and waiting line.
#[derive(Debug, Default)]
struct Lane {
    /// `max_concurrency`.
    max: usize,
    /// Slots taken.
    in_flight: usize,
    /// Waiting requests by class (low, normal, high), oldest first. Entries
    /// removed early stay as stale ids until they reach the front (or a
    /// compaction), so removal is O(1).
    classes: [VecDeque<(SessionId, u64)>; 3],
    /// Live (not removed) entries in `classes`.
    waiting: usize,
    /// Stale entries in `classes`.
    stale: usize,
}

/// A waiting request.
#[derive(Debug)]
struct Entry<P> {
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
    /// What the supervisor needs to start or resume it.
    payload: P,
}

/// The admission state.
#[derive(Debug)]
pub struct Admission<P> {
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
    entries: SessionMap<Entry<P>>,
    /// Waiting requests that need a session slot (bounded by `max_queued`).
    queued_new: usize,
    /// The next arrival number.
    seq: u64,
}

impl<P> Admission<P> {
    /// Empty admission state for `lanes` (provider name, `max_concurrency`).
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
            entries: SessionMap::default(),
            queued_new: 0,
            seq: 0,
        }
    }

    /// Asks for a slot of `provider` (and a session slot if `needs_session`).
    pub fn admit(
        &mut self,
        id: SessionId,
        provider: &Arc<str>,
        class: Priority,
        needs_session: bool,
        now: Instant,
        payload: P,
    ) -> Admit<P> {
        let session_free = !needs_session || self.running < self.max_live;
        let Some(lane) = self.lanes.get_mut(provider) else {
            return Admit::Full(payload);
        };
        if lane.waiting == 0 && lane.in_flight < lane.max && session_free {
            lane.in_flight += 1;
            self.running += usize::from(needs_session);
            return Admit::Now(payload);
        }
        if needs_session && self.queued_new >= self.max_queued {
            return Admit::Full(payload);
        }
        self.seq += 1;
        lane.classes[class as usize].push_back((id, self.seq));
        lane.waiting += 1;
        self.queued_new += usize::from(needs_session);
        let entry = Entry {
            provider: provider.clone(),
            class,
            since: now,
            seq: self.seq,
            needs_session,
            payload,
        };
        self.entries.insert(id, entry);
        Admit::Queued
    }

    /// Gives back a slot of `provider` (and a session slot if `session`).
    /// Call [`Admission::pump`] afterwards.
    pub fn release(&mut self, provider: &str, session: bool) {
        if let Some(lane) = self.lanes.get_mut(provider) {
            lane.in_flight = lane.in_flight.saturating_sub(1);
        }
        if session {
            self.running = self.running.saturating_sub(1);
        }
    }

    /// Gives back a session slot alone (a session that ended while waiting
    /// for its fallback target, holding no provider slot).
    pub fn release_session(&mut self) {
        self.running = self.running.saturating_sub(1);
    }

    /// Takes a waiting request out of line (deadline passed, client gone).
    pub fn remove(&mut self, id: SessionId) -> Option<P> {
        let entry = self.entries.remove(&id)?;
        self.queued_new -= usize::from(entry.needs_session);
        if let Some(lane) = self.lanes.get_mut(&entry.provider) {
            lane.waiting -= 1;
            lane.stale += 1;
            if lane.stale > lane.waiting + 64 {
                let entries = &self.entries;
                for class in &mut lane.classes {
                    class.retain(|(id, seq)| entries.get(id).is_some_and(|e| e.seq == *seq));
                }
                lane.stale = 0;
            }
        }
        Some(entry.payload)
    }

    /// Hands every slot that can be used to the best waiting request for it;
    /// returns the requests that may now run, their slots taken.
    pub fn pump(&mut self, now: Instant) -> Vec<(SessionId, P)> {
        let mut started = Vec::new();
        while let Some((provider, class)) = self.best(now) {
            let lane = self.lanes.get_mut(&provider).expect("best() names a lane");
            let (id, _) = lane.classes[class]
                .pop_front()
                .expect("best() names a head");
            let entry = self.entries.remove(&id).expect("best() skips stale heads");
            lane.waiting -= 1;
            lane.in_flight += 1;
            self.running += usize::from(entry.needs_session);
            self.queued_new -= usize::from(entry.needs_session);
            started.push((id, entry.payload));
        }
        started
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
                let head = loop {
                    let Some(&(id, seq)) = class.front() else {
                        break None;
                    };
                    match self.entries.get(&id) {
                        Some(entry) if entry.seq == seq => break Some(entry),
                        _ => {
                            class.pop_front();
                            lane.stale = lane.stale.saturating_sub(1);
                        }
                    }
                };
                let Some(entry) = head else { continue };
                if entry.needs_session && !session_free {
                    continue;
                }
                let effective = effective(entry, now, self.starvation);
                let better = best.as_ref().is_none_or(|(class, seq, _, _)| {
                    (effective, std::cmp::Reverse(entry.seq)) > (*class, std::cmp::Reverse(*seq))
                });
                if better {
                    best = Some((effective, entry.seq, name.clone(), index));
                }
            }
        }
        best.map(|(_, _, name, index)| (name, index))
    }

    /// Where a waiting request stands in its lane (1 is next), in the order
    /// the lane would serve it now.
    pub fn position(&self, id: SessionId, now: Instant) -> Option<usize> {
        let entry = self.entries.get(&id)?;
        let key = |e: &Entry<P>| (effective(e, now, self.starvation), std::cmp::Reverse(e.seq));
        let mine = key(entry);
        let ahead = self
            .entries
            .values()
            .filter(|other| other.provider == entry.provider && key(other) > mine)
            .count();
        Some(ahead + 1)
    }

    /// The payload of a waiting request.
    pub fn get(&self, id: SessionId) -> Option<&P> {
        self.entries.get(&id).map(|entry| &entry.payload)
    }

    /// Whether a request is waiting.
    pub fn contains(&self, id: SessionId) -> bool {
        self.entries.contains_key(&id)
    }

    /// The waiting requests, for sweeps and listings.
    pub fn waiting(&self) -> impl Iterator<Item = (SessionId, &P)> {
        self.entries.iter().map(|(id, entry)| (*id, &entry.payload))
    }

    /// Requests waiting in total.
    pub fn queued(&self) -> usize {
        self.entries.len()
    }

    /// Requests waiting for `provider`.
    pub fn queued_for(&self, provider: &str) -> usize {
        self.lanes.get(provider).map_or(0, |lane| lane.waiting)
    }

    /// Slots of `provider` taken.
    pub fn in_flight(&self, provider: &str) -> usize {
        self.lanes.get(provider).map_or(0, |lane| lane.in_flight)
    }
}

/// The class a waiting request is served as: its own, raised one step per
/// `starvation` waited.
fn effective<P>(entry: &Entry<P>, now: Instant, starvation: Duration) -> Priority {
    let waited = now.saturating_duration_since(entry.since);
    let steps = (waited.as_nanos() / starvation.as_nanos()) as u64;
    entry.class.raised(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(max_live: usize, max_queued: usize, lanes: &[(&str, usize)]) -> Admission<u32> {
        let lanes = lanes.iter().map(|(name, max)| (Arc::from(*name), *max));
        Admission::new(max_live, max_queued, Duration::from_secs(10), lanes)
    }

    fn ask(
        a: &mut Admission<u32>,
        lane: &str,
        class: Priority,
        n: u32,
        now: Instant,
    ) -> Admit<u32> {
        a.admit(SessionId::new(), &Arc::from(lane), class, true, now, n)
    }

    fn ran(started: Vec<(SessionId, u32)>) -> Vec<u32> {
        started.into_iter().map(|(_, n)| n).collect()
    }

    #[test]
    fn a_provider_never_runs_more_than_its_limit() {
        let now = Instant::now();
        let mut a = setup(100, 100, &[("p", 2)]);
        assert!(matches!(
            ask(&mut a, "p", Priority::Normal, 1, now),
            Admit::Now(1)
        ));
        assert!(matches!(
            ask(&mut a, "p", Priority::Normal, 2, now),
            Admit::Now(2)
        ));
        assert!(matches!(
            ask(&mut a, "p", Priority::Normal, 3, now),
            Admit::Queued
        ));
        assert!(ran(a.pump(now)).is_empty());
        a.release("p", true);
        assert_eq!(ran(a.pump(now)), [3]);
        assert_eq!(a.in_flight("p"), 2);
    }

    #[test]
    fn higher_classes_go_first_and_fifo_within_a_class() {
        let now = Instant::now();
        let mut a = setup(100, 100, &[("p", 1)]);
        ask(&mut a, "p", Priority::Normal, 0, now);
        for (n, class) in [
            (1, Priority::Low),
            (2, Priority::Normal),
            (3, Priority::High),
            (4, Priority::High),
        ] {
            assert!(matches!(ask(&mut a, "p", class, n, now), Admit::Queued));
        }
        let mut order = Vec::new();
        for _ in 0..4 {
            a.release("p", true);
            order.extend(ran(a.pump(now)));
        }
        assert_eq!(order, [3, 4, 2, 1]);
    }

    #[test]
    fn a_starving_request_is_promoted() {
        let start = Instant::now();
        let mut a = setup(100, 100, &[("p", 1)]);
        ask(&mut a, "p", Priority::Normal, 0, start);
        ask(&mut a, "p", Priority::Low, 1, start);
        let later = start + Duration::from_secs(11);
        ask(&mut a, "p", Priority::Normal, 2, later);
        a.release("p", true);
        assert_eq!(
            ran(a.pump(later)),
            [1],
            "the old low request counts as normal and is older"
        );
    }

    #[test]
    fn the_queue_is_bounded_and_removal_frees_room() {
        let now = Instant::now();
        let mut a = setup(1, 2, &[("p", 8)]);
        let first = SessionId::new();
        assert!(matches!(
            a.admit(first, &"p".into(), Priority::Normal, true, now, 0),
            Admit::Now(0)
        ));
        let waiting = SessionId::new();
        assert!(matches!(
            a.admit(waiting, &"p".into(), Priority::Normal, true, now, 1),
            Admit::Queued
        ));
        assert!(matches!(
            ask(&mut a, "p", Priority::Normal, 2, now),
            Admit::Queued
        ));
        assert!(matches!(
            ask(&mut a, "p", Priority::Normal, 3, now),
            Admit::Full(3)
        ));
        assert_eq!(a.remove(waiting), Some(1));
        assert!(matches!(
            ask(&mut a, "p", Priority::Normal, 4, now),
            Admit::Queued
        ));
        a.release("p", true);
        assert_eq!(ran(a.pump(now)), [2], "the removed entry is skipped");
    }

    #[test]
    fn a_global_slot_goes_to_the_best_lane() {
        let now = Instant::now();
        let mut a = setup(1, 10, &[("a", 5), ("b", 5)]);
        ask(&mut a, "a", Priority::Normal, 0, now);
        ask(&mut a, "a", Priority::Low, 1, now);
        ask(&mut a, "b", Priority::High, 2, now);
        a.release("a", true);
        assert_eq!(ran(a.pump(now)), [2]);
    }

    #[test]
    fn positions_follow_service_order() {
        let now = Instant::now();
        let mut a = setup(100, 100, &[("p", 1)]);
        ask(&mut a, "p", Priority::Normal, 0, now);
        let low = SessionId::new();
        a.admit(low, &"p".into(), Priority::Low, true, now, 1);
        let high = SessionId::new();
        a.admit(high, &"p".into(), Priority::High, true, now, 2);
        assert_eq!(a.position(high, now), Some(1));
        assert_eq!(a.position(low, now), Some(2));
    }

    #[test]
    fn stale_entries_are_compacted() {
        let now = Instant::now();
        let mut a = setup(1, 10_000, &[("p", 1)]);
        ask(&mut a, "p", Priority::Normal, 0, now);
        for n in 0..1000 {
            let id = SessionId::new();
            a.admit(id, &"p".into(), Priority::Normal, true, now, n);
            a.remove(id);
        }
        let lane = &a.lanes[&Arc::<str>::from("p")];
        assert!(lane.classes[1].len() <= 65, "{}", lane.classes[1].len());
    }
}
