//! The last minute of scrapes, and the figures `top` derives from it:
//! requests per second, errors, p50/p99 latency and output tokens per
//! second per provider.
//!
//! The daemon exposes only cumulative counters and histograms, so `top`
//! keeps successive scrapes ([`super::scrape::Scrape`]) and differences the
//! newest against the oldest one kept: the figures cover what ended between
//! the two, as Prometheus's `rate()` and `histogram_quantile()` over
//! `[1m]` would. Until `top` has run a minute the window is shorter (it
//! says how long); with a single scrape there is no window and no figure.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::scrape::{Counters, Scrape};

/// How far back the figures reach: a minute, as `docker stats`-like views
/// and Prometheus dashboards usually show.
pub const SPAN: Duration = Duration::from_secs(60);

/// Scrapes kept at most, whatever their spacing: a minute at one scrape a
/// second is 61, so this bounds memory should scrapes ever come faster.
const MAX_SAMPLES: usize = 128;

/// What one provider did during the window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rates {
    /// Requests that ended, per second.
    pub requests_per_s: f64,
    /// Requests that ended in failure (see [`Counters::errors`]).
    pub errors: u64,
    /// Median session duration, in seconds; `None` when none ended.
    pub p50: Option<f64>,
    /// 99th percentile session duration, in seconds.
    pub p99: Option<f64>,
    /// Output tokens reported, per second.
    pub tokens_per_s: f64,
}

/// Successive scrapes, oldest first, spanning at most [`SPAN`] beyond the
/// first.
#[derive(Debug, Default)]
pub struct Window {
    samples: VecDeque<(Instant, Scrape)>,
}

impl Window {
    /// Adds a scrape taken `at`, dropping those no longer needed. A counter
    /// that went down means the daemon restarted: the window starts over.
    pub fn push(&mut self, at: Instant, scrape: Scrape) {
        if self
            .samples
            .back()
            .is_some_and(|(_, last)| went_down(last, &scrape))
        {
            self.samples.clear();
        }
        self.samples.push_back((at, scrape));
        while self.samples.len() > MAX_SAMPLES || self.second_is_old_enough(at) {
            self.samples.pop_front();
        }
    }

    /// Whether the second-oldest sample alone already spans [`SPAN`], so the
    /// oldest is not needed as the baseline.
    fn second_is_old_enough(&self, now: Instant) -> bool {
        self.samples
            .get(1)
            .is_some_and(|(at, _)| now.duration_since(*at) >= SPAN)
    }

    /// The time the window covers; `None` until there are two scrapes.
    pub fn covered(&self) -> Option<Duration> {
        let (first, _) = self.samples.front()?;
        let (last, _) = self.samples.back()?;
        Some(last.duration_since(*first)).filter(|d| !d.is_zero())
    }

    /// Each provider's figures over the window (none until it has two
    /// scrapes). A provider that appeared during the window counts from 0.
    pub fn rates(&self) -> BTreeMap<String, Rates> {
        let (Some(covered), Some((_, first)), Some((_, last))) =
            (self.covered(), self.samples.front(), self.samples.back())
        else {
            return BTreeMap::new();
        };
        let zero = Counters::default();
        last.iter()
            .map(|(name, now)| {
                let then = first.get(name).unwrap_or(&zero);
                (name.clone(), rates(then, now, covered))
            })
            .collect()
    }
}

/// Whether any count in `now` is below the same count in `before`.
fn went_down(before: &Scrape, now: &Scrape) -> bool {
    before.iter().any(|(name, then)| {
        now.get(name).is_some_and(|now| {
            now.requests < then.requests || now.output_tokens < then.output_tokens
        })
    })
}

fn rates(then: &Counters, now: &Counters, covered: Duration) -> Rates {
    let seconds = covered.as_secs_f64();
    let buckets = difference(&then.duration, &now.duration);
    Rates {
        requests_per_s: (now.requests - then.requests) / seconds,
        // Counts are whole numbers carried as f64 by the text format.
        errors: (now.errors - then.errors).max(0.0).round() as u64,
        p50: quantile(&buckets, 0.5),
        p99: quantile(&buckets, 0.99),
        tokens_per_s: (now.output_tokens - then.output_tokens) / seconds,
    }
}

