//! The socket file is created with mode 0600; a second daemon on the same
//! socket refuses to start while the first runs; a stale socket left by a
//! dead daemon is replaced; a file that is not a socket is never touched.

use crate::support;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::time::Duration;

use support::*;
use switchboard_testkit::FakeProvider;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_is_owner_only() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).start().await;
    let mode = std::fs::metadata(daemon.socket())
        .expect("socket exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mode {:o}", mode & 0o777);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_refuses_a_live_socket() {
    let fake = FakeProvider::start().await;
    let first = daemon(&fake).start().await;
    let (status, output) = daemon(&fake)
        .socket(first.socket())
        .start_expect_failure(Duration::from_secs(10))
        .await;
    assert!(!status.success());
    assert!(output.contains("another switchboard daemon"), "{output}");
    // The first daemon still owns and serves its socket.
    assert_eq!(chat(&first, "fake/instant", false).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_socket_is_replaced() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).expect("bind"));
    assert!(
        std::fs::metadata(&path)
            .expect("left behind")
            .file_type()
            .is_socket()
    );
    let daemon = daemon(&fake).socket(&path).start().await;
    assert_eq!(chat(&daemon, "fake/instant", false).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regular_file_is_never_replaced() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("precious.sock");
    std::fs::write(&path, "keep me").expect("write");
    let (status, output) = daemon(&fake)
        .socket(&path)
        .start_expect_failure(Duration::from_secs(10))
        .await;
    assert!(!status.success());
    assert!(output.contains("not a socket"), "{output}");
    assert_eq!(
        std::fs::read_to_string(&path).expect("still there"),
        "keep me"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_setting_stops_the_daemon_naming_the_key() {
    let fake = FakeProvider::start().await;
    let (status, output) = daemon(&fake)
        .toml("[sessions]\ntimeout_ms = \"soon\"")
        .start_expect_failure(Duration::from_secs(10))
        .await;
    assert!(!status.success());
    assert!(output.contains("timeout_ms"), "{output}");
    let (status, output) = daemon(&fake)
        .toml("[server]\nsocket_mode = \"rw\"")
        .start_expect_failure(Duration::from_secs(10))
        .await;
    assert!(!status.success());
    assert!(output.contains("socket_mode"), "{output}");
}
