//! Scenario 5: many concurrent streams of 100 chunks 10 ms apart, one
//! connection each with [`crate::fanout`], through the daemon, through the
//! floor (nginx, `proxy_buffering off`, so it relays chunk by chunk) and
//! directly: time to first chunk and chunks lost, with all streams started
//! at once and then started one after another.

use std::rc::Rc;
use std::time::Duration;

use serde_json::json;

use crate::Bench;
use crate::daemon::Daemon;
use crate::fanout::{self, Outcome};
use crate::floor::{Floor, UPSTREAM_KEEPALIVE};
use crate::http1::{Expect, Target};
use crate::procfs::{CpuSample, Gateway};
use crate::report::{Compare, Report, Target as Goal};
use crate::requests::{chat_body, chat_request};

/// The provider the streaming scenario goes through (HTTP/1.1 pool).
const STREAM_PROVIDER: &str = "fast";
/// Content chunks per stream in scenario 5, 10 ms apart.
const STREAM_CHUNKS: u64 = 100;
/// `data:` events per complete stream: the content chunks, the stop chunk
/// and `[DONE]`.
const EVENTS_PER_STREAM: u64 = STREAM_CHUNKS + 2;

/// One side of the comparison.
struct Side {
    /// Its name in the note.
    name: &'static str,
    /// Where it connects.
    target: Target,
    /// What its model names start with: the daemon's provider, or nothing
    /// (the floor sends what the direct side sends).
    prefix: &'static str,
    /// Whether its plain answers carry the daemon's `session` object.
    session: bool,
    /// The gateway in between, whose CPU counts.
    gateway: Option<Gateway>,
}

impl Side {
    /// A chat request for `model`, streamed or not.
    fn request(&self, model: &str, stream: bool) -> Rc<[u8]> {
        let body = chat_body(&format!("{}{model}", self.prefix), stream);
        chat_request(&body).into()
    }
}

/// One side's run: what it measured and the CPU spent meanwhile.
struct Run {
    /// The streams' outcome.
    outcome: Rc<Outcome>,
    /// CPU of the client, the fake and the gateway.
    cpu: CpuSample,
}

/// The sides: the daemon, the floor if there is one, and direct.
fn sides(b: &Bench, daemon: &Daemon, floor: Option<&Floor>) -> Vec<Side> {
    let mut sides = vec![Side {
        name: "daemon",
        target: daemon.target(),
        prefix: "fast/",
        session: true,
        gateway: Some(daemon.gateway()),
    }];
    sides.extend(floor.map(|f| Side {
        name: "floor",
        target: f.target(),
        prefix: "",
        session: false,
        gateway: Some(f.gateway()),
    }));
    sides.push(Side {
        name: "direct",
        target: Target::Tcp(b.fast.addr()),
        prefix: "",
        session: false,
        gateway: None,
    });
    sides
}

/// Warms a gateway's upstream pool with `n` requests at once, as the
/// direct side's `n` connections are open before its clock starts.
async fn warm_pool(side: &Side, n: usize, r: &mut Report) {
    let request = side.request("instant", false);
    let expect = Expect::Completion {
        session: side.session,
    };
    let warmed = fanout::start(&side.target, request, expect, n).await;
    warmed.finished().await;
    let errors = warmed.release().await.errors();
    if errors > 0 {
        let name = side.name;
        r.note(format!(
            "5: {errors} of the {n} {name} pool warm-up requests failed"
        ));
    }
}

/// Scenario 5: N concurrent streams of 100 chunks 10 ms apart.
pub async fn streaming(
    b: &Bench,
    daemon: &Daemon,
    floor: Option<&Floor>,
    r: &mut Report,
) -> anyhow::Result<()> {
    let n = if b.opts.quick { 50 } else { 1000 };
    let model = format!("stream-{STREAM_CHUNKS}-10");
    let sides = sides(b, daemon, floor);
    for side in sides.iter().filter(|s| s.gateway.is_some()) {
        warm_pool(side, n, r).await;
    }
    // 5: all at once, then 5b: paced evenly over one second, so up to n
    // streams are live together but their starts do not arrive as one burst.
    let burst = stream_run(b, &sides, &model, n, Duration::ZERO, r, "").await;
    let pace = Duration::from_secs(1) / n as u32;
    let paced = stream_run(b, &sides, &model, n, pace, r, " (paced)").await;
    r.note(streaming_note(
        n,
        &model,
        pace,
        floor.is_some(),
        (&burst, &paced),
    ));
    r.raw(
        "5_streaming",
        json!({"n": n, "model": model, "provider": STREAM_PROVIDER,
               "pace_us": pace.as_micros() as u64}),
    );
    Ok(())
}

