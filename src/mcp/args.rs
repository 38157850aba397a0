//! The tools' arguments, checked by hand rather than by serde: a serde
//! message quotes the value it choked on, which may be prompt text, and
//! these messages go back to the MCP client as tool errors. Each message
//! names the argument and what it must be, never what it was.

use rmcp::model::JsonObject;
use serde_json::{Value, json};

/// The longest session id accepted (ids are UUIDs, 36 characters; a
/// caller's own `x-request-id` is shorter than this too).
const MAX_ID_CHARS: usize = 128;

/// The `chat` tool's arguments, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatArgs {
    /// `<provider>/<model>` or an alias.
    pub model: String,
    /// The OpenAI `messages` array (a `prompt` becomes one user message).
    pub messages: Value,
    /// `max_tokens`, passed on.
    pub max_tokens: Option<u64>,
    /// `temperature`, passed on.
    pub temperature: Option<f64>,
    /// The queue class, sent as `x-priority`.
    pub priority: Option<Priority>,
}

/// A queue class, as the daemon's `x-priority` header takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Served first.
    High,
    /// The default.
    Normal,
    /// Served last (but promoted as it waits).
    Low,
}

impl Priority {
    /// Its `x-priority` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }
}

/// The `chat` arguments: `model`, exactly one of `prompt` and `messages`,
/// and optional `max_tokens`, `temperature`, `priority`.
pub fn chat(args: &JsonObject) -> Result<ChatArgs, String> {
    only(
        args,
        &[
            "model",
            "prompt",
            "messages",
            "max_tokens",
            "temperature",
            "priority",
        ],
    )?;
    let model = match args.get("model") {
        Some(Value::String(model)) if !model.trim().is_empty() => model.clone(),
        Some(_) => return Err("`model` must be a non-empty string".into()),
        None => return Err("`model` is required (the `models` tool lists them)".into()),
    };
    Ok(ChatArgs {
        model,
        messages: messages(args)?,
        max_tokens: max_tokens(args.get("max_tokens"))?,
        temperature: temperature(args.get("temperature"))?,
        priority: priority(args.get("priority"))?,
    })
}

/// The `id` argument of `session` and `cancel`.
pub fn session_id(args: &JsonObject) -> Result<String, String> {
    only(args, &["id"])?;
    match args.get("id") {
        Some(Value::String(id)) if !id.is_empty() && id.chars().count() <= MAX_ID_CHARS => {
            Ok(id.clone())
        }
        Some(_) => Err(format!(
            "`id` must be a session id: a string of 1 to {MAX_ID_CHARS} characters"
        )),
        None => Err("`id` is required (the `sessions` tool lists live sessions)".into()),
    }
}

/// Refuses an argument object for a tool that takes none.
pub fn none(args: &JsonObject) -> Result<(), String> {
    only(args, &[])
}

/// Refuses arguments not in `known` (named, cut short: a name is the
/// caller's text).
fn only(args: &JsonObject, known: &[&str]) -> Result<(), String> {
    match args.keys().find(|key| !known.contains(&key.as_str())) {
        None => Ok(()),
        Some(key) => {
            let shown: String = key.chars().take(32).collect();
            let expected = if known.is_empty() {
                "this tool takes no arguments".to_owned()
            } else {
                format!("expected {}", known.join(", "))
            };
            Err(format!("unknown argument `{shown}`: {expected}"))
        }
    }
}

/// `messages` as given, or `prompt` as one user message.
fn messages(args: &JsonObject) -> Result<Value, String> {
    match (args.get("prompt"), args.get("messages")) {
        (Some(_), Some(_)) => Err("give `prompt` or `messages`, not both".into()),
        (None, None) => Err("`prompt` or `messages` is required".into()),
        (Some(Value::String(prompt)), None) if !prompt.is_empty() => {
            Ok(json!([{ "role": "user", "content": prompt }]))
        }
        (Some(_), None) => Err("`prompt` must be a non-empty string".into()),
        (None, Some(Value::Array(list))) if !list.is_empty() => {
            for (index, message) in list.iter().enumerate() {
                if !message.get("role").is_some_and(Value::is_string) {
                    return Err(format!(
                        "`messages[{index}]` must be an object with a string `role`"
                    ));
                }
            }
            Ok(Value::Array(list.clone()))
        }
        (None, Some(_)) => {
            Err("`messages` must be a non-empty array of {role, content} objects".into())
        }
    }
}

