//! `GET /admin/events` streams each session's phase events as they happen,
//! in order, with the session's id, provider and model; `session`, `phase`
//! and `provider` filters deliver only matching events, and a bad filter is
//! a 400 naming it. A reader that stops reading is dropped once its buffer
//! is full, without slowing anyone's sessions, and its stream ends with an
//! `event: dropped`.

use crate::support;

use std::collections::BTreeMap;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::scrape::*;
use support::*;
use switchboard_testkit::{Daemon, FakeProvider, raw_request, read_head};
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;

/// The phases of a completed, non-streamed session.
const COMPLETED_PHASES: [&str; 6] = [
    "RECEIVED",
    "SESSION_ALLOCATED",
    "PROVIDER_CALL_START",
    "PROVIDER_CALL_END",
    "SESSION_RELEASED",
    "COMPLETED",
];

fn phases_of<'a>(events: &'a [Value], id: &str) -> Vec<&'a str> {
    events
        .iter()
        .filter(|e| e["session"] == id)
        .map(|e| e["phase"].as_str().unwrap_or_default())
        .collect()
}

/// Sends `model` and returns its session id, checking the status.
async fn send(daemon: &Daemon, model: &str, status: u16) -> String {
    let response = chat(daemon, model, false).await;
    assert_eq!(response.status(), status, "{model}");
    let id = session_id(&response);
    let _ = response.bytes().await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_sees_every_phase_of_a_session_in_order() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).start().await;
    let mut reader = open_events(&daemon, "").await;
    wait_gauge(&daemon, "switchboard_event_subscribers", &[], 1.0).await;

    let response = chat(&daemon, "fake/instant", false).await;
    assert_eq!(response.status(), 200);
    let id = session_id(&response);
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let _ = response.bytes().await;

    let events = events_until(&mut reader, "the session's COMPLETED", |e| {
        is(e, &id, "COMPLETED")
    })
    .await;
    assert_eq!(
        phases_of(&events, &id),
        COMPLETED_PHASES,
        "the session's events, in order: {events:#?}"
    );
    assert!(
        events.iter().all(|e| e["session"] == id.as_str()),
        "only this session ran: {events:#?}"
    );
    let mut elapsed = Vec::new();
    for event in &events {
        assert_eq!(event["provider"], "fake", "{event}");
        assert_eq!(event["model"], "instant", "{event}");
        if let Some(request_id) = &request_id {
            assert_eq!(event["request_id"], request_id.as_str(), "{event}");
        }
        assert!(
            event["at"].as_str().is_some_and(|at| at.ends_with('Z')),
            "{event}"
        );
        assert!(event["attempt"].is_u64(), "{event}");
        elapsed.push(event["elapsed_ms"].as_f64().expect("elapsed_ms"));
    }
    assert!(
        elapsed.windows(2).all(|w| w[0] <= w[1]),
        "elapsed times never go back: {elapsed:?}"
    );
    assert_eq!(elapsed[0], 0.0, "RECEIVED is the session's start");
    // The same order as the session's own timeline.
    assert_eq!(final_phases(&daemon, &id).await, COMPLETED_PHASES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_deliver_only_matching_events() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .provider_toml("fake", "max_retries = 0")
        .provider("other", &fake.base_url())
        .env("OTHER_API_KEY", FAKE_KEY)
        .start()
        .await;
    let mut all = open_events(&daemon, "").await;
    let mut by_phase = open_events(&daemon, "?phase=COMPLETED").await;
    let mut by_provider = open_events(&daemon, "?provider=fake").await;

    // A session that hangs until cancelled, so a reader can subscribe to it
    // by id while it runs.
    let hanging = spawn_chat(&daemon, &marked_body("fake/hang", "hang"), &[]);
    let live = wait_live(&daemon, 1).await;
    assert_eq!(live.len(), 1, "{live:?}");
    let hang = live[0]["id"].as_str().expect("id").to_owned();
    let mut by_session = open_events(&daemon, &format!("?session={hang}")).await;
    wait_gauge(&daemon, "switchboard_event_subscribers", &[], 4.0).await;
    // The hanging session has called the provider before the others start.
    let mut everything = events_until(&mut all, "the hang's PROVIDER_CALL_START", |e| {
        is(e, &hang, "PROVIDER_CALL_START")
    })
    .await;

    let other = send(&daemon, "other/instant", 200).await;
    let failed = send(&daemon, "fake/status-500", 502).await;
    let instant = send(&daemon, "fake/instant", 200).await;
    let cancel = daemon
        .client()
        .delete(daemon.url(&format!("/admin/sessions/{hang}")))
        .send()
        .await
        .expect("DELETE answers");
    assert_eq!(cancel.status(), 202);
    let response = tokio::time::timeout(SETTLE, hanging)
        .await
        .expect("the cancelled request is answered")
        .expect("join");
    assert_eq!(response.status(), 503);
    let _ = response.bytes().await;
    // A last session, to show the phase and provider readers got nothing
    // between the others' events and this one's.
    let last = send(&daemon, "fake/instant", 200).await;

    everything.extend(
        events_until(&mut all, "the last session's COMPLETED", |e| {
            is(e, &last, "COMPLETED")
        })
        .await,
    );
    for (id, what) in [(&other, "other"), (&instant, "instant"), (&last, "last")] {
        assert_eq!(
            phases_of(&everything, id),
            COMPLETED_PHASES,
            "{what}: {everything:#?}"
        );
    }
    assert_eq!(
        phases_of(&everything, &failed).last().copied(),
        Some("ERROR"),
        "{everything:#?}"
    );
    let hang_phases = phases_of(&everything, &hang);
    assert_eq!(
        hang_phases,
        [
            "RECEIVED",
            "SESSION_ALLOCATED",
            "PROVIDER_CALL_START",
            "PROVIDER_CALL_END",
            "SESSION_RELEASED",
            "CANCELLED"
        ],
        "{everything:#?}"
    );

    // session=: the hanging session's events from the moment of
    // subscribing, ending with CANCELLED, and nobody else's (the others ran
    // meanwhile, so their events would have come first).
    let mine = events_until(&mut by_session, "the hang's CANCELLED", |e| {
        is(e, &hang, "CANCELLED")
    })
    .await;
    assert!(
        mine.iter().all(|e| e["session"] == hang.as_str()),
        "session={hang} delivered another session's events: {mine:#?}"
    );
    let tail: Vec<&str> = mine
        .iter()
        .map(|e| e["phase"].as_str().unwrap_or_default())
        .collect();
    assert!(
        hang_phases.ends_with(&tail) && tail.len() >= 3,
        "session={hang}: {tail:?}, all of its events: {hang_phases:?}"
    );

    // phase=COMPLETED: exactly the three completions, in order.
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(next_event(&mut by_phase, "a COMPLETED event").await);
    }
    let got_ids: Vec<(&str, &str)> = got
        .iter()
        .map(|e| {
            (
                e["session"].as_str().unwrap_or_default(),
                e["phase"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        got_ids,
        [
            (other.as_str(), "COMPLETED"),
            (instant.as_str(), "COMPLETED"),
            (last.as_str(), "COMPLETED")
        ],
        "phase=COMPLETED delivered: {got:#?}"
    );

    // provider=fake: every event of the fake's sessions, none of other's.
    let fakes = events_until(&mut by_provider, "the last session's COMPLETED", |e| {
        is(e, &last, "COMPLETED")
    })
    .await;
    assert!(
        fakes.iter().all(|e| e["provider"] == "fake"),
        "provider=fake delivered: {fakes:#?}"
    );
    let expected: Vec<&Value> = everything
        .iter()
        .filter(|e| e["provider"] == "fake")
        .collect();
    // Every reader subscribed before the hang arrived, so both saw all of
    // it. Each session's events come in order; sessions served by
    // different shards may interleave differently for each reader.
    assert_eq!(
        by_session_of(fakes.iter()),
        by_session_of(expected.into_iter()),
        "provider=fake is the unfiltered stream's fake events"
    );
    assert!(
        phases_of(&fakes, &other).is_empty(),
        "no event of the other provider's session"
    );
    for id in [&failed, &instant, &last] {
        assert_eq!(
            phases_of(&fakes, id).first().copied(),
            Some("RECEIVED"),
            "provider=fake has {id} from its start: {fakes:#?}"
        );
    }

    // Bad filters are refused, naming the parameter.
    for (query, param) in [
        ("?phase=NOPE", "phase"),
        ("?session=not-a-session", "session"),
    ] {
        let (status, body) = get_json(&daemon, &format!("/admin/events{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request", "{query}: {body}");
        assert_eq!(body["error"]["param"], param, "{query}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(param)),
            "{query}: {body}"
        );
    }
    // An unknown filter too (its name is in the message).
    let (status, body) = get_json(&daemon, "/admin/events?colour=red").await;
    assert_eq!(status, 400, "?colour=red: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("colour")),
        "?colour=red: {body}"
    );
}

/// Requests in each measured batch (about 6 events each: several times what
/// a stuck reader's 1024-event buffer and socket buffers hold), and how many
/// run at once.
const BATCH: usize = 1000;
const CONCURRENCY: usize = 32;

/// Runs `count` fake/instant requests, `CONCURRENCY` at a time; returns
/// their latencies, sorted.
async fn batch(daemon: &Daemon, count: usize) -> Vec<Duration> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let client = daemon.client();
        let url = daemon.url("/v1/chat/completions");
        let next = Arc::clone(&next);
        workers.spawn(async move {
            let mut latencies = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let started = Instant::now();
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body("fake/instant", false))
                    .send()
                    .await
                    .expect("the daemon answers");
                assert_eq!(response.status(), 200);
                let _ = response.bytes().await.expect("the answer's body");
                latencies.push(started.elapsed());
            }
            latencies
        });
    }
    let mut latencies: Vec<Duration> = workers.join_all().await.into_iter().flatten().collect();
    assert_eq!(latencies.len(), count);
    latencies.sort();
    latencies
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() - 1) * p / 100]
}

