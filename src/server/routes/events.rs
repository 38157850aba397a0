//! `GET /admin/events?session=&provider=&phase=`: phase events as
//! server-sent events, as they happen, from every shard.
//!
//! Each shard's logger hands the reader a bounded channel and never waits
//! for it; a reader that falls behind is dropped, and its stream ends with an
//! `event: dropped` saying so. A comment line every [`KEEP_ALIVE`] keeps
//! proxies from closing a quiet stream and finds out a reader that left.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use futures_util::stream::{self, Stream, StreamExt};
use hyper::Request;
use hyper::body::Incoming;
use switchboard_actors::GatewayError;
use switchboard_actors::ids::SessionId;
use switchboard_actors::lifecycle::{EventFilter, EventStream, Subscribe};
use switchboard_actors::phase::Phase;

use super::query::Params;
use crate::server::Ctx;
use crate::server::error;
use crate::server::http::{Answer, Body, data_event, event_stream};

/// How often a quiet stream sends a comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The last event of a reader that was dropped.
const DROPPED: &[u8] = b"event: dropped\ndata: {\"reason\":\"this reader fell behind and was dropped so it could not slow the daemon; reconnect to go on\"}\n\n";

/// `GET /admin/events`.
pub async fn events(req: &Request<Incoming>, cx: &Ctx) -> Answer {
    let filter = match filter(req.uri().query().unwrap_or("")) {
        Ok(filter) => filter,
        Err(error) => return error::response(&error, None),
    };
    let asks = cx
        .actors
        .shards
        .iter()
        .map(|shard| shard.logger.send(Subscribe(filter.clone())));
    let mut streams = Vec::new();
    for answer in join_all(asks).await {
        match answer {
            Ok(stream) => streams.push(stream),
            Err(_) => {
                let error = GatewayError::Internal("the lifecycle logger is not running".into());
                return error::response(&error, None);
            }
        }
    }
    event_stream(Body::Stream(Box::pin(sse(streams))))
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

/// What the merged stream yields.
enum Item {
    /// An event's JSON.
    Event(Bytes),
    /// A shard dropped this reader for falling behind.
    Dropped,
}

/// One shard's events, then `Dropped` if that shard let the reader go.
fn shard_events(stream: EventStream) -> impl Stream<Item = Item> {
    let EventStream { events, lagged } = stream;
    stream::unfold(Some((events, lagged)), |state| async move {
        let (mut events, lagged): (_, Arc<AtomicBool>) = state?;
        match events.recv().await {
            Some(json) => Some((Item::Event(json), Some((events, lagged)))),
            None if lagged.load(Ordering::Relaxed) => Some((Item::Dropped, None)),
            None => None,
        }
    })
}

/// The stream: each event as it comes from any shard, keep-alive comments
/// between, and a last `dropped` event (ending it) if any shard let this
/// reader go.
fn sse(streams: Vec<EventStream>) -> impl Stream<Item = Bytes> {
    let events = stream::select_all(streams.into_iter().map(|s| shard_events(s).boxed_local()));
    let mut ticks = tokio::time::interval(KEEP_ALIVE);
    ticks.reset();
    stream::unfold(Some((events, ticks)), |state| async move {
        let (mut events, mut ticks) = state?;
        tokio::select! {
            next = events.next() => match next {
                Some(Item::Event(json)) => Some((data_event(&json), Some((events, ticks)))),
                Some(Item::Dropped) => Some((Bytes::from_static(DROPPED), None)),
                None => None,
            },
            _ = ticks.tick() => Some((Bytes::from_static(b": keep-alive\n\n"), Some((events, ticks)))),
        }
    })
}
