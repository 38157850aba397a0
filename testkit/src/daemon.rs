//! A running `switchboard` daemon child process: [`Daemon`].
//!
//! Integration tests (root package `tests/`) and the load benchmark build a
//! [`Daemon`] with [`Daemon::builder`], pointing it at a
//! [`crate::FakeProvider`]. The launcher writes `settings.toml` into a fresh
//! temp dir, runs `<bin> serve --config <file> --log-format json`, captures
//! everything the child prints, and waits until `GET /healthz` answers 200
//! on the daemon's Unix socket. Dropping the [`Daemon`] kills and reaps it.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::launch::DaemonBuilder;
use crate::lock;

/// How long [`DaemonBuilder::start`] waits for `/healthz` to answer 200.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between readiness probes.
const READY_POLL: Duration = Duration::from_millis(20);
/// How long to wait for the output readers to drain after the child exits.
const LOG_SETTLE: Duration = Duration::from_secs(1);

/// The child and, once reaped, its exit status.
struct Process {
    /// The daemon process.
    child: Child,
    /// Set once reaped; after that its pid must never be signalled again.
    status: Option<ExitStatus>,
}

impl Process {
    /// The exit status, reaping the child if it has just exited.
    fn poll(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }
}

/// A running daemon. Dropping it SIGKILLs and reaps the child and removes
/// its temp dir.
pub struct Daemon {
    /// The child process, behind a lock so `&self` methods can reap it.
    process: Mutex<Process>,
    /// The child's pid, for signals and for logs.
    pid: u32,
    /// The daemon's Unix socket.
    socket: PathBuf,
    /// The settings file it was started with.
    config: PathBuf,
    /// Everything the child printed so far (stdout and stderr, by line).
    logs: Arc<Mutex<String>>,
    /// The threads filling `logs`; they end when the child's pipes close.
    readers: Vec<JoinHandle<()>>,
    /// Pooled client handed out by [`Daemon::client`].
    client: reqwest::Client,
    /// Unpooled client for readiness probes.
    probe: reqwest::Client,
    /// The temp dir; last field so it is removed after the child is gone.
    dir: TempDir,
}

impl Daemon {
    /// Starts configuring a daemon run from `bin`, with the default settings
    /// (`sessions.timeout_ms = 30000`, `shutdown.drain_timeout_ms = 10000`).
    pub fn builder(bin: impl Into<PathBuf>) -> DaemonBuilder {
        DaemonBuilder::new(bin.into())
    }

    /// Wraps a freshly spawned child whose output readers are running.
    pub(crate) fn from_child(
        child: Child,
        socket: PathBuf,
        config: PathBuf,
        logs: Arc<Mutex<String>>,
        readers: Vec<JoinHandle<()>>,
        dir: TempDir,
    ) -> Daemon {
        Daemon {
            pid: child.id(),
            process: Mutex::new(Process {
                child,
                status: None,
            }),
            client: uds_client(&socket, true),
            probe: uds_client(&socket, false),
            socket,
            config,
            logs,
            readers,
            dir,
        }
    }

    /// The daemon's Unix socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The temp dir holding the settings file (and, by default, the socket).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The settings file the daemon was started with.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// A reqwest client connected to the daemon's socket; use it with
    /// [`Daemon::url`] (`http://localhost/...`).
    pub fn client(&self) -> reqwest::Client {
        self.client.clone()
    }

    /// `"http://localhost" + path`, the URL form the socket client expects.
    pub fn url(&self, path: &str) -> String {
        format!("http://localhost{path}")
    }

    /// Everything the child wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        lock(&self.logs).clone()
    }

    /// Sends `sig` (e.g. `libc::SIGTERM`) to the daemon; does nothing once
    /// it has been reaped (its pid may belong to someone else by then).
    pub fn signal(&self, sig: i32) {
        let process = lock(&self.process);
        if process.status.is_some() {
            return;
        }
        let pid = libc::pid_t::try_from(self.pid).expect("pid fits in pid_t");
        // SAFETY: kill has no memory-safety preconditions; the child is not
        // reaped (we hold the lock), so the pid is still ours.
        if unsafe { libc::kill(pid, sig) } == -1 {
            panic!("kill({pid}, {sig}): {}", std::io::Error::last_os_error());
        }
    }

    /// The exit status if the daemon has exited (reaping it), else `None`.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        lock(&self.process).poll()
    }

    /// Waits up to `timeout` for the daemon to exit; `None` if still running.
    /// After an exit, [`Daemon::logs`] holds all of its output.
    pub async fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                self.settle_logs().await;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Polls `/healthz` until it answers 200; panics with logs otherwise.
    pub(crate) async fn wait_ready(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.exit_status() {
                self.settle_logs().await;
                panic!(
                    "the daemon exited ({status}) before becoming ready\n{}",
                    self.logs_section()
                );
            }
            if self.healthy().await {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "the daemon did not answer 200 on GET /healthz at {} within {READY_TIMEOUT:?}\n{}",
                    self.socket.display(),
                    self.logs_section()
                );
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// Whether one `GET /healthz` answers 200 within a second.
    async fn healthy(&self) -> bool {
        let probe = self
            .probe
            .get(self.url("/healthz"))
            .timeout(Duration::from_secs(1));
        matches!(probe.send().await, Ok(resp) if resp.status() == reqwest::StatusCode::OK)
    }

    /// Waits (bounded) for the output readers to reach the end of the pipes.
    async fn settle_logs(&self) {
        let deadline = Instant::now() + LOG_SETTLE;
        while !self.readers.iter().all(JoinHandle::is_finished) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The captured output framed for a panic message.
    pub(crate) fn logs_section(&self) -> String {
        format!(
            "--- daemon pid {} output ---\n{}--- end of daemon output ---",
            self.pid,
            self.logs()
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let process = self
            .process
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if process.status.is_none() {
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
    }
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("pid", &self.pid)
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

/// A reqwest client whose every connection goes to the daemon's socket;
/// `pooled: false` keeps no idle connection (for readiness probes).
fn uds_client(socket: &Path, pooled: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().unix_socket(socket.to_path_buf());
    if !pooled {
        builder = builder.pool_max_idle_per_host(0);
    }
    builder
        .build()
        .expect("building a reqwest client over the daemon's Unix socket")
}