/// Reads a chunked HTTP/1.1 body to its end (the zero-length chunk).
async fn read_chunked(stream: &mut UnixStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut body = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Decode whatever complete chunks are buffered.
        while let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") {
            let size_text = String::from_utf8_lossy(&raw[..line_end]).to_string();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .unwrap_or_else(|_| panic!("a chunk size line: {size_text:?}"));
            let start = line_end + 2;
            if raw.len() < start + size + 2 {
                break;
            }
            if size == 0 {
                return body;
            }
            body.extend_from_slice(&raw[start..start + size]);
            raw.drain(..start + size + 2);
        }
        let n = stream
            .read(&mut buf)
            .await
            .expect("reading the events stream");
        assert!(
            n > 0,
            "the connection closed before the body ended; got {} bytes: {}",
            body.len(),
            String::from_utf8_lossy(&body[body.len().saturating_sub(500)..])
        );
        raw.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_is_dropped_without_slowing_sessions() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).start().await;

    // Warm up (connections, caches), then the baseline without any reader.
    batch(&daemon, 2 * CONCURRENCY).await;
    let baseline = batch(&daemon, BATCH).await;
    let scrape = scrape(&daemon).await;
    assert_eq!(
        scrape.value("switchboard_event_subscribers", &[]),
        Some(0.0),
        "no reader yet"
    );

    // A reader that sends its request and never reads a byte.
    let mut stuck = raw_request(daemon.socket(), "GET", "/admin/events", "", &[]).await;
    wait_gauge(&daemon, "switchboard_event_subscribers", &[], 1.0).await;

    let loaded = tokio::time::timeout(Duration::from_secs(180), batch(&daemon, BATCH))
        .await
        .expect("sessions stalled while a reader was stuck");
    let (base_p50, loaded_p50) = (percentile(&baseline, 50), percentile(&loaded, 50));
    let (base_p90, loaded_p90) = (percentile(&baseline, 90), percentile(&loaded, 90));
    eprintln!(
        "latency without a reader: p50 {base_p50:?} p90 {base_p90:?}; \
         with a stuck reader: p50 {loaded_p50:?} p90 {loaded_p90:?}"
    );
    assert!(
        loaded_p50 < base_p50 * 3 + Duration::from_millis(5),
        "a stuck reader slowed sessions: p50 {loaded_p50:?} vs {base_p50:?} without it \
         (p90 {loaded_p90:?} vs {base_p90:?})"
    );

    // Its buffer overflowed, so it was dropped.
    wait_gauge(&daemon, "switchboard_event_subscribers", &[], 0.0).await;

    // What it had been sent ends with the `dropped` event.
    let (status, headers) = tokio::time::timeout(SETTLE, read_head(&mut stuck))
        .await
        .expect("the stuck reader's response head");
    assert_eq!(status, 200);
    assert!(
        headers
            .iter()
            .any(|(n, v)| n == "content-type" && v == "text/event-stream"),
        "{headers:?}"
    );
    let body = tokio::time::timeout(SETTLE, read_chunked(&mut stuck))
        .await
        .expect("the stuck reader's stream ends");
    let text = String::from_utf8(body).expect("the stream is UTF-8");
    let events: Vec<&str> = text
        .split("\n\n")
        .filter(|e| !e.trim().is_empty() && !e.starts_with(':'))
        .collect();
    let (last, delivered) = events.split_last().expect("some events");
    eprintln!(
        "the stuck reader was sent {} events before it was dropped",
        delivered.len()
    );
    assert!(
        last.starts_with("event: dropped\ndata: "),
        "the stream ends with `event: dropped`, not {last:?}"
    );
    let reason: Value = serde_json::from_str(last.trim_start_matches("event: dropped\ndata: "))
        .unwrap_or_else(|e| panic!("the dropped event's data is JSON ({e}): {last:?}"));
    assert!(
        reason["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{reason}"
    );
    assert!(
        delivered.len() >= 1024,
        "at least the 1024 buffered events came before: {}",
        delivered.len()
    );
    assert!(
        delivered.len() < BATCH * COMPLETED_PHASES.len(),
        "it was dropped before it had everything: {} events",
        delivered.len()
    );
    for event in delivered {
        let data = event
            .strip_prefix("data: ")
            .unwrap_or_else(|| panic!("a data event: {event:?}"));
        let event: Value = serde_json::from_str(data).expect("an event is JSON");
        assert!(event["phase"].is_string(), "{event}");
    }
}

/// Events grouped by session, each session's in the order they came.
fn by_session_of<'a>(events: impl Iterator<Item = &'a Value>) -> BTreeMap<String, Vec<&'a Value>> {
    let mut grouped: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for event in events {
        let session = event["session"].as_str().unwrap_or_default().to_owned();
        grouped.entry(session).or_default().push(event);
    }
    grouped
}
