//! The read-only operator commands against a real daemon: `history` (its
//! table, `--json`, filters and the next-page line), `usage --by model`,
//! `metrics`, `session ID` for a finished session, `events` following a
//! request as it happens, and the errors a bad flag or a missing daemon give.

use crate::support;

use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::Daemon;
use switchboard_testkit::{FakeProvider, Scrape, eventually};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const WAIT: Duration = Duration::from_secs(10);

/// Runs the built binary with `args`.
async fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .output()
        .await
        .expect("the CLI runs")
}

/// Runs the built binary with `args` and `--socket` of `daemon`.
async fn cli(daemon: &Daemon, args: &[&str]) -> Output {
    let socket = daemon.socket().to_str().expect("a UTF-8 socket path");
    run(&[args, &["--socket", socket]].concat()).await
}

/// Its stdout, after checking it exited 0.
fn stdout(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed: {:?}; stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

/// Sends a non-streamed chat request; its session id.
async fn chat(daemon: &Daemon, model: &str) -> String {
    support::session_id(&support::chat(daemon, model, false).await)
}

/// Waits until the history holds `count` finished sessions.
async fn wait_finished(daemon: &Daemon, count: usize) {
    eventually("the sessions in the history", WAIT, || async {
        let (_, page) = support::get_json(daemon, "/admin/history").await;
        let sessions = page["sessions"].as_array()?;
        let done = sessions.iter().all(|s| !s["outcome"].is_null());
        (sessions.len() == count && done).then_some(())
    })
    .await;
}

/// The line of `text` that holds `needle`.
fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    let found = text.lines().find(|line| line.contains(needle));
    found.unwrap_or_else(|| panic!("no line with {needle} in:\n{text}"))
}

/// The whitespace-separated cells of the line of `text` that starts with `key`.
fn cells<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    let found = text
        .lines()
        .find(|line| line.starts_with(&format!("{key} ")));
    let line = found.unwrap_or_else(|| panic!("no row {key} in:\n{text}"));
    line.split_whitespace().collect()
}

/// A daemon that has answered four requests, oldest first: one completed,
/// one failed upstream, one for an unknown model, one completed (newest).
struct Recorded {
    fake: FakeProvider,
    daemon: Daemon,
    first: String,
    failed: String,
    unknown: String,
    newest: String,
}

impl Recorded {
    async fn start() -> Recorded {
        let fake = FakeProvider::start().await;
        let daemon = support::daemon(&fake)
            .provider_toml("fake", "max_retries = 0")
            .start()
            .await;
        let first = chat(&daemon, "fake/instant").await;
        let failed = chat(&daemon, "fake/status-500").await;
        let unknown = chat(&daemon, "nope/model").await;
        let newest = chat(&daemon, "fake/instant").await;
        wait_finished(&daemon, 4).await;
        Recorded {
            fake,
            daemon,
            first,
            failed,
            unknown,
            newest,
        }
    }

    /// The ids, newest first.
    fn ids(&self) -> [&str; 4] {
        [&self.newest, &self.unknown, &self.failed, &self.first].map(String::as_str)
    }
}

#[tokio::test]
async fn history_usage_metrics_and_session_show_what_was_recorded() {
    let recorded = Recorded::start().await;
    history_lists_every_session_newest_first(&recorded).await;
    history_json_is_the_daemons_page(&recorded).await;
    history_filters_and_pages(&recorded).await;
    usage_adds_up_by_model(&recorded).await;
    metrics_prints_the_scrape(&recorded).await;
    session_shows_how_it_ended(&recorded).await;
}

async fn history_lists_every_session_newest_first(r: &Recorded) {
    let table = stdout(&cli(&r.daemon, &["history"]).await, "history");
    let header = table.lines().next().expect("a header");
    for column in [
        "ID",
        "RECEIVED",
        "PROVIDER/MODEL",
        "OUTCOME",
        "STATUS",
        "DURATION",
        "TOKENS",
    ] {
        assert!(header.contains(column), "{table}");
    }
    let order = r
        .ids()
        .map(|id| table.find(id).expect("every session is listed"));
    assert!(order.is_sorted(), "newest first:\n{table}");
    let row = line_with(&table, &r.newest);
    assert!(
        row.contains("fake/instant") && row.contains("COMPLETED"),
        "{row}"
    );
    let caller = format!("({})", std::process::id());
    assert!(row.ends_with(&caller), "the client is this process: {row}");
    let row = line_with(&table, &r.failed);
    assert!(row.contains("ERROR") && row.contains("502"), "{row}");
    let row = line_with(&table, &r.unknown);
    assert!(
        row.contains("nope/model") && row.contains("REJECTED"),
        "{row}"
    );
    assert!(
        !table.contains("more:"),
        "one page holds them all:\n{table}"
    );
}

