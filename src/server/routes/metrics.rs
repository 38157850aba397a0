//! `GET /metrics`: the registry as OpenMetrics text, on the socket and (with
//! `server.metrics_listen`) on a loopback TCP port for Prometheus. The load
//! gauges are read from the supervisor as the scrape is made, so they are
//! exact at that moment and cost nothing between scrapes.

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpResponse, web};
use switchboard_actors::GatewayError;
use switchboard_actors::supervisor::ListProviders;

use crate::server::AppState;
use crate::server::error;

/// The OpenMetrics text format's content type, which Prometheus asks for
/// and reads.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /metrics`.
pub async fn scrape(state: web::Data<AppState>) -> HttpResponse {
    let metrics = &state.actors.metrics;
    match state.actors.supervisor.send(ListProviders).await {
        Ok(providers) => {
            for provider in providers {
                metrics.set_load(&provider.name, provider.in_flight, provider.queued);
            }
        }
        Err(_) => {
            let error = GatewayError::Internal("the actor system is not running".into());
            return error::response(&error, None);
        }
    }
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, OPENMETRICS))
        .body(metrics.encode())
}
