//! Applying new settings to the running actor system — what the daemon
//! calls on SIGHUP and `POST /admin/reload`, with settings it has already
//! loaded and validated.
//!
//! The shared parts change once: provider health (kept for providers whose
//! actors stay), rate limits (a limiter whose rate is unchanged keeps its
//! count), admission (lanes added, resized, retired — slots in flight stay
//! taken), prices, history retention. Then every shard's supervisor is told
//! ([`Reload`]) and swaps its routes and provider actors. Sessions in flight
//! keep the targets, deadlines and provider actors they started with.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use futures_util::future::join_all;

use crate::admission::Capacity;
use crate::provider::{Health, Provider};
use crate::settings::{ActorSettings, Prices};
use crate::store::Retain;
use crate::supervisor::Reload;
use crate::system::{Common, Shard};

/// Why new settings were refused (nothing of them was applied).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// A provider's HTTP client cannot be built from its new settings.
    #[error("providers.{provider}: {message}")]
    Provider {
        /// The provider, as named in settings.
        provider: String,
        /// What is wrong with it.
        message: String,
    },
    /// New settings break a rule the loader checks.
    #[error("{0}")]
    Invalid(String),
}

impl Common {
    /// Applies `next` to the shared state and every one of `shards`.
    /// `fresh` names the providers whose actors must start afresh (changed
    /// in a way their actor sees); added providers always do. Refuses the
    /// whole of `next`, changing nothing, if it is invalid or a provider
    /// in it cannot be built.
    pub async fn reload(
        &self,
        shards: &[Shard],
        next: ActorSettings,
        fresh: HashSet<String>,
    ) -> Result<(), ReloadError> {
        let _one_at_a_time = self.reloading.lock().await;
        next.validate().map_err(ReloadError::Invalid)?;
        let fresh = self.fresh_providers(&next, fresh);
        check_providers(&next, &fresh)?;
        let healths = self.swap_healths(&next, &fresh);
        let (admission, limits) = {
            let mut shared = self.shared();
            shared.limits = Arc::new(shared.limits.reloaded(&next));
            (shared.admission.clone(), shared.limits.clone())
        };
        admission.resize(capacity(&next), lanes(&next));
        let settings = Arc::new(next);
        let reloads = shards.iter().map(|shard| {
            shard.supervisor.send(Reload {
                settings: settings.clone(),
                healths: healths.clone(),
                fresh: fresh.clone(),
                limits: limits.clone(),
            })
        });
        // A shard that cannot be reached has stopped: nothing to update.
        join_all(reloads).await;
        *self.prices.write().unwrap_or_else(PoisonError::into_inner) =
            Arc::new(Prices::of(&settings));
        if let Some(writer) = &self.writer {
            writer.do_send(Retain::of(&settings.history));
        }
        Ok(())
    }

    /// `asked`, plus every provider of `next` that has no actor yet.
    fn fresh_providers(&self, next: &ActorSettings, asked: HashSet<String>) -> HashSet<String> {
        let healths = self.healths();
        let added = next
            .providers
            .keys()
            .filter(|name| !healths.contains_key(*name));
        let mut fresh: HashSet<String> = added.cloned().collect();
        fresh.extend(
            asked
                .into_iter()
                .filter(|name| next.providers.contains_key(name)),
        );
        fresh
    }

    /// The health of every provider of `next`: kept for those whose actors
    /// stay, new for fresh ones (a changed endpoint starts healthy).
    fn swap_healths(
        &self,
        next: &ActorSettings,
        fresh: &HashSet<String>,
    ) -> HashMap<String, Arc<Health>> {
        let mut healths = self.healths();
        let swapped: HashMap<String, Arc<Health>> = next
            .providers
            .iter()
            .map(|(name, p)| {
                let kept = healths.get(name).filter(|_| !fresh.contains(name));
                let health = kept.cloned().unwrap_or_else(|| Provider::health_for(p));
                (name.clone(), health)
            })
            .collect();
        *healths = swapped.clone();
        swapped
    }
}

/// Builds every fresh provider once and drops it, so one that cannot be
/// built refuses the reload before anything changed.
fn check_providers(next: &ActorSettings, fresh: &HashSet<String>) -> Result<(), ReloadError> {
    for name in fresh {
        let Some(config) = next.providers.get(name) else {
            continue;
        };
        Provider::new(name, config, Provider::health_for(config)).map_err(|message| {
            ReloadError::Provider {
                provider: name.clone(),
                message,
            }
        })?;
    }
    Ok(())
}

/// The daemon-wide limits of `settings`.
fn capacity(settings: &ActorSettings) -> Capacity {
    Capacity {
        max_live: settings.sessions.max_live,
        max_queued: settings.sessions.max_queued,
        starvation: Duration::from_millis(settings.sessions.starvation_ms),
    }
}

/// One admission lane per provider of `settings`.
fn lanes(settings: &ActorSettings) -> Vec<(Arc<str>, usize)> {
    settings
        .providers
        .iter()
        .map(|(name, p)| (Arc::from(name.as_str()), p.max_concurrency))
        .collect()
}
