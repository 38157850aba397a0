//! One shard's accept loop and its connections: hyper's HTTP/1.1 server
//! straight on the shared Unix listener (and on the optional loopback TCP
//! listeners: the whole API on `server.listen_tcp`, `GET /metrics` alone on
//! `server.metrics_listen`), each connection served on one shard's thread
//! from its first byte to its last.
//!
//! Every shard accepts on its own copy of the listening socket, and a
//! connection's requests never leave the shard that serves it: the one
//! that accepted it, or the one it was handed to at once when that had
//! fewer connections (see [`super::balance`]). When the drain
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
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Frame, SizeHint};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Notify, watch};

use super::balance::{Accepted, Balance, Handed, Inbox, Seat};
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

/// This shard's place among the others: which one it is, the counts that
/// keep them even, and where connections handed to it arrive.
pub struct Lane {
    /// This shard's index.
    pub index: usize,
    /// Shared by every shard.
    pub balance: Arc<Balance>,
    /// Connections other shards accepted for this one.
    pub inbox: Inbox,
}

/// What every connection a shard serves shares.
struct Serving {
    cx: Rc<Ctx>,
    builder: Rc<http1::Builder>,
    open: Rc<Open>,
    stop: watch::Receiver<Stop>,
}

/// Serves `listeners` on this thread until `stop`, then waits for the open
/// connections to finish.
pub async fn serve(listeners: Shared, cx: Ctx, stop: watch::Receiver<Stop>, mut lane: Lane) {
    let Listening {
        socket,
        tcp,
        metrics,
    } = match into_tokio(listeners) {
        Ok(listeners) => listeners,
        Err(err) => return tracing::error!(%err, "cannot listen on this shard"),
    };
    let mut builder = http1::Builder::new();
    // Idle and head deadlines are kept by each connection's `Clock`.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    let serving = Serving {
        cx: Rc::new(cx),
        builder: Rc::new(builder),
        open: Rc::new(Open::default()),
        stop: stop.clone(),
    };
    let mut accepting = stop;
    loop {
        let accepted = tokio::select! {
            accepted = socket.accept() => accepted.map(|(stream, _)| Accepted::Unix(stream)),
            accepted = accept_tcp(tcp.as_ref()) => {
                accepted.map(|(stream, peer, ours)| Accepted::Tcp(stream, peer, ours))
            }
            accepted = accept_tcp(metrics.as_ref()) => {
                accepted.map(|(stream, _, _)| Accepted::Metrics(stream))
            }
            Some((handed, seat)) = lane.inbox.recv() => {
                serving.handed(handed, seat);
                continue;
            }
            _ = accepting.wait_for(|stop| *stop != Stop::Serving) => break,
        };
        match accepted {
            Ok(accepted) => take(&serving, &lane, accepted),
            Err(err) => backoff(err).await,
        }
    }
    drop((socket, tcp, metrics));
    serving.finish(lane.inbox).await;
}

/// Serves `accepted` here, or hands it to a shard with fewer connections.
fn take(serving: &Serving, lane: &Lane, accepted: Accepted) {
    let seat = lane.balance.seat(lane.index);
    if seat.shard == lane.index {
        return serving.connection(accepted, seat);
    }
    if let Some((accepted, seat)) = lane.balance.hand(accepted, seat, lane.index) {
        serving.connection(accepted, seat);
    }
}

impl Serving {
    /// Serves a connection another shard accepted for this one.
    fn handed(&self, handed: Handed, seat: Seat) {
        match handed.into_tokio() {
            Ok(accepted) => self.connection(accepted, seat),
            Err(err) => tracing::warn!(%err, "a connection handed to this shard was lost"),
        }
    }

    /// After the last accept: serves what was handed here as the shards
    /// stopped (not lost), then waits for every connection to end.
    async fn finish(&self, mut inbox: Inbox) {
        inbox.close();
        while let Some((handed, seat)) = inbox.recv().await {
            self.handed(handed, seat);
        }
        while self.open.count.get() > 0 {
            self.open.none.notified().await;
        }
    }

    /// Serves one connection on this shard, once it is known who is behind it.
    fn connection(&self, accepted: Accepted, seat: Seat) {
        match accepted {
            Accepted::Unix(stream) => {
                let caller = self.cx.app.policy.identify(&stream);
                self.spawn(stream, std::future::ready(caller), seat);
            }
            Accepted::Tcp(stream, peer, ours) => {
                let caller = identify_tcp(&self.cx, peer, ours);
                self.spawn(stream, caller, seat);
            }
            Accepted::Metrics(stream) => {
                let caller = Caller {
                    peer: None,
                    access: Access::MetricsOnly,
                };
                self.spawn(stream, std::future::ready(caller), seat);
            }
        }
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

impl Serving {
    /// Serves one connection on this thread, once `caller` has said who it
    /// is; `seat` counts it on this shard while it lives.
    fn spawn<S, C>(&self, io: S, caller: C, seat: Seat)
    where
        S: AsyncRead + AsyncWrite + Unpin + 'static,
        C: Future<Output = Caller> + 'static,
    {
        let (cx, builder, stop) = (self.cx.clone(), self.builder.clone(), self.stop.clone());
        let guard = OpenGuard::new(&self.open);
        actix_rt::spawn(async move {
            let _counted = (guard, seat);
            let caller = Rc::new(caller.await);
            run(io, caller, cx, &builder, stop).await;
        });
    }
}

/// Runs hyper on one connection until it ends or `stop` says to finish.
async fn run<S>(
    io: S,
    caller: Rc<Caller>,
    cx: Rc<Ctx>,
    builder: &http1::Builder,
    mut stop: watch::Receiver<Stop>,
) where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
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
}
