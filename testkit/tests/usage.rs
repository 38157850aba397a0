//! Tests of the token usage the fake provider reports, in each provider's
//! shape (`x-fake-usage`), and of its ledger of what it reported, over real
//! HTTP with reqwest.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_testkit::{FakeProvider, SseReader, USAGE_HEADER, UsageShape, UsageTotals};

/// A plain HTTP/1.1 client that ignores any proxy settings.
fn http1() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("building a reqwest client")
}

/// A chat request body: a 2-word system message and `content` from the user.
fn chat(model: &str, content: &str, stream: bool) -> String {
    json!({"model": model, "stream": stream, "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": content}
    ]})
    .to_string()
}

/// POSTs `body` to the chat endpoint, with `x-fake-usage: <usage>` if given.
async fn post(fake: &FakeProvider, body: String, usage: Option<&str>) -> reqwest::Response {
    let mut request = http1()
        .post(format!("{}/chat/completions", fake.base_url()))
        .header("content-type", "application/json")
        .body(body);
    if let Some(usage) = usage {
        request = request.header(USAGE_HEADER, usage);
    }
    request
        .send()
        .await
        .expect("sending a chat request to the fake provider")
}

/// Every event of a streamed answer, each data line parsed as JSON except
/// the final `[DONE]`, which is checked and left off.
async fn stream_chunks(resp: reqwest::Response) -> Vec<Value> {
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let (mut events, error) = SseReader::new(resp).collect().await;
    assert_eq!(error, None);
    assert_eq!(events.pop().as_deref(), Some("[DONE]"), "{events:?}");
    events
        .iter()
        .map(|e| serde_json::from_str(e).expect("chunk is JSON"))
        .collect()
}

/// Reads a non-streamed response body as JSON.
async fn json_of(resp: reqwest::Response) -> Value {
    assert_eq!(resp.status(), 200);
    let bytes = resp.bytes().await.expect("reading a response body");
    serde_json::from_slice(&bytes).expect("response body is JSON")
}

/// The usage object the fake sends for `prompt` prompt and `completion`
/// completion tokens.
fn usage_json(prompt: u64, completion: u64) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0}
    })
}

/// The totals of `answers` answers of `prompt` + `completion` tokens each.
fn totals(answers: u64, prompt: u64, completion: u64) -> UsageTotals {
    UsageTotals {
        answers,
        prompt_tokens: answers * prompt,
        completion_tokens: answers * completion,
        total_tokens: answers * (prompt + completion),
    }
}

#[tokio::test]
async fn streams_carry_glm_usage_in_the_final_chunk_by_default() {
    let fake = FakeProvider::start().await;
    // "be brief" + "one two three" = 5 words, + 8.
    let resp = post(&fake, chat("stream-4-5", "one two three", true), None).await;
    let chunks = stream_chunks(resp).await;
    assert_eq!(chunks.len(), 5, "4 content chunks and the stop chunk");
    for chunk in &chunks[..4] {
        assert!(chunk.get("usage").is_none(), "{chunk}");
    }
    let last = &chunks[4];
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(last["usage"], usage_json(13, 4));
    assert!(last["choices"][0].get("usage").is_none());
    assert_eq!(fake.usage_reported(), totals(1, 13, 4));
    assert_eq!(fake.usage_reported_for("stream-4-5"), totals(1, 13, 4));
}

#[tokio::test]
async fn kimi_usage_rides_inside_the_final_choice() {
    let fake = FakeProvider::start().await;
    let resp = post(&fake, chat("stream-2-5", "hi", true), Some("kimi")).await;
    let chunks = stream_chunks(resp).await;
    assert_eq!(chunks.len(), 3);
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "{chunks:?}"
    );
    assert!(chunks[0]["choices"][0].get("usage").is_none());
    let choice = &chunks[2]["choices"][0];
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["usage"], usage_json(11, 2));
    assert_eq!(fake.usage_reported(), totals(1, 11, 2));
}

#[tokio::test]
async fn openai_usage_comes_in_an_extra_chunk_without_choices() {
    let fake = FakeProvider::start().await;
    let resp = post(&fake, chat("stream-3-5", "a b", true), Some("openai")).await;
    let chunks = stream_chunks(resp).await;
    assert_eq!(chunks.len(), 5, "3 content, stop, usage: {chunks:?}");
    for chunk in &chunks[..4] {
        assert_eq!(chunk.get("usage"), Some(&Value::Null), "{chunk}");
    }
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "stop");
    let extra = &chunks[4];
    assert_eq!(extra["choices"], json!([]));
    assert_eq!(extra["usage"], usage_json(12, 3));
    assert_eq!(extra["id"], chunks[0]["id"]);
    assert_eq!(extra["object"], "chat.completion.chunk");
    assert_eq!(fake.usage_reported(), totals(1, 12, 3));
}

