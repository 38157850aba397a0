//! Many requests at once, one per connection (scenarios 3 to 6): every
//! connection is opened first (concurrently, retrying while the daemon's
//! listen backlog is full), then all requests leave together, and each
//! connection can be held open after its answer, as a pooling client would,
//! until the scenario releases it. Also the h2c client: one HTTP/2
//! prior-knowledge connection (to the fake provider, or the floor) carrying
//! every request.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::http1::{Conn, Expect, Failure, Target};
use crate::stats::{histogram, record};

/// Time limit for one fan-out request (they wait on 2 s delays and queues).
const FANOUT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long connects may keep retrying on a full backlog.
const CONNECT_PATIENCE: Duration = Duration::from_secs(30);

/// What a fan-out measured; shared with its tasks while it runs.
pub struct Outcome {
    /// Connections opened.
    pub connected: Cell<usize>,
    /// Connect attempts finished (opened or failed).
    pub settled: Cell<usize>,
    /// `EAGAIN` retries while connecting (backlog full).
    pub connect_retries: Cell<u64>,
    /// Requests finished (answered, failed, or released unanswered).
    pub finished: Cell<usize>,
    /// Successful answers.
    pub ok: Cell<u64>,
    /// Failures by kind.
    pub failures: RefCell<BTreeMap<Failure, u64>>,
    /// Requests still unanswered when released (hung on purpose).
    pub released_unanswered: Cell<usize>,
    /// Per-request latency, from its own send to its full answer, µs.
    pub latency: RefCell<Histogram<u64>>,
    /// Streams: from send to the first `data:` event, µs.
    pub first_event: RefCell<Histogram<u64>>,
    /// Streams: `data:` events received in all.
    pub events: Cell<u64>,
    /// When the last answer finished.
    pub last_answer: Cell<Option<Instant>>,
    /// When the requests were let go.
    pub go_at: Cell<Option<Instant>>,
    /// How long opening every connection took.
    pub connect_time: Cell<Duration>,
    /// Signalled when `settled` or `finished` reaches the total.
    progress: Notify,
}

impl Outcome {
    /// An empty outcome.
    fn new() -> Outcome {
        Outcome {
            connected: Cell::new(0),
            settled: Cell::new(0),
            connect_retries: Cell::new(0),
            finished: Cell::new(0),
            ok: Cell::new(0),
            failures: RefCell::new(BTreeMap::new()),
            released_unanswered: Cell::new(0),
            latency: RefCell::new(histogram()),
            first_event: RefCell::new(histogram()),
            events: Cell::new(0),
            last_answer: Cell::new(None),
            go_at: Cell::new(None),
            connect_time: Cell::new(Duration::ZERO),
            progress: Notify::new(),
        }
    }

    /// Counts a failure.
    fn fail(&self, f: Failure) {
        *self.failures.borrow_mut().entry(f).or_default() += 1;
    }

    /// All failures.
    pub fn errors(&self) -> u64 {
        self.failures.borrow().values().sum()
    }

    /// From the go signal to the last answer.
    pub fn wall(&self) -> Option<Duration> {
        Some(self.last_answer.get()? - self.go_at.get()?)
    }
}

/// A fan-out in progress.
pub struct Fanout {
    /// Its measurements so far.
    pub outcome: Rc<Outcome>,
    /// How many requests.
    total: usize,
    /// Lets every request leave.
    go: watch::Sender<bool>,
    /// Lets held connections (and unanswered requests) go.
    release: watch::Sender<bool>,
    /// The per-connection tasks.
    tasks: Vec<JoinHandle<()>>,
}

/// Opens `n` connections to `target`, then sends `request` on all at once.
/// Returns once every request has left; answers are read in the background.
pub async fn start(target: &Target, request: Rc<[u8]>, expect: Expect, n: usize) -> Fanout {
    start_paced(target, request, expect, n, Duration::ZERO).await
}

