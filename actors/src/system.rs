//! Starting the actor system: what every shard shares ([`Common`]: capacity
//! and rate limits, provider health, metrics, the history store), then one
//! [`Shard`] per worker thread, then the shutdown actor over all of them.
//!
//! A shard's actors — its supervisor, logger, sessions and provider actors —
//! start on the arbiter of the thread that calls [`Shard::start`], and the
//! daemon serves HTTP on that same thread, so a request's path (handler,
//! supervisor, session, provider call, answer) never crosses a thread:
//! every hop between threads costs a wake-up. The store runs on threads of
//! its own (`SyncArbiter`), since SQLite blocks.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use actix::prelude::*;

use crate::lifecycle::{Classify, HistorySink, LifecycleLogger, SinkTo};
use crate::metrics::{Metrics, SessionMetrics};
use crate::provider::{Health, Provider};
use crate::settings::{ActorSettings, Prices};
use crate::shutdown::{DrainHooks, ShardDrain, Shutdown};
use crate::store::{self, Store};
use crate::supervisor::{Shared, Supervisor};

/// Threads answering history queries: two, so a slow usage query over a big
/// file does not hold up a session lookup behind it.
const STORE_READERS: usize = 2;

/// What [`ActorSystem::check`] made ready, for [`Common::start`].
#[derive(Debug)]
pub struct Checked {
    /// The history file, migrated and locked for this daemon (if enabled).
    history: Option<store::Prepared>,
}

impl Checked {
    /// Sessions a previous run left open (a crash) and that are now
    /// recorded as INTERRUPTED.
    pub fn interrupted(&self) -> usize {
        self.history.as_ref().map_or(0, |h| h.interrupted)
    }
}

/// What every shard shares.
pub struct Common {
    /// The settings the actors were started with.
    pub settings: ActorSettings,
    /// Capacity and rate limits (the limits replaced by each reload).
    pub(crate) shared: Mutex<Shared>,
    /// Each provider's health, shared by its actors on every shard.
    pub(crate) healths: Mutex<HashMap<String, Arc<Health>>>,
    /// The metrics registry, for `GET /metrics`.
    pub metrics: Arc<Metrics>,
    /// The store's writer, when history is enabled.
    pub(crate) writer: Option<Addr<Store>>,
    /// History queries, when history is enabled.
    pub history: Option<Addr<Store>>,
    /// Model prices, for usage costs (replaced by each reload).
    pub(crate) prices: RwLock<Arc<Prices>>,
    /// Held while a reload is applied, so two never interleave.
    pub(crate) reloading: tokio::sync::Mutex<()>,
    /// Set when a drain begins, read on every answer without a message: the
    /// HTTP layer then closes each connection after its answer, so clients
    /// stop reusing them and no idle connection is left to close at the end.
    pub draining: Arc<AtomicBool>,
    /// Errors to statuses and codes, from the daemon.
    classify: Classify,
    /// Holds the history file's lock for as long as the daemon runs.
    _history: Option<store::Prepared>,
}

/// One shard's actors, as the HTTP layer and the shutdown actor reach them.
#[derive(Clone)]
pub struct Shard {
    /// Requests and admin messages.
    pub supervisor: Addr<Supervisor>,
    /// Live event readers subscribe here; recent sessions are kept here.
    pub logger: Addr<LifecycleLogger>,
}

/// What the HTTP layer of one shard holds.
#[derive(Clone)]
pub struct ActorSystem {
    /// This shard's actors.
    pub local: Shard,
    /// Every shard's, for admin answers that span them.
    pub shards: Arc<[Shard]>,
    /// `POST /admin/drain`.
    pub shutdown: Addr<Shutdown>,
    /// What the shards share.
    pub common: Arc<Common>,
}

impl ActorSystem {
    /// Builds every provider once and drops it, so bad provider settings
    /// (a client that cannot be built) stop the daemon before it serves;
    /// makes the history file ready (or says why it cannot be used).
    pub fn check(settings: &ActorSettings) -> Result<Checked, String> {
        for (name, provider) in &settings.providers {
            Provider::new(name, provider, Provider::health_for(provider))?;
            Provider::log_proxies(name, provider);
        }
        let history = match settings.history.enabled {
            true => {
                Some(store::prepare(&settings.history.resolved_path()).map_err(|e| e.to_string())?)
            }
            false => None,
        };
        Ok(Checked { history })
    }

