//! Which MCP client is asking, as a chat request's `metadata`:
//! `{"mcp_client": <clientInfo.name>, "mcp_client_version": <clientInfo.version>}`,
//! so history and the admin API show which agent made each call.
//!
//! The daemon refuses `metadata` over `sessions.metadata_max_bytes` (4,096
//! by default), so both values are cut short and stripped of control
//! characters (which JSON would escape to six bytes each): the object stays
//! under 200 bytes whatever the client calls itself.

use rmcp::model::Implementation;
use serde_json::{Map, Value};

/// The most bytes of the client's name kept (names like `claude-code` or
/// `Claude Desktop` are a tenth of this).
const MAX_NAME_BYTES: usize = 64;
/// The most bytes of its version kept (semver with a build tag fits).
const MAX_VERSION_BYTES: usize = 32;

/// The metadata object for a client, or `None` when it gave no name.
pub fn metadata(client: Option<&Implementation>) -> Option<Value> {
    let client = client?;
    let name = clean(&client.name, MAX_NAME_BYTES);
    if name.is_empty() {
        return None;
    }
    let mut object = Map::new();
    object.insert("mcp_client".into(), Value::String(name));
    let version = clean(&client.version, MAX_VERSION_BYTES);
    if !version.is_empty() {
        object.insert("mcp_client_version".into(), Value::String(version));
    }
    Some(Value::Object(object))
}

/// `text` without control characters, cut to at most `max` bytes on a
/// character boundary.
fn clean(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.trim().chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn name_and_version_are_kept() {
        let client = Implementation::new("claude-code", "1.2.3");
        assert_eq!(
            metadata(Some(&client)),
            Some(json!({"mcp_client": "claude-code", "mcp_client_version": "1.2.3"}))
        );
        assert_eq!(metadata(None), None);
        assert_eq!(metadata(Some(&Implementation::new(" ", "1"))), None);
    }

    #[test]
    fn long_or_odd_names_stay_small() {
        let client = Implementation::new("é\u{1}".repeat(500), "\n".repeat(100) + &"9".repeat(99));
        let value = metadata(Some(&client)).expect("has a name");
        let name = value["mcp_client"].as_str().expect("name");
        assert!(name.len() <= MAX_NAME_BYTES && name.chars().all(|c| c == 'é'));
        assert_eq!(value["mcp_client_version"], "9".repeat(MAX_VERSION_BYTES));
        assert!(value.to_string().len() < 200, "{value}");
    }
}