/// Like [`start`], but request `i` leaves `i × pace` after the first, so the
/// requests overlap without arriving as one burst.
pub async fn start_paced(
    target: &Target,
    request: Rc<[u8]>,
    expect: Expect,
    n: usize,
    pace: Duration,
) -> Fanout {
    let outcome = Rc::new(Outcome::new());
    let (go_tx, go_rx) = watch::channel(false);
    let (release, release_rx) = watch::channel(false);
    let began = Instant::now();
    let deadline = began + CONNECT_PATIENCE;
    let tasks = (0..n)
        .map(|index| {
            let (target, request) = (target.clone(), Rc::clone(&request));
            let (out, mut go, mut release) =
                (Rc::clone(&outcome), go_rx.clone(), release_rx.clone());
            tokio::task::spawn_local(async move {
                let (stream, retries) = target.connect_patiently(deadline).await;
                out.connect_retries
                    .set(out.connect_retries.get() + u64::from(retries));
                out.settled.set(out.settled.get() + 1);
                if out.settled.get() == n {
                    out.progress.notify_one();
                }
                let Ok(stream) = stream else {
                    out.fail(Failure::Connect);
                    finish(&out, n);
                    return;
                };
                out.connected.set(out.connected.get() + 1);
                let mut conn = Conn::new(stream);
                let _ = go.wait_for(|g| *g).await;
                if !pace.is_zero() {
                    let go_at = out.go_at.get().unwrap_or_else(Instant::now);
                    tokio::time::sleep_until((go_at + pace * index as u32).into()).await;
                }
                let t0 = Instant::now();
                let exchange =
                    tokio::time::timeout(FANOUT_TIMEOUT, conn.exchange(&request, expect));
                tokio::select! {
                    answer = exchange => {
                        let t1 = Instant::now();
                        match answer {
                            Ok(Ok(reply)) => {
                                out.ok.set(out.ok.get() + 1);
                                record(&mut out.latency.borrow_mut(), t1 - t0);
                                if let Some(first) = reply.first_event {
                                    record(&mut out.first_event.borrow_mut(), first - t0);
                                }
                            }
                            Ok(Err(f)) => out.fail(f),
                            Err(_) => out.fail(Failure::Timeout),
                        }
                        out.last_answer.set(Some(out.last_answer.get().map_or(t1, |l| l.max(t1))));
                    }
                    _ = release.wait_for(|r| *r) => {
                        out.released_unanswered.set(out.released_unanswered.get() + 1);
                    }
                }
                out.events
                    .set(out.events.get() + u64::from(conn.last_events));
                finish(&out, n);
                let _ = release.wait_for(|r| *r).await;
                drop(conn);
            })
        })
        .collect();
    let fanout = Fanout {
        outcome,
        total: n,
        go: go_tx,
        release,
        tasks,
    };
    if n > 0 && fanout.outcome.settled.get() < n {
        fanout.outcome.progress.notified().await;
    }
    fanout.outcome.connect_time.set(began.elapsed());
    fanout.outcome.go_at.set(Some(Instant::now()));
    let _ = fanout.go.send(true);
    fanout
}

/// Counts one finished request and signals when it was the last.
fn finish(out: &Outcome, n: usize) {
    out.finished.set(out.finished.get() + 1);
    if out.finished.get() == n {
        out.progress.notify_one();
    }
}

impl Fanout {
    /// Waits until every request has finished (answered or failed).
    pub async fn finished(&self) {
        if self.outcome.finished.get() < self.total {
            self.outcome.progress.notified().await;
        }
    }

    /// Closes every connection (abandoning unanswered requests) and waits
    /// for the tasks to end.
    pub async fn release(self) -> Rc<Outcome> {
        let _ = self.release.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.outcome
    }
}

/// Polls `cond` every 2 ms until it holds or `limit` passes.
pub async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The h2c client: one HTTP/2 prior-knowledge connection to `target` (the
/// fake provider directly, or the floor's h2c socket) carrying `n` chat
/// requests with `body` at once; waits for all answers.
pub async fn h2c_all_at_once(target: &Target, body: &str, n: usize) -> Rc<Outcome> {
    let outcome = Rc::new(Outcome::new());
    let began = Instant::now();
    let sender = match connect_h2(target).await {
        Ok(sender) => sender,
        Err(_) => {
            for _ in 0..n {
                outcome.fail(Failure::Connect);
            }
            return outcome;
        }
    };
    outcome.connected.set(1);
    outcome.connect_time.set(began.elapsed());
    outcome.go_at.set(Some(Instant::now()));
    let body = Bytes::from(body.to_owned());
    let authority = match target {
        Target::Tcp(addr) => addr.to_string(),
        Target::Unix(_) => "localhost".to_owned(),
    };
    let uri = format!("http://{authority}/v1/chat/completions");
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (mut sender, out) = (sender.clone(), Rc::clone(&outcome));
            let request = hyper::Request::post(&uri)
                .header("content-type", "application/json")
                .body(Full::new(body.clone()))
                .expect("valid request");
            tokio::task::spawn_local(async move {
                let t0 = Instant::now();
                let call = async {
                    let resp = sender
                        .send_request(request)
                        .await
                        .map_err(|_| Failure::Read)?;
                    let status = resp.status().as_u16();
                    let bytes = resp
                        .into_body()
                        .collect()
                        .await
                        .map_err(|_| Failure::Closed)?;
                    let bytes = bytes.to_bytes();
                    if status != 200 {
                        return Err(Failure::Status(status));
                    }
                    if !bytes.windows(9).any(|w| w == b"\"choices\"") {
                        return Err(Failure::Malformed("not a chat completion"));
                    }
                    Ok(())
                };
                match tokio::time::timeout(FANOUT_TIMEOUT, call).await {
                    Ok(Ok(())) => {
                        out.ok.set(out.ok.get() + 1);
                        record(&mut out.latency.borrow_mut(), t0.elapsed());
                    }
                    Ok(Err(f)) => out.fail(f),
                    Err(_) => out.fail(Failure::Timeout),
                }
                let t1 = Instant::now();
                out.last_answer
                    .set(Some(out.last_answer.get().map_or(t1, |l| l.max(t1))));
                out.finished.set(out.finished.get() + 1);
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    outcome
}

/// Opens an h2c connection and drives it in a background task.
async fn connect_h2(
    target: &Target,
) -> anyhow::Result<hyper::client::conn::http2::SendRequest<Full<Bytes>>> {
    let stream = target.connect().await?;
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(1 << 20)
        .initial_connection_window_size(16 << 20)
        .max_concurrent_reset_streams(100_000)
        .handshake(TokioIo::new(stream))
        .await?;
    tokio::task::spawn_local(async move {
        let _ = conn.await;
    });
    Ok(sender)
}
