//! Calls through the HTTP proxy the environment names, as reqwest, curl and
//! the SDKs make them: `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` (either
//! case) choose the proxy for a scheme and `NO_PROXY` lists the hosts called
//! directly (hyper-util's [`Matcher`] reads them with curl's rules).
//!
//! Two ways through a proxy, by the endpoint's client:
//! - hyper-util's (`https://`, HTTP/2): [`Connector`] opens a `CONNECT`
//!   tunnel to the endpoint, inside which TLS runs end to end as without a
//!   proxy;
//! - the daemon's own HTTP/1.1 client (plain `http://`): its pool connects
//!   to the proxy and each request names the whole URL ([`Forward`]), as
//!   HTTP/1.1 proxies expect.
//!
//! Only `http://` proxies are supported; a `socks5://` or `https://` one is
//! refused when the provider is built, naming the endpoint, so calls never
//! bypass a proxy the operator set. A proxy's credentials (`user:password@`
//! in its URL) go only into `Proxy-Authorization`: [`Matcher`] keeps them
//! out of the proxy's `Uri`, which is all that is ever logged.

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use hyper::header::HeaderValue;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::proxy::matcher::{Intercept, Matcher};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower_service::Service;

type BoxError = Box<dyn StdError + Send + Sync>;

/// The proxies the environment names, read once per provider build (a
/// reload reads them again).
#[derive(Clone)]
pub struct Proxies(Arc<Matcher>);

/// How the own client reaches an `http://` endpoint through a proxy.
pub struct Forward {
    /// The proxy's host, without IPv6 brackets.
    pub host: String,
    /// The proxy's port.
    pub port: u16,
    /// `Proxy-Authorization`, when the proxy's URL holds credentials.
    pub auth: Option<HeaderValue>,
}

impl Proxies {
    /// The proxies of this process's environment.
    pub fn from_env() -> Self {
        Self(Arc::new(Matcher::from_env()))
    }

    /// What `endpoint` goes through: `None` when it is called directly.
    /// Refuses a proxy that is not `http://`.
    pub fn route(&self, endpoint: &Uri) -> Result<Option<Intercept>, String> {
        let Some(proxy) = self.0.intercept(endpoint) else {
            return Ok(None);
        };
        match proxy.uri().scheme_str() {
            Some("http") => Ok(Some(proxy)),
            scheme => Err(format!(
                "the proxy the environment names for {} is a {}:// proxy ({}); \
                 only http:// proxies are supported (list the host in NO_PROXY \
                 to call it directly)",
                origin(endpoint),
                scheme.unwrap_or("?"),
                proxy.uri().authority().map_or("", |a| a.as_str()),
            )),
        }
    }

    /// How the own client reaches the `http://` `endpoint`, when through a
    /// proxy.
    pub fn forward(&self, endpoint: &Uri) -> Result<Option<Forward>, String> {
        let Some(proxy) = self.route(endpoint)? else {
            return Ok(None);
        };
        let Some(authority) = proxy.uri().authority() else {
            return Err(format!("the proxy for {} has no host", origin(endpoint)));
        };
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        Ok(Some(Forward {
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(80),
            auth: proxy.basic_auth().cloned(),
        }))
    }
}

/// `scheme://host:port` of an endpoint, without credentials or path.
pub fn origin(endpoint: &Uri) -> String {
    let authority = endpoint.authority().map_or("", |a| a.as_str());
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{}://{host}", endpoint.scheme_str().unwrap_or("http"))
}

/// hyper-util's TCP connector, tunnelling through the proxy for the
/// destinations the environment says to.
#[derive(Clone)]
pub struct Connector {
    tcp: HttpConnector,
    proxies: Proxies,
    /// Bounds the whole tunnel's opening (a proxy that accepts and never
    /// answers `CONNECT` is a connect that does not finish).
    connect_timeout: Duration,
}

impl Connector {
    /// Connects with `tcp`, through `proxies` where they say.
    pub fn new(tcp: HttpConnector, proxies: Proxies, connect_timeout: Duration) -> Self {
        Self {
            tcp,
            proxies,
            connect_timeout,
        }
    }
}

type Connecting = Pin<Box<dyn Future<Output = Result<TokioIo<TcpStream>, BoxError>> + Send>>;

impl Service<Uri> for Connector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        // Endpoints were checked when the provider was built, so an
        // unsupported proxy here is one a destination outside them names.
        let proxy = match self.proxies.route(&dst) {
            Ok(proxy) => proxy,
            Err(refused) => return Box::pin(async move { Err(refused.into()) }),
        };
        let Some(proxy) = proxy else {
            let connecting = self.tcp.call(dst);
            return Box::pin(async move { connecting.await.map_err(Into::into) });
        };
        let connecting = self.tcp.call(proxy.uri().clone());
        let auth = proxy.basic_auth().cloned();
        let limit = self.connect_timeout;
        Box::pin(async move {
            let opening = async move {
                let conn = connecting
                    .await
                    .map_err(|err| TunnelError::Connect(err.into()))?;
                tunnel(conn.into_inner(), &dst, auth.as_ref()).await
            };
            match tokio::time::timeout(limit, opening).await {
                Ok(opened) => Ok(TokioIo::new(opened?)),
                Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "proxy tunnel").into()),
            }
        })
    }
}

