//! A connection's read deadlines: how long it may sit idle between requests,
//! and how long a request's head may take once its first byte came.
//!
//! hyper has one header timeout, which runs from the moment it starts
//! waiting for a head, idle time included; so it cannot close a stalled
//! half-sent head quickly without also closing idle keep-alive connections
//! as fast. [`Timed`] wraps the connection's stream instead and knows which
//! of the two a silence is: the service marks the connection [`busy`] when
//! a request's head has been read and [`waiting`] again when its answer has
//! been written (the answer's body is dropped), and the first byte read
//! while waiting starts the head's clock. A read that finds the deadline
//! passed ends the stream: end of file for an idle connection (a clean
//! close), an error for a stalled head. Body reads are timed by the route
//! that reads the body, which can answer 408 (see `routes::chat`).
//!
//! When the daemon hands its socket over to the next process (a drain on an
//! inherited socket), [`Clock::hand_over`] shortens the idle deadline: a
//! connection that has been answered closes at its next wait for a head, a
//! fresh one gets [`HANDOVER_GRACE`] to send its first request. A request
//! already arriving is served first.
//!
//! [`busy`]: Clock::busy
//! [`waiting`]: Clock::waiting

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How long a connection that has sent nothing yet may still send its first
/// request once the socket is being handed over. A client writes its request
/// microseconds after connecting; a second covers a loaded machine, and a
/// connection silent for longer would only hold the drain.
pub const HANDOVER_GRACE: Duration = Duration::from_secs(1);

/// What a connection is doing, as far as its deadlines care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between requests (or before the first) since this instant.
    Waiting(Instant),
    /// The first byte of a head arrived at this instant.
    Head(Instant),
    /// A request is being served: its route times its body.
    Busy,
}

/// One connection's state, shared by its stream and its service (same
/// thread: a shard serves a connection on the thread that accepted it).
pub struct Clock {
    state: Cell<State>,
    /// `server.keep_alive_ms`.
    idle: Duration,
    /// `server.header_timeout_ms`.
    head: Duration,
    /// Set once a request's head has been read on this connection.
    served: Cell<bool>,
    /// When the socket began to be handed over, if it is.
    handover: Cell<Option<Instant>>,
    /// The connection's task, when a read found it busy (no deadline to
    /// arm): woken when it waits again, so the idle deadline is armed even
    /// if hyper does not read again on its own.
    parked: Cell<Option<Waker>>,
}

impl Clock {
    /// A clock for a connection accepted now.
    pub fn new(idle: Duration, head: Duration) -> Rc<Self> {
        Rc::new(Self {
            state: Cell::new(State::Waiting(Instant::now())),
            idle,
            head,
            served: Cell::new(false),
            handover: Cell::new(None),
            parked: Cell::new(None),
        })
    }

    /// A request's head has been read: no head deadline until it is answered.
    pub fn busy(&self) {
        self.state.set(State::Busy);
        self.served.set(true);
    }

    /// The socket is being handed over: end at the next wait for a head. The
    /// connection's task polls it again right after, which re-arms its stream.
    pub fn hand_over(&self) {
        if self.handover.get().is_none() {
            self.handover.set(Some(Instant::now()));
        }
    }

    /// The answer has been written: the connection waits for the next head.
    pub fn waiting(&self) {
        self.state.set(State::Waiting(Instant::now()));
        if let Some(task) = self.parked.take() {
            task.wake();
        }
    }

    /// Bytes arrived: a head starts if the connection was waiting.
    fn read_some(&self) {
        if let State::Waiting(_) = self.state.get() {
            self.state.set(State::Head(Instant::now()));
        }
    }

    /// When the current silence must end, and what ending it means.
    fn deadline(&self) -> Option<(Instant, Expiry)> {
        match self.state.get() {
            State::Waiting(since) => {
                let idle = since + self.idle;
                let closing = self.handover.get().map(|began| match self.served.get() {
                    true => began,
                    false => began + HANDOVER_GRACE,
                });
                Some((closing.map_or(idle, |at| at.min(idle)), Expiry::Idle))
            }
            State::Head(since) => Some((since + self.head, Expiry::Head)),
            State::Busy => None,
        }
    }
}

/// Which deadline passed.
#[derive(Clone, Copy, Debug)]
enum Expiry {
    /// An idle connection: closed as if the client had closed it.
    Idle,
    /// A head that stopped half-way: the connection fails.
    Head,
}

/// A connection's stream with its read deadlines.
pub struct Timed<S> {
    io: S,
    clock: Rc<Clock>,
    /// Armed for the deadline in force; re-armed only when it changes.
    sleep: Pin<Box<Sleep>>,
    armed: Instant,
}

impl<S> Timed<S> {
    /// `io`, timed by `clock`.
    pub fn new(io: S, clock: Rc<Clock>) -> Self {
        let armed = Instant::now() + clock.idle;
        Self {
            io,
            clock,
            sleep: Box::pin(tokio::time::sleep_until(armed)),
            armed,
        }
    }

    /// Whether the deadline in force has passed; if not, the task is woken
    /// when it does.
    fn expired(&mut self, cx: &mut Context<'_>) -> Option<Expiry> {
        let Some((deadline, expiry)) = self.clock.deadline() else {
            self.clock.parked.set(Some(cx.waker().clone()));
            return None;
        };
        if deadline != self.armed {
            self.armed = deadline;
            self.sleep.as_mut().reset(deadline);
        }
        self.sleep.as_mut().poll(cx).is_ready().then_some(expiry)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Timed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.clock.read_some();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => match this.expired(cx) {
                None => Poll::Pending,
                Some(Expiry::Idle) => Poll::Ready(Ok(())),
                Some(Expiry::Head) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the request head did not arrive within server.header_timeout_ms",
                ))),
            },
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Timed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Marks its connection waiting again when dropped: hyper drops an
/// answer's body once it has written all of it (or the connection ended).
pub struct Answered(pub Rc<Clock>);

impl Drop for Answered {
    fn drop(&mut self) {
        self.0.waiting();
    }
}
