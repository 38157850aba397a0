//! The `bigevent-<bytes>-<piece>` reply: one SSE event far larger than any
//! real chunk, written a few bytes at a time, to test how the daemon
//! reassembles an event that arrives over many reads and where it stops one
//! that grows without bound.
//!
//! Used by the request handler (`handler.rs`); its content is
//! [`big_event_content`], so a test can check the event arrived intact.

use std::io;

use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, StreamBody};
use hyper::Response;
use hyper::body::Frame;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};

use crate::responses::{FakeBody, ReplyMeta, final_chunk};
use crate::stats::RequestGuard;

/// The content of the big event: `len` ASCII letters in a repeating
/// pattern, so a lost, doubled or reordered piece changes it.
pub fn big_event_content(len: usize) -> String {
    (b'a'..=b'z').cycle().take(len).map(char::from).collect()
}

/// The stream: one content chunk carrying [`big_event_content`] of
/// `content_bytes`, then the `stop` chunk and `data: [DONE]`, the whole body
/// cut in writes of `piece` bytes, each flushed before the next.
pub(crate) fn sse(
    content_bytes: usize,
    piece: usize,
    meta: &ReplyMeta,
    guard: RequestGuard,
) -> Response<FakeBody> {
    let content = big_event_content(content_bytes);
    let event = format!(
        "data: {},\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{content}\"}},\"finish_reason\":null}}]}}\n\n",
        meta.chunk_head()
    );
    let mut whole = event.into_bytes();
    whole.extend_from_slice(&final_chunk(meta, 1));
    let state = Pieces {
        body: Bytes::from(whole),
        piece: piece.max(1),
        sent: 0,
        guard,
    };
    let body = StreamBody::new(stream::unfold(state, next_piece)).boxed_unsync();
    let mut resp = Response::new(body);
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// Progress through the body.
struct Pieces {
    /// Everything the reply sends.
    body: Bytes,
    /// Bytes per write.
    piece: usize,
    /// Bytes written so far.
    sent: usize,
    /// Counts the request as abandoned if the body is dropped before its end.
    guard: RequestGuard,
}

/// The next piece; yields to the runtime first, so hyper writes (flushes)
/// each piece on its own instead of gathering them.
async fn next_piece(mut st: Pieces) -> Option<(Result<Frame<Bytes>, io::Error>, Pieces)> {
    if st.sent == st.body.len() {
        return None;
    }
    if st.sent > 0 {
        tokio::task::yield_now().await;
    }
    let end = (st.sent + st.piece).min(st.body.len());
    let frame = st.body.slice(st.sent..end);
    st.sent = end;
    if end == st.body.len() {
        st.guard.complete();
    }
    Some((Ok(Frame::data(frame)), st))
}
