//! Scenarios 3, 5 and 6, which open one connection per request and send
//! them all at once with [`crate::fanout`]: concurrency and memory per live
//! session, streaming relay, and the drain on SIGTERM.

use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::Bench;
use crate::daemon::Daemon;
use crate::fanout::{self, Outcome};
use crate::http1::{Conn, Expect, Target, chat_body, chat_request};
use crate::report::{Compare, Report, Target as Goal};
use crate::stats::{failures_json, quantiles};

/// The provider the streaming scenario goes through (HTTP/1.1 pool).
const STREAM_PROVIDER: &str = "fast";
/// Content chunks per stream in scenario 5, 10 ms apart.
const STREAM_CHUNKS: u64 = 100;
/// `data:` events per complete stream: the content chunks, the stop chunk
/// and `[DONE]`.
const EVENTS_PER_STREAM: u64 = STREAM_CHUNKS + 2;

/// One request to make the daemon open its upstream connection and start
/// its actors before anything is measured.
async fn warm(daemon: &Daemon, model: &str, r: &mut Report, n: u8) {
    let request = chat_request(&chat_body(model, false));
    let result = match daemon.target().connect().await {
        Ok(stream) => Conn::new(stream)
            .exchange(&request, Expect::Completion { session: true })
            .await
            .map(|_| ()),
        Err(_) => Err(crate::http1::Failure::Connect),
    };
    if let Err(f) = result {
        r.note(format!("{n}: the warm-up request to {model} failed: {f}"));
    }
}

/// Raw numbers of a fan-out for the JSON report.
fn outcome_json(o: &Outcome) -> serde_json::Value {
    json!({
        "ok": o.ok.get(),
        "errors": o.errors(),
        "failures": failures_json(&o.failures.borrow()),
        "connected": o.connected.get(),
        "connect_retries_eagain": o.connect_retries.get(),
        "connect_phase_ms": o.connect_time.get().as_secs_f64() * 1000.0,
        "wall_ms": o.wall().map(|w| w.as_secs_f64() * 1000.0),
        "latency_us": quantiles(&o.latency.borrow()),
        "first_event_us": quantiles(&o.first_event.borrow()),
        "events": o.events.get(),
    })
}

/// KiB to MB (10^6 bytes).
fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

