//! Scenarios 1, 2 and 4, which load the shared daemon and the fake provider
//! directly with [`crate::load`]. Daemon and direct runs alternate in rounds
//! (ABBA order) so drift in the shared machine's load hits both sides alike.

use std::rc::Rc;
use std::time::Duration;

use serde_json::json;

use crate::Bench;
use crate::daemon::Daemon;
use crate::fanout;
use crate::http1::{Expect, Target, chat_body, chat_request};
use crate::load::{Side, closed_loop, open_loop};
use crate::report::{Compare, Report, Target as Goal};
use crate::stats::Stats;

/// Scenario 1's arrival rate, requests per second.
const RATE: f64 = 2000.0;
/// Most connections the open loop may have busy at once, per side.
const OPEN_LOOP_CAP: usize = 512;
/// Scenario 2's connection count.
const SATURATION_CONNS: usize = 64;

/// The daemon side and the direct side for `model` on the `fast` provider.
fn sides(b: &Bench, daemon: &Daemon, model: &str) -> (Rc<Side>, Rc<Side>) {
    let through = Side::new(
        "daemon",
        daemon.target(),
        chat_request(&chat_body(&format!("fast/{model}"), false)),
        Expect::Completion { session: true },
    );
    let direct = Side::new(
        "direct",
        Target::Tcp(b.fast.addr()),
        chat_request(&chat_body(model, false)),
        Expect::Completion { session: false },
    );
    (through, direct)
}

/// Rounds and their length: 5 × 2 s per side (quick: 1 × 1 s).
fn rounds(b: &Bench) -> (usize, Duration) {
    if b.opts.quick {
        (1, Duration::from_secs(1))
    } else {
        (5, Duration::from_secs(2))
    }
}

/// Scenario 1's open-loop load on both sides; returns (daemon, direct).
async fn paced(b: &Bench, daemon: &Daemon) -> anyhow::Result<(Stats, Stats)> {
    let (through, direct) = sides(b, daemon, "instant");
    let (n, each) = rounds(b);
    let warmup = Duration::from_millis(if b.opts.quick { 200 } else { 500 });
    let (mut d_all, mut x_all) = (Stats::default(), Stats::default());
    let probe = b.probe(Some(daemon));
    for side in [&through, &direct] {
        open_loop(side, RATE, Duration::ZERO, warmup, OPEN_LOOP_CAP).await?;
    }
    for round in 0..n {
        let order = if round % 2 == 0 {
            [&through, &direct]
        } else {
            [&direct, &through]
        };
        for side in order {
            let before = probe.sample();
            let mut stats = open_loop(side, RATE, Duration::ZERO, each, OPEN_LOOP_CAP).await?;
            stats.cpu = probe.sample().since(&before);
            if side.name == "daemon" {
                d_all.merge(&stats);
            } else {
                x_all.merge(&stats);
            }
        }
    }
    Ok((d_all, x_all))
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
pub async fn overhead(b: &Bench, daemon: &Daemon, r: &mut Report) -> anyhow::Result<f64> {
    let (d, x) = paced(b, daemon).await?;
    latency_rows(r, 1, &d, &x, true);
    cpu_rows(r, 1, &d, &x);
    r.raw(
        "1_overhead",
        json!({"rate": RATE, "daemon": d.to_json(), "direct": x.to_json()}),
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
pub async fn saturation(b: &Bench, daemon: &Daemon, r: &mut Report) -> anyhow::Result<()> {
    let (through, direct) = sides(b, daemon, "instant");
    let (n, each) = rounds(b);
    let warm = Duration::from_millis(if b.opts.quick { 200 } else { 500 });
    closed_loop(&through, SATURATION_CONNS, warm).await;
    closed_loop(&direct, SATURATION_CONNS, warm).await;
    let (mut d, mut x) = (Stats::default(), Stats::default());
    let probe = b.probe(Some(daemon));
    for round in 0..n {
        let order = if round % 2 == 0 {
            [&through, &direct]
        } else {
            [&direct, &through]
        };
        for side in order {
            let before = probe.sample();
            let mut stats = closed_loop(side, SATURATION_CONNS, each).await;
            stats.cpu = probe.sample().since(&before);
            if side.name == "daemon" {
                d.merge(&stats);
            } else {
                x.merge(&stats);
            }
        }
    }
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
    cpu_rows(r, 2, &d, &x);
    r.raw(
        "2_saturation",
        json!({"connections": SATURATION_CONNS, "daemon": d.to_json(), "direct": x.to_json()}),
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
            let (d, x) = paced(b, daemon).await?;
            d.p(0.99) - x.p(0.99)
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
    let (d, x) = paced(b, daemon).await?;
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
