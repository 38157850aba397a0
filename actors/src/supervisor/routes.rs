//! Where requests go: `<provider>/<model>` and aliases resolved to targets,
//! each with its deadlines, the provider's limits and its health.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Recipient;

use super::limits::Limits;
use crate::error::{GatewayError, truncate};
use crate::meta::Route;
use crate::provider::{Call, Health};
use crate::settings::{ActorSettings, DeadlineSettings, Deadlines};
use crate::wire::Wire;

/// The longest model name repeated back in errors and timelines: a caller
/// cannot make every log line carry a megabyte by sending a huge `model`.
pub const MAX_MODEL_SHOWN: usize = 128;

/// One place a request can be sent.
#[derive(Clone, Debug)]
pub struct Target {
    /// Provider and model.
    pub route: Route,
    /// The provider actor (of this shard).
    pub call: Recipient<Call>,
    /// The deadlines of this provider and model.
    pub deadlines: Deadlines,
}

/// A provider as routing sees it.
struct ProviderRoute {
    /// As written in settings: the key history, metrics and listings show.
    name: Arc<str>,
    /// The actor of this shard.
    call: Recipient<Call>,
    /// Deadlines of models without their own.
    deadlines: DeadlineSettings,
    /// Deadlines by served model (the name kept once, shared by every
    /// route to it); empty means any model.
    models: HashMap<String, (Arc<str>, DeadlineSettings)>,
    /// Shared by the provider's actors on every shard.
    health: Arc<Health>,
    /// The wires it has an endpoint for, by [`Wire::index`].
    serves: [bool; Wire::COUNT],
}

/// All routes of one shard.
pub struct Routes {
    /// The default total deadline (`sessions.timeout_ms`).
    default_timeout_ms: u64,
    /// Providers by name.
    providers: HashMap<String, ProviderRoute>,
    /// Alias name → `(provider, model)` targets in order.
    aliases: HashMap<String, Vec<(String, String)>>,
    /// Rate limits, shared by every shard.
    limits: Arc<Limits>,
}

/// A provider actor of this shard and the health it records on.
pub type ProviderHandle = (Recipient<Call>, Arc<Health>);

impl Routes {
    /// Routes to this shard's `providers` (name → actor and health).
    pub fn new(
        settings: &ActorSettings,
        providers: HashMap<String, ProviderHandle>,
        limits: Arc<Limits>,
    ) -> Self {
        let providers = providers
            .into_iter()
            .filter_map(|(name, (call, health))| {
                let config = settings.providers.get(&name)?;
                let models = config
                    .models
                    .iter()
                    .map(|entry| {
                        let model = entry.settings();
                        let deadlines = model.deadlines();
                        (
                            model.name.clone(),
                            (Arc::from(model.name.as_str()), deadlines),
                        )
                    })
                    .collect();
                let route = ProviderRoute {
                    name: name.as_str().into(),
                    call,
                    deadlines: config.deadlines(),
                    models,
                    health,
                    serves: Wire::ALL.map(|wire| config.serves(wire)),
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
            limits,
        }
    }

    /// The targets for `requested` on `wire`: one for `<provider>/<model>`,
    /// the chain for an alias, without the targets whose provider has no
    /// endpoint for `wire` (when that leaves none, says so).
    pub fn resolve(&self, requested: &str, wire: Wire) -> Result<Vec<Target>, GatewayError> {
        let targets: Vec<Target> = match self.aliases.get(requested) {
            Some(chain) => chain
                .iter()
                .filter_map(|(provider, model)| self.target(provider, model))
                .collect(),
            None => requested
                .split_once('/')
                .and_then(|(provider, model)| self.target(provider, model))
                .map(|target| vec![target])
                .ok_or_else(|| GatewayError::UnknownModel(truncate(requested, MAX_MODEL_SHOWN)))?,
        };
        let first = targets.first().map(|t| t.route.provider.clone());
        let served: Vec<Target> = targets
            .into_iter()
            .filter(|t| self.serves(&t.route.provider, wire))
            .collect();
        match first {
            Some(provider) if served.is_empty() => Err(GatewayError::NotServed {
                provider: provider.to_string(),
                wire,
            }),
            _ => Ok(served),
        }
    }

    fn serves(&self, provider: &str, wire: Wire) -> bool {
        self.providers
            .get(provider)
            .is_some_and(|route| route.serves[wire.index()])
    }

    fn target(&self, provider: &str, model: &str) -> Option<Target> {
        let route = self.providers.get(provider)?;
        if model.is_empty() {
            return None;
        }
        let (model, model_deadlines) = if route.models.is_empty() {
            (Arc::from(model), DeadlineSettings::default())
        } else {
            route.models.get(model).cloned()?
        };
        let deadlines = model_deadlines
            .or(route.deadlines)
            .resolve(self.default_timeout_ms);
        Some(Target {
            route: Route {
                provider: route.name.clone(),
                model,
            },
            call: route.call.clone(),
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
        self.limits.take_provider(provider)
    }

    /// Whether `provider` is routed (configured now; a reload may have
    /// removed a provider whose sessions still run).
    pub fn routes(&self, provider: &str) -> bool {
        self.providers.contains_key(provider)
    }

    /// This shard's provider actors and their health, by name: what a
    /// reload keeps for the providers it leaves unchanged.
    pub fn handles(&self) -> HashMap<String, ProviderHandle> {
        self.providers
            .iter()
            .map(|(name, route)| (name.clone(), (route.call.clone(), route.health.clone())))
            .collect()
    }

    /// The rate limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Provider names with their health, for listings.
    pub fn providers(&self) -> impl Iterator<Item = (&Arc<str>, &Arc<Health>)> {
        self.providers
            .values()
            .map(|route| (&route.name, &route.health))
    }
}
