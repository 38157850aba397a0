//! A request for a provider — chat completion, Anthropic message, token
//! count or embeddings (its [`Wire`]) — read just enough to route it.
//!
//! The daemon needs two fields of the caller's JSON: `model` (to route) and
//! `stream`. It checks that `messages` (embeddings: `input`) is there and
//! leaves every other field untouched. Parsing borrows from the body instead of building a
//! `serde_json::Value` tree, and the upstream body is the caller's bytes with
//! only the `model` string replaced — the hot path reads each byte once.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::GatewayError;
use crate::wire::Wire;

/// Headers of the caller's passed upstream as they are (Anthropic's
/// `anthropic-version` and `anthropic-beta`); never a key.
pub type Forwarded = Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>;

/// The fields the daemon looks at; serde skips the rest without allocating.
#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow)]
    model: Option<&'a RawValue>,
    #[serde(borrow)]
    messages: Option<&'a RawValue>,
    #[serde(borrow)]
    input: Option<&'a RawValue>,
    stream: Option<bool>,
    #[serde(borrow)]
    metadata: Option<&'a RawValue>,
}

/// A validated request: the caller's body and where its `model` value sits.
#[derive(Clone, Debug)]
pub struct ChatRequest {
    /// The caller's bytes, unchanged.
    body: Bytes,
    /// Byte range of the `model` JSON string (quotes included) in `body`.
    model_span: Range<usize>,
    /// The requested model, `<provider>/<model>` or an alias.
    model: String,
    /// Whether the caller asked for server-sent events.
    stream: bool,
    /// The caller's `metadata` object, kept with the session (and passed on).
    metadata: Option<Arc<str>>,
    /// The API it came in on.
    wire: Wire,
    /// The caller's headers that go upstream with it.
    forwarded: Forwarded,
}

impl ChatRequest {
    /// Validates `body` for `wire`: a JSON object with a string `model`, an
    /// array `messages` (embeddings: an `input`), and if present an object
    /// `metadata` of at most `metadata_max_bytes`.
    pub fn parse(wire: Wire, body: Bytes, metadata_max_bytes: usize) -> Result<Self, GatewayError> {
        // serde skips fields it does not read without checking their bytes,
        // and those bytes go upstream: the whole body must be UTF-8 (JSON is).
        let text = std::str::from_utf8(&body).map_err(|err| {
            GatewayError::bad_request(
                format!(
                    "request body is not valid UTF-8 (at byte {}); JSON must be UTF-8",
                    err.valid_up_to()
                ),
                None,
            )
        })?;
        let probe: Probe<'_> = serde_json::from_str(text).map_err(|err| {
            GatewayError::bad_request(format!("request body is not valid JSON: {err}"), None)
        })?;
        let raw_model = probe.model.ok_or_else(|| {
            GatewayError::bad_request("missing required field `model`", Some("model"))
        })?;
        let model: Cow<'_, str> = serde_json::from_str(raw_model.get())
            .map_err(|_| GatewayError::bad_request("`model` must be a string", Some("model")))?;
        if model.is_empty() {
            return Err(GatewayError::bad_request(
                "`model` may not be empty",
                Some("model"),
            ));
        }
        required(wire, &probe)?;
        let metadata = match probe.metadata.map(RawValue::get) {
            None | Some("null") => None,
            Some(raw) if !raw.starts_with('{') => {
                return Err(GatewayError::bad_request(
                    "`metadata` must be an object",
                    Some("metadata"),
                ));
            }
            Some(raw) if raw.len() > metadata_max_bytes => {
                return Err(GatewayError::bad_request(
                    format!(
                        "`metadata` is {} bytes, over the limit of {metadata_max_bytes} bytes \
                         (sessions.metadata_max_bytes)",
                        raw.len()
                    ),
                    Some("metadata"),
                ));
            }
            Some(raw) => Some(Arc::from(raw)),
        };
        let start = raw_model.get().as_ptr() as usize - body.as_ptr() as usize;
        let model_span = start..start + raw_model.get().len();
        let model = model.into_owned();
        let stream = wire.streams() && probe.stream.unwrap_or(false);
        Ok(Self {
            body,
            model_span,
            model,
            stream,
            metadata,
            wire,
            forwarded: Vec::new(),
        })
    }

    /// The same, sending `forwarded` upstream with it.
    pub fn forwarding(mut self, forwarded: Forwarded) -> Self {
        self.forwarded = forwarded;
        self
    }

    /// The API it came in on.
    pub fn wire(&self) -> Wire {
        self.wire
    }

    /// The caller's headers that go upstream.
    pub fn forwarded(&self) -> &Forwarded {
        &self.forwarded
    }

    /// The requested model as the caller wrote it.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Whether the caller asked for a stream.
    pub fn stream(&self) -> bool {
        self.stream
    }

    /// The caller's `metadata` object, as JSON.
    pub fn metadata(&self) -> Option<&Arc<str>> {
        self.metadata.as_ref()
    }

    /// The request's `messages` array (embeddings: its `input`) as JSON
    /// (read again: only history's `record_prompts` asks for it).
    pub fn messages_json(&self) -> Option<&str> {
        let probe: Probe<'_> = serde_json::from_slice(&self.body).ok()?;
        match self.wire {
            Wire::Embeddings => probe.input,
            _ => probe.messages,
        }
        .map(RawValue::get)
    }

    /// The caller's body, unchanged.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// `<provider>/<model>` split at the first `/`; `None` without a `/`.
    pub fn provider_and_model(&self) -> Option<(&str, &str)> {
        self.model
            .split_once('/')
            .filter(|(provider, model)| !provider.is_empty() && !model.is_empty())
    }

    /// The body to send upstream: the caller's bytes with `model` replaced.
    pub fn upstream_body(&self, upstream_model: &str) -> Bytes {
        let quoted = serde_json::to_string(upstream_model).unwrap_or_else(|_| "\"\"".into());
        let mut out = BytesMut::with_capacity(self.body.len() + quoted.len());
        out.extend_from_slice(&self.body[..self.model_span.start]);
        out.extend_from_slice(quoted.as_bytes());
        out.extend_from_slice(&self.body[self.model_span.end..]);
        out.freeze()
    }
}

