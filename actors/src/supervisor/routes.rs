//! Where requests go: `<provider>/<model>` and aliases resolved to targets,
//! each with its deadlines, the provider's limits and its health.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::error::{GatewayError, truncate};
use crate::meta::Route;
use crate::provider::{Health, Provider};
use crate::settings::{ActorSettings, DeadlineSettings, Deadlines};

/// The longest model name repeated back in errors and timelines: a caller
/// cannot make every log line carry a megabyte by sending a huge `model`.
pub const MAX_MODEL_SHOWN: usize = 128;

/// One place a request can be sent.
#[derive(Clone, Debug)]
pub struct Target {
    /// Provider and model.
    pub route: Route,
    /// The provider actor.
    pub addr: Addr<Provider>,
    /// The deadlines of this provider and model.
    pub deadlines: Deadlines,
}

/// A provider as routing sees it.
struct ProviderRoute {
    /// Configured name.
    name: Arc<str>,
    /// The actor.
    addr: Addr<Provider>,
    /// Deadlines of models without their own.
    deadlines: DeadlineSettings,
    /// Deadlines by served model; empty means any model.
    models: HashMap<String, DeadlineSettings>,
    /// `requests_per_minute`, if set.
    limiter: Option<DefaultDirectRateLimiter>,
    /// Written by the provider actor, read here to skip it in fallbacks.
    health: Arc<Health>,
}

/// All routes.
pub struct Routes {
    /// The default total deadline (`sessions.timeout_ms`).
    default_timeout_ms: u64,
    /// Providers by name.
    providers: HashMap<String, ProviderRoute>,
    /// Alias name → `(provider, model)` targets in order.
    aliases: HashMap<String, Vec<(String, String)>>,
}

impl Routes {
    /// Routes to the started `providers` (name → actor and its health).
    pub fn new(
        settings: &ActorSettings,
        providers: HashMap<String, (Addr<Provider>, Arc<Health>)>,
    ) -> Self {
        let providers = providers
            .into_iter()
            .filter_map(|(name, (addr, health))| {
                let config = settings.providers.get(&name)?;
                let models = config
                    .models
                    .iter()
                    .map(|entry| {
                        let model = entry.settings();
                        let deadlines = model.deadlines();
                        (model.name, deadlines)
                    })
                    .collect();
                let limiter = config
                    .requests_per_minute
                    .and_then(NonZeroU32::new)
                    .map(|rpm| RateLimiter::direct(Quota::per_minute(rpm)));
                let route = ProviderRoute {
                    name: name.as_str().into(),
                    addr,
                    deadlines: config.deadlines(),
                    models,
                    limiter,
                    health,
                };
                Some((name, route))
            })
            .collect();
        let aliases = settings
            .aliases
            .iter()
            .map(|(alias, targets)| {
                let targets = targets
                    .iter()
                    .filter_map(|t| t.split_once('/'))
                    .map(|(p, m)| (p.to_owned(), m.to_owned()))
                    .collect();
                (alias.clone(), targets)
            })
            .collect();
        Self {
            default_timeout_ms: settings.sessions.timeout_ms,
            providers,
            aliases,
        }
    }

    /// The targets for `requested`: one for `<provider>/<model>`, the chain
    /// for an alias.
    pub fn resolve(&self, requested: &str) -> Result<Vec<Target>, GatewayError> {
        if let Some(chain) = self.aliases.get(requested) {
            return Ok(chain
                .iter()
                .filter_map(|(provider, model)| self.target(provider, model))
                .collect());
        }
        requested
            .split_once('/')
            .and_then(|(provider, model)| self.target(provider, model))
            .map(|target| vec![target])
            .ok_or_else(|| {
                GatewayError::UnknownModel(format!(
                    "unknown model `{}`: use `<provider>/<model>` with a configured provider, or an alias (see GET /v1/models)",
                    truncate(requested, MAX_MODEL_SHOWN)
                ))
            })
    }

    fn target(&self, provider: &str, model: &str) -> Option<Target> {
        let route = self.providers.get(provider)?;
        if model.is_empty() {
            return None;
        }
        let model_deadlines = if route.models.is_empty() {
            DeadlineSettings::default()
        } else {
            *route.models.get(model)?
        };
        let deadlines = model_deadlines
            .or(route.deadlines)
            .resolve(self.default_timeout_ms);
        Some(Target {
            route: crate::meta::Route {
                provider: route.name.clone(),
                model: model.into(),
            },
            addr: route.addr.clone(),
            deadlines,
        })
    }

    /// Whether `provider` is taking calls (not in an unhealthy cooldown).
    pub fn healthy(&self, provider: &str, now: Instant) -> bool {
        self.providers
            .get(provider)
            .is_none_or(|route| route.health.is_healthy(now))
    }

    /// Takes one request from `provider`'s rate limit; when over it, how
    /// long until the next request would be allowed.
    pub fn take_rate(&self, provider: &str) -> Result<(), Duration> {
        let Some(limiter) = self
            .providers
            .get(provider)
            .and_then(|r| r.limiter.as_ref())
        else {
            return Ok(());
        };
        limiter.check().map_err(|not_until| {
            not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ))
        })
    }

    /// Provider names with their actors, for listings.
    pub fn providers(&self) -> impl Iterator<Item = (&Arc<str>, &Addr<Provider>)> {
        self.providers
            .values()
            .map(|route| (&route.name, &route.addr))
    }
}
