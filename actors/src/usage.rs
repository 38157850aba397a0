//! Token usage, as providers report it, found without parsing whole answers.
//!
//! A non-streamed answer carries `usage` at the top of its JSON; the session
//! reads it in the same pass that checks the body is JSON
//! ([`crate::answer::with_session_object`]). A stream carries it in one event
//! near its end — Zhipu GLM at the top of the last chunk, Moonshot Kimi inside
//! its `choices[0]`, OpenAI-compatible servers in a last chunk with empty
//! `choices` when asked with `stream_options.include_usage` (`"usage":null`
//! before). [`in_events`] looks for the bytes `"usage"` followed by an object
//! (a SIMD substring search), and parses only the event that holds them, so
//! a stream of thousands of chunks is parsed once, not thousands of times.
//!
//! Anthropic's Messages API ([`Wire::Messages`]) names them differently:
//! `usage.input_tokens` / `output_tokens` (+ `cache_read_input_tokens`) in a
//! whole answer; in a stream, `message.usage` of `message_start` (the input,
//! and a first output count) and `usage` of `message_delta` (the output so
//! far), the later figure winning. The same search finds both events.

use memchr::memmem;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::wire::Wire;

/// Tokens one session used, as far as the provider said.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Tokens of the prompt (OpenAI's `prompt_tokens`).
    pub prompt_tokens: Option<u64>,
    /// Tokens of the answer.
    pub completion_tokens: Option<u64>,
    /// Their sum, as the provider reported it.
    pub total_tokens: Option<u64>,
    /// Prompt tokens served from the provider's cache.
    pub cached_tokens: Option<u64>,
    /// Answer tokens spent on reasoning.
    pub reasoning_tokens: Option<u64>,
}

impl Usage {
    /// Whether the provider reported anything.
    pub fn is_empty(&self) -> bool {
        *self == Usage::default()
    }

    /// Takes every figure `later` reports, keeping the others (a later event
    /// of a stream completes or corrects an earlier one).
    pub fn merge(&mut self, later: Usage) {
        let take = |mine: &mut Option<u64>, theirs: Option<u64>| {
            if theirs.is_some() {
                *mine = theirs;
            }
        };
        take(&mut self.prompt_tokens, later.prompt_tokens);
        take(&mut self.completion_tokens, later.completion_tokens);
        take(&mut self.total_tokens, later.total_tokens);
        take(&mut self.cached_tokens, later.cached_tokens);
        take(&mut self.reasoning_tokens, later.reasoning_tokens);
    }

    /// `total_tokens`, or the sum of the parts when the provider sent none.
    pub fn total(&self) -> Option<u64> {
        self.total_tokens
            .or(match (self.prompt_tokens, self.completion_tokens) {
                (None, None) => None,
                (p, c) => Some(p.unwrap_or(0) + c.unwrap_or(0)),
            })
    }
}

/// A `usage` object in any of the shapes providers send.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    total_tokens: Option<u64>,
    /// Kimi reports cached tokens at the top of `usage`.
    cached_tokens: Option<u64>,
    prompt_tokens_details: Option<PromptDetails>,
    completion_tokens_details: Option<CompletionDetails>,
}

/// A `usage` object in Anthropic's shape. `input_tokens` excludes cached
/// input; the cached part is reported as `cached_tokens`.
#[derive(Debug, Default, Deserialize)]
struct AnthropicUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

impl From<AnthropicUsage> for Usage {
    fn from(raw: AnthropicUsage) -> Self {
        Usage {
            prompt_tokens: raw.input_tokens,
            completion_tokens: raw.output_tokens,
            total_tokens: None,
            cached_tokens: raw.cache_read_input_tokens,
            reasoning_tokens: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct PromptDetails {
    cached_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct CompletionDetails {
    reasoning_tokens: Option<u64>,
}

impl From<RawUsage> for Usage {
    fn from(raw: RawUsage) -> Self {
        Usage {
            prompt_tokens: raw.prompt_tokens,
            completion_tokens: raw.completion_tokens,
            total_tokens: raw.total_tokens,
            cached_tokens: raw
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .or(raw.cached_tokens),
            reasoning_tokens: raw
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens),
        }
    }
}

/// The fields of an answer or chunk that can carry usage, borrowed unparsed:
/// a provider's odd `usage` (a string, a negative count) costs its usage,
/// never its answer.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct UsageCarrier<'a> {
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
    #[serde(borrow, default)]
    choices: Option<&'a RawValue>,
    /// Anthropic's `message_start` event carries it in `message`.
    #[serde(borrow, default)]
    message: Option<&'a RawValue>,
}

#[derive(Debug, Default, Deserialize)]
struct ChoiceUsage<'a> {
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
}

fn parse_usage(raw: Option<&RawValue>) -> Option<Usage> {
    serde_json::from_str::<RawUsage>(raw?.get())
        .ok()
        .map(Usage::from)
}

fn parse_anthropic(raw: Option<&RawValue>) -> Option<Usage> {
    serde_json::from_str::<AnthropicUsage>(raw?.get())
        .ok()
        .map(Usage::from)
}

impl UsageCarrier<'_> {
    /// The usage it carries in `wire`'s shape: OpenAI's at the top or (Kimi)
    /// in a choice; Anthropic's at the top or in `message`. A token count
    /// costs nothing, so it reports none.
    pub(crate) fn usage(&self, wire: Wire) -> Option<Usage> {
        match wire {
            Wire::Chat | Wire::Embeddings => self.openai_usage(),
            Wire::Messages => parse_anthropic(self.usage).or_else(|| {
                let message: ChoiceUsage<'_> = serde_json::from_str(self.message?.get()).ok()?;
                parse_anthropic(message.usage)
            }),
            Wire::CountTokens => None,
        }
    }

