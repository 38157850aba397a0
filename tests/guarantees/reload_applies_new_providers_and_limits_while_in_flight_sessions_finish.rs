//! Live reload: a provider added, one removed and a limit changed by SIGHUP
//! take effect for new requests, while a session in flight on the removed
//! provider finishes 200; an invalid file sent by `POST /admin/reload` is
//! refused whole (400 naming the key) and the old settings keep serving; a
//! `server.workers` change is reported as needing a restart; `switchboard
//! reload` prints what changed.

use crate::support;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::*;
use switchboard_testkit::FakeProvider;
use switchboard_testkit::wait::eventually;

/// Generous for a shared, noisy machine.
const WAIT: Duration = Duration::from_secs(20);

async fn post_reload(daemon: &Daemon) -> (u16, Value) {
    let response = daemon
        .client()
        .post(daemon.url("/admin/reload"))
        .send()
        .await
        .expect("the daemon answers /admin/reload");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON answer"))
}

async fn status_of(daemon: &Daemon, model: &str) -> u16 {
    chat(daemon, model, false).await.status().as_u16()
}

async fn max_concurrency(daemon: &Daemon, provider: &str) -> Option<u64> {
    let (_, listing) = get_json(daemon, "/admin/providers").await;
    let providers = listing["providers"].as_array().cloned().unwrap_or_default();
    providers
        .iter()
        .find(|p| p["name"] == provider)
        .and_then(|p| p["max_concurrency"].as_u64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_new_providers_and_limits_while_in_flight_sessions_finish() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .provider("old", &fake.base_url())
        .provider_toml("fake", "max_concurrency = 1")
        .env("OLD_API_KEY", FAKE_KEY)
        .toml("[server]\nworkers = 2\n")
        .start()
        .await;
    let started = std::fs::read_to_string(daemon.config_path()).expect("read settings");
    assert_eq!(max_concurrency(&daemon, "fake").await, Some(1));

    // A slow session on the provider about to be removed.
    let in_flight = spawn_chat(&daemon, &marked_body("old/delay-3000", "slow"), &[]);
    wait_live(&daemon, 1).await;

    let reloaded = started
        .replace("[providers.old]", "[providers.added]")
        .replace("max_concurrency = 1", "max_concurrency = 3")
        .replace("workers = 2", "workers = 3");
    assert_ne!(reloaded, started, "the test's edit applies to the file");
    std::fs::write(daemon.config_path(), &reloaded).expect("write settings");
    daemon.signal(libc::SIGHUP);

    let what = "the added provider to serve after SIGHUP";
    eventually(what, WAIT, || async {
        (status_of(&daemon, "added/x").await == 200).then_some(())
    })
    .await;
    assert_eq!(
        status_of(&daemon, "old/x").await,
        404,
        "new requests for the removed provider: unknown model"
    );
    assert_eq!(max_concurrency(&daemon, "fake").await, Some(3));

    // The raised limit is real: three calls run at once on `fake`.
    let three: Vec<_> = (0..3)
        .map(|n| {
            spawn_chat(
                &daemon,
                &marked_body("fake/delay-1500", &format!("c{n}")),
                &[],
            )
        })
        .collect();
    wait_listing(&daemon, "three fake sessions running at once", |sessions| {
        let running = sessions
            .iter()
            .filter(|s| s["provider"] == "fake" && s["phase"] != "QUEUED")
            .count();
        running >= 3
    })
    .await;
    for call in three {
        assert_eq!(call.await.expect("join").status(), 200);
    }

    let finished = tokio::time::timeout(WAIT, in_flight)
        .await
        .expect("timed out waiting for the in-flight session on the removed provider")
        .expect("join");
    assert_eq!(
        finished.status(),
        200,
        "a removed provider's live session finishes"
    );
    assert!(
        daemon.exit_status().is_none(),
        "SIGHUP does not end the daemon"
    );
    let logs = daemon.logs();
    assert!(logs.contains("settings reloaded"), "{logs}");

    // An invalid file is refused whole; the old settings keep serving.
    let invalid = reloaded.replace("max_concurrency = 3", "max_concurrency = 3\nbogus_key = 1");
    std::fs::write(daemon.config_path(), &invalid).expect("write settings");
    let (status, answer) = post_reload(&daemon).await;
    assert_eq!(status, 400, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("bogus_key"),
        "the refusal names the key: {answer}"
    );
    assert_eq!(status_of(&daemon, "added/x").await, 200);
    assert_eq!(status_of(&daemon, "old/x").await, 404);
    assert_eq!(max_concurrency(&daemon, "fake").await, Some(3));
    assert!(
        daemon.logs().contains("reload refused"),
        "the refusal is logged"
    );

    // The valid file again: nothing new applies, the worker count waits for a restart.
    std::fs::write(daemon.config_path(), &reloaded).expect("write settings");
    let (status, answer) = post_reload(&daemon).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["reloaded"], true);
    assert_eq!(answer["changed"], serde_json::json!([]), "{answer}");
    assert_eq!(
        answer["needs_restart"],
        serde_json::json!(["server.workers"])
    );

    // `switchboard reload` prints what changed.
    let aliased = format!("{reloaded}\n[aliases]\nfast = [\"added/x\"]\n");
    std::fs::write(daemon.config_path(), &aliased).expect("write settings");
    let run = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("reload")
        .arg("--socket")
        .arg(daemon.socket())
        .output()
        .expect("run switchboard reload");
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(out.contains("aliases.fast"), "{out}");
    assert!(
        out.contains("needs a restart") && out.contains("server.workers"),
        "{out}"
    );
    assert_eq!(
        status_of(&daemon, "fast").await,
        200,
        "the new alias serves"
    );
}
