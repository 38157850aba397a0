//! Settings of one provider and its models, and the deadlines they resolve to.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::wire::Wire;

/// The kinds of provider the daemon can talk to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Any OpenAI-compatible chat-completions endpoint (Kimi, GLM, vLLM, ...).
    Openai,
    /// In-process echo with configurable latency: demos, tests, load tests.
    Mock,
}

/// One configured provider.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// What kind of endpoint this is.
    pub kind: ProviderKind,
    /// Base URL of an `openai` provider; `/chat/completions` is appended.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Base URL of the provider's Anthropic-compatible endpoint, if it has
    /// one; `/v1/messages` is appended. Unset: `POST /v1/messages` answers
    /// 404 for this provider's models.
    #[serde(default)]
    pub anthropic_base_url: Option<String>,
    /// Environment variable holding the API key (never the key itself).
    /// Unset: requests are sent without `Authorization` (local endpoints).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// The models served; empty means any model name is passed through.
    #[serde(default)]
    pub models: Vec<ModelEntry>,
    /// Total deadline for this provider's sessions: arrival to the last byte of the answer.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Establishing the connection to the provider (TCP and TLS).
    #[serde(default)]
    pub connect_timeout_ms: Option<u64>,
    /// Streams: from the call to the first chunk of the answer.
    #[serde(default)]
    pub first_token_timeout_ms: Option<u64>,
    /// Streams: the longest silence between two chunks.
    #[serde(default)]
    pub idle_timeout_ms: Option<u64>,
    /// Sessions calling this provider at once; more wait in the queue. 64
    /// keeps a provider's own concurrency limits (tens per key) comfortably fed.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// Requests admitted per minute (GCRA); over it, 429 with `Retry-After`.
    /// Unset: no limit beyond the provider's own.
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    /// Retries after a failed attempt that may succeed on a second try
    /// (connection errors, 429, 5xx, "overloaded"). Two retries ride out a
    /// blip without tripling a real outage's load.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// First backoff, doubled for each retry, with full jitter.
    #[serde(default = "default_retry_base_ms")]
    pub retry_base_ms: u64,
    /// Longest backoff (a provider's `Retry-After` may ask for longer, up to
    /// the session's deadline).
    #[serde(default = "default_retry_cap_ms")]
    pub retry_cap_ms: u64,
    /// Consecutive failed attempts after which the provider is marked
    /// unhealthy (fallbacks skip it).
    #[serde(default = "default_unhealthy_after")]
    pub unhealthy_after: u32,
    /// How long an unhealthy provider is skipped before it is tried again.
    #[serde(default = "default_cooldown_ms")]
    pub cooldown_ms: u64,
    /// Speak HTTP/2 without negotiation (h2c) to a plain-HTTP endpoint, so one
    /// connection carries many concurrent calls.
    #[serde(default)]
    pub http2_prior_knowledge: bool,
    /// Largest non-streamed answer accepted, so a broken provider cannot make
    /// the daemon buffer without bound. 8 MiB is far above any real completion.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
    /// Largest single event of a streamed answer; a bigger one ends the
    /// stream with an error event. OpenAI-style chunks are well under 1 KB
    /// and tool-call deltas a few KB, so 1 MiB only stops a runaway
    /// provider from making the daemon buffer without bound.
    #[serde(default = "default_max_event_bytes")]
    pub max_event_bytes: usize,
    /// `mock` only: delay before answering (or before the first chunk).
    #[serde(default)]
    pub latency_ms: u64,
    /// `mock` only: delay between streamed words.
    #[serde(default = "default_stream_interval_ms")]
    pub stream_interval_ms: u64,
}

fn default_max_concurrency() -> usize {
    64
}

fn default_max_retries() -> u32 {
    2
}

fn default_retry_base_ms() -> u64 {
    250
}

fn default_retry_cap_ms() -> u64 {
    8_000
}

fn default_unhealthy_after() -> u32 {
    5
}

fn default_cooldown_ms() -> u64 {
    30_000
}

fn default_max_response_bytes() -> usize {
    8 * 1024 * 1024
}

