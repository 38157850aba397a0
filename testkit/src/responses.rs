//! Response bodies of the fake provider: OpenAI-shaped JSON and SSE streams,
//! or, for a reply in another [`Dialect`], the shapes of `anthropic.rs`.
//!
//! Used only by the request handler (`handler.rs`). Streaming bodies are an
//! `unfold` stream wrapped in [`StreamBody`], so chunks really go out over
//! time, and they carry the request's [`RequestGuard`] so a body dropped
//! before its last chunk counts as abandoned. Where the `usage` object
//! goes is decided by the reply's [`UsagePlan`] (`usage.rs`).

use std::convert::Infallible;
use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::stream;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use crate::anthropic::{self, Dialect};
use crate::failures::{KimiError, RetryAfter};
use crate::stats::RequestGuard;
use crate::usage::{UsagePlan, UsageShape};

/// The body type of every fake-provider response (full or streaming).
pub(crate) type FakeBody = UnsyncBoxBody<Bytes, io::Error>;

/// The pause between chunks of the streams whose behavior names no interval.
pub(crate) const DEFAULT_CHUNK_INTERVAL: Duration = Duration::from_millis(10);

/// The body of `broken`: starts like a completion, then stops mid-key.
const BROKEN_BODY: &str = r#"{"id":"chatcmpl-x","object":"chat.completion","choi"#;

/// What every chunk of one reply shares: its identity and the usage it
/// will report.
pub(crate) struct ReplyMeta {
    /// `chatcmpl-…` id, unique per request within one fake provider.
    id: String,
    /// Unix seconds, as OpenAI's `created`.
    created: u64,
    /// The request's model, echoed in the reply.
    model: String,
    /// `model`, already JSON-encoded (quoted and escaped) for chunk templates.
    model_json: String,
    /// Where the reply's usage goes and what its prompt side is.
    usage: UsagePlan,
    /// Which API's shapes it takes.
    pub(crate) dialect: Dialect,
}

impl ReplyMeta {
    /// Builds reply number `seq` for `model`, to report usage as planned.
    pub(crate) fn new(seq: u64, model: &str, usage: UsagePlan, dialect: Dialect) -> ReplyMeta {
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let id = match dialect {
            Dialect::Messages | Dialect::CountTokens => format!("msg_fake{seq:012x}"),
            Dialect::Chat | Dialect::Embeddings => format!("chatcmpl-fake{seq:012x}"),
        };
        ReplyMeta {
            id,
            created,
            model: model.to_owned(),
            model_json: Value::from(model).to_string(),
            usage,
            dialect,
        }
    }

    /// Records the reply's usage and returns its JSON object (`None` for
    /// [`UsageShape::None`]); called once, when the object is produced.
    fn report_usage(&self, completion_tokens: usize) -> Option<Value> {
        self.usage.report(&self.model, completion_tokens as u64)
    }

    /// The opening of every chunk, up to (not including) `choices`.
    pub(crate) fn chunk_head(&self) -> String {
        format!(
            "{{\"id\":\"{}\",\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":{}",
            self.id, self.created, self.model_json
        )
    }
}

/// How a streaming reply ends after its content chunks.
#[derive(Clone, Copy)]
pub(crate) enum StreamEnd {
    /// A `finish_reason: "stop"` chunk, then `data: [DONE]`, then the end.
    Done,
    /// Nothing more, ever; the body never ends.
    Stall,
    /// Like `Done`, but the body ends only this long after `[DONE]`.
    LateEnd(Duration),
    /// The body errors, so hyper aborts the response mid-way.
    Cut,
}

/// The shape of one streaming reply.
#[derive(Clone, Copy)]
pub(crate) struct SseScript {
    /// How many content chunks to send.
    pub(crate) chunks: usize,
    /// Pause before every content chunk but the first.
    pub(crate) interval: Duration,
    /// What follows the content chunks.
    pub(crate) end: StreamEnd,
}

