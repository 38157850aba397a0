//! `switchboard config check`: loads a settings file exactly as `serve` does
//! ([`Settings::load`]: the same file, the same `SWITCHBOARD__*` variables,
//! the same validation) and prints the settings in force as TOML, with
//! secrets redacted. `main` runs it; it needs no daemon.
//!
//! Redacted: the value of every key whose name holds `key` (except
//! `api_key_env`, whose value is the *name* of a variable, not a key), every
//! value under a key whose name holds `header`, and any string holding the
//! value of a variable an `api_key_env` names. The same values, and the
//! value on a source line a TOML syntax error quotes when its key is a
//! secret one, are cut out of the loader's message when the file is refused
//! ([`redacted_error`], which `serve` uses too), so no path echoes a key.

use std::path::Path;

use anyhow::{Context as _, anyhow};
use toml::{Table, Value};

use crate::cli::ConfigCheckArgs;
use crate::settings::{DEFAULT_SETTINGS, Settings};

/// What replaces a secret.
const REDACTED: &str = "<redacted>";

/// The key whose value names a variable; the one `key` that is no secret.
const KEY_ENV: &str = "api_key_env";

/// Checks the settings; prints them on success, fails with the loader's
/// message (naming the key) otherwise.
pub fn run(args: &ConfigCheckArgs) -> anyhow::Result<()> {
    let path = args.config.as_deref();
    let settings = Settings::load(path).map_err(|err| redacted_error(&err, path))?;
    let text = effective_toml(&settings)?;
    let source = match path {
        Some(path) => path.display().to_string(),
        None => "the built-in settings.toml".to_owned(),
    };
    crate::client::print_line(&format!(
        "# Valid: the settings in force, from {source} and SWITCHBOARD__* variables,\n\
         # with defaults filled in and secrets redacted. Unset optional keys are left out.\n\n{}",
        text.trim_end()
    ))
}

/// The loader's error for settings read from `path`, with secrets cut out:
/// the values of the variables `api_key_env` names, and the value on a
/// quoted source line (a TOML syntax error shows the line) whose key holds
/// `key` or `header`. `serve` reports a refusal through this too.
pub fn redacted_error(err: &anyhow::Error, path: Option<&Path>) -> anyhow::Error {
    let secrets = secrets(&key_variables_in_sources(path));
    let text = scrub(&format!("{err:#}"), &secrets);
    anyhow!(
        text.lines()
            .map(redact_snippet)
            .collect::<Vec<_>>()
            .join("\n")
    )
}

/// A source line as a TOML error quotes it (`3 | api_key = "…"`), with the
/// value cut off when its key is a secret one; other lines as they are.
fn redact_snippet(line: &str) -> String {
    let Some((number, source)) = line.split_once(" | ") else {
        return line.to_owned();
    };
    let quoted = !number.trim().is_empty() && number.trim().bytes().all(|b| b.is_ascii_digit());
    let Some((key, _)) = source.split_once('=').filter(|_| quoted) else {
        return line.to_owned();
    };
    let name = key.trim().trim_matches(['"', '\'']);
    let last = name.rsplit('.').next().unwrap_or(name);
    if is_secret_key(last) || name.to_ascii_lowercase().contains("header") {
        format!("{number} | {key}= {REDACTED}")
    } else {
        line.to_owned()
    }
}

/// The settings as TOML, with the paths that default at run time resolved
/// and secrets redacted.
pub fn effective_toml(settings: &Settings) -> anyhow::Result<String> {
    let mut effective = settings.clone();
    effective.server.socket = Some(settings.server.socket_path());
    effective.history.path = Some(settings.history.resolved_path());
    let mut table = Table::try_from(&effective).context("could not encode the settings")?;
    let names: Vec<String> = settings
        .providers
        .values()
        .filter_map(|p| p.api_key_env.clone())
        .collect();
    redact_table(&mut table, &secrets(&names));
    toml::to_string(&table).context("could not encode the settings")
}

/// Whether a key's value must never be shown.
fn is_secret_key(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    (name != KEY_ENV && name.contains("key")) || name.contains("header")
}

/// Redacts in place: secret keys' values (all of them, for a table), and
/// any string holding one of `secrets`.
fn redact_table(table: &mut Table, secrets: &[String]) {
    for (name, value) in table.iter_mut() {
        if is_secret_key(name) {
            redact_all(value);
        } else {
            redact_value(value, secrets);
        }
    }
}

fn redact_value(value: &mut Value, secrets: &[String]) {
    match value {
        Value::String(text) if secrets.iter().any(|s| text.contains(s.as_str())) => {
            *text = REDACTED.to_owned();
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact_value(v, secrets)),
        Value::Table(table) => redact_table(table, secrets),
        _ => {}
    }
}

/// Every leaf under `value` becomes [`REDACTED`]; a table keeps its key
/// names (a header's name is no secret, its value may be).
fn redact_all(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(redact_all),
        Value::Table(table) => table.iter_mut().for_each(|(_, v)| redact_all(v)),
        other => *other = Value::String(REDACTED.to_owned()),
    }
}

