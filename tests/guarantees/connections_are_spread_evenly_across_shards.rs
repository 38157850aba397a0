//! With `server.workers = 2`, connections opened all at once (a client
//! filling its pool) are served by both shards, within two of each other,
//! rather than by whichever shard woke first: each shard accepts, and hands
//! a connection to the other when it already serves two more.
//!
//! Every connection carries one request to a provider that never answers,
//! so all of them are open together. `/healthz` counts each shard's open
//! connections, the test's own (the one asking) with the burst's, as the
//! daemon balances them all; so the guarantee is checked on those counts,
//! and the admin listing's shard of each session must agree with them. The
//! burst starts once the harness's start probe has gone: a connection that
//! ends mid-burst unbalances what was balanced, and none is moved after its
//! accept.

use crate::support;

use std::collections::BTreeMap;

use serde_json::Value;
use support::conn::Connection;
use support::*;
use switchboard_testkit::{FakeProvider, eventually};
use tokio::task::JoinHandle;

/// Connections in each burst.
const BURST: usize = 24;

/// How far apart the shards' counts may be: the hand-off threshold.
const UNEVEN: usize = 2;

/// Every request of a burst stays live while it is counted, however slowly
/// a loaded machine opens the burst.
const SLOW: &str = "fake/hang";

/// Opens `count` connections at once, each sending one slow request.
fn burst(socket: &std::path::Path, count: usize, tag: &str) -> Vec<JoinHandle<u16>> {
    (0..count)
        .map(|n| {
            let socket = socket.to_owned();
            let body = marked_body(SLOW, &format!("{tag}-{n}")).to_string();
            tokio::spawn(async move {
                let mut conn = Connection::open(&socket).await;
                conn.chat(&body, &[]).await.status
            })
        })
        .collect()
}

/// Live sessions by shard.
fn by_shard(live: &[Value]) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for session in live {
        let shard = session["shard"]
            .as_u64()
            .expect("each session names its shard");
        *counts.entry(shard).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_opened_at_once_are_spread_evenly_across_shards() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).toml("[server]\nworkers = 2").start().await;
    eventually("only the asking connection open", WAIT, || async {
        let (_, health) = get_json(&daemon, "/healthz").await;
        let open = health["connections"].as_array()?.iter();
        (open.filter_map(Value::as_u64).sum::<u64>() == 1).then_some(())
    })
    .await;
    let first = burst(daemon.socket(), BURST, "first");
    let live = wait_live(&daemon, BURST).await;
    let sessions = by_shard(&live);
    let (_, health) = get_json(&daemon, "/healthz").await;
    let open: Vec<usize> = serde_json::from_value(health["connections"].clone())
        .expect("/healthz counts each shard's connections");
    let [a, b] = open[..] else {
        panic!("two shards, two counts: {health}");
    };
    assert!(
        a.abs_diff(b) <= UNEVEN,
        "{BURST} connections at once: shard 0 serves {a} connections, shard 1 serves {b}"
    );
    assert!(
        a + b >= BURST,
        "the burst's connections are counted: {open:?}"
    );
    for (shard, count) in sessions {
        assert!(
            count <= open[shard as usize],
            "shard {shard} serves {count} sessions but counts {open:?} connections"
        );
    }
    for task in first {
        task.abort();
    }
}
