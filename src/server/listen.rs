//! One shard's accept loop and its connections: hyper's HTTP/1.1 server
//! straight on the shared Unix listener (and on the optional loopback TCP
//! listeners: the whole API on `server.listen_tcp`, `GET /metrics` alone on
//! `server.metrics_listen`), each connection served on the thread that
//! accepted it.
//!
//! Every shard accepts on its own copy of the listening socket, so a
//! connection's requests never leave the shard that took it. When the drain
//! is done the loop stops accepting and each connection is told to finish:
//! one mid-answer writes it and closes, an idle one closes at once. A
//! handover (the drain of an inherited socket) stops accepting when the
//! drain begins, and each connection closes at its next wait for a request
//! (see [`Clock::hand_over`]), while the requests it already has finish.

use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Frame, SizeHint};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Notify, watch};

use super::clock::{Answered, Clock, Timed};
use super::http::Body;
use super::peers::{Access, Caller};
use super::{Ctx, routes};
use crate::settings::ServerSettings;

/// What the accept loop and its connections are told to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Accept and serve.
    Serving,
    /// Stop accepting; connections close once they have no request.
    Handover,
    /// Stop accepting; connections finish their answer and close.
    Now,
}

/// How long a connection may stay idle, or take to send a request.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// An idle keep-alive connection is closed after this.
    pub idle: Duration,
    /// A request's head must be complete this long after its first byte.
    pub head: Duration,
    /// A request's body must be complete this long after its head.
    pub body: Duration,
}

impl Timeouts {
    /// The timeouts `server` configures.
    pub fn of(server: &ServerSettings) -> Self {
        Self {
            idle: Duration::from_millis(server.keep_alive_ms),
            head: Duration::from_millis(server.header_timeout_ms),
            body: Duration::from_millis(server.body_timeout_ms),
        }
    }
}

/// An answer's body, which marks its connection waiting again once hyper
/// has written it and let it go.
pub struct Served {
    body: Body,
    _answered: Answered,
}

