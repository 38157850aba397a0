//! The upstream HTTP client of the `openai` provider kind: the daemon's
//! own HTTP/1.1 pool ([`super::h1`]) for plain `http://` endpoints, and
//! hyper-util's pooled client over rustls for `https://` and HTTP/2, used as
//! it is rather than through reqwest. [`Client::send`] hides which one a
//! call takes: both give a [`Reply`] whose body is a stream of pieces.
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
use std::io::{self, Write as _};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http_body_util::Full;
use hyper::body::{Body as _, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use hyper::http::uri::Authority;
use hyper::{Method, Request, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::h1;
use super::proxy::{self, Connector, Forward, Proxies};

/// A pooled upstream client.
pub type Http = HyperClient<HttpsConnector<Connector>, Full<Bytes>>;

/// The error an upstream call fails with.
pub type HttpError = hyper_util::client::legacy::Error;

/// A connection that could not be made, in the daemon's words (both
/// clients' failures are told in the same few sentences).
const COULD_NOT_CONNECT: &str = "could not connect";

/// The connection broke before the whole request was written.
const BROKE_SENDING: &str = "the connection broke while the request was sent";

/// Anything else that kept an answer from coming.
const REQUEST_FAILED: &str = "the request failed (connection reset or protocol error)";

/// Sent on every call, so a provider's logs can tell the daemon apart.
const USER_AGENT: &str = concat!("switchboard/", env!("CARGO_PKG_VERSION"));

/// A client that connects within `connect_timeout`, through `proxies`
/// where they say: HTTP/1.1 or HTTP/2 as TLS negotiates, or HTTP/2 by prior
/// knowledge (`h2c`). TLS certificates are checked against the platform's
/// roots, as reqwest did.
pub fn http(connect_timeout: Duration, h2c: bool, proxies: Proxies) -> Result<Http, String> {
    let mut tcp = HttpConnector::new();
    tcp.set_connect_timeout(Some(connect_timeout));
    tcp.set_nodelay(true);
    tcp.enforce_http(false);
    let tcp = Connector::new(tcp, proxies, connect_timeout);
    let tls = HttpsConnectorBuilder::new()
        .try_with_platform_verifier()
        .map_err(|err| format!("cannot load the platform's TLS roots: {err}"))?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(tcp);
    let mut builder = HyperClient::builder(TokioExecutor::new());
    builder
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(h1::IDLE_TIMEOUT)
        // Retries are the daemon's own: each attempt is a recorded phase.
        .retry_canceled_requests(false)
        .http2_only(h2c);
    Ok(builder.build(tls))
}

/// The clients one provider's calls go out on (for one connect timeout).
pub struct Client {
    /// The daemon's own pools, one per plain-`http://` authority among the
    /// provider's endpoints (none when it speaks HTTP/2 by prior knowledge).
    own: Vec<Own>,
    /// hyper's client, for every other endpoint.
    hyper: Http,
}

/// The own client's way to one `http://` authority.
struct Own {
    authority: Authority,
    /// To the authority, or to its proxy.
    pool: h1::Pool,
    /// Through a proxy: requests name the whole URL, with its credentials.
    forward: Option<Forward>,
}

/// An answer's head and its body.
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Whether it is a server-sent event stream.
    pub sse: bool,
    /// The length its head announces, if it does.
    pub length: Option<u64>,
    /// Its headers when it is not a success (for retry hints).
    pub headers: HeaderMap,
    /// The body.
    pub body: ReplyBody,
}

/// An answer's body from either client: a stream of pieces, failing with
/// a sentence in the daemon's words.
pub enum ReplyBody {
    /// From the daemon's own client.
    Own(h1::Body),
    /// From hyper's.
    Hyper(Incoming),
}

/// Why a call got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// Connecting ran out of the connect timeout.
    ConnectTimeout,
    /// Anything else, in the daemon's words.
    Failed(&'static str),
}

impl Client {
    /// The clients for a provider whose endpoints are `urls`, called
    /// through `proxies` where they say. Refuses a proxy it cannot use.
    pub fn new(
        urls: &[&Uri],
        connect_timeout: Duration,
        h2c: bool,
        proxies: Proxies,
    ) -> Result<Self, String> {
        let mut own: Vec<Own> = Vec::new();
        for uri in urls {
            proxies.route(uri)?;
            let (Some("http"), Some(authority), false) = (uri.scheme_str(), uri.authority(), h2c)
            else {
                continue;
            };
            if own.iter().any(|known| known.authority == *authority) {
                continue;
            }
            let forward = proxies.forward(uri)?;
            let pool = match &forward {
                Some(proxy) => h1::Pool::new(&proxy.host, proxy.port, connect_timeout),
                None => h1::Pool::new(
                    authority.host(),
                    authority.port_u16().unwrap_or(80),
                    connect_timeout,
                ),
            };
            own.push(Own {
                authority: authority.clone(),
                pool,
                forward,
            });
        }
        Ok(Self {
            own,
            hyper: http(connect_timeout, h2c, proxies)?,
        })
    }

    /// `POST`s `body` to `uri` with `headers` and reads the answer's head.
    pub async fn send(
        &self,
        uri: &Uri,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<Reply, SendError> {
        let own = uri
            .authority()
            .and_then(|authority| self.own.iter().find(|own| own.authority == *authority));
        if let Some(own) = own {
            let head = render_head(uri, headers, body.len(), own.forward.as_ref());
            let (head, body) = own.pool.send(&head, &body).await.map_err(own_error)?;
            return Ok(Reply {
                status: head.status,
                sse: head.sse,
                length: head.length,
                headers: head.headers,
                body: ReplyBody::Own(body),
            });
        }
        let response = self
            .hyper
            .request(post(uri, headers, body))
            .await
            .map_err(|err| match is_connect_timeout(&err) {
                true => SendError::ConnectTimeout,
                false => SendError::Failed(describe(&err)),
            })?;
        let (parts, body) = response.into_parts();
        let text = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
        Ok(Reply {
            status: parts.status.as_u16(),
            sse: text(CONTENT_TYPE).is_some_and(|v| v.starts_with("text/event-stream")),
            length: text(CONTENT_LENGTH).and_then(|v| v.parse().ok()),
            headers: parts.headers,
            body: ReplyBody::Hyper(body),
        })
    }
}

/// A request's head for the daemon's own client: what hyper would write.
/// Through a proxy (`forward`) the target is the whole URL (RFC 9112's
/// absolute form), with the proxy's credentials.
fn render_head(
    uri: &Uri,
    headers: &[(HeaderName, HeaderValue)],
    length: usize,
    forward: Option<&Forward>,
) -> Vec<u8> {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    // The authority without any `user:password@` in the URL.
    let host = uri.authority().map_or("", |a| {
        let all = a.as_str();
        all.rsplit_once('@').map_or(all, |(_, host)| host)
    });
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(b"POST ");
    if forward.is_some() {
        head.extend_from_slice(b"http://");
        head.extend_from_slice(host.as_bytes());
    }
    head.extend_from_slice(path.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    let mut line = |name: &[u8], value: &[u8]| {
        head.extend_from_slice(name);
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    };
    line(b"host", host.as_bytes());
    if let Some(auth) = forward.and_then(|proxy| proxy.auth.as_ref()) {
        line(b"proxy-authorization", auth.as_bytes());
    }
    line(b"user-agent", USER_AGENT.as_bytes());
    for (name, value) in headers {
        line(name.as_str().as_bytes(), value.as_bytes());
    }
    // Writing into a `Vec` cannot fail.
    let _ = write!(head, "content-length: {length}\r\n\r\n");
    head
}

/// The own client's failures in the words hyper's get.
fn own_error(error: h1::Error) -> SendError {
    match error {
        h1::Error::ConnectTimeout => SendError::ConnectTimeout,
        h1::Error::Connect => SendError::Failed(COULD_NOT_CONNECT),
        h1::Error::Send => SendError::Failed(BROKE_SENDING),
        h1::Error::Closed | h1::Error::Protocol(_) => SendError::Failed(REQUEST_FAILED),
    }
}

impl Stream for ReplyBody {
    type Item = Result<Bytes, &'static str>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut() {
            ReplyBody::Own(body) => Pin::new(body).poll_next(cx),
            ReplyBody::Hyper(body) => loop {
                let frame = match std::task::ready!(Pin::new(&mut *body).poll_frame(cx)) {
                    None => return Poll::Ready(None),
                    Some(Err(err)) => return Poll::Ready(Some(Err(describe_body(&err)))),
                    Some(Ok(frame)) => frame,
                };
                if let Ok(data) = frame.into_data() {
                    return Poll::Ready(Some(Ok(data)));
                }
            },
        }
    }
}

impl ReplyBody {
    /// Whether the whole body has been read.
    pub fn is_end(&self) -> bool {
        match self {
            ReplyBody::Own(body) => body.is_end(),
            ReplyBody::Hyper(body) => body.is_end_stream(),
        }
    }
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
        return proxy::tunnel_refusal(err).unwrap_or(COULD_NOT_CONNECT);
    }
    let hyper = err.source().and_then(|s| s.downcast_ref::<hyper::Error>());
    match hyper {
        Some(e) if e.is_timeout() => "timed out",
        Some(e) if e.is_incomplete_message() || e.is_body_write_aborted() => BROKE_SENDING,
        _ => REQUEST_FAILED,
    }
}

