//! The floor: nginx as a plain reverse proxy on the daemon's own hop (a Unix
//! socket in, loopback TCP with a pooled keep-alive upstream out) in front of
//! the same fake provider, run as a child with a generated config in a temp
//! dir. No gateway on this hop can do much better, so the daemon's figures
//! are also judged against it, not only against the fake provider direct.
//!
//! Which nginx: `SWITCHBOARD_BENCH_NGINX` if set (a path that does not exist
//! turns the floor off), else `nginx` on `PATH`, else `/usr/sbin/nginx`.

use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::http1::Target;
use crate::procfs::{self, Gateway};

/// How long nginx gets to answer its first request.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long nginx gets to exit after SIGQUIT (its graceful stop) before it
/// and its workers are killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The most connections per worker: every proxied request holds two (the
/// client's and the upstream one), and scenario 3 has 10,000 at once.
const WORKER_CONNECTIONS: u64 = 20_000;
/// Idle upstream connections each worker keeps to the fake provider.
pub const UPSTREAM_KEEPALIVE: u32 = 256;
/// The path nginx answers itself (200), for the readiness probe.
const READY_PATH: &str = "/floor-ready";

/// An nginx binary that runs.
#[derive(Debug, Clone)]
pub struct Nginx {
    /// Its path.
    pub path: PathBuf,
    /// What `nginx -v` says, e.g. `nginx/1.22.1`.
    pub version: String,
}

/// Finds nginx; `Err` says why there is no floor, for the report.
pub fn find_nginx() -> Result<Nginx, String> {
    let path = match std::env::var_os("SWITCHBOARD_BENCH_NGINX") {
        Some(path) => PathBuf::from(path),
        None => std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .map(|dir| dir.join("nginx"))
            .find(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx")),
    };
    let not_found = || {
        format!(
            "nginx not found (tried `{}`): `apt-get install nginx-light` to measure the floor; \
             the floor rows are skipped",
            path.display()
        )
    };
    let out = Command::new(&path)
        .arg("-v")
        .output()
        .map_err(|_| not_found())?;
    let said = String::from_utf8_lossy(&out.stderr);
    let version = said.trim().trim_start_matches("nginx version: ").to_owned();
    Ok(Nginx { path, version })
}

/// The nginx processes' limits: each worker's open files (this process's
/// limit, which nginx inherits) and connections (as many as those allow).
fn limits() -> (u64, u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into the struct we pass.
    let nofile = match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } {
        0 => limit.rlim_cur,
        _ => 1024,
    };
    (nofile, WORKER_CONNECTIONS.min(nofile.saturating_sub(64)))
}

/// The worker processes: one per core, as the daemon runs one shard per core.
pub fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The config: `dir` holds the sockets, pid and temp paths, `log` is the
/// error log, `fake` the provider. Client connections are never closed by
/// nginx (the load client's persist across rounds); streams are relayed
/// chunk by chunk (`proxy_buffering off`). As root, workers stay root so
/// they can use the private temp dir, as a non-root nginx's would.
pub fn config(dir: &Path, log: &Path, fake: SocketAddr) -> String {
    let (nofile, connections) = limits();
    // SAFETY: geteuid has no preconditions.
    let user = if unsafe { libc::geteuid() } == 0 {
        "user root;\n"
    } else {
        ""
    };
    let d = dir.display();
    format!(
        r#"{user}worker_processes {workers};
worker_rlimit_nofile {nofile};
pid {d}/nginx.pid;
error_log {log} warn;

events {{
    worker_connections {connections};
}}

http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 3600s;
    http2_max_concurrent_streams 16384;

    upstream fake {{
        server {fake};
        keepalive {UPSTREAM_KEEPALIVE};
        keepalive_requests 1000000;
        keepalive_timeout 3600s;
    }}

    server {{
        listen unix:{d}/floor.sock backlog=4096;
        listen unix:{d}/floor-h2.sock http2 backlog=4096;

        location = {READY_PATH} {{
            return 200 "ready\n";
        }}

        location / {{
            proxy_pass http://fake;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 120s;
        }}
    }}
}}
"#,
        workers = workers(),
        log = log.display(),
    )
}

