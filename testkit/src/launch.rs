//! Configuring and spawning the daemon: [`DaemonBuilder`].
//!
//! Used by integration tests and the load benchmark through
//! [`crate::Daemon::builder`]: it collects settings, environment and log
//! level, writes `settings.toml` into a fresh temp dir, spawns
//! `<bin> serve --config <file> --log-format json` with its output captured,
//! and hands back a [`crate::Daemon`] (after readiness, for `start`).

use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::daemon::Daemon;
use crate::lock;
use crate::settings::{Settings, toml_string};

/// Configures and starts a daemon; made by [`Daemon::builder`].
#[derive(Debug, Clone)]
pub struct DaemonBuilder {
    /// The `switchboard` binary (`env!("CARGO_BIN_EXE_switchboard")`).
    bin: PathBuf,
    /// The settings file being assembled.
    settings: Settings,
    /// Extra environment variables for the child.
    env: Vec<(String, String)>,
    /// `RUST_LOG` for the child.
    log_level: String,
    /// A chosen socket path, instead of `<tempdir>/switchboard.sock`.
    socket: Option<PathBuf>,
    /// A listening socket handed to the child as systemd's socket
    /// activation does: as fd 3, with `LISTEN_FDS=1` and `LISTEN_PID`.
    inherit: Option<Arc<OwnedFd>>,
}

impl DaemonBuilder {
    /// A builder for `bin` with the default settings.
    pub(crate) fn new(bin: PathBuf) -> DaemonBuilder {
        let mut settings = Settings::default();
        settings.set("sessions", "timeout_ms", "30000");
        settings.set("shutdown", "drain_timeout_ms", "10000");
        DaemonBuilder {
            bin,
            settings,
            env: Vec::new(),
            log_level: "info".to_owned(),
            socket: None,
            inherit: None,
        }
    }

    /// Starts the daemon as a service manager would with socket activation:
    /// `listener` (bound at `path` by the test, which keeps it) becomes the
    /// child's fd 3, with `LISTEN_FDS=1` and `LISTEN_PID` set to the child's
    /// own pid (through `sh -c 'LISTEN_PID=$$ exec …'`, as the pid is only
    /// known after the fork).
    pub fn inherit_socket(mut self, listener: &UnixListener, path: &Path) -> DaemonBuilder {
        let fd = listener
            .as_fd()
            .try_clone_to_owned()
            .expect("duplicating the listening socket for the child");
        self.inherit = Some(Arc::new(fd));
        self.socket = Some(path.to_owned());
        self
    }

    /// Adds `[providers.<name>]` with `kind = "openai"`, this `base_url` and
    /// `api_key_env = "<NAME>_API_KEY"` (e.g. `FAKE_API_KEY` for `fake`).
    pub fn provider(mut self, name: &str, base_url: &str) -> DaemonBuilder {
        let table = format!("providers.{name}");
        self.settings.set(&table, "kind", &toml_string("openai"));
        self.settings
            .set(&table, "base_url", &toml_string(base_url));
        self.settings
            .set(&table, "api_key_env", &toml_string(&api_key_env(name)));
        self
    }

    /// Adds raw TOML lines inside `[providers.<name>]` (later keys win).
    pub fn provider_toml(mut self, name: &str, lines: &str) -> DaemonBuilder {
        self.settings.merge(&format!("providers.{name}"), lines);
        self
    }

    /// Merges a raw TOML snippet into the settings file, table by table
    /// (keys before any `[table]` header are top-level; later keys win).
    pub fn toml(mut self, snippet: &str) -> DaemonBuilder {
        self.settings.merge("", snippet);
        self
    }

    /// Sets an environment variable for the child (e.g. the API key).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> DaemonBuilder {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets `RUST_LOG` for the child (default `"info"`).
    pub fn log_level(mut self, level: impl Into<String>) -> DaemonBuilder {
        self.log_level = level.into();
        self
    }

    /// Uses this socket path instead of one in the temp dir (so two daemons
    /// can be pointed at the same socket).
    pub fn socket(mut self, path: impl Into<PathBuf>) -> DaemonBuilder {
        self.socket = Some(path.into());
        self
    }

    /// The settings file as it would be written (socket not yet filled in
    /// unless [`DaemonBuilder::socket`] was given), for debugging a test.
    pub fn settings_toml(&self) -> String {
        self.settings.render()
    }

    /// Starts the daemon and waits until `GET /healthz` answers 200.
    ///
    /// Panics, with the daemon's captured output, if it exits first or is
    /// not ready within 10 s.
    pub async fn start(self) -> Daemon {
        let daemon = self.launch();
        daemon.wait_ready().await;
        daemon
    }

