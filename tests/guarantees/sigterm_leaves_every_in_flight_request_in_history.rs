//! SIGTERM with 200 requests in flight: the drain lets them finish, and by
//! the time the process is gone every one of them is a COMPLETED row in the
//! history file — the drain flushes history before it exits. A request that
//! arrives during the drain is refused 503 `draining`, and if it is in the
//! file at all it is recorded as that refusal.

use crate::support;

use std::collections::HashSet;
use std::time::Duration;

use support::records::*;
use support::*;
use switchboard_testkit::{FakeProvider, eventually_debug};

const IN_FLIGHT: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_in_flight_at_sigterm_is_in_the_file_after_exit() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .provider_toml("fake", "max_concurrency = 256")
        .toml("[shutdown]\ndrain_timeout_ms = 60000")
        .start()
        .await;
    let path = default_history(&daemon);
    // A connection opened before the drain, to send a request during it.
    let late = reqwest::Client::builder()
        .unix_socket(daemon.socket().to_path_buf())
        .build()
        .expect("a client on the daemon's socket");
    let health = late
        .get(daemon.url("/healthz"))
        .send()
        .await
        .expect("healthz answers");
    assert_eq!(health.status(), 200);

    // 4 s upstream: long enough for all 200 to be live at once even on a
    // slow, shared machine.
    let requests: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let request = daemon
                .client()
                .post(daemon.url("/v1/chat/completions"))
                .header("content-type", "application/json")
                .body(body("fake/delay-4000", false));
            tokio::spawn(async move {
                let response = request
                    .send()
                    .await
                    .expect("an in-flight request is answered");
                let status = response.status().as_u16();
                let id = session_id(&response);
                let _ = response.bytes().await;
                (status, id)
            })
        })
        .collect();
    let health = wait_health(&daemon, IN_FLIGHT as u64, 0).await;
    assert_eq!(health["live_sessions"], IN_FLIGHT, "{health}");

    daemon.signal(libc::SIGTERM);
    eventually_debug("the daemon to report draining", SETTLE, || async {
        let response = late.get(daemon.url("/healthz")).send().await;
        let health: serde_json::Value = match response {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(e) => return Err(e.to_string()),
        };
        if health["status"] == "draining" {
            Ok(())
        } else {
            Err(health.to_string())
        }
    })
    .await;
    let refused = late
        .post(daemon.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body("fake/instant", false))
        .send()
        .await
        .expect("a request during the drain is answered");
    assert_eq!(refused.status(), 503, "refused while draining");
    let refused_id = session_id(&refused);
    assert_eq!(error_code(refused).await, "draining");

    let mut ids = HashSet::new();
    for request in requests {
        let (status, id) = within("an in-flight answer", EXIT, request)
            .await
            .expect("a request task");
        assert_eq!(status, 200, "{id}: in flight at SIGTERM, answered in full");
        ids.insert(id);
    }
    assert_eq!(ids.len(), IN_FLIGHT, "200 distinct session ids");
    let status = daemon
        .wait_exit(Duration::from_secs(90))
        .await
        .expect("the daemon exits once drained");
    assert!(status.success(), "{status:?}\n{}", daemon.logs());

    let stored = rows(&path);
    let served: Vec<&StoredRow> = stored.iter().filter(|r| ids.contains(&r.id)).collect();
    assert_eq!(
        served.len(),
        IN_FLIGHT,
        "one row per in-flight session, {IN_FLIGHT} in all"
    );
    let distinct: HashSet<&str> = served.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(distinct.len(), IN_FLIGHT, "no session twice");
    for row in &served {
        assert_eq!(row.outcome.as_deref(), Some("COMPLETED"), "{row:?}");
        assert_eq!(row.status, Some(200), "{row:?}");
        assert_eq!(row.error_code, None, "{row:?}");
    }
    let others: Vec<&StoredRow> = stored.iter().filter(|r| !ids.contains(&r.id)).collect();
    match others.as_slice() {
        [] => eprintln!("the request refused during the drain is not in the file"),
        [row] => {
            assert_eq!(
                row.id, refused_id,
                "the only other row is the refused request"
            );
            assert_eq!(row.outcome.as_deref(), Some("REJECTED"), "{row:?}");
            assert_eq!(row.status, Some(503), "{row:?}");
            assert_eq!(row.error_code.as_deref(), Some("draining"), "{row:?}");
            eprintln!(
                "the request refused during the drain is in the file as REJECTED/503/draining"
            );
        }
        more => panic!("rows beside the 200 and the refused request: {more:#?}"),
    }
}
