//! `GET /metrics`: the registry as OpenMetrics text, on the socket and (with
//! `server.metrics_listen`) on a loopback TCP port for Prometheus. The load
//! gauges are read from the supervisor as the scrape is made, so they are
//! exact at that moment and cost nothing between scrapes.

use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use switchboard_actors::GatewayError;
use switchboard_actors::supervisor::ListProviders;

use crate::server::Ctx;
use crate::server::error;
use crate::server::http::{Answer, Body};

/// The OpenMetrics text format's content type, which Prometheus asks for
/// and reads.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /metrics`.
pub async fn scrape(cx: &Ctx) -> Answer {
    let metrics = &cx.actors.common.metrics;
    match cx.actors.local.supervisor.send(ListProviders).await {
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
    let mut answer = Response::new(Body::Full(Some(metrics.encode().into())));
    *answer.status_mut() = StatusCode::OK;
    answer
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
    answer
}
