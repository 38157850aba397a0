//! Scenarios 1, 2 and 4, which load the shared daemon and the fake provider
//! directly with [`crate::load`]. Daemon and direct runs alternate in rounds
//! (ABBA order) so drift in the shared machine's load hits both sides alike.

use std::rc::Rc;
use std::time::Duration;

use serde_json::json;

use crate::Bench;
use crate::daemon::Daemon;
use crate::fanout;
use crate::http1::{Expect, chat_body, chat_request};
use crate::load::{closed_loop, open_loop};
use crate::report::{Compare, Report, Target as Goal};
use crate::rounds::{Legs, rounds};
use crate::stats::Stats;

/// Scenario 1's arrival rate, requests per second.
const RATE: f64 = 2000.0;
/// Most connections the open loop may have busy at once, per side.
const OPEN_LOOP_CAP: usize = 512;
/// Scenario 2's connection count.
const SATURATION_CONNS: usize = 64;

/// Scenario 1's open-loop load on every leg.
async fn paced(b: &Bench, daemon: &Daemon, bare: Option<&Daemon>) -> anyhow::Result<Legs> {
    let mut legs = Legs::new(b, daemon, bare, "instant");
    let (n, each) = rounds(b);
    let warmup = Duration::from_millis(if b.opts.quick { 200 } else { 500 });
    let load = |length: Duration| {
        move |side: std::rc::Rc<crate::load::Side>| async move {
            Ok(open_loop(&side, RATE, Duration::ZERO, length, OPEN_LOOP_CAP).await?)
        }
    };
    legs.warm(load(warmup)).await?;
    legs.run(n, load(each)).await?;
    Ok(legs)
}

/// Rows comparing the daemon with history and metrics on (the daemon
/// column) and off (the direct column): what recording costs.
fn records_rows(r: &mut Report, n: u8, on: &Stats, off: &Stats, throughput: bool) {
    r.add(
        n,
        "records on vs off: latency p50 (µs) [daemon col: on, direct col: off]",
        Some(on.p(0.5)),
        Some(off.p(0.5)),
        Compare::Difference,
        Some(Goal::AtMost(10.0)),
    );
    r.add(
        n,
        "records on vs off: latency p99 (µs) [daemon col: on, direct col: off]",
        Some(on.p(0.99)),
        Some(off.p(0.99)),
        Compare::Difference,
        None,
    );
    if throughput {
        r.add(
            n,
            "records on vs off: throughput (req/s) [daemon col: on, direct col: off]",
            Some(on.rate()),
            Some(off.rate()),
            Compare::Ratio,
            Some(Goal::AtLeast(0.95)),
        );
    }
    let (_, _, on_cpu) = on.cpu_per_request();
    let (_, _, off_cpu) = off.cpu_per_request();
    r.add(
        n,
        "records on vs off: daemon CPU µs/request [daemon col: on, direct col: off]",
        Some(on_cpu),
        Some(off_cpu),
        Compare::Difference,
        None,
    );
}

/// Adds the latency rows shared by scenarios 1 and 4.
fn latency_rows(r: &mut Report, n: u8, d: &Stats, x: &Stats, goals: bool) {
    let g = |v| goals.then_some(Goal::AtMost(v));
    let diff = Compare::Difference;
    r.add(
        n,
        "latency p50 (µs)",
        Some(d.p(0.5)),
        Some(x.p(0.5)),
        diff,
        g(50.0),
    );
    r.add(
        n,
        "latency p99 (µs)",
        Some(d.p(0.99)),
        Some(x.p(0.99)),
        diff,
        g(250.0),
    );
    r.add(
        n,
        "latency p99.9 (µs)",
        Some(d.p(0.999)),
        Some(x.p(0.999)),
        diff,
        None,
    );
    let errors = (Some(d.errors() as f64), Some(x.errors() as f64));
    r.add(
        n,
        "errors",
        errors.0,
        errors.1,
        Compare::None,
        Some(Goal::AtMost(0.0)),
    );
    r.add(
        n,
        "achieved rate (req/s)",
        Some(d.rate()),
        Some(x.rate()),
        Compare::Ratio,
        None,
    );
}

