//! `GET /admin/usage` adds up exactly what the provider reported: by model
//! (against the fake provider's own ledger), by uid (the test's own user and,
//! when run as root, uid 65534 through the `switchboard chat` CLI), and by
//! process (the test binary, and the CLI as `switchboard`), with exact
//! request and error counts. Streamed answers are accounted from the usage
//! in their last chunk, in each provider's shape (GLM, Kimi, OpenAI).
//! Models with prices get `cost`; others `cost: null`.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use support::scrape::*;
use support::*;
use switchboard_testkit::{Daemon, FakeProvider, UsageShape, UsageTotals};

/// A request body for `model` whose prompt is `prompt`.
fn request(model: &str, stream: bool, prompt: &str) -> Value {
    json!({
        "model": model,
        "stream": stream,
        "messages": [{ "role": "user", "content": prompt }],
    })
}

/// The usage object in a streamed answer's events, wherever the provider's
/// shape put it (top level, or inside `choices[0]`); panics unless exactly
/// one event carries one and it is the last chunk before `[DONE]`.
fn stream_usage(events: &[String], shape: UsageShape) -> Value {
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap_or_else(|_| panic!("a chunk is JSON: {e}")))
        .collect();
    let usage_of = |chunk: &Value| -> Option<Value> {
        [&chunk["usage"], &chunk["choices"][0]["usage"]]
            .into_iter()
            .find(|u| u.is_object())
            .cloned()
    };
    let carrying: Vec<usize> = (0..chunks.len())
        .filter(|&i| usage_of(&chunks[i]).is_some())
        .collect();
    assert_eq!(
        carrying,
        [chunks.len() - 1],
        "{shape}: only the last chunk carries usage: {events:?}"
    );
    let last = &chunks[chunks.len() - 1];
    match shape {
        UsageShape::Glm => assert!(last["usage"].is_object(), "{shape}: {last}"),
        UsageShape::Kimi => assert!(last["choices"][0]["usage"].is_object(), "{shape}: {last}"),
        UsageShape::OpenAi => assert_eq!(last["choices"], json!([]), "{shape}: {last}"),
        UsageShape::None => unreachable!("no usage to find"),
    }
    usage_of(last).expect("the last chunk's usage")
}

/// What one answer reported, as `(prompt, completion, total)`.
fn triple(usage: &Value) -> (u64, u64, u64) {
    let n = |k: &str| {
        usage[k]
            .as_u64()
            .unwrap_or_else(|| panic!("usage.{k}: {usage}"))
    };
    (
        n("prompt_tokens"),
        n("completion_tokens"),
        n("total_tokens"),
    )
}

/// Sends one request and checks the daemon accounted it, once ended, with
/// the usage the answer itself carried (for a stream: its last chunk, in
/// `shape`, which is set on the fake first).
async fn send(daemon: &Daemon, fake: &FakeProvider, model: &str, stream: bool, prompt: &str) {
    let shape = if stream {
        // Go through the shapes; GLM's is the fake's default.
        let words = prompt.split_whitespace().count();
        [UsageShape::Glm, UsageShape::Kimi, UsageShape::OpenAi][words % 3]
    } else {
        UsageShape::Glm
    };
    fake.set_usage_shape(shape);
    let response = chat_json(daemon, &request(model, stream, prompt), &[]).await;
    assert_eq!(response.status(), 200, "{model} {prompt:?}");
    let id = session_id(&response);
    let reported = if stream {
        let (events, error) = SseReader::new(response).collect().await;
        assert_eq!(error, None, "{model}: the stream broke: {events:?}");
        stream_usage(&events, shape)
    } else {
        let body: Value = response.json().await.expect("a JSON answer");
        body["usage"].clone()
    };
    let (prompt_tokens, _, _) = triple(&reported);
    assert_eq!(
        prompt_tokens,
        prompt.split_whitespace().count() as u64 + 8,
        "the fake counts words + 8"
    );
    let (_, timeline) = eventually_ended(daemon, &id).await;
    assert_eq!(
        triple(&timeline["usage"]),
        triple(&reported),
        "{model} (stream {stream}, {shape}): the session's usage is the answer's: {timeline}"
    );
}