    fn openai_usage(&self) -> Option<Usage> {
        parse_usage(self.usage).or_else(|| {
            let choices: Vec<ChoiceUsage<'_>> = serde_json::from_str(self.choices?.get()).ok()?;
            choices
                .into_iter()
                .find_map(|choice| parse_usage(choice.usage))
        })
    }
}

/// The usage reported by the events in `events` (complete SSE events), if
/// any event carries a `usage` object in `wire`'s shape. Parses only the
/// events that do.
pub fn in_events(events: &[u8], wire: Wire) -> Option<Usage> {
    let finder = memmem::Finder::new(b"\"usage\"");
    let mut found: Option<Usage> = None;
    let mut from = 0;
    while let Some(hit) = finder.find(&events[from..]) {
        let at = from + hit;
        let (start, end) = event_around(events, at);
        from = end.max(at + 1);
        if !followed_by_object(&events[at + 7..end]) {
            continue;
        }
        let data = data_of(&events[start..end]);
        if let Some(usage) = data.and_then(|data| parse_carrier(data, wire)) {
            found.get_or_insert_with(Usage::default).merge(usage);
        }
    }
    found
}

/// Whether the text after a `"usage"` key is `: {` (spaces allowed).
fn followed_by_object(rest: &[u8]) -> bool {
    let mut bytes = rest.iter().copied().skip_while(u8::is_ascii_whitespace);
    bytes.next() == Some(b':') && bytes.find(|b| !b.is_ascii_whitespace()) == Some(b'{')
}

/// Start and end of the event holding byte `at` (events end at a blank line).
fn event_around(events: &[u8], at: usize) -> (usize, usize) {
    let before = &events[..at];
    let start = [&b"\n\n"[..], b"\r\n\r\n"]
        .iter()
        .filter_map(|blank| memmem::rfind(before, blank).map(|i| i + blank.len()))
        .max()
        .unwrap_or(0);
    let after = &events[at..];
    let end = [&b"\n\n"[..], b"\r\n\r\n"]
        .iter()
        .filter_map(|blank| memmem::find(after, blank))
        .min()
        .map_or(events.len(), |i| at + i);
    (start, end)
}

/// The `data:` payload of one event (its `data:` lines joined).
fn data_of(event: &[u8]) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    for line in event.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(rest) = line.strip_prefix(b"data:") {
            if !data.is_empty() {
                data.push(b'\n');
            }
            data.extend_from_slice(rest.strip_prefix(b" ").unwrap_or(rest));
        }
    }
    (!data.is_empty()).then_some(data)
}

fn parse_carrier(data: Vec<u8>, wire: Wire) -> Option<Usage> {
    serde_json::from_slice::<UsageCarrier<'_>>(&data)
        .ok()
        .and_then(|carrier| carrier.usage(wire))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(prompt: u64, completion: u64) -> Usage {
        Usage {
            prompt_tokens: Some(prompt),
            completion_tokens: Some(completion),
            total_tokens: Some(prompt + completion),
            ..Usage::default()
        }
    }

    #[test]
    fn glm_usage_in_the_last_chunk_is_found() {
        let events = b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n\
            data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":3,\"total_tokens\":12,\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n";
        let found = in_events(events, Wire::Chat).expect("usage found");
        assert_eq!(
            found,
            Usage {
                cached_tokens: Some(4),
                ..usage(9, 3)
            }
        );
    }

    #[test]
    fn kimi_usage_inside_the_choice_is_found() {
        let events = b"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\",\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7,\"cached_tokens\":1}}]}\n\n";
        let found = in_events(events, Wire::Chat).expect("usage found");
        assert_eq!(found.cached_tokens, Some(1));
        assert_eq!(found.total_tokens, Some(7));
    }

    #[test]
    fn null_usage_and_usage_in_content_are_skipped() {
        let events = b"data: {\"choices\":[{\"delta\":{\"content\":\"the \\\"usage\\\" word\"}}],\"usage\":null}\n\n";
        assert_eq!(in_events(events, Wire::Chat), None);
        let openai = b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2}}\r\n\r\n";
        assert_eq!(in_events(openai, Wire::Chat), Some(usage(1, 1)));
        assert_eq!(in_events(b"data: {\"choices\":[]}\n\n", Wire::Chat), None);
    }

    #[test]
    fn anthropic_streams_report_in_message_start_and_message_delta() {
        let events = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"content\":[],\"usage\":{\"input_tokens\":25,\"output_tokens\":1,\"cache_read_input_tokens\":5}}}\n\n\
            event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n\
            event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":15}}\n\n";
        let found = in_events(events, Wire::Messages).expect("usage found");
        assert_eq!(found.prompt_tokens, Some(25));
        assert_eq!(found.completion_tokens, Some(15));
        assert_eq!(found.cached_tokens, Some(5));
        assert_eq!(found.total(), Some(40));
        assert_eq!(in_events(events, Wire::CountTokens), None);
    }

    #[test]
    fn later_figures_complete_earlier_ones() {
        let mut first = Usage {
            prompt_tokens: Some(10),
            ..Usage::default()
        };
        first.merge(Usage {
            completion_tokens: Some(4),
            ..Usage::default()
        });
        assert_eq!(first.total(), Some(14));
        assert!(Usage::default().is_empty());
        assert_eq!(Usage::default().total(), None);
    }
}
