//! `switchboard env` prints the variables that point tools at the loopback
//! TCP listener (`server.listen_tcp`), in sh or fish syntax, read from the
//! settings the daemon uses; evaluated by a shell they are all the `openai`
//! and `anthropic` Python SDKs need to get answers through the daemon (the
//! key they send, `unused`, never reaches the provider). With no TCP
//! listener it prints nothing to evaluate, says on stderr how to turn it on,
//! and exits non-zero.

use crate::support;

use std::path::Path;
use std::process::{Command, Output};

use support::scrape::free_port;
use support::*;
use switchboard_testkit::FakeProvider;

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

/// Variables that would point the SDKs elsewhere than `switchboard env` does.
const FOREIGN: [&str; 7] = [
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_API_KEY",
    "http_proxy",
    "HTTP_PROXY",
];

/// `command` without the test's own SDK or switchboard variables.
fn clean(mut command: Command) -> Command {
    for name in FOREIGN {
        command.env_remove(name);
    }
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SWITCHBOARD_") {
            command.env_remove(key);
        }
    }
    command
}

/// `switchboard env --config <config> <args>`.
fn env_command(config: &Path, args: &[&str]) -> Output {
    let mut command = clean(Command::new(BIN));
    command.arg("env").arg("--config").arg(config).args(args);
    command.output().expect("running switchboard env")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchboard_env_points_the_openai_and_anthropic_sdks_at_tcp() {
    python::ensure(&["openai", "anthropic"], &["openai", "anthropic"]);
    let fake = FakeProvider::start().await;
    let port = free_port();
    let anthropic = format!("anthropic_base_url = {:?}", fake.anthropic_base_url());
    let daemon = daemon(&fake)
        .provider_toml("fake", &anthropic)
        .toml(&format!("[server]\nlisten_tcp = \"127.0.0.1:{port}\""))
        .start()
        .await;
    let config = daemon.config_path().to_owned();

    let sh = env_command(&config, &[]);
    assert!(sh.status.success(), "{}", text(&sh.stderr));
    assert_eq!(
        text(&sh.stdout),
        format!(
            "export OPENAI_BASE_URL='http://127.0.0.1:{port}/v1'\n\
             export OPENAI_API_KEY='unused'\n\
             export ANTHROPIC_BASE_URL='http://127.0.0.1:{port}'\n\
             export ANTHROPIC_AUTH_TOKEN='unused'\n"
        )
    );
    let fish = env_command(&config, &["--shell", "fish"]);
    assert!(fish.status.success(), "{}", text(&fish.stderr));
    assert_eq!(
        text(&fish.stdout),
        format!(
            "set -gx OPENAI_BASE_URL 'http://127.0.0.1:{port}/v1';\n\
             set -gx OPENAI_API_KEY 'unused';\n\
             set -gx ANTHROPIC_BASE_URL 'http://127.0.0.1:{port}';\n\
             set -gx ANTHROPIC_AUTH_TOKEN 'unused';\n"
        )
    );

    // What a user does: eval the lines, then run a program that only reads
    // the environment.
    let script = python::script("env/sdks.py");
    let line = format!(
        "eval \"$('{BIN}' env --config '{}')\" && exec python3 '{script}' fake/instant",
        config.display()
    );
    let mut shell = clean(Command::new("sh"));
    shell.args(["-c", &line]);
    let output = tokio::task::spawn_blocking(move || shell.output().expect("sh runs"))
        .await
        .expect("join");
    let answers = python::json_result(&output);
    assert!(
        answers["openai"].as_str().is_some_and(|t| !t.is_empty()),
        "{answers}"
    );
    assert!(
        answers["anthropic"].as_str().is_some_and(|t| !t.is_empty()),
        "{answers}"
    );
    let seen = fake.requests();
    assert_eq!(
        seen.len(),
        2,
        "both SDK calls reached the provider: {seen:?}"
    );
    for request in &seen {
        let headers = format!("{:?}", request.headers);
        assert!(
            headers.contains(FAKE_KEY),
            "the provider's key went upstream: {headers}"
        );
        assert!(
            !headers.contains("unused"),
            "the client's key did not: {headers}"
        );
    }
    let (_, history) = get_json(&daemon, "/admin/history").await;
    let rows = history["sessions"].as_array().cloned().unwrap_or_default();
    assert!(
        rows.iter().all(|row| row["client"]["process"] == "python3"),
        "the SDK calls are attributed to the python process: {history}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchboard_env_without_a_tcp_listener_says_how_to_turn_it_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("settings.toml");
    std::fs::write(&config, "[server]\nworkers = 1\n").expect("writing settings");
    for shell in ["sh", "fish"] {
        let off = env_command(&config, &["--shell", shell]);
        assert!(!off.status.success(), "exit status {:?}", off.status);
        assert_eq!(text(&off.stdout), "", "nothing to evaluate");
        let why = text(&off.stderr);
        assert!(
            why.contains("listen_tcp = \"127.0.0.1:8765\"") && why.contains("[server]"),
            "{why}"
        );
    }
}
