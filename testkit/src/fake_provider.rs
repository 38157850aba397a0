//! The fake OpenAI-compatible provider: server, accept loop and observations.
//!
//! Integration tests point the daemon at a [`FakeProvider`] and make it
//! misbehave on demand (see [`Behavior`]); the load benchmark uses it as a
//! cheap upstream. It speaks HTTP/1.1 and h2c (prior knowledge) on
//! `127.0.0.1:<random port>`, runs on the current tokio runtime, keeps its
//! counters in atomics and logs nothing per request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::HeaderMap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::Value;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

use crate::behavior::Behavior;
use crate::handler;
use crate::lock;
use crate::stats::{ConnectionGuard, Stats};
use crate::usage::{UsageLedger, UsageShape, UsageTotals};

/// One request (chat completion, Anthropic message, token count or
/// embeddings) as the fake provider received it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// The request path, to check which URL the daemon built.
    pub path: String,
    /// The `Authorization` header, to check the daemon sent the right key.
    pub authorization: Option<String>,
    /// All request headers, to check what else the daemon forwarded.
    pub headers: HeaderMap,
    /// The JSON body (`Value::Null` if it was not JSON), to check rewriting
    /// such as the stripped provider prefix of `model`.
    pub body: Value,
    /// When the request's handler started, to check ordering and timing.
    pub at: Instant,
}

/// State shared by the accept loop, every connection and every handler.
pub(crate) struct Shared {
    /// Lock-free counters.
    pub(crate) stats: Arc<Stats>,
    /// Behavior for requests whose model and headers name none.
    default: Mutex<Behavior>,
    /// Every chat request so far, in arrival order (if `recording`).
    seen: Mutex<Vec<SeenRequest>>,
    /// Whether to keep [`SeenRequest`]s (a benchmark may turn it off).
    recording: AtomicBool,
    /// Source of unique `chatcmpl-…` ids.
    next_seq: AtomicU64,
    /// Requests so far per (exact model string, counted behavior), for the
    /// `…fail-<n>-…` behaviors.
    attempts: Mutex<HashMap<(String, Behavior), u32>>,
    /// Usage shape for requests without the `x-fake-usage` header.
    usage_shape: Mutex<UsageShape>,
    /// Every usage object produced so far.
    pub(crate) usage: Arc<UsageLedger>,
}

impl Shared {
    /// Fresh state with `default` as the default behavior.
    fn new(default: Behavior) -> Shared {
        Shared {
            stats: Arc::new(Stats::default()),
            default: Mutex::new(default),
            seen: Mutex::new(Vec::new()),
            recording: AtomicBool::new(true),
            next_seq: AtomicU64::new(1),
            attempts: Mutex::new(HashMap::new()),
            usage_shape: Mutex::new(UsageShape::default()),
            usage: Arc::new(UsageLedger::default()),
        }
    }

    /// The current default behavior.
    pub(crate) fn default_behavior(&self) -> Behavior {
        *lock(&self.default)
    }

    /// The current default usage shape.
    pub(crate) fn default_usage_shape(&self) -> UsageShape {
        *lock(&self.usage_shape)
    }

    /// Appends a request to the log, building it only if recording is on.
    pub(crate) fn record(&self, build: impl FnOnce() -> SeenRequest) {
        if self.recording.load(Ordering::Relaxed) {
            let seen = build();
            lock(&self.seen).push(seen);
        }
    }

    /// Counts one request for `model` under the counted `behavior` and
    /// returns how many came before it (0 for the first).
    pub(crate) fn attempt(&self, model: &str, behavior: Behavior) -> u32 {
        let mut attempts = lock(&self.attempts);
        let seen = attempts.entry((model.to_owned(), behavior)).or_insert(0);
        let before = *seen;
        *seen = seen.saturating_add(1);
        before
    }

    /// A new reply sequence number.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }
}

/// A running fake provider. Dropping it stops the accept loop and closes
/// every connection it had open.
pub struct FakeProvider {
    /// The bound loopback address.
    addr: SocketAddr,
    /// State shared with the server tasks.
    shared: Arc<Shared>,
    /// The accept loop; it owns the connection tasks, so aborting it ends them.
    accept_task: JoinHandle<()>,
}

impl FakeProvider {
    /// Starts a provider whose default behavior is [`Behavior::Instant`].
    pub async fn start() -> FakeProvider {
        FakeProvider::start_with(Behavior::Instant).await
    }