/// `now`'s cumulative buckets less `then`'s, bound by bound.
fn difference(then: &[(f64, f64)], now: &[(f64, f64)]) -> Vec<(f64, f64)> {
    now.iter()
        .map(|&(bound, count)| {
            let before = then.iter().find(|(b, _)| *b == bound).map_or(0.0, |b| b.1);
            (bound, (count - before).max(0.0))
        })
        .collect()
}

/// The `q` quantile of cumulative `buckets`, interpolated linearly inside
/// the bucket it falls in (as Prometheus's `histogram_quantile` does); in
/// the `+Inf` bucket, the highest finite bound. `None` for no observations.
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(lower.0);
            }
            let inside = count - lower.1;
            let share = if inside > 0.0 {
                (rank - lower.1) / inside
            } else {
                1.0
            };
            return Some(lower.0 + (bound - lower.0) * share);
        }
        lower = (bound, count);
    }
    Some(lower.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(requests: f64, errors: f64, tokens: f64, fast: f64, all: f64) -> Scrape {
        let counters = Counters {
            requests,
            errors,
            output_tokens: tokens,
            duration: vec![(0.1, fast), (1.0, all), (f64::INFINITY, all)],
        };
        Scrape::from([("p".to_owned(), counters)])
    }

    #[test]
    fn one_scrape_is_no_window() {
        let mut window = Window::default();
        window.push(Instant::now(), scrape(1.0, 0.0, 0.0, 1.0, 1.0));
        assert_eq!(window.covered(), None);
        assert!(window.rates().is_empty());
    }

    #[test]
    fn figures_are_differences_over_the_time_covered() {
        let mut window = Window::default();
        let start = Instant::now();
        window.push(start, scrape(10.0, 1.0, 100.0, 5.0, 10.0));
        window.push(
            start + Duration::from_secs(10),
            scrape(30.0, 4.0, 600.0, 15.0, 30.0),
        );
        let rates = &window.rates()["p"];
        assert_eq!(rates.requests_per_s, 2.0);
        assert_eq!(rates.errors, 3);
        assert_eq!(rates.tokens_per_s, 50.0);
        // 10 of the 20 new ones under 0.1 s: the median is the bucket's top.
        assert_eq!(rates.p50, Some(0.1));
        let p99 = rates.p99.expect("a p99");
        assert!((p99 - (0.1 + 0.9 * 9.8 / 10.0)).abs() < 1e-9, "{p99}");
    }

    #[test]
    fn the_window_keeps_one_baseline_a_minute_old() {
        let mut window = Window::default();
        let start = Instant::now();
        for second in 0..=90_u32 {
            let n = f64::from(second);
            window.push(
                start + Duration::from_secs(u64::from(second)),
                scrape(n, 0.0, 0.0, n, n),
            );
        }
        assert_eq!(window.covered(), Some(SPAN));
        assert_eq!(window.rates()["p"].requests_per_s, 1.0);
        assert!(window.samples.len() <= 61 + 1);
    }

    #[test]
    fn a_restarted_daemon_starts_the_window_over() {
        let mut window = Window::default();
        let start = Instant::now();
        window.push(start, scrape(100.0, 0.0, 0.0, 1.0, 1.0));
        window.push(
            start + Duration::from_secs(1),
            scrape(2.0, 0.0, 0.0, 1.0, 1.0),
        );
        assert_eq!(window.covered(), None);
    }

    #[test]
    fn quantiles_of_nothing_are_none_and_of_the_overflow_the_top_bound() {
        assert_eq!(quantile(&[(1.0, 0.0), (f64::INFINITY, 0.0)], 0.5), None);
        assert_eq!(
            quantile(&[(1.0, 0.0), (f64::INFINITY, 4.0)], 0.5),
            Some(1.0)
        );
        assert_eq!(quantile(&[], 0.5), None);
    }
}