fn max_tokens(value: Option<&Value>) -> Result<Option<u64>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value) => match value.as_u64() {
            Some(n) if n >= 1 => Ok(Some(n)),
            _ => Err("`max_tokens` must be a positive integer".into()),
        },
    }
}

fn temperature(value: Option<&Value>) -> Result<Option<f64>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value) => match value.as_f64() {
            Some(t) if (0.0..=2.0).contains(&t) => Ok(Some(t)),
            _ => Err("`temperature` must be a number from 0 to 2".into()),
        },
    }
}

fn priority(value: Option<&Value>) -> Result<Option<Priority>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => match text.as_str() {
            "high" => Ok(Some(Priority::High)),
            "normal" => Ok(Some(Priority::Normal)),
            "low" => Ok(Some(Priority::Low)),
            _ => Err("`priority` must be high, normal or low".into()),
        },
        Some(_) => Err("`priority` must be high, normal or low".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Value) -> JsonObject {
        value.as_object().expect("an object").clone()
    }

    #[test]
    fn a_prompt_becomes_one_user_message() {
        let args = chat(&object(json!({"model": "kimi/k2", "prompt": "hi",
            "max_tokens": 5, "temperature": 0.5, "priority": "low"})))
        .expect("valid");
        assert_eq!(args.messages, json!([{"role": "user", "content": "hi"}]));
        assert_eq!(args.max_tokens, Some(5));
        assert_eq!(args.temperature, Some(0.5));
        assert_eq!(args.priority, Some(Priority::Low));
    }

    #[test]
    fn messages_pass_through() {
        let list = json!([{"role": "system", "content": "be brief"},
                          {"role": "user", "content": [{"type": "text", "text": "hi"}]}]);
        let args = chat(&object(json!({"model": "m", "messages": list.clone()}))).expect("valid");
        assert_eq!(args.messages, list);
    }

    #[test]
    fn bad_arguments_are_named_and_never_quoted() {
        let secret = "SECRET-PROMPT-TEXT";
        let cases = [
            json!({"prompt": secret}),
            json!({"model": "", "prompt": secret}),
            json!({"model": "m"}),
            json!({"model": "m", "prompt": secret, "messages": []}),
            json!({"model": "m", "messages": secret}),
            json!({"model": "m", "messages": [secret]}),
            json!({"model": "m", "prompt": 7}),
            json!({"model": "m", "prompt": secret, "max_tokens": 0}),
            json!({"model": "m", "prompt": secret, "max_tokens": secret}),
            json!({"model": "m", "prompt": secret, "temperature": 3}),
            json!({"model": "m", "prompt": secret, "priority": secret}),
            json!({"model": "m", "prompt": "x", "extra": secret}),
        ];
        for case in cases {
            let err = chat(&object(case.clone())).expect_err("refused");
            assert!(!err.contains(secret), "{case}: {err}");
            assert!(err.contains('`'), "names the argument: {err}");
        }
    }

    #[test]
    fn session_ids_are_bounded_strings() {
        assert_eq!(session_id(&object(json!({"id": "abc"}))), Ok("abc".into()));
        assert!(session_id(&object(json!({}))).is_err());
        assert!(session_id(&object(json!({"id": 5}))).is_err());
        assert!(session_id(&object(json!({"id": "x".repeat(200)}))).is_err());
        assert!(none(&object(json!({}))).is_ok());
        assert!(none(&object(json!({"x": 1}))).is_err());
    }
}
