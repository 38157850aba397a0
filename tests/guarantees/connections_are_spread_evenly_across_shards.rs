//! With `server.workers = 2`, connections opened all at once (a client
//! filling its pool) are served by both shards, within two of each other,
//! rather than by whichever shard woke first: each shard accepts, and hands
//! a connection to the other when it already serves two more.
//!
//! Every connection carries one request to a slow provider, so all of them
//! are live together and the admin listing says which shard serves each.

use crate::support;

use std::collections::BTreeMap;

use serde_json::Value;
use support::conn::Connection;
use support::*;
use switchboard_testkit::FakeProvider;
use tokio::task::JoinHandle;

/// Connections in each burst.
const BURST: usize = 24;

/// How far apart the shards' counts may be: the hand-off threshold.
const UNEVEN: usize = 2;

/// Long enough that every request of a burst is live while it is counted.
const SLOW: &str = "fake/delay-3000";

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
    let first = burst(daemon.socket(), BURST, "first");
    let live = wait_live(&daemon, BURST).await;
    let counts = by_shard(&live);
    let (a, b) = (
        counts.get(&0).copied().unwrap_or(0),
        counts.get(&1).copied().unwrap_or(0),
    );
    assert!(
        a.abs_diff(b) <= UNEVEN,
        "{BURST} connections at once: shard 0 serves {a}, shard 1 serves {b}"
    );
    for task in first {
        let status = task.await.expect("the request's task");
        assert_eq!(status, 200, "every request is answered");
    }
}
