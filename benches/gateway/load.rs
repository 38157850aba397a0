//! Load generators over [`crate::http1`] connections, on the client's
//! single-threaded runtime (a `LocalSet`, so shared state is `Rc`/`RefCell`):
//!
//! - [`open_loop`]: requests at a fixed rate, each with an intended send
//!   time from which its latency is measured (a stall is charged to every
//!   request it delays: no coordinated omission). Requests go to idle
//!   connections of a pool; more connections open while all are busy, up to
//!   a cap. The pacing timer is a `timerfd`, precise to a few µs, instead of
//!   tokio's millisecond timer wheel.
//! - [`closed_loop`]: C connections sending back to back.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::http1::{Conn, Expect, Failure, Target};
use crate::stats::{Stats, record};

/// A request with no complete answer after this long is a failure.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One side of a comparison: where to send, what, and what to expect back.
/// Its idle connections persist across runs, so later rounds start warm.
pub struct Side {
    /// `"daemon"`, `"bare"`, `"floor"` or `"direct"`.
    pub name: &'static str,
    /// Where it connects.
    pub target: Target,
    /// The complete HTTP request.
    pub request: Vec<u8>,
    /// What a success looks like.
    pub expect: Expect,
    /// Idle connections kept between runs.
    pub idle: RefCell<Vec<Conn>>,
}

impl Side {
    /// A side with no connections yet.
    pub fn new(name: &'static str, target: Target, request: Vec<u8>, expect: Expect) -> Rc<Side> {
        Rc::new(Side {
            name,
            target,
            request,
            expect,
            idle: RefCell::new(Vec::new()),
        })
    }

    /// An idle connection, or a new one (counted in `stats`).
    async fn take(&self, stats: &RefCell<Stats>) -> Result<Conn, Failure> {
        if let Some(conn) = self.idle.borrow_mut().pop() {
            return Ok(conn);
        }
        let stream = self.target.connect().await.map_err(|_| Failure::Connect)?;
        stats.borrow_mut().connections += 1;
        Ok(Conn::new(stream))
    }

    /// Returns a connection to the pool if it can be reused.
    fn give_back(&self, conn: Conn) {
        if conn.reusable {
            self.idle.borrow_mut().push(conn);
        }
    }

    /// Sends one request with the time limit.
    async fn one(&self, conn: &mut Conn) -> Result<(), Failure> {
        let exchange = conn.exchange(&self.request, self.expect);
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(result) => result.map(|_| ()),
            Err(_) => {
                conn.reusable = false;
                Err(Failure::Timeout)
            }
        }
    }
}

/// A precise sleep: a `timerfd` whose expiry wakes the runtime's epoll.
struct Pacer {
    /// The timer, registered with the runtime.
    fd: AsyncFd<OwnedFd>,
}

impl Pacer {
    /// A disarmed timer on `CLOCK_MONOTONIC` (the clock of [`Instant`]).
    fn new() -> io::Result<Pacer> {
        let flags = libc::TFD_NONBLOCK | libc::TFD_CLOEXEC;
        // SAFETY: timerfd_create returns a new fd or -1.
        let raw = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, flags) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: the `OwnedFd` moves into the `AsyncFd` and keeps the
        // descriptor open, unchanged, for exactly its lifetime.
        let registered = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) };
        Ok(Pacer {
            fd: registered.map_err(|e| e.into_parts().1)?,
        })
    }

    /// Waits until `at`.
    async fn sleep_until(&self, at: Instant) -> io::Result<()> {
        let wait = at.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            return Ok(());
        }
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: wait.as_secs() as libc::time_t,
                tv_nsec: wait.subsec_nanos() as libc::c_long,
            },
        };
        let fd = self.fd.get_ref().as_raw_fd();
        // SAFETY: arms our own timer with a valid relative spec.
        if unsafe { libc::timerfd_settime(fd, 0, &spec, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        loop {
            let mut ready = self.fd.readable().await?;
            let read = ready.try_io(|fd| {
                let mut expirations = 0u64;
                let buf = (&raw mut expirations).cast::<libc::c_void>();
                // SAFETY: reads 8 bytes into a u64 we own.
                let n = unsafe { libc::read(fd.get_ref().as_raw_fd(), buf, 8) };
                if n == 8 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            });
            if let Ok(result) = read {
                return result;
            }
        }
    }
}

/// State shared by the pacer and the workers of one open-loop run.
struct Open {
    /// The side under load.
    side: Rc<Side>,
    /// Intended send times not yet taken by a worker.
    queue: RefCell<VecDeque<Instant>>,
    /// Wakes an idle worker.
    notify: Notify,
    /// Workers waiting for work and not yet woken.
    idle: Cell<usize>,
    /// Workers busy with a request.
    busy: Cell<usize>,
    /// Set when no more requests will be queued.
    done: Cell<bool>,
    /// Requests intended before this are warm-up: sent, not recorded.
    measure_from: Instant,
    /// What was measured.
    stats: RefCell<Stats>,
}

