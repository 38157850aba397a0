//! An overload burst leaves nothing behind: 2,000 requests at once on a
//! slow provider, ten times what the daemon takes (`sessions.max_live =
//! 100` running, `sessions.max_queued = 100` waiting), most refused 503 at
//! once; once the admitted ones have been answered and every connection
//! closed, the daemon's open descriptors are back to exactly their idle
//! count — pooled provider connections aside, at most as many as calls ran
//! at once — and its resident memory within a margin of idle. History and
//! metrics stay on: both count every request of both bursts.
//!
//! Idle is measured after a smaller burst of the same shape, so what is
//! made once (the provider pool, the shards' buffers) is part of idle.

use crate::support;

use support::conn::chat_once;
use support::footprint::{
    Footprint, assert_recorded, raise_open_file_limit, settle, wait_idle_again,
};
use support::*;
use switchboard_testkit::{Daemon, FakeProvider};

/// Requests in the burst.
const BURST: usize = 2_000;

/// Requests in the warm-up burst: it fills the daemon and is refused in part.
const WARM_UP: usize = 300;

/// `sessions.max_live`: calls running at once.
const MAX_LIVE: usize = 100;

/// `sessions.max_queued`.
const MAX_QUEUED: usize = 100;

/// Shards (`server.workers`): each has its own pool of provider
/// connections.
const WORKERS: usize = 2;

/// The most idle provider connections the daemon may keep: per shard, one
/// for each call it had running at once (at most [`MAX_LIVE`]) and as many
/// again for calls that began while a finished call's connection was still
/// on its way back to the pool (reqwest then connects anew, and pools that
/// connection too). A bound on concurrency, not on requests.
const MAX_POOLED: usize = WORKERS * 2 * MAX_LIVE;

/// Longer than it takes to send the burst, so the queue is still full when
/// its last requests arrive.
const SLOW: &str = "fake/delay-2000";

/// Sends `count` requests at once, each on a connection of its own; returns
/// how many were answered 200 and how many refused 503 `overloaded`.
async fn burst(daemon: &Daemon, count: usize) -> (usize, usize) {
    let body = marked_body(SLOW, "burst").to_string();
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let (socket, body) = (daemon.socket().to_owned(), body.clone());
            tokio::spawn(async move { chat_once(&socket, &body, &[]).await })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for task in tasks {
        let answer = task.await.expect("join");
        match answer.status {
            200 => ok += 1,
            503 => {
                let error: serde_json::Value =
                    serde_json::from_slice(&answer.body).expect("an error body is JSON");
                assert_eq!(error["error"]["code"], "overloaded", "{error}");
                refused += 1;
            }
            status => panic!("a burst request got {status}: {answer:?}"),
        }
    }
    (ok, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_files_and_memory_return_to_idle_after_an_overload_burst() {
    // The burst's client connections, and the fake provider's side of the
    // daemon's calls, are all in this process.
    raise_open_file_limit((BURST + MAX_POOLED + 256) as u64);
    let fake = FakeProvider::start().await;
    fake.set_recording(false);
    let daemon = daemon(&fake)
        .toml(&format!(
            "[server]\nworkers = {WORKERS}\n[sessions]\nmax_live = {MAX_LIVE}\nmax_queued = {MAX_QUEUED}"
        ))
        // Far above max_live (its default, 64, would bind first).
        .provider_toml("fake", "max_concurrency = 10000")
        .start()
        .await;
    let (ok, refused) = burst(&daemon, WARM_UP).await;
    assert_eq!(ok + refused, WARM_UP);
    let idle = settle(&daemon, &fake).await;

    let (ok, refused) = burst(&daemon, BURST).await;
    assert!(
        ok >= MAX_LIVE + MAX_QUEUED,
        "the daemon ran and queued what it takes: {ok} answered, {refused} refused"
    );
    assert!(
        refused >= BURST / 2,
        "most of a 10× burst is refused: {ok} answered, {refused} refused"
    );
    let after: Footprint = wait_idle_again(&daemon, &fake, idle, MAX_POOLED).await;
    eprintln!(
        "idle: {idle:?}; after a burst of {BURST} ({ok} answered, {refused} refused): {after:?}"
    );
    assert_recorded(&daemon, (WARM_UP + BURST) as u64).await;
}
