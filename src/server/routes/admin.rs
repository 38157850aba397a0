//! Admin endpoints on the same socket: list, inspect and cancel live
//! sessions, and begin a drain. Answers carry ids, routes, phases and timings
//! — never prompts or keys (the actors never record them).

use actix_web::{HttpResponse, web};
use serde_json::{Value, json};
use switchboard_actors::GatewayError;
use switchboard_actors::ids::SessionId;
use switchboard_actors::meta::{SessionMeta, duration_ms};
use switchboard_actors::shutdown::{Drain, DrainReason};
use switchboard_actors::store::Stored;
use switchboard_actors::supervisor::{CancelSession, GetSession, ListProviders, ListSessions};

use super::records::{self, rfc3339};
use crate::server::AppState;
use crate::server::error;

/// `GET /admin/sessions`: live sessions, oldest first.
pub async fn list(state: web::Data<AppState>) -> HttpResponse {
    match state.actors.supervisor.send(ListSessions).await {
        Ok(sessions) => {
            let sessions: Vec<Value> = sessions
                .iter()
                .map(|view| {
                    let mut value = summary(&view.meta);
                    value["queue_position"] = json!(view.position);
                    value
                })
                .collect();
            HttpResponse::Ok().json(json!({ "sessions": sessions }))
        }
        Err(_) => unavailable(),
    }
}

/// `GET /admin/sessions/{id}`: one session with its phases, from memory
/// while it is live or recent, else from the history file.
pub async fn show(path: web::Path<String>, state: web::Data<AppState>) -> HttpResponse {
    let Some(id) = SessionId::parse(&path) else {
        return not_found(&path);
    };
    match state.actors.supervisor.send(GetSession(id)).await {
        Ok(Some((session, live))) => {
            let age = live.then(|| age_ms(session.received_at));
            HttpResponse::Ok().json(records::detail(&session, live, age))
        }
        Ok(None) => stored(id, &path, &state).await,
        Err(_) => unavailable(),
    }
}

/// A session that has left memory, from the history file.
async fn stored(id: SessionId, path: &str, state: &AppState) -> HttpResponse {
    let Some(store) = &state.actors.history else {
        return not_found(path);
    };
    match store.send(Stored(id)).await {
        Ok(Ok(Some(session))) => HttpResponse::Ok().json(records::detail(&session, false, None)),
        Ok(Ok(None)) => not_found(path),
        Ok(Err(store_error)) => error::response(&store_error.into(), None),
        Err(_) => unavailable(),
    }
}

/// `DELETE /admin/sessions/{id}`: cancel a live session.
pub async fn cancel(path: web::Path<String>, state: web::Data<AppState>) -> HttpResponse {
    let Some(id) = SessionId::parse(&path) else {
        return not_found(&path);
    };
    match state.actors.supervisor.send(CancelSession(id)).await {
        Ok(true) => HttpResponse::Accepted().json(json!({ "id": id, "cancelled": true })),
        Ok(false) => not_found(&path),
        Err(_) => unavailable(),
    }
}

/// `GET /admin/providers`: each provider's load and health.
pub async fn providers(state: web::Data<AppState>) -> HttpResponse {
    let Ok(providers) = state.actors.supervisor.send(ListProviders).await else {
        return unavailable();
    };
    let providers: Vec<Value> = providers
        .iter()
        .map(|view| {
            let health = view.health.as_ref();
            let errors: Vec<Value> = health
                .map(|h| {
                    h.recent_errors
                        .iter()
                        .map(|(at, detail)| json!({"at": rfc3339(*at), "detail": detail}))
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "name": &*view.name,
                "healthy": health.map(|h| h.healthy),
                "cooldown_left_ms": health.and_then(|h| h.cooldown_left).map(duration_ms),
                "consecutive_failures": health.map(|h| h.consecutive_failures),
                "in_flight": view.in_flight,
                "queued": view.queued,
                "max_concurrency": view.max_concurrency,
                "attempts_succeeded": health.map(|h| h.successes),
                "attempts_failed": health.map(|h| h.failures),
                "recent_errors": errors,
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({ "providers": providers }))
}

/// `POST /admin/drain`: begin a graceful shutdown.
pub async fn drain(state: web::Data<AppState>) -> HttpResponse {
    match state
        .actors
        .shutdown
        .send(Drain(DrainReason::Operator))
        .await
    {
        Ok(began) => HttpResponse::Accepted().json(json!({ "draining": true, "began": began })),
        Err(_) => unavailable(),
    }
}

fn summary(meta: &SessionMeta) -> Value {
    let route = meta.route();
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
        "phase": meta.phase.get(),
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

fn not_found(id: &str) -> HttpResponse {
    let shown: String = id.chars().take(64).collect();
    error::response(&GatewayError::SessionNotFound(shown), None)
}

fn unavailable() -> HttpResponse {
    error::response(
        &GatewayError::Internal("the actor system is not running".into()),
        None,
    )
}