    /// Starts a daemon that is expected to refuse to start, waits up to
    /// `timeout` for it to exit, and returns its status and output.
    ///
    /// Panics, with the output, if it is still running after `timeout`.
    pub async fn start_expect_failure(self, timeout: Duration) -> (ExitStatus, String) {
        let daemon = self.launch();
        match daemon.wait_exit(timeout).await {
            Some(status) => (status, daemon.logs()),
            None => panic!(
                "expected the daemon to fail to start, but it was still running after {timeout:?}\n{}",
                daemon.logs_section()
            ),
        }
    }

    /// Writes the settings file and spawns the child with captured output.
    fn launch(mut self) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("switchboard-test-")
            .tempdir()
            .expect("creating the daemon's temp dir");
        let socket = self
            .socket
            .clone()
            .unwrap_or_else(|| dir.path().join("switchboard.sock"));
        let socket_text = socket.to_str().expect("the socket path must be UTF-8");
        self.settings
            .set("server", "socket", &toml_string(socket_text));
        if !self.settings.has("history", "path") {
            // Each daemon keeps its history in its own temp dir, never in
            // the developer's ~/.local/state.
            let history = dir.path().join("history.db");
            let history = history.to_str().expect("the temp dir path must be UTF-8");
            self.settings.set("history", "path", &toml_string(history));
        }
        let config = dir.path().join("settings.toml");
        std::fs::write(&config, self.settings.render())
            .expect("writing the daemon's settings.toml");

        let mut child = self.spawn(&config);
        let logs = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(capture(out, Arc::clone(&logs)));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(capture(err, Arc::clone(&logs)));
        }
        Daemon::from_child(child, socket, config, logs, readers, dir)
    }

    /// Spawns the child, retrying briefly on `ETXTBSY` (a just-written
    /// executable whose fd another thread's fork still holds).
    fn spawn(&self, config: &Path) -> Child {
        let mut attempts = 0;
        loop {
            match self.command(config).spawn() {
                Ok(child) => return child,
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempts < 50 => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("spawning the daemon {}: {e}", self.bin.display()),
            }
        }
    }

    /// The child's command line and environment.
    fn command(&self, config: &Path) -> Command {
        let mut cmd = match &self.inherit {
            Some(fd) => activated(&self.bin, fd.clone()),
            None => Command::new(&self.bin),
        };
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .arg("--log-format")
            .arg("json");
        // Keep the developer's own SWITCHBOARD_* settings and proxies out
        // of the test (a test that wants a proxy sets one with `env`).
        for (key, _) in std::env::vars_os() {
            let name = key.to_string_lossy().to_ascii_uppercase();
            if name.starts_with("SWITCHBOARD_") || PROXY_VARIABLES.contains(&name.as_str()) {
                cmd.env_remove(key);
            }
        }
        cmd.env("RUST_LOG", &self.log_level)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        die_with_parent(&mut cmd);
        cmd
    }
}

/// The variables through which the daemon calls providers through a proxy.
const PROXY_VARIABLES: [&str; 4] = ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"];

/// `sh` exec'ing `bin` with `fd` as its fd 3 and the variables of socket
/// activation; arguments added later go to `bin`.
fn activated(bin: &Path, fd: Arc<OwnedFd>) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@""#)
        .arg(bin)
        .env_remove("LISTEN_FDNAMES");
    let raw = fd.as_raw_fd();
    // SAFETY: runs in the forked child before exec and makes only
    // async-signal-safe calls (dup2, fcntl) on descriptors it owns.
    unsafe {
        cmd.pre_exec(move || {
            let _keep = &fd;
            if raw == 3 {
                // dup2 onto itself keeps close-on-exec: clear it instead.
                if libc::fcntl(3, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(raw, 3) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// `<NAME>_API_KEY`, with non-alphanumerics turned into `_`.
fn api_key_env(provider: &str) -> String {
    let name: String = provider
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{name}_API_KEY")
}

/// Makes the kernel SIGKILL the child if the test process dies without
/// running destructors (a crashed or killed `cargo test`), so no daemon
/// outlives its test run. Caveat: Linux ties this to the *thread* that
/// spawned the child, so start daemons from the test's own thread or a
/// runtime worker, not from a short-lived thread.
#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only makes
    // an async-signal-safe system call; it touches no parent memory.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// No parent-death signal outside Linux.
#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut Command) {}

/// Copies one output pipe of the child into `logs`, line by line, on a thread.
fn capture(pipe: impl Read + Send + 'static, logs: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("daemon-output".into())
        .spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut line = Vec::new();
            while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                lock(&logs).push_str(&String::from_utf8_lossy(&line));
                line.clear();
            }
        })
        .expect("spawning a thread to read the daemon's output")
}