/// A body read error in our words.
pub fn describe_body(err: &hyper::Error) -> &'static str {
    if err.is_timeout() {
        "timed out"
    } else {
        h1::BROKE_READING
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_own_clients_request_head_is_what_hyper_would_write() {
        let uri: Uri = "http://me:secret@127.0.0.1:8080/v1/chat/completions?x=1"
            .parse()
            .expect("a URI");
        let headers = [(
            hyper::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )];
        let head = render_head(&uri, &headers, 42, None);
        let text = String::from_utf8(head).expect("ASCII");
        assert_eq!(
            text,
            format!(
                "POST /v1/chat/completions?x=1 HTTP/1.1\r\nhost: 127.0.0.1:8080\r\n\
                 user-agent: {USER_AGENT}\r\ncontent-type: application/json\r\n\
                 content-length: 42\r\n\r\n"
            )
        );
    }

    #[test]
    fn a_request_through_a_proxy_names_the_whole_url_with_the_proxys_credentials() {
        let uri: Uri = "http://me:secret@10.0.0.7:8000/v1/chat/completions"
            .parse()
            .expect("a URI");
        let forward = Forward {
            host: "127.0.0.1".into(),
            port: 3128,
            auth: Some(HeaderValue::from_static("Basic dTpw")),
        };
        let head = render_head(&uri, &[], 2, Some(&forward));
        let text = String::from_utf8(head).expect("ASCII");
        assert_eq!(
            text,
            format!(
                "POST http://10.0.0.7:8000/v1/chat/completions HTTP/1.1\r\nhost: 10.0.0.7:8000\r\n\
                 proxy-authorization: Basic dTpw\r\nuser-agent: {USER_AGENT}\r\n\
                 content-length: 2\r\n\r\n"
            )
        );
    }

    #[test]
    fn endpoints_must_be_http_urls_with_a_host() {
        assert!(endpoint("https://api.moonshot.ai/v1/chat/completions").is_ok());
        assert!(endpoint("http://127.0.0.1:8080/v1/embeddings").is_ok());
        assert!(endpoint("ftp://example.com/x").is_err());
        assert!(endpoint("/v1/chat/completions").is_err());
        assert!(endpoint("not a url").is_err());
    }
}
