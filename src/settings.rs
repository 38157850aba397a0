//! The daemon's settings: `settings.toml` (or `--config PATH`), then
//! `SWITCHBOARD__SECTION__KEY` environment variables on top.
//!
//! Without `--config` the daemon uses the `settings.toml` of this repository,
//! compiled in, so a fresh install runs with the documented defaults. With
//! `--config PATH` only that file is read (keys it leaves out take the
//! defaults in code). The actors' sections are handed to them as plain
//! structs; `[server]` stays here. An invalid setting stops the daemon at start
//! with a message naming the key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use switchboard_actors::settings::{
    ActorSettings, ClientSettings, HistorySettings, LifecycleSettings, MetricsSettings,
    ProviderSettings, SessionSettings, ShutdownSettings,
};

/// The defaults, as documented in the repository's `settings.toml`.
pub const DEFAULT_SETTINGS: &str = include_str!("../settings.toml");

/// Everything the daemon is configured with. The actors' sections repeat
/// [`ActorSettings`]'s fields rather than flattening it: serde cannot combine
/// `flatten` with `deny_unknown_fields`, and unknown keys must be refused.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The socket and the HTTP server.
    #[serde(default)]
    pub server: ServerSettings,
    /// Session deadlines and limits.
    #[serde(default)]
    pub sessions: SessionSettings,
    /// What the lifecycle logger keeps.
    #[serde(default)]
    pub lifecycle: LifecycleSettings,
    /// The drain protocol.
    #[serde(default)]
    pub shutdown: ShutdownSettings,
    /// Providers by name.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderSettings>,
    /// Rate limits per calling user.
    #[serde(default)]
    pub clients: ClientSettings,
    /// Fallback chains: alias → `<provider>/<model>` targets.
    #[serde(default)]
    pub aliases: BTreeMap<String, Vec<String>>,
    /// The history file.
    #[serde(default)]
    pub history: HistorySettings,
    /// Counting sessions for `GET /metrics`.
    #[serde(default)]
    pub metrics: MetricsSettings,
}

/// The socket and the HTTP server on it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Socket path; unset means [`default_socket_path`].
    pub socket: Option<PathBuf>,
    /// Permissions of the socket file. Only the owner by default: whoever can
    /// connect can spend the owner's provider quota.
    #[serde(deserialize_with = "octal_mode", serialize_with = "octal_text")]
    pub socket_mode: u32,
    /// Largest request body accepted; larger ones get 413. 4 MiB holds a
    /// 1M-character context, which no configured model exceeds.
    pub max_body_bytes: usize,
    /// Shards: threads that each accept connections and serve them with
    /// their own supervisor, sessions and provider connections, limits and
    /// queue shared. 0 means one per core.
    pub workers: usize,
    /// How long an idle keep-alive connection stays open, in milliseconds.
    /// Clients reuse connections across requests seconds apart; a minute
    /// avoids reconnects without holding dead ones long.
    pub keep_alive_ms: u64,
    /// How long a client may take to send a request's head once its first
    /// byte arrived, in milliseconds; then the connection is closed. Clients
    /// on this machine send a head in one write; ten seconds only ends a
    /// client that stalled, without holding its connection for a minute.
    pub header_timeout_ms: u64,
    /// How long a client may take to send a request's body after its head,
    /// in milliseconds; then it gets 408 and its session ends TIMEOUT. A
    /// 4 MiB body crosses a Unix socket in milliseconds even from a slow
    /// interpreter, so ten seconds only ends a client that stalled.
    pub body_timeout_ms: u64,
    /// Users besides the daemon's own that may connect (by SO_PEERCRED uid);
    /// everyone else gets 403. The socket's mode is the first gate, this the
    /// second.
    pub allowed_uids: Vec<u32>,
    /// A loopback TCP address serving the whole API, for tools that take
    /// only a base URL. Each connection is attributed to the uid owning the
    /// client's socket, then `allowed_uids` applies. Unset: none.
    pub listen_tcp: Option<SocketAddr>,
    /// A loopback TCP address serving `GET /metrics` alone, for Prometheus
    /// (which cannot scrape a Unix socket). Unset: none.
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            socket: None,
            socket_mode: 0o600,
            max_body_bytes: 4 * 1024 * 1024,
            workers: 0,
            keep_alive_ms: 60_000,
            header_timeout_ms: 10_000,
            body_timeout_ms: 10_000,
            allowed_uids: Vec::new(),
            listen_tcp: None,
            metrics_listen: None,
        }
    }
}

impl ServerSettings {
    /// Shards to run: `workers`, or one per core when it is 0.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// The socket path in force.
    pub fn socket_path(&self) -> PathBuf {
        self.socket.clone().unwrap_or_else(default_socket_path)
    }
}