/// Sends `rate` requests per second for `warmup + measure`; records those
/// intended after the warm-up. At most `cap` connections are busy at once.
pub async fn open_loop(
    side: &Rc<Side>,
    rate: f64,
    warmup: Duration,
    measure: Duration,
    cap: usize,
) -> io::Result<Stats> {
    let pacer = Pacer::new()?;
    let start = Instant::now();
    let state = Rc::new(Open {
        side: Rc::clone(side),
        queue: RefCell::new(VecDeque::new()),
        notify: Notify::new(),
        idle: Cell::new(0),
        busy: Cell::new(0),
        done: Cell::new(false),
        measure_from: start + warmup,
        stats: RefCell::new(Stats::default()),
    });
    let end = start + warmup + measure;
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    let mut sent: u64 = 0;
    loop {
        let intended = start + Duration::from_secs_f64(sent as f64 / rate);
        if intended >= end {
            break;
        }
        if intended > Instant::now() {
            pacer.sleep_until(intended).await?;
        }
        if intended >= state.measure_from {
            record(&mut state.stats.borrow_mut().pacer_lag, intended.elapsed());
        }
        state.queue.borrow_mut().push_back(intended);
        sent += 1;
        if state.idle.get() > 0 {
            state.idle.set(state.idle.get() - 1);
            state.notify.notify_one();
        } else if workers.len() < cap {
            workers.push(tokio::task::spawn_local(worker(Rc::clone(&state))));
        }
    }
    state.done.set(true);
    state.notify.notify_waiters();
    for w in workers {
        let _ = w.await;
    }
    let mut stats = state.stats.take();
    stats.window = measure;
    Ok(stats)
}

/// Takes intended send times off the queue and sends them, one at a time.
async fn worker(st: Rc<Open>) {
    let mut conn: Option<Conn> = None;
    loop {
        let next = st.queue.borrow_mut().pop_front();
        let Some(intended) = next else {
            if st.done.get() {
                break;
            }
            st.idle.set(st.idle.get() + 1);
            st.notify.notified().await;
            continue;
        };
        let measured = intended >= st.measure_from;
        if intended.elapsed() > REQUEST_TIMEOUT {
            // Stuck in the queue longer than any answer may take.
            let mut stats = st.stats.borrow_mut();
            stats.finished += 1;
            if measured {
                stats.fail(Failure::Timeout);
            }
            continue;
        }
        st.busy.set(st.busy.get() + 1);
        let max_busy = st.stats.borrow().max_busy.max(st.busy.get());
        st.stats.borrow_mut().max_busy = max_busy;
        let result = match conn.take() {
            Some(c) => Ok(c),
            None => st.side.take(&st.stats).await,
        };
        let sent_at = Instant::now();
        let outcome = match result {
            Ok(mut c) => {
                let r = st.side.one(&mut c).await;
                if c.reusable {
                    conn = Some(c);
                }
                r
            }
            Err(f) => Err(f),
        };
        let answered_at = Instant::now();
        st.busy.set(st.busy.get() - 1);
        st.stats.borrow_mut().finished += 1;
        if measured {
            let mut stats = st.stats.borrow_mut();
            match outcome {
                Ok(()) => {
                    stats.ok += 1;
                    record(&mut stats.latency, answered_at - intended);
                    record(&mut stats.send_lag, sent_at - intended);
                    record(&mut stats.service, answered_at - sent_at);
                }
                Err(f) => stats.fail(f),
            }
        }
    }
    if let Some(c) = conn {
        st.side.give_back(c);
    }
}

/// `conns` connections send back to back for `duration`; answers completed
/// inside the window are counted.
pub async fn closed_loop(side: &Rc<Side>, conns: usize, duration: Duration) -> Stats {
    let stats = Rc::new(RefCell::new(Stats::default()));
    let start = Instant::now();
    let end = start + duration;
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            let side = Rc::clone(side);
            let stats = Rc::clone(&stats);
            tokio::task::spawn_local(async move {
                let mut conn: Option<Conn> = None;
                while Instant::now() < end {
                    let mut c = match conn.take() {
                        Some(c) => c,
                        None => match side.take(&stats).await {
                            Ok(c) => c,
                            Err(f) => {
                                stats.borrow_mut().fail(f);
                                tokio::time::sleep(Duration::from_millis(10)).await;
                                continue;
                            }
                        },
                    };
                    let t0 = Instant::now();
                    let outcome = side.one(&mut c).await;
                    let t1 = Instant::now();
                    if c.reusable {
                        conn = Some(c);
                    }
                    stats.borrow_mut().finished += 1;
                    if t1 <= end {
                        let mut s = stats.borrow_mut();
                        match outcome {
                            Ok(()) => {
                                s.ok += 1;
                                record(&mut s.latency, t1 - t0);
                            }
                            Err(f) => s.fail(f),
                        }
                    }
                }
                if let Some(c) = conn {
                    side.give_back(c);
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let mut out = stats.take();
    out.window = duration;
    out
}
