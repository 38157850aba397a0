//! The scrape counts exactly what happened. One daemon gets a known mix:
//! answers, streams, provider errors, a retried failure, timeouts, refusals
//! (unknown model, bad JSON, a provider's rate limit), and a session cancelled
//! while it hangs. Once the numbers settle, every counter and histogram count
//! matches the mix exactly, token sums match what the fake provider
//! reported, histograms are well formed, and the live-sessions gauge showed
//! the hanging session. The same scrape is served on a loopback TCP port
//! (`server.metrics_listen`), which answers nothing else; a non-loopback
//! `metrics_listen` keeps the daemon from starting.

use crate::support;

use std::net::SocketAddr;
use std::time::Duration;

use support::scrape::*;
use support::*;
use switchboard_testkit::{Daemon, DaemonBuilder, FakeProvider, Scrape};

/// Requests sent in the mix (see `send_the_mix`).
const SENT: f64 = 20.0;

/// The daemon of the mix: `fake` (no retries), `retrying` (retries),
/// `slow` (300 ms deadline), `limited` (one request a minute), all pointed
/// at the same fake provider; metrics also on 127.0.0.1:`port`.
fn mix_daemon(fake: &FakeProvider, port: u16) -> DaemonBuilder {
    let url = fake.base_url();
    daemon(fake)
        .provider_toml("fake", "max_retries = 0")
        .provider("retrying", &url)
        .provider_toml(
            "retrying",
            "max_retries = 2\nretry_base_ms = 10\nretry_cap_ms = 50",
        )
        .env("RETRYING_API_KEY", FAKE_KEY)
        .provider("slow", &url)
        .provider_toml("slow", "timeout_ms = 300\nmax_retries = 0")
        .env("SLOW_API_KEY", FAKE_KEY)
        .provider("limited", &url)
        .provider_toml("limited", "requests_per_minute = 1")
        .env("LIMITED_API_KEY", FAKE_KEY)
        .toml(&format!("[server]\nmetrics_listen = \"127.0.0.1:{port}\""))
}

/// Sends `model` and checks the status (and, for errors, the code).
async fn expect(daemon: &Daemon, model: &str, stream: bool, status: u16, code: Option<&str>) {
    let response = chat(daemon, model, stream).await;
    assert_eq!(
        response.status(),
        status,
        "{model} (stream: {stream}) answered {}",
        response.status()
    );
    match code {
        Some(code) => assert_eq!(error_code(response).await, code, "{model}"),
        None if stream => {
            let (events, error) = SseReader::new(response).collect().await;
            assert_eq!(error, None, "{model}: the stream broke: {events:?}");
            assert_eq!(
                events.last().map(String::as_str),
                Some("[DONE]"),
                "{model}: {events:?}"
            );
        }
        None => {
            let body: serde_json::Value = response.json().await.expect("a JSON answer");
            assert!(body["usage"]["prompt_tokens"].is_u64(), "{model}: {body}");
        }
    }
}

