//! The `chat` tool: one `POST /v1/chat/completions` to the daemon, so the
//! call gets a session, the queue, deadlines, limits and a history row.
//!
//! Without a progress token the answer is read whole. With one, the daemon
//! is asked for a stream and each text delta goes to the MCP client as a
//! progress notification as it arrives; the result is the whole text either
//! way. The result carries the session (`x-session-id`, or the answer's
//! `session` object), the provider and model that answered, and the usage.

use std::time::Instant;

use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::StreamExt;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{Method, Response, StatusCode};
use rmcp::model::{CallToolResult, ContentBlock, ProgressNotificationParam, ProgressToken};
use rmcp::{Peer, RoleServer};
use serde_json::{Map, Value, json};

use super::args::ChatArgs;
use super::daemon::{Failure, Link, MAX_ANSWER_BYTES, SESSION_HEADER};
use crate::client::error_fields;

/// Where a streamed answer's deltas go: the MCP client that asked, under
/// the progress token it gave.
pub struct Progress {
    /// The client.
    pub peer: Peer<RoleServer>,
    /// Its token for this call.
    pub token: ProgressToken,
}

/// An answer, ready to become the tool's result.
struct Answer {
    /// The answer text.
    text: String,
    /// `choices[0].finish_reason`.
    finish_reason: Option<String>,
    /// `{id, request_id, provider, model, duration_ms}`.
    session: Value,
    /// The provider's `usage` object, if it reported one.
    usage: Option<Value>,
    /// Whether it came as a stream.
    streamed: bool,
}

/// Runs the call; a failure is a tool error carrying the daemon's message.
pub async fn run(
    link: &Link,
    args: &ChatArgs,
    metadata: Option<Value>,
    progress: Option<Progress>,
) -> CallToolResult {
    let started = Instant::now();
    let outcome = match send(link, args, metadata, progress.is_some()).await {
        Ok(response) => match progress {
            Some(progress) => stream(link, response, &progress, started).await,
            None => complete(link, response).await,
        },
        Err(failure) => Err(failure),
    };
    let ms = started.elapsed().as_millis();
    match outcome {
        Ok(answer) => {
            let id = answer.session.get("id").and_then(Value::as_str);
            tracing::info!(tool = "chat", session = id.unwrap_or("-"), model = %args.model,
                streamed = answer.streamed, ms, "answered");
            answer.into_result()
        }
        Err(failure) => {
            tracing::info!(tool = "chat", model = %args.model, failure = %failure.kind(), ms,
                "failed");
            failure.into_result()
        }
    }
}

/// Sends the request. When the daemon refuses the client's `metadata`
/// (an operator set `sessions.metadata_max_bytes` below its size), the
/// request is sent once more without it rather than failing the call.
async fn send(
    link: &Link,
    args: &ChatArgs,
    metadata: Option<Value>,
    stream: bool,
) -> Result<Response, Failure> {
    let with = metadata.is_some();
    match link.open(request(link, args, metadata, stream)).await {
        Err(Failure::Status { status, param, .. })
            if with
                && status == StatusCode::BAD_REQUEST
                && param.as_deref() == Some("metadata") =>
        {
            tracing::warn!("the daemon refused the MCP client's metadata; sending without it");
            link.open(request(link, args, None, stream)).await
        }
        other => other,
    }
}

