//! What the daemon holds while idle — open descriptors and resident memory
//! — read from `/proc/<pid>`, for the tests that check both return to their
//! idle level after heavy use.
//!
//! A descriptor count alone cannot be compared exactly: the daemon keeps
//! idle keep-alive connections to its providers (reqwest's pool, closed
//! after 50 s unused), and how many depends on how many calls overlapped
//! last. So [`Footprint`] also holds the connections the fake provider has
//! open — every one of them is one of the daemon's descriptors — and
//! [`Footprint::own_fds`] is the rest, which must come back exactly.

use std::fmt;
use std::time::Duration;

use serde_json::Value;
use switchboard_testkit::{Daemon, FakeProvider, eventually_debug};

use super::conn::Connection;
use super::vm_rss_kb;

/// How far above idle the daemon's RSS may stay once idle again. Its
/// memory must not grow with the number of sessions served; this leaves
/// room for what the allocator keeps cached (jemalloc returns freed pages
/// lazily) and for the bounded rings (recent timelines, history batches)
/// that a run fills further than the warm-up did.
pub const RSS_MARGIN_KB: u64 = 32 * 1024;

/// How long the daemon gets to become idle again after a run: sessions
/// end within a second, connections close at once; the rest is the
/// allocator giving pages back (jemalloc's default decay is 10 s).
pub const SETTLE_IDLE: Duration = Duration::from_secs(30);

/// What the daemon holds at one moment.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Entries of `/proc/<pid>/fd`.
    pub fds: usize,
    /// `VmRSS`, in kB.
    pub rss_kb: u64,
    /// Connections the fake provider has open (each is a daemon descriptor).
    pub upstream: usize,
}

impl Footprint {
    /// Reads it now.
    pub fn of(daemon: &Daemon, fake: &FakeProvider) -> Footprint {
        // Two reads, not one snapshot: a provider connection opening or
        // closing in between can put `own_fds` one off for this probe; the
        // waits below poll until it holds, so that passes.
        let upstream = fake.open_connections();
        Footprint {
            fds: open_fds(daemon.pid()),
            rss_kb: vm_rss_kb(daemon.pid()),
            upstream,
        }
    }

    /// The descriptors that are not pooled provider connections.
    pub fn own_fds(&self) -> usize {
        self.fds.saturating_sub(self.upstream)
    }
}

impl fmt::Debug for Footprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} fds ({} to the provider, {} others), RSS {} kB",
            self.fds,
            self.upstream,
            self.own_fds(),
            self.rss_kb
        )
    }
}

/// The number of open descriptors of process `pid`.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("reading /proc/<pid>/fd")
        .count()
}

/// How many probes in a row must agree before a footprint counts as the
/// baseline: 5 at 20 ms, so a connection that was closing has closed.
const STEADY_PROBES: usize = 5;

/// Waits until the daemon has nothing live or queued, then until its
/// footprint is back to `idle`: exactly its own descriptors, at most
/// `max_upstream` pooled provider connections, and RSS within
/// [`RSS_MARGIN_KB`]. Returns the footprint it reached; panics with the
/// last one seen after [`SETTLE_IDLE`].
pub async fn wait_idle_again(
    daemon: &Daemon,
    fake: &FakeProvider,
    idle: Footprint,
    max_upstream: usize,
) -> Footprint {
    wait_nothing_live(daemon).await;
    let what = format!(
        "the daemon back to idle ({idle:?}): the same {} own fds, at most {max_upstream} \
         pooled provider connections, RSS at most {} kB",
        idle.own_fds(),
        idle.rss_kb + RSS_MARGIN_KB
    );
    eventually_debug(&what, SETTLE_IDLE, || async {
        let now = Footprint::of(daemon, fake);
        let back = now.own_fds() == idle.own_fds()
            && now.upstream <= max_upstream
            && now.rss_kb <= idle.rss_kb + RSS_MARGIN_KB;
        if back { Ok(now) } else { Err(now) }
    })
    .await
}

/// Waits until the daemon has nothing live or queued and its descriptor
/// count has held still for [`STEADY_PROBES`] probes, and returns its
/// footprint then: the baseline the checks compare with.
pub async fn settle(daemon: &Daemon, fake: &FakeProvider) -> Footprint {
    wait_nothing_live(daemon).await;
    let mut seen: Vec<Footprint> = Vec::new();
    eventually_debug("the daemon's footprint to hold still", SETTLE_IDLE, || {
        seen.push(Footprint::of(daemon, fake));
        let recent = &seen[seen.len().saturating_sub(STEADY_PROBES)..];
        let steady = recent.len() == STEADY_PROBES
            && recent
                .iter()
                .all(|f| f.fds == recent[0].fds && f.upstream == recent[0].upstream);
        let last = recent[recent.len() - 1];
        async move { if steady { Ok(last) } else { Err(last) } }
    })
    .await
}

/// Waits until `/healthz` reports nothing live or queued, asking on
/// connections of its own that are closed at once, so the waiting leaves no
/// descriptor in the daemon (a pooled client would keep one open).
pub async fn wait_nothing_live(daemon: &Daemon) {
    eventually_debug("no live or queued session", super::WAIT, || async {
        let answer = Connection::open(daemon.socket())
            .await
            .get("/healthz")
            .await;
        let health: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        let idle = health["live_sessions"] == 0 && health["queued_sessions"] == 0;
        if answer.status == 200 && idle {
            Ok(())
        } else {
            Err(health)
        }
    })
    .await
}

/// Raises this test process's soft open-file limit to its hard one, and
/// checks that leaves room for `needed` descriptors (client connections
/// to the daemon, the fake provider's side of the daemon's calls).
pub fn raise_open_file_limit(needed: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit only read and write the struct passed in.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    assert!(
        limit.rlim_cur >= needed,
        "this test needs {needed} open files; the hard limit is {}",
        limit.rlim_cur
    );
}

/// Checks that history and metrics were on through the run: `/metrics`
/// counts `sent` requests and the history file holds `sent` rows (as
/// `/admin/usage?by=uid` sums them). Call it after the footprint checks:
/// it asks on a pooled connection, which the daemon then holds open.
pub async fn assert_recorded(daemon: &Daemon, sent: u64) {
    let what = format!("switchboard_requests_total to count {sent}");
    super::scrape::scrape_until(daemon, &what, |s| {
        let counted = s.sum("switchboard_requests_total", &[]);
        if counted == sent as f64 {
            Ok(())
        } else {
            Err(format!("{counted} counted"))
        }
    })
    .await;
    super::scrape::usage_settled(daemon, "uid", sent).await;
}