/// Scenario 5's note: how the streams were sent, and the cores busy.
fn streaming_note(
    n: usize,
    model: &str,
    pace: Duration,
    floor: bool,
    busy: (&str, &str),
) -> String {
    let floor = match floor {
        true => format!(
            "; the floor, warmed alike, keeps at most {UPSTREAM_KEEPALIVE} idle upstream \
             connections per worker"
        ),
        false => String::new(),
    };
    format!(
        "5: {n} streams of `{model}` via `{STREAM_PROVIDER}` (HTTP/1.1 upstream pool, warmed \
         first with {n} requests; direct is HTTP/1.1 too{floor}); {EVENTS_PER_STREAM} data \
         events expected per stream ({STREAM_CHUNKS} content, stop, [DONE]); first chunk \
         timed from each request's write. Rows without a mark send all {n} at once, so their \
         time to first chunk is mostly the time to start {n} sessions one after another; rows \
         marked (paced) send one every {} µs, so up to {n} streams (≈ {} chunks/s) are live \
         while each new one starts. Cores busy, burst: {}; paced: {}",
        pace.as_micros(),
        n * 100,
        busy.0,
        busy.1,
    )
}

/// `n` streams on one side, request `i` sent `i × pace` after the first.
async fn one_run(b: &Bench, side: &Side, model: &str, n: usize, pace: Duration) -> Run {
    let probe = b.probe(side.gateway);
    let before = probe.sample();
    let request = side.request(model, true);
    let run = fanout::start_paced(&side.target, request, Expect::Events, n, pace).await;
    run.finished().await;
    let outcome = run.release().await;
    let cpu = probe.sample().since(&before);
    Run { outcome, cpu }
}

/// One streaming run on every side, one after another; adds scenario 5's
/// rows (their names end in `mark`); returns the cores busy, for the note.
async fn stream_run(
    b: &Bench,
    sides: &[Side],
    model: &str,
    n: usize,
    pace: Duration,
    r: &mut Report,
    mark: &str,
) -> String {
    let mut runs = Vec::new();
    for side in sides {
        runs.push(one_run(b, side, model, n, pace).await);
    }
    let (d, x) = (&runs[0].outcome, &runs[runs.len() - 1].outcome);
    let f = (runs.len() == 3).then(|| runs[1].outcome.as_ref());
    stream_rows(r, n, (d, x, f), pace.is_zero(), mark);
    let busy = sides.iter().zip(&runs).map(|(side, run)| {
        let s = run.outcome.wall().map_or(1.0, |w| w.as_secs_f64());
        let cores = |ns: u64| ns as f64 / 1e9 / s;
        let gateway = match side.gateway {
            Some(_) => format!(" / gateway {:.2}", cores(run.cpu.gateway_ns)),
            None => String::new(),
        };
        let (client, fake) = (cores(run.cpu.client_ns), cores(run.cpu.fake_ns));
        format!(
            "{} run client {client:.2} / fake {fake:.2}{gateway}",
            side.name
        )
    });
    busy.collect::<Vec<_>>().join(", ")
}

/// Scenario 5's rows for one run of the daemon, direct and floor sides;
/// the targets are the daemon's against direct: added time to first chunk
/// p99 ≤ 20 ms with all started at once, p50 ≤ 1 ms and p99 ≤ 10 ms paced.
fn stream_rows(
    r: &mut Report,
    n: usize,
    (d, x, f): (&Outcome, &Outcome, Option<&Outcome>),
    burst: bool,
    mark: &str,
) {
    let q = |p: f64| move |o: &Outcome| o.first_event.borrow().value_at_quantile(p) as f64;
    let diff = Compare::Difference;
    let (p50, p99) = (q(0.5), q(0.99));
    let goals = match burst {
        true => (None, Goal::AtMost(20_000.0)),
        false => (Some(Goal::AtMost(1000.0)), Goal::AtMost(10_000.0)),
    };
    let name = format!("time to first chunk p50 (µs){mark}");
    r.add(5, name, Some(p50(d)), Some(p50(x)), diff, goals.0)
        .floor(f.map(p50), None);
    let name = format!("time to first chunk p99 (µs){mark}");
    r.add(5, name, Some(p99(d)), Some(p99(x)), diff, Some(goals.1))
        .floor(f.map(p99), None);
    let expected = n as u64 * EVENTS_PER_STREAM;
    let lost = |o: &Outcome| expected.saturating_sub(o.events.get()) as f64;
    let name = format!("chunks lost (data events expected − received){mark}");
    let none = Some(Goal::AtMost(0.0));
    r.add(5, name, Some(lost(d)), Some(lost(x)), Compare::None, none)
        .floor(f.map(lost), None);
    let ok = |o: &Outcome| o.ok.get() as f64;
    let name = format!("streams complete (200, ended by [DONE]){mark}");
    let all = Some(Goal::AtLeast(n as f64));
    r.add(5, name, Some(ok(d)), Some(ok(x)), Compare::None, all)
        .floor(f.map(ok), None);
    let ms = |o: &Outcome| o.latency.borrow().value_at_quantile(0.5) as f64 / 1000.0;
    let name = format!("stream duration p50 (ms){mark}");
    r.add(5, name, Some(ms(d)), Some(ms(x)), diff, None)
        .floor(f.map(ms), None);
}
