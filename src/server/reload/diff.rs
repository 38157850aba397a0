//! What a reload changes: the settings before and after, compared key by
//! key, each changed key sorted into applied live or needing a restart.
//! Used by [`super::Reloader`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::Value;

use crate::settings::Settings;

/// Keys (and whole sections) that are read once at start: the socket and
/// the HTTP server, the shard count, the logger's buffers, the drain
/// protocol, metrics registration, and where (and whether) history is kept.
const NEEDS_RESTART: &[&str] = &[
    "server",
    "lifecycle",
    "shutdown",
    "metrics",
    "sessions.metadata_max_bytes",
    "history.enabled",
    "history.path",
];

/// Provider keys only admission and rate limits read: changing them keeps
/// the provider's actors (and their connections and health).
const ADMISSION_ONLY: &[&str] = &["max_concurrency", "requests_per_minute"];

/// The keys that differ between two settings, as dotted paths
/// (`providers.glm.max_concurrency`, `aliases.fast`); a key added or removed
/// is named once, not by its leaves.
pub fn changed_keys(old: &Settings, new: &Settings) -> Vec<String> {
    let (old, new) = (to_value(old), to_value(new));
    let mut out = Vec::new();
    walk(&old, &new, "", &mut out);
    out
}

fn to_value(settings: &Settings) -> Value {
    // Settings are plain data: serializing them cannot fail.
    serde_json::to_value(settings).unwrap_or(Value::Null)
}

fn walk(old: &Value, new: &Value, at: &str, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let path = match at {
                    "" => key.clone(),
                    _ => format!("{at}.{key}"),
                };
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => walk(x, y, &path, out),
                    _ => out.push(path),
                }
            }
        }
        _ if old != new => out.push(at.to_owned()),
        _ => {}
    }
}

/// Whether `key` can only take effect after a restart.
pub fn needs_restart(key: &str) -> bool {
    NEEDS_RESTART.iter().any(|prefix| {
        key == *prefix
            || key
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// `new` with every key that needs a restart kept as it is in `old`: what
/// is applied live.
pub fn applicable(old: &Settings, new: &Settings) -> Settings {
    let mut applied = new.clone();
    applied.server = old.server.clone();
    applied.lifecycle = old.lifecycle.clone();
    applied.shutdown = old.shutdown.clone();
    applied.metrics = old.metrics.clone();
    applied.sessions.metadata_max_bytes = old.sessions.metadata_max_bytes;
    applied.history.enabled = old.history.enabled;
    applied.history.path = old.history.path.clone();
    applied
}

/// Providers of both `old` and `new` whose actors must start afresh: a key
/// their actor reads changed (anything but [`ADMISSION_ONLY`]).
pub fn changed_providers(old: &Settings, new: &Settings) -> HashSet<String> {
    new.providers
        .iter()
        .filter(|(name, p)| {
            old.providers
                .get(*name)
                .is_some_and(|was| actor_view(was) != actor_view(p))
        })
        .map(|(name, _)| name.clone())
        .collect()
}

fn actor_view(provider: &impl serde::Serialize) -> Value {
    let mut value = serde_json::to_value(provider).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        for key in ADMISSION_ONLY {
            map.remove(*key);
        }
    }
    value
}

/// A fingerprint of each provider's API key as the environment holds it
/// now, so a reload sees a rotated key without keeping or showing it.
pub fn key_prints(settings: &Settings) -> HashMap<String, u64> {
    settings
        .providers
        .iter()
        .map(|(name, p)| {
            let key = p.api_key_env.as_deref().and_then(|v| std::env::var(v).ok());
            let mut hasher = DefaultHasher::new();
            key.hash(&mut hasher);
            (name.clone(), hasher.finish())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Settings {
        let dir = std::env::temp_dir().join(format!("sb-diff-{}", uuid::Uuid::now_v7()));
        std::fs::write(&dir, text).expect("write settings");
        let settings = Settings::load(Some(&dir)).expect("settings load");
        let _ = std::fs::remove_file(&dir);
        settings
    }

    #[test]
    fn changed_keys_name_leaves_and_whole_added_entries() {
        let old = load("[providers.a]\nkind = \"mock\"\nmax_concurrency = 2\n");
        let new = load(
            "[server]\nworkers = 3\n[providers.a]\nkind = \"mock\"\nmax_concurrency = 4\n\
             [providers.b]\nkind = \"mock\"\n[aliases]\nfast = [\"a/x\"]\n",
        );
        let keys = changed_keys(&old, &new);
        assert_eq!(
            keys,
            [
                "aliases.fast",
                "providers.a.max_concurrency",
                "providers.b",
                "server.workers"
            ]
        );
        let restart: Vec<&String> = keys.iter().filter(|k| needs_restart(k)).collect();
        assert_eq!(restart, ["server.workers"]);
        assert!(
            changed_providers(&old, &new).is_empty(),
            "a cap is admission's alone"
        );
        assert_eq!(applicable(&old, &new).server.workers, old.server.workers);
    }
}
