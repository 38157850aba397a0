//! The requests the load client sends, each built once per side as the
//! complete HTTP/1.1 bytes one `write` sends: chat completions (every
//! scenario), Anthropic messages and embeddings (scenario 7), and the
//! readiness probe's `GET`.

/// A complete `POST` request for `path` with this JSON body; `headers` are
/// extra header lines, each ending in `\r\n`.
fn post_request(path: &str, headers: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\n{headers}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A complete `POST /v1/chat/completions` request with this JSON body.
pub fn chat_request(body: &str) -> Vec<u8> {
    post_request("/v1/chat/completions", "", body)
}

/// A complete `GET` request for `path`.
pub fn get_request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").into_bytes()
}

/// The JSON body of a chat request for `model`, streamed or not.
pub fn chat_body(model: &str, stream: bool) -> String {
    format!(
        r#"{{"model":"{model}","stream":{stream},"messages":[{{"role":"user","content":"Say hello to the benchmark."}}]}}"#
    )
}

/// A non-streamed `POST /v1/messages` for `model` with chat's prompt, and
/// the `anthropic-version` header Anthropic's SDKs send (the daemon passes
/// it through, so it is part of the route's cost).
pub fn messages_request(model: &str) -> Vec<u8> {
    let body = format!(
        r#"{{"model":"{model}","max_tokens":64,"messages":[{{"role":"user","content":"Say hello to the benchmark."}}]}}"#
    );
    post_request("/v1/messages", "anthropic-version: 2023-06-01\r\n", &body)
}

/// A `POST /v1/embeddings` for `model` of chat's prompt, one input.
pub fn embeddings_request(model: &str) -> Vec<u8> {
    let body = format!(r#"{{"model":"{model}","input":"Say hello to the benchmark."}}"#);
    post_request("/v1/embeddings", "", &body)
}
