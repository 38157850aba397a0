//! Request routing and per-request behavior of the fake provider.
//!
//! Called by the fake provider's connection tasks (`fake_provider.rs`) once
//! per HTTP request; picks a [`Behavior`] (header, then model, then default)
//! and a [`UsageShape`] (header, then default), records the request, settles the counted `…fail-<n>-…` behaviors, and
//! builds the response with `responses.rs` (or, for `refuse`, has the
//! connection dropped through the connection's closer).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;
use tokio::sync::Notify;

use crate::anthropic::Dialect;
use crate::behavior::Behavior;
use crate::big_event;
use crate::fake_provider::{SeenRequest, Shared};
use crate::responses::{self, DEFAULT_CHUNK_INTERVAL, FakeBody, ReplyMeta, SseScript, StreamEnd};
use crate::stats::RequestGuard;
use crate::usage::{USAGE_HEADER, UsagePlan, UsageShape};

/// The request header that overrides the behavior named by the model.
pub const BEHAVIOR_HEADER: &str = "x-fake-behavior";

/// Content chunks sent when an instant/delay/slowheaders reply is streamed.
const DEFAULT_STREAM_CHUNKS: usize = 3;

/// Routes one request: chat completions, Anthropic messages (and their
/// token count), embeddings, the model list, or a 404. `closer` drops the
/// request's connection when notified.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    closer: Arc<Notify>,
    req: Request<Incoming>,
) -> Result<Response<FakeBody>, Infallible> {
    let path = req.uri().path();
    let dialect = Dialect::of_path(path).filter(|_| req.method() == Method::POST);
    let resp = if let Some(dialect) = dialect {
        chat(shared, &closer, req, dialect).await
    } else if path.ends_with("/models") && req.method() == Method::GET {
        responses::models()
    } else {
        let message = format!("fake provider: no route for {} {path}", req.method());
        responses::client_error(StatusCode::NOT_FOUND, &message)
    };
    Ok(resp)
}

/// Handles one request in `dialect` end to end (every behavior applies to
/// every dialect; streams only where the dialect has them).
async fn chat(
    shared: Arc<Shared>,
    closer: &Notify,
    req: Request<Incoming>,
    dialect: Dialect,
) -> Response<FakeBody> {
    let at = Instant::now();
    let mut guard = RequestGuard::start(&shared.stats);
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        // The client went away mid-body; nobody reads this response and the
        // guard, dropped incomplete, counts the request as abandoned.
        Err(_) => return responses::client_error(StatusCode::BAD_REQUEST, "request body failed"),
    };
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.record(|| seen_request(&parts, &json, at));
    let model = json.get("model").and_then(Value::as_str).unwrap_or("");
    let chosen =
        choose(&shared, &parts, model).and_then(|b| Ok((b, usage_shape(&shared, &parts)?)));
    let (behavior, shape) = match chosen {
        Ok(chosen) => chosen,
        Err(message) => {
            guard.complete();
            return responses::client_error(StatusCode::BAD_REQUEST, &message);
        }
    };
    let behavior = settle(&shared, behavior, model);
    let streams = matches!(dialect, Dialect::Chat | Dialect::Messages);
    let wants_stream = streams && json.get("stream").and_then(Value::as_bool) == Some(true);
    let usage = UsagePlan::new(shape, &json, Arc::clone(&shared.usage));
    let meta = ReplyMeta::new(shared.next_seq(), model, usage, dialect);
    respond(behavior, wants_stream, meta, &json, guard, closer).await
}

/// Counts a request of a counted (`…fail-<n>-…`) behavior and turns it into
/// [`Behavior::Instant`] once its first n requests for `model` have failed.
fn settle(shared: &Shared, behavior: Behavior, model: &str) -> Behavior {
    match behavior.fail_times() {
        Some(times) if shared.attempt(model, behavior) >= times => Behavior::Instant,
        _ => behavior,
    }
}

