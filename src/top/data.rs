//! What one refresh of `top` reads from the daemon, as plain values: the
//! providers (`GET /admin/providers`), the live sessions
//! (`GET /admin/sessions`), the daemon's totals (`GET /healthz`) and the
//! scrape (`GET /metrics`, read by [`super::scrape`]).
//!
//! [`fetch`] asks for all four at once; the `from_json` functions turn the
//! answers into rows, so everything past the socket is testable without a
//! daemon or a terminal.

use std::time::Duration;

use anyhow::{Context as _, anyhow};
use reqwest::Method;
use serde_json::Value;

use super::scrape::{self, Scrape};
use crate::client::Daemon;

/// How long one refresh may take before it counts as failed: far above
/// the milliseconds a daemon answers in, short enough that a wedged daemon
/// shows as an error within a few refreshes.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// A provider's load and health, as `/admin/providers` reports them.
#[derive(Clone, Debug, PartialEq)]
pub struct Provider {
    /// Its configured name.
    pub name: String,
    /// Whether fallbacks use it.
    pub health: Health,
    /// Calls running now.
    pub in_flight: u64,
    /// Requests waiting for one of its slots.
    pub queued: u64,
    /// Calls it takes at once.
    pub max_concurrency: u64,
}

/// A provider's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Taking calls.
    Healthy,
    /// Skipped by fallbacks for this much longer.
    Cooling(Duration),
    /// Marked unhealthy, no cooldown reported.
    Unhealthy,
}

/// A live session, as `/admin/sessions` reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    /// The session id (what `cancel` takes).
    pub id: String,
    /// The provider it is routed to (empty until routed).
    pub provider: String,
    /// `provider/model`, or the model as requested.
    pub route: String,
    /// Its current phase, e.g. `QUEUED` or `PROVIDER_CALL_START`.
    pub phase: String,
    /// Its place in the queue, while queued.
    pub queue_position: Option<u64>,
    /// Time since it arrived.
    pub age: Duration,
    /// The caller: `process(pid)`, else `uid:pid`, else `-`.
    pub client: String,
}

/// The daemon's own totals (`/healthz`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Totals {
    /// `ok` or `draining`.
    pub status: String,
    /// Sessions running, all providers.
    pub live: u64,
    /// Requests waiting, all providers.
    pub queued: u64,
}

/// One refresh's answers.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The providers, by name.
    pub providers: Vec<Provider>,
    /// Live sessions, oldest first.
    pub sessions: Vec<Session>,
    /// The daemon's totals.
    pub totals: Totals,
    /// The metrics, per provider.
    pub scrape: Scrape,
}

/// Reads providers, sessions, totals and metrics, all at once.
pub async fn fetch(daemon: &Daemon) -> anyhow::Result<Fetched> {
    let get = |path: &str| daemon.json(daemon.request(Method::GET, path));
    let answers = async {
        tokio::join!(
            get("/admin/providers"),
            get("/admin/sessions"),
            get("/healthz"),
            daemon.body(daemon.request(Method::GET, "/metrics")),
        )
    };
    let (providers, sessions, health, metrics) = tokio::time::timeout(FETCH_TIMEOUT, answers)
        .await
        .map_err(|_| anyhow!("the daemon did not answer within {FETCH_TIMEOUT:?}"))?;
    let metrics = metrics?;
    Ok(Fetched {
        providers: providers_from_json(&providers?)?,
        sessions: sessions_from_json(&sessions?)?,
        totals: totals_from_json(&health?),
        scrape: scrape::parse(&String::from_utf8_lossy(&metrics)),
    })
}

/// Reads the metrics alone (the first scrape of `top --once`).
pub async fn fetch_scrape(daemon: &Daemon) -> anyhow::Result<Scrape> {
    let answer = daemon.body(daemon.request(Method::GET, "/metrics"));
    let body = tokio::time::timeout(FETCH_TIMEOUT, answer)
        .await
        .map_err(|_| anyhow!("the daemon did not answer within {FETCH_TIMEOUT:?}"))??;
    Ok(scrape::parse(&String::from_utf8_lossy(&body)))
}

