//! One attempt at a provider call over HTTP, and reading its answer.
//!
//! Turns the HTTP client's outcomes into an [`Upstream`] answer or a [`Failure`]
//! that says whether a retry may help; relays streams at SSE event
//! boundaries (see [`super::sse`]); summarizes error answers without ever
//! logging their text.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt, stream};
use hyper::Uri;
use hyper::header::{HeaderName, HeaderValue};

use super::Upstream;
use super::client::{Client, Reply, ReplyBody, SendError};
use super::retry::{hinted_wait, retryable_status};
use super::sse::{EventSplitter, EventTooLarge};
use crate::body::Limited;
use crate::error::{Deadline, GatewayError, truncate};

/// How much of an error body is read to explain a failure.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The longest provider error message passed on to the caller.
const MAX_ERROR_MESSAGE: usize = 500;

/// How much of an answer the daemon holds at once.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The largest non-streamed answer (`max_response_bytes`).
    pub response: usize,
    /// The largest event of a stream (`max_event_bytes`).
    pub event: usize,
}

/// A failed attempt, and whether another attempt may succeed.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong.
    pub error: GatewayError,
    /// Whether a retry may succeed.
    pub retry: bool,
    /// How long the provider asked us to wait, if it said.
    pub wait: Option<Duration>,
    /// Whether it says something about the provider's health (a 4xx about
    /// the request itself does not).
    pub unhealthy: bool,
}

/// One attempt: sends the request and reads the answer (or the start of the
/// stream).
pub async fn exchange(
    client: &Client,
    (uri, headers, body): (&Uri, &[(HeaderName, HeaderValue)], Bytes),
    provider: &str,
    stream: bool,
    limits: Limits,
    connect_timeout: Duration,
) -> Result<Upstream, Failure> {
    let failed = |reason: String, retry: bool| Failure {
        error: GatewayError::ProviderFailed {
            provider: provider.to_owned(),
            reason,
        },
        retry,
        wait: None,
        unhealthy: true,
    };
    let reply = client
        .send(uri, headers, body)
        .await
        .map_err(|err| match err {
            SendError::ConnectTimeout => {
                let timeout_ms = u64::try_from(connect_timeout.as_millis()).unwrap_or(u64::MAX);
                let error = GatewayError::Timeout {
                    which: Deadline::Connect,
                    timeout_ms,
                };
                Failure {
                    error,
                    retry: true,
                    wait: None,
                    unhealthy: true,
                }
            }
            SendError::Failed(why) => failed(why.into(), true),
        })?;
    let status = reply.status;
    if !(200..300).contains(&status) {
        let wait = hinted_wait(&reply.headers);
        let body = read_limited(reply, MAX_ERROR_BODY)
            .await
            .unwrap_or_default();
        let error = status_error(provider, status, &body);
        let code = match &error {
            GatewayError::ProviderStatus { code, .. } => code.as_deref(),
            _ => None,
        };
        let retry = retryable_status(status, code);
        let unhealthy = retry || matches!(status, 401 | 403) || status >= 500;
        return Err(Failure {
            error,
            retry,
            wait,
            unhealthy,
        });
    }
    if stream {
        if !reply.sse {
            let reason = "asked for a stream, the provider answered without one".into();
            return Err(failed(reason, false));
        }
        let events = events(reply.body, provider.to_owned(), limits.event);
        return Ok(Upstream::Stream(events));
    }
    let body = read_limited(reply, limits.response)
        .await
        .map_err(|reason| failed(reason, false))?;
    Ok(Upstream::Complete(body))
}

/// Reads a body of at most `max` bytes.
pub async fn read_limited(reply: Reply, max: usize) -> Result<Bytes, String> {
    let too_large = |_| format!("the answer is larger than {max} bytes");
    let mut body = Limited::new(max, reply.length).map_err(too_large)?;
    let mut pieces = reply.body;
    while let Some(piece) = pieces.next().await {
        let piece = piece.map_err(|why| format!("reading the answer: {why}"))?;
        body.push(piece).map_err(too_large)?;
    }
    Ok(body.finish())
}

