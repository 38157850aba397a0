//! A provider's health: consecutive failures, a cooldown, recent errors.
//!
//! The provider actor writes it from the outcome of every attempt; the
//! supervisor reads [`Health::is_healthy`] (an atomic, no message) to let
//! fallbacks skip a provider that keeps failing, until its cooldown ends.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Recent errors kept per provider for `GET /admin/providers`.
pub const RECENT_ERRORS: usize = 10;

/// The part of a provider's health others read.
#[derive(Debug)]
pub struct Health {
    /// The zero of `unhealthy_until_ms`.
    base: Instant,
    /// Milliseconds after `base` until which the provider is skipped; 0: healthy.
    unhealthy_until_ms: AtomicU64,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            base: Instant::now(),
            unhealthy_until_ms: AtomicU64::new(0),
        }
    }
}

impl Health {
    /// Whether calls should go to this provider at `now`.
    pub fn is_healthy(&self, now: Instant) -> bool {
        let until = self.unhealthy_until_ms.load(Ordering::Relaxed);
        until == 0 || self.millis(now) >= until
    }

    /// How long the current cooldown still lasts.
    pub fn cooldown_left(&self, now: Instant) -> Option<Duration> {
        let until = self.unhealthy_until_ms.load(Ordering::Relaxed);
        let now = self.millis(now);
        (until > now).then(|| Duration::from_millis(until - now))
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_millis()).unwrap_or(u64::MAX)
    }

    fn set_unhealthy_until(&self, until: Instant) {
        self.unhealthy_until_ms
            .store(self.millis(until).max(1), Ordering::Relaxed);
    }

    fn set_healthy(&self) {
        self.unhealthy_until_ms.store(0, Ordering::Relaxed);
    }
}

/// The provider actor's own record of outcomes.
#[derive(Debug)]
pub struct HealthBook {
    /// Failures in a row since the last success.
    pub consecutive_failures: u32,
    /// Attempts that succeeded, since start.
    pub successes: u64,
    /// Attempts that failed, since start.
    pub failures: u64,
    /// The last few failures, newest last: when, and the sanitized detail.
    pub recent: VecDeque<(SystemTime, String)>,
    /// Failures in a row that make the provider unhealthy.
    unhealthy_after: u32,
    /// How long it then stays unhealthy.
    cooldown: Duration,
}

impl HealthBook {
    /// An empty record.
    pub fn new(unhealthy_after: u32, cooldown: Duration) -> Self {
        Self {
            consecutive_failures: 0,
            successes: 0,
            failures: 0,
            recent: VecDeque::with_capacity(RECENT_ERRORS),
            unhealthy_after,
            cooldown,
        }
    }

    /// Records a success: the provider is healthy again.
    pub fn succeeded(&mut self, shared: &Health) {
        self.successes += 1;
        self.consecutive_failures = 0;
        shared.set_healthy();
    }

    /// Records a failure; returns true when it made the provider unhealthy.
    pub fn failed(&mut self, shared: &Health, detail: String, now: Instant) -> bool {
        self.failures += 1;
        self.consecutive_failures += 1;
        if self.recent.len() == RECENT_ERRORS {
            self.recent.pop_front();
        }
        self.recent.push_back((SystemTime::now(), detail));
        let trips = self.consecutive_failures >= self.unhealthy_after && shared.is_healthy(now);
        if trips {
            shared.set_unhealthy_until(now + self.cooldown);
        }
        trips
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_in_a_row_trip_a_cooldown_and_a_success_ends_it() {
        let shared = Health::default();
        let mut book = HealthBook::new(3, Duration::from_secs(30));
        let now = Instant::now();
        assert!(!book.failed(&shared, "a".into(), now));
        assert!(!book.failed(&shared, "b".into(), now));
        assert!(book.failed(&shared, "c".into(), now));
        assert!(!shared.is_healthy(now));
        assert!(shared.is_healthy(now + Duration::from_secs(31)));
        assert!(shared.cooldown_left(now).is_some());
        book.succeeded(&shared);
        assert!(shared.is_healthy(now));
        assert_eq!(book.consecutive_failures, 0);
    }

    #[test]
    fn recent_errors_are_bounded() {
        let shared = Health::default();
        let mut book = HealthBook::new(100, Duration::from_secs(1));
        for n in 0..25 {
            book.failed(&shared, format!("e{n}"), Instant::now());
        }
        assert_eq!(book.recent.len(), RECENT_ERRORS);
        assert_eq!(book.recent.back().map(|(_, d)| d.as_str()), Some("e24"));
    }
}