/// Waits until session `id` has ended; returns its admin answer.
async fn eventually_ended(daemon: &Daemon, id: &str) -> (u16, Value) {
    switchboard_testkit::eventually_debug(&format!("session {id} to end"), SETTLE, || async {
        let (status, session) = get_json(daemon, &format!("/admin/sessions/{id}")).await;
        if status == 200 && session["outcome"].is_string() {
            Ok((status, session))
        } else {
            Err((status, session))
        }
    })
    .await
}

/// The test's own requests: two models, streamed and not, prompts of
/// different lengths, and one provider error. Returns (requests, errors).
async fn own_requests(daemon: &Daemon, fake: &FakeProvider) -> (u64, u64) {
    let prompts = [
        "one",
        "one two",
        "one two three four five",
        "a b c d e f g h i j k l",
    ];
    let mut sent = 0;
    for model in ["fake/instant", "fake/delay-10"] {
        for (n, prompt) in prompts.iter().enumerate() {
            send(daemon, fake, model, n % 2 == 1, prompt).await;
            sent += 1;
        }
    }
    // A streamed answer in each shape for each model.
    for model in ["fake/instant", "fake/delay-10"] {
        for prompt in ["x y z", "x y z w", "x y z w v"] {
            send(daemon, fake, model, true, prompt).await;
            sent += 1;
        }
    }
    let failed = chat_json(daemon, &request("fake/status-500", false, "fails"), &[]).await;
    assert_eq!(failed.status(), 502, "fake/status-500 without retries");
    assert_eq!(error_code(failed).await, "provider_error");
    (sent + 1, 1)
}

/// The numbers of a usage row, as `(requests, errors, prompt, completion, total)`.
fn numbers(row: &Value) -> (u64, u64, u64, u64, u64) {
    let n = |k: &str| row[k].as_u64().unwrap_or_else(|| panic!("{k}: {row}"));
    (
        n("requests"),
        n("errors"),
        n("prompt_tokens"),
        n("completion_tokens"),
        n("total_tokens"),
    )
}

/// A row's expected numbers from a count of requests and errors and totals.
fn expected(requests: u64, errors: u64, t: UsageTotals) -> (u64, u64, u64, u64, u64) {
    (
        requests,
        errors,
        t.prompt_tokens,
        t.completion_tokens,
        t.total_tokens,
    )
}

/// `a - b`, field by field.
fn minus(a: UsageTotals, b: UsageTotals) -> UsageTotals {
    UsageTotals {
        answers: a.answers - b.answers,
        prompt_tokens: a.prompt_tokens - b.prompt_tokens,
        completion_tokens: a.completion_tokens - b.completion_tokens,
        total_tokens: a.total_tokens - b.total_tokens,
    }
}

/// This process's name as the kernel keeps it, which the daemon reads
/// through the peer's pid.
fn own_process_name() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .expect("/proc/self/comm")
        .trim_end()
        .to_owned()
}

/// Checks `by=model`: one row per model, totals equal to the fake's ledger.
fn assert_by_model(
    rows: &std::collections::BTreeMap<String, Value>,
    fake: &FakeProvider,
    counts: &[(&str, u64, u64)],
) {
    let keys: Vec<&str> = rows.keys().map(String::as_str).collect();
    let mut want: Vec<&str> = counts.iter().map(|(m, _, _)| *m).collect();
    want.sort();
    assert_eq!(keys, want, "by=model keys: {rows:?}");
    for (model, requests, errors) in counts {
        let upstream = model.strip_prefix("fake/").expect("a fake model");
        let reported = fake.usage_reported_for(upstream);
        assert_eq!(
            numbers(&rows[*model]),
            expected(*requests, *errors, reported),
            "by=model {model} vs what the fake reported: {reported:?}"
        );
        assert_eq!(rows[*model]["cost"], Value::Null, "{model} has no price");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totals_by_model_uid_and_process_are_what_the_provider_reported() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .provider_toml("fake", "max_retries = 0")
        .start()
        .await;
    let (requests, errors) = own_requests(&daemon, &fake).await;
    assert_eq!((requests, errors), (15, 1));
    let by_model = usage_settled(&daemon, "model", requests).await;
    let instant = fake.usage_reported_for("instant");
    let delay = fake.usage_reported_for("delay-10");
    assert_eq!(
        (instant.answers, delay.answers),
        (7, 7),
        "every answer reported usage"
    );
    assert_by_model(
        &by_model,
        &fake,
        &[
            ("fake/instant", 7, 0),
            ("fake/delay-10", 7, 0),
            ("fake/status-500", 1, 1),
        ],
    );

    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() }.to_string();
    let all = fake.usage_reported();
    let by_uid = usage_settled(&daemon, "uid", requests).await;
    assert_eq!(by_uid.keys().collect::<Vec<_>>(), [&uid], "{by_uid:?}");
    assert_eq!(
        numbers(&by_uid[&uid]),
        expected(requests, errors, all),
        "by=uid {uid} vs {all:?}"
    );
    let process = own_process_name();
    let by_process = usage_settled(&daemon, "process", requests).await;
    assert_eq!(
        by_process.keys().collect::<Vec<_>>(),
        [&process],
        "{by_process:?}"
    );
    assert_eq!(
        numbers(&by_process[&process]),
        expected(requests, errors, all)
    );
    let by_provider = usage_settled(&daemon, "provider", requests).await;
    assert_eq!(
        numbers(&by_provider["fake"]),
        expected(requests, errors, all)
    );
}