/// `$XDG_RUNTIME_DIR/switchboard.sock`, else `/tmp/switchboard-<uid>.sock`.
pub fn default_socket_path() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => Path::new(&dir).join("switchboard.sock"),
        // SAFETY: getuid has no preconditions and cannot fail.
        _ => PathBuf::from(format!("/tmp/switchboard-{}.sock", unsafe {
            libc::getuid()
        })),
    }
}

/// Reads a mode written as an octal string (`"0600"`) or as an integer whose
/// digits are octal (`600`, as an environment variable arrives).
fn octal_mode<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Mode {
        Text(String),
        Number(u64),
    }
    let digits = match Mode::deserialize(deserializer)? {
        Mode::Text(text) => text,
        Mode::Number(number) => number.to_string(),
    };
    let digits = digits.trim_start_matches("0o");
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|mode| *mode <= 0o777)
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "socket_mode `{digits}` is not an octal file mode like \"0600\""
            ))
        })
}

/// Writes a mode as the file spells it (`"0600"`), not as the integer 384.
fn octal_text<S: Serializer>(mode: &u32, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format!("{mode:04o}"))
}

impl Settings {
    /// Reads the settings: `path` or the defaults, then the environment.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let text = match path {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the settings file {}", path.display()))?,
            None => DEFAULT_SETTINGS.to_owned(),
        };
        let source = match path {
            Some(path) => path.display().to_string(),
            None => "the built-in settings.toml".into(),
        };
        Self::from_toml(&text, &source)
    }

    /// Reads the settings from TOML `text` (named `source` in errors), then
    /// the environment; the fuzz target `settings` feeds it arbitrary text,
    /// so it must fail with an error, never panic.
    pub fn from_toml(text: &str, source: &str) -> anyhow::Result<Self> {
        use config::{Config, Environment, File, FileFormat};
        let file = File::from_str(text, FileFormat::Toml);
        let env = Environment::with_prefix("SWITCHBOARD")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true);
        let settings: Settings = Config::builder()
            .add_source(file)
            .add_source(env)
            .build()
            .and_then(Config::try_deserialize)
            .with_context(|| {
                format!("invalid settings (from {source} and SWITCHBOARD__* variables)")
            })?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.server.max_body_bytes == 0 {
            bail!("invalid settings: server.max_body_bytes must be greater than 0");
        }
        if self.server.workers > 256 {
            bail!("invalid settings: server.workers must be at most 256 (0: one per core)");
        }
        if self.server.keep_alive_ms == 0 {
            bail!("invalid settings: server.keep_alive_ms must be greater than 0");
        }
        if self.server.header_timeout_ms == 0 {
            bail!("invalid settings: server.header_timeout_ms must be greater than 0");
        }
        if self.server.body_timeout_ms == 0 {
            bail!("invalid settings: server.body_timeout_ms must be greater than 0");
        }
        loopback_only(
            "server.metrics_listen",
            self.server.metrics_listen,
            "the scrape shows who uses the daemon",
        )?;
        loopback_only(
            "server.listen_tcp",
            self.server.listen_tcp,
            "callers are identified by the kernel's socket table, which knows only this machine's users",
        )?;
        self.actors()
            .validate()
            .map_err(|message| anyhow::anyhow!("invalid settings: {message}"))
    }

    /// The actors' part, as they take it.
    pub fn actors(&self) -> ActorSettings {
        ActorSettings {
            sessions: self.sessions.clone(),
            lifecycle: self.lifecycle.clone(),
            shutdown: self.shutdown.clone(),
            providers: self.providers.clone(),
            clients: self.clients.clone(),
            aliases: self.aliases.clone(),
            history: self.history.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// Refuses a non-loopback `addr` for `key`, saying `why` it must be one.
fn loopback_only(key: &str, addr: Option<SocketAddr>, why: &str) -> anyhow::Result<()> {
    match addr {
        Some(addr) if !addr.ip().is_loopback() => bail!(
            "invalid settings: {key} = \"{addr}\" is not a loopback address; {why}, \
             so it is served on 127.0.0.1 or [::1] only"
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_settings_load_and_configure_three_providers() {
        let settings = Settings::load(None).expect("defaults load");
        let names: Vec<_> = settings.providers.keys().map(String::as_str).collect();
        assert_eq!(names, ["glm", "kimi", "mock"]);
        assert_eq!(settings.server.socket_mode, 0o600);
    }

    #[test]
    fn socket_modes_are_octal() {
        #[derive(Deserialize)]
        struct M {
            #[serde(deserialize_with = "octal_mode")]
            m: u32,
        }
        let read = |text: &str| toml_value(text).map(|v: M| v.m);
        assert_eq!(read("m = \"0660\"").unwrap(), 0o660);
        assert_eq!(read("m = 600").unwrap(), 0o600);
        assert!(read("m = 384").is_err());
        assert!(read("m = \"rw\"").is_err());
    }

    fn toml_value<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, config::ConfigError> {
        config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()?
            .try_deserialize()
    }
}
