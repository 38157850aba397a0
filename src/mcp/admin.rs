//! The inspecting tools: `models` (`GET /v1/models`), `sessions`
//! (`GET /admin/sessions`, the live ones with their phase), `session`
//! (`GET /admin/sessions/{id}`, one timeline, live or stored) and `cancel`
//! (`DELETE /admin/sessions/{id}`, as `switchboard cancel` does). Each
//! result is the daemon's JSON, as structured content and as text.

use std::time::Instant;

use reqwest::{Method, StatusCode};
use rmcp::model::CallToolResult;
use serde_json::Value;

use super::daemon::{Failure, Link};
use super::tools::ToolName;

/// `models`: what the daemon serves.
pub async fn models(link: &Link) -> CallToolResult {
    let started = Instant::now();
    let answer = link.json(link.request(Method::GET, "/v1/models")).await;
    finish(ToolName::Models, answer, started)
}

/// `sessions`: the live sessions, oldest first.
pub async fn sessions(link: &Link) -> CallToolResult {
    let started = Instant::now();
    let answer = link
        .json(link.request(Method::GET, "/admin/sessions"))
        .await;
    finish(ToolName::Sessions, answer, started)
}

/// `session`: one session's timeline.
pub async fn session(link: &Link, id: &str) -> CallToolResult {
    let started = Instant::now();
    let answer = match link.session_request(Method::GET, id) {
        Ok(request) => link.json(request).await,
        Err(failure) => Err(failure),
    };
    finish(ToolName::Session, answer, started)
}

/// `cancel`: cancels a live session; one that is not live is an error
/// that says so.
pub async fn cancel(link: &Link, id: &str) -> CallToolResult {
    let started = Instant::now();
    let answer = match link.session_request(Method::DELETE, id) {
        Ok(request) => link.json(request).await,
        Err(failure) => Err(failure),
    };
    let answer = answer.map_err(|failure| match failure {
        Failure::Status {
            status: StatusCode::NOT_FOUND,
            text,
            param,
            session,
        } => Failure::Status {
            status: StatusCode::NOT_FOUND,
            text: format!(
                "{text}: no live session has this id (finished sessions cannot be cancelled)"
            ),
            param,
            session,
        },
        other => other,
    });
    finish(ToolName::Cancel, answer, started)
}

/// The result of one inspecting call, logged by tool and outcome.
fn finish(tool: ToolName, answer: Result<Value, Failure>, started: Instant) -> CallToolResult {
    let ms = started.elapsed().as_millis();
    match answer {
        Ok(value) => {
            tracing::info!(tool = tool.as_str(), ms, "answered");
            // Structured content must be an object; the daemon's answers are.
            let value = match value {
                Value::Object(_) => value,
                other => serde_json::json!({ "answer": other }),
            };
            CallToolResult::structured(value)
        }
        Err(failure) => {
            tracing::info!(tool = tool.as_str(), failure = %failure.kind(), ms, "failed");
            failure.into_result()
        }
    }
}
