//! The daemon's metrics: one `prometheus-client` registry per actor system
//! (so tests can run several daemons, and nothing is global), encoded as
//! OpenMetrics text for `GET /metrics`.
//!
//! The lifecycle logger counts sessions through [`SessionMetrics`] (handles
//! cached per route, so a session costs a hash lookup and a few atomic adds);
//! the store times its writes; the HTTP layer sets the load gauges from the
//! supervisor just before encoding a scrape. Names follow the OpenTelemetry
//! GenAI semantic conventions where they apply, dots written as underscores
//! as Prometheus exporters do; the daemon's own are prefixed `switchboard_`.

mod buckets;
mod process;
mod session;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

pub use session::{Ended, SessionMetrics};

/// A histogram family whose buckets are fixed by a constructor.
type Histograms<S> = Family<S, Histogram, fn() -> Histogram>;

/// A label set built at run time (OpenTelemetry's `error.type` is present
/// only on failures, so the set varies).
pub(crate) type DynLabels = Vec<(&'static str, String)>;

/// `provider`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ProviderLabel {
    pub(crate) provider: String,
}

/// `provider`, `model`, `outcome`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub(crate) provider: String,
    pub(crate) model: String,
    pub(crate) outcome: &'static str,
}

/// `reason`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabel {
    pub(crate) reason: &'static str,
}

/// `provider`, `result`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AttemptLabels {
    pub(crate) provider: String,
    pub(crate) result: &'static str,
}

/// `what` (`events` or `sessions`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct WhatLabel {
    pub(crate) what: &'static str,
}

/// The registry and every metric in it.
#[derive(Debug)]
pub struct Metrics {
    /// What a scrape encodes.
    registry: Registry,
    /// `gen_ai_client_operation_duration_seconds`.
    pub(crate) operation_duration: Histograms<DynLabels>,
    /// `gen_ai_client_token_usage`.
    pub(crate) token_usage: Histograms<DynLabels>,
    /// `gen_ai_server_time_to_first_token_seconds`.
    pub(crate) time_to_first_token: Histograms<DynLabels>,
    /// `switchboard_requests_total`.
    pub(crate) requests: Family<RequestLabels, Counter>,
    /// `switchboard_rejections_total`.
    pub(crate) rejections: Family<ReasonLabel, Counter>,
    /// `switchboard_upstream_attempts_total`.
    pub(crate) upstream_attempts: Family<AttemptLabels, Counter>,
    /// `switchboard_queue_wait_seconds`.
    pub(crate) queue_wait: Histograms<ProviderLabel>,
    /// `switchboard_overhead_seconds`.
    pub(crate) overhead: Histograms<ProviderLabel>,
    /// `switchboard_sessions_live`.
    sessions_live: Family<ProviderLabel, Gauge>,
    /// `switchboard_sessions_queued`.
    sessions_queued: Family<ProviderLabel, Gauge>,
    /// `switchboard_history_write_seconds`.
    pub(crate) history_write: Histogram,
    /// `switchboard_history_dropped_total`.
    pub(crate) history_dropped: Family<WhatLabel, Counter>,
    /// `switchboard_event_subscribers`.
    pub(crate) event_subscribers: Gauge,
}

impl Metrics {
    /// A registry with every metric registered and none observed.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let metrics = Self {
            operation_duration: Family::new_with_constructor(buckets::operation_duration),
            token_usage: Family::new_with_constructor(buckets::token_usage),
            time_to_first_token: Family::new_with_constructor(buckets::time_to_first_token),
            requests: Family::default(),
            rejections: Family::default(),
            upstream_attempts: Family::default(),
            queue_wait: Family::new_with_constructor(buckets::queue_wait),
            overhead: Family::new_with_constructor(buckets::overhead),
            sessions_live: Family::default(),
            sessions_queued: Family::default(),
            history_write: buckets::history_write(),
            history_dropped: Family::default(),
            event_subscribers: Gauge::default(),
            registry: Registry::default(),
        };
        metrics.register(&mut registry);
        Self {
            registry,
            ..metrics
        }
    }

    fn register(&self, r: &mut Registry) {
        let s = Unit::Seconds;
        r.register_with_unit(
            "gen_ai_client_operation_duration",
            "GenAI operation duration: a session from arrival to its last byte",
            s.clone(),
            self.operation_duration.clone(),
        );
        r.register(
            "gen_ai_client_token_usage",
            "Number of input and output tokens used per request, as the provider reported them",
            self.token_usage.clone(),
        );
        r.register_with_unit(
            "gen_ai_server_time_to_first_token",
            "Time from arrival to the first streamed chunk, for successful streams",
            s.clone(),
            self.time_to_first_token.clone(),
        );
        r.register(
            "switchboard_requests",
            "Requests that reached the daemon, by final provider, model and outcome",
            self.requests.clone(),
        );
        r.register(
            "switchboard_rejections",
            "Requests refused before a session started, by reason",
            self.rejections.clone(),
        );
        r.register(
            "switchboard_upstream_attempts",
            "Provider calls attempted (retries and fallbacks each count), by result",
            self.upstream_attempts.clone(),
        );
        r.register_with_unit(
            "switchboard_queue_wait",
            "Time requests waited for capacity, for those that waited",
            s.clone(),
            self.queue_wait.clone(),
        );
        r.register_with_unit(
            "switchboard_overhead",
            "Time a session spent in the daemon outside provider calls and queue waits: what the gateway adds",
            s.clone(),
            self.overhead.clone(),
        );
        r.register(
            "switchboard_sessions_live",
            "Sessions calling each provider now",
            self.sessions_live.clone(),
        );
        r.register(
            "switchboard_sessions_queued",
            "Requests waiting for a slot of each provider now",
            self.sessions_queued.clone(),
        );
        r.register_with_unit(
            "switchboard_history_write",
            "Time to write one batch to the history file",
            s,
            self.history_write.clone(),
        );
        r.register(
            "switchboard_history_dropped",
            "Phase events and session rows not written because the history store fell behind",
            self.history_dropped.clone(),
        );
        r.register(
            "switchboard_event_subscribers",
            "Readers of GET /admin/events now",
            self.event_subscribers.clone(),
        );
        let version = vec![("version", env!("CARGO_PKG_VERSION"))];
        r.register(
            "switchboard_build",
            "The daemon's version",
            Info::new(version),
        );
        r.register_collector(Box::new(process::ProcessCollector::new()));
    }

    /// Sets the load gauges of `provider` (from the supervisor, at scrape time).
    pub fn set_load(&self, provider: &str, live: usize, queued: usize) {
        let label = ProviderLabel {
            provider: provider.to_owned(),
        };
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.sessions_live.get_or_create(&label).set(gauge(live));
        self.sessions_queued
            .get_or_create(&label)
            .set(gauge(queued));
    }

    /// The scrape, as OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
