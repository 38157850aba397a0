//! Counting sessions: what the lifecycle logger calls once per provider
//! attempt and once per ended session.
//!
//! Metric handles are cached per route, so a session costs a hash lookup and
//! a few atomic adds, not a label set built and hashed per metric. Label
//! values stay bounded: providers are configured names, models are the
//! configured ones or, for a provider that passes any name through, the
//! first `max_models_per_provider` distinct names (the rest `_other`); a
//! request that never reached a provider is counted under `_none`.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use super::{AttemptLabels, DynLabels, Metrics, ProviderLabel, ReasonLabel, RequestLabels};
use crate::error::{GatewayError, Overload};
use crate::outcome::Outcome;
use crate::phase::AttemptResult;
use crate::settings::ActorSettings;
use crate::usage::Usage;

/// The label value of requests that never reached a provider.
const NONE: &str = "_none";

/// The label value of model names beyond the bound.
const OTHER: &str = "_other";

/// What an ended session tells the metrics.
#[derive(Debug)]
pub struct Ended<'a> {
    /// The provider called last (`None`: never routed).
    pub provider: Option<&'a Arc<str>>,
    /// The model first asked for at a provider.
    pub request_model: Option<&'a Arc<str>>,
    /// The model that answered (differs after a fallback).
    pub response_model: Option<&'a Arc<str>>,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it failed, if it did.
    pub error: Option<&'a GatewayError>,
    /// The daemon's error code, on failure (OpenTelemetry's `error.type`).
    pub error_code: Option<&'a str>,
    /// Arrival to the end.
    pub duration: Duration,
    /// Tokens reported.
    pub usage: Usage,
    /// Streams: arrival to the first chunk.
    pub first_token: Option<Duration>,
    /// Time waited for capacity, if it waited.
    pub queued: Option<Duration>,
    /// What the daemon added (see `Marks::overhead`).
    pub overhead: Option<Duration>,
}

/// (provider, request model, response model) label values.
type RouteKey = (Arc<str>, Arc<str>, Arc<str>);

/// The handles of one (provider, request model, response model).
struct RouteHandles {
    /// `switchboard_requests_total`, by outcome (indexed like `Outcome::ALL`).
    requests: Vec<Counter>,
    /// The labels OpenTelemetry's metrics share.
    gen_ai: DynLabels,
    /// Operation duration of successes.
    duration_ok: Histogram,
    /// Input and output token counts.
    tokens: [Histogram; 2],
    /// Time to first token.
    first_token: Histogram,
    /// Queue wait and overhead (by provider).
    queue_wait: Histogram,
    overhead: Histogram,
}

/// The logger's view of the metrics.
pub struct SessionMetrics {
    /// The registry's metrics.
    metrics: Arc<Metrics>,
    /// Providers that pass any model name through.
    passthrough: HashSet<String>,
    /// Model names seen per passthrough provider, at most `max_models`.
    seen: HashMap<Arc<str>, HashSet<Arc<str>>>,
    /// `metrics.max_models_per_provider`.
    max_models: usize,
    /// Cached handles by (provider, request model, response model) label.
    routes: HashMap<RouteKey, RouteHandles>,
    /// Cached attempt counters by (provider, result).
    attempts: HashMap<(Arc<str>, AttemptResult), Counter>,
    /// `switchboard_requests_total` of requests that never reached a provider.
    unrouted: Option<Vec<Counter>>,
}

impl SessionMetrics {
    /// Counting into `metrics` for the providers of `settings`.
    pub fn new(metrics: Arc<Metrics>, settings: &ActorSettings) -> Self {
        let passthrough = settings
            .providers
            .iter()
            .filter(|(_, p)| p.models.is_empty())
            .map(|(name, _)| name.clone())
            .collect();
        Self {
            metrics,
            passthrough,
            seen: HashMap::default(),
            max_models: settings.metrics.max_models_per_provider,
            routes: HashMap::default(),
            attempts: HashMap::default(),
            unrouted: None,
        }
    }

    /// A provider attempt ended.
    pub fn attempt(&mut self, provider: &Arc<str>, result: AttemptResult) {
        let metrics = &self.metrics;
        self.attempts
            .entry((provider.clone(), result))
            .or_insert_with(|| {
                let labels = AttemptLabels {
                    provider: provider.to_string(),
                    result: result.as_str(),
                };
                metrics.upstream_attempts.get_or_create_owned(&labels)
            })
            .inc();
    }

