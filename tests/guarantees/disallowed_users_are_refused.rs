//! Peers are identified by SO_PEERCRED: a user other than the daemon's own
//! and those in `[server] allowed_uids` gets 403 `forbidden` on every route,
//! even when the socket's mode lets it connect, and the daemon logs that it
//! refused the connection; listing the user in `allowed_uids` lets it in.
//!
//! Needs root (to run the client as another user): built by anyone else it
//! is ignored, "needs root" (`cfg(built_as_root)` comes from `build.rs`);
//! the policy itself is unit-tested in `src/server/peers.rs`.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::*;
use switchboard_testkit::{Daemon, FakeProvider};

/// Whether `path` and every directory above it let others in (x), and the
/// file itself lets others read and run it.
fn others_can_run(path: &Path) -> bool {
    let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode());
    let runnable = mode(path).is_ok_and(|m| m & 0o005 == 0o005);
    runnable
        && path
            .ancestors()
            .skip(1)
            .filter(|dir| !dir.as_os_str().is_empty())
            .all(|dir| mode(dir).is_ok_and(|m| m & 0o001 != 0))
}

/// The CLI binary at a path `NOBODY` can run: where cargo built it if that
/// is reachable, else a copy in a 0755 temp dir (kept alive by the guard).
fn runnable_cli() -> (PathBuf, Option<tempfile::TempDir>) {
    let built = PathBuf::from(env!("CARGO_BIN_EXE_switchboard"));
    if others_can_run(&built) {
        return (built, None);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let copy = dir.path().join("switchboard");
    std::fs::copy(&built, &copy).expect("copying the CLI");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    assert!(
        others_can_run(&copy),
        "{} is not runnable by others",
        copy.display()
    );
    (copy, Some(dir))
}

/// Runs `switchboard <command> --socket <socket> --json <args>` as `NOBODY`.
async fn run_as_nobody(cli: &Path, socket: &Path, subcommand: &str, args: &[&str]) -> Output {
    let mut command = Command::new(cli);
    command
        .arg(subcommand)
        .arg("--socket")
        .arg(socket)
        .arg("--json")
        .args(args)
        .current_dir("/")
        .uid(NOBODY)
        .gid(NOBODY);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SWITCHBOARD_") {
            command.env_remove(key);
        }
    }
    tokio::task::spawn_blocking(move || command.output().expect("running the CLI"))
        .await
        .expect("join")
}

/// A daemon whose socket anyone may open (mode 0666 in a 0755 directory),
/// with `extra` server settings.
async fn open_daemon(fake: &FakeProvider, extra: &str) -> Daemon {
    let daemon = daemon(fake)
        .toml(&format!("[server]\nsocket_mode = \"0666\"\n{extra}"))
        .start()
        .await;
    std::fs::set_permissions(daemon.dir(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod the daemon's dir");
    daemon
}

fn show(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(built_as_root), ignore = "needs root")]
async fn another_user_is_refused_unless_allowed() {
    assert_running_as_root();
    let (cli, _copy) = runnable_cli();
    let fake = FakeProvider::start().await;

    let daemon = open_daemon(&fake, "").await;
    let refused = run_as_nobody(&cli, daemon.socket(), "sessions", &[]).await;
    assert!(!refused.status.success(), "{}", show(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("403"),
        "{}",
        show(&refused)
    );
    let drain = run_as_nobody(&cli, daemon.socket(), "drain", &[]).await;
    assert!(!drain.status.success(), "{}", show(&drain));
    assert!(
        String::from_utf8_lossy(&drain.stderr).contains("403"),
        "{}",
        show(&drain)
    );
    let chat = run_as_nobody(&cli, daemon.socket(), "chat", &["-m", "fake/instant", "hi"]).await;
    assert!(!chat.status.success(), "{}", show(&chat));
    assert!(
        String::from_utf8_lossy(&chat.stderr).contains("403"),
        "{}",
        show(&chat)
    );
    assert_eq!(fake.request_count(), 0, "a refused chat goes nowhere");
    // The refused drain did nothing; the daemon's own user is still served.
    let health = healthz(&daemon).await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(
        chat_json(&daemon, &marked_body("fake/instant", "own"), &[])
            .await
            .status(),
        200
    );
    let logs = daemon.logs();
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("refusing a connection"))
        .collect();
    assert!(
        !warnings.is_empty() && warnings.iter().all(|line| line.contains("65534")),
        "the daemon logs the refused connections and who made them:\n{logs}"
    );

    let allowed = open_daemon(&fake, &format!("allowed_uids = [{NOBODY}]")).await;
    let listed = run_as_nobody(&cli, allowed.socket(), "sessions", &[]).await;
    assert!(listed.status.success(), "{}", show(&listed));
    let answer: serde_json::Value =
        serde_json::from_slice(&listed.stdout).expect("`sessions --json` prints JSON");
    assert!(answer["sessions"].is_array(), "{answer}");
    assert!(
        !allowed.logs().contains("refusing a connection"),
        "{}",
        allowed.logs()
    );
}