/// The HTTP request for `args`.
fn request(
    link: &Link,
    args: &ChatArgs,
    metadata: Option<Value>,
    stream: bool,
) -> reqwest::RequestBuilder {
    let mut body = Map::new();
    body.insert("model".into(), json!(args.model));
    body.insert("messages".into(), args.messages.clone());
    body.insert("stream".into(), json!(stream));
    if stream {
        // OpenAI-compatible providers report a stream's usage only when asked.
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(max_tokens) = args.max_tokens {
        body.insert("max_tokens".into(), json!(max_tokens));
    }
    if let Some(temperature) = args.temperature {
        body.insert("temperature".into(), json!(temperature));
    }
    if let Some(metadata) = metadata {
        body.insert("metadata".into(), metadata);
    }
    let mut request = link
        .request(Method::POST, "/v1/chat/completions")
        .header(CONTENT_TYPE, "application/json")
        .body(Value::Object(body).to_string());
    if let Some(priority) = args.priority {
        request = request.header("x-priority", priority.as_str());
    }
    request
}

/// Reads a whole answer: the provider's JSON plus the daemon's `session`.
async fn complete(link: &Link, response: Response) -> Result<Answer, Failure> {
    let headers = response.headers().clone();
    let body = link.read(response).await?;
    let answer: Value = serde_json::from_slice(&body)
        .map_err(|err| Failure::Broken(format!("the daemon's answer is not JSON ({err})")))?;
    let choice = answer.pointer("/choices/0");
    let text = choice
        .and_then(|c| c.pointer("/message/content"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let session = match answer.get("session") {
        Some(session @ Value::Object(_)) => session.clone(),
        _ => header_session(&headers),
    };
    Ok(Answer {
        text,
        finish_reason: choice.and_then(finish_reason),
        session,
        usage: answer.get("usage").filter(|u| u.is_object()).cloned(),
        streamed: false,
    })
}

/// What a stream has said so far.
#[derive(Default)]
struct Streamed {
    text: String,
    finish_reason: Option<String>,
    usage: Option<Value>,
    /// The upstream model, as the chunks name it.
    model: Option<String>,
    /// Deltas sent as progress notifications.
    deltas: u64,
}

/// Relays a streamed answer's deltas as progress notifications and
/// gathers the whole text.
async fn stream(
    link: &Link,
    response: Response,
    progress: &Progress,
    started: Instant,
) -> Result<Answer, Failure> {
    let headers = response.headers().clone();
    let mut events = response.bytes_stream().eventsource();
    let mut seen = Streamed::default();
    loop {
        let data = match events.next().await {
            None => {
                return Err(Failure::Broken(
                    "the answer stream ended without [DONE]".into(),
                ));
            }
            Some(Ok(event)) => event.data,
            Some(Err(EventStreamError::Transport(err))) => return Err(link.transport(&err)),
            Some(Err(err)) => {
                return Err(Failure::Broken(format!("the answer stream broke: {err}")));
            }
        };
        if data.trim() == "[DONE]" {
            break;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(&data) else {
            continue;
        };
        if let Some(message) = error_fields(&chunk) {
            let session = header_session(&headers);
            let id = session["id"].as_str().unwrap_or("-");
            return Err(Failure::Broken(format!(
                "the answer stream failed: {message} (session {id})"
            )));
        }
        if let Some(delta) = seen.take(&chunk)? {
            let note = ProgressNotificationParam::new(progress.token.clone(), seen.deltas as f64)
                .with_message(delta);
            // A client that went away ends the service, and with it this call.
            let _ = progress.peer.notify_progress(note).await;
        }
    }
    let mut session = header_session(&headers);
    routed(link, &mut session, seen.model.take()).await;
    session["duration_ms"] = json!(started.elapsed().as_millis() as u64);
    Ok(Answer {
        text: seen.text,
        finish_reason: seen.finish_reason,
        session,
        usage: seen.usage,
        streamed: true,
    })
}

impl Streamed {
    /// Takes what one chunk says; returns its text delta, if it has one.
    fn take(&mut self, chunk: &Value) -> Result<Option<String>, Failure> {
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage.clone());
        }
        if let Some(model) = chunk.get("model").and_then(Value::as_str) {
            self.model.get_or_insert_with(|| model.to_owned());
        }
        let Some(choice) = chunk.pointer("/choices/0") else {
            return Ok(None);
        };
        if let Some(reason) = finish_reason(choice) {
            self.finish_reason = Some(reason);
        }
        // Kimi reports a stream's usage inside its last choice.
        if let Some(usage) = choice.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage.clone());
        }
        let delta = choice.pointer("/delta/content").and_then(Value::as_str);
        let Some(delta) = delta.filter(|d| !d.is_empty()) else {
            return Ok(None);
        };
        if self.text.len() + delta.len() > MAX_ANSWER_BYTES {
            return Err(Failure::Broken(format!(
                "the answer is over {} MiB",
                MAX_ANSWER_BYTES >> 20
            )));
        }
        self.text.push_str(delta);
        self.deltas += 1;
        Ok(Some(delta.to_owned()))
    }
}

