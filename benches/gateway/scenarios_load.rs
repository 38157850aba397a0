//! Scenarios 1, 2 and 4, which load the shared daemon, the floor (nginx) and
//! the fake provider directly with [`crate::load`]. The sides' runs
//! alternate in rounds (ABBA order) so drift in the shared machine's load
//! hits every side alike. Scenario 4 has no floor side: it is about the
//! daemon keeping one provider's hung requests from slowing another's.

use std::rc::Rc;
use std::time::Duration;

use serde_json::json;

use crate::Bench;
use crate::daemon::Daemon;
use crate::fanout;
use crate::floor::Floor;
use crate::http1::Expect;
use crate::load::{Side, closed_loop, open_loop};
use crate::report::{Compare, Report, Target as Goal};
use crate::requests::{chat_body, chat_request};
use crate::rounds::{Leg, Legs, rounds};
use crate::rows::{added_rows, cpu_rows, error_row, latency_rows, records_rows};
use crate::stats::Stats;

/// Scenario 1's arrival rate, requests per second.
const RATE: f64 = 2000.0;
/// Most connections the open loop may have busy at once, per side.
const OPEN_LOOP_CAP: usize = 512;
/// Scenario 2's connection count (scenario 7's too).
pub const SATURATION_CONNS: usize = 64;

/// Scenario 1's open-loop load on every leg.
async fn paced(
    b: &Bench,
    daemon: &Daemon,
    bare: Option<&Daemon>,
    floor: Option<&Floor>,
) -> anyhow::Result<Legs> {
    let mut legs = Legs::new(b, daemon, bare, floor, "instant");
    let (n, each) = rounds(b);
    let warmup = Duration::from_millis(if b.opts.quick { 200 } else { 500 });
    let load = |length: Duration| {
        move |side: Rc<Side>| async move {
            Ok(open_loop(&side, RATE, Duration::ZERO, length, OPEN_LOOP_CAP).await?)
        }
    };
    legs.warm(load(warmup)).await?;
    legs.run(n, load(each)).await?;
    Ok(legs)
}

/// The legs' raw numbers for the JSON report, beside `extra`'s keys.
fn legs_json(legs: &Legs, mut extra: serde_json::Value) -> serde_json::Value {
    let stats = |leg: Option<&Leg>| leg.map(|l| l.stats.to_json());
    extra["daemon"] = legs.daemon.stats.to_json();
    extra["bare"] = json!(stats(legs.bare.as_ref()));
    extra["floor"] = json!(stats(legs.floor.as_ref()));
    extra["direct"] = legs.direct.stats.to_json();
    extra
}

/// Scenario 1: open loop at 2,000 req/s, daemon vs direct vs floor; returns
/// the added p99 for scenario 4 to compare against.
pub async fn overhead(
    b: &Bench,
    daemon: &Daemon,
    bare: Option<&Daemon>,
    floor: Option<&Floor>,
    r: &mut Report,
) -> anyhow::Result<f64> {
    let legs = paced(b, daemon, bare, floor).await?;
    let (d, x) = (&legs.daemon.stats, &legs.direct.stats);
    let f = legs.floor.as_ref().map(|l| &l.stats);
    latency_rows(r, 1, d, x, f);
    if let Some(f) = f {
        added_rows(r, 1, d, x, f);
    }
    cpu_rows(r, 1, d, x, f, None);
    if let Some(bare) = &legs.bare {
        records_rows(r, 1, d, &bare.stats, false);
    }
    r.raw("1_overhead", legs_json(&legs, json!({"rate": RATE})));
    r.note(overhead_note(d, x, f));
    Ok(d.p(0.99) - x.p(0.99))
}

/// Scenario 1's note: the client's own delay, and the added latency
/// without it.
fn overhead_note(d: &Stats, x: &Stats, f: Option<&Stats>) -> String {
    let q = |h: &hdrhistogram::Histogram<u64>, p: f64| h.value_at_quantile(p) as f64;
    let added = |s: &Stats| {
        let at = |p| q(&s.service, p) - q(&x.service, p);
        format!("p50 {:+.0} µs, p99 {:+.0} µs", at(0.5), at(0.99))
    };
    let floor = f.map_or(String::new(), |f| {
        let lag = (q(&f.send_lag, 0.5), q(&f.send_lag, 0.99));
        format!(
            " (floor: {}; its intended → write p50/p99 {}/{} µs)",
            added(f),
            lag.0,
            lag.1
        )
    });
    format!(
        "1: open loop, {RATE} req/s, latency from each request's intended send time. The \
         client's own delay is in every side: pacing timer wake-up p50 {} µs; intended → write \
         p50/p99 daemon {}/{} µs, direct {}/{} µs. Without it (write → answer) the daemon's \
         added latency is {}{floor}",
        q(&x.pacer_lag, 0.5),
        q(&d.send_lag, 0.5),
        q(&d.send_lag, 0.99),
        q(&x.send_lag, 0.5),
        q(&x.send_lag, 0.99),
        added(d),
    )
}