/// A full (non-streaming) response with a JSON content type.
pub(crate) fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<FakeBody> {
    let body = Full::new(body.into())
        .map_err(|never: Infallible| match never {})
        .boxed_unsync();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// A realistic successful `chat.completion` answering `request`, with a
/// top-level `usage` unless the reply's shape is [`UsageShape::None`].
pub(crate) fn completion(meta: &ReplyMeta, request: &Value) -> Response<FakeBody> {
    let content =
        switchboard_actors::request::last_user_text(request).unwrap_or_else(|| "ok".to_owned());
    let completion_tokens = content.split_whitespace().count() + 1;
    let body = match meta.dialect {
        Dialect::Chat => return chat_completion(meta, &content, completion_tokens),
        Dialect::Messages => {
            let usage = meta
                .usage
                .report_counts(&meta.model, completion_tokens as u64);
            anthropic::message(&meta.id, &meta.model, &content, usage)
        }
        Dialect::CountTokens => anthropic::count(meta.usage.prompt_tokens().unwrap_or(0)),
        Dialect::Embeddings => {
            let usage = meta.usage.report_counts(&meta.model, 0).map(|(p, _)| p);
            anthropic::embeddings(&meta.model, request, usage)
        }
    };
    json_response(StatusCode::OK, body)
}

/// The `chat.completion` answer with `content`.
fn chat_completion(
    meta: &ReplyMeta,
    content: &str,
    completion_tokens: usize,
) -> Response<FakeBody> {
    let mut body = json!({
        "id": meta.id,
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "system_fingerprint": "fp_fake",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "service_tier": "default"
    });
    if let Some(usage) = meta.report_usage(completion_tokens) {
        body["usage"] = usage;
    }
    json_response(StatusCode::OK, body.to_string())
}

/// The error response for `status-<code>`: OpenAI's shape, or Anthropic's
/// for an Anthropic `dialect`.
pub(crate) fn status_error(code: u16, dialect: Dialect) -> Response<FakeBody> {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if dialect.is_anthropic() {
        return json_response(status, anthropic::error_body(code));
    }
    let body = json!({"error": {
        "message": format!("fake failure {code}"),
        "type": "server_error",
        "code": code.to_string(),
    }});
    json_response(status, body.to_string())
}

/// The `status-<code>` error for a `fail…` failure, with its retry hint
/// header (`Retry-After` or `retry-after-ms`) if it has one.
pub(crate) fn fail_error(
    code: u16,
    retry_after: Option<RetryAfter>,
    dialect: Dialect,
) -> Response<FakeBody> {
    let mut resp = status_error(code, dialect);
    let headers = resp.headers_mut();
    match retry_after {
        Some(RetryAfter::Seconds(s)) => {
            headers.insert(RETRY_AFTER, HeaderValue::from(s));
        }
        Some(RetryAfter::Millis(ms)) => {
            let name = HeaderName::from_static("retry-after-ms");
            headers.insert(name, HeaderValue::from(ms));
        }
        None => {}
    }
    resp
}

/// A 429 in GLM's (Zhipu's) error shape, its business code as a string.
pub(crate) fn glm_error(code: u32) -> Response<FakeBody> {
    let body = json!({"error": {
        "code": code.to_string(),
        "message": format!("glm error {code}"),
    }});
    json_response(StatusCode::TOO_MANY_REQUESTS, body.to_string())
}

/// A 429 in Kimi's (Moonshot's) error shape.
pub(crate) fn kimi_error(kind: KimiError) -> Response<FakeBody> {
    let body = json!({"error": {
        "message": "kimi error",
        "type": kind.error_type(),
    }});
    json_response(StatusCode::TOO_MANY_REQUESTS, body.to_string())
}

/// A 200 JSON response whose body is truncated, invalid JSON.
pub(crate) fn broken() -> Response<FakeBody> {
    json_response(StatusCode::OK, BROKEN_BODY)
}

/// A client error the fake provider itself raises (unknown route, bad header).
pub(crate) fn client_error(status: StatusCode, message: &str) -> Response<FakeBody> {
    let body = json!({"error": {
        "message": message,
        "type": "invalid_request_error",
        "code": status.as_u16().to_string(),
    }});
    json_response(status, body.to_string())
}

/// The `GET /v1/models` list.
pub(crate) fn models() -> Response<FakeBody> {
    let model = |id: &str| json!({"id": id, "object": "model", "created": 0, "owned_by": "fake"});
    let body = json!({"object": "list", "data": [model("instant"), model("fake-model")]});
    json_response(StatusCode::OK, body.to_string())
}

/// A `text/event-stream` response following `script`; `guard` rides in the
/// body and is completed when the last chunk (or the scripted cut) is produced.
pub(crate) fn sse(script: SseScript, meta: ReplyMeta, guard: RequestGuard) -> Response<FakeBody> {
    let state = SseState {
        script,
        meta,
        sent: 0,
        finished: false,
        late_end: None,
        guard,
    };
    let body = StreamBody::new(stream::unfold(state, next_frame)).boxed_unsync();
    let mut resp = Response::new(body);
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// Progress of one streaming reply.
struct SseState {
    /// What to send.
    script: SseScript,
    /// Identity stamped on each chunk.
    meta: ReplyMeta,
    /// Content chunks sent so far.
    sent: usize,
    /// Whether the ending has been produced (the next poll ends the body).
    finished: bool,
    /// Set after `[DONE]` of a `LateEnd` stream: how long before the body ends.
    late_end: Option<Duration>,
    /// Counts the request in flight / abandoned.
    guard: RequestGuard,
}

/// One step of the SSE body: the next frame after the right pause, if any.
type Step = Option<(Result<Frame<Bytes>, io::Error>, SseState)>;

/// Produces the next frame of a streaming reply.
async fn next_frame(mut st: SseState) -> Step {
    if st.finished {
        if let Some(after) = st.late_end.take() {
            tokio::time::sleep(after).await;
        }
        return None;
    }
    if st.sent < st.script.chunks {
        if st.sent > 0 {
            tokio::time::sleep(st.script.interval).await;
        }
        let frame = content_chunk(&st.meta, st.sent);
        st.sent += 1;
        return Some((Ok(Frame::data(frame)), st));
    }
    st.finished = true;
    match st.script.end {
        StreamEnd::Done => {
            st.guard.complete();
            let frame = final_chunk(&st.meta, st.sent);
            Some((Ok(Frame::data(frame)), st))
        }
        StreamEnd::LateEnd(after) => {
            st.guard.complete();
            let frame = final_chunk(&st.meta, st.sent);
            st.script.end = StreamEnd::Stall;
            st.late_end = Some(after);
            Some((Ok(Frame::data(frame)), st))
        }
        StreamEnd::Stall => {
            // Keeps `st` (and so the guard) alive until the body is dropped.
            std::future::pending::<()>().await;
            None
        }
        StreamEnd::Cut => {
            // Pause first: an error right behind the last chunk would make
            // hyper drop that chunk unflushed along with the connection.
            tokio::time::sleep(st.script.interval).await;
            st.guard.complete();
            Some((Err(io::Error::other("fake provider cut the stream")), st))
        }
    }
}

/// The SSE event carrying content chunk number `i` (`"w<i> "`), with
/// `"usage":null` in the OpenAI shape.
fn content_chunk(meta: &ReplyMeta, i: usize) -> Bytes {
    if meta.dialect.is_anthropic() {
        let delta = anthropic::delta(i);
        return Bytes::from(match i {
            0 => anthropic::preamble(&meta.id, &meta.model, meta.usage.prompt_tokens()) + &delta,
            _ => delta,
        });
    }
    let usage = if meta.usage.shape() == UsageShape::OpenAi {
        ",\"usage\":null"
    } else {
        ""
    };
    Bytes::from(format!(
        "data: {},\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"w{i} \"}},\"finish_reason\":null}}]{usage}}}\n\n",
        meta.chunk_head()
    ))
}

/// The `finish_reason: "stop"` chunk, carrying the usage of `content_chunks`
/// completion tokens where the reply's shape puts it (an extra `choices: []`
/// chunk for OpenAI), followed by `data: [DONE]`.
pub(crate) fn final_chunk(meta: &ReplyMeta, content_chunks: usize) -> Bytes {
    if meta.dialect.is_anthropic() {
        let usage = meta.usage.report_counts(&meta.model, content_chunks as u64);
        return anthropic::ending(usage.map(|(_, output)| output));
    }
    let head = meta.chunk_head();
    let (in_choice, top, extra) = match meta.report_usage(content_chunks) {
        None => (String::new(), String::new(), String::new()),
        Some(usage) => match meta.usage.shape() {
            UsageShape::Kimi => (format!(",\"usage\":{usage}"), String::new(), String::new()),
            UsageShape::OpenAi => (
                String::new(),
                ",\"usage\":null".to_owned(),
                format!("data: {head},\"choices\":[],\"usage\":{usage}}}\n\n"),
            ),
            UsageShape::Glm | UsageShape::None => {
                (String::new(), format!(",\"usage\":{usage}"), String::new())
            }
        },
    };
    Bytes::from(format!(
        "data: {head},\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"{in_choice}}}]{top}}}\n\n\
         {extra}data: [DONE]\n\n"
    ))
}
