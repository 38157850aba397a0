//! The prompt and answer text of a session, kept only when the operator
//! opted in (`history.record_prompts`), each cut to `max_record_bytes`.
//!
//! The supervisor starts one with the request's `messages` (embeddings: its
//! `input`); the session adds the answer's text as it passes (the first
//! choice's `content`, or its stream's `delta.content`s; for Anthropic
//! messages the `text` blocks of `content`, or the stream's `delta.text`s;
//! embeddings and token counts have no text). Nothing here runs unless
//! recording is on.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::outcome::{Exchange, capped};
use crate::request::ChatRequest;
use crate::wire::Wire;

/// A session's text so far.
#[derive(Debug)]
pub struct Transcript {
    /// Longest prompt or answer kept, in bytes.
    max: usize,
    /// Which answers it reads.
    wire: Wire,
    /// The request's `messages`, as JSON, cut.
    prompt: Option<String>,
    /// The answer's text so far, cut.
    answer: String,
}

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow, default)]
    choices: Option<Vec<Choice<'a>>>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    message: Option<Content<'a>>,
    #[serde(borrow, default)]
    delta: Option<Content<'a>>,
}

#[derive(Deserialize)]
struct Content<'a> {
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
}

/// An Anthropic answer (`content` blocks) or stream event (`delta`).
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    content: Option<Vec<Text<'a>>>,
    #[serde(borrow, default)]
    delta: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct Text<'a> {
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
}

impl Transcript {
    /// A transcript of `request`, keeping at most `max` bytes of each text.
    pub fn new(request: &ChatRequest, max: usize) -> Self {
        Self {
            max,
            wire: request.wire(),
            prompt: request.messages_json().map(|json| capped(json, max)),
            answer: String::new(),
        }
    }

    /// A non-streamed answer: the first choice's message content.
    pub fn body(&mut self, body: &[u8]) {
        if self.wire == Wire::Messages {
            let blocks = serde_json::from_slice::<Message<'_>>(body).map(|m| m.content);
            for raw in blocks
                .ok()
                .flatten()
                .into_iter()
                .flatten()
                .filter_map(|b| b.text)
            {
                self.push(raw);
            }
            return;
        }
        if self.wire != Wire::Chat {
            return;
        }
        if let Ok(parsed) = serde_json::from_slice::<Body<'_>>(body) {
            let first = parsed.choices.and_then(|c| c.into_iter().next());
            if let Some(raw) = first.and_then(|c| c.message).and_then(|m| m.content) {
                self.push(raw);
            }
        }
    }

    /// Streamed events: each chunk's first choice's delta content.
    pub fn events(&mut self, events: &[u8]) {
        if self.answer.len() >= self.max {
            return;
        }
        for line in events.split(|b| *b == b'\n') {
            let Some(data) = line.strip_prefix(b"data:") else {
                continue;
            };
            if self.wire == Wire::Messages {
                let parsed = serde_json::from_slice::<Message<'_>>(data.trim_ascii());
                if let Some(raw) = parsed.ok().and_then(|m| m.delta).and_then(|d| d.text) {
                    self.push(raw);
                }
                continue;
            }
            let Ok(parsed) = serde_json::from_slice::<Body<'_>>(data.trim_ascii()) else {
                continue;
            };
            let first = parsed.choices.and_then(|c| c.into_iter().next());
            if let Some(raw) = first.and_then(|c| c.delta).and_then(|d| d.content) {
                self.push(raw);
            }
        }
    }

    fn push(&mut self, raw: &RawValue) {
        if let Ok(text) = serde_json::from_str::<String>(raw.get()) {
            let room = self.max.saturating_sub(self.answer.len());
            self.answer.push_str(&capped(&text, room));
        }
    }

    /// What history stores.
    pub fn exchange(&self) -> Exchange {
        Exchange {
            prompt: self.prompt.clone(),
            answer: (!self.answer.is_empty()).then(|| self.answer.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn request() -> ChatRequest {
        let body = r#"{"model":"a/b","messages":[{"role":"user","content":"hi there"}]}"#;
        ChatRequest::parse(Wire::Chat, Bytes::from_static(body.as_bytes()), 64)
            .expect("valid request")
    }

    #[test]
    fn the_prompt_and_a_whole_answer_are_kept() {
        let mut transcript = Transcript::new(&request(), 1000);
        transcript.body(br#"{"choices":[{"message":{"role":"assistant","content":"hello"}}]}"#);
        let exchange = transcript.exchange();
        assert_eq!(
            exchange.prompt.as_deref(),
            Some(r#"[{"role":"user","content":"hi there"}]"#)
        );
        assert_eq!(exchange.answer.as_deref(), Some("hello"));
    }

    #[test]
    fn anthropic_answers_are_read_in_their_shape() {
        let body = r#"{"model":"a/b","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#;
        let request = ChatRequest::parse(Wire::Messages, Bytes::from_static(body.as_bytes()), 64)
            .expect("valid request");
        let mut whole = Transcript::new(&request, 100);
        whole.body(br#"{"type":"message","content":[{"type":"text","text":"hello"}]}"#);
        assert_eq!(whole.exchange().answer.as_deref(), Some("hello"));
        let mut streamed = Transcript::new(&request, 100);
        streamed.events(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"a b\"}}\n\n");
        assert_eq!(streamed.exchange().answer.as_deref(), Some("a b"));
    }

    #[test]
    fn a_streamed_answer_is_joined_and_cut() {
        let mut transcript = Transcript::new(&request(), 8);
        transcript.events(b"data: {\"choices\":[{\"delta\":{\"content\":\"hello \"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"world\"}}]}\n\n");
        let exchange = transcript.exchange();
        assert_eq!(exchange.answer.as_deref(), Some("hello wo"));
        assert_eq!(exchange.prompt.as_deref().map(str::len), Some(8));
    }
}