/// Adds rows of CPU µs per request for the three parties.
fn cpu_rows(r: &mut Report, n: u8, d: &Stats, x: &Stats) {
    let (dc, df, dd) = d.cpu_per_request();
    let (xc, xf, _) = x.cpu_per_request();
    let diff = Compare::Difference;
    r.add(
        n,
        "CPU µs/request: load client",
        Some(dc),
        Some(xc),
        diff,
        None,
    );
    r.add(
        n,
        "CPU µs/request: fake provider",
        Some(df),
        Some(xf),
        diff,
        None,
    );
    r.add(
        n,
        "CPU µs/request: daemon",
        Some(dd),
        None,
        Compare::None,
        None,
    );
}

/// Scenario 1: open loop at 2,000 req/s, daemon vs direct; returns the
/// added p99 for scenario 4 to compare against.
pub async fn overhead(
    b: &Bench,
    daemon: &Daemon,
    bare: Option<&Daemon>,
    r: &mut Report,
) -> anyhow::Result<f64> {
    let legs = paced(b, daemon, bare).await?;
    let (d, x) = (&legs.daemon.stats, &legs.direct.stats);
    latency_rows(r, 1, d, x, true);
    cpu_rows(r, 1, d, x);
    if let Some(bare) = &legs.bare {
        records_rows(r, 1, d, &bare.stats, false);
    }
    let bare_json = legs.bare.as_ref().map(|l| l.stats.to_json());
    r.raw(
        "1_overhead",
        json!({"rate": RATE, "daemon": d.to_json(), "bare": bare_json, "direct": x.to_json()}),
    );
    let q = |h: &hdrhistogram::Histogram<u64>, p: f64| h.value_at_quantile(p) as f64;
    r.note(format!(
        "1: open loop, {RATE} req/s, latency from each request's intended send time. The \
         client's own delay is in both sides: pacing timer wake-up p50 {} µs; intended → write \
         p50/p99 daemon {}/{} µs, direct {}/{} µs. Without it (write → answer) the added \
         latency is p50 {:+.0} µs, p99 {:+.0} µs",
        q(&x.pacer_lag, 0.5),
        q(&d.send_lag, 0.5),
        q(&d.send_lag, 0.99),
        q(&x.send_lag, 0.5),
        q(&x.send_lag, 0.99),
        q(&d.service, 0.5) - q(&x.service, 0.5),
        q(&d.service, 0.99) - q(&x.service, 0.99),
    ));
    Ok(d.p(0.99) - x.p(0.99))
}

/// Scenario 2: closed loop, 64 connections, daemon vs direct throughput.
pub async fn saturation(
    b: &Bench,
    daemon: &Daemon,
    bare: Option<&Daemon>,
    r: &mut Report,
) -> anyhow::Result<()> {
    let mut legs = Legs::new(b, daemon, bare, "instant");
    let (n, each) = rounds(b);
    let warm = Duration::from_millis(if b.opts.quick { 200 } else { 500 });
    legs.warm(|side| async move { Ok(closed_loop(&side, SATURATION_CONNS, warm).await) })
        .await?;
    legs.run(n, |side| async move {
        Ok(closed_loop(&side, SATURATION_CONNS, each).await)
    })
    .await?;
    let (d, x) = (&legs.daemon.stats, &legs.direct.stats);
    let ratio = Compare::Ratio;
    r.add(
        2,
        "throughput (req/s)",
        Some(d.rate()),
        Some(x.rate()),
        ratio,
        Some(Goal::AtLeast(0.5)),
    );
    let diff = Compare::Difference;
    r.add(
        2,
        "latency p50 (µs)",
        Some(d.p(0.5)),
        Some(x.p(0.5)),
        diff,
        None,
    );
    r.add(
        2,
        "latency p99 (µs)",
        Some(d.p(0.99)),
        Some(x.p(0.99)),
        diff,
        None,
    );
    let errors = (Some(d.errors() as f64), Some(x.errors() as f64));
    r.add(
        2,
        "errors",
        errors.0,
        errors.1,
        Compare::None,
        Some(Goal::AtMost(0.0)),
    );
    cpu_rows(r, 2, d, x);
    if let Some(bare) = &legs.bare {
        records_rows(r, 2, d, &bare.stats, true);
    }
    let bare_json = legs.bare.as_ref().map(|l| l.stats.to_json());
    r.raw(
        "2_saturation",
        json!({"connections": SATURATION_CONNS, "daemon": d.to_json(), "bare": bare_json, "direct": x.to_json()}),
    );
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
            let legs = paced(b, daemon, None).await?;
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
    let legs = paced(b, daemon, None).await?;
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
    latency_rows(r, 4, &d, &x, false);
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