/// Scenario 3: N requests at once on `wide` (h2c) with a 2 s provider delay.
pub async fn concurrency(b: &Bench, daemon: &Daemon, r: &mut Report) -> anyhow::Result<()> {
    let n = if b.opts.quick { 500 } else { 10_000 };
    warm(daemon, "wide/instant", r, 3).await;
    let rss_before = daemon.rss_kib().unwrap_or(0);
    let base = b.fast.in_flight();
    let request: Rc<[u8]> = chat_request(&chat_body("wide/delay-2000", false)).into();
    let run = fanout::start(
        &daemon.target(),
        request,
        Expect::Completion { session: true },
        n,
    )
    .await;
    let (mut live, mut rss_live) = (0, None);
    while run.outcome.finished.get() < n {
        let now = b.fast.in_flight().saturating_sub(base);
        if now > live {
            live = now;
            rss_live = daemon.rss_kib();
        }
        if live >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    run.finished().await;
    let hwm = daemon.hwm_kib();
    let rss_after = daemon.rss_kib();
    let d = run.release().await;
    let x = fanout::h2c_all_at_once(b.fast.addr(), &chat_body("delay-2000", false), n).await;
    let nf = n as f64;
    let ok = (Some(d.ok.get() as f64), Some(x.ok.get() as f64));
    r.add(
        3,
        "requests completed (200)",
        ok.0,
        ok.1,
        Compare::None,
        Some(Goal::AtLeast(nf)),
    );
    let wall = (secs(d.wall()), secs(x.wall()));
    r.add(
        3,
        "wall time, all sent → last answer (s)",
        wall.0,
        wall.1,
        Compare::Ratio,
        Some(Goal::AtMost(1.1)),
    );
    r.add(
        3,
        "daemon peak RSS, VmHWM (MB)",
        hwm.map(mb),
        None,
        Compare::None,
        Some(Goal::AtMost(150.0)),
    );
    let per = rss_live
        .filter(|_| live > 0)
        .map(|l| (l as f64 - rss_before as f64) / live as f64);
    r.add(
        3,
        "RSS per live session (KiB)",
        per,
        None,
        Compare::None,
        None,
    );
    r.add(
        3,
        "sessions live at the RSS sample",
        Some(live as f64),
        None,
        Compare::None,
        Some(Goal::AtLeast(nf)),
    );
    let connect_errors = d
        .failures
        .borrow()
        .get(&crate::http1::Failure::Connect)
        .copied();
    r.add(
        3,
        "connect failures",
        Some(connect_errors.unwrap_or(0) as f64),
        None,
        Compare::None,
        Some(Goal::AtMost(0.0)),
    );
    r.note(format!(
        "3: daemon: {n} Unix-socket connections, all opened first ({:.0} ms, {} EAGAIN retries \
         while the 4096-deep backlog was full), then all sent at once; direct baseline: one \
         HTTP/2 prior-knowledge (h2c) connection carrying all {n}, since the full run's \
         10,000 h1 client sockets plus the in-process fake's 10,000 server sockets would \
         exceed this process's 20,000-fd limit; RSS before {:.1} MB, at {live} live {:.1} MB, after {:.1} MB",
        d.connect_time.get().as_secs_f64() * 1000.0,
        d.connect_retries.get(),
        mb(rss_before),
        mb(rss_live.unwrap_or(0)),
        mb(rss_after.unwrap_or(0))
    ));
    r.raw(
        "3_concurrency",
        json!({
            "n": n, "rss_before_kib": rss_before, "rss_live_kib": rss_live, "live_at_sample": live,
            "rss_after_kib": rss_after, "hwm_kib": hwm, "daemon": outcome_json(&d),
            "direct_h2c": outcome_json(&x),
        }),
    );
    Ok(())
}

/// Cores each party kept busy over a fan-out's wall time.
fn cores(c: crate::procfs::CpuSample, o: &Outcome) -> serde_json::Value {
    let s = o.wall().map_or(1.0, |w| w.as_secs_f64());
    json!({"client": c.client_ns as f64 / 1e9 / s, "fake_provider": c.fake_ns as f64 / 1e9 / s,
           "daemon": c.daemon_ns as f64 / 1e9 / s})
}

/// A duration in seconds.
fn secs(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64())
}

/// Scenario 5: N concurrent streams of 100 chunks 10 ms apart.
pub async fn streaming(b: &Bench, daemon: &Daemon, r: &mut Report) -> anyhow::Result<()> {
    let n = if b.opts.quick { 50 } else { 1000 };
    let model = format!("stream-{STREAM_CHUNKS}-10");
    let through = chat_request(&chat_body(&format!("{STREAM_PROVIDER}/{model}"), true));
    let direct = chat_request(&chat_body(&model, true));
    // Warm the daemon's upstream pool with n connections, as the direct
    // side's n connections are open before its clock starts.
    let instant = chat_request(&chat_body(&format!("{STREAM_PROVIDER}/instant"), false));
    let expect = Expect::Completion { session: true };
    let warmed = fanout::start(&daemon.target(), instant.into(), expect, n).await;
    warmed.finished().await;
    let warm_errors = warmed.release().await.errors();
    if warm_errors > 0 {
        r.note(format!(
            "5: {warm_errors} of the {n} pool warm-up requests failed"
        ));
    }
    let through: Rc<[u8]> = through.into();
    let direct: Rc<[u8]> = direct.into();
    // 5: all at once, then 5b: paced evenly over one second, so up to n
    // streams are live together but their starts do not arrive as one burst.
    let burst = stream_run(b, daemon, &through, &direct, n, Duration::ZERO, r, "").await;
    let pace = Duration::from_secs(1) / n as u32;
    let paced = stream_run(b, daemon, &through, &direct, n, pace, r, " (paced)").await;
    r.note(format!(
        "5: {n} streams of `{model}` via `{STREAM_PROVIDER}` (HTTP/1.1 upstream pool, warmed \
         first with {n} requests; direct is HTTP/1.1 too); {EVENTS_PER_STREAM} data events \
         expected per stream ({STREAM_CHUNKS} content, stop, [DONE]); first chunk timed from \
         each request's write. Rows without a mark send all {n} at once, so their time to \
         first chunk is mostly the time to start {n} sessions one after another; rows marked \
         (paced) send one every {} µs, so up to {n} streams (≈ {} chunks/s) are live while \
         each new one starts. Cores busy, burst: {}; paced: {}",
        pace.as_micros(),
        n * 100,
        burst,
        paced,
    ));
    r.raw(
        "5_streaming",
        json!({"n": n, "model": model, "provider": STREAM_PROVIDER,
               "pace_us": pace.as_micros() as u64}),
    );
    Ok(())
}