/// Scenario 2: closed loop, 64 connections, daemon vs direct vs floor.
pub async fn saturation(
    b: &Bench,
    daemon: &Daemon,
    bare: Option<&Daemon>,
    floor: Option<&Floor>,
    r: &mut Report,
) -> anyhow::Result<()> {
    let mut legs = Legs::new(b, daemon, bare, floor, "instant");
    let (n, each) = rounds(b);
    let warm = Duration::from_millis(if b.opts.quick { 200 } else { 500 });
    legs.warm(|side| async move { Ok(closed_loop(&side, SATURATION_CONNS, warm).await) })
        .await?;
    legs.run(n, |side| async move {
        Ok(closed_loop(&side, SATURATION_CONNS, each).await)
    })
    .await?;
    let (d, x) = (&legs.daemon.stats, &legs.direct.stats);
    let f = legs.floor.as_ref().map(|l| &l.stats);
    let rates = (Some(d.rate()), Some(x.rate()));
    r.add(
        2,
        "throughput (req/s)",
        rates.0,
        rates.1,
        Compare::Ratio,
        None,
    )
    .floor(f.map(Stats::rate), Some(Goal::AtLeast(0.9)));
    let diff = Compare::Difference;
    for (q, name) in [(0.5, "latency p50 (µs)"), (0.99, "latency p99 (µs)")] {
        r.add(2, name, Some(d.p(q)), Some(x.p(q)), diff, None)
            .floor(f.map(|f| f.p(q)), None);
    }
    error_row(r, 2, d, x, f);
    cpu_rows(r, 2, d, x, f, Some(Goal::AtMost(1.3)));
    if let Some(bare) = &legs.bare {
        records_rows(r, 2, d, &bare.stats, true);
    }
    let extra = json!({"connections": SATURATION_CONNS});
    r.raw("2_saturation", legs_json(&legs, extra));
    Ok(())
}

/// Scenario 4: hung requests held on `stuck` while scenario 1's load runs.
pub async fn head_of_line(
    b: &Bench,
    daemon: &Daemon,
    alone: Option<f64>,
    r: &mut Report,
) -> anyhow::Result<()> {
    let alone = match alone {
        Some(v) => v,
        None => {
            let legs = paced(b, daemon, None, None).await?;
            legs.daemon.stats.p(0.99) - legs.direct.stats.p(0.99)
        }
    };
    let m = if b.opts.quick { 100 } else { 1000 };
    let hung_request: Rc<[u8]> = chat_request(&chat_body("stuck/hang", false)).into();
    let before = b.stuck.in_flight();
    let hung = fanout::start(
        &daemon.target(),
        hung_request,
        Expect::Completion { session: true },
        m,
    )
    .await;
    fanout::wait_until(Duration::from_secs(20), || {
        b.stuck.in_flight() >= before + m
    })
    .await;
    let held = b.stuck.in_flight() - before;
    let legs = paced(b, daemon, None, None).await?;
    let (d, x) = (legs.daemon.stats, legs.direct.stats);
    let answered_early = hung.outcome.ok.get() + hung.outcome.errors();
    let outcome = hung.release().await;
    let released_at = std::time::Instant::now();
    fanout::wait_until(Duration::from_secs(10), || b.stuck.in_flight() <= before).await;
    let released = held.saturating_sub(b.stuck.in_flight().saturating_sub(before));
    let release_ms = released_at.elapsed().as_secs_f64() * 1000.0;
    let mf = m as f64;
    r.add(
        4,
        "hung requests held at the stuck provider",
        Some(held as f64),
        None,
        Compare::None,
        Some(Goal::AtLeast(mf)),
    );
    latency_rows(r, 4, &d, &x, None);
    let with = d.p(0.99) - x.p(0.99);
    r.add(
        4,
        "added p99 (µs): with hung [daemon col] vs alone [direct col]",
        Some(with),
        Some(alone),
        Compare::Difference,
        Some(Goal::AtMost(1000.0)),
    );
    r.add(
        4,
        "hung requests answered before release",
        Some(answered_early as f64),
        None,
        Compare::None,
        Some(Goal::AtMost(0.0)),
    );
    r.add(
        4,
        "hung upstream calls ended after their clients left",
        Some(released as f64),
        None,
        Compare::None,
        Some(Goal::AtLeast(held as f64)),
    );
    r.raw(
        "4_head_of_line",
        json!({
            "hung": m, "held_at_provider": held, "released_upstream": released,
            "release_wait_ms": release_ms, "answered_before_release": answered_early,
            "released_unanswered": outcome.released_unanswered.get(),
            "connect_retries": outcome.connect_retries.get(),
            "added_p99_alone_us": alone, "added_p99_with_hung_us": with,
            "daemon": d.to_json(), "direct": x.to_json(),
        }),
    );
    Ok(())
}
