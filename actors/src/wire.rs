//! Which API a request came in on, and so which dialect its session speaks
//! upstream: OpenAI's chat completions, Anthropic's Messages API (and its
//! token counter), or OpenAI's embeddings.
//!
//! The HTTP layer picks the wire from the route; the request, the session's
//! meta, the provider call, usage extraction and the error shape all follow
//! it, so each of those chooses with a `match` on one enum instead of
//! guessing from the bytes.

use serde::Serialize;

/// The API of one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Wire {
    /// `POST /v1/chat/completions`, upstream `{base_url}/chat/completions`.
    #[default]
    Chat,
    /// `POST /v1/messages`, upstream `{anthropic_base_url}/v1/messages`.
    Messages,
    /// `POST /v1/messages/count_tokens`, upstream the same path under
    /// `anthropic_base_url`; never streamed, no usage.
    CountTokens,
    /// `POST /v1/embeddings`, upstream `{base_url}/embeddings`; never streamed.
    Embeddings,
}

impl Wire {
    /// How many wires there are.
    pub const COUNT: usize = 4;

    /// Every wire, in [`Wire::index`] order.
    pub const ALL: [Wire; Wire::COUNT] = [
        Wire::Chat,
        Wire::Messages,
        Wire::CountTokens,
        Wire::Embeddings,
    ];

    /// Its position in [`Wire::ALL`], for tables indexed by wire.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The daemon's own path for it.
    pub fn path(self) -> &'static str {
        match self {
            Wire::Chat => "/v1/chat/completions",
            Wire::Messages => "/v1/messages",
            Wire::CountTokens => "/v1/messages/count_tokens",
            Wire::Embeddings => "/v1/embeddings",
        }
    }

    /// The wire served at `path`, if any.
    pub fn from_path(path: &str) -> Option<Wire> {
        Wire::ALL.into_iter().find(|wire| wire.path() == path)
    }

    /// Whether it speaks Anthropic's dialect (headers, usage, error shape).
    pub fn is_anthropic(self) -> bool {
        matches!(self, Wire::Messages | Wire::CountTokens)
    }

    /// Whether a caller's `"stream": true` is honoured.
    pub fn streams(self) -> bool {
        matches!(self, Wire::Chat | Wire::Messages)
    }

    /// The JSON field a request must carry besides `model`, and whether it
    /// must be an array (embeddings' `input` may be a string or an array).
    pub fn required_field(self) -> (&'static str, bool) {
        match self {
            Wire::Chat | Wire::Messages | Wire::CountTokens => ("messages", true),
            Wire::Embeddings => ("input", false),
        }
    }

    /// What an endpoint of this wire is called in messages.
    pub fn describe(self) -> &'static str {
        match self {
            Wire::Chat => "OpenAI chat completions",
            Wire::Messages | Wire::CountTokens => "Anthropic Messages",
            Wire::Embeddings => "embeddings",
        }
    }

    /// The RECEIVED phase's detail: the route, for every route but the
    /// default chat completions (whose timelines stay as they were).
    pub fn received_detail(self) -> Option<&'static str> {
        match self {
            Wire::Chat => None,
            other => Some(other.path()),
        }
    }
}

impl std::fmt::Display for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wire_is_found_by_its_path() {
        for (index, wire) in Wire::ALL.into_iter().enumerate() {
            assert_eq!(Wire::from_path(wire.path()), Some(wire));
            assert_eq!(wire.index(), index);
        }
        assert_eq!(Wire::from_path("/v1/models"), None);
        assert!(Wire::CountTokens.is_anthropic() && !Wire::CountTokens.streams());
        assert_eq!(Wire::Embeddings.required_field(), ("input", false));
    }
}