    /// Starts the shutdown actor over `shards` on the current arbiter;
    /// `hooks` hear when a drain begins and when it has finished.
    pub fn start_shutdown(common: &Common, shards: &[Shard], hooks: DrainHooks) -> Addr<Shutdown> {
        let drains = shards
            .iter()
            .map(|shard| ShardDrain {
                begin: shard.supervisor.clone().recipient(),
                idle: shard.supervisor.clone().recipient(),
                cancel: shard.supervisor.clone().recipient(),
                flush: shard.logger.clone().recipient(),
            })
            .collect();
        let settings = common.settings.shutdown.clone();
        Shutdown::new(settings, drains, hooks, common.draining.clone()).start()
    }
}

impl Common {
    /// Starts what every shard shares (the store's threads among them; call
    /// it inside the actor system). `classify` is the daemon's mapping of
    /// errors to statuses and codes, for history and metrics.
    pub fn start(settings: &ActorSettings, checked: Checked, classify: Classify) -> Arc<Self> {
        let metrics = Arc::new(Metrics::new());
        let (writer, history) = match &checked.history {
            Some(prepared) => {
                let (writer, reader) = start_store(settings, &prepared.path, &metrics);
                (Some(writer), Some(reader))
            }
            None => (None, None),
        };
        let healths = settings
            .providers
            .iter()
            .map(|(name, p)| (name.clone(), Provider::health_for(p)))
            .collect();
        Arc::new(Self {
            settings: settings.clone(),
            shared: Mutex::new(Shared::new(settings)),
            healths: Mutex::new(healths),
            metrics,
            writer,
            history,
            prices: RwLock::new(Arc::new(Prices::of(settings))),
            reloading: tokio::sync::Mutex::new(()),
            draining: Arc::new(AtomicBool::new(false)),
            classify,
            _history: checked.history,
        })
    }

    /// Model prices now in force, for usage costs.
    pub fn prices(&self) -> Arc<Prices> {
        self.prices
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn shared(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn healths(&self) -> MutexGuard<'_, HashMap<String, Arc<Health>>> {
        self.healths.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Shard {
    /// Starts one shard's actors on the current arbiter.
    pub fn start(common: &Common) -> Result<Self, String> {
        let settings = &common.settings;
        let counting = settings
            .metrics
            .enabled
            .then(|| SessionMetrics::new(common.metrics.clone(), settings));
        let history = common
            .writer
            .as_ref()
            .map(|w| HistorySink::new(w.clone().recipient(), w.clone().recipient()));
        let logger = LifecycleLogger::new(
            &settings.lifecycle,
            common.classify,
            common.metrics.clone(),
            counting,
            history,
        );
        let (readers, live) = (logger.readers(), logger.live());
        let logger = logger.start();
        let sink = Arc::new(SinkTo {
            live,
            ended: logger.clone().recipient(),
            happened: logger.clone().recipient(),
            readers,
            max_events: settings.lifecycle.max_events_per_session,
        });
        let mut providers = HashMap::new();
        let healths = common.healths().clone();
        for (name, provider) in &settings.providers {
            let health = healths[name].clone();
            let actor = Provider::new(name, provider, health.clone())?.start();
            providers.insert(name.clone(), (actor.recipient(), health));
        }
        let recent = logger.clone().recipient();
        let shared = common.shared().clone();
        let supervisor = Supervisor::new(settings, providers, shared, sink, recent).start();
        Ok(Self { supervisor, logger })
    }
}

/// The store's writer (one thread) and readers.
fn start_store(
    settings: &ActorSettings,
    path: &std::path::Path,
    metrics: &Arc<Metrics>,
) -> (Addr<Store>, Addr<Store>) {
    let (history, path, metrics) = (settings.history.clone(), path.to_owned(), metrics.clone());
    let (h, p) = (history.clone(), path.clone());
    let writer = SyncArbiter::start(1, move || Store::writer(&h, &p, Some(metrics.clone())));
    let reader = SyncArbiter::start(STORE_READERS, move || Store::reader(&history, &path));
    (writer, reader)
}
