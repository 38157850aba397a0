//! The table rows scenarios 1, 2 and 4 share: latency and errors of every
//! side, the daemon's added latency against the floor's, CPU per request of
//! every party, and what recording costs (history and metrics on vs off).

use crate::report::{Compare, Report, Target as Goal};
use crate::stats::Stats;

/// Rows comparing the daemon with history and metrics on (the daemon
/// column) and off (the direct column): what recording costs.
pub fn records_rows(r: &mut Report, n: u8, on: &Stats, off: &Stats, throughput: bool) {
    let label = |what: &str| format!("records on vs off: {what} [daemon col: on, direct col: off]");
    let diff = Compare::Difference;
    let (p50, p99) = ((on.p(0.5), off.p(0.5)), (on.p(0.99), off.p(0.99)));
    let at_most_10 = Some(Goal::AtMost(10.0));
    r.add(
        n,
        label("latency p50 (µs)"),
        Some(p50.0),
        Some(p50.1),
        diff,
        at_most_10,
    );
    r.add(
        n,
        label("latency p99 (µs)"),
        Some(p99.0),
        Some(p99.1),
        diff,
        None,
    );
    if throughput {
        let rates = (Some(on.rate()), Some(off.rate()));
        let at_least = Some(Goal::AtLeast(0.95));
        let name = label("throughput (req/s)");
        r.add(n, name, rates.0, rates.1, Compare::Ratio, at_least);
    }
    let (_, _, on_cpu) = on.cpu_per_request();
    let (_, _, off_cpu) = off.cpu_per_request();
    let name = label("daemon CPU µs/request");
    r.add(n, name, Some(on_cpu), Some(off_cpu), diff, None);
}

/// Adds the latency rows shared by scenarios 1 and 4: every side's
/// percentiles, errors and achieved rate (`f`: the floor's, if measured).
pub fn latency_rows(r: &mut Report, n: u8, d: &Stats, x: &Stats, f: Option<&Stats>) {
    let diff = Compare::Difference;
    for (q, name) in [
        (0.5, "latency p50 (µs)"),
        (0.99, "latency p99 (µs)"),
        (0.999, "latency p99.9 (µs)"),
    ] {
        r.add(n, name, Some(d.p(q)), Some(x.p(q)), diff, None)
            .floor(f.map(|f| f.p(q)), None);
    }
    error_row(r, n, d, x, f);
    let rates = (Some(d.rate()), Some(x.rate()));
    r.add(
        n,
        "achieved rate (req/s)",
        rates.0,
        rates.1,
        Compare::Ratio,
        None,
    )
    .floor(f.map(Stats::rate), None);
}

/// The errors of every side; the daemon must have none.
pub fn error_row(r: &mut Report, n: u8, d: &Stats, x: &Stats, f: Option<&Stats>) {
    let errors = |s: &Stats| Some(s.errors() as f64);
    let none = Some(Goal::AtMost(0.0));
    r.add(n, "errors", errors(d), errors(x), Compare::None, none)
        .floor(f.and_then(errors), None);
}

/// Scenario 1's targets: the latency the daemon adds to the direct path
/// against what the floor adds (p50 ≤ 1.2 ×, p99 ≤ 1.5 ×).
pub fn added_rows(r: &mut Report, n: u8, d: &Stats, x: &Stats, f: &Stats) {
    for (q, label, goal) in [(0.5, "p50", 1.2), (0.99, "p99", 1.5)] {
        let name = format!(
            "added latency {label} (µs) [daemon col: daemon − direct, floor col: floor − direct]"
        );
        let added = |s: &Stats| Some(s.p(q) - x.p(q));
        r.add(n, name, added(d), None, Compare::Ratio, None)
            .floor(added(f), Some(Goal::AtMost(goal)));
    }
}

/// Adds rows of CPU µs per request for the three parties of every side;
/// the gateway's (the daemon's process, nginx's master and workers) is
/// compared with the floor's against `goal`, if given.
pub fn cpu_rows(
    r: &mut Report,
    n: u8,
    d: &Stats,
    x: &Stats,
    f: Option<&Stats>,
    goal: Option<Goal>,
) {
    let (dc, df, dg) = d.cpu_per_request();
    let (xc, xf, _) = x.cpu_per_request();
    let fl = f.map(Stats::cpu_per_request);
    let diff = Compare::Difference;
    r.add(
        n,
        "CPU µs/request: load client",
        Some(dc),
        Some(xc),
        diff,
        None,
    )
    .floor(fl.map(|c| c.0), None);
    r.add(
        n,
        "CPU µs/request: fake provider",
        Some(df),
        Some(xf),
        diff,
        None,
    )
    .floor(fl.map(|c| c.1), None);
    let name = "CPU µs/request: gateway [daemon: its process; floor: nginx master + workers]";
    r.add(n, name, Some(dg), None, Compare::Ratio, None)
        .floor(fl.map(|c| c.2), goal);
}