    /// A session ended.
    pub fn ended(&mut self, ended: &Ended<'_>) {
        if ended.outcome == Outcome::Rejected {
            let reason = ended.error.map_or("other", rejection_reason);
            self.metrics
                .rejections
                .get_or_create(&ReasonLabel { reason })
                .inc();
        }
        let index = Outcome::ALL
            .iter()
            .position(|o| *o == ended.outcome)
            .unwrap_or(0);
        let Some(provider) = ended.provider else {
            // Never reached a provider: counted, but no GenAI operation happened.
            let metrics = &self.metrics;
            let counters = self
                .unrouted
                .get_or_insert_with(|| requests(metrics, NONE, NONE));
            counters[index].inc();
            return;
        };
        let metrics = Arc::clone(&self.metrics);
        let key = self.route_key(provider, ended);
        let handles = self.handles(key);
        handles.requests[index].inc();
        let seconds = ended.duration.as_secs_f64();
        match ended
            .error_code
            .filter(|_| ended.outcome != Outcome::Completed)
        {
            None => handles.duration_ok.observe(seconds),
            Some(code) => {
                let mut labels = handles.gen_ai.clone();
                labels.push(("error_type", code.to_owned()));
                let family = &metrics.operation_duration;
                family.get_or_create(&labels).observe(seconds);
            }
        }
        let [input, output] = &handles.tokens;
        if let Some(tokens) = ended.usage.prompt_tokens {
            input.observe(tokens as f64);
        }
        if let Some(tokens) = ended.usage.completion_tokens {
            output.observe(tokens as f64);
        }
        if let (Some(first), Outcome::Completed) = (ended.first_token, ended.outcome) {
            handles.first_token.observe(first.as_secs_f64());
        }
        if let Some(waited) = ended.queued {
            handles.queue_wait.observe(waited.as_secs_f64());
        }
        if let Some(overhead) = ended.overhead {
            handles.overhead.observe(overhead.as_secs_f64());
        }
    }

    fn route_key(&mut self, provider: &Arc<str>, ended: &Ended<'_>) -> RouteKey {
        let request = ended.request_model.or(ended.response_model);
        let request = self.model_label(provider, request);
        let response = self.model_label(provider, ended.response_model);
        (provider.clone(), request, response)
    }

    /// The label value for `model` at `provider`, bounded.
    fn model_label(&mut self, provider: &Arc<str>, model: Option<&Arc<str>>) -> Arc<str> {
        let Some(model) = model else {
            return NONE.into();
        };
        if !self.passthrough.contains(&**provider) {
            return model.clone();
        }
        let seen = self.seen.entry(provider.clone()).or_default();
        if seen.contains(model) || seen.len() < self.max_models {
            seen.insert(model.clone());
            return model.clone();
        }
        OTHER.into()
    }

    fn handles(&mut self, key: RouteKey) -> &RouteHandles {
        let metrics = &self.metrics;
        self.routes
            .entry(key)
            .or_insert_with_key(|(provider, request, response)| {
                let requests = requests(metrics, provider, response);
                let gen_ai: DynLabels = vec![
                    ("gen_ai_operation_name", "chat".to_owned()),
                    ("gen_ai_provider_name", provider.to_string()),
                    ("gen_ai_request_model", request.to_string()),
                    ("gen_ai_response_model", response.to_string()),
                ];
                let token = |kind: &str| {
                    let mut labels = gen_ai.clone();
                    labels.push(("gen_ai_token_type", kind.to_owned()));
                    metrics.token_usage.get_or_create_owned(&labels)
                };
                let by_provider = ProviderLabel {
                    provider: provider.to_string(),
                };
                RouteHandles {
                    requests,
                    duration_ok: metrics.operation_duration.get_or_create_owned(&gen_ai),
                    tokens: [token("input"), token("output")],
                    first_token: metrics.time_to_first_token.get_or_create_owned(&gen_ai),
                    queue_wait: metrics.queue_wait.get_or_create_owned(&by_provider),
                    overhead: metrics.overhead.get_or_create_owned(&by_provider),
                    gen_ai,
                }
            })
    }
}

/// `switchboard_requests_total` of one provider and model, by outcome.
fn requests(metrics: &Metrics, provider: &str, model: &str) -> Vec<Counter> {
    Outcome::ALL
        .iter()
        .map(|outcome| {
            let labels = RequestLabels {
                provider: provider.to_owned(),
                model: model.to_owned(),
                outcome: outcome.as_str(),
            };
            metrics.requests.get_or_create_owned(&labels)
        })
        .collect()
}

/// The `reason` label of a refusal: a fixed set, never caller text.
fn rejection_reason(error: &GatewayError) -> &'static str {
    match error {
        GatewayError::BadRequest { .. } => "bad_request",
        GatewayError::BodyTooLarge { .. } => "too_large",
        GatewayError::UnknownModel(_) => "unknown_model",
        GatewayError::Forbidden(_) => "forbidden",
        GatewayError::RateLimited { .. } => "rate_limited",
        GatewayError::Draining { .. } => "draining",
        GatewayError::Overloaded {
            why: Overload::QueueFull { .. },
            ..
        } => "queue_full",
        GatewayError::Overloaded {
            why: Overload::WaitedPastDeadline { .. },
            ..
        } => "queue_timeout",
        _ => "other",
    }
}
