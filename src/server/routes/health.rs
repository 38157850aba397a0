//! `GET /healthz` (the daemon answers) and `GET /readyz` (it takes new work:
//! 503 while draining, so a supervisor or load balancer stops sending).

use actix_web::{HttpResponse, web};
use serde_json::json;
use switchboard_actors::supervisor::GetStatus;

use crate::server::AppState;

/// Liveness, with the live session count.
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    match state.actors.supervisor.send(GetStatus).await {
        Ok(status) => HttpResponse::Ok().json(json!({
            "status": if status.draining { "draining" } else { "ok" },
            "live_sessions": status.live,
            "queued_sessions": status.queued,
        })),
        Err(_) => HttpResponse::ServiceUnavailable().json(json!({ "status": "stopping" })),
    }
}

/// Readiness: 200 when taking new work, 503 when draining.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.actors.supervisor.send(GetStatus).await {
        Ok(status) if !status.draining => HttpResponse::Ok().json(json!({ "ready": true })),
        _ => HttpResponse::ServiceUnavailable()
            .insert_header(("retry-after", "1"))
            .json(json!({ "ready": false })),
    }
}
