//! Settings of the records that outlive a session: the history file and the
//! metrics.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// `[history]`: the SQLite file every session is written to.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistorySettings {
    /// Whether sessions are written to the file at all.
    pub enabled: bool,
    /// The file; unset means [`HistorySettings::default_path`].
    pub path: Option<PathBuf>,
    /// Sessions older than this are pruned. A month answers "what happened
    /// last week" and "who spent what this month".
    pub retention_days: u32,
    /// Sessions kept at most, newest first: about 1 KB each on disk, so a
    /// million is a file of about a gigabyte at worst.
    pub max_sessions: u64,
    /// Whether prompts and answers are stored. Off by default: they may hold
    /// anything a program sent, and the file outlives the session.
    pub record_prompts: bool,
    /// With `record_prompts`, the longest prompt or answer stored, in bytes;
    /// longer ones are cut (at a character boundary).
    pub max_record_bytes: usize,
}

impl Default for HistorySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            path: None,
            retention_days: 30,
            max_sessions: 1_000_000,
            record_prompts: false,
            max_record_bytes: 65_536,
        }
    }
}

impl HistorySettings {
    /// The file in force.
    pub fn resolved_path(&self) -> PathBuf {
        self.path.clone().unwrap_or_else(Self::default_path)
    }

    /// `$XDG_STATE_HOME/switchboard/history.db`, else
    /// `~/.local/state/switchboard/history.db` (the XDG base directory
    /// specification's place for state that should survive a restart).
    pub fn default_path() -> PathBuf {
        let state = match std::env::var_os("XDG_STATE_HOME") {
            Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
            _ => {
                let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
                Path::new(&home).join(".local/state")
            }
        };
        state.join("switchboard").join("history.db")
    }

    /// Checks what serde cannot; the error names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        if self.retention_days == 0 {
            return Err("history.retention_days must be at least 1".into());
        }
        if self.max_sessions == 0 {
            return Err("history.max_sessions must be at least 1".into());
        }
        if self.max_record_bytes == 0 {
            return Err("history.max_record_bytes must be at least 1".into());
        }
        if self
            .path
            .as_deref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err("history.path may not be empty (unset it for the default)".into());
        }
        Ok(())
    }
}

/// `[metrics]`: the counters and histograms behind `GET /metrics`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Whether sessions are counted. Off only to measure what counting costs.
    pub enabled: bool,
    /// Distinct model names kept as label values per provider that passes
    /// any name through (no `models` list); later names are counted as
    /// `_other`, so a caller cannot grow the scrape without bound.
    pub max_models_per_provider: usize,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            max_models_per_provider: 64,
        }
    }
}