/// The values of the variables `names` name, where set and not empty.
fn secrets(names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .filter(|value| !value.is_empty())
        .collect()
}

/// `text` with each of `secrets` cut out.
fn scrub(text: &str, secrets: &[String]) -> String {
    secrets.iter().fold(text.to_owned(), |text, secret| {
        text.replace(secret, REDACTED)
    })
}

/// The variables named by `api_key_env` in the file and in
/// `SWITCHBOARD__PROVIDERS__*__API_KEY_ENV`, read without the loader (which
/// has just refused them), so a refusal can be scrubbed too.
fn key_variables_in_sources(path: Option<&Path>) -> Vec<String> {
    let text = match path {
        Some(path) => std::fs::read_to_string(path).unwrap_or_default(),
        None => DEFAULT_SETTINGS.to_owned(),
    };
    let mut names = Vec::new();
    if let Ok(file) = text.parse::<Table>()
        && let Some(Value::Table(providers)) = file.get("providers")
    {
        for provider in providers.values() {
            if let Some(Value::String(name)) = provider.get(KEY_ENV) {
                names.push(name.clone());
            }
        }
    }
    let from_env = std::env::vars().filter(|(name, _)| {
        name.starts_with("SWITCHBOARD__PROVIDERS__") && name.ends_with("__API_KEY_ENV")
    });
    names.extend(from_env.map(|(_, value)| value));
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Table {
        text.parse().expect("test TOML parses")
    }

    #[test]
    fn keys_and_headers_are_redacted_and_the_variable_name_is_kept() {
        let mut value = table(
            "[p]\napi_key_env = \"MY_KEY\"\napi_key = \"sk-1\"\nkey = 3\n\
             [p.headers]\nauthorization = \"Bearer x\"\n[q]\nname = \"ok\"\n",
        );
        redact_table(&mut value, &[]);
        assert_eq!(value["p"]["api_key_env"].as_str(), Some("MY_KEY"));
        assert_eq!(value["p"]["api_key"].as_str(), Some(REDACTED));
        assert_eq!(value["p"]["key"].as_str(), Some(REDACTED));
        assert_eq!(
            value["p"]["headers"]["authorization"].as_str(),
            Some(REDACTED)
        );
        assert_eq!(value["q"]["name"].as_str(), Some("ok"));
    }

    #[test]
    fn strings_holding_a_secret_are_redacted_anywhere() {
        let mut value =
            table("[p]\nbase_url = \"https://x/?k=sk-SECRET\"\nlist = [\"sk-SECRET\", \"fine\"]\n");
        redact_table(&mut value, &["sk-SECRET".to_owned()]);
        assert_eq!(value["p"]["base_url"].as_str(), Some(REDACTED));
        assert_eq!(value["p"]["list"][0].as_str(), Some(REDACTED));
        assert_eq!(value["p"]["list"][1].as_str(), Some("fine"));
    }

    #[test]
    fn keep_alive_is_not_a_key() {
        assert!(!is_secret_key("keep_alive_ms"));
        assert!(!is_secret_key("api_key_env"));
        assert!(is_secret_key("x_api_key"));
        assert!(is_secret_key("extra_headers"));
    }

    #[test]
    fn the_defaults_print_with_octal_modes_and_resolved_paths() {
        let settings = Settings::load(None).expect("defaults load");
        let text = effective_toml(&settings).expect("encodes");
        let parsed: Table = text.parse().expect("the output is TOML");
        assert_eq!(parsed["server"]["socket_mode"].as_str(), Some("0600"));
        assert!(parsed["server"]["socket"].is_str());
        assert!(parsed["history"]["path"].is_str());
        assert_eq!(
            parsed["providers"]["kimi"]["api_key_env"].as_str(),
            Some("MOONSHOT_API_KEY")
        );
    }

    #[test]
    fn a_quoted_source_line_loses_a_secret_value_only() {
        assert_eq!(
            redact_snippet("3 | api_key = \"sk-1"),
            format!("3 | api_key = {REDACTED}")
        );
        assert_eq!(
            redact_snippet("12 | headers.authorization = \"Bearer x\" y"),
            format!("12 | headers.authorization = {REDACTED}")
        );
        assert_eq!(redact_snippet("3 | timeout_ms = 3x"), "3 | timeout_ms = 3x");
        assert_eq!(redact_snippet("  |          ^"), "  |          ^");
        assert_eq!(redact_snippet("no | key = x"), "no | key = x");
    }

    #[test]
    fn scrub_cuts_every_secret_out_of_a_message() {
        let message = "bad value `sk-1` for key x; again sk-1";
        assert_eq!(
            scrub(message, &["sk-1".to_owned()]),
            "bad value `<redacted>` for key x; again <redacted>"
        );
    }
}
