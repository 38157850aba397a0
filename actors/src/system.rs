//! Starting the actor system: the history store, providers, logger,
//! supervisor, shutdown.
//!
//! The async actors start on the arbiter of the calling thread. The daemon
//! calls [`ActorSystem::start`] on the thread that serves HTTP, so a
//! request's path — handler, supervisor, session, provider call, answer —
//! never crosses a thread: every hop between threads costs a wake-up. The
//! store runs on threads of its own (`SyncArbiter`), since SQLite blocks.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::lifecycle::{Classify, HistorySink, LifecycleLogger, SinkTo};
use crate::metrics::{Metrics, SessionMetrics};
use crate::provider::Provider;
use crate::settings::{ActorSettings, Prices};
use crate::shutdown::{DrainReport, Shutdown};
use crate::store::{self, Store};
use crate::supervisor::Supervisor;

/// Threads answering history queries: two, so a slow usage query over a big
/// file does not hold up a session lookup behind it.
const STORE_READERS: usize = 2;

/// What [`ActorSystem::check`] made ready, for [`ActorSystem::start`].
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

/// Addresses of the running actors the daemon talks to.
#[derive(Clone)]
pub struct ActorSystem {
    /// Requests and admin messages.
    pub supervisor: Addr<Supervisor>,
    /// `POST /admin/drain`.
    pub shutdown: Addr<Shutdown>,
    /// Live event readers subscribe here.
    pub logger: Addr<LifecycleLogger>,
    /// History queries, when history is enabled.
    pub history: Option<Addr<Store>>,
    /// The metrics registry, for `GET /metrics`.
    pub metrics: Arc<Metrics>,
    /// Model prices, for usage costs.
    pub prices: Arc<Prices>,
    /// Set when a drain begins, read on every answer without a message: the
    /// HTTP layer then closes each connection after its answer, so clients
    /// stop reusing them and no idle connection is left to close at the end.
    pub draining: Arc<AtomicBool>,
    /// Holds the history file's lock for as long as the system runs.
    _history: Option<Arc<store::Prepared>>,
}

impl ActorSystem {
    /// Builds every provider once and drops it, so bad provider settings
    /// (a client that cannot be built) stop the daemon before it serves;
    /// makes the history file ready (or says why it cannot be used).
    pub fn check(settings: &ActorSettings) -> Result<Checked, String> {
        for (name, provider) in &settings.providers {
            Provider::new(name, provider)?;
        }
        let history = match settings.history.enabled {
            true => {
                Some(store::prepare(&settings.history.resolved_path()).map_err(|e| e.to_string())?)
            }
            false => None,
        };
        Ok(Checked { history })
    }

    /// Starts every actor on the current arbiter. `on_drained` receives the
    /// report when a drain has finished; the caller then stops serving.
    /// `classify` is the daemon's mapping of errors to statuses and codes,
    /// for history and metrics.
    pub fn start(
        settings: &ActorSettings,
        checked: Checked,
        on_drained: oneshot::Sender<DrainReport>,
        classify: Classify,
    ) -> Result<Self, String> {
        let metrics = Arc::new(Metrics::new());
        let history = checked.history.map(Arc::new);
        let (writer, reader) = match &history {
            Some(prepared) => {
                let (writer, reader) = start_store(settings, &prepared.path, &metrics);
                (Some(writer), Some(reader))
            }
            None => (None, None),
        };
        let counting = settings
            .metrics
            .enabled
            .then(|| SessionMetrics::new(metrics.clone(), settings));
        let history_sink = writer.map(|w| HistorySink::new(w.clone().recipient(), w.recipient()));
        let logger = LifecycleLogger::new(
            &settings.lifecycle,
            classify,
            metrics.clone(),
            counting,
            history_sink,
        );
        let readers = logger.readers();
        let logger = logger.start();
        let sink = Arc::new(SinkTo {
            began: logger.clone().recipient(),
            ended: logger.clone().recipient(),
            happened: logger.clone().recipient(),
            readers,
            max_events: settings.lifecycle.max_events_per_session,
        });
        let mut providers = HashMap::new();
        for (name, provider) in &settings.providers {
            let actor = Provider::new(name, provider)?;
            let health = actor.health();
            providers.insert(name.clone(), (actor.start(), health));
        }
        let recent = logger.clone().recipient();
        let supervisor = Supervisor::new(settings, providers, sink, recent).start();
        let draining = Arc::new(AtomicBool::new(false));
        let shutdown = Shutdown::new(
            settings.shutdown.clone(),
            supervisor.clone(),
            logger.clone(),
            on_drained,
            draining.clone(),
        )
        .start();
        Ok(Self {
            supervisor,
            shutdown,
            logger,
            history: reader,
            metrics,
            prices: Arc::new(Prices::of(settings)),
            draining,
            _history: history,
        })
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