/// Why a proxy gave no tunnel.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// The proxy could not be reached.
    #[error("{}", self.sentence())]
    Connect(#[source] BoxError),
    /// The proxy wants credentials the URL does not hold, or others.
    #[error("{}", self.sentence())]
    Credentials,
    /// The proxy answered `CONNECT` with another status, or not in HTTP.
    #[error("{}", self.sentence())]
    Refused,
    /// The connection to the proxy broke.
    #[error("{}", self.sentence())]
    Io(#[from] io::Error),
}

impl TunnelError {
    /// What went wrong, in the daemon's words.
    pub fn sentence(&self) -> &'static str {
        match self {
            TunnelError::Connect(_) => "could not connect to the proxy",
            TunnelError::Credentials => {
                "the proxy asked for credentials (407): set them in the proxy URL"
            }
            TunnelError::Refused => "the proxy did not open a tunnel to the provider",
            TunnelError::Io(_) => "the connection to the proxy broke",
        }
    }
}

/// The most bytes of a proxy's answer to `CONNECT` read: far more than a
/// status line and a few headers.
const MAX_ANSWER: usize = 8 * 1024;

/// Asks the proxy on `conn` for a tunnel to `dst` (its port written out:
/// 443 for `https`, 80 for `h2c`).
async fn tunnel(
    mut conn: TcpStream,
    dst: &Uri,
    auth: Option<&HeaderValue>,
) -> Result<TcpStream, TunnelError> {
    let host = dst.host().ok_or(TunnelError::Refused)?;
    let default = if dst.scheme_str() == Some("http") {
        80
    } else {
        443
    };
    let port = dst.port_u16().unwrap_or(default);
    let mut ask = format!("CONNECT {host}:{port} HTTP/1.1\r\nhost: {host}:{port}\r\n").into_bytes();
    if let Some(auth) = auth {
        ask.extend_from_slice(b"proxy-authorization: ");
        ask.extend_from_slice(auth.as_bytes());
        ask.extend_from_slice(b"\r\n");
    }
    ask.extend_from_slice(b"\r\n");
    conn.write_all(&ask).await?;
    let mut answer = Vec::with_capacity(512);
    loop {
        if conn.read_buf(&mut answer).await? == 0 || answer.len() > MAX_ANSWER {
            return Err(TunnelError::Refused);
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut head = httparse::Response::new(&mut headers);
        match head.parse(&answer) {
            Ok(httparse::Status::Partial) => continue,
            Ok(httparse::Status::Complete(_)) if head.code == Some(200) => return Ok(conn),
            Ok(httparse::Status::Complete(_)) if head.code == Some(407) => {
                return Err(TunnelError::Credentials);
            }
            _ => return Err(TunnelError::Refused),
        }
    }
}

/// The sentence for a tunnel the proxy would not open, if `err` holds one.
pub fn tunnel_refusal(err: &(dyn StdError + 'static)) -> Option<&'static str> {
    let mut source = Some(err);
    while let Some(cause) = source {
        if let Some(tunnel) = cause.downcast_ref::<TunnelError>() {
            return Some(tunnel.sentence());
        }
        source = cause.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::net::TcpListener;

    /// A proxy on loopback that answers every `CONNECT` with `answer` (or,
    /// without one, never answers), and a connector using it for https.
    async fn proxy(answer: Option<&'static [u8]>) -> (Connector, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let task = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.expect("accept");
            let mut head = [0u8; 1024];
            let _ = conn.read(&mut head).await;
            match answer {
                Some(answer) => drop(conn.write_all(answer).await),
                None => std::future::pending().await,
            }
        });
        let proxies = Proxies(Arc::new(Matcher::builder().https(url).build()));
        let connector = Connector::new(HttpConnector::new(), proxies, Duration::from_millis(300));
        (connector, task)
    }

    fn dst() -> Uri {
        "https://provider.invalid".parse().expect("a URI")
    }

    #[tokio::test]
    async fn a_proxy_asking_for_credentials_is_told_as_such() {
        let (mut connector, _task) = proxy(Some(b"HTTP/1.1 407 Proxy Auth\r\n\r\n")).await;
        let err = connector.call(dst()).await.expect_err("no tunnel");
        assert_eq!(
            tunnel_refusal(&*err),
            Some(TunnelError::Credentials.sentence())
        );
    }

    #[tokio::test]
    async fn a_proxy_refusing_the_tunnel_is_told_as_such() {
        let (mut connector, _task) = proxy(Some(b"HTTP/1.1 403 Forbidden\r\n\r\n")).await;
        let err = connector.call(dst()).await.expect_err("no tunnel");
        assert_eq!(tunnel_refusal(&*err), Some(TunnelError::Refused.sentence()));
    }

    #[tokio::test]
    async fn a_proxy_that_never_answers_is_a_connect_timeout() {
        let (mut connector, _task) = proxy(None).await;
        let started = std::time::Instant::now();
        let err = connector.call(dst()).await.expect_err("no tunnel");
        let io = err.downcast_ref::<io::Error>().expect("an I/O error");
        assert_eq!(io.kind(), io::ErrorKind::TimedOut);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "within the connect timeout"
        );
    }

    #[test]
    fn an_unsupported_proxy_is_refused_naming_the_endpoint_not_the_password() {
        let matcher = Matcher::builder()
            .https("socks5://me:secret@10.0.0.1:1080")
            .build();
        let refused = Proxies(Arc::new(matcher))
            .route(&"https://api.example.test/v1".parse().expect("a URI"))
            .expect_err("socks is refused");
        assert!(refused.contains("https://api.example.test"), "{refused}");
        assert!(refused.contains("socks5://"), "{refused}");
        assert!(!refused.contains("secret"), "{refused}");
    }
}
