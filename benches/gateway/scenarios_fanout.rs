//! Scenarios 3 and 6, which open one connection per request and send them
//! all at once with [`crate::fanout`]: concurrency and memory per live
//! session (with the direct and floor sides over one h2c connection each),
//! and the drain on SIGTERM.

use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::Bench;
use crate::daemon::Daemon;
use crate::fanout::{self, Outcome};
use crate::floor::Floor;
use crate::http1::{Conn, Expect, Failure, Target};
use crate::report::{Compare, Report, Target as Goal};
use crate::requests::{chat_body, chat_request};
use crate::stats::{failures_json, quantiles};

/// One request to make the daemon open its upstream connection and start
/// its actors before anything is measured.
async fn warm(daemon: &Daemon, model: &str, r: &mut Report, n: u8) {
    let request = chat_request(&chat_body(model, false));
    let result = match daemon.target().connect().await {
        Ok(stream) => Conn::new(stream)
            .exchange(&request, Expect::Completion { session: true })
            .await
            .map(|_| ()),
        Err(_) => Err(Failure::Connect),
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

/// The daemon's memory around scenario 3's fan-out, KiB.
struct Memory {
    /// Resident before the requests.
    before: u64,
    /// Most sessions live at the fake provider at once.
    live: usize,
    /// Resident when `live` was reached.
    at_live: Option<u64>,
    /// Resident after the answers.
    after: Option<u64>,
    /// Peak resident.
    hwm: Option<u64>,
}

/// Scenario 3's daemon side: `n` requests at once on `model` (a 2 s
/// delay), each on its own connection, sampling the daemon's memory while
/// they are live.
async fn through_daemon(
    b: &Bench,
    daemon: &Daemon,
    model: &str,
    n: usize,
) -> (Rc<Outcome>, Memory) {
    let before = daemon.rss_kib().unwrap_or(0);
    let base = b.fast.in_flight();
    let request: Rc<[u8]> = chat_request(&chat_body(model, false)).into();
    let expect = Expect::Completion { session: true };
    let run = fanout::start(&daemon.target(), request, expect, n).await;
    let (mut live, mut at_live) = (0, None);
    while run.outcome.finished.get() < n {
        let now = b.fast.in_flight().saturating_sub(base);
        if now > live {
            live = now;
            at_live = daemon.rss_kib();
        }
        if live >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    run.finished().await;
    let (hwm, after) = (daemon.hwm_kib(), daemon.rss_kib());
    let memory = Memory {
        before,
        live,
        at_live,
        after,
        hwm,
    };
    (run.release().await, memory)
}

/// Scenario 3: N requests at once with a 2 s provider delay through the
/// daemon (on `wide`, h2c upstream), directly, and through the floor.
pub async fn concurrency(
    b: &Bench,
    daemon: &Daemon,
    floor: Option<&Floor>,
    r: &mut Report,
) -> anyhow::Result<()> {
    let n = if b.opts.quick { 500 } else { 10_000 };
    warm(daemon, "wide/instant", r, 3).await;
    let (d, memory) = through_daemon(b, daemon, "wide/delay-2000", n).await;
    let body = chat_body("delay-2000", false);
    let x = fanout::h2c_all_at_once(&Target::Tcp(b.fast.addr()), &body, n).await;
    let f = match floor {
        Some(floor) => {
            let f = fanout::h2c_all_at_once(&floor.h2_target(), &body, n).await;
            Some((f, floor.hwm_kib()))
        }
        None => None,
    };
    let f = f.as_ref().map(|(o, hwm)| (o.as_ref(), *hwm));
    concurrency_rows(r, n, &d, &x, f, &memory);
    r.note(concurrency_note(n, &d, &memory, f.is_some()));
    r.raw(
        "3_concurrency",
        json!({
            "n": n, "rss_before_kib": memory.before, "rss_live_kib": memory.at_live,
            "live_at_sample": memory.live, "rss_after_kib": memory.after, "hwm_kib": memory.hwm,
            "daemon": outcome_json(&d), "direct_h2c": outcome_json(&x),
            "floor_h2c": f.map(|(o, _)| outcome_json(o)), "floor_hwm_kib": f.and_then(|f| f.1),
        }),
    );
    Ok(())
}

/// Sessions of scenario 3's HTTP/1.1 leg: each holds a client socket and an
/// upstream one in the daemon, and the bench process holds the client's
/// and the in-process fake's, so 4,000 stay well inside the 20,000-fd limit
/// of each process.
const H1_SESSIONS: usize = 4_000;

/// Scenario 3's HTTP/1.1 leg, on a daemon of its own (so its memory is not
/// what the 10,000 left behind): [`H1_SESSIONS`] at once on `fast`, one
/// upstream connection per session from the daemon's own pool, as a
/// plain-`http://` provider (a local server) gets.
pub async fn concurrency_h1(b: &Bench, daemon: &Daemon, r: &mut Report) -> anyhow::Result<()> {
    let n = if b.opts.quick { 250 } else { H1_SESSIONS };
    warm(daemon, "fast/instant", r, 3).await;
    let (d, memory) = through_daemon(b, daemon, "fast/delay-2000", n).await;
    let per = (memory.at_live.filter(|_| memory.live > 0))
        .map(|l| (l as f64 - memory.before as f64) / memory.live as f64);
    let ok = Some(d.ok.get() as f64);
    let name = format!("HTTP/1.1 upstream, {n} at once: requests completed (200)");
    r.add(
        3,
        &name,
        ok,
        None,
        Compare::None,
        Some(Goal::AtLeast(n as f64)),
    );
    let name = format!("HTTP/1.1 upstream, {n} at once: RSS per live session (KiB)");
    r.add(3, &name, per, None, Compare::None, None);
    let name = format!("HTTP/1.1 upstream, {n} at once: peak RSS, VmHWM (MB)");
    r.add(3, &name, memory.hwm.map(mb), None, Compare::None, None);
    r.raw(
        "3_concurrency_h1",
        json!({
            "n": n, "rss_before_kib": memory.before, "rss_live_kib": memory.at_live,
            "live_at_sample": memory.live, "rss_after_kib": memory.after, "hwm_kib": memory.hwm,
            "daemon": outcome_json(&d),
        }),
    );
    Ok(())
}

/// Scenario 3's rows of every side; `f` is the floor's outcome and peak
/// memory.
fn concurrency_rows(
    r: &mut Report,
    n: usize,
    d: &Outcome,
    x: &Outcome,
    f: Option<(&Outcome, Option<u64>)>,
    memory: &Memory,
) {
    let nf = n as f64;
    let ok = |o: &Outcome| Some(o.ok.get() as f64);
    let (fo, fhwm) = (f.map(|f| f.0), f.and_then(|f| f.1));
    r.add(
        3,
        "requests completed (200)",
        ok(d),
        ok(x),
        Compare::None,
        Some(Goal::AtLeast(nf)),
    )
    .floor(fo.and_then(ok), None);
    let wall = |o: &Outcome| secs(o.wall());
    let name = "wall time, all sent → last answer (s)";
    r.add(
        3,
        name,
        wall(d),
        wall(x),
        Compare::Ratio,
        Some(Goal::AtMost(1.1)),
    )
    .floor(fo.and_then(wall), None);
    let name = "peak RSS, VmHWM (MB) [floor: nginx master + workers, summed]";
    r.add(
        3,
        name,
        memory.hwm.map(mb),
        None,
        Compare::None,
        Some(Goal::AtMost(150.0)),
    )
    .floor(fhwm.map(mb), None);
    memory_rows(r, n, d, memory);
}

/// Scenario 3's rows of the daemon alone: memory per session, and whether
/// every session was live at once.
fn memory_rows(r: &mut Report, n: usize, d: &Outcome, memory: &Memory) {
    let live = memory.live;
    let per = (memory.at_live.filter(|_| live > 0))
        .map(|l| (l as f64 - memory.before as f64) / live as f64);
    r.add(
        3,
        "RSS per live session (KiB)",
        per,
        None,
        Compare::None,
        None,
    );
    let name = "sessions live at the RSS sample";
    r.add(
        3,
        name,
        Some(live as f64),
        None,
        Compare::None,
        Some(Goal::AtLeast(n as f64)),
    );
    let connect_errors = d.failures.borrow().get(&Failure::Connect).copied();
    let errors = Some(connect_errors.unwrap_or(0) as f64);
    r.add(
        3,
        "connect failures",
        errors,
        None,
        Compare::None,
        Some(Goal::AtMost(0.0)),
    );
}

/// Scenario 3's note: how each side sent its requests, and the memory.
fn concurrency_note(n: usize, d: &Outcome, memory: &Memory, floor: bool) -> String {
    let floor = match floor {
        true => {
            "; floor: likewise one h2c connection to nginx, which has no HTTP/2 upstream, so it \
             opens one HTTP/1.1 connection to the fake per request; its peak RSS sums its \
             master's and workers' own peaks, so pages they share count once per process"
        }
        false => "",
    };
    format!(
        "3: daemon: {n} Unix-socket connections, all opened first ({:.0} ms, {} EAGAIN retries \
         while the 4096-deep backlog was full), then all sent at once; direct baseline: one \
         HTTP/2 prior-knowledge (h2c) connection carrying all {n}, since the full run's \
         10,000 h1 client sockets plus the in-process fake's 10,000 server sockets would \
         exceed this process's 20,000-fd limit{floor}; daemon RSS before {:.1} MB, at {} live \
         {:.1} MB, after {:.1} MB",
        d.connect_time.get().as_secs_f64() * 1000.0,
        d.connect_retries.get(),
        mb(memory.before),
        memory.live,
        mb(memory.at_live.unwrap_or(0)),
        mb(memory.after.unwrap_or(0))
    )
}

/// A duration in seconds.
fn secs(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64())
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
        Some(Goal::AtLeast(n as f64)),
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
