//! Polling until something observable happens: [`eventually`] and
//! [`eventually_debug`].
//!
//! Used by integration tests for effects that land a moment after the
//! request that caused them (a metric incremented once a stream ends, a
//! session gone from the admin list), so they neither sleep a fixed time
//! nor flake. A timeout panics, naming what was awaited, so the test fails
//! with a reason instead of a bare `assert!(false)`.
//!
//! ```no_run
//! # async fn demo(fake: switchboard_testkit::FakeProvider) {
//! use std::time::Duration;
//! use switchboard_testkit::eventually;
//!
//! let reported = eventually("usage reported", Duration::from_secs(2), || async {
//!     let totals = fake.usage_reported();
//!     (totals.answers == 1).then_some(totals)
//! })
//! .await;
//! # drop(reported);
//! # }
//! ```

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// The pause between probes: short next to test timeouts, long enough not
/// to busy the runtime the daemon's own tasks share in a test.
const POLL: Duration = Duration::from_millis(20);

/// Runs `probe` every 20 ms until it returns `Some`, and returns that value.
///
/// Panics with `timed out after {timeout:?} waiting for {what}` if it has
/// not by `timeout` (the probe runs at least once, and once at the deadline).
pub async fn eventually<T, Fut>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Fut) -> T
where
    Fut: Future<Output = Option<T>>,
{
    let found = poll(timeout, || {
        let next = probe();
        async move { next.await.ok_or(()) }
    })
    .await;
    match found {
        Ok(value) => value,
        Err(()) => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}

/// Like [`eventually`], for a probe that says what it saw when the answer
/// is "not yet" (`Err(seen)`): the timeout panic ends with
/// `; last seen: {seen:?}`, which usually tells why.
pub async fn eventually_debug<T, D, Fut>(
    what: &str,
    timeout: Duration,
    probe: impl FnMut() -> Fut,
) -> T
where
    D: Debug,
    Fut: Future<Output = Result<T, D>>,
{
    match poll(timeout, probe).await {
        Ok(value) => value,
        Err(seen) => panic!("timed out after {timeout:?} waiting for {what}; last seen: {seen:?}"),
    }
}

/// Probes until `Ok` or the deadline; on timeout returns the last `Err`.
/// Also behind [`crate::FakeProvider::wait_until`], so every wait in the
/// testkit polls the same way.
pub(crate) async fn poll<T, E, Fut>(
    timeout: Duration,
    mut probe: impl FnMut() -> Fut,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let seen = match probe().await {
            Ok(value) => return Ok(value),
            Err(seen) => seen,
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(seen);
        }
        tokio::time::sleep(POLL.min(deadline - now)).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn returns_the_first_some_after_polling() {
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let value = eventually("the third call", Duration::from_secs(5), || async {
            let n = calls.fetch_add(1, Ordering::Relaxed) + 1;
            (n == 3).then_some(n * 10)
        })
        .await;
        assert_eq!(value, 30);
        assert_eq!(calls.load(Ordering::Relaxed), 3);
        assert!(started.elapsed() >= 2 * POLL, "polls are spaced out");
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after 100ms waiting for the impossible")]
    async fn panics_naming_what_it_waited_for() {
        eventually("the impossible", Duration::from_millis(100), || async {
            None::<()>
        })
        .await;
    }

    #[tokio::test]
    async fn debug_variant_returns_the_ok_value() {
        let calls = AtomicU32::new(0);
        let value = eventually_debug("two calls", Duration::from_secs(5), || async {
            let n = calls.fetch_add(1, Ordering::Relaxed);
            if n >= 1 { Ok("done") } else { Err(n) }
        })
        .await;
        assert_eq!(value, "done");
    }

    #[tokio::test]
    #[should_panic(
        expected = "timed out after 60ms waiting for a count of 99; last seen: [\"count\", \"1\"]"
    )]
    async fn debug_variant_panics_with_the_last_observation() {
        let calls = AtomicU32::new(0);
        eventually_debug("a count of 99", Duration::from_millis(60), || async {
            let n = calls.fetch_add(1, Ordering::Relaxed);
            Err::<(), _>(vec!["count".to_owned(), n.min(1).to_string()])
        })
        .await;
    }

    #[tokio::test]
    async fn probes_once_even_with_a_zero_timeout() {
        let value = eventually("an immediate answer", Duration::ZERO, || async { Some(7) }).await;
        assert_eq!(value, 7);
    }
}