/// Checks the field `wire` needs besides `model` is there, of the right type.
fn required(wire: Wire, probe: &Probe<'_>) -> Result<(), GatewayError> {
    let (name, array) = wire.required_field();
    let raw = match wire {
        Wire::Embeddings => probe.input,
        _ => probe.messages,
    };
    let param = Some(name);
    match raw {
        None => Err(GatewayError::bad_request(
            format!("missing required field `{name}`"),
            param,
        )),
        Some(raw) if array && !raw.get().starts_with('[') => Err(GatewayError::bad_request(
            format!("`{name}` must be an array"),
            param,
        )),
        Some(raw) if !(array || raw.get().starts_with('[') || raw.get().starts_with('"')) => Err(
            GatewayError::bad_request(format!("`{name}` must be a string or an array"), param),
        ),
        Some(_) => Ok(()),
    }
}

/// The text of the last `user` message of a chat request (`content` as a
/// string, or the text parts of a content array joined by a space): what
/// the mock provider and the test suite's fake provider echo. Never used on
/// the request path, which does not parse `messages`.
pub fn last_user_text(request: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    let message = request
        .get("messages")?
        .as_array()?
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))?;
    match message.get("content")? {
        Value::String(text) => Some(text.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ChatRequest, GatewayError> {
        ChatRequest::parse(Wire::Chat, Bytes::copy_from_slice(text.as_bytes()), 64)
    }

    #[test]
    fn each_wire_asks_for_its_own_field() {
        let embed = |text: &str| {
            ChatRequest::parse(
                Wire::Embeddings,
                Bytes::copy_from_slice(text.as_bytes()),
                64,
            )
        };
        let ok = embed(r#"{"model":"glm/embedding-3","input":"hi","stream":true}"#).unwrap();
        assert!(!ok.stream(), "embeddings never stream");
        assert_eq!(ok.messages_json(), Some("\"hi\""));
        assert!(embed(r#"{"model":"a/b","input":["x","y"]}"#).is_ok());
        assert!(matches!(
            embed(r#"{"model":"a/b","messages":[]}"#),
            Err(GatewayError::BadRequest {
                param: Some("input"),
                ..
            })
        ));
        assert!(embed(r#"{"model":"a/b","input":7}"#).is_err());
        let messages = ChatRequest::parse(
            Wire::Messages,
            Bytes::from_static(br#"{"model":"a/b","max_tokens":9,"messages":[],"stream":true}"#),
            64,
        )
        .unwrap();
        assert!(messages.stream() && messages.wire().is_anthropic());
    }

    #[test]
    fn only_the_model_changes_upstream() {
        let text = r#"{"temperature":0.5, "model" : "kimi/kimi-k2" ,"messages":[{"role":"user","content":"hi"}],"stream":true,"x":{"model":"keep"}}"#;
        let request = parse(text).unwrap();
        assert_eq!(request.model(), "kimi/kimi-k2");
        assert_eq!(request.provider_and_model(), Some(("kimi", "kimi-k2")));
        assert!(request.stream());
        let upstream = request.upstream_body("kimi-k2");
        assert_eq!(
            std::str::from_utf8(&upstream).unwrap(),
            text.replace("\"kimi/kimi-k2\"", "\"kimi-k2\"")
        );
    }

    #[test]
    fn escaped_model_names_are_read_and_written_as_json() {
        let request = parse(r#"{"model":"mock\/ec\"ho","messages":[]}"#).unwrap();
        assert_eq!(request.provider_and_model(), Some(("mock", "ec\"ho")));
        let upstream: serde_json::Value =
            serde_json::from_slice(&request.upstream_body("ec\"ho")).unwrap();
        assert_eq!(upstream["model"], "ec\"ho");
    }

    #[test]
    fn bad_bodies_name_what_is_wrong() {
        let param = |text: &str| match parse(text) {
            Err(GatewayError::BadRequest { param, .. }) => param,
            other => panic!("expected a bad request, got {other:?}"),
        };
        assert_eq!(param("{not json"), None);
        assert_eq!(param("[1,2]"), None);
        assert_eq!(param(r#"{"messages":[]}"#), Some("model"));
        assert_eq!(param(r#"{"model":7,"messages":[]}"#), Some("model"));
        assert_eq!(param(r#"{"model":"","messages":[]}"#), Some("model"));
        assert_eq!(param(r#"{"model":"a/b"}"#), Some("messages"));
        assert_eq!(
            param(r#"{"model":"a/b","messages":"hi"}"#),
            Some("messages")
        );
        assert_eq!(
            param(r#"{"model":"a/b","messages":[],"stream":"yes"}"#),
            None
        );
        assert_eq!(
            param(r#"{"model":"a/b","model":"c/d","messages":[]}"#),
            None
        );
    }

    #[test]
    fn metadata_is_kept_when_it_is_a_small_object() {
        let request =
            parse(r#"{"model":"a/b","messages":[],"metadata":{"job":"nightly"}}"#).unwrap();
        assert_eq!(
            request.metadata().map(|m| &**m),
            Some(r#"{"job":"nightly"}"#)
        );
        assert!(
            parse(r#"{"model":"a/b","messages":[],"metadata":null}"#)
                .unwrap()
                .metadata()
                .is_none()
        );
        let big = format!(
            r#"{{"model":"a/b","messages":[],"metadata":{{"k":"{}"}}}}"#,
            "x".repeat(80)
        );
        match parse(&big) {
            Err(GatewayError::BadRequest { message, param }) => {
                assert_eq!(param, Some("metadata"));
                assert!(message.contains("64 bytes"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(r#"{"model":"a/b","messages":[],"metadata":[1]}"#).is_err());
    }

    #[test]
    fn a_model_without_a_provider_does_not_route() {
        assert_eq!(
            parse(r#"{"model":"gpt-4","messages":[]}"#)
                .unwrap()
                .provider_and_model(),
            None
        );
        assert_eq!(
            parse(r#"{"model":"/x","messages":[]}"#)
                .unwrap()
                .provider_and_model(),
            None
        );
    }
}
