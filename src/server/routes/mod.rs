//! The routes: a request's method and path to its handler, and the
//! OpenAI-shaped answers for paths and methods that are not routes
//! (Anthropic-shaped under `/v1/messages`).

mod admin;
mod chat;
mod events;
pub(crate) mod health;
mod history;
mod metrics;
pub mod models;
mod query;
mod records;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use switchboard_actors::GatewayError;
use switchboard_actors::ids::RequestId;
use switchboard_actors::meta::{Priority, Received};
use switchboard_actors::supervisor::Refused;
use switchboard_actors::wire::Wire;

use crate::server::error;
use crate::server::http::Answer;
use crate::server::ids::Ids;
use crate::server::peers::{self, Access};
use crate::server::{Caller, Ctx};

/// The longest path repeated back in a 404.
const MAX_PATH_SHOWN: usize = 128;

/// Answers one request.
pub async fn handle(req: Request<Incoming>, cx: &Ctx, caller: &Caller) -> Answer {
    match caller.access {
        Access::Full => {}
        Access::Loopback if req.headers().contains_key(hyper::header::ORIGIN) => {
            return refuse(&req, cx, caller, peers::from_a_browser());
        }
        Access::Loopback => {}
        Access::MetricsOnly if req.uri().path() == "/metrics" => {}
        Access::MetricsOnly => return not_found(&req),
        Access::Refused => return refuse(&req, cx, caller, peers::forbidden()),
    }
    let path = req.uri().path();
    if let Some(id) = path.strip_prefix("/admin/sessions/") {
        let id = id.to_owned();
        return match *req.method() {
            Method::GET => admin::show(&id, cx).await,
            Method::DELETE => admin::cancel(&id, cx).await,
            _ => not_allowed(&req),
        };
    }
    let get = req.method() == Method::GET;
    let post = req.method() == Method::POST;
    if let Some(wire) = Wire::from_path(path) {
        return match post {
            true => chat::proxy(req, cx, caller, wire).await,
            false => not_allowed(&req),
        };
    }
    match path {
        "/v1/models" if get => models::list(cx),
        "/admin/sessions" if get => admin::list(cx).await,
        "/admin/providers" if get => admin::providers(cx).await,
        "/admin/drain" if post => admin::drain(cx).await,
        "/admin/reload" if post => admin::reload(cx).await,
        "/admin/history" if get => history::history(&req, cx).await,
        "/admin/usage" if get => history::usage(&req, cx).await,
        "/admin/events" if get => events::events(&req, cx).await,
        "/metrics" if get => metrics::scrape(cx).await,
        "/healthz" if get => health::healthz(cx).await,
        "/readyz" if get => health::readyz(cx).await,
        "/v1/models" | "/admin/sessions" | "/admin/providers" | "/admin/drain"
        | "/admin/reload" | "/admin/history" | "/admin/usage" | "/admin/events" | "/metrics"
        | "/healthz" | "/readyz" => not_allowed(&req),
        _ => not_found(&req),
    }
}

fn shown(path: &str) -> String {
    path.chars().take(MAX_PATH_SHOWN).collect()
}

/// The wire whose error shape a path's errors take: Anthropic's for its
/// routes and anything under them, OpenAI's for every other path.
fn wire_of(path: &str) -> Wire {
    Wire::from_path(path).unwrap_or(if path.starts_with("/v1/messages") {
        Wire::Messages
    } else {
        Wire::Chat
    })
}

fn not_found(req: &Request<Incoming>) -> Answer {
    let error = GatewayError::NoRoute {
        method: req.method().to_string(),
        path: shown(req.uri().path()),
    };
    error::response_on(wire_of(req.uri().path()), &error, None)
}

fn not_allowed(req: &Request<Incoming>) -> Answer {
    let error = GatewayError::MethodNotAllowed {
        method: req.method().to_string(),
        path: shown(req.uri().path()),
    };
    let wire = wire_of(req.uri().path());
    error::shaped(wire, StatusCode::METHOD_NOT_ALLOWED, &error, None)
}

/// The 403 for a refused peer or request. An API request is recorded as
/// REJECTED, so history and metrics show who was turned away.
fn refuse(req: &Request<Incoming>, cx: &Ctx, caller: &Caller, error: GatewayError) -> Answer {
    let wire = wire_of(req.uri().path());
    if !req.uri().path().starts_with("/v1/") {
        return error::response(&error, None);
    }
    let header = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok());
    let request_id = RequestId::from_client_or_generate(header);
    let received = Received::now(request_id, caller.peer.clone(), Priority::default(), wire);
    let ids = Ids::of(&received);
    let answer = error::response_on(wire, &error, Some(&ids));
    cx.actors
        .local
        .supervisor
        .do_send(Refused { received, error });
    answer
}