/// Whether `path` and every directory above it let others in (x), and the
/// file itself lets others read and run it.
fn others_can_run(path: &Path) -> bool {
    let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode());
    let runnable = mode(path).is_ok_and(|m| m & 0o005 == 0o005);
    runnable
        && path
            .ancestors()
            .skip(1)
            .filter(|dir| !dir.as_os_str().is_empty())
            .all(|dir| mode(dir).is_ok_and(|m| m & 0o001 != 0))
}

/// The CLI binary at a path `NOBODY` can run (a copy named `switchboard` in
/// a 0755 temp dir if need be, kept alive by the guard).
fn runnable_cli() -> (PathBuf, Option<tempfile::TempDir>) {
    let built = PathBuf::from(env!("CARGO_BIN_EXE_switchboard"));
    if others_can_run(&built) {
        return (built, None);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let copy = dir.path().join("switchboard");
    std::fs::copy(&built, &copy).expect("copying the CLI");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    assert!(others_can_run(&copy), "{} is not runnable", copy.display());
    (copy, Some(dir))
}

/// Runs `switchboard chat --socket <socket> --json <args>` as `NOBODY`.
async fn chat_as_nobody(cli: &Path, socket: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(cli);
    command
        .arg("chat")
        .arg("--socket")
        .arg(socket)
        .arg("--json")
        .args(args)
        .current_dir("/")
        .uid(NOBODY)
        .gid(NOBODY);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SWITCHBOARD_") {
            command.env_remove(key);
        }
    }
    tokio::task::spawn_blocking(move || command.output().expect("running the CLI"))
        .await
        .expect("join")
}

