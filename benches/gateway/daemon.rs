//! The daemon under test: the release `switchboard` binary as a child
//! process with a generated settings file, its output in a log file in the
//! out dir. Readiness is `GET /healthz` over the socket; memory and CPU come
//! from `/proc`; a thread waits on the child so the moment it exits is known.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::http1::{Conn, Expect, Target};
use crate::procfs::{self, Gateway};
use crate::requests::get_request;

/// How long the daemon gets to answer its first `/healthz`.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the daemon's providers go.
pub struct Upstreams {
    /// The `fast` fake's OpenAI base URL (`fast` and `wide`).
    pub fast: String,
    /// The same fake's Anthropic base URL, so `fast` also serves
    /// `/v1/messages` (scenario 7).
    pub fast_anthropic: String,
    /// The `stuck` fake's OpenAI base URL.
    pub stuck: String,
}

/// The settings file for a daemon on `socket` whose providers go to `up`;
/// with `records`, history (a file beside the socket) and metrics are on,
/// as they are by default.
pub fn settings_toml(socket: &Path, up: &Upstreams, records: bool) -> String {
    let history = socket.with_file_name("history.db");
    format!(
        r#"[server]
socket = "{socket}"

[history]
enabled = {records}
path = "{history}"

[metrics]
enabled = {records}

[sessions]
timeout_ms = 60000
max_live = 20000

[shutdown]
drain_timeout_ms = 60000

[lifecycle]
recent_sessions = 1000

# Every provider may take every session at once: the scenarios measure the
# daemon's own cost, not its admission limits (max_concurrency defaults to 64).

# HTTP/1.1 keep-alive pool to the fake provider, which also speaks
# Anthropic's Messages API.
[providers.fast]
kind = "openai"
base_url = "{fast_url}"
anthropic_base_url = "{fast_anthropic}"
max_concurrency = 20000

# The same fake provider over HTTP/2 prior knowledge (one connection).
[providers.wide]
kind = "openai"
base_url = "{fast_url}"
http2_prior_knowledge = true
max_concurrency = 20000

# A second fake provider, for the hung requests of scenario 4.
[providers.stuck]
kind = "openai"
base_url = "{stuck_url}"
max_concurrency = 20000
"#,
        socket = socket.display(),
        history = history.display(),
        fast_url = up.fast,
        fast_anthropic = up.fast_anthropic,
        stuck_url = up.stuck,
    )
}

/// A running daemon started by the benchmark.
pub struct Daemon {
    /// Its pid.
    pub pid: u32,
    /// Its socket.
    pub socket: PathBuf,
    /// Its log (stdout and stderr).
    pub log: PathBuf,
    /// The settings it was started with.
    pub settings: String,
    /// Fires with the exit time and status when the process ends.
    exited: Option<oneshot::Receiver<(Instant, std::io::Result<ExitStatus>)>>,
    /// Whether the exit was already observed.
    gone: bool,
    /// Holds the directory of the settings file and socket.
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts `bin` with fresh settings and waits until it answers.
    /// `name` names its log file: `<out>/daemon-<name>.log`.
    pub async fn start(
        bin: &Path,
        out: &Path,
        name: &str,
        up: &Upstreams,
        records: bool,
    ) -> anyhow::Result<Daemon> {
        let dir = tempfile::Builder::new().prefix("sb-bench").tempdir()?;
        let socket = dir.path().join("sb.sock");
        let settings = settings_toml(&socket, up, records);
        let config = dir.path().join("settings.toml");
        fs::write(&config, &settings)?;
        let log = out.join(format!("daemon-{name}.log"));
        let file = File::create(&log)?;
        let mut child = wrapped(bin)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--log-format")
            .arg("json")
            .env(
                "RUST_LOG",
                std::env::var("SWITCHBOARD_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
            )
            // The fake is on loopback: a proxy the shell names is not in
            // the measured hop (the floor's nginx ignores it too).
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy")
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", bin.display()))?;
        let pid = child.id();
        let (tx, rx) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("wait-{name}"))
            .spawn(move || {
                let status = child.wait();
                let _ = tx.send((Instant::now(), status));
            })?;
        let mut daemon = Daemon {
            pid,
            socket,
            log,
            settings,
            exited: Some(rx),
            gone: false,
            _dir: dir,
        };
        daemon.wait_ready().await?;
        Ok(daemon)
    }

