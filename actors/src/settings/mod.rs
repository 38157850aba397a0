//! Plain settings structs the actors are built from.
//!
//! The daemon (`src/settings.rs`) reads them from `settings.toml` and the
//! environment; the actors only see these values. Every default is chosen
//! here, with the reason, so the file and the code cannot disagree.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// Settings for the actor system as a whole.
#[derive(Clone, Debug, Default, Deserialize)]
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
}

/// Per-session deadlines and the bound on live sessions.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSettings {
    /// Total deadline of a session, from arrival to the last byte of its answer,
    /// unless its provider or model sets its own. 30 s covers a long non-streamed
    /// completion; streaming providers usually set more.
    pub timeout_ms: u64,
    /// Live sessions at most; more are refused with 503. 10,000 sessions cost
    /// tens of megabytes, and it keeps a runaway client from exhausting memory.
    pub max_live: usize,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            timeout_ms: 30_000,
            max_live: 10_000,
        }
    }
}

/// What the lifecycle logger keeps in memory.
#[derive(Clone, Debug, Deserialize)]
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
#[derive(Clone, Debug, Deserialize)]
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

/// The kinds of provider the daemon can talk to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Any OpenAI-compatible chat-completions endpoint (Kimi, GLM, vLLM, ...).
    Openai,
    /// In-process echo with configurable latency: demos, tests, load tests.
    Mock,
}

/// One configured provider.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// What kind of endpoint this is.
    pub kind: ProviderKind,
    /// Base URL of an `openai` provider; `/chat/completions` is appended.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Environment variable holding the API key (never the key itself).
    /// Unset: requests are sent without `Authorization` (local endpoints).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Total deadline for this provider's sessions, overriding `sessions.timeout_ms`.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// The models served; empty means any model name is passed through.
    #[serde(default)]
    pub models: Vec<ModelEntry>,
    /// Speak HTTP/2 without negotiation (h2c) to a plain-HTTP endpoint, so one
    /// connection carries many concurrent calls.
    #[serde(default)]
    pub http2_prior_knowledge: bool,
    /// Largest non-streamed answer accepted, so a broken provider cannot make
    /// the daemon buffer without bound. 8 MiB is far above any real completion.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
    /// `mock` only: delay before answering (or before the first chunk).
    #[serde(default)]
    pub latency_ms: u64,
    /// `mock` only: delay between streamed words.
    #[serde(default = "default_stream_interval_ms")]
    pub stream_interval_ms: u64,
}

fn default_max_response_bytes() -> usize {
    8 * 1024 * 1024
}

fn default_stream_interval_ms() -> u64 {
    20
}

/// A model: its bare name, or a table with per-model overrides.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum ModelEntry {
    /// `"kimi-k2-turbo-preview"`
    Name(String),
    /// `{ name = "kimi-k2-thinking", timeout_ms = 120000 }`
    Table(ModelSettings),
}

/// Per-model overrides.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    /// The model's name at the provider.
    pub name: String,
    /// Total deadline for this model's sessions.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

impl ModelEntry {
    /// The entry as a table, however it was written.
    pub fn settings(&self) -> ModelSettings {
        match self {
            ModelEntry::Name(name) => ModelSettings {
                name: name.clone(),
                timeout_ms: None,
            },
            ModelEntry::Table(settings) => settings.clone(),
        }
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
        for (name, provider) in &self.providers {
            provider.validate(name)?;
        }
        Ok(())
    }
}

impl ProviderSettings {
    fn validate(&self, name: &str) -> Result<(), String> {
        let key = format!("providers.{name}");
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !name_ok {
            return Err(format!(
                "{key}: a provider name may hold only letters, digits, '-', '_' and '.'"
            ));
        }
        if self.kind == ProviderKind::Openai {
            let url = self
                .base_url
                .as_deref()
                .ok_or_else(|| format!("{key}.base_url is required for kind = \"openai\""))?;
            let parsed = reqwest::Url::parse(url)
                .map_err(|err| format!("{key}.base_url `{url}` is not a URL: {err}"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(format!(
                    "{key}.base_url must start with http:// or https://"
                ));
            }
        }
        if self.timeout_ms == Some(0) {
            return Err(format!("{key}.timeout_ms must be greater than 0"));
        }
        if let Some(var) = &self.api_key_env
            && (var.is_empty() || var.contains('='))
        {
            return Err(format!(
                "{key}.api_key_env must name an environment variable"
            ));
        }
        for model in self.models.iter().map(ModelEntry::settings) {
            if model.name.is_empty() {
                return Err(format!("{key}.models: a model name may not be empty"));
            }
            if model.timeout_ms == Some(0) {
                return Err(format!(
                    "{key}.models.{}.timeout_ms must be greater than 0",
                    model.name
                ));
            }
        }
        Ok(())
    }
}
