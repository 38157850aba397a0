//! The provider routes — `POST /v1/chat/completions`, `/v1/messages`,
//! `/v1/messages/count_tokens` and `/v1/embeddings`: one HTTP request
//! becomes one `Submit` on its [`Wire`], and the session's answer becomes
//! the HTTP answer — JSON, or server-sent events relayed item by item —
//! with errors in the wire's own shape (OpenAI's or Anthropic's).
//!
//! The handler holds the [`ClientGuard`] while it waits, and a streamed body
//! holds it while it streams: when the connection goes away hyper drops them
//! (it reads on while it waits for an answer, so a client's EOF ends the
//! connection at once), and the session cancels its upstream call.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures_util::FutureExt;

use hyper::body::Incoming;
use hyper::header::{CONNECTION, HeaderValue};
use hyper::{Request, StatusCode};
use switchboard_actors::answer::{Answer as SessionAnswer, client_link};
use switchboard_actors::error::Deadline;
use switchboard_actors::ids::RequestId;
use switchboard_actors::meta::{Priority, Received, duration_ms};
use switchboard_actors::request::{ChatRequest, Forwarded};
use switchboard_actors::supervisor::{Refused, Submit};
use switchboard_actors::wire::Wire;
use switchboard_actors::{CancelReason, GatewayError};
use tokio::sync::oneshot;

use crate::server::body::read_body;
use crate::server::error;
use crate::server::http::{Answer, Body, SseBody, event_stream, json_bytes};
use crate::server::ids::Ids;
use crate::server::{Caller, Ctx};

/// The caller's headers an Anthropic request passes upstream as they are.
/// Its `x-api-key` and `Authorization` are never among them.
const ANTHROPIC_FORWARDED: [&str; 2] = ["anthropic-version", "anthropic-beta"];

/// A provider endpoint on `wire`. While the daemon drains, each answer
/// closes its connection, so clients stop reusing connections that are about
/// to go away and the drain ends with none left to close.
pub async fn proxy(req: Request<Incoming>, cx: &Ctx, caller: &Caller, wire: Wire) -> Answer {
    let mut answer = answer(req, cx, caller, wire).await;
    if cx.actors.common.draining.load(Ordering::Relaxed) {
        answer
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    answer
}

/// The request as it arrived: ids, caller, class, wire.
fn received(
    req: &Request<Incoming>,
    caller: &Caller,
    wire: Wire,
) -> (Received, Option<GatewayError>) {
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let request_id = RequestId::from_client_or_generate(header("x-request-id"));
    let (class, bad) = match req.headers().get("x-priority") {
        None => (Priority::default(), None),
        Some(value) => match value.to_str().ok().and_then(Priority::parse) {
            Some(class) => (class, None),
            None => (Priority::default(), Some(bad_priority(value.as_bytes()))),
        },
    };
    (
        Received::now(request_id, caller.peer.clone(), class, wire),
        bad,
    )
}

/// The caller's headers that go upstream on `wire`.
fn forwarded(req: &Request<Incoming>, wire: Wire) -> Forwarded {
    if !wire.is_anthropic() {
        return Forwarded::new();
    }
    ANTHROPIC_FORWARDED
        .iter()
        .filter_map(|name| {
            let value = req.headers().get(*name)?;
            Some((hyper::header::HeaderName::from_static(name), value.clone()))
        })
        .collect()
}

async fn answer(req: Request<Incoming>, cx: &Ctx, caller: &Caller, wire: Wire) -> Answer {
    let (received, bad_priority) = received(&req, caller, wire);
    let ids = Ids::of(&received);
    let forwarded = forwarded(&req, wire);
    let request = match bad_priority {
        Some(error) => Err(error),
        None => receive(req, cx, &received).await.and_then(|body| {
            ChatRequest::parse(wire, body, cx.app.metadata_max_bytes)
                .map(|request| request.forwarding(forwarded))
        }),
    };
    let request = match request {
        Ok(request) => request,
        Err(error) => {
            let answer = error::response_on(wire, &error, Some(&ids));
            cx.actors
                .local
                .supervisor
                .do_send(Refused { received, error });
            return answer;
        }
    };
    let (reply, session_answer) = oneshot::channel();
    let (guard, gone) = client_link();
    cx.actors.local.supervisor.do_send(Submit {
        received,
        request,
        reply,
        gone,
    });
    let mut answer = match session_answer.await {
        Ok(Ok(SessionAnswer::Complete(body))) => json_bytes(StatusCode::OK, body),
        Ok(Ok(SessionAnswer::Stream(items))) => {
            event_stream(Body::Sse(SseBody::new(items, guard, wire)))
        }
        Ok(Err(error)) => return error::response_on(wire, &error, Some(&ids)),
        Err(_) => {
            let error = GatewayError::Internal("the session ended without an answer".into());
            return error::response_on(wire, &error, Some(&ids));
        }
    };
    ids.apply(answer.headers_mut());
    answer
}

/// The request's body, within `server.body_timeout_ms` of its head. A body
/// that is all there at the first look (the usual case: it came with the
/// head) is taken without further ado; one still arriving is listed as an
/// arrival meanwhile, so operators see it and can cancel it.
async fn receive(
    req: Request<Incoming>,
    cx: &Ctx,
    received: &Received,
) -> Result<Bytes, GatewayError> {
    let read = read_body(req, cx.app.max_body_bytes);
    tokio::pin!(read);
    if let Some(body) = (&mut read).now_or_never() {
        return body;
    }
    let reading = cx.arrivals.reading(received);
    let timeout = cx.app.timeouts.body;
    let deadline = tokio::time::Instant::from_std(received.at + timeout);
    tokio::select! {
        biased;
        body = &mut read => body,
        () = reading.cancelled.notified() => Err(GatewayError::Cancelled(CancelReason::Operator)),
        () = tokio::time::sleep_until(deadline) => Err(GatewayError::Timeout {
            which: Deadline::Body,
            timeout_ms: duration_ms(timeout),
        }),
    }
}

fn bad_priority(text: &[u8]) -> GatewayError {
    let shown: String = String::from_utf8_lossy(text).chars().take(32).collect();
    GatewayError::bad_request(
        format!("x-priority must be high, normal or low, not `{shown}`"),
        Some("x-priority"),
    )
}
