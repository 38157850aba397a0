//! The fake provider's Anthropic-compatible mode: Messages API answers,
//! their SSE events and errors, in the shapes Anthropic (and the
//! Anthropic-compatible endpoints of Kimi and GLM) send.
//!
//! Used by `responses.rs`, which picks these frames when a reply's
//! [`Dialect`] is Anthropic's, so every behavior (slow, hung, statuses,
//! `fail-<n>-529`, stalls, cuts) works on `/v1/messages` as on chat
//! completions; the handler routes `/v1/messages`, `/v1/messages/count_tokens`
//! and `/embeddings` to the matching dialect.

use bytes::Bytes;
use serde_json::{Value, json};

/// Which API a request came in on, so which shapes its reply takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `/chat/completions`: OpenAI's chat completions.
    Chat,
    /// `/v1/messages`: Anthropic's Messages API.
    Messages,
    /// `/v1/messages/count_tokens`: Anthropic's token counter.
    CountTokens,
    /// `/embeddings`: OpenAI's embeddings.
    Embeddings,
}

impl Dialect {
    /// The dialect served at `path`, if any (longest suffix first).
    pub(crate) fn of_path(path: &str) -> Option<Dialect> {
        [
            ("/v1/messages/count_tokens", Dialect::CountTokens),
            ("/v1/messages", Dialect::Messages),
            ("/chat/completions", Dialect::Chat),
            ("/embeddings", Dialect::Embeddings),
        ]
        .into_iter()
        .find(|(suffix, _)| path.ends_with(suffix))
        .map(|(_, dialect)| dialect)
    }

    /// Whether its errors and streams take Anthropic's shapes.
    pub(crate) fn is_anthropic(self) -> bool {
        matches!(self, Dialect::Messages | Dialect::CountTokens)
    }
}

/// Anthropic's error `type` for an HTTP status.
fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

/// An error body in Anthropic's shape for `status`.
pub(crate) fn error_body(status: u16) -> String {
    json!({"type": "error", "error": {
        "type": error_type(status),
        "message": format!("fake failure {status}"),
    }})
    .to_string()
}

/// A whole `message` answering with `text`; `usage` is `(input, output)`.
pub(crate) fn message(id: &str, model: &str, text: &str, usage: Option<(u64, u64)>) -> String {
    let mut body = json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
    });
    if let Some((input, output)) = usage {
        body["usage"] = json!({"input_tokens": input, "output_tokens": output});
    }
    body.to_string()
}

/// `count_tokens`'s answer.
pub(crate) fn count(input_tokens: u64) -> String {
    json!({"input_tokens": input_tokens}).to_string()
}

/// One SSE event: `event: <type>` and its JSON.
fn event(value: &Value) -> String {
    let kind = value["type"].as_str().unwrap_or("unknown");
    format!("event: {kind}\ndata: {value}\n\n")
}

/// The events before the first text delta: `message_start` (with the input
/// tokens, when usage is reported) and `content_block_start`.
pub(crate) fn preamble(id: &str, model: &str, input_tokens: Option<u64>) -> String {
    let mut message = json!({
        "id": id, "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": null, "stop_sequence": null,
    });
    if let Some(input) = input_tokens {
        message["usage"] = json!({"input_tokens": input, "output_tokens": 1});
    }
    let start = event(&json!({"type": "message_start", "message": message}));
    let block = event(&json!({
        "type": "content_block_start", "index": 0,
        "content_block": {"type": "text", "text": ""},
    }));
    start + &block
}

/// The text delta of content chunk number `i` (`"w<i> "`).
pub(crate) fn delta(i: usize) -> String {
    event(&json!({
        "type": "content_block_delta", "index": 0,
        "delta": {"type": "text_delta", "text": format!("w{i} ")},
    }))
}

/// The events after the last delta: `content_block_stop`, `message_delta`
/// (with the output tokens, when usage is reported) and `message_stop`.
pub(crate) fn ending(output_tokens: Option<u64>) -> Bytes {
    let mut delta = json!({
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": null},
    });
    if let Some(output) = output_tokens {
        delta["usage"] = json!({"output_tokens": output});
    }
    let text = event(&json!({"type": "content_block_stop", "index": 0}))
        + &event(&delta)
        + &event(&json!({"type": "message_stop"}));
    Bytes::from(text)
}

/// An embeddings answer: one short vector per input.
pub(crate) fn embeddings(model: &str, request: &Value, prompt_tokens: Option<u64>) -> String {
    let inputs = match request.get("input") {
        Some(Value::Array(items)) => items.len().max(1),
        _ => 1,
    };
    let data: Vec<Value> = (0..inputs)
        .map(|index| json!({"object": "embedding", "index": index, "embedding": [0.25, -0.5, 1.0]}))
        .collect();
    let mut body = json!({"object": "list", "data": data, "model": model});
    if let Some(tokens) = prompt_tokens {
        body["usage"] = json!({"prompt_tokens": tokens, "total_tokens": tokens});
    }
    body.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_pick_their_dialect() {
        assert_eq!(
            Dialect::of_path("/v1/messages/count_tokens"),
            Some(Dialect::CountTokens)
        );
        assert_eq!(
            Dialect::of_path("/anthropic/v1/messages"),
            Some(Dialect::Messages)
        );
        assert_eq!(
            Dialect::of_path("/v1/embeddings"),
            Some(Dialect::Embeddings)
        );
        assert_eq!(Dialect::of_path("/v1/models"), None);
    }

    #[test]
    fn streams_carry_usage_where_anthropic_puts_it() {
        let start: Value = serde_json::from_str(
            preamble("m", "x", Some(9))
                .lines()
                .nth(1)
                .and_then(|l| l.strip_prefix("data: "))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(start["message"]["usage"]["input_tokens"], 9);
        let end = String::from_utf8(ending(Some(4)).to_vec()).unwrap();
        assert!(
            end.contains("\"output_tokens\":4")
                && end.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
        );
        assert!(error_body(529).contains("overloaded_error"));
    }
}
