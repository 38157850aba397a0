//! With `server.workers = 2` the daemon's limits are one limit, not one per
//! shard: a provider's `max_concurrency` and `sessions.max_live` bound the
//! calls of both shards together, exactly — the slow fake provider never
//! sees more at once, does see that many, and every request is answered.
//!
//! Each request comes on a connection of its own, so the kernel hands them
//! to either shard; the admin listing says which shard serves each
//! session, and requests are sent until both shards hold more than the
//! limit (so a limit kept per shard would show up as twice the calls).

use crate::support;

use std::cell::Cell;
use std::collections::BTreeMap;

use support::conn::{Answer, chat_once};
use support::*;
use switchboard_testkit::{Daemon, FakeProvider, eventually_debug};
use tokio::task::JoinHandle;

/// At least this many requests, as the guarantee's wording asks (40+).
const AT_LEAST: usize = 40;

/// Requests each shard must hold: more than the limits below, so that a
/// per-shard limit would let the fake see more than the limit at once.
const PER_SHARD: usize = 8;

/// How many requests may be sent trying to reach [`PER_SHARD`] on both
/// shards; connections land on either shard at random (one shard can take
/// most of a run), so this is far above the expected ~50.
const MAX_SENT: usize = 200;

/// A call long enough that the requests pile up behind the limit.
const SLOW: &str = "fake/delay-300";

/// Requests sent, by `x-request-id`, with the shard that took each.
struct Sent {
    /// The answers to come.
    tasks: Vec<JoinHandle<Answer>>,
    /// `x-request-id` → shard.
    shards: BTreeMap<String, u64>,
}

impl Sent {
    /// How many requests each shard took, by shard.
    fn per_shard(&self) -> BTreeMap<u64, usize> {
        let mut counts = BTreeMap::new();
        for shard in self.shards.values() {
            *counts.entry(*shard).or_default() += 1;
        }
        counts
    }

    /// Whether both shards took [`PER_SHARD`] and [`AT_LEAST`] were sent.
    fn spread(&self) -> bool {
        let counts = self.per_shard();
        self.tasks.len() >= AT_LEAST && (0..2).all(|s| counts.get(&s) >= Some(&PER_SHARD))
    }
}

/// Sends slow requests one after another, each on its own connection, and
/// learns from the listing which shard took each before sending the next;
/// stops once [`Sent::spread`] holds. Earlier requests keep running (or
/// waiting) meanwhile: they are all in flight together.
async fn send_until_spread(daemon: &Daemon) -> Sent {
    let mut sent = Sent {
        tasks: Vec::new(),
        shards: BTreeMap::new(),
    };
    while !sent.spread() {
        assert!(
            sent.tasks.len() < MAX_SENT,
            "{MAX_SENT} connections did not reach {PER_SHARD} on each shard: {:?}",
            sent.per_shard()
        );
        let id = format!("req-{}", sent.tasks.len());
        let body = marked_body(SLOW, &id).to_string();
        let socket = daemon.socket().to_owned();
        let header = id.clone();
        sent.tasks.push(tokio::spawn(async move {
            chat_once(&socket, &body, &[("x-request-id", &header)]).await
        }));
        let shard = shard_of(daemon, &id).await;
        sent.shards.insert(id, shard);
    }
    sent
}

/// The shard serving the live session with this `x-request-id`, once the
/// listing says (a request whose body is still arriving has no shard yet).
async fn shard_of(daemon: &Daemon, request_id: &str) -> u64 {
    let served = |s: &&serde_json::Value| s["request_id"] == request_id && s["shard"].is_u64();
    let what = format!("request {request_id} listed with its shard");
    let listing = wait_listing(daemon, &what, |sessions| {
        sessions.iter().any(|s| served(&s))
    })
    .await;
    let session = listing.iter().find(served).expect("listed");
    session["shard"].as_u64().expect("checked above")
}

/// Whether sessions of both shards are past admission (not waiting).
fn both_shards_calling(sessions: &[serde_json::Value]) -> bool {
    let admitted = |shard: u64| {
        sessions
            .iter()
            .any(|s| s["shard"] == shard && s["phase"] != "RECEIVED" && s["phase"] != "QUEUED")
    };
    admitted(0) && admitted(1)
}

/// Sends requests until both shards hold plenty, waits for every answer,
/// and checks the fake saw exactly `limit` calls at once at most and at
/// least once.
async fn exact_limit(daemon: &Daemon, fake: &FakeProvider, limit: usize) {
    let sent = send_until_spread(daemon).await;
    let count = sent.tasks.len();
    let per_shard = sent.per_shard();
    // While they run, the listing shows both shards calling at once: the
    // limit is shared, not each shard's own.
    let both_called = Cell::new(false);
    let what = format!("all {count} answers");
    eventually_debug(&what, WAIT * 4, || async {
        if both_shards_calling(&live_sessions(daemon).await) {
            both_called.set(true);
        }
        let done = sent.tasks.iter().filter(|t| t.is_finished()).count();
        if done == count { Ok(()) } else { Err(done) }
    })
    .await;
    assert!(
        both_called.get(),
        "the listing never showed sessions of both shards past the queue at once"
    );
    for task in sent.tasks {
        let answer = task.await.expect("join");
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    assert_eq!(
        fake.request_count(),
        count,
        "every request went upstream once"
    );
    assert_eq!(
        fake.max_in_flight(),
        limit,
        "the provider saw at most (and, under this load, exactly) {limit} calls at once \
         from the two shards together (requests per shard: {per_shard:?})"
    );
    let health = wait_health(daemon, 0, 0).await;
    assert_eq!(health["live_sessions"], 0, "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_providers_max_concurrency_holds_across_two_shards() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .toml("[server]\nworkers = 2")
        .provider_toml("fake", "max_concurrency = 4")
        .start()
        .await;
    exact_limit(&daemon, &fake, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_live_sessions_holds_across_two_shards() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .toml("[server]\nworkers = 2\n[sessions]\nmax_live = 3")
        .start()
        .await;
    exact_limit(&daemon, &fake, 3).await;
}