impl hyper::body::Body for Served {
    type Data = bytes::Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// One shard's copies of the listening sockets (the kernel hands each new
/// connection to whichever shard accepts first).
pub struct Shared {
    /// A std listener, cloned once per shard so each accepts on its own thread.
    socket: std::os::unix::net::UnixListener,
    /// The whole API on loopback TCP, if any.
    tcp: Option<std::net::TcpListener>,
    /// The metrics listener, if any.
    metrics: Option<std::net::TcpListener>,
}

impl Shared {
    /// Copies of the shared listeners for one shard.
    pub fn clone_from(listeners: &super::Listeners) -> std::io::Result<Self> {
        let copy = |listener: Option<&std::net::TcpListener>| {
            listener.map(std::net::TcpListener::try_clone).transpose()
        };
        Ok(Self {
            socket: listeners.socket.try_clone()?,
            tcp: copy(listeners.tcp.as_ref())?,
            metrics: copy(listeners.metrics.as_ref())?,
        })
    }
}

/// One shard's listeners, as tokio serves them.
struct Listening {
    socket: UnixListener,
    tcp: Option<TcpListener>,
    metrics: Option<TcpListener>,
}

/// Connections open on this shard; the last one out wakes the stop.
#[derive(Default)]
struct Open {
    /// Open connections; changed only on this shard's thread, hence a `Cell`.
    count: Cell<usize>,
    /// Notified when it reaches zero.
    none: Notify,
}

/// Counts one connection while it lives.
struct OpenGuard(Rc<Open>);

impl OpenGuard {
    fn new(open: &Rc<Open>) -> Self {
        open.count.set(open.count.get() + 1);
        Self(open.clone())
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        let left = self.0.count.get() - 1;
        self.0.count.set(left);
        if left == 0 {
            self.0.none.notify_waiters();
        }
    }
}

/// Serves `listeners` on this thread until `stop`, then waits for the open
/// connections to finish.
pub async fn serve(listeners: Shared, cx: Ctx, stop: watch::Receiver<Stop>) {
    let Listening {
        socket,
        tcp,
        metrics,
    } = match into_tokio(listeners) {
        Ok(listeners) => listeners,
        Err(err) => return tracing::error!(%err, "cannot listen on this shard"),
    };
    let cx = Rc::new(cx);
    let open = Rc::new(Open::default());
    let mut builder = http1::Builder::new();
    // Idle and head deadlines are kept by each connection's `Clock`.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    let builder = Rc::new(builder);
    let mut accepting = stop.clone();
    loop {
        tokio::select! {
            accepted = socket.accept() => match accepted {
                Ok((stream, _)) => {
                    let caller = cx.app.policy.identify(&stream);
                    spawn(stream, std::future::ready(caller), &cx, &builder, &open, &stop);
                }
                Err(err) => backoff(err).await,
            },
            accepted = accept_tcp(tcp.as_ref()) => match accepted {
                Ok((stream, peer, ours)) => {
                    let caller = identify_tcp(&cx, peer, ours);
                    spawn(stream, caller, &cx, &builder, &open, &stop);
                }
                Err(err) => backoff(err).await,
            },
            accepted = accept_tcp(metrics.as_ref()) => match accepted {
                Ok((stream, _, _)) => {
                    let caller = Caller { peer: None, access: Access::MetricsOnly };
                    spawn(stream, std::future::ready(caller), &cx, &builder, &open, &stop);
                }
                Err(err) => backoff(err).await,
            },
            _ = accepting.wait_for(|stop| *stop != Stop::Serving) => break,
        }
    }
    drop((socket, tcp, metrics));
    while open.count.get() > 0 {
        open.none.notified().await;
    }
}

fn into_tokio(listeners: Shared) -> std::io::Result<Listening> {
    listeners.socket.set_nonblocking(true)?;
    Ok(Listening {
        socket: UnixListener::from_std(listeners.socket)?,
        tcp: listeners.tcp.map(TcpListener::from_std).transpose()?,
        metrics: listeners.metrics.map(TcpListener::from_std).transpose()?,
    })
}

/// The next connection on `listener` (never, without one), with the peer's
/// address and ours.
async fn accept_tcp(
    listener: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr, SocketAddr)> {
    let Some(listener) = listener else {
        return std::future::pending().await;
    };
    let (stream, peer) = listener.accept().await?;
    let ours = stream.local_addr()?;
    Ok((stream, peer, ours))
}

/// Who is behind a loopback TCP connection, found off the accept loop (it
/// reads the kernel's socket table) before the connection's first request.
fn identify_tcp(
    cx: &Rc<Ctx>,
    peer: SocketAddr,
    ours: SocketAddr,
) -> impl Future<Output = Caller> + use<> {
    let cx = cx.clone();
    async move { cx.app.policy.identify_tcp(peer, ours).await }
}

/// After a failed accept (out of file descriptors under load, say), waits
/// a moment instead of spinning.
async fn backoff(err: std::io::Error) {
    tracing::warn!(%err, "accept failed; retrying shortly");
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// Serves one connection on this thread, once `caller` has said who it is.
fn spawn<S, C>(
    io: S,
    caller: C,
    cx: &Rc<Ctx>,
    builder: &Rc<http1::Builder>,
    open: &Rc<Open>,
    stop: &watch::Receiver<Stop>,
) where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
    C: Future<Output = Caller> + 'static,
{
    let (cx, builder, mut stop) = (cx.clone(), builder.clone(), stop.clone());
    let guard = OpenGuard::new(open);
    actix_rt::spawn(async move {
        let _guard = guard;
        let caller = Rc::new(caller.await);
        let timeouts = cx.app.timeouts;
        let clock = Clock::new(timeouts.idle, timeouts.head);
        let io = Timed::new(io, clock.clone());
        let conn_clock = clock.clone();
        let service = service_fn(move |req| {
            let (cx, caller, clock) = (cx.clone(), caller.clone(), clock.clone());
            clock.busy();
            async move {
                let answer = routes::handle(req, &cx, &caller).await;
                let answered = Answered(clock);
                Ok::<_, Infallible>(answer.map(|body| Served {
                    body,
                    _answered: answered,
                }))
            }
        });
        let conn = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        loop {
            tokio::select! {
                _ = conn.as_mut() => return,
                changed = stop.changed() => match changed.map(|()| *stop.borrow_and_update()) {
                    Ok(Stop::Serving) => {}
                    // Polled again at once by the loop, so its stream
                    // re-arms with the shortened deadline.
                    Ok(Stop::Handover) => conn_clock.hand_over(),
                    Ok(Stop::Now) | Err(_) => break,
                },
            }
        }
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    });
}
