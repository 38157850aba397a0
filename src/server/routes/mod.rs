//! The routes, and the OpenAI-shaped answers for paths and methods that are
//! not routes.

mod admin;
mod chat;
mod events;
mod health;
mod history;
mod metrics;
pub mod models;
mod query;
mod records;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use switchboard_actors::GatewayError;

use crate::server::error;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/chat/completions")
            .post(chat::chat_completions)
            .to(method_not_allowed),
    )
    .service(
        web::resource("/v1/models")
            .get(models::list)
            .to(method_not_allowed),
    )
    .service(
        web::resource("/admin/sessions")
            .get(admin::list)
            .to(method_not_allowed),
    )
    .service(
        web::resource("/admin/sessions/{id}")
            .get(admin::show)
            .delete(admin::cancel)
            .to(method_not_allowed),
    )
    .service(
        web::resource("/admin/providers")
            .get(admin::providers)
            .to(method_not_allowed),
    )
    .service(
        web::resource("/admin/history")
            .get(history::history)
            .to(method_not_allowed),
    )
    .service(
        web::resource("/admin/usage")
            .get(history::usage)
            .to(method_not_allowed),
    )
    .service(
        web::resource("/admin/events")
            .get(events::events)
            .to(method_not_allowed),
    )
    .service(
        web::resource("/metrics")
            .get(metrics::scrape)
            .to(method_not_allowed),
    )
    .service(
        web::resource("/admin/drain")
            .post(admin::drain)
            .to(method_not_allowed),
    )
    .service(
        web::resource("/healthz")
            .get(health::healthz)
            .to(method_not_allowed),
    )
    .service(
        web::resource("/readyz")
            .get(health::readyz)
            .to(method_not_allowed),
    )
    .default_service(web::to(not_found));
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    let message = format!("no route for {} {}", req.method(), req.path());
    let error = GatewayError::bad_request(message, None);
    error::shaped(StatusCode::NOT_FOUND, &error, None)
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let message = format!("{} is not allowed on {}", req.method(), req.path());
    let error = GatewayError::bad_request(message, None);
    error::shaped(StatusCode::METHOD_NOT_ALLOWED, &error, None)
}
