//! What a session sends back to the HTTP layer, and how the HTTP layer tells
//! a session its client has gone.
//!
//! The HTTP layer hands a session a [`ReplyTx`] and a [`ClientGone`]; it keeps
//! the matching receiver and the [`ClientGuard`]. A non-streamed answer comes
//! whole; a streamed one comes as a channel of event payloads. When
//! the connection goes away the HTTP layer drops the guard, and the session
//! learns it at once, without polling.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::error::GatewayError;
use crate::usage::{Usage, UsageCarrier};
use crate::wire::Wire;

/// Items buffered between a streaming session and its client. Small, so a
/// slow client slows its upstream read (backpressure) instead of growing memory.
pub const STREAM_BUFFER_FRAMES: usize = 16;

/// A session's answer.
#[derive(Debug)]
pub enum Answer {
    /// The provider's JSON with the `session` object added.
    Complete(Bytes),
    /// The provider's events as they arrive, then [`StreamItem::Done`] or
    /// [`StreamItem::Failed`].
    Stream(mpsc::Receiver<StreamItem>),
}

/// One item of a streamed answer, for the HTTP layer to frame as SSE.
#[derive(Debug)]
pub enum StreamItem {
    /// Complete SSE events, framed as the provider framed them.
    Data(Bytes),
    /// The stream ended well.
    Done,
    /// The stream ended badly; nothing follows.
    Failed(GatewayError),
}

/// Where a session sends its answer (or why there is none).
pub type ReplyTx = oneshot::Sender<Result<Answer, GatewayError>>;

/// Where the HTTP layer waits for it.
pub type ReplyRx = oneshot::Receiver<Result<Answer, GatewayError>>;

/// Held by the HTTP layer while the client is there to be answered; dropping it
/// tells the session the client is gone.
#[derive(Debug)]
pub struct ClientGuard(#[allow(dead_code)] oneshot::Sender<()>);

/// Resolves when the [`ClientGuard`] is dropped.
#[derive(Debug)]
pub struct ClientGone(oneshot::Receiver<()>);

/// A linked guard and signal.
pub fn client_link() -> (ClientGuard, ClientGone) {
    let (tx, rx) = oneshot::channel();
    (ClientGuard(tx), ClientGone(rx))
}

impl Future for ClientGone {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // The guard never sends: any completion means it was dropped.
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// Appends `,"session":{...}` to a provider's JSON object without re-encoding
/// it, and reads the answer's `usage` (in `wire`'s shape) in the same pass
/// that checks it is JSON. Fails when the body is not a JSON object.
pub fn with_session_object(
    body: &[u8],
    session: &impl serde::Serialize,
    wire: Wire,
) -> Result<(Bytes, Option<Usage>), String> {
    let carrier: UsageCarrier<'_> = serde_json::from_slice(body)
        .map_err(|err| format!("the answer is not valid JSON: {err}"))?;
    let trimmed = body.trim_ascii();
    let inner = trimmed
        .strip_prefix(b"{")
        .and_then(|rest| rest.strip_suffix(b"}"))
        .ok_or("the answer is not a JSON object")?;
    let mut out = Vec::with_capacity(trimmed.len() + 192);
    out.push(b'{');
    out.extend_from_slice(inner);
    if !inner.trim_ascii().is_empty() {
        out.push(b',');
    }
    out.extend_from_slice(b"\"session\":");
    serde_json::to_writer(&mut out, session).map_err(|err| err.to_string())?;
    out.push(b'}');
    Ok((out.into(), carrier.usage(wire)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_object_is_added_to_the_answer() {
        let session = serde_json::json!({"id": "s1"});
        let (out, usage) =
            with_session_object(b" {\"id\":\"x\",\"n\":[1]}\n", &session, Wire::Chat).unwrap();
        assert_eq!(usage, None);
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["id"], "x");
        assert_eq!(value["session"]["id"], "s1");
        let (empty, _) = with_session_object(b"{ }", &session, Wire::Chat).unwrap();
        assert_eq!(&empty[..], b"{ \"session\":{\"id\":\"s1\"}}");
    }

    #[test]
    fn the_answers_usage_is_read_on_the_way() {
        let body =
            br#"{"id":"x","usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;
        let (_, usage) = with_session_object(body, &serde_json::json!({}), Wire::Chat).unwrap();
        assert_eq!(usage.and_then(|u| u.total_tokens), Some(5));
        let message = br#"{"type":"message","usage":{"input_tokens":3,"output_tokens":4}}"#;
        let (_, usage) =
            with_session_object(message, &serde_json::json!({}), Wire::Messages).unwrap();
        assert_eq!(usage.and_then(|u| u.total()), Some(7));
    }

    #[test]
    fn broken_answers_are_refused() {
        let session = serde_json::json!({});
        assert!(
            with_session_object(b"{\"id\":\"chatcmpl-x\",\"choi", &session, Wire::Chat).is_err()
        );
        assert!(with_session_object(b"[1]", &session, Wire::Chat).is_err());
        assert!(with_session_object(b"", &session, Wire::Chat).is_err());
    }

    #[tokio::test]
    async fn dropping_the_guard_wakes_the_session() {
        let (guard, gone) = client_link();
        drop(guard);
        gone.await;
    }
}