/// The mix, 19 requests; the 20th (a hang cancelled while live) is sent by
/// the test itself.
async fn send_the_mix(daemon: &Daemon) {
    for _ in 0..7 {
        expect(daemon, "fake/instant", false, 200, None).await;
    }
    for _ in 0..3 {
        expect(daemon, "fake/stream-4-10", true, 200, None).await;
    }
    for _ in 0..2 {
        expect(
            daemon,
            "fake/status-500",
            false,
            502,
            Some("provider_error"),
        )
        .await;
    }
    // Fails once, then succeeds on the retry: 2 attempts, 1 session.
    expect(daemon, "retrying/fail-1-503", false, 200, None).await;
    for _ in 0..2 {
        expect(daemon, "slow/hang", false, 504, Some("timeout")).await;
    }
    // One a minute: the first is served, the second refused.
    expect(daemon, "limited/instant", false, 200, None).await;
    expect(
        daemon,
        "limited/instant",
        false,
        429,
        Some("rate_limit_exceeded"),
    )
    .await;
    expect(daemon, "nope/x", false, 404, Some("model_not_found")).await;
    let bad_json = daemon
        .client()
        .post(daemon.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body("{\"model\": \"fake/instant\", \"messages\": [")
        .send()
        .await
        .expect("the daemon answers");
    assert_eq!(bad_json.status(), 400, "a truncated JSON body");
    assert_eq!(error_code(bad_json).await, "invalid_request");
}

/// Sends a hang to `fake`, checks the live gauge shows it (and nothing
/// else), then cancels it and checks the gauge goes back to 0.
async fn live_gauge_shows_a_hanging_session(daemon: &Daemon) {
    let live = |provider: &'static str| [("provider", provider)];
    let hanging = spawn_chat(daemon, &marked_body("fake/hang", "hang"), &[]);
    let scrape = scrape_until(
        daemon,
        "switchboard_sessions_live{provider=fake} == 1",
        |s| match s.value("switchboard_sessions_live", &live("fake")) {
            Some(1.0) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    for other in ["retrying", "slow", "limited"] {
        assert_eq!(
            scrape.value("switchboard_sessions_live", &live(other)),
            Some(0.0),
            "nothing is live at {other}"
        );
    }
    for provider in ["fake", "retrying", "slow", "limited"] {
        assert_eq!(
            scrape.value("switchboard_sessions_queued", &live(provider)),
            Some(0.0),
            "nothing waits at {provider}"
        );
    }
    let sessions = wait_live(daemon, 1).await;
    assert_eq!(sessions.len(), 1, "one live session: {sessions:?}");
    let id = sessions[0]["id"].as_str().expect("a live session's id");
    let cancel = daemon
        .client()
        .delete(daemon.url(&format!("/admin/sessions/{id}")))
        .send()
        .await
        .expect("DELETE answers");
    assert_eq!(cancel.status(), 202, "cancelling the hanging session");
    let response = tokio::time::timeout(SETTLE, hanging)
        .await
        .expect("the cancelled request is answered")
        .expect("join");
    assert_eq!(response.status(), 503);
    assert_eq!(error_code(response).await, "session_cancelled");
    wait_gauge(daemon, "switchboard_sessions_live", &live("fake"), 0.0).await;
}

/// Waits until every request of the mix is counted.
async fn settled(daemon: &Daemon) -> Scrape {
    scrape_until(
        daemon,
        "switchboard_requests_total to count every request sent",
        |s| {
            let counted = s.sum("switchboard_requests_total", &[]);
            if counted == SENT {
                Ok(())
            } else {
                Err(format!(
                    "{counted} counted: {:?}",
                    nonzero(
                        s,
                        "switchboard_requests_total",
                        &["provider", "model", "outcome"]
                    )
                ))
            }
        },
    )
    .await
}

fn assert_counts(scrape: &Scrape, fake: &FakeProvider) {
    assert_eq!(
        nonzero(
            scrape,
            "switchboard_requests_total",
            &["provider", "model", "outcome"]
        ),
        table(&[
            (["fake", "instant", "COMPLETED"], 7.0),
            (["fake", "stream-4-10", "COMPLETED"], 3.0),
            (["fake", "status-500", "ERROR"], 2.0),
            (["fake", "hang", "CANCELLED"], 1.0),
            (["retrying", "fail-1-503", "COMPLETED"], 1.0),
            (["slow", "hang", "TIMEOUT"], 2.0),
            (["limited", "instant", "COMPLETED"], 1.0),
            (["_none", "_none", "REJECTED"], 3.0),
        ]),
        "switchboard_requests_total by provider, model and outcome"
    );
    assert_eq!(
        nonzero(scrape, "switchboard_rejections_total", &["reason"]),
        table(&[
            (["bad_request"], 1.0),
            (["rate_limited"], 1.0),
            (["unknown_model"], 1.0),
        ]),
        "switchboard_rejections_total by reason"
    );
    assert_eq!(
        nonzero(
            scrape,
            "switchboard_upstream_attempts_total",
            &["provider", "result"]
        ),
        table(&[
            (["fake", "success"], 10.0),
            (["fake", "failure"], 2.0),
            (["fake", "aborted"], 1.0),
            (["retrying", "failure"], 1.0),
            (["retrying", "success"], 1.0),
            (["slow", "aborted"], 2.0),
            (["limited", "success"], 1.0),
        ]),
        "switchboard_upstream_attempts_total by provider and result"
    );

    // Only routed requests have a GenAI operation; failures carry error_type.
    let duration = "gen_ai_client_operation_duration_seconds_count";
    let keys = [
        "gen_ai_operation_name",
        "gen_ai_provider_name",
        "gen_ai_request_model",
        "gen_ai_response_model",
        "error_type",
    ];
    assert_eq!(
        nonzero(scrape, duration, &keys),
        table(&[
            (["chat", "fake", "instant", "instant", "-"], 7.0),
            (["chat", "fake", "stream-4-10", "stream-4-10", "-"], 3.0),
            (
                ["chat", "fake", "status-500", "status-500", "provider_error"],
                2.0
            ),
            (["chat", "fake", "hang", "hang", "session_cancelled"], 1.0),
            (["chat", "retrying", "fail-1-503", "fail-1-503", "-"], 1.0),
            (["chat", "slow", "hang", "hang", "timeout"], 2.0),
            (["chat", "limited", "instant", "instant", "-"], 1.0),
        ]),
        "{duration} by route and error_type"
    );
    let failures: f64 = scrape
        .samples(duration)
        .filter(|s| s.label("error_type").is_some())
        .map(|s| s.value)
        .sum();
    assert_eq!(failures, 5.0, "operations that failed (with error_type)");
    assert_eq!(
        scrape.histogram_count("gen_ai_client_operation_duration_seconds", &[]) - failures,
        12.0,
        "operations that succeeded (without error_type)"
    );
    assert!(
        scrape
            .samples(duration)
            .all(|s| s.label("gen_ai_provider_name") != Some("_none")),
        "requests never routed have no GenAI series"
    );

    // Token usage: one observation per answer that carried usage, summing
    // exactly what the fake reported.
    let reported = fake.usage_reported();
    assert_eq!(reported.answers, 12, "answers with usage: {reported:?}");
    let tokens = "gen_ai_client_token_usage";
    for (kind, sum) in [
        ("input", reported.prompt_tokens),
        ("output", reported.completion_tokens),
    ] {
        let labels = [("gen_ai_token_type", kind)];
        assert_eq!(
            scrape.histogram_count(tokens, &labels),
            reported.answers as f64,
            "{tokens}_count{{{kind}}}: one per answer that carried usage"
        );
        assert_eq!(
            scrape.histogram_sum(tokens, &labels),
            sum as f64,
            "{tokens}_sum{{{kind}}} vs the fake's {reported:?}"
        );
    }
    for model in ["instant", "stream-4-10", "fail-1-503"] {
        let by_model = fake.usage_reported_for(model);
        let labels = [
            ("gen_ai_token_type", "input"),
            ("gen_ai_request_model", model),
        ];
        assert_eq!(
            scrape.histogram_count(tokens, &labels),
            by_model.answers as f64,
            "{tokens}_count of {model}"
        );
        assert_eq!(
            scrape.histogram_sum(tokens, &labels),
            by_model.prompt_tokens as f64,
            "{tokens}_sum of {model} vs {by_model:?}"
        );
    }

    let ttft = "gen_ai_server_time_to_first_token_seconds";
    assert_eq!(
        scrape.histogram_count(ttft, &[]),
        3.0,
        "{ttft}: the completed streams"
    );
    assert_eq!(
        scrape.histogram_count(ttft, &[("gen_ai_request_model", "stream-4-10")]),
        3.0,
        "{ttft}: all of them the streams'"
    );

    let checked = assert_histograms_consistent(scrape);
    assert!(checked >= 10, "only {checked} histogram series");
    assert_eq!(
        scrape.metric_type("gen_ai_client_operation_duration_seconds"),
        Some("histogram")
    );
    assert_eq!(
        scrape.metric_type("switchboard_requests_total"),
        Some("counter")
    );

    assert_eq!(
        scrape.value(
            "switchboard_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0),
        "switchboard_build_info with the version"
    );
    let rss = scrape
        .value("process_resident_memory_bytes", &[])
        .expect("process_resident_memory_bytes");
    assert!(rss > 0.0, "process_resident_memory_bytes = {rss}");
    assert_eq!(
        scrape.value("switchboard_event_subscribers", &[]),
        Some(0.0),
        "no events reader"
    );
}

/// The families that must read the same on both listeners.
const STABLE: [&str; 5] = [
    "switchboard_requests_total",
    "switchboard_rejections_total",
    "switchboard_upstream_attempts_total",
    "gen_ai_",
    "switchboard_sessions_",
];

/// A sample as `(name, sorted labels, value)`.
type Flat = (String, Vec<(String, String)>, f64);

fn stable_samples(scrape: &Scrape) -> Vec<Flat> {
    let mut samples: Vec<_> = scrape
        .all()
        .iter()
        .filter(|s| STABLE.iter().any(|prefix| s.name.starts_with(prefix)))
        .map(|s| {
            let mut labels = s.labels.clone();
            labels.sort();
            (s.name.clone(), labels, s.value)
        })
        .collect();
    samples.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    samples
}

/// The TCP listener serves the same scrape, and nothing but GET /metrics.
async fn tcp_listener_serves_the_same_scrape(daemon: &Daemon, port: u16, socket: &Scrape) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let (status, content_type, text) = tcp_get(addr, "/metrics").await;
    assert_eq!(status, 200, "GET /metrics on {addr}: {text}");
    assert_eq!(content_type, OPENMETRICS, "content type on {addr}");
    let over_tcp = parse(&text);
    let names = |s: &Scrape| {
        let mut names: Vec<String> = s.all().iter().map(|s| s.name.clone()).collect();
        names.sort();
        names.dedup();
        names
    };
    assert_eq!(
        names(&over_tcp),
        names(socket),
        "the same metric names on TCP and on the socket"
    );
    assert_eq!(
        stable_samples(&over_tcp),
        stable_samples(socket),
        "the same counts on TCP and on the socket"
    );
    for path in ["/admin/sessions", "/healthz", "/admin/usage", "/metrics/x"] {
        let (status, _, body) = tcp_get(addr, path).await;
        assert_eq!(status, 404, "GET {path} on the metrics port: {body}");
    }
    let (status, _, body) = tcp_request(addr, reqwest::Method::POST, "/v1/chat/completions").await;
    assert_eq!(
        status, 404,
        "POST /v1/chat/completions on the metrics port: {body}"
    );
    // None of that was a request.
    let after = scrape(daemon).await;
    assert_eq!(after.sum("switchboard_requests_total", &[]), SENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_of_a_known_mix_is_counted_exactly_once() {
    let fake = FakeProvider::start().await;
    let port = free_port();
    let daemon = mix_daemon(&fake, port).start().await;

    let before = scrape(&daemon).await;
    assert_eq!(before.sum("switchboard_requests_total", &[]), 0.0);
    assert_eq!(
        before.value("switchboard_sessions_live", &[("provider", "fake")]),
        Some(0.0),
        "the live gauge exists before any session"
    );

    send_the_mix(&daemon).await;
    live_gauge_shows_a_hanging_session(&daemon).await;
    let scrape = settled(&daemon).await;
    assert_counts(&scrape, &fake);
    tcp_listener_serves_the_same_scrape(&daemon, port, &scrape).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_listener_off_loopback_keeps_the_daemon_from_starting() {
    let fake = FakeProvider::start().await;
    for addr in [
        format!("0.0.0.0:{}", free_port()),
        format!("[::]:{}", free_port()),
    ] {
        let (status, logs) = daemon(&fake)
            .toml(&format!("[server]\nmetrics_listen = \"{addr}\""))
            .start_expect_failure(Duration::from_secs(20))
            .await;
        assert!(
            !status.success(),
            "metrics_listen = {addr} must not start: {status}\n{logs}"
        );
        assert!(
            logs.contains("server.metrics_listen"),
            "the refusal names server.metrics_listen ({addr}):\n{logs}"
        );
    }
}
