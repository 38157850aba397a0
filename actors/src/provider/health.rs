//! A provider's health: consecutive failures, a cooldown, recent errors.
//!
//! One per configured provider, shared by that provider's actors on every
//! shard. A running call records the outcome of each attempt on it directly
//! (a plain call, no message); the supervisor reads [`Health::is_healthy`]
//! (an atomic) to let fallbacks skip a provider that keeps failing, until its
//! cooldown ends, and [`Health::view`] for `GET /admin/providers`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use super::ProviderHealth;

/// Recent errors kept per provider for `GET /admin/providers`.
pub const RECENT_ERRORS: usize = 10;

/// A provider's health.
#[derive(Debug)]
pub struct Health {
    /// The zero of `unhealthy_until_ms`.
    base: Instant,
    /// Milliseconds after `base` until which the provider is skipped; 0: healthy.
    unhealthy_until_ms: AtomicU64,
    /// The record of outcomes (locked once per attempt, by the call that made it).
    book: Mutex<HealthBook>,
}

impl Health {
    /// A healthy provider, marked unhealthy after `unhealthy_after` failed
    /// attempts in a row for `cooldown`.
    pub fn new(unhealthy_after: u32, cooldown: Duration) -> Self {
        Self {
            base: Instant::now(),
            unhealthy_until_ms: AtomicU64::new(0),
            book: Mutex::new(HealthBook::new(unhealthy_after, cooldown)),
        }
    }

    /// An attempt got an answer.
    pub fn succeeded(&self) {
        self.book().succeeded(self);
    }

    /// An attempt failed in a way that says something about the provider;
    /// returns true when that made it unhealthy.
    pub fn failed(&self, detail: String, now: Instant) -> bool {
        self.book().failed(self, detail, now)
    }

    /// The health as admin answers show it.
    pub fn view(&self) -> ProviderHealth {
        let now = Instant::now();
        let book = self.book();
        ProviderHealth {
            healthy: self.is_healthy(now),
            cooldown_left: self.cooldown_left(now),
            consecutive_failures: book.consecutive_failures,
            successes: book.successes,
            failures: book.failures,
            recent_errors: book.recent.iter().cloned().collect(),
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, HealthBook> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

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

/// The record of outcomes behind [`Health`].
#[derive(Debug)]
struct HealthBook {
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
    /// Healthy: a provider is trusted until it fails `unhealthy_after` times in a row.
    fn new(unhealthy_after: u32, cooldown: Duration) -> Self {
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
    fn succeeded(&mut self, shared: &Health) {
        self.successes += 1;
        self.consecutive_failures = 0;
        shared.set_healthy();
    }

    /// Records a failure; returns true when it made the provider unhealthy.
    fn failed(&mut self, shared: &Health, detail: String, now: Instant) -> bool {
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
        let health = Health::new(3, Duration::from_secs(30));
        let now = Instant::now();
        assert!(!health.failed("a".into(), now));
        assert!(!health.failed("b".into(), now));
        assert!(health.failed("c".into(), now));
        assert!(!health.is_healthy(now));
        assert!(health.is_healthy(now + Duration::from_secs(31)));
        assert!(health.cooldown_left(now).is_some());
        health.succeeded();
        assert!(health.is_healthy(now));
        assert_eq!(health.view().consecutive_failures, 0);
    }

    #[test]
    fn recent_errors_are_bounded() {
        let health = Health::new(100, Duration::from_secs(1));
        for n in 0..25 {
            health.failed(format!("e{n}"), Instant::now());
        }
        let view = health.view();
        assert_eq!(view.recent_errors.len(), RECENT_ERRORS);
        assert_eq!(
            view.recent_errors.last().map(|(_, d)| d.as_str()),
            Some("e24")
        );
    }
}
