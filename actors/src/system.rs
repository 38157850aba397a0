//! Starting the actor system: providers, logger, supervisor, shutdown.
//!
//! All of them start on the arbiter of the calling thread. The daemon calls
//! [`ActorSystem::start`] on the thread that serves HTTP, so a request's path —
//! handler, supervisor, session, provider call, answer — never crosses a
//! thread: every hop between threads costs a wake-up.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::lifecycle::LifecycleLogger;
use crate::provider::Provider;
use crate::settings::ActorSettings;
use crate::shutdown::{DrainReport, Shutdown};
use crate::supervisor::Supervisor;

/// Addresses of the running actors the daemon talks to.
#[derive(Clone)]
pub struct ActorSystem {
    /// Requests and admin messages.
    pub supervisor: Addr<Supervisor>,
    /// `POST /admin/drain`.
    pub shutdown: Addr<Shutdown>,
    /// Set when a drain begins, read on every answer without a message: the
    /// HTTP layer then closes each connection after its answer, so clients
    /// stop reusing them and no idle connection is left to close at the end.
    pub draining: Arc<AtomicBool>,
}

impl ActorSystem {
    /// Builds every provider once and drops it, so bad provider settings
    /// (a client that cannot be built) stop the daemon before it serves.
    pub fn check(settings: &ActorSettings) -> Result<(), String> {
        for (name, provider) in &settings.providers {
            Provider::new(name, provider)?;
        }
        Ok(())
    }

    /// Starts every actor on the current arbiter. `on_drained` receives the
    /// report when a drain has finished; the caller then stops serving.
    pub fn start(
        settings: &ActorSettings,
        on_drained: oneshot::Sender<DrainReport>,
    ) -> Result<Self, String> {
        let logger = LifecycleLogger::new(settings.lifecycle.clone()).start();
        let mut providers = HashMap::new();
        for (name, provider) in &settings.providers {
            let actor = Provider::new(name, provider)?;
            let health = actor.health();
            providers.insert(name.clone(), (actor.start(), health));
        }
        let supervisor = Supervisor::new(settings, providers, logger.clone()).start();
        let draining = Arc::new(AtomicBool::new(false));
        let shutdown = Shutdown::new(
            settings.shutdown.clone(),
            supervisor.clone(),
            logger,
            on_drained,
            draining.clone(),
        )
        .start();
        Ok(Self {
            supervisor,
            shutdown,
            draining,
        })
    }
}