/// A running nginx started by the benchmark.
pub struct Floor {
    /// The master's pid.
    pub pid: u32,
    /// Its HTTP/1.1 socket.
    pub socket: PathBuf,
    /// Its HTTP/2 prior-knowledge (h2c) socket.
    pub h2_socket: PathBuf,
    /// Its error log.
    pub log: PathBuf,
    /// The config it runs.
    pub config: String,
    /// The master process.
    child: Child,
    /// How it ended, once it did.
    ended: Option<String>,
    /// Holds the config, sockets, pid file and temp paths.
    _dir: tempfile::TempDir,
}

impl Floor {
    /// Starts `nginx` in front of `fake` and waits until it answers.
    /// `name` names its error log: `<out>/floor-<name>.log`.
    pub async fn start(
        nginx: &Nginx,
        out: &Path,
        name: &str,
        fake: SocketAddr,
    ) -> anyhow::Result<Floor> {
        let dir = tempfile::Builder::new().prefix("sb-floor").tempdir()?;
        let log = std::path::absolute(out.join(format!("floor-{name}.log")))?;
        File::create(&log)?;
        let config = config(dir.path(), &log, fake);
        let conf = dir.path().join("nginx.conf");
        fs::write(&conf, &config)?;
        let child = Command::new(&nginx.path)
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(&log)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(File::options().append(true).open(&log)?))
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", nginx.path.display()))?;
        let mut floor = Floor {
            pid: child.id(),
            socket: dir.path().join("floor.sock"),
            h2_socket: dir.path().join("floor-h2.sock"),
            log,
            config,
            child,
            ended: None,
            _dir: dir,
        };
        floor.wait_ready().await?;
        Ok(floor)
    }

    /// Polls its own location until it answers 200.
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        while !crate::daemon::answers(&self.target(), READY_PATH).await {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.ended = Some(status.to_string());
                anyhow::bail!(
                    "nginx exited before it was ready ({status}); log: {}\n{}",
                    self.log.display(),
                    self.complaints().join("\n")
                );
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "nginx did not answer within {START_TIMEOUT:?}; log: {}",
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// The HTTP/1.1 socket as a client target.
    pub fn target(&self) -> Target {
        Target::Unix(self.socket.clone())
    }

    /// The h2c socket as a client target.
    pub fn h2_target(&self) -> Target {
        Target::Unix(self.h2_socket.clone())
    }

    /// Its processes, for the CPU probe.
    pub fn gateway(&self) -> Gateway {
        Gateway::Tree(self.pid)
    }

    /// Peak resident memory so far of the master and workers, summed, KiB
    /// (each one's own peak, so at least their peak together).
    pub fn hwm_kib(&self) -> Option<u64> {
        let each = procfs::process_tree(self.pid)
            .into_iter()
            .map(|pid| procfs::status_kib(pid, "VmHWM"));
        each.sum()
    }

    /// The lines of its error log (at `warn` and above, so every line is
    /// one), for the report.
    pub fn complaints(&self) -> Vec<String> {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// SIGQUIT (nginx's graceful stop), then SIGKILL to the workers and the
    /// master if it has not exited within [`STOP_TIMEOUT`]; says how it
    /// ended.
    pub fn stop(&mut self) -> String {
        if let Some(ended) = &self.ended {
            return ended.clone();
        }
        let workers = procfs::process_tree(self.pid);
        // SAFETY: signals our own child by its pid.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGQUIT) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        let ended = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status.to_string(),
                Err(e) => break format!("wait failed: {e}"),
                Ok(None) if Instant::now() > deadline => {
                    for pid in workers.iter().rev() {
                        // SAFETY: signals the workers we started, then the
                        // master, which has not exited, so none was reaped.
                        unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) };
                    }
                    let _ = self.child.wait();
                    break format!("did not exit within {STOP_TIMEOUT:?} of SIGQUIT: killed");
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        self.ended = Some(ended.clone());
        ended
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        self.stop();
    }
}
