//! Admin endpoints on the same socket: list, inspect and cancel live
//! sessions (across every shard), see providers, and begin a drain. Answers
//! carry ids, routes, phases and timings — never prompts or keys (the
//! actors never record them).

use std::time::Instant;

use futures_util::future::join_all;
use hyper::StatusCode;
use serde_json::{Value, json};
use switchboard_actors::GatewayError;
use switchboard_actors::ids::SessionId;
use switchboard_actors::meta::{Received, duration_ms};
use switchboard_actors::phase::Phase;
use switchboard_actors::shutdown::{Drain, DrainReason};
use switchboard_actors::store::Stored;
use switchboard_actors::supervisor::{
    CancelSession, GetSession, ListProviders, ListSessions, SessionView,
};

use super::records::{self, rfc3339};
use crate::server::Ctx;
use crate::server::error;
use crate::server::http::{Answer, json, ok};

/// `GET /admin/sessions`: live sessions of every shard, oldest first, each
/// with the shard serving it (its index among `server.workers`), so an
/// operator or a test can see how connections spread over the shards.
pub async fn list(cx: &Ctx) -> Answer {
    let asks = cx
        .actors
        .shards
        .iter()
        .map(|s| s.supervisor.send(ListSessions));
    let mut views = Vec::new();
    for (shard, answer) in join_all(asks).await.into_iter().enumerate() {
        match answer {
            Ok(listed) => views.extend(listed.into_iter().map(|view| (shard, view))),
            Err(_) => return unavailable(),
        }
    }
    let mut sessions: Vec<(Instant, Value)> = views
        .iter()
        .map(|(shard, view)| {
            let mut value = summary(view);
            value["queue_position"] = json!(view.position);
            value["shard"] = json!(shard);
            (view.meta.received_at, value)
        })
        .collect();
    for (shard, arrivals) in cx.app.arrivals.iter().enumerate() {
        sessions.extend(arrivals.list().into_iter().map(|a| {
            let mut value = arriving(&a.received);
            value["shard"] = json!(shard);
            (a.received.at, value)
        }));
    }
    sessions.sort_by_key(|(at, _)| *at);
    let sessions: Vec<Value> = sessions.into_iter().map(|(_, value)| value).collect();
    ok(&json!({ "sessions": sessions }))
}

/// A request whose body is still arriving: not routed yet, so no model.
fn arriving(received: &Received) -> Value {
    json!({
        "id": received.session_id,
        "request_id": received.request_id,
        "requested_model": null,
        "provider": null,
        "model": null,
        "phase": Phase::Received,
        "receiving_body": true,
        "priority": received.priority,
        "age_ms": duration_ms(received.at.elapsed()),
        "stream": null,
        "client": received.peer,
        "metadata": null,
        "queue_position": null,
    })
}

/// `GET /admin/sessions/{id}`: one session with its phases, from memory
/// while it is live or recent (on whichever shard), else from the history
/// file.
pub async fn show(id: &str, cx: &Ctx) -> Answer {
    let Some(session) = SessionId::parse(id) else {
        return not_found(id);
    };
    let arrivals = cx.app.arrivals.iter().flat_map(|shard| shard.list());
    if let Some(arrival) = arrivals
        .into_iter()
        .find(|a| a.received.session_id == session)
    {
        let mut value = arriving(&arrival.received);
        value["live"] = json!(true);
        return ok(&value);
    }
    let asks = cx
        .actors
        .shards
        .iter()
        .map(|s| s.supervisor.send(GetSession(session)));
    for answer in join_all(asks).await {
        match answer {
            Ok(Some((record, live))) => {
                let age = live.then(|| age_ms(record.received_at));
                return ok(&records::detail(&record, live, age));
            }
            Ok(None) => {}
            Err(_) => return unavailable(),
        }
    }
    stored(session, id, cx).await
}