async fn history_json_is_the_daemons_page(r: &Recorded) {
    let json = stdout(
        &cli(&r.daemon, &["history", "--json"]).await,
        "history --json",
    );
    let page: Value = serde_json::from_str(&json).expect("history --json is JSON");
    let sessions = page["sessions"].as_array().expect("a sessions list");
    let ids: Vec<&str> = sessions.iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids, r.ids());
    assert!(page["next"].is_null(), "{page}");
}

async fn history_filters_and_pages(r: &Recorded) {
    let args = ["history", "--outcome", "COMPLETED", "--limit", "1"];
    let one = stdout(&cli(&r.daemon, &args).await, "history --outcome --limit");
    let lines: Vec<&str> = one.lines().collect();
    assert_eq!(lines.len(), 3, "header, one session, next page:\n{one}");
    assert!(lines[1].starts_with(&r.newest), "{one}");
    let more = lines[2].strip_prefix("more: switchboard ");
    let more = more.unwrap_or_else(|| panic!("a more: line in:\n{one}"));
    assert!(more.contains("--outcome COMPLETED --limit 1"), "{more}");
    let next: Vec<&str> = more.split_whitespace().collect();
    let socket = r.daemon.socket().to_str().expect("a UTF-8 socket path");
    assert_eq!(next[next.len() - 2..], ["--socket", socket], "{more}");
    let rest = stdout(&run(&next).await, "the next page");
    assert!(line_with(&rest, &r.first).contains("COMPLETED"), "{rest}");
    assert!(!rest.contains(&r.newest), "{rest}");
}

async fn usage_adds_up_by_model(r: &Recorded) {
    let usage = stdout(&cli(&r.daemon, &["usage", "--by", "model"]).await, "usage");
    assert!(usage.starts_with("KEY "), "{usage}");
    let reported = r.fake.usage_reported_for("instant");
    let instant = cells(&usage, "fake/instant");
    assert_eq!(instant[1..3], ["2", "0"], "{usage}");
    assert_eq!(instant[3], reported.prompt_tokens.to_string(), "{usage}");
    assert_eq!(instant[5], reported.total_tokens.to_string(), "{usage}");
    assert_eq!(instant[6], "-", "no price, no cost: {usage}");
    assert_eq!(
        cells(&usage, "fake/status-500")[1..3],
        ["1", "1"],
        "{usage}"
    );
    assert_eq!(cells(&usage, "nope/model")[1..3], ["1", "1"], "{usage}");
    assert_eq!(cells(&usage, "TOTAL")[1..3], ["4", "2"], "{usage}");
}

async fn metrics_prints_the_scrape(r: &Recorded) {
    let metrics = stdout(&cli(&r.daemon, &["metrics"]).await, "metrics");
    let scrape = Scrape::parse(&metrics).expect("metrics prints the scrape as it is");
    assert!(scrape.ended_with_eof(), "{metrics}");
    let completed = [
        ("provider", "fake"),
        ("model", "instant"),
        ("outcome", "COMPLETED"),
    ];
    let requests = scrape.value("switchboard_requests_total", &completed);
    assert_eq!(requests, Some(2.0), "{metrics}");
}

async fn session_shows_how_it_ended(r: &Recorded) {
    let detail = stdout(&cli(&r.daemon, &["session", &r.failed]).await, "session");
    let fields = [
        format!("id              {}", r.failed),
        "outcome         ERROR".to_owned(),
        "status          502".to_owned(),
        "error code      provider_error".to_owned(),
        "attempts        1".to_owned(),
    ];
    for field in fields {
        assert!(detail.contains(&field), "{field} in:\n{detail}");
    }
    assert!(line_with(&detail, "ELAPSED").contains("PHASE"), "{detail}");
    assert!(
        line_with(&detail, "PROVIDER_CALL_END").contains(" ms  PROVIDER_CALL_END "),
        "{detail}"
    );
}

