//! What one load run measured: a latency histogram (µs), successes,
//! failures by kind, the measured window, connections opened and the CPU
//! the three parties spent. Runs of the same side merge into one.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::http1::Failure;
use crate::procfs::CpuSample;

/// Largest latency the histograms hold, in µs (longer values saturate).
const MAX_MICROS: u64 = 120_000_000;

/// A new latency histogram: 1 µs to 120 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds")
}

/// Records a duration in µs (at least 1).
pub fn record(hist: &mut Histogram<u64>, d: Duration) {
    hist.saturating_record((d.as_micros() as u64).max(1));
}

/// One side's (daemon's, floor's or direct's) measurements.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Latency of successful requests, µs.
    pub latency: Histogram<u64>,
    /// Open loop only: how late each request left the client after its
    /// intended send time (pacing and client delay), µs.
    pub send_lag: Histogram<u64>,
    /// Open loop only: how late the pacing timer woke the client, µs.
    pub pacer_lag: Histogram<u64>,
    /// Open loop only: from the request's write to its full answer, µs
    /// (the latency without the client's own send lag).
    pub service: Histogram<u64>,
    /// Successful requests counted in the window.
    pub ok: u64,
    /// Requests finished during the run, in or out of the window (the
    /// CPU figures are per finished request, as the CPU is read around
    /// the whole run).
    pub finished: u64,
    /// Failed requests, by kind.
    pub failures: BTreeMap<Failure, u64>,
    /// Length of the measured window(s).
    pub window: Duration,
    /// Connections this side opened.
    pub connections: usize,
    /// Open loop: most connections busy at once.
    pub max_busy: usize,
    /// CPU spent during the window(s).
    pub cpu: CpuSample,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            latency: histogram(),
            send_lag: histogram(),
            pacer_lag: histogram(),
            service: histogram(),
            ok: 0,
            finished: 0,
            failures: BTreeMap::new(),
            window: Duration::ZERO,
            connections: 0,
            max_busy: 0,
            cpu: CpuSample::default(),
        }
    }
}

impl Stats {
    /// Counts one failure.
    pub fn fail(&mut self, failure: Failure) {
        *self.failures.entry(failure).or_default() += 1;
    }

    /// All failures.
    pub fn errors(&self) -> u64 {
        self.failures.values().sum()
    }

    /// Adds another run of the same side.
    pub fn merge(&mut self, other: &Stats) {
        self.latency.add(&other.latency).expect("same bounds");
        self.send_lag.add(&other.send_lag).expect("same bounds");
        self.pacer_lag.add(&other.pacer_lag).expect("same bounds");
        self.service.add(&other.service).expect("same bounds");
        self.ok += other.ok;
        self.finished += other.finished;
        for (k, v) in &other.failures {
            *self.failures.entry(*k).or_default() += v;
        }
        self.window += other.window;
        self.connections += other.connections;
        self.max_busy = self.max_busy.max(other.max_busy);
        self.cpu.add(&other.cpu);
    }

    /// Latency at quantile `q` (0..=1), µs.
    pub fn p(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64
    }

    /// Successes per second over the window.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// CPU µs per finished request of (client, fake provider, gateway).
    pub fn cpu_per_request(&self) -> (f64, f64, f64) {
        let per = |ns: u64| ns as f64 / 1000.0 / (self.finished.max(1) as f64);
        (
            per(self.cpu.client_ns),
            per(self.cpu.fake_ns),
            per(self.cpu.gateway_ns),
        )
    }

    /// Every number, for the JSON report.
    pub fn to_json(&self) -> Value {
        let (client, fake, gateway) = self.cpu_per_request();
        let window = self.window.as_secs_f64();
        json!({
            "ok": self.ok,
            "finished_during_run": self.finished,
            "errors": self.errors(),
            "failures": failures_json(&self.failures),
            "window_s": window,
            "rate_per_s": self.rate(),
            "latency_us": quantiles(&self.latency),
            "send_lag_us": quantiles(&self.send_lag),
            "pacer_lag_us": quantiles(&self.pacer_lag),
            "service_time_us": quantiles(&self.service),
            "connections_opened": self.connections,
            "max_busy_connections": self.max_busy,
            "cpu_us_per_request": {"client": client, "fake_provider": fake, "gateway": gateway},
            "cpu_cores_busy": {
                "client": self.cpu.client_ns as f64 / 1e9 / window.max(1e-9),
                "fake_provider": self.cpu.fake_ns as f64 / 1e9 / window.max(1e-9),
                "gateway": self.cpu.gateway_ns as f64 / 1e9 / window.max(1e-9),
            },
        })
    }
}

/// Failures as `{"kind": count}`.
pub fn failures_json(failures: &BTreeMap<Failure, u64>) -> Value {
    let map: serde_json::Map<String, Value> = failures
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    Value::Object(map)
}

/// The usual quantiles of a histogram, µs.
pub fn quantiles(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return Value::Null;
    }
    json!({
        "count": h.len(),
        "min": h.min(),
        "p50": h.value_at_quantile(0.5),
        "p90": h.value_at_quantile(0.9),
        "p99": h.value_at_quantile(0.99),
        "p99_9": h.value_at_quantile(0.999),
        "max": h.max(),
        "mean": h.mean(),
    })
}