    /// Starts a provider with `default` for models that name no behavior.
    ///
    /// Panics if no loopback port can be bound.
    pub async fn start_with(default: Behavior) -> FakeProvider {
        let listener = bind_loopback().expect("fake provider: binding 127.0.0.1:0 failed");
        let addr = listener
            .local_addr()
            .expect("fake provider: bound socket has no local address");
        let shared = Arc::new(Shared::new(default));
        let accept_task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        FakeProvider {
            addr,
            shared,
            accept_task,
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The OpenAI base URL to configure a provider with: `http://ADDR/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The Anthropic base URL to configure a provider's
    /// `anthropic_base_url` with: `http://ADDR` (the daemon appends
    /// `/v1/messages`).
    pub fn anthropic_base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sets the behavior for requests whose model and headers name none.
    pub fn set_default(&self, behavior: Behavior) {
        *lock(&self.shared.default) = behavior;
    }

    /// Sets where usage goes for requests without the `x-fake-usage` header
    /// ([`UsageShape::Glm`] at start), for tests whose requests come
    /// through the daemon, which does not forward that header.
    pub fn set_usage_shape(&self, shape: UsageShape) {
        *lock(&self.shared.usage_shape) = shape;
    }

    /// Token usage reported so far, summed over every usage object produced
    /// (non-streamed bodies, final stream chunks), to check the daemon's
    /// accounting. A stream counts when its final chunk is produced, which
    /// is a moment before the client reads it.
    pub fn usage_reported(&self) -> UsageTotals {
        self.shared.usage.total()
    }

    /// [`FakeProvider::usage_reported`] for requests whose body's `model` was
    /// exactly `model` (as received: without the daemon's `provider/` prefix).
    pub fn usage_reported_for(&self, model: &str) -> UsageTotals {
        self.shared.usage.for_model(model)
    }

    /// Turns the request log on or off (on by default); counters keep
    /// counting either way. A long benchmark turns it off to save memory.
    pub fn set_recording(&self, on: bool) {
        self.shared.recording.store(on, Ordering::Relaxed);
    }

    /// Every chat request received so far (while recording), in order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        lock(&self.shared.seen).clone()
    }

    /// The recorded chat requests whose JSON body's `model` is exactly
    /// `model`, in order: the attempts a retrying client made, with their
    /// [`SeenRequest::at`] instants to check the backoff between them.
    pub fn requests_for(&self, model: &str) -> Vec<SeenRequest> {
        lock(&self.shared.seen)
            .iter()
            .filter(|r| r.body.get("model").and_then(Value::as_str) == Some(model))
            .cloned()
            .collect()
    }

    /// How many chat requests arrived (recorded or not).
    pub fn request_count(&self) -> usize {
        Stats::get(&self.shared.stats.requests)
    }

    /// Chat requests whose handler or streaming body is still alive.
    pub fn in_flight(&self) -> usize {
        Stats::get(&self.shared.stats.in_flight)
    }

    /// The highest `in_flight` seen so far.
    pub fn max_in_flight(&self) -> usize {
        Stats::get(&self.shared.stats.max_in_flight)
    }

    /// TCP connections currently open.
    pub fn open_connections(&self) -> usize {
        Stats::get(&self.shared.stats.open)
    }

    /// TCP connections accepted so far.
    pub fn connections_accepted(&self) -> usize {
        Stats::get(&self.shared.stats.accepted)
    }

    /// TCP connections that have ended (closed by either side, or errored).
    pub fn connections_closed(&self) -> usize {
        Stats::get(&self.shared.stats.closed)
    }

    /// Chat requests dropped before their full response was produced (the
    /// client went away or reset the stream). A scripted `cut-<n>` is not
    /// counted: the provider finished what it meant to send.
    pub fn abandoned(&self) -> usize {
        Stats::get(&self.shared.stats.abandoned)
    }

    /// Polls `cond` every 20 ms (as [`crate::eventually`] does) until it holds or `timeout` passes; returns
    /// whether it held. On timeout prints `what` to stderr, so a failing
    /// `assert!(fake.wait_until(..))` says what it was waiting for.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        cond: impl Fn(&FakeProvider) -> bool,
    ) -> bool {
        let held = crate::wait::poll(timeout, || {
            std::future::ready(cond(self).then_some(()).ok_or(()))
        })
        .await;
        if held.is_err() {
            eprintln!("fake provider: still waiting for {what} after {timeout:?}");
        }
        held.is_ok()
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl std::fmt::Debug for FakeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeProvider")
            .field("addr", &self.addr)
            .field("requests", &self.request_count())
            .field("in_flight", &self.in_flight())
            .field("open_connections", &self.open_connections())
            .finish()
    }
}

/// Listen backlog: a load benchmark opens a thousand connections at once, and
/// the default (128) would drop SYNs that are then retried only after 1 s.
/// The kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `127.0.0.1:<random port>` and listens with [`LISTEN_BACKLOG`].
fn bind_loopback() -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    socket.listen(LISTEN_BACKLOG)
}

/// The HTTP server settings: HTTP/1.1 and h2c, room for 100k h2 streams.
fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // No header-read timeout: idle keep-alive connections stay open, so
    // connection counts in tests only change when a test causes it.
    builder.http1().header_read_timeout(None).keep_alive(true);
    builder
        .http2()
        .max_concurrent_streams(100_000)
        .max_pending_accept_reset_streams(100_000)
        .max_local_error_reset_streams(None)
        .initial_connection_window_size(16 * 1024 * 1024);
    builder
}

/// Accepts connections until aborted; each runs in a task of `conns`, so
/// aborting this task drops the set and with it every connection.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let builder = Arc::new(http_builder());
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _peer)) => {
                    let guard = ConnectionGuard::open(&shared.stats);
                    conns.spawn(serve(tcp, guard, Arc::clone(&builder), Arc::clone(&shared)));
                }
                // E.g. out of file descriptors under load: back off, don't spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = conns.join_next() => {}
        }
    }
}

/// Serves one connection until it ends, or until a `refuse` request asks
/// (through `closer`) for it to be dropped unanswered; `_guard` counts it
/// open meanwhile.
async fn serve(
    tcp: TcpStream,
    _guard: ConnectionGuard,
    builder: Arc<auto::Builder<TokioExecutor>>,
    shared: Arc<Shared>,
) {
    // Streamed chunks must leave at once, not wait for Nagle.
    let _ = tcp.set_nodelay(true);
    let closer = Arc::new(Notify::new());
    let service = service_fn({
        let closer = Arc::clone(&closer);
        move |req| handler::handle(Arc::clone(&shared), Arc::clone(&closer), req)
    });
    let conn = builder.serve_connection(TokioIo::new(tcp), service);
    tokio::select! {
        // Errors (client vanished, protocol error, scripted cut) just end it.
        _ = conn => {}
        // Dropping `conn` closes the socket with nothing written.
        () = closer.notified() => {}
    }
}
