//! The HTTP types the routes use: the response body (whole, a session's
//! stream of events, or the admin events stream) and small builders for
//! JSON answers.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use hyper::body::{Frame, SizeHint};
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use switchboard_actors::GatewayError;
use switchboard_actors::answer::{ClientGuard, StreamItem};
use switchboard_actors::wire::Wire;
use tokio::sync::mpsc;

use super::error;

/// Every answer the daemon sends.
pub type Answer = Response<Body>;

/// A response body.
pub enum Body {
    /// All of it at once (`None` once sent).
    Full(Option<Bytes>),
    /// A session's events as they come, then `[DONE]` or an error event.
    Sse(SseBody),
    /// Any other stream of frames (the admin events stream).
    Stream(Pin<Box<dyn Stream<Item = Bytes>>>),
}

/// A session's streamed answer. Holds the client guard: when the client
/// goes away hyper drops the body, and the session learns it at once.
pub struct SseBody {
    /// The session's items.
    items: mpsc::Receiver<StreamItem>,
    /// Dropped with the body.
    _guard: ClientGuard,
    /// Set once the last frame went out.
    done: bool,
    /// How the stream ends: OpenAI's `[DONE]`, or nothing after
    /// Anthropic's `message_stop`; errors in the wire's shape.
    wire: Wire,
}

impl SseBody {
    /// The body of a stream on `wire` fed by `items`.
    pub fn new(items: mpsc::Receiver<StreamItem>, guard: ClientGuard, wire: Wire) -> Self {
        Self {
            items,
            _guard: guard,
            done: false,
            wire,
        }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Body::Sse(sse) => sse
                .poll_next(cx)
                .map(|frame| frame.map(|b| Ok(Frame::data(b)))),
            Body::Stream(stream) => stream
                .as_mut()
                .poll_next(cx)
                .map(|frame| frame.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(bytes) => bytes.is_none(),
            Body::Sse(sse) => sse.done,
            Body::Stream(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Body::Full(None) => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

impl SseBody {
    /// The next frame: the provider's events as they came, then
    /// `data: [DONE]` (OpenAI; Anthropic's stream has ended with its own
    /// `message_stop`), or an error event in the wire's shape (and no end).
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if self.done {
            return Poll::Ready(None);
        }
        let frame = match std::task::ready!(self.items.poll_recv(cx)) {
            Some(StreamItem::Data(events)) => return Poll::Ready(Some(events)),
            Some(StreamItem::Done) if self.wire.is_anthropic() => {
                self.done = true;
                return Poll::Ready(None);
            }
            Some(StreamItem::Done) => Bytes::from_static(b"data: [DONE]\n\n"),
            Some(StreamItem::Failed(error)) => error_event_on(self.wire, &error),
            None => {
                self.done = true;
                return Poll::Ready(None);
            }
        };
        self.done = true;
        Poll::Ready(Some(frame))
    }
}

/// `data: <json>\n\n`.
pub fn data_event(json: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(json.len() + 8);
    frame.extend_from_slice(b"data: ");
    frame.extend_from_slice(json);
    frame.extend_from_slice(b"\n\n");
    frame.freeze()
}

/// An error as the last event of a stream on `wire`: OpenAI's `data:`
/// event, or Anthropic's `event: error`.
pub fn error_event_on(wire: Wire, error: &GatewayError) -> Bytes {
    let data = data_event(&error::body_on(wire, error));
    if !wire.is_anthropic() {
        return data;
    }
    let mut frame = BytesMut::with_capacity(data.len() + 13);
    frame.extend_from_slice(b"event: error\n");
    frame.extend_from_slice(&data);
    frame.freeze()
}

/// A whole answer with `status` and a JSON `body`.
pub fn json_bytes(status: StatusCode, body: Bytes) -> Answer {
    let mut response = Response::new(Body::Full(Some(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A whole answer with `status` and `value` as JSON.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Answer {
    let body = serde_json::to_vec(value).unwrap_or_default();
    json_bytes(status, Bytes::from(body))
}

/// 200 with `value` as JSON.
pub fn ok(value: &serde_json::Value) -> Answer {
    json(StatusCode::OK, value)
}

/// A server-sent events answer with `body`.
pub fn event_stream(body: Body) -> Answer {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
