//! Calls to any OpenAI-compatible chat-completions endpoint (Kimi, GLM, ...).
//!
//! One `reqwest::Client` per provider keeps a pool of keep-alive connections
//! (HTTP/2 where the provider negotiates it, or by prior knowledge when
//! configured). The API key is read once from the environment variable the
//! settings name, kept as a sensitive header value, and never logged.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, StreamExt, stream};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};

use super::sse::EventSplitter;
use super::{Call, CallFuture, Upstream};
use crate::error::{GatewayError, truncate};
use crate::settings::ProviderSettings;

/// How long to wait for a TCP (and TLS) connection to a provider.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle pooled connections are closed after this; providers' own idle
/// timeouts are typically 60–120 s, so reuse stays likely and no half-dead
/// connection is kept long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// How much of an error body is read to explain a failure.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The longest provider error message passed on to the caller.
const MAX_ERROR_MESSAGE: usize = 500;

/// Where the key comes from, and whether it was there.
enum Auth {
    /// No key configured: a local endpoint that needs none.
    None,
    /// `Authorization: Bearer …`, marked sensitive.
    Bearer(HeaderValue),
    /// A key is configured but its variable is unset: every call fails clearly.
    Missing(String),
}

/// An OpenAI-compatible provider.
pub struct Openai {
    /// Configured name, for errors.
    name: Arc<str>,
    /// The pooled client.
    client: reqwest::Client,
    /// `<base_url>/chat/completions`.
    url: reqwest::Url,
    /// The API key, if any.
    auth: Auth,
    /// Largest non-streamed answer accepted.
    max_response_bytes: usize,
}

impl Openai {
    /// Builds the client for provider `name`.
    pub fn new(name: Arc<str>, settings: &ProviderSettings) -> Result<Self, String> {
        let base = settings.base_url.as_deref().unwrap_or_default();
        let url = reqwest::Url::parse(&format!("{}/chat/completions", base.trim_end_matches('/')))
            .map_err(|err| format!("providers.{name}.base_url: {err}"))?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .tcp_nodelay(true)
            // Retries and their budget are the daemon's own (each attempt is
            // a recorded phase); redirects are not part of the chat API.
            .retry(reqwest::retry::never().max_retries_per_request(0))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")));
        if settings.http2_prior_knowledge {
            builder = builder.http2_prior_knowledge();
        }
        let client = builder
            .build()
            .map_err(|err| format!("providers.{name}: cannot build its HTTP client: {err}"))?;
        let auth = read_key(settings.api_key_env.as_deref());
        Ok(Self {
            name,
            client,
            url,
            auth,
            max_response_bytes: settings.max_response_bytes,
        })
    }

    /// The call, as a future the session runs.
    pub fn call(&self, call: Call) -> CallFuture {
        let provider = self.name.clone();
        let mut request = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(
                ACCEPT,
                if call.stream {
                    "text/event-stream"
                } else {
                    "application/json"
                },
            );
        match &self.auth {
            Auth::None => {}
            Auth::Bearer(value) => request = request.header(AUTHORIZATION, value.clone()),
            Auth::Missing(var) => {
                let error = GatewayError::MissingApiKey {
                    provider: provider.to_string(),
                    var: var.clone(),
                };
                return CallFuture(async move { Err(error) }.boxed());
            }
        }
        let request = request.body(call.body);
        let recorder = call.recorder;
        let max = self.max_response_bytes;
        let stream = call.stream;
        CallFuture(
            async move {
                recorder.attempt_started(1);
                let result = exchange(request, &provider, stream, max).await;
                match &result {
                    Ok(Upstream::Complete(_)) => recorder.attempt_ended("HTTP 200"),
                    Ok(Upstream::Stream(_)) => {}
                    Err(error) => recorder.attempt_ended(error.detail()),
                }
                result
            }
            .boxed(),
        )
    }
}

fn read_key(var: Option<&str>) -> Auth {
    let Some(var) = var else { return Auth::None };
    match std::env::var(var) {
        Ok(key) if !key.trim().is_empty() => {
            match HeaderValue::from_str(&format!("Bearer {}", key.trim())) {
                Ok(mut value) => {
                    value.set_sensitive(true);
                    Auth::Bearer(value)
                }
                Err(_) => Auth::Missing(var.to_owned()),
            }
        }
        _ => Auth::Missing(var.to_owned()),
    }
}

/// Sends the request and reads the answer (or the start of the stream).
async fn exchange(
    request: reqwest::RequestBuilder,
    provider: &str,
    stream: bool,
    max: usize,
) -> Result<Upstream, GatewayError> {
    let failed = |reason: String| GatewayError::ProviderFailed {
        provider: provider.to_owned(),
        reason,
    };
    let response = request.send().await.map_err(|err| failed(describe(&err)))?;
    let status = response.status();
    if !status.is_success() {
        let body = read_limited(response, MAX_ERROR_BODY)
            .await
            .unwrap_or_default();
        return Err(status_error(provider, status.as_u16(), &body));
    }
    if stream {
        let is_sse = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_sse {
            return Err(failed(
                "asked for a stream, the provider answered without one".into(),
            ));
        }
        return Ok(Upstream::Stream(events(response, provider.to_owned())));
    }
    let body = read_limited(response, max).await.map_err(failed)?;
    Ok(Upstream::Complete(body))
}

/// Reads a body of at most `max` bytes.
async fn read_limited(mut response: reqwest::Response, max: usize) -> Result<Bytes, String> {
    let length = response.content_length();
    if length.is_some_and(|len| len > max as u64) {
        return Err(format!("the answer is larger than {max} bytes"));
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| format!("reading the answer: {}", describe(&err)))?
    {
        if body.len() + chunk.len() > max {
            return Err(format!("the answer is larger than {max} bytes"));
        }
        if body.is_empty() && length == Some(chunk.len() as u64) {
            return Ok(chunk); // the whole body in one piece: no copy
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The answer's complete events, as the provider framed them, ending before
/// `[DONE]` (or at the end of the body).
fn events(
    response: reqwest::Response,
    provider: String,
) -> futures_util::stream::BoxStream<'static, Result<Bytes, GatewayError>> {
    let body = response.bytes_stream();
    let state = Some((body, EventSplitter::default()));
    stream::unfold(state, move |state| {
        let provider = provider.clone();
        async move {
            let (mut body, mut splitter) = state?;
            loop {
                let chunk = match body.next().await {
                    Some(Ok(chunk)) => chunk,
                    None if !splitter.has_partial() => return None,
                    None => return Some((Err(broke(provider, "it ended mid-event")), None)),
                    Some(Err(err)) => return Some((Err(broke(provider, &describe(&err))), None)),
                };
                let split = splitter.push(chunk);
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
fn finish_body<S>(mut body: S)
where
    S: futures_util::Stream + Unpin + 'static,
{
    if matches!(body.next().now_or_never(), Some(None)) {
        return;
    }
    actix_rt::spawn(async move {
        let _ = tokio::time::timeout(BODY_END_GRACE, async {
            while body.next().await.is_some() {}
        })
        .await;
    });
}

fn broke(provider: String, why: &str) -> GatewayError {
    GatewayError::ProviderFailed {
        provider,
        reason: format!("the stream broke: {why}"),
    }
}

/// A transport error in our words (reqwest's text can include the URL, never a key).
fn describe(err: &reqwest::Error) -> String {
    if err.is_connect() {
        "could not connect".into()
    } else if err.is_timeout() {
        "timed out".into()
    } else if err.is_body() || err.is_decode() {
        "the connection broke while reading the answer".into()
    } else {
        "the request failed (connection reset or protocol error)".into()
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
