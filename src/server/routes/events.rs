//! `GET /admin/events?session=&provider=&phase=`: phase events as
//! server-sent events, as they happen.
//!
//! The logger hands each reader a bounded channel and never waits for it; a
//! reader that falls behind is dropped, and its stream ends with an
//! `event: dropped` saying so. A comment line every [`KEEP_ALIVE`] keeps
//! proxies from closing a quiet stream and finds out a reader that left.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, stream};
use switchboard_actors::GatewayError;
use switchboard_actors::ids::SessionId;
use switchboard_actors::lifecycle::{EventFilter, EventStream, Subscribe};
use switchboard_actors::phase::Phase;

use super::query::Params;
use crate::server::AppState;
use crate::server::error;

/// How often a quiet stream sends a comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The last event of a reader that was dropped.
const DROPPED: &[u8] = b"event: dropped\ndata: {\"reason\":\"this reader fell behind and was dropped so it could not slow the daemon; reconnect to go on\"}\n\n";

/// `GET /admin/events`.
pub async fn events(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let filter = match filter(req.query_string()) {
        Ok(filter) => filter,
        Err(error) => return error::response(&error, None),
    };
    match state.actors.logger.send(Subscribe(filter)).await {
        Ok(events) => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, "text/event-stream"))
            .insert_header((CACHE_CONTROL, "no-cache"))
            .streaming(sse(events)),
        Err(_) => {
            let error = GatewayError::Internal("the lifecycle logger is not running".into());
            error::response(&error, None)
        }
    }
}

fn filter(query: &str) -> Result<EventFilter, GatewayError> {
    let params = Params::parse(query, &["session", "provider", "phase"])?;
    Ok(EventFilter {
        session: params.parsed("session", "must be a session id", SessionId::parse)?,
        provider: params.text("provider").map(str::to_owned),
        phase: params.parsed(
            "phase",
            "must be a phase name such as PROVIDER_CALL_START",
            |text| Phase::parse(&text.to_ascii_uppercase()),
        )?,
    })
}

fn frame(json: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(json.len() + 8);
    frame.extend_from_slice(b"data: ");
    frame.extend_from_slice(json);
    frame.extend_from_slice(b"\n\n");
    frame.freeze()
}

/// The stream: each event as it comes, keep-alive comments between, and a
/// last `dropped` event if the logger let this reader go.
fn sse(stream: EventStream) -> impl Stream<Item = Result<Bytes, Infallible>> {
    let EventStream { events, lagged } = stream;
    let mut ticks = tokio::time::interval(KEEP_ALIVE);
    ticks.reset();
    stream::unfold(Some((events, ticks)), move |state| {
        let lagged = lagged.clone();
        async move {
            let (mut events, mut ticks) = state?;
            tokio::select! {
                next = events.recv() => match next {
                    Some(json) => Some((Ok(frame(&json)), Some((events, ticks)))),
                    None if lagged.load(Ordering::Relaxed) => Some((Ok(Bytes::from_static(DROPPED)), None)),
                    None => None,
                },
                _ = ticks.tick() => Some((Ok(Bytes::from_static(b": keep-alive\n\n")), Some((events, ticks)))),
            }
        }
    })
}
