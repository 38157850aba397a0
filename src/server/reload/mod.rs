//! Live reload: SIGHUP, `POST /admin/reload` (and so `switchboard reload`)
//! re-read the settings file serve was started with and the environment,
//! and apply what can change while the daemon runs.
//!
//! New settings are loaded and validated exactly as at start; invalid ones
//! are refused whole, with the loader's message naming the key, and the
//! old ones stay in force. Keys read only at start (see [`diff`]) are
//! reported as needing a restart and keep their old values; the rest is
//! handed to the actors ([`Common::reload`]) and to the HTTP layer's model
//! list. Under a service manager the reload is framed by `RELOADING=1` and
//! `READY=1`. One reload runs at a time.

mod diff;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use bytes::Bytes;
use serde::Serialize;
use switchboard_actors::system::{Common, Shard};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Mutex;

use super::routes::models;
use super::service::Notifier;
use crate::config_check::redacted_error;
use crate::settings::Settings;

/// Where the settings come from, as serve was started.
#[derive(Clone, Debug)]
pub struct Source {
    /// `--config PATH`; `None` is the built-in settings.toml.
    pub path: Option<PathBuf>,
    /// `--socket PATH`, which overrides the file's on every reload too.
    pub socket: Option<PathBuf>,
}

impl Source {
    /// Loads the settings from this source (the file, then the environment).
    pub fn load(&self) -> anyhow::Result<Settings> {
        let path = self.path.as_deref();
        let mut settings = Settings::load(path).map_err(|err| redacted_error(&err, path))?;
        if let Some(socket) = &self.socket {
            settings.server.socket = Some(socket.clone());
        }
        Ok(settings)
    }
}

/// What a reload did, as `POST /admin/reload` answers it.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Always true: a refused reload is an error instead.
    pub reloaded: bool,
    /// Keys applied live.
    pub changed: Vec<String>,
    /// Keys that differ but take effect only after a restart.
    pub needs_restart: Vec<String>,
}

/// The settings in force and how to replace them.
struct State {
    /// What is applied now (keys needing a restart as started).
    settings: Settings,
    /// API key fingerprints, by provider.
    keys: HashMap<String, u64>,
}

/// Reloads settings into a running daemon.
pub struct Reloader {
    source: Source,
    state: Mutex<State>,
    common: Arc<Common>,
    shards: Arc<[Shard]>,
    /// `GET /v1/models`, shared with the HTTP layer.
    models: Arc<RwLock<Bytes>>,
    notifier: Notifier,
}

impl Reloader {
    /// A reloader for a daemon started with `settings` from `source`.
    pub fn new(
        source: Source,
        settings: Settings,
        (common, shards): (Arc<Common>, Arc<[Shard]>),
        models: Arc<RwLock<Bytes>>,
        notifier: Notifier,
    ) -> Self {
        let keys = diff::key_prints(&settings);
        Self {
            source,
            state: Mutex::new(State { settings, keys }),
            common,
            shards,
            models,
            notifier,
        }
    }

    /// Reloads; refuses with the reason (naming the key) when the new
    /// settings are invalid, and then nothing has changed.
    pub async fn reload(&self) -> Result<Report, String> {
        let mut state = self.state.lock().await;
        self.notifier.reloading();
        let result = self.apply(&mut state).await;
        self.notifier.ready();
        match &result {
            Ok(report) => tracing::info!(
                changed = ?report.changed,
                needs_restart = ?report.needs_restart,
                "settings reloaded"
            ),
            Err(message) => {
                tracing::warn!(reason = %message, "reload refused; the old settings stay in force")
            }
        }
        result
    }

    async fn apply(&self, state: &mut State) -> Result<Report, String> {
        let new = self.source.load().map_err(|err| format!("{err:#}"))?;
        let old = &state.settings;
        let keys = diff::key_prints(&new);
        let mut changed = diff::changed_keys(old, &new);
        let mut fresh = diff::changed_providers(old, &new);
        for (name, print) in &keys {
            if state.keys.get(name).is_some_and(|was| was != print)
                && old.providers.contains_key(name)
            {
                changed.push(format!("providers.{name}.api_key"));
                fresh.insert(name.clone());
            }
        }
        changed.sort();
        let (needs_restart, changed): (Vec<String>, Vec<String>) = changed
            .into_iter()
            .partition(|key| diff::needs_restart(key));
        let applied = diff::applicable(old, &new);
        self.common
            .reload(&self.shards, applied.actors(), fresh)
            .await
            .map_err(|err| format!("invalid settings: {err}"))?;
        *self.models.write().unwrap_or_else(PoisonError::into_inner) = models::catalogue(&applied);
        *state = State {
            settings: applied,
            keys,
        };
        Ok(Report {
            reloaded: true,
            changed,
            needs_restart,
        })
    }
}

/// Reloads on every SIGHUP until the daemon stops. Listening starts before
/// this returns, so from then on SIGHUP no longer ends the process.
pub fn on_sighup(reloader: Arc<Reloader>) {
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(err) => {
            tracing::warn!(%err, "cannot listen for SIGHUP; reload with POST /admin/reload");
            return;
        }
    };
    actix_rt::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading settings");
            let _ = reloader.reload().await;
        }
    });
}
