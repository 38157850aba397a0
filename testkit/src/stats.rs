//! Lock-free counters of the fake provider, and the guards that keep them.
//!
//! Used by [`crate::FakeProvider`] (which reads them for tests and the load
//! benchmark) and by its connection tasks and request handlers (which hold a
//! [`ConnectionGuard`] or [`RequestGuard`] so that counts stay right however a
//! connection or request ends, including by being dropped mid-way).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counters shared by every connection and request of one fake provider.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Chat requests received (incremented when a chat handler starts).
    pub(crate) requests: AtomicUsize,
    /// Chat requests whose handler or streaming body is still alive.
    pub(crate) in_flight: AtomicUsize,
    /// High-water mark of `in_flight`.
    pub(crate) max_in_flight: AtomicUsize,
    /// TCP connections accepted.
    pub(crate) accepted: AtomicUsize,
    /// TCP connections whose serving task ended.
    pub(crate) closed: AtomicUsize,
    /// TCP connections currently open (`accepted - closed`, kept separately
    /// so a reader never sees a torn difference).
    pub(crate) open: AtomicUsize,
    /// Chat requests dropped before their full response was produced.
    pub(crate) abandoned: AtomicUsize,
}

impl Stats {
    /// Reads one counter; `Relaxed` is enough for test observations.
    pub(crate) fn get(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::Relaxed)
    }
}

/// Held by a connection's task; counts the connection open until dropped.
pub(crate) struct ConnectionGuard {
    /// The counters to update on drop.
    stats: Arc<Stats>,
}

impl ConnectionGuard {
    /// Counts a freshly accepted connection.
    pub(crate) fn open(stats: &Arc<Stats>) -> ConnectionGuard {
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        stats.open.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard {
            stats: Arc::clone(stats),
        }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
        self.stats.closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Held by a chat request's handler future and then by its streaming body;
/// counts the request in flight until dropped, and as abandoned if dropped
/// before [`RequestGuard::complete`] was called.
pub(crate) struct RequestGuard {
    /// The counters to update on drop.
    stats: Arc<Stats>,
    /// Whether the whole response was produced.
    completed: bool,
}

impl RequestGuard {
    /// Counts a chat request whose handler has just started.
    pub(crate) fn start(stats: &Arc<Stats>) -> RequestGuard {
        stats.requests.fetch_add(1, Ordering::Relaxed);
        let now = stats.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        stats.max_in_flight.fetch_max(now, Ordering::Relaxed);
        RequestGuard {
            stats: Arc::clone(stats),
            completed: false,
        }
    }

    /// Marks the response as fully produced, so dropping is not abandonment.
    pub(crate) fn complete(&mut self) {
        self.completed = true;
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        if !self.completed {
            self.stats.abandoned.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_guard_counts_abandonment_only_when_incomplete() {
        let stats = Arc::new(Stats::default());
        let mut done = RequestGuard::start(&stats);
        let dropped = RequestGuard::start(&stats);
        assert_eq!(Stats::get(&stats.in_flight), 2);
        done.complete();
        drop(done);
        drop(dropped);
        assert_eq!(Stats::get(&stats.in_flight), 0);
        assert_eq!(Stats::get(&stats.max_in_flight), 2);
        assert_eq!(Stats::get(&stats.abandoned), 1);
        assert_eq!(Stats::get(&stats.requests), 2);
    }

    #[test]
    fn connection_guard_tracks_open_and_closed() {
        let stats = Arc::new(Stats::default());
        let guard = ConnectionGuard::open(&stats);
        assert_eq!(Stats::get(&stats.open), 1);
        drop(guard);
        assert_eq!(Stats::get(&stats.open), 0);
        assert_eq!(Stats::get(&stats.closed), 1);
        assert_eq!(Stats::get(&stats.accepted), 1);
    }
}