#[tokio::test]
async fn bad_flags_and_a_missing_daemon_are_reported() {
    let fake = FakeProvider::start().await;
    let daemon = support::daemon(&fake).start().await;
    let bad = cli(&daemon, &["history", "--limit", "0"]).await;
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("400 Bad Request") && stderr.contains("limit"),
        "{stderr}"
    );

    let gone = daemon.dir().join("nobody-here.sock");
    let output = run(&["usage", "--socket", gone.to_str().expect("UTF-8")]).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot reach the switchboard daemon"),
        "{stderr}"
    );
    assert!(
        stderr.contains("is `switchboard serve` running?"),
        "{stderr}"
    );
}

/// Starts `switchboard events` with `args`; the child and its stdout lines.
fn follow(daemon: &Daemon, args: &[&str]) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("events")
        .args(args)
        .arg("--socket")
        .arg(daemon.socket())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("events starts");
    let out = child.stdout.take().expect("piped stdout");
    (child, BufReader::new(out).lines())
}

/// The lines up to and including the first that holds `id` and `phase`.
async fn lines_until(
    lines: &mut Lines<BufReader<ChildStdout>>,
    id: &str,
    phase: &str,
) -> Vec<String> {
    let mut seen = Vec::new();
    while !seen
        .last()
        .is_some_and(|l: &String| l.contains(id) && l.contains(phase))
    {
        let next = tokio::time::timeout(WAIT, lines.next_line()).await;
        let line = next
            .unwrap_or_else(|_| panic!("no {phase} line for {id} after {seen:?}"))
            .expect("stdout reads")
            .unwrap_or_else(|| panic!("events ended before {phase} of {id}: {seen:?}"));
        seen.push(line);
    }
    seen
}

/// Waits until the daemon counts `count` event readers.
async fn wait_readers(daemon: &Daemon, count: f64) {
    eventually("the event readers", WAIT, || async {
        let response = daemon.client().get(daemon.url("/metrics")).send().await;
        let text = response.ok()?.text().await.ok()?;
        let readers = Scrape::parse(&text)
            .ok()?
            .value("switchboard_event_subscribers", &[]);
        (readers == Some(count)).then_some(())
    })
    .await;
}

/// Sends `child` a Ctrl-C (SIGINT) and checks that it exits 0.
async fn interrupt(mut child: Child) {
    let pid = child.id().expect("still running") as libc::pid_t;
    // SAFETY: `pid` is our own child, not yet waited for, so not reused.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let status = tokio::time::timeout(WAIT, child.wait()).await;
    let status = status.expect("events exits on Ctrl-C").expect("waited");
    assert!(status.success(), "Ctrl-C exits 0: {status:?}");
}

#[tokio::test]
async fn events_prints_each_phase_as_it_happens() {
    let fake = FakeProvider::start().await;
    let daemon = support::daemon(&fake).start().await;
    let (plain, mut plain_lines) = follow(&daemon, &[]);
    let (mut json, mut json_lines) = follow(&daemon, &["--json", "--phase", "completed"]);
    wait_readers(&daemon, 2.0).await;

    let id = chat(&daemon, "fake/instant").await;
    let lines = lines_until(&mut plain_lines, &id, "COMPLETED").await;
    let ours: Vec<&String> = lines.iter().filter(|l| l.contains(&id)).collect();
    assert!(ours[0].contains("fake/instant  RECEIVED"), "{lines:?}");
    let call = ours.iter().find(|l| l.contains("PROVIDER_CALL_START"));
    let call = call.unwrap_or_else(|| panic!("a provider call in {lines:?}"));
    assert!(call.contains("attempt 1  fake/instant"), "{call}");

    let line = lines_until(&mut json_lines, &id, "COMPLETED").await.pop();
    let event: Value = serde_json::from_str(&line.expect("a line")).expect("--json lines are JSON");
    assert_eq!(event["session"], id.as_str());
    assert_eq!(event["phase"], "COMPLETED");
    assert_eq!(event["provider"], "fake");

    interrupt(plain).await;
    json.kill().await.expect("events is killed");
}
