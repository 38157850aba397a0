//! Plain settings structs the actors are built from.
//!
//! The daemon (`src/settings.rs`) reads them from `settings.toml` and the
//! environment; the actors only see these values. Every default is chosen
//! here, with the reason, so the file and the code cannot disagree. They
//! serialize too, so `switchboard config check` can print the settings in
//! force.

mod provider;
mod records;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use provider::{
    DEFAULT_CONNECT_TIMEOUT_MS, DeadlineSettings, Deadlines, ModelEntry, ModelSettings,
    ProviderKind, ProviderSettings,
};
pub use records::{HistorySettings, MetricsSettings};

/// Settings for the actor system as a whole.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ActorSettings {
    /// Session deadlines and limits.
    #[serde(default)]
    pub sessions: SessionSettings,
    /// What the lifecycle logger keeps in memory.
    #[serde(default)]
    pub lifecycle: LifecycleSettings,
    /// The drain protocol.
    #[serde(default)]
    pub shutdown: ShutdownSettings,
    /// The providers by name, as used in `model = "<name>/<model>"`.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderSettings>,
    /// Rate limits per calling user.
    #[serde(default)]
    pub clients: ClientSettings,
    /// Names that stand for a fallback chain of `<provider>/<model>` targets.
    #[serde(default)]
    pub aliases: BTreeMap<String, Vec<String>>,
    /// The history file.
    #[serde(default)]
    pub history: HistorySettings,
    /// Counting sessions for `GET /metrics`.
    #[serde(default)]
    pub metrics: MetricsSettings,
}

/// Per-session deadlines and the bound on live sessions.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSettings {
    /// Total deadline of a session, from arrival to the last byte of its answer,
    /// unless its provider or model sets its own. 30 s covers a long non-streamed
    /// completion; streaming providers usually set more.
    pub timeout_ms: u64,
    /// Sessions running at once; more wait in the queue. 10,000 sessions cost
    /// a few hundred megabytes at most, and it keeps a runaway client from
    /// exhausting memory.
    pub max_live: usize,
    /// Requests waiting for capacity at most; more are refused at once with 503.
    pub max_queued: usize,
    /// A request that has waited this long is served as if one class higher
    /// (twice as long: two classes), so low-priority work cannot starve.
    pub starvation_ms: u64,
    /// Largest request `metadata` object kept with a session, in bytes of JSON.
    pub metadata_max_bytes: usize,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            timeout_ms: 30_000,
            max_live: 10_000,
            max_queued: 10_000,
            starvation_ms: 10_000,
            metadata_max_bytes: 4_096,
        }
    }
}

/// Rate limits per calling user (by the socket peer's uid).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientSettings {
    /// Requests per minute for each uid (GCRA); unset: no limit.
    pub requests_per_minute: Option<u32>,
    /// Per-uid overrides: `"1000" = 600`.
    pub per_uid: BTreeMap<String, u32>,
}

impl ClientSettings {
    /// The limit for `uid`, if any.
    pub fn limit_for(&self, uid: u32) -> Option<u32> {
        self.per_uid
            .get(&uid.to_string())
            .copied()
            .or(self.requests_per_minute)
    }
}

/// What the lifecycle logger keeps in memory.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleSettings {
    /// Timelines of finished sessions kept for `GET /admin/sessions/{id}`;
    /// 1,000 is minutes of history for a busy workstation, about 1 MB.
    pub recent_sessions: usize,
    /// Events kept per session; a normal session has 6 to 8, retries add two each.
    pub max_events_per_session: usize,
}

impl Default for LifecycleSettings {
    fn default() -> Self {
        Self {
            recent_sessions: 1_000,
            max_events_per_session: 64,
        }
    }
}

/// The drain protocol.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownSettings {
    /// How long live sessions get to finish before they are cancelled; matches
    /// the default session deadline, so a drain never cuts a request short that
    /// would have been allowed to finish.
    pub drain_timeout_ms: u64,
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        Self {
            drain_timeout_ms: 30_000,
        }
    }
}

impl ShutdownSettings {
    /// The drain deadline as a duration.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }
}

/// Prices of a million tokens per `<provider>/<model>`, for usage costs.
#[derive(Clone, Debug, Default)]
pub struct Prices(HashMap<String, HashMap<String, PricePair>>);

/// The input and output price of a million tokens.
type PricePair = (Option<f64>, Option<f64>);

impl Prices {
    /// The prices configured in `settings` (models with neither are left out).
    pub fn of(settings: &ActorSettings) -> Self {
        let mut prices: HashMap<String, HashMap<String, _>> = HashMap::new();
        for (provider, config) in &settings.providers {
            for model in config.models.iter().map(ModelEntry::settings) {
                let pair = (model.input_price_per_mtok, model.output_price_per_mtok);
                if pair != (None, None) {
                    prices
                        .entry(provider.clone())
                        .or_default()
                        .insert(model.name, pair);
                }
            }
        }
        Self(prices)
    }

    /// What `prompt` and `completion` tokens of `provider`/`model` cost;
    /// `None` when the model has no price.
    pub fn cost(&self, provider: &str, model: &str, prompt: f64, completion: f64) -> Option<f64> {
        let (input, output) = self.0.get(provider)?.get(model)?;
        let per_token = |price: &Option<f64>| price.unwrap_or(0.0) / 1e6;
        Some(prompt * per_token(input) + completion * per_token(output))
    }
}

impl ActorSettings {
    /// Checks what serde cannot; the error names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        if self.sessions.timeout_ms == 0 {
            return Err("sessions.timeout_ms must be greater than 0".into());
        }
        if self.sessions.max_live == 0 {
            return Err("sessions.max_live must be greater than 0".into());
        }
        if self.lifecycle.max_events_per_session < 8 {
            return Err("lifecycle.max_events_per_session must be at least 8".into());
        }
        if self.sessions.metadata_max_bytes == 0 {
            return Err("sessions.metadata_max_bytes must be greater than 0".into());
        }
        for (name, provider) in &self.providers {
            provider.validate(name)?;
        }
        self.validate_clients()?;
        self.history.validate()?;
        self.validate_aliases()
    }

    fn validate_clients(&self) -> Result<(), String> {
        if self.clients.requests_per_minute == Some(0) {
            return Err("clients.requests_per_minute must be at least 1 (or unset)".into());
        }
        for (uid, limit) in &self.clients.per_uid {
            if uid.parse::<u32>().is_err() {
                return Err(format!("clients.per_uid: `{uid}` is not a numeric uid"));
            }
            if *limit == 0 {
                return Err(format!("clients.per_uid.{uid} must be at least 1"));
            }
        }
        Ok(())
    }

    fn validate_aliases(&self) -> Result<(), String> {
        for (alias, targets) in &self.aliases {
            if alias.contains('/') || alias.is_empty() {
                return Err(format!(
                    "aliases.{alias}: an alias name may not contain '/'"
                ));
            }
            if targets.is_empty() {
                return Err(format!("aliases.{alias} needs at least one target"));
            }
            for target in targets {
                let known = target.split_once('/').is_some_and(|(provider, model)| {
                    self.providers.get(provider).is_some_and(|p| {
                        p.models.is_empty() || p.models.iter().any(|m| m.settings().name == model)
                    })
                });
                if !known {
                    return Err(format!(
                        "aliases.{alias}: `{target}` is not a configured <provider>/<model>"
                    ));
                }
            }
        }
        Ok(())
    }
}