    /// Polls `GET /healthz` until it answers 200.
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.health().await {
                return Ok(());
            }
            if let Some(rx) = self.exited.as_mut()
                && let Ok((_, status)) = rx.try_recv()
            {
                self.gone = true;
                anyhow::bail!(
                    "the daemon exited before it was ready ({status:?}); log: {}\n{}",
                    self.log.display(),
                    tail(&self.log)
                );
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "the daemon did not answer /healthz within {START_TIMEOUT:?}; log: {}",
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether `GET /healthz` answers 200 right now.
    pub async fn health(&self) -> bool {
        answers(&self.target(), "/healthz").await
    }

    /// The daemon as a client target.
    pub fn target(&self) -> Target {
        Target::Unix(self.socket.clone())
    }

    /// Its process, for the CPU probe.
    pub fn gateway(&self) -> Gateway {
        Gateway::Process(self.pid)
    }

    /// Resident memory now, KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        procfs::status_kib(self.pid, "VmRSS")
    }

    /// Peak resident memory so far, KiB.
    pub fn hwm_kib(&self) -> Option<u64> {
        procfs::status_kib(self.pid, "VmHWM")
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        if !self.gone {
            // SAFETY: signals our own child by its pid.
            unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        }
    }

    /// Waits up to `limit` for the process to exit; returns when it did and
    /// how, or `None` if it still runs (it is left running).
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<(Instant, String)> {
        let rx = self.exited.as_mut()?;
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok((at, status))) => {
                self.gone = true;
                self.exited = None;
                let status = match status {
                    Ok(status) => status.to_string(),
                    Err(e) => format!("wait failed: {e}"),
                };
                Some((at, status))
            }
            Ok(Err(_)) => {
                self.exited = None;
                None
            }
            Err(_) => None,
        }
    }

    /// SIGTERM, then wait up to 90 s (the drain timeout is 60 s).
    /// (It is killed with SIGKILL if it is still running then.)
    pub async fn stop(mut self) -> Option<(Instant, String)> {
        self.sigterm();
        let ended = self.wait_exit(Duration::from_secs(90)).await;
        self.kill();
        ended
    }

    /// SIGKILL, if it still runs.
    pub fn kill(&mut self) {
        if let Some(rx) = self.exited.as_mut()
            && rx.try_recv().is_ok()
        {
            self.gone = true;
        }
        if !self.gone {
            // SAFETY: signals our own child by its pid.
            unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGKILL) };
            self.gone = true;
        }
    }

    /// Log lines at WARN or ERROR (the daemon runs with `RUST_LOG=warn`, so
    /// anything in the log is one), for the report.
    pub fn complaints(&self) -> Vec<String> {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether `GET path` on a new connection to `target` answers 200 within
/// 2 s right now (the readiness probe of the daemon and the floor).
pub async fn answers(target: &Target, path: &str) -> bool {
    let Ok(stream) = target.connect().await else {
        return false;
    };
    let mut conn = Conn::new(stream);
    let request = get_request(path);
    let ask = conn.exchange(&request, Expect::Any);
    matches!(
        tokio::time::timeout(Duration::from_secs(2), ask).await,
        Ok(Ok(_))
    )
}

/// The last lines of a log, for error messages.
fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// The daemon's command, run under `SWITCHBOARD_BENCH_WRAP` when it is set
/// (e.g. `heaptrack -o /tmp/sb` to see where a scenario's memory goes);
/// memory and CPU figures then describe the wrapper, so use it to profile,
/// not to measure.
fn wrapped(bin: &Path) -> Command {
    let wrap = std::env::var("SWITCHBOARD_BENCH_WRAP").unwrap_or_default();
    let mut words = wrap.split_whitespace();
    match words.next() {
        Some(program) => {
            let mut command = Command::new(program);
            command.args(words).arg(bin);
            command
        }
        None => Command::new(bin),
    }
}
