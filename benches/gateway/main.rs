//! The gateway load benchmark: `cargo bench --bench gateway [-- --quick]
//! [--scenario N]... [--out DIR]`.
//!
//! It runs the release `switchboard` daemon as a child process in front of
//! an in-process fake provider, the same fake provider directly, and nginx
//! as a plain reverse proxy on the daemon's hop (the floor, when nginx is
//! installed), in one run, and prints daemon vs direct and daemon vs floor
//! for seven scenarios (overhead, saturation, concurrency, head-of-line
//! blocking, streaming, drain, and the cost of each provider route) as a
//! Markdown table, also written to `<out>/gateway.md` and
//! `<out>/gateway.json`.
//!
//! Threads: the load client runs on this (main) thread's single-threaded
//! tokio runtime; the fake providers run on their own single-threaded
//! runtime thread; the daemon and nginx are separate processes. Each one's
//! CPU time is read from `/proc` around every run. Exit status is non-zero
//! only when the harness itself fails; missed targets are results, not
//! failures, and a missing nginx only skips the floor.

mod daemon;
mod fanout;
mod floor;
mod http1;
mod load;
mod net;
mod procfs;
mod report;
mod requests;
mod rounds;
mod rows;
mod scenarios_fanout;
mod scenarios_load;
mod scenarios_routes;
mod scenarios_stream;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::json;
use switchboard_testkit::FakeProvider;

use crate::daemon::{Daemon, Upstreams};
use crate::floor::{Floor, Nginx};
use crate::procfs::{CpuProbe, Gateway};
use crate::report::Report;

/// Command-line options (unknown ones, like cargo's `--bench`, are ignored).
#[derive(Debug, Clone)]
pub struct Options {
    /// Every scenario in a few seconds.
    pub quick: bool,
    /// Scenarios to run (empty: all).
    pub scenarios: Vec<u8>,
    /// Where the report and daemon logs go.
    pub out: PathBuf,
}

impl Options {
    /// Parses the process arguments.
    fn parse() -> Options {
        let mut options = Options {
            quick: false,
            scenarios: Vec::new(),
            out: PathBuf::from("target/bench"),
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
                None => (arg.clone(), None),
            };
            match flag.as_str() {
                "--quick" => options.quick = true,
                "--scenario" => {
                    if let Some(n) = inline.or_else(|| args.next()).and_then(|v| v.parse().ok()) {
                        options.scenarios.push(n);
                    }
                }
                "--out" => {
                    if let Some(dir) = inline.or_else(|| args.next()) {
                        options.out = PathBuf::from(dir);
                    }
                }
                _ => {}
            }
        }
        options
    }

    /// Whether scenario `n` was asked for.
    pub fn wants(&self, n: u8) -> bool {
        self.scenarios.is_empty() || self.scenarios.contains(&n)
    }
}

/// What every scenario can reach.
pub struct Bench {
    /// The options.
    pub opts: Options,
    /// The daemon binary.
    pub bin: PathBuf,
    /// The fake provider behind `fast` and `wide`, also the direct baseline.
    pub fast: Arc<FakeProvider>,
    /// The fake provider behind `stuck` (hung requests).
    pub stuck: Arc<FakeProvider>,
    /// The load client's thread id.
    pub client_tid: i32,
    /// The fake providers' thread id.
    pub fake_tid: i32,
    /// nginx, for the floor, or why there is none.
    pub nginx: Result<Nginx, String>,
}

impl Bench {
    /// A CPU probe for the client, the fake and (if given) the gateway.
    pub fn probe(&self, gateway: Option<Gateway>) -> CpuProbe {
        CpuProbe {
            client_tid: self.client_tid,
            fake_tid: self.fake_tid,
            gateway,
        }
    }

    /// Starts a floor whose error log is `<out>/floor-<name>.log`, in front
    /// of the `fast` fake provider. Without nginx, or if it fails to start
    /// (noted), there is none: the daemon's own figures still come out.
    pub async fn floor(&self, name: &str, report: &mut Report) -> Option<Floor> {
        let nginx = self.nginx.as_ref().ok()?;
        match Floor::start(nginx, &self.opts.out, name, self.fast.addr()).await {
            Ok(floor) => Some(floor),
            Err(e) => {
                report.note(format!(
                    "floor `{name}` did not start, its rows are skipped: {e:#}"
                ));
                None
            }
        }
    }

    /// Starts a daemon whose log is `<out>/daemon-<name>.log`, with history
    /// and metrics on (the defaults).
    pub async fn daemon(&self, name: &str) -> anyhow::Result<Daemon> {
        self.daemon_with(name, true).await
    }

