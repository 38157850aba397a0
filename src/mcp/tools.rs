//! The tools `switchboard mcp` offers, as MCP clients list them: name,
//! one-line description, input schema (and, for `chat`, output schema), and
//! hints on what each does. Which tool a call names is a [`ToolName`].
//!
//! The schemas avoid a top-level `oneOf`: some clients hand tool schemas to
//! model APIs that refuse one, so "`prompt` or `messages`" is said in the
//! descriptions and checked by `args.rs`.

use std::sync::Arc;

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::{Value, json};

/// A tool this server has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolName {
    /// A chat request through the daemon.
    Chat,
    /// `GET /v1/models`.
    Models,
    /// `GET /admin/sessions`.
    Sessions,
    /// `GET /admin/sessions/{id}`.
    Session,
    /// `DELETE /admin/sessions/{id}`.
    Cancel,
}

impl ToolName {
    /// The tool a call names, if it is one of these.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "chat" => Some(Self::Chat),
            "models" => Some(Self::Models),
            "sessions" => Some(Self::Sessions),
            "session" => Some(Self::Session),
            "cancel" => Some(Self::Cancel),
            _ => None,
        }
    }

    /// Its name on the wire (and in this process's log).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Models => "models",
            Self::Sessions => "sessions",
            Self::Session => "session",
            Self::Cancel => "cancel",
        }
    }
}

/// Every tool, in the order clients list them.
pub fn all() -> Vec<Tool> {
    vec![chat(), models(), sessions(), session(), cancel()]
}

fn chat() -> Tool {
    Tool::new(
        "chat",
        "Ask an LLM through the Switchboard daemon (queued, deadlines, recorded in history); \
         returns the answer with its session id, provider/model and token usage.",
        schema(chat_input()),
    )
    .with_raw_output_schema(schema(chat_output()))
    .with_annotations(
        ToolAnnotations::new()
            .read_only(false)
            .destructive(false)
            .open_world(true),
    )
}

/// `chat`'s arguments.
fn chat_input() -> Value {
    json!({
        "type": "object",
        "properties": {
            "model": {"type": "string", "description":
                "`<provider>/<model>` (e.g. `kimi/kimi-k2-turbo-preview`, `glm/glm-4.6`) or an alias; the `models` tool lists them"},
            "prompt": {"type": "string", "description":
                "The user message. Give this or `messages`."},
            "messages": {"type": "array", "minItems": 1, "description":
                "An OpenAI chat `messages` array ({role, content} objects). Give this or `prompt`.",
                "items": {"type": "object", "properties": {"role": {"type": "string"}, "content": {}},
                          "required": ["role"]}},
            "max_tokens": {"type": "integer", "minimum": 1, "description": "Longest answer, in tokens"},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2, "description": "Sampling temperature"},
            "priority": {"type": "string", "enum": ["high", "normal", "low"], "description":
                "Queue class while the daemon is at capacity (default normal)"}
        },
        "required": ["model"],
        "additionalProperties": false
    })
}

/// `chat`'s structured result.
fn chat_output() -> Value {
    json!({
        "type": "object",
        "properties": {
            "text": {"type": "string", "description": "The answer"},
            "finish_reason": {"type": ["string", "null"]},
            "session": {"type": "object", "description": "The daemon session that served the call",
                "properties": {
                    "id": {"type": ["string", "null"]},
                    "request_id": {"type": ["string", "null"]},
                    "provider": {"type": ["string", "null"]},
                    "model": {"type": ["string", "null"]},
                    "duration_ms": {"type": ["number", "null"]}
                }},
            "usage": {"type": ["object", "null"], "description": "Token usage as the provider reported it"},
            "streamed": {"type": "boolean"}
        },
        "required": ["text", "session", "streamed"]
    })
}

fn models() -> Tool {
    Tool::new(
        "models",
        "List the models and aliases the Switchboard daemon serves (use one as `chat`'s `model`).",
        no_arguments(),
    )
    .with_annotations(ToolAnnotations::new().read_only(true).open_world(false))
}

fn sessions() -> Tool {
    Tool::new(
        "sessions",
        "List the daemon's live sessions (running and queued), oldest first, with their phase.",
        no_arguments(),
    )
    .with_annotations(ToolAnnotations::new().read_only(true).open_world(false))
}

fn session() -> Tool {
    Tool::new(
        "session",
        "Show one session's timeline (phases, outcome, status, usage), live or from history.",
        id_argument("The session id (from `chat`, `sessions` or history)"),
    )
    .with_annotations(ToolAnnotations::new().read_only(true).open_world(false))
}

fn cancel() -> Tool {
    Tool::new(
        "cancel",
        "Cancel a live session: its caller gets an error and its provider call is aborted.",
        id_argument("The id of a live session (the `sessions` tool lists them)"),
    )
    .with_annotations(
        ToolAnnotations::new()
            .read_only(false)
            .destructive(true)
            .idempotent(true)
            .open_world(false),
    )
}

fn no_arguments() -> Arc<JsonObject> {
    schema(json!({"type": "object", "properties": {}, "additionalProperties": false}))
}

fn id_argument(description: &str) -> Arc<JsonObject> {
    schema(json!({
        "type": "object",
        "properties": {"id": {"type": "string", "description": description}},
        "required": ["id"],
        "additionalProperties": false
    }))
}

/// A schema literal as the object a [`Tool`] holds (every literal here is
/// an object).
fn schema(value: Value) -> Arc<JsonObject> {
    match value {
        Value::Object(object) => Arc::new(object),
        _ => Arc::new(JsonObject::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_parses_back_from_its_name_and_has_an_object_schema() {
        for tool in all() {
            let name = ToolName::parse(&tool.name).expect("a known tool");
            assert_eq!(name.as_str(), tool.name);
            assert_eq!(tool.input_schema.get("type"), Some(&json!("object")));
            assert!(!tool.input_schema.contains_key("oneOf"));
            let description = tool.description.as_deref().unwrap_or_default();
            assert!(!description.is_empty() && !description.contains('\n'));
        }
        assert_eq!(ToolName::parse("nope"), None);
    }
}
