//! A reload reaching one shard: the supervisor swaps its routes, its
//! provider actors and its session settings, told by
//! [`crate::system::Common::reload`] with settings already validated.
//!
//! Sessions in flight are untouched: each holds its own [`super::Target`]s,
//! and with them the provider actor they call, which stays alive until the
//! last of them ends (an actor stops when no address to it is left). A
//! provider that is unchanged keeps its actor, with its connection pool; an
//! added or changed one gets a new actor on this shard. Requests still
//! waiting for a provider that was removed are answered as for an unknown
//! model, which is what they would get if they arrived now.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use actix::prelude::*;

use super::limits::Limits;
use super::{ProviderHandle, Routes, Supervisor};
use crate::error::{GatewayError, truncate};
use crate::ids::SessionId;
use crate::provider::{Health, Provider};
use crate::settings::ActorSettings;

/// New settings for one shard.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reload {
    /// The settings now in force (validated).
    pub settings: Arc<ActorSettings>,
    /// Every provider's health, shared by its actors on every shard.
    pub healths: HashMap<String, Arc<Health>>,
    /// Providers whose actors start afresh: added, or changed in a way
    /// their actor sees (endpoint, key, retries, timeouts, models).
    pub fresh: HashSet<String>,
    /// The rate limits now in force, shared by every shard.
    pub limits: Arc<Limits>,
}

impl Handler<Reload> for Supervisor {
    type Result = ();

    fn handle(&mut self, reload: Reload, _: &mut Self::Context) {
        let settings = &reload.settings;
        let providers = self.provider_actors(&reload);
        let history = &settings.history;
        self.transcribe =
            (history.enabled && history.record_prompts).then_some(history.max_record_bytes);
        self.max_concurrency = settings
            .providers
            .iter()
            .map(|(name, p)| (Arc::from(name.as_str()), p.max_concurrency))
            .collect();
        self.settings = settings.sessions.clone();
        self.shared.limits = reload.limits.clone();
        self.routes = Routes::new(settings, providers, reload.limits);
        self.refuse_unrouted();
        self.notify_if_idle();
    }
}

impl Supervisor {
    /// This shard's provider actors for `reload`: kept where unchanged,
    /// started where fresh. The old actors of changed and removed providers
    /// are dropped here, and stop once no live session holds them.
    fn provider_actors(&self, reload: &Reload) -> HashMap<String, ProviderHandle> {
        let mut current = self.routes.handles();
        let mut providers = HashMap::new();
        for (name, config) in &reload.settings.providers {
            let kept = current
                .remove(name)
                .filter(|_| !reload.fresh.contains(name));
            let handle = match kept {
                Some(handle) => handle,
                None => {
                    let Some(health) = reload.healths.get(name) else {
                        tracing::error!(provider = %name, "reload: no health for a provider");
                        continue;
                    };
                    match Provider::new(name, config, health.clone()) {
                        Ok(provider) => (provider.start().recipient(), health.clone()),
                        Err(message) => {
                            // Checked before the reload was applied, so only
                            // a failure that appeared since lands here.
                            tracing::error!(provider = %name, %message, "reload: provider not started");
                            continue;
                        }
                    }
                }
            };
            providers.insert(name.clone(), handle);
        }
        providers
    }

    /// Answers every waiting request whose provider is no longer routed as
    /// for an unknown model.
    fn refuse_unrouted(&mut self) {
        let gone: Vec<(SessionId, String)> = self
            .waiting
            .iter()
            .filter(|(_, w)| {
                let target = &w.new.targets[w.new.index];
                !self.routes.routes(&target.route.provider)
            })
            .map(|(id, w)| (*id, w.new.request.model().to_owned()))
            .collect();
        for (id, model) in gone {
            let error = GatewayError::UnknownModel(truncate(&model, super::MAX_MODEL_SHOWN));
            self.end_waiting(id, error);
        }
    }
}