/// The answer's complete events, as the provider framed them, ending before
/// `[DONE]` (or at the end of the body); an event over `max_event` bytes
/// ends it with an error, and dropping the body aborts the upstream call.
fn events(
    body: ReplyBody,
    provider: String,
    max_event: usize,
) -> futures_util::stream::BoxStream<'static, Result<Bytes, GatewayError>> {
    let state = Some((body, EventSplitter::new(max_event)));
    stream::unfold(state, move |state| {
        let provider = provider.clone();
        async move {
            let (mut body, mut splitter) = state?;
            loop {
                let chunk = match body.next().await {
                    Some(Ok(chunk)) => chunk,
                    None if !splitter.has_partial() => return None,
                    None => return Some((Err(broke(provider, "it ended mid-event")), None)),
                    Some(Err(why)) => return Some((Err(broke(provider, why)), None)),
                };
                let split = match splitter.push(chunk) {
                    Ok(split) => split,
                    Err(too_large) => return Some((Err(oversized(provider, too_large)), None)),
                };
                if split.done {
                    finish_body(body);
                    return (!split.events.is_empty()).then_some((Ok(split.events), None));
                }
                if !split.events.is_empty() {
                    return Some((Ok(split.events), Some((body, splitter))));
                }
            }
        }
    })
    .boxed()
}

/// How long the end of a stream's body may take to arrive after `[DONE]`.
const BODY_END_GRACE: Duration = Duration::from_secs(1);

/// Reads what is left of a body after `[DONE]` (usually just the chunked
/// encoding's last chunk) beside the session, so its connection goes back to
/// the pool instead of being closed and reopened for the next stream.
fn finish_body(mut body: ReplyBody) {
    if body.is_end() || matches!(body.next().now_or_never(), Some(None)) {
        return;
    }
    actix_rt::spawn(async move {
        let _ = tokio::time::timeout(BODY_END_GRACE, async {
            while body.next().await.is_some() {}
        })
        .await;
    });
}

fn oversized(provider: String, too_large: EventTooLarge) -> GatewayError {
    GatewayError::ProviderFailed {
        provider,
        reason: too_large.to_string(),
    }
}

fn broke(provider: String, why: &str) -> GatewayError {
    GatewayError::ProviderFailed {
        provider,
        reason: format!("the stream broke: {why}"),
    }
}

/// Summarizes an error answer: OpenAI's `{"error":{"message","type","code"}}`
/// (Kimi, GLM and most compatible servers use it), else the start of the text.
fn status_error(provider: &str, status: u16, body: &[u8]) -> GatewayError {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().map(|v| v.get("error").unwrap_or(v));
    let text_of = |key: &str| {
        error.and_then(|e| e.get(key)).and_then(|v| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    let message =
        text_of("message").unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    let message = if message.is_empty() {
        "no details".to_owned()
    } else {
        message
    };
    let code = text_of("code").or_else(|| text_of("type"));
    GatewayError::ProviderStatus {
        provider: provider.to_owned(),
        status,
        message: truncate(&message, MAX_ERROR_MESSAGE),
        code: code.map(|c| truncate(&c, 64)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_errors_are_summarized() {
        let kimi = br#"{"error":{"message":"rate limited","type":"rate_limit_reached_error"}}"#;
        match status_error("kimi", 429, kimi) {
            GatewayError::ProviderStatus {
                status,
                message,
                code,
                ..
            } => {
                assert_eq!((status, message.as_str()), (429, "rate limited"));
                assert_eq!(code.as_deref(), Some("rate_limit_reached_error"));
            }
            other => panic!("{other:?}"),
        }
        let glm = br#"{"error":{"code":"1302","message":"busy"}}"#;
        assert!(matches!(status_error("glm", 429, glm),
            GatewayError::ProviderStatus { code: Some(c), .. } if c == "1302"));
        let html = b"<html>bad gateway</html>";
        assert!(matches!(status_error("x", 502, html),
            GatewayError::ProviderStatus { message, code: None, .. } if message.contains("bad gateway")));
    }
}