/// One streaming run through the daemon and one direct; adds scenario 5's
/// rows (their names end in `mark`); returns the cores busy, for the note.
#[allow(clippy::too_many_arguments)]
async fn stream_run(
    b: &Bench,
    daemon: &Daemon,
    through: &Rc<[u8]>,
    direct: &Rc<[u8]>,
    n: usize,
    pace: Duration,
    r: &mut Report,
    mark: &str,
) -> String {
    let probe = b.probe(Some(daemon));
    let cpu0 = probe.sample();
    let run = fanout::start_paced(&daemon.target(), through.clone(), Expect::Events, n, pace).await;
    run.finished().await;
    let d = run.release().await;
    let cpu1 = probe.sample();
    let direct_target = Target::Tcp(b.fast.addr());
    let run = fanout::start_paced(&direct_target, direct.clone(), Expect::Events, n, pace).await;
    run.finished().await;
    let x = run.release().await;
    let cpu2 = probe.sample();
    let (d_cpu, x_cpu) = (cores(cpu1.since(&cpu0), &d), cores(cpu2.since(&cpu1), &x));
    let q = |o: &Outcome, p: f64| o.first_event.borrow().value_at_quantile(p) as f64;
    let diff = Compare::Difference;
    let p50 = (Some(q(&d, 0.5)), Some(q(&x, 0.5)));
    let name = format!("time to first chunk p50 (µs){mark}");
    r.add(5, &name, p50.0, p50.1, diff, Some(Goal::AtMost(100.0)));
    let p99 = (Some(q(&d, 0.99)), Some(q(&x, 0.99)));
    let name = format!("time to first chunk p99 (µs){mark}");
    r.add(5, &name, p99.0, p99.1, diff, Some(Goal::AtMost(1000.0)));
    let expected = n as u64 * EVENTS_PER_STREAM;
    let lost = |o: &Outcome| expected.saturating_sub(o.events.get()) as f64;
    let name = format!("chunks lost (data events expected − received){mark}");
    r.add(
        5,
        &name,
        Some(lost(&d)),
        Some(lost(&x)),
        Compare::None,
        Some(Goal::AtMost(0.0)),
    );
    let ok = (Some(d.ok.get() as f64), Some(x.ok.get() as f64));
    let name = format!("streams complete (200, ended by [DONE]){mark}");
    r.add(
        5,
        &name,
        ok.0,
        ok.1,
        Compare::None,
        Some(Goal::AtLeast(n as f64)),
    );
    let ms = |o: &Outcome| o.latency.borrow().value_at_quantile(0.5) as f64 / 1000.0;
    let name = format!("stream duration p50 (ms){mark}");
    r.add(5, &name, Some(ms(&d)), Some(ms(&x)), diff, None);
    let busy = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(0.0);
    format!(
        "daemon run client {:.2} / fake {:.2} / daemon {:.2}, direct run client {:.2} / fake {:.2}",
        busy(&d_cpu, "client"),
        busy(&d_cpu, "fake_provider"),
        busy(&d_cpu, "daemon"),
        busy(&x_cpu, "client"),
        busy(&x_cpu, "fake_provider"),
    )
}