/// Fills in the provider and model that served a streamed answer from the
/// daemon's record of its session (a stream's chunks name only the model);
/// if the record cannot be read, the chunks' model is all there is.
async fn routed(link: &Link, session: &mut Value, chunk_model: Option<String>) {
    session["model"] = json!(chunk_model);
    let Some(id) = session.get("id").and_then(Value::as_str) else {
        return;
    };
    let Ok(request) = link.session_request(Method::GET, id) else {
        return;
    };
    if let Ok(record) = link.json(request).await {
        for key in ["provider", "model"] {
            if let Some(value) = record.get(key).filter(|v| v.is_string()) {
                session[key] = value.clone();
            }
        }
    }
}

/// `{id, request_id, provider: null, model: null}` from the answer's headers.
fn header_session(headers: &HeaderMap) -> Value {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    json!({
        "id": header(SESSION_HEADER),
        "request_id": header("x-request-id"),
        "provider": null,
        "model": null,
    })
}

fn finish_reason(choice: &Value) -> Option<String> {
    choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

impl Answer {
    /// The tool result: the answer text, a one-line summary, and all of it
    /// as structured content.
    fn into_result(self) -> CallToolResult {
        let summary = summary(&self.session, self.usage.as_ref());
        let structured = json!({
            "text": self.text,
            "finish_reason": self.finish_reason,
            "session": self.session,
            "usage": self.usage,
            "streamed": self.streamed,
        });
        let mut result = CallToolResult::success(vec![
            ContentBlock::text(self.text),
            ContentBlock::text(summary),
        ]);
        result.structured_content = Some(structured);
        result
    }
}

/// `session <id> · <provider>/<model> · <n> tokens (<p> prompt + <c> completion)`.
fn summary(session: &Value, usage: Option<&Value>) -> String {
    let field = |key| session.get(key).and_then(Value::as_str).unwrap_or("-");
    let count = |key| usage.and_then(|u| u.get(key)).and_then(Value::as_u64);
    let tokens = match (
        count("total_tokens"),
        count("prompt_tokens"),
        count("completion_tokens"),
    ) {
        (Some(total), Some(prompt), Some(completion)) => {
            format!("{total} tokens ({prompt} prompt + {completion} completion)")
        }
        (Some(total), _, _) => format!("{total} tokens"),
        _ => "usage not reported".to_owned(),
    };
    format!(
        "session {} · {}/{} · {tokens}",
        field("id"),
        field("provider"),
        field("model")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_give_deltas_usage_and_the_finish_reason() {
        let mut seen = Streamed::default();
        let first = json!({"model": "k2", "choices": [{"delta": {"role": "assistant"}}]});
        assert!(seen.take(&first).expect("fine").is_none());
        let word = json!({"model": "k2", "choices": [{"delta": {"content": "hi "}}]});
        assert_eq!(seen.take(&word).expect("fine").as_deref(), Some("hi "));
        let last = json!({"choices": [{"delta": {}, "finish_reason": "stop",
                          "usage": {"total_tokens": 3}}]});
        assert!(seen.take(&last).expect("fine").is_none());
        assert_eq!(seen.text, "hi ");
        assert_eq!(seen.deltas, 1);
        assert_eq!(seen.model.as_deref(), Some("k2"));
        assert_eq!(seen.finish_reason.as_deref(), Some("stop"));
        assert_eq!(seen.usage, Some(json!({"total_tokens": 3})));
    }

    #[test]
    fn the_summary_names_session_route_and_tokens() {
        let session = json!({"id": "s1", "provider": "kimi", "model": "k2"});
        let usage = json!({"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7});
        assert_eq!(
            summary(&session, Some(&usage)),
            "session s1 · kimi/k2 · 7 tokens (5 prompt + 2 completion)"
        );
        assert_eq!(
            summary(&json!({}), None),
            "session - · -/- · usage not reported"
        );
    }
}
