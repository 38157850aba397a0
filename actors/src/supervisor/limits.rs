//! Rate limits (GCRA), shared by every shard so each limit is exact however
//! many shards take requests: one limiter per calling uid
//! (`[clients] requests_per_minute`, `[clients.per_uid]`) and one per
//! provider (`requests_per_minute`).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::error::GatewayError;
use crate::settings::{ActorSettings, ClientSettings};

/// Every rate limiter.
#[derive(Debug)]
pub struct Limits {
    /// The per-uid limits.
    clients: ClientSettings,
    /// One limiter per uid seen (bounded: only allowed uids get this far).
    by_uid: Mutex<HashMap<u32, Arc<DefaultDirectRateLimiter>>>,
    /// One limiter per provider that sets `requests_per_minute`, with its
    /// rate (so a reload keeps the limiters whose rate did not change).
    by_provider: HashMap<String, (u32, Arc<DefaultDirectRateLimiter>)>,
}

impl Limits {
    /// The limits `settings` configure.
    pub fn new(settings: &ActorSettings) -> Self {
        let by_provider = settings
            .providers
            .iter()
            .filter_map(|(name, p)| {
                let rpm = p.requests_per_minute.and_then(NonZeroU32::new)?;
                let limiter = Arc::new(RateLimiter::direct(Quota::per_minute(rpm)));
                Some((name.clone(), (rpm.get(), limiter)))
            })
            .collect();
        Self {
            clients: settings.clients.clone(),
            by_uid: Mutex::new(HashMap::new()),
            by_provider,
        }
    }

    /// The limits `settings` configure after a reload: a limiter whose rate
    /// is unchanged keeps what it has counted, so a reload is no way around
    /// a limit; a changed rate starts afresh.
    pub fn reloaded(&self, settings: &ActorSettings) -> Self {
        let mut next = Self::new(settings);
        for (name, (rpm, limiter)) in &mut next.by_provider {
            if let Some((old, kept)) = self.by_provider.get(name)
                && old == rpm
            {
                *limiter = kept.clone();
            }
        }
        if self.clients == settings.clients {
            let by_uid = self.by_uid.lock().unwrap_or_else(PoisonError::into_inner);
            next.by_uid = Mutex::new(by_uid.clone());
        }
        next
    }

    /// Takes one request from `uid`'s limit.
    pub fn take_client(&self, uid: u32) -> Result<(), GatewayError> {
        let Some(limit) = self.clients.limit_for(uid).and_then(NonZeroU32::new) else {
            return Ok(());
        };
        let limiter = self
            .by_uid
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(uid)
            .or_insert_with(|| Arc::new(RateLimiter::direct(Quota::per_minute(limit))))
            .clone();
        limiter
            .check()
            .map_err(|not_until| GatewayError::RateLimited {
                scope: format!("uid {uid} (clients.requests_per_minute)"),
                retry_after: wait(not_until),
            })
    }

    /// Takes one request from `provider`'s limit; when over it, how long
    /// until the next one would be allowed.
    pub fn take_provider(&self, provider: &str) -> Result<(), Duration> {
        match self.by_provider.get(provider) {
            Some((_, limiter)) => limiter.check().map_err(wait),
            None => Ok(()),
        }
    }
}

/// How long from now until a refused request would be allowed.
fn wait(not_until: governor::NotUntil<governor::clock::QuantaInstant>) -> Duration {
    not_until.wait_time_from(governor::clock::Clock::now(
        &governor::clock::DefaultClock::default(),
    ))
}
