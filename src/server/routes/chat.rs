//! `POST /v1/chat/completions`: one HTTP request becomes one `Submit`, and the
//! session's answer becomes the HTTP answer — JSON, or server-sent events
//! relayed item by item.
//!
//! The handler holds the [`ClientGuard`] while it waits, and a streamed body
//! holds it while it streams: when the connection goes away actix drops them
//! (the server runs with `h1_allow_half_closed(false)`, so a client's EOF ends
//! the connection at once), and the session cancels its upstream call.

use std::convert::Infallible;
use std::sync::atomic::Ordering;

use actix_web::http::ConnectionType;

use actix_web::http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt, stream};
use switchboard_actors::GatewayError;
use switchboard_actors::answer::{Answer, ClientGuard, StreamItem, client_link};
use switchboard_actors::ids::RequestId;
use switchboard_actors::meta::{Peer, Priority, Received};
use switchboard_actors::request::ChatRequest;
use switchboard_actors::supervisor::{Refused, Submit};
use tokio::sync::{mpsc, oneshot};

use crate::server::AppState;
use crate::server::error;
use crate::server::ids::Ids;

/// The chat-completions endpoint. While the daemon drains, each answer
/// closes its connection, so clients stop reusing connections that are about
/// to go away and the drain ends with none left to close.
pub async fn chat_completions(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let mut response = answer(req, payload, &state).await;
    if state.actors.draining.load(Ordering::Relaxed) {
        response
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    response
}

async fn answer(req: HttpRequest, payload: web::Payload, state: &AppState) -> HttpResponse {
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let request_id = RequestId::from_client_or_generate(header("x-request-id"));
    let priority = header("x-priority").map(|text| Priority::parse(text).ok_or(text));
    let peer = req.conn_data::<Peer>().cloned();
    let class = priority.and_then(Result::ok).unwrap_or_default();
    let received = Received::now(request_id, peer, class);
    let ids = Ids::of(&received);
    let request = match (
        priority,
        read_body(&req, payload, state.max_body_bytes).await,
    ) {
        (Some(Err(text)), _) => Err(bad_priority(text)),
        (_, Ok(body)) => ChatRequest::parse(body, state.metadata_max_bytes),
        (_, Err(error)) => Err(error),
    };
    let request = match request {
        Ok(request) => request,
        Err(error) => {
            let response = error::response(&error, Some(&ids));
            state.actors.supervisor.do_send(Refused { received, error });
            return response;
        }
    };
    let (reply, answer) = oneshot::channel();
    let (guard, gone) = client_link();
    state.actors.supervisor.do_send(Submit {
        received,
        request,
        reply,
        gone,
    });
    match answer.await {
        Ok(Ok(Answer::Complete(body))) => {
            let mut builder = HttpResponse::Ok();
            ids.apply(&mut builder);
            builder.content_type("application/json").body(body)
        }
        Ok(Ok(Answer::Stream(items))) => {
            let mut builder = HttpResponse::Ok();
            ids.apply(&mut builder);
            builder
                .insert_header((CONTENT_TYPE, "text/event-stream"))
                .insert_header((CACHE_CONTROL, "no-cache"))
                .streaming(sse(items, guard))
        }
        Ok(Err(error)) => error::response(&error, Some(&ids)),
        Err(_) => {
            let error = GatewayError::Internal("the session ended without an answer".into());
            error::response(&error, Some(&ids))
        }
    }
}

fn bad_priority(text: &str) -> GatewayError {
    let shown: String = text.chars().take(32).collect();
    GatewayError::bad_request(
        format!("x-priority must be high, normal or low, not `{shown}`"),
        Some("x-priority"),
    )
}

/// Reads the body, refusing more than `limit` bytes (at once when the
/// `Content-Length` says so).
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Bytes, GatewayError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(GatewayError::BodyTooLarge { limit });
    }
    let unreadable =
        |err| GatewayError::bad_request(format!("could not read the request body: {err}"), None);
    // Most bodies arrive in one piece: keep it as is, without a copy.
    let Some(first) = payload.next().await.transpose().map_err(unreadable)? else {
        return Ok(Bytes::new());
    };
    if first.len() > limit {
        return Err(GatewayError::BodyTooLarge { limit });
    }
    let Some(second) = payload.next().await.transpose().map_err(unreadable)? else {
        return Ok(first);
    };
    let mut body = BytesMut::with_capacity(declared.unwrap_or(0) as usize);
    body.extend_from_slice(&first);
    let mut next = Some(second);
    while let Some(chunk) = next {
        if body.len() + chunk.len() > limit {
            return Err(GatewayError::BodyTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
        next = payload.next().await.transpose().map_err(unreadable)?;
    }
    Ok(body.freeze())
}

/// The SSE body: the provider's events as they came, then `data: [DONE]`, or
/// an error event in OpenAI's shape (and no `[DONE]`) when the stream failed.
fn sse(
    items: mpsc::Receiver<StreamItem>,
    guard: ClientGuard,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    stream::unfold(Some((items, guard)), |state| async move {
        let (mut items, guard) = state?;
        let (frame, more) = match items.recv().await {
            Some(StreamItem::Data(events)) => (events, true),
            Some(StreamItem::Done) => (Bytes::from_static(b"data: [DONE]\n\n"), false),
            Some(StreamItem::Failed(error)) => (error_frame(&error), false),
            None => return None,
        };
        Some((Ok(frame), more.then_some((items, guard))))
    })
}

fn frame(data: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(data.len() + 8);
    frame.extend_from_slice(b"data: ");
    frame.extend_from_slice(data);
    frame.extend_from_slice(b"\n\n");
    frame.freeze()
}

fn error_frame(error: &GatewayError) -> Bytes {
    frame(&error::body(error))
}
