//! The `mock` provider: answers in-process, offline.
//!
//! It echoes the last user message after `latency_ms`, or streams it word by
//! word every `stream_interval_ms`, in the same JSON and SSE shapes as an
//! OpenAI-compatible provider. For demos, tests and load tests of the daemon
//! itself; it sends nothing anywhere.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt, stream};
use serde_json::{Value, json};

use super::{Call, CallFuture, Upstream};
use crate::phase::AttemptResult;
use crate::settings::ProviderSettings;
use crate::wire::Wire;

/// The mock provider's settings.
pub struct Mock {
    /// Configured name, for the answer's `system_fingerprint`.
    name: Arc<str>,
    /// Delay before the answer or the first chunk.
    latency: Duration,
    /// Delay between streamed words.
    interval: Duration,
}

impl Mock {
    /// A mock provider named `name`.
    pub fn new(name: Arc<str>, settings: &ProviderSettings) -> Self {
        Self {
            name,
            latency: Duration::from_millis(settings.latency_ms),
            interval: Duration::from_millis(settings.stream_interval_ms),
        }
    }

    /// The call, as a future the session runs.
    pub fn call(&self, call: Call) -> CallFuture {
        if call.wire != Wire::Chat {
            // Routing never sends it one; a clear error if it ever does.
            let error = crate::error::GatewayError::NotServed {
                provider: self.name.to_string(),
                wire: call.wire,
            };
            return CallFuture(async move { Err(error) }.boxed());
        }
        let text = last_user_text(&call.body).unwrap_or_else(|| "(no user message)".into());
        let (latency, interval) = (self.latency, self.interval);
        let name = self.name.clone();
        CallFuture(
            async move {
                call.recorder.attempt_started();
                if !latency.is_zero() {
                    tokio::time::sleep(latency).await;
                }
                if call.stream {
                    Ok(Upstream::Stream(words(text, call.model, interval)))
                } else {
                    call.recorder
                        .attempt_ended(AttemptResult::Succeeded, "mock answered");
                    Ok(Upstream::Complete(completion(&name, &call.model, &text)))
                }
            }
            .boxed(),
        )
    }
}

/// The text of the last `user` message: a string `content`, or the `text`
/// parts of an array `content`.
fn last_user_text(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    crate::request::last_user_text(&value)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn completion(name: &str, model: &str, text: &str) -> Bytes {
    let words = text.split_whitespace().count() as u64;
    let body = json!({
        "id": format!("chatcmpl-mock-{}", uuid::Uuid::now_v7().simple()),
        "object": "chat.completion",
        "created": unix_now(),
        "model": model,
        "system_fingerprint": format!("switchboard-{name}"),
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": text },
            "finish_reason": "stop"
        }],
        "usage": usage(words)
    });
    Bytes::from(body.to_string())
}

/// One SSE event carrying a chat.completion.chunk; the last one also
/// carries `usage`, as Kimi and GLM send it.
fn chunk(id: &str, model: &str, delta: Value, finish: Option<(&str, u64)>) -> Bytes {
    let mut body = json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": unix_now(),
        "model": model,
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish.map(|(f, _)| f) }]
    });
    if let Some((_, words)) = finish {
        body["usage"] = usage(words);
    }
    Bytes::from(format!("data: {body}\n\n"))
}

/// The mock's usage: a token per word, each way.
fn usage(words: u64) -> Value {
    json!({ "prompt_tokens": words, "completion_tokens": words, "total_tokens": 2 * words })
}

/// The echo as a stream: a role chunk, one chunk per word, a finish chunk.
fn words(
    text: String,
    model: Arc<str>,
    interval: Duration,
) -> futures_util::stream::BoxStream<'static, Result<Bytes, crate::error::GatewayError>> {
    let id = format!("chatcmpl-mock-{}", uuid::Uuid::now_v7().simple());
    let mut pieces: Vec<Value> = vec![json!({ "role": "assistant", "content": "" })];
    let words: Vec<&str> = text.split_inclusive(char::is_whitespace).collect();
    let count = text.split_whitespace().count() as u64;
    pieces.extend(words.iter().map(|w| json!({ "content": w })));
    let total = pieces.len();
    stream::iter(pieces.into_iter().enumerate())
        .then(move |(index, delta)| {
            let (id, model) = (id.clone(), model.clone());
            async move {
                if index > 1 && !interval.is_zero() {
                    tokio::time::sleep(interval).await;
                }
                let mut out = vec![chunk(&id, &model, delta, None)];
                if index + 1 == total {
                    out.push(chunk(&id, &model, json!({}), Some(("stop", count))));
                }
                stream::iter(out.into_iter().map(Ok))
            }
        })
        .flatten()
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_user_message_is_echoed() {
        let body = br#"{"messages":[{"role":"user","content":"first"},{"role":"assistant","content":"x"},{"role":"user","content":[{"type":"text","text":"hello"},{"type":"text","text":"there"}]}]}"#;
        assert_eq!(last_user_text(body).as_deref(), Some("hello there"));
        assert_eq!(last_user_text(br#"{"messages":[]}"#), None);
    }

    #[tokio::test]
    async fn a_mock_stream_ends_with_a_finish_chunk() {
        let chunks: Vec<_> = words("a b".into(), "echo".into(), Duration::ZERO)
            .collect()
            .await;
        assert_eq!(chunks.len(), 4);
        let event = std::str::from_utf8(chunks[3].as_ref().unwrap()).unwrap();
        let last: Value = serde_json::from_str(event.strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(last["choices"][0]["finish_reason"], "stop");
        assert_eq!(last["usage"]["total_tokens"], 4, "two words each way");
    }
}