/// The rows of `{"providers":[…]}`.
pub fn providers_from_json(answer: &Value) -> anyhow::Result<Vec<Provider>> {
    let list = answer
        .get("providers")
        .and_then(Value::as_array)
        .context("the daemon's answer has no providers list")?;
    Ok(list.iter().map(provider).collect())
}

fn provider(value: &Value) -> Provider {
    let number = |key: &str| value.get(key).and_then(Value::as_u64).unwrap_or(0);
    let health = match (
        value.get("healthy").and_then(Value::as_bool),
        value.get("cooldown_left_ms").and_then(Value::as_u64),
    ) {
        (Some(false), Some(ms)) => Health::Cooling(Duration::from_millis(ms)),
        (Some(false), None) => Health::Unhealthy,
        _ => Health::Healthy,
    };
    Provider {
        name: string(value, "name"),
        health,
        in_flight: number("in_flight"),
        queued: number("queued"),
        max_concurrency: number("max_concurrency"),
    }
}

/// The rows of `{"sessions":[…]}`, oldest first.
pub fn sessions_from_json(answer: &Value) -> anyhow::Result<Vec<Session>> {
    let list = answer
        .get("sessions")
        .and_then(Value::as_array)
        .context("the daemon's answer has no sessions list")?;
    let mut sessions: Vec<Session> = list.iter().map(session).collect();
    sessions.sort_by_key(|s| std::cmp::Reverse(s.age));
    Ok(sessions)
}

fn session(value: &Value) -> Session {
    Session {
        id: string(value, "id"),
        provider: string(value, "provider"),
        route: crate::client::table::route(value),
        phase: string(value, "phase"),
        queue_position: value.get("queue_position").and_then(Value::as_u64),
        age: Duration::from_millis(value.get("age_ms").and_then(Value::as_u64).unwrap_or(0)),
        client: client(value.get("client")),
    }
}

/// `process(pid)` when the daemon read the name, `uid:pid` otherwise.
fn client(peer: Option<&Value>) -> String {
    let Some(peer) = peer.filter(|p| p.is_object()) else {
        return "-".to_owned();
    };
    let pid = crate::client::text(peer, "pid");
    match peer.get("process").and_then(Value::as_str) {
        Some(process) => format!("{process}({pid})"),
        None => format!("{}:{pid}", crate::client::text(peer, "uid")),
    }
}

/// `/healthz`'s answer; a field it lacks shows as `?` or 0.
pub fn totals_from_json(answer: &Value) -> Totals {
    let number = |key: &str| answer.get(key).and_then(Value::as_u64).unwrap_or(0);
    Totals {
        status: answer
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned(),
        live: number("live_sessions"),
        queued: number("queued_sessions"),
    }
}

fn string(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn providers_read_health_and_load() {
        let answer = json!({"providers": [
            {"name": "a", "healthy": true, "cooldown_left_ms": null, "in_flight": 3,
             "queued": 1, "max_concurrency": 4},
            {"name": "b", "healthy": false, "cooldown_left_ms": 1500, "in_flight": 0,
             "queued": 0, "max_concurrency": 64},
        ]});
        let providers = providers_from_json(&answer).expect("parses");
        assert_eq!(providers[0].health, Health::Healthy);
        assert_eq!((providers[0].in_flight, providers[0].queued), (3, 1));
        assert_eq!(
            providers[1].health,
            Health::Cooling(Duration::from_millis(1500))
        );
        assert!(providers_from_json(&json!({})).is_err());
    }

    #[test]
    fn sessions_come_oldest_first_with_their_caller() {
        let answer = json!({"sessions": [
            {"id": "young", "provider": "p", "model": "m", "phase": "QUEUED",
             "queue_position": 2, "age_ms": 10,
             "client": {"uid": 1000, "pid": 7, "process": "curl"}},
            {"id": "old", "provider": "p", "model": "m", "phase": "FIRST_TOKEN",
             "age_ms": 9000, "client": {"uid": 1000, "pid": 8}},
        ]});
        let sessions = sessions_from_json(&answer).expect("parses");
        assert_eq!(sessions[0].id, "old");
        assert_eq!(sessions[0].client, "1000:8");
        assert_eq!(sessions[1].client, "curl(7)");
        assert_eq!(sessions[1].queue_position, Some(2));
        assert_eq!(sessions[1].route, "p/m");
    }
}
