//! Tests of the daemon launcher with stand-in "daemons" (shell scripts), so
//! the launcher's settings file, command line, environment, output capture,
//! readiness wait, signals and cleanup are checked before the real daemon
//! exists. A tiny in-process HTTP server on the socket plays `/healthz`.

use std::convert::Infallible;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use switchboard_testkit::Daemon;
use tokio::net::UnixListener;

/// Writes an executable `/bin/sh` script into `dir` and returns its path.
fn script(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("fake-switchboard");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("writing the stand-in script");
    let mut perms = std::fs::metadata(&path)
        .expect("stat of the script")
        .permissions();
    perms.set_mode(0o755);
    std::fs::set_permissions(&path, perms).expect("making the script executable");
    path
}

/// Serves 200 to every request on `socket` until the runtime ends.
fn serve_healthz(socket: &Path) {
    let listener = UnixListener::bind(socket).expect("binding the stand-in socket");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service_fn(|_req: Request<hyper::body::Incoming>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
}

/// Whether a process with this pid exists (zombies included).
fn alive(pid: u32) -> bool {
    let pid = libc::pid_t::try_from(pid).expect("pid fits in pid_t");
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[tokio::test]
async fn failing_daemon_reports_status_and_output_with_the_generated_settings() {
    let bin_dir = tempfile::tempdir().expect("temp dir");
    let bin = script(
        bin_dir.path(),
        r#"echo "args: $*"; echo "log=$RUST_LOG key=$FAKE_API_KEY" >&2; cat "$3"; exit 3"#,
    );
    let (status, logs) = Daemon::builder(&bin)
        .provider("fake", "http://127.0.0.1:9/v1")
        .provider_toml("fake", "timeout_ms = 500\nmax_concurrency = 4")
        .toml("[sessions]\ntimeout_ms = 2000\n[limits]\nmax = 1")
        .env("FAKE_API_KEY", "sk-test-secret")
        .log_level("debug")
        .start_expect_failure(Duration::from_secs(5))
        .await;
    assert_eq!(status.code(), Some(3));
    assert!(logs.contains("args: serve --config /"), "{logs}");
    assert!(logs.contains("/settings.toml --log-format json"), "{logs}");
    assert!(logs.contains("log=debug key=sk-test-secret"), "{logs}");
    let expected = "[providers.fake]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n\
                    api_key_env = \"FAKE_API_KEY\"\ntimeout_ms = 500\nmax_concurrency = 4\n";
    assert!(logs.contains(expected), "{logs}");
    assert!(
        logs.contains("[sessions]\ntimeout_ms = 2000\n[shutdown]\ndrain_timeout_ms = 10000\n"),
        "{logs}"
    );
    assert!(logs.contains("[limits]\nmax = 1\n"), "{logs}");
    assert!(logs.contains("[server]\nsocket = \"/"), "{logs}");
    assert_eq!(logs.matches("timeout_ms = 2000").count(), 1, "{logs}");
}

#[tokio::test]
#[should_panic(expected = "before becoming ready")]
async fn start_panics_with_logs_when_the_daemon_exits_early() {
    let bin_dir = tempfile::tempdir().expect("temp dir");
    let bin = script(bin_dir.path(), "echo boom >&2; exit 1");
    Daemon::builder(bin).start().await;
}

#[tokio::test]
async fn running_daemon_is_ready_signalled_waited_and_reaped() {
    let bin_dir = tempfile::tempdir().expect("temp dir");
    let socket = bin_dir.path().join("sb.sock");
    serve_healthz(&socket);
    let bin = script(bin_dir.path(), "echo started; exec sleep 30");
    let daemon = Daemon::builder(bin).socket(&socket).start().await;
    assert_eq!(daemon.socket(), socket);
    assert!(daemon.config_path().starts_with(daemon.dir()));
    let resp = daemon
        .client()
        .get(daemon.url("/healthz"))
        .send()
        .await
        .expect("GET over the socket");
    assert_eq!(resp.status(), 200);
    assert!(daemon.wait_exit(Duration::from_millis(50)).await.is_none());
    daemon.signal(libc::SIGTERM);
    let status = daemon
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("exits on SIGTERM");
    assert!(!status.success());
    assert!(daemon.logs().contains("started"), "{}", daemon.logs());
    daemon.signal(libc::SIGTERM); // reaped: must be a no-op
}

#[tokio::test]
async fn dropping_a_daemon_kills_and_reaps_it_and_removes_its_dir() {
    let bin_dir = tempfile::tempdir().expect("temp dir");
    let socket = bin_dir.path().join("sb.sock");
    serve_healthz(&socket);
    let bin = script(bin_dir.path(), "exec sleep 30");
    let daemon = Daemon::builder(bin).socket(&socket).start().await;
    let (pid, dir) = (daemon.pid(), daemon.dir().to_path_buf());
    assert!(alive(pid));
    drop(daemon);
    assert!(
        !alive(pid),
        "the child is still there (or a zombie) after drop"
    );
    assert!(!dir.exists());
}