/// Scenario 6: N live sessions on `wide`, then SIGTERM: all must complete,
/// and the process must exit right after the last answer.
pub async fn drain(b: &Bench, mut daemon: Daemon, r: &mut Report) -> anyhow::Result<()> {
    let n = if b.opts.quick { 500 } else { 10_000 };
    warm(&daemon, "wide/instant", r, 6).await;
    let base = b.fast.in_flight();
    let request: Rc<[u8]> = chat_request(&chat_body("wide/delay-2000", false)).into();
    let run = fanout::start(
        &daemon.target(),
        request,
        Expect::Completion { session: true },
        n,
    )
    .await;
    let all_live = Duration::from_secs(30);
    fanout::wait_until(all_live, || {
        b.fast.in_flight().saturating_sub(base) >= n || run.outcome.finished.get() >= n
    })
    .await;
    let live = b.fast.in_flight().saturating_sub(base);
    let term_at = Instant::now();
    daemon.sigterm();
    run.finished().await;
    let last = run.outcome.last_answer.get();
    // Clients keep their idle keep-alive connections, as a pooling client
    // would; a daemon that waits for them to close shows it here.
    let patience = Duration::from_secs(if b.opts.quick { 10 } else { 20 });
    let mut exited = daemon.wait_exit(patience).await;
    let held_open = exited.is_some();
    let d = run.release().await;
    if exited.is_none() {
        exited = daemon.wait_exit(Duration::from_secs(10)).await;
    }
    let exit_at = exited.as_ref().map(|(at, _)| *at);
    let ms = |a: Instant, b: Instant| {
        let (later, sign) = if a >= b { (a - b, 1.0) } else { (b - a, -1.0) };
        sign * later.as_secs_f64() * 1000.0
    };
    let exit_after_last = exit_at.zip(last).map(|(e, l)| ms(e, l));
    let nf = n as f64;
    r.add(
        6,
        "sessions live at SIGTERM",
        Some(live as f64),
        None,
        Compare::None,
        Some(Goal::AtLeast(nf)),
    );
    r.add(
        6,
        "sessions completed (200)",
        Some(d.ok.get() as f64),
        None,
        Compare::None,
        Some(Goal::AtLeast(nf)),
    );
    r.add(
        6,
        "exit time after last answer (ms)",
        exit_after_last,
        None,
        Compare::None,
        Some(Goal::AtMost(100.0)),
    );
    let term_to_exit = exit_at.map(|e| ms(e, term_at));
    r.add(
        6,
        "SIGTERM → exit (ms)",
        term_to_exit,
        None,
        Compare::None,
        None,
    );
    if !held_open {
        r.note(format!(
            "6: the daemon had not exited {patience:?} after its last answer while clients kept \
             their idle keep-alive connections; it was measured again after they closed them"
        ));
    }
    let complaints = daemon.complaints();
    let log = daemon.log.display().to_string();
    let status = exited.map(|(_, s)| s).or_else(|| {
        let waited = patience + Duration::from_secs(10);
        Some(format!(
            "did not exit within {waited:?} after its answers: killed"
        ))
    });
    daemon.kill();
    crate::note_daemon_end(r, "drain", &log, status, complaints);
    r.raw(
        "6_drain",
        json!({"n": n, "live_at_sigterm": live, "exit_after_last_answer_ms": exit_after_last,
               "sigterm_to_exit_ms": term_to_exit, "exited_with_idle_connections_open": held_open,
               "daemon": outcome_json(&d)}),
    );
    Ok(())
}