    /// The same, with history and metrics on or off.
    pub async fn daemon_with(&self, name: &str, records: bool) -> anyhow::Result<Daemon> {
        let up = Upstreams {
            fast: self.fast.base_url(),
            fast_anthropic: self.fast.anthropic_base_url(),
            stuck: self.stuck.base_url(),
        };
        Daemon::start(&self.bin, &self.opts.out, name, &up, records).await
    }
}

fn main() -> ExitCode {
    let opts = Options::parse();
    match run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway bench: harness failure: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Sets up the process, the fake providers and the client runtime, then
/// runs the scenarios and writes the report.
fn run(opts: Options) -> anyhow::Result<()> {
    let (soft, hard) = procfs::raise_open_file_limit()?;
    std::fs::create_dir_all(&opts.out)?;
    let (fake_tx, fake_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let fake_thread = std::thread::Builder::new()
        .name("fake-provider".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("fake provider runtime");
            rt.block_on(async move {
                let fast = FakeProvider::start().await;
                let stuck = FakeProvider::start().await;
                fast.set_recording(false);
                stuck.set_recording(false);
                let _ = fake_tx.send((Arc::new(fast), Arc::new(stuck), procfs::current_tid()));
                let _ = stop_rx.await;
            });
        })?;
    let (fast, stuck, fake_tid) = fake_rx.recv()?;
    let bench = Bench {
        opts: opts.clone(),
        bin: PathBuf::from(env!("CARGO_BIN_EXE_switchboard")),
        fast,
        stuck,
        client_tid: procfs::current_tid(),
        fake_tid,
        nginx: floor::find_nginx(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let result = local.block_on(&rt, scenarios(&bench));
    drop(local);
    drop(rt);
    let (mut report, settings) = result?;
    note_floor(&bench, &mut report);
    report.sort();
    let mode = if opts.quick { "quick" } else { "full" };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = report::utc_now();
    let meta = json!({
        "mode": mode,
        "date": date,
        "cores": cores,
        "open_file_limit": {"soft": soft, "hard": hard},
        "daemon_binary": bench.bin.display().to_string(),
        "daemon_settings": settings,
        "floor": match &bench.nginx {
            Ok(nginx) => json!({"nginx": nginx.path.display().to_string(), "version": nginx.version,
                                "worker_processes": floor::workers()}),
            Err(why) => json!({"skipped": why}),
        },
        "scenarios_run": (1..=7).filter(|n| opts.wants(*n)).collect::<Vec<u8>>(),
    });
    let header = format!(
        "## Switchboard gateway benchmark ({mode}, {date}, {cores} cores)\n\n\
         `cargo bench --bench gateway{}`",
        if opts.quick { " -- --quick" } else { "" }
    );
    report.write(&opts.out, &header, meta)?;
    drop(bench);
    let _ = stop_tx.send(());
    let _ = fake_thread.join();
    Ok(())
}

/// Runs the chosen scenarios; returns the report and the settings used.
async fn scenarios(b: &Bench) -> anyhow::Result<(Report, String)> {
    let mut report = Report::default();
    let mut settings = String::new();
    if [1, 2, 4, 5].iter().any(|n| b.opts.wants(*n)) {
        settings = shared_scenarios(b, &mut report).await?;
    }
    if b.opts.wants(3) {
        let daemon = b.daemon("concurrency").await?;
        settings = daemon.settings.clone();
        // A floor of its own, so its peak memory is this scenario's.
        let floor = b.floor("concurrency", &mut report).await;
        scenarios_fanout::concurrency(b, &daemon, floor.as_ref(), &mut report).await?;
        finish_floor(floor, "concurrency", &mut report);
        finish_daemon(daemon, "concurrency", &mut report).await;
        let daemon = b.daemon("concurrency-h1").await?;
        scenarios_fanout::concurrency_h1(b, &daemon, &mut report).await?;
        finish_daemon(daemon, "concurrency-h1", &mut report).await;
    }
    if b.opts.wants(7) {
        let daemon = b.daemon("routes").await?;
        settings = daemon.settings.clone();
        scenarios_routes::routes(b, &daemon, &mut report).await?;
        finish_daemon(daemon, "routes", &mut report).await;
    }
    if b.opts.wants(6) {
        let daemon = b.daemon("drain").await?;
        settings = daemon.settings.clone();
        scenarios_fanout::drain(b, daemon, &mut report).await?;
    }
    Ok((report, settings))
}

/// Scenarios 1, 2, 4 and 5, on one daemon (and one floor); returns the
/// daemon's settings.
async fn shared_scenarios(b: &Bench, report: &mut Report) -> anyhow::Result<String> {
    let shared = b.daemon("shared").await?;
    // Scenarios 1 and 2 also run through a daemon without history and
    // metrics, in the same rounds, to show what recording costs.
    let bare = match b.opts.wants(1) || b.opts.wants(2) {
        true => Some(b.daemon_with("bare", false).await?),
        false => None,
    };
    let floor = match [1, 2, 5].iter().any(|n| b.opts.wants(*n)) {
        true => b.floor("shared", report).await,
        false => None,
    };
    let (bare_ref, floor_ref) = (bare.as_ref(), floor.as_ref());
    let mut alone = None;
    if b.opts.wants(1) {
        alone = Some(scenarios_load::overhead(b, &shared, bare_ref, floor_ref, report).await?);
    }
    if b.opts.wants(2) {
        scenarios_load::saturation(b, &shared, bare_ref, floor_ref, report).await?;
    }
    if let Some(bare) = bare {
        finish_daemon(bare, "bare", report).await;
    }
    if b.opts.wants(4) {
        scenarios_load::head_of_line(b, &shared, alone, report).await?;
    }
    if b.opts.wants(5) {
        scenarios_stream::streaming(b, &shared, floor.as_ref(), report).await?;
    }
    finish_floor(floor, "shared", report);
    let settings = shared.settings.clone();
    finish_daemon(shared, "shared", report).await;
    Ok(settings)
}

/// Notes which nginx the floor is and how it runs, or why there is none.
fn note_floor(b: &Bench, report: &mut Report) {
    let nginx = match &b.nginx {
        Ok(nginx) => nginx,
        Err(why) => return report.note(why.clone()),
    };
    report.note(format!(
        "floor: {} (`{}`) as a plain reverse proxy on the daemon's hop (Unix socket in, \
         loopback TCP out), {} worker processes (one per core, as the daemon runs one shard \
         per core), at most {} idle keep-alive upstream connections per worker, \
         proxy_buffering off; it sends what the direct side sends. Its CPU is its master's \
         and workers' together; its config is in gateway.json",
        nginx.version,
        nginx.path.display(),
        floor::workers(),
        floor::UPSTREAM_KEEPALIVE,
    ));
}

/// Stops a floor and notes how it ended and what it logged.
fn finish_floor(floor: Option<Floor>, name: &str, report: &mut Report) {
    let Some(mut floor) = floor else {
        return;
    };
    let status = floor.stop();
    let complaints = floor.complaints();
    let log = floor.log.display().to_string();
    if status != "exit status: 0" {
        report.note(format!(
            "floor `{name}` ended abnormally: {status} (log: {log})"
        ));
    }
    if let Some(first) = complaints.first() {
        let first = first.chars().take(300).collect::<String>();
        report.note(format!(
            "floor `{name}` (nginx) logged {} line(s) at warn or above ({log}); first: `{first}`",
            complaints.len()
        ));
    }
    let shown: Vec<&String> = complaints.iter().take(20).collect();
    report.raw(
        &format!("floor_{name}"),
        json!({"exit": status, "log": log, "warn_or_error_lines": complaints.len(),
               "first_lines": shown, "config": floor.config}),
    );
}

/// Stops a daemon and notes how it ended and what it logged.
async fn finish_daemon(daemon: Daemon, name: &str, report: &mut Report) {
    let complaints = daemon.complaints();
    let log = daemon.log.display().to_string();
    let ended = daemon.stop().await;
    note_daemon_end(report, name, &log, ended.map(|(_, s)| s), complaints);
}

/// Notes a daemon's exit and the WARN/ERROR lines of its log.
pub fn note_daemon_end(
    report: &mut Report,
    name: &str,
    log: &str,
    status: Option<String>,
    complaints: Vec<String>,
) {
    let status = status.unwrap_or_else(|| "did not exit within 90 s of SIGTERM: killed".into());
    if status != "exit status: 0" {
        report.note(format!(
            "daemon `{name}` ended abnormally: {status} (log: {log})"
        ));
    }
    if !complaints.is_empty() {
        let first = complaints[0].chars().take(300).collect::<String>();
        report.note(format!(
            "daemon `{name}` logged {} WARN/ERROR line(s) ({log}); first: `{first}`",
            complaints.len()
        ));
    }
    let shown: Vec<&String> = complaints.iter().take(20).collect();
    report.raw(
        &format!("daemon_{name}"),
        json!({"exit": status, "log": log, "warn_or_error_lines": complaints.len(), "first_lines": shown}),
    );
}
