//! The upstream HTTP client of the `openai` provider kind: hyper-util's
//! pooled client over rustls, used as it is rather than through reqwest.
//!
//! reqwest wrapped every call in its own request, response and body types
//! and parsed a `Url` per call; on the daemon's busiest path (an instant
//! provider, closed loop) that was about 5 % of the daemon's CPU. Here each
//! endpoint's `Uri` is parsed once, when the provider is built, and a
//! request is a `Uri` clone, a few prebuilt header values and the body.
//!
//! One [`Http`] per provider and distinct connect timeout, on each shard, so
//! a pooled connection is only ever driven by the thread that uses it (the
//! connection tasks are spawned on the shard's own runtime).

use std::error::Error as _;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// A pooled upstream client.
pub type Http = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The error an upstream call fails with.
pub type HttpError = hyper_util::client::legacy::Error;

/// Idle pooled connections are closed after this; providers' own idle
/// timeouts are typically 60–120 s, so reuse stays likely and no half-dead
/// connection is kept long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// Sent on every call, so a provider's logs can tell the daemon apart.
const USER_AGENT: &str = concat!("switchboard/", env!("CARGO_PKG_VERSION"));

/// A client that connects within `connect_timeout`: HTTP/1.1 or HTTP/2 as
/// TLS negotiates, or HTTP/2 by prior knowledge (`h2c`). TLS certificates
/// are checked against the platform's roots, as reqwest did.
pub fn http(connect_timeout: Duration, h2c: bool) -> Result<Http, String> {
    let mut tcp = HttpConnector::new();
    tcp.set_connect_timeout(Some(connect_timeout));
    tcp.set_nodelay(true);
    tcp.enforce_http(false);
    let tls = HttpsConnectorBuilder::new()
        .try_with_platform_verifier()
        .map_err(|err| format!("cannot load the platform's TLS roots: {err}"))?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(tcp);
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        // Retries are the daemon's own: each attempt is a recorded phase.
        .retry_canceled_requests(false)
        .http2_only(h2c);
    Ok(builder.build(tls))
}

/// Parses an endpoint once, when its provider is built (and checks a
/// settings file's URLs the same way).
pub fn endpoint(url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|err| format!("`{url}` is not a URL: {err}"))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(uri),
        _ => Err(format!("`{url}` is not an http:// or https:// URL")),
    }
}

/// A `POST` of `body` to `uri` with `headers`.
pub fn post(uri: &Uri, headers: &[(HeaderName, HeaderValue)], body: Bytes) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri.clone();
    let map = request.headers_mut();
    map.reserve(headers.len() + 1);
    map.insert(
        hyper::header::USER_AGENT,
        HeaderValue::from_static(USER_AGENT),
    );
    for (name, value) in headers {
        map.append(name.clone(), value.clone());
    }
    request
}

/// Whether `err` is a connect that ran out of its timeout.
pub fn is_connect_timeout(err: &HttpError) -> bool {
    err.is_connect() && io_kind(err) == Some(io::ErrorKind::TimedOut)
}

/// The kind of the I/O error at the root of `err`, if one is.
fn io_kind(err: &HttpError) -> Option<io::ErrorKind> {
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        source = cause.source();
    }
    None
}

/// A transport error in our words (the client's own text can name the
/// host; it never holds a key, but ours is steadier to read).
pub fn describe(err: &HttpError) -> &'static str {
    if err.is_connect() {
        return "could not connect";
    }
    let hyper = err.source().and_then(|s| s.downcast_ref::<hyper::Error>());
    match hyper {
        Some(e) if e.is_timeout() => "timed out",
        Some(e) if e.is_incomplete_message() || e.is_body_write_aborted() => {
            "the connection broke while the request was sent"
        }
        _ => "the request failed (connection reset or protocol error)",
    }
}

/// A body read error in our words.
pub fn describe_body(err: &hyper::Error) -> &'static str {
    if err.is_timeout() {
        "timed out"
    } else {
        "the connection broke while reading the answer"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_http_urls_with_a_host() {
        assert!(endpoint("https://api.moonshot.ai/v1/chat/completions").is_ok());
        assert!(endpoint("http://127.0.0.1:8080/v1/embeddings").is_ok());
        assert!(endpoint("ftp://example.com/x").is_err());
        assert!(endpoint("/v1/chat/completions").is_err());
        assert!(endpoint("not a url").is_err());
    }
}