#[tokio::test]
async fn none_reports_no_usage_streamed_or_not() {
    let fake = FakeProvider::start().await;
    let chunks =
        stream_chunks(post(&fake, chat("stream-2-5", "x", true), Some("none")).await).await;
    assert_eq!(chunks.len(), 3);
    for chunk in &chunks {
        assert!(chunk.get("usage").is_none(), "{chunk}");
        assert!(chunk["choices"][0].get("usage").is_none(), "{chunk}");
    }
    let body = json_of(post(&fake, chat("instant", "x", false), Some("none")).await).await;
    assert_eq!(body["choices"][0]["message"]["content"], "x");
    assert!(body.get("usage").is_none(), "{body}");
    assert_eq!(fake.usage_reported(), UsageTotals::default());
}

#[tokio::test]
async fn non_streamed_answers_keep_top_level_usage_for_every_reporting_shape() {
    let fake = FakeProvider::start().await;
    for shape in ["glm", "kimi", "openai"] {
        let body =
            json_of(post(&fake, chat("instant", "hello there", false), Some(shape)).await).await;
        // 4 prompt words + 8; the echoed 2 words + 1.
        assert_eq!(body["usage"], usage_json(12, 3), "{shape}");
    }
    let body = json_of(post(&fake, chat("instant", "hello there", false), None).await).await;
    assert_eq!(body["usage"], usage_json(12, 3));
    assert_eq!(fake.usage_reported(), totals(4, 12, 3));
}

#[tokio::test]
async fn every_stream_ending_with_done_reports_usage() {
    let fake = FakeProvider::start().await;
    // `"stream": true` on instant, and the late-ending stream: 3 chunks each.
    let plain = stream_chunks(post(&fake, chat("instant", "x", true), None).await).await;
    assert_eq!(plain[3]["usage"], usage_json(11, 3));
    let late = stream_chunks(post(&fake, chat("lateend-50", "x", true), None).await).await;
    assert_eq!(late[3]["usage"], usage_json(11, 3));
    assert_eq!(fake.usage_reported_for("instant"), totals(1, 11, 3));
    assert_eq!(fake.usage_reported_for("lateend-50"), totals(1, 11, 3));
}

#[tokio::test]
async fn totals_are_kept_per_model_and_only_for_answers_that_report() {
    let fake = FakeProvider::start().await;
    post(&fake, chat("instant", "one", false), None).await;
    post(&fake, chat("instant", "one two three four", false), None).await;
    stream_chunks(post(&fake, chat("stream-6-1", "w", true), Some("openai")).await).await;
    // Failures, streams cut before their end and `none` report nothing.
    assert_eq!(
        post(&fake, chat("status-503", "x", false), None)
            .await
            .status(),
        503
    );
    let (_, error) = SseReader::new(post(&fake, chat("cut-2", "x", true), None).await)
        .collect()
        .await;
    assert!(error.is_some(), "cut-2 aborts the stream");
    post(&fake, chat("instant", "x", false), Some("none")).await;

    let instant = fake.usage_reported_for("instant");
    assert_eq!(
        instant,
        UsageTotals {
            answers: 2,
            prompt_tokens: 11 + 14,
            completion_tokens: 2 + 5,
            total_tokens: 11 + 14 + 2 + 5,
        },
        "different prompts report different numbers"
    );
    let stream = fake.usage_reported_for("stream-6-1");
    assert_eq!(stream, totals(1, 11, 6));
    let mut sum = instant;
    sum += stream;
    assert_eq!(fake.usage_reported(), sum);
    assert_eq!(
        fake.usage_reported_for("fake/instant"),
        UsageTotals::default()
    );
    assert_eq!(fake.usage_reported_for("cut-2"), UsageTotals::default());
}

#[tokio::test]
async fn set_usage_shape_changes_the_default_and_the_header_still_wins() {
    let fake = FakeProvider::start().await;
    fake.set_usage_shape(UsageShape::Kimi);
    let chunks = stream_chunks(post(&fake, chat("stream-1-1", "x", true), None).await).await;
    assert_eq!(chunks[1]["choices"][0]["usage"], usage_json(11, 1));
    let chunks = stream_chunks(post(&fake, chat("stream-1-1", "x", true), Some("glm")).await).await;
    assert_eq!(chunks[1]["usage"], usage_json(11, 1));
    fake.set_usage_shape(UsageShape::None);
    let body = json_of(post(&fake, chat("instant", "x", false), None).await).await;
    assert!(body.get("usage").is_none());
    assert_eq!(fake.usage_reported().answers, 2);
}

#[tokio::test]
async fn an_unknown_usage_header_is_a_400() {
    let fake = FakeProvider::start().await;
    let resp = post(&fake, chat("instant", "x", false), Some("GLM")).await;
    assert_eq!(resp.status(), 400, "a typo in the header is reported");
    let body: Value = serde_json::from_slice(&resp.bytes().await.expect("body")).expect("JSON");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("x-fake-usage")),
        "{body}"
    );
    assert!(
        fake.wait_until("no request in flight", Duration::from_secs(1), |f| f
            .in_flight()
            == 0)
            .await
    );
    assert_eq!(fake.abandoned(), 0);
    assert_eq!(fake.usage_reported(), UsageTotals::default());
}
