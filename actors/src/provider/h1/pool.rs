//! The idle connections to one provider endpoint on one shard, and how a
//! call gets a connection: the most recently used idle one that is still
//! open, else a new one.
//!
//! A pooled connection the provider closes while idle is noticed when it is
//! taken (it is readable), or by the sweep every [`SWEEP_EVERY`]; one that
//! closes in the moment between being taken and being written to fails
//! before any byte of an answer, within [`STALE_WINDOW`], and the call goes
//! on with another connection. A call is never sent again after that
//! window: the provider may have been working on it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::Error;
use super::body::Body;
use super::conn::Conn;
use super::head::Head;

/// Idle connections are closed after this (by both clients); providers'
/// own idle timeouts are typically 60–120 s, so reuse stays likely and no
/// half-dead connection is kept long.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// The most idle connections kept per endpoint and shard. After a burst of
/// 10,000 calls at once the rest are closed rather than held for
/// [`IDLE_TIMEOUT`]; 1,024 is four times the nginx floor's `keepalive 256`.
const MAX_IDLE: usize = 1024;

/// How often idle connections are checked for closing and expiry.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// How soon after a reused connection was written to its closing still
/// means the provider had closed it while idle (its FIN was on the way),
/// rather than that it took the call and failed: one round trip to a local
/// server is well under a millisecond, to a remote one a few hundred.
const STALE_WINDOW: Duration = Duration::from_secs(1);

/// Stale pooled connections a call tries before it connects anew.
const MAX_STALE: usize = 2;

/// A pool of keep-alive connections to one `host:port`.
#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
}

/// What the pool and its bodies share.
pub(super) struct Shared {
    /// The host to connect to, without IPv6 brackets.
    host: String,
    /// Its port.
    port: u16,
    /// How long connecting may take.
    connect_timeout: Duration,
    /// Idle connections, the most recently used last.
    idle: Mutex<Idle>,
}

#[derive(Default)]
struct Idle {
    conns: VecDeque<Conn>,
    /// Whether a sweep task is running.
    sweeping: bool,
}

impl Pool {
    /// A pool for `host:port`, connecting within `connect_timeout`.
    pub fn new(host: &str, port: u16, connect_timeout: Duration) -> Self {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let shared = Shared {
            host,
            port,
            connect_timeout,
            idle: Mutex::new(Idle::default()),
        };
        Self {
            shared: Arc::new(shared),
        }
    }

    /// Sends one request (`head` already rendered, then `body`) and reads
    /// its answer's head; the body follows as a stream.
    pub async fn send(&self, head: &[u8], body: &[u8]) -> Result<(Head, Body), Error> {
        for _ in 0..MAX_STALE {
            let Some(conn) = self.shared.take() else {
                break;
            };
            let sent = Instant::now();
            match self.exchange(conn, head, body).await {
                // Not all written: the provider cannot have taken it.
                Err(Error::Send) => continue,
                // Closed at once: the provider closed it while idle. Closed
                // later, it may have been working on the call, which is
                // then not sent twice.
                Err(Error::Closed) if sent.elapsed() < STALE_WINDOW => continue,
                answered => return answered,
            }
        }
        let conn = self.connect().await?;
        self.exchange(conn, head, body).await
    }

    async fn exchange(
        &self,
        mut conn: Conn,
        head: &[u8],
        body: &[u8],
    ) -> Result<(Head, Body), Error> {
        conn.write(head, body).await?;
        let head = conn.read_head().await?;
        let body = Body::new(conn, head.framing, head.keep_alive, self.shared.clone());
        Ok((head, body))
    }

    async fn connect(&self) -> Result<Conn, Error> {
        let address = (self.shared.host.as_str(), self.shared.port);
        let io =
            match tokio::time::timeout(self.shared.connect_timeout, TcpStream::connect(address))
                .await
            {
                Err(_) => return Err(Error::ConnectTimeout),
                Ok(Err(err)) if err.kind() == std::io::ErrorKind::TimedOut => {
                    return Err(Error::ConnectTimeout);
                }
                Ok(Err(_)) => return Err(Error::Connect),
                Ok(Ok(io)) => io,
            };
        let _ = io.set_nodelay(true);
        Ok(Conn::new(io))
    }

    /// Idle connections now (for tests).
    #[cfg(test)]
    pub fn idle(&self) -> usize {
        self.shared.idle.lock().map_or(0, |idle| idle.conns.len())
    }
}

impl Shared {
    /// The most recently used idle connection that is still open.
    fn take(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().ok()?;
        let now = Instant::now();
        while let Some(conn) = idle.conns.pop_back() {
            if !expired(&conn, now) && conn.is_open() {
                return Some(conn);
            }
        }
        None
    }

    /// A connection whose answer was read to its end, back to the pool.
    pub(super) fn put_back(self: &Arc<Self>, mut conn: Conn) {
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        if idle.conns.len() >= MAX_IDLE {
            return;
        }
        conn.idle_since = Instant::now();
        idle.conns.push_back(conn);
        if !idle.sweeping
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            idle.sweeping = true;
            runtime.spawn(sweep(Arc::downgrade(self)));
        }
    }
}

fn expired(conn: &Conn, now: Instant) -> bool {
    now.saturating_duration_since(conn.idle_since) >= IDLE_TIMEOUT
}

/// Every [`SWEEP_EVERY`], closes idle connections that expired or that the
/// provider closed; ends when the pool is gone or has no idle connection.
async fn sweep(pool: Weak<Shared>) {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        let Some(pool) = pool.upgrade() else { return };
        let Ok(mut idle) = pool.idle.lock() else {
            return;
        };
        let now = Instant::now();
        idle.conns
            .retain(|conn| !expired(conn, now) && conn.is_open());
        if idle.conns.is_empty() {
            idle.sweeping = false;
            return;
        }
    }
}