/// A session that has left memory, from the history file.
async fn stored(session: SessionId, id: &str, cx: &Ctx) -> Answer {
    let Some(store) = &cx.actors.common.history else {
        return not_found(id);
    };
    match store.send(Stored(session)).await {
        Ok(Ok(Some(record))) => ok(&records::detail(&record, false, None)),
        Ok(Ok(None)) => not_found(id),
        Ok(Err(store_error)) => error::response(&store_error.into(), None),
        Err(_) => unavailable(),
    }
}

/// `DELETE /admin/sessions/{id}`: cancel a live session (on whichever shard).
pub async fn cancel(id: &str, cx: &Ctx) -> Answer {
    let Some(session) = SessionId::parse(id) else {
        return not_found(id);
    };
    let arriving = cx.app.arrivals.iter().any(|shard| shard.cancel(session));
    let asks = cx
        .actors
        .shards
        .iter()
        .map(|s| s.supervisor.send(CancelSession(session)));
    let answers = join_all(asks).await;
    if arriving || answers.iter().any(|a| matches!(a, Ok(true))) {
        return json(
            StatusCode::ACCEPTED,
            &json!({ "id": session, "cancelled": true }),
        );
    }
    match answers.iter().all(Result::is_ok) {
        true => not_found(id),
        false => unavailable(),
    }
}

/// `GET /admin/providers`: each provider's load (all shards) and health.
pub async fn providers(cx: &Ctx) -> Answer {
    let Ok(providers) = cx.actors.local.supervisor.send(ListProviders).await else {
        return unavailable();
    };
    let providers: Vec<Value> = providers
        .iter()
        .map(|view| {
            let health = &view.health;
            let errors: Vec<Value> = health
                .recent_errors
                .iter()
                .map(|(at, detail)| json!({"at": rfc3339(*at), "detail": detail}))
                .collect();
            json!({
                "name": &*view.name,
                "healthy": health.healthy,
                "cooldown_left_ms": health.cooldown_left.map(duration_ms),
                "consecutive_failures": health.consecutive_failures,
                "in_flight": view.in_flight,
                "queued": view.queued,
                "max_concurrency": view.max_concurrency,
                "attempts_succeeded": health.successes,
                "attempts_failed": health.failures,
                "recent_errors": errors,
            })
        })
        .collect();
    ok(&json!({ "providers": providers }))
}

/// `POST /admin/drain`: begin a graceful shutdown.
pub async fn drain(cx: &Ctx) -> Answer {
    match cx.actors.shutdown.send(Drain(DrainReason::Operator)).await {
        Ok(began) => json(
            StatusCode::ACCEPTED,
            &json!({ "draining": true, "began": began }),
        ),
        Err(_) => unavailable(),
    }
}

/// `POST /admin/reload`: re-reads the settings file and the environment;
/// 200 with what changed (and what needs a restart), or 400 with the
/// loader's message naming the key, the old settings still in force.
pub async fn reload(cx: &Ctx) -> Answer {
    match cx.app.reloader.reload().await {
        Ok(report) => ok(&json!(report)),
        Err(message) => {
            error::response(&GatewayError::bad_request(message, Some("settings")), None)
        }
    }
}

fn summary(view: &SessionView) -> Value {
    let (meta, route) = (&view.meta, &view.route);
    let metadata: Option<Value> = meta
        .metadata
        .as_deref()
        .and_then(|raw| serde_json::from_str(raw).ok());
    json!({
        "id": meta.id,
        "request_id": meta.request_id,
        "requested_model": &*meta.requested,
        "provider": &*route.provider,
        "model": &*route.model,
        "phase": view.phase,
        "priority": meta.priority,
        "age_ms": meta.age_ms(),
        "stream": meta.stream,
        "client": meta.peer,
        "metadata": metadata,
    })
}

/// Milliseconds since `received` (a live session's age).
fn age_ms(received: std::time::SystemTime) -> u64 {
    received.elapsed().map_or(0, duration_ms)
}

fn not_found(id: &str) -> Answer {
    let shown: String = id.chars().take(64).collect();
    error::response(&GatewayError::SessionNotFound(shown), None)
}

fn unavailable() -> Answer {
    error::response(
        &GatewayError::Internal("the actor system is not running".into()),
        None,
    )
}