fn default_max_event_bytes() -> usize {
    1024 * 1024
}

/// The smallest `max_event_bytes` accepted: below a kilobyte even ordinary
/// chunks (a few hundred bytes with their ids and usage) would be refused.
const MIN_EVENT_BYTES: usize = 1024;

fn default_stream_interval_ms() -> u64 {
    20
}

/// Deadlines a provider or a model may set; unset ones are inherited.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeadlineSettings {
    /// Total: arrival to the last byte of the answer.
    pub timeout_ms: Option<u64>,
    /// Establishing the connection to the provider (TCP and TLS).
    pub connect_timeout_ms: Option<u64>,
    /// Streams: from the call to the first chunk of the answer.
    pub first_token_timeout_ms: Option<u64>,
    /// Streams: the longest silence between two chunks.
    pub idle_timeout_ms: Option<u64>,
}

impl DeadlineSettings {
    /// These settings, with unset ones taken from `outer`.
    pub fn or(self, outer: DeadlineSettings) -> DeadlineSettings {
        DeadlineSettings {
            timeout_ms: self.timeout_ms.or(outer.timeout_ms),
            connect_timeout_ms: self.connect_timeout_ms.or(outer.connect_timeout_ms),
            first_token_timeout_ms: self.first_token_timeout_ms.or(outer.first_token_timeout_ms),
            idle_timeout_ms: self.idle_timeout_ms.or(outer.idle_timeout_ms),
        }
    }

    /// The deadlines in force, with the daemon's defaults for unset ones.
    pub fn resolve(self, default_total_ms: u64) -> Deadlines {
        let ms = Duration::from_millis;
        Deadlines {
            total: ms(self.timeout_ms.unwrap_or(default_total_ms)),
            connect: ms(self
                .connect_timeout_ms
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT_MS)),
            first_token: self.first_token_timeout_ms.map(ms),
            idle: self.idle_timeout_ms.map(ms),
        }
    }

    fn validate(&self, key: &str) -> Result<(), String> {
        let all = [
            ("timeout_ms", self.timeout_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("first_token_timeout_ms", self.first_token_timeout_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
        ];
        match all.iter().find(|(_, value)| *value == Some(0)) {
            Some((name, _)) => Err(format!("{key}.{name} must be greater than 0")),
            None => Ok(()),
        }
    }
}

/// How long to wait for a TCP (and TLS) connection when nothing says:
/// a healthy provider connects in milliseconds; ten seconds is an outage.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;

/// The deadlines of one session, resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadlines {
    /// Arrival to the last byte.
    pub total: Duration,
    /// Connecting to the provider.
    pub connect: Duration,
    /// Streams: call start to the first chunk.
    pub first_token: Option<Duration>,
    /// Streams: longest silence between chunks.
    pub idle: Option<Duration>,
}

/// A model: its bare name, or a table with per-model overrides.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ModelEntry {
    /// `"kimi-k2-turbo-preview"`
    Name(String),
    /// `{ name = "kimi-k2-thinking", timeout_ms = 300000 }`
    Table(ModelSettings),
}

/// Per-model overrides.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    /// The model's name at the provider.
    pub name: String,
    /// Total deadline for this model's sessions: arrival to the last byte of the answer.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Establishing the connection to the provider (TCP and TLS).
    #[serde(default)]
    pub connect_timeout_ms: Option<u64>,
    /// Streams: from the call to the first chunk of the answer.
    #[serde(default)]
    pub first_token_timeout_ms: Option<u64>,
    /// Streams: the longest silence between two chunks.
    #[serde(default)]
    pub idle_timeout_ms: Option<u64>,
    /// Price of a million prompt tokens, in the operator's currency, for
    /// `GET /admin/usage`'s `cost`.
    #[serde(default)]
    pub input_price_per_mtok: Option<f64>,
    /// Price of a million completion tokens.
    #[serde(default)]
    pub output_price_per_mtok: Option<f64>,
}