/// Picks the behavior: the override header if present, else the model name,
/// else the provider's current default. An unparseable header is an error
/// (it is always a typo in a test).
fn choose(shared: &Shared, parts: &Parts, model: &str) -> Result<Behavior, String> {
    if let Some(value) = parts.headers.get(BEHAVIOR_HEADER) {
        let text = value
            .to_str()
            .map_err(|_| format!("{BEHAVIOR_HEADER} is not ASCII"))?;
        return text.parse().map_err(|e| format!("fake provider: {e}"));
    }
    Ok(Behavior::from_model(model).unwrap_or_else(|| shared.default_behavior()))
}

/// Picks where usage goes: the [`USAGE_HEADER`] if present, else the
/// provider's current default. An unknown value is an error, as for the
/// behavior header.
fn usage_shape(shared: &Shared, parts: &Parts) -> Result<UsageShape, String> {
    let Some(value) = parts.headers.get(USAGE_HEADER) else {
        return Ok(shared.default_usage_shape());
    };
    let text = value.to_str().unwrap_or_default();
    UsageShape::from_keyword(text).ok_or_else(|| {
        format!("fake provider: {USAGE_HEADER} must be glm, kimi, openai or none, not {text:?}")
    })
}

/// What the provider remembers of a request for [`crate::FakeProvider::requests`].
fn seen_request(parts: &Parts, json: &Value, at: Instant) -> SeenRequest {
    let authorization = parts
        .headers
        .get(hyper::header::AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    SeenRequest {
        path: parts.uri.path().to_owned(),
        authorization,
        headers: parts.headers.clone(),
        body: json.clone(),
        at,
    }
}

/// Carries out the settled `behavior`; `guard` is completed once the full
/// response exists, or handed to the streaming body, or held forever by
/// `hang`. `refuse` notifies `closer` and never returns.
async fn respond(
    behavior: Behavior,
    wants_stream: bool,
    meta: ReplyMeta,
    request: &Value,
    mut guard: RequestGuard,
    closer: &Notify,
) -> Response<FakeBody> {
    let script = |chunks, interval, end| SseScript {
        chunks,
        interval,
        end,
    };
    let default_stream = script(
        DEFAULT_STREAM_CHUNKS,
        DEFAULT_CHUNK_INTERVAL,
        StreamEnd::Done,
    );
    match behavior {
        Behavior::Instant | Behavior::Delay(_) => {
            if let Behavior::Delay(delay) = behavior {
                tokio::time::sleep(delay).await;
            }
            if wants_stream {
                return responses::sse(default_stream, meta, guard);
            }
            guard.complete();
            responses::completion(&meta, request)
        }
        Behavior::Hang => {
            let _held = guard;
            std::future::pending().await
        }
        Behavior::Status(code) => {
            guard.complete();
            responses::status_error(code, meta.dialect)
        }
        Behavior::Broken => {
            guard.complete();
            responses::broken()
        }
        Behavior::Stream { chunks, interval } => {
            responses::sse(script(chunks, interval, StreamEnd::Done), meta, guard)
        }
        Behavior::Stall(n) => responses::sse(
            script(n, DEFAULT_CHUNK_INTERVAL, StreamEnd::Stall),
            meta,
            guard,
        ),
        Behavior::LateEnd(after) => responses::sse(
            script(3, DEFAULT_CHUNK_INTERVAL, StreamEnd::LateEnd(after)),
            meta,
            guard,
        ),
        Behavior::Cut(n) => responses::sse(
            script(n, DEFAULT_CHUNK_INTERVAL, StreamEnd::Cut),
            meta,
            guard,
        ),
        Behavior::BigEvent { bytes, piece } => big_event::sse(bytes, piece, &meta, guard),
        Behavior::SlowHeaders(wait) => {
            tokio::time::sleep(wait).await;
            responses::sse(default_stream, meta, guard)
        }
        Behavior::Fail {
            status,
            retry_after,
            ..
        } => {
            guard.complete();
            responses::fail_error(status, retry_after, meta.dialect)
        }
        Behavior::Glm(code) | Behavior::GlmFail { code, .. } => {
            guard.complete();
            responses::glm_error(code)
        }
        Behavior::Kimi(kind) | Behavior::KimiFail { kind, .. } => {
            guard.complete();
            responses::kimi_error(kind)
        }
        Behavior::Refuse => {
            guard.complete();
            drop(guard);
            closer.notify_one();
            // The connection, and this future with it, is about to be dropped.
            std::future::pending().await
        }
    }
}