fn show(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_cli_requests_are_totalled_under_its_uid_and_process() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root, to run the CLI as uid {NOBODY}");
        return;
    }
    let (cli, _copy) = runnable_cli();
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .provider_toml("fake", "max_retries = 0")
        .toml(&format!(
            "[server]\nsocket_mode = \"0666\"\nallowed_uids = [{NOBODY}]"
        ))
        .start()
        .await;
    std::fs::set_permissions(daemon.dir(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod the daemon's dir");

    let (own, own_errors) = own_requests(&daemon, &fake).await;
    let own_usage = fake.usage_reported();

    let runs: [&[&str]; 4] = [
        &["-m", "fake/instant", "hello", "from", "nobody"],
        &[
            "-m",
            "fake/instant",
            "--stream",
            "a",
            "streamed",
            "question",
            "from",
            "nobody",
        ],
        &["-m", "fake/delay-10", "short"],
        &[
            "-m",
            "fake/delay-10",
            "--stream",
            "a",
            "b",
            "c",
            "d",
            "e",
            "f",
        ],
    ];
    fake.set_usage_shape(UsageShape::Kimi);
    for args in runs {
        let output = chat_as_nobody(&cli, daemon.socket(), args).await;
        assert!(output.status.success(), "{args:?}: {}", show(&output));
    }
    let failed = chat_as_nobody(&cli, daemon.socket(), &["-m", "fake/status-500", "x"]).await;
    assert!(!failed.status.success(), "{}", show(&failed));
    let (theirs, their_errors) = (runs.len() as u64 + 1, 1);
    let their_usage = minus(fake.usage_reported(), own_usage);
    assert_eq!(their_usage.answers, 4, "{their_usage:?}");

    let total = own + theirs;
    let by_uid = usage_settled(&daemon, "uid", total).await;
    let nobody = NOBODY.to_string();
    assert_eq!(
        by_uid.keys().collect::<Vec<_>>(),
        ["0", nobody.as_str()],
        "{by_uid:?}"
    );
    assert_eq!(
        numbers(&by_uid["0"]),
        expected(own, own_errors, own_usage),
        "by=uid 0 (the test) vs the fake's {own_usage:?}"
    );
    assert_eq!(
        numbers(&by_uid[&nobody]),
        expected(theirs, their_errors, their_usage),
        "by=uid {nobody} (the CLI) vs the fake's {their_usage:?}"
    );

    let by_process = usage_settled(&daemon, "process", total).await;
    let process = own_process_name();
    let mut keys = vec![process.as_str(), "switchboard"];
    keys.sort();
    assert_eq!(
        by_process.keys().map(String::as_str).collect::<Vec<_>>(),
        keys,
        "{by_process:?}"
    );
    assert_eq!(
        numbers(&by_process[&process]),
        expected(own, own_errors, own_usage)
    );
    assert_eq!(
        numbers(&by_process["switchboard"]),
        expected(theirs, their_errors, their_usage)
    );

    let by_model = usage_settled(&daemon, "model", total).await;
    assert_by_model(
        &by_model,
        &fake,
        &[
            ("fake/instant", 7 + 2, 0),
            ("fake/delay-10", 7 + 2, 0),
            ("fake/status-500", 2, 2),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priced_models_have_a_cost_and_others_none() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .provider("paid", &fake.base_url())
        .provider_toml(
            "paid",
            "models = [{ name = \"priced\", input_price_per_mtok = 2.0, output_price_per_mtok = 8.0 }]",
        )
        .env("PAID_API_KEY", FAKE_KEY)
        .start()
        .await;
    for (model, stream, prompt) in [
        ("paid/priced", false, "what does it cost"),
        (
            "paid/priced",
            true,
            "and this one, streamed, with more words",
        ),
        ("fake/instant", false, "free"),
    ] {
        send(&daemon, &fake, model, stream, prompt).await;
    }
    let priced = fake.usage_reported_for("priced");
    assert_eq!(priced.answers, 2, "{priced:?}");
    let cost =
        priced.prompt_tokens as f64 * 2.0 / 1e6 + priced.completion_tokens as f64 * 8.0 / 1e6;

    let by_model = usage_settled(&daemon, "model", 3).await;
    let keys: Vec<&str> = by_model.keys().map(String::as_str).collect();
    assert_eq!(keys, ["fake/instant", "paid/priced"], "{by_model:?}");
    let row = &by_model["paid/priced"];
    assert_eq!(numbers(row), expected(2, 0, priced), "{row}");
    let billed = row["cost"]
        .as_f64()
        .unwrap_or_else(|| panic!("a priced model has a cost: {row}"));
    assert!(
        (billed - cost).abs() <= cost * 1e-9,
        "cost {billed} != {} prompt × 2/M + {} completion × 8/M = {cost}",
        priced.prompt_tokens,
        priced.completion_tokens
    );
    assert_eq!(
        numbers(&by_model["fake/instant"]),
        expected(1, 0, fake.usage_reported_for("instant"))
    );
    assert_eq!(
        by_model["fake/instant"]["cost"],
        Value::Null,
        "an unpriced model: {by_model:?}"
    );

    let by_provider = usage_settled(&daemon, "provider", 3).await;
    let paid = by_provider["paid"]["cost"].as_f64();
    assert!(
        paid.is_some_and(|c| (c - cost).abs() <= cost * 1e-9),
        "by=provider paid: {by_provider:?}"
    );
    assert_eq!(by_provider["fake"]["cost"], Value::Null, "{by_provider:?}");
}