impl ModelSettings {
    /// The deadlines this model sets.
    pub fn deadlines(&self) -> DeadlineSettings {
        DeadlineSettings {
            timeout_ms: self.timeout_ms,
            connect_timeout_ms: self.connect_timeout_ms,
            first_token_timeout_ms: self.first_token_timeout_ms,
            idle_timeout_ms: self.idle_timeout_ms,
        }
    }
}

impl ModelEntry {
    /// The entry as a table, however it was written.
    pub fn settings(&self) -> ModelSettings {
        match self {
            ModelEntry::Name(name) => ModelSettings {
                name: name.clone(),
                timeout_ms: None,
                connect_timeout_ms: None,
                first_token_timeout_ms: None,
                idle_timeout_ms: None,
                input_price_per_mtok: None,
                output_price_per_mtok: None,
            },
            ModelEntry::Table(settings) => settings.clone(),
        }
    }
}

// The four deadline keys are spelled out in both `ProviderSettings` and
// `ModelSettings` rather than shared through `#[serde(flatten)]`: serde does
// not support `flatten` together with `deny_unknown_fields`, and a typo in a
// key must stop the daemon with its name.
impl ProviderSettings {
    /// The deadlines this provider sets.
    pub fn deadlines(&self) -> DeadlineSettings {
        DeadlineSettings {
            timeout_ms: self.timeout_ms,
            connect_timeout_ms: self.connect_timeout_ms,
            first_token_timeout_ms: self.first_token_timeout_ms,
            idle_timeout_ms: self.idle_timeout_ms,
        }
    }

    /// Whether it has an endpoint for requests on `wire`: every kind serves
    /// chat completions; `openai` ones embeddings, and Anthropic messages
    /// when `anthropic_base_url` is set.
    pub fn serves(&self, wire: Wire) -> bool {
        match wire {
            Wire::Chat => true,
            Wire::Embeddings => self.kind == ProviderKind::Openai,
            Wire::Messages | Wire::CountTokens => {
                self.kind == ProviderKind::Openai && self.anthropic_base_url.is_some()
            }
        }
    }

    /// Checks what serde cannot; the error names the offending key.
    pub fn validate(&self, name: &str) -> Result<(), String> {
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
            check_url(&format!("{key}.base_url"), url)?;
        }
        if let Some(url) = &self.anthropic_base_url {
            if self.kind != ProviderKind::Openai {
                return Err(format!(
                    "{key}.anthropic_base_url is only for kind = \"openai\""
                ));
            }
            check_url(&format!("{key}.anthropic_base_url"), url)?;
        }
        self.deadlines().validate(&key)?;
        if self.max_concurrency == 0 {
            return Err(format!("{key}.max_concurrency must be at least 1"));
        }
        if self.requests_per_minute == Some(0) {
            return Err(format!(
                "{key}.requests_per_minute must be at least 1 (or unset)"
            ));
        }
        if self.retry_base_ms == 0 || self.retry_cap_ms < self.retry_base_ms {
            return Err(format!(
                "{key}: retry_base_ms must be at least 1 and retry_cap_ms at least retry_base_ms"
            ));
        }
        if self.max_event_bytes < MIN_EVENT_BYTES {
            return Err(format!(
                "{key}.max_event_bytes must be at least {MIN_EVENT_BYTES}"
            ));
        }
        if self.unhealthy_after == 0 {
            return Err(format!("{key}.unhealthy_after must be at least 1"));
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
            let model_key = format!("{key}.models.{}", model.name);
            model.deadlines().validate(&model_key)?;
            for (price, value) in [
                ("input_price_per_mtok", model.input_price_per_mtok),
                ("output_price_per_mtok", model.output_price_per_mtok),
            ] {
                if value.is_some_and(|v| !v.is_finite() || v < 0.0) {
                    return Err(format!("{model_key}.{price} must be a number of 0 or more"));
                }
            }
        }
        Ok(())
    }
}

/// Checks that the setting `key` holds an http(s) URL, as the provider
/// will parse it.
fn check_url(key: &str, url: &str) -> Result<(), String> {
    crate::provider::endpoint(url)
        .map(drop)
        .map_err(|err| format!("{key}: {err}"))
}
