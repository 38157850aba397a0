//! A running session's row is in the history file while it runs (outcome
//! still empty), so when the daemon is killed outright the next daemon on
//! that file finds it and records it as INTERRUPTED, ended at its last phase
//! before the kill. Sessions that had finished keep their outcome.

use crate::support;

use std::collections::{HashMap, HashSet};

use support::records::*;
use support::*;
use switchboard_testkit::{FakeProvider, raw_post};

const HUNG: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_running_at_a_kill_are_interrupted_at_their_last_phase() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().expect("a temp dir for the history file");
    let path = dir.path().join("history.db");
    let first = daemon(&fake).toml(&history_toml(&path)).start().await;

    let answered = chat(&first, "fake/instant", false).await;
    assert_eq!(answered.status(), 200, "fake/instant is answered");
    let done_id = session_id(&answered);
    wait_rows(
        &path,
        "the answered session COMPLETED in the file",
        |rows| match rows.iter().find(|r| r.id == done_id) {
            Some(row) if row.outcome.as_deref() == Some("COMPLETED") => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;

    // Five calls that never end; their connections stay open, unread.
    let mut connections = Vec::new();
    for _ in 0..HUNG {
        connections.push(
            raw_post(
                first.socket(),
                "/v1/chat/completions",
                &body("fake/hang", false),
                &[("content-type", "application/json")],
            )
            .await,
        );
    }
    let live = wait_live(&first, HUNG).await;
    let hung: HashSet<String> = live
        .iter()
        .map(|s| s["id"].as_str().expect("live id").to_owned())
        .collect();
    assert_eq!(hung.len(), HUNG, "five distinct live sessions: {live:?}");
    for id in &hung {
        wait_last_phase(&first, id, "PROVIDER_CALL_START").await;
    }

    // Their open rows reach the file, up to their last phase so far.
    let open: HashMap<String, StoredRow> =
        wait_rows(&path, "five open rows up to PROVIDER_CALL_START", |rows| {
            let open: Vec<&StoredRow> = rows.iter().filter(|r| r.outcome.is_none()).collect();
            let current = open.len() == HUNG
                && open.iter().all(|r| {
                    hung.contains(&r.id)
                        && r.phases.last().map(|p| p.phase.as_str()) == Some("PROVIDER_CALL_START")
                });
            if current {
                Ok(open
                    .into_iter()
                    .map(|r| (r.id.clone(), r.clone()))
                    .collect())
            } else {
                Err(format!("{open:#?}"))
            }
        })
        .await;

    first.signal(libc::SIGKILL);
    let status = first
        .wait_exit(EXIT)
        .await
        .expect("the killed daemon is gone");
    assert!(!status.success(), "killed, not exited: {status:?}");
    drop(connections);

    let second = daemon(&fake).toml(&history_toml(&path)).start().await;
    let interrupted = history(&second, "outcome=INTERRUPTED").await;
    let listed: HashSet<String> = ids_of(&interrupted).into_iter().collect();
    assert_eq!(
        listed, hung,
        "?outcome=INTERRUPTED lists exactly the five that were running: {interrupted}"
    );
    for session in interrupted["sessions"].as_array().expect("sessions") {
        let id = session["id"].as_str().expect("id");
        let before = &open[id];
        assert_eq!(session["outcome"], "INTERRUPTED", "{session}");
        assert_eq!(session["error_code"], "interrupted", "{session}");
        let ended = rfc3339_ms(&session["ended_at"]);
        let last = before.last_phase_ms().expect("a phase");
        assert!(
            (ended as f64 - last).abs() <= 2.0,
            "{id}: ended_at {ended} is the time of its last phase before the kill, {last}: {session}"
        );

        let (status, timeline) = get_json(&second, &format!("/admin/sessions/{id}")).await;
        assert_eq!(status, 200, "{id} is found in the file: {timeline}");
        assert_eq!(timeline["live"], false, "{timeline}");
        let mut expected = before.phase_names();
        expected.push("INTERRUPTED".to_owned());
        assert_eq!(
            timeline_phases(&timeline),
            expected,
            "{id}: the phases it had, then INTERRUPTED: {timeline}"
        );
        let phases = timeline["phases"].as_array().expect("phases");
        let last_at = rfc3339_ms(&phases[phases.len() - 2]["at"]);
        assert!(
            (ended - last_at).abs() <= 2,
            "{id}: ended_at {ended} is its last phase's `at` {last_at}: {timeline}"
        );
    }

    let completed = history(&second, "outcome=COMPLETED").await;
    assert_eq!(
        ids_of(&completed),
        [done_id.as_str()],
        "the session that had finished stays COMPLETED: {completed}"
    );
    let all = history(&second, "").await;
    assert_eq!(
        ids_of(&all).len(),
        HUNG + 1,
        "nothing else in the history: {all}"
    );

    // And on disk: no row is left open.
    let stored = rows(&path);
    assert_eq!(stored.len(), HUNG + 1, "{stored:#?}");
    assert!(
        stored.iter().all(|r| r.outcome.is_some()),
        "no open row after recovery: {stored:#?}"
    );
}
