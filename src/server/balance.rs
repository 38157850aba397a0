//! Keeps the shards' connection counts even: a connection accepted on a
//! shard that already serves two more than another is handed to that one.
//!
//! Every shard accepts on its own copy of the listening socket, and the
//! kernel wakes all of them for each new connection: under a burst of
//! connects (a client opening its pool), whichever shard is awake takes
//! nearly all of them, and with keep-alive they stay there. Measured with
//! 64 connections opened at once, one shard served 95 % of the requests and
//! the other core sat idle. Handing off costs one message between threads
//! per connection (never per request), and only when the counts are uneven.
//!
//! A connection's place is a [`Seat`], counted from the moment a shard is
//! chosen for it (so a burst of hand-offs sees them at once) until the
//! connection ends (the seat is dropped with it).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

/// How many more connections a shard may serve than the least busy one
/// before it hands new ones over. One would bounce connections back and
/// forth on every odd count; two keeps shards within one of each other
/// whenever connections arrive faster than they end.
const UNEVEN: usize = 2;

/// A connection accepted by a shard's tokio listener.
pub enum Accepted {
    /// On the Unix socket.
    Unix(tokio::net::UnixStream),
    /// On `server.listen_tcp`: the stream, the peer's address and ours.
    Tcp(tokio::net::TcpStream, SocketAddr, SocketAddr),
    /// On `server.metrics_listen`.
    Metrics(tokio::net::TcpStream),
}

/// An accepted connection on its way to another shard, out of the
/// accepting shard's reactor.
pub enum Handed {
    /// On the Unix socket.
    Unix(std::os::unix::net::UnixStream),
    /// On `server.listen_tcp`.
    Tcp(std::net::TcpStream, SocketAddr, SocketAddr),
    /// On `server.metrics_listen`.
    Metrics(std::net::TcpStream),
}

impl Accepted {
    /// Takes the socket out of this shard's reactor.
    fn into_std(self) -> std::io::Result<Handed> {
        Ok(match self {
            Accepted::Unix(stream) => Handed::Unix(stream.into_std()?),
            Accepted::Tcp(stream, peer, ours) => Handed::Tcp(stream.into_std()?, peer, ours),
            Accepted::Metrics(stream) => Handed::Metrics(stream.into_std()?),
        })
    }
}

impl Handed {
    /// Registers the socket with the reactor of the shard it came to.
    pub fn into_tokio(self) -> std::io::Result<Accepted> {
        Ok(match self {
            Handed::Unix(stream) => Accepted::Unix(tokio::net::UnixStream::from_std(stream)?),
            Handed::Tcp(stream, peer, ours) => {
                Accepted::Tcp(tokio::net::TcpStream::from_std(stream)?, peer, ours)
            }
            Handed::Metrics(stream) => Accepted::Metrics(tokio::net::TcpStream::from_std(stream)?),
        })
    }
}

/// A connection's place on a shard: counted while it lives.
pub struct Seat {
    counts: Arc<[AtomicUsize]>,
    /// The shard that serves it.
    pub shard: usize,
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.counts[self.shard].fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a shard receives from the others.
pub type Inbox = mpsc::UnboundedReceiver<(Handed, Seat)>;

/// The shards' connection counts and a way to reach each shard.
pub struct Balance {
    counts: Arc<[AtomicUsize]>,
    inboxes: Box<[mpsc::UnboundedSender<(Handed, Seat)>]>,
}

impl Balance {
    /// A balance for `shards` shards, and each shard's inbox.
    pub fn new(shards: usize) -> (Arc<Self>, Vec<Inbox>) {
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..shards).map(|_| mpsc::unbounded_channel()).unzip();
        let counts = (0..shards).map(|_| AtomicUsize::new(0)).collect();
        let balance = Balance {
            counts,
            inboxes: senders.into(),
        };
        (Arc::new(balance), receivers)
    }

    /// How many connections each shard serves now.
    pub fn counts(&self) -> Vec<usize> {
        let counts = self.counts.iter();
        counts.map(|count| count.load(Ordering::Relaxed)).collect()
    }

    /// A seat for a connection accepted on shard `here`: on `here`, unless
    /// another shard serves [`UNEVEN`] fewer connections.
    pub fn seat(&self, here: usize) -> Seat {
        let count = |shard: usize| self.counts[shard].load(Ordering::Relaxed);
        let least = (0..self.counts.len()).min_by_key(|&shard| count(shard));
        let shard = match least {
            Some(least) if count(least) + UNEVEN <= count(here) => least,
            _ => here,
        };
        self.seat_on(shard)
    }

    fn seat_on(&self, shard: usize) -> Seat {
        self.counts[shard].fetch_add(1, Ordering::Relaxed);
        Seat {
            counts: self.counts.clone(),
            shard,
        }
    }

    /// Sends `accepted` to its seat's shard. When that shard no longer
    /// takes connections (it has stopped), or the socket cannot move, gives
    /// it back with a seat on `here`.
    pub fn hand(&self, accepted: Accepted, seat: Seat, here: usize) -> Option<(Accepted, Seat)> {
        let handed = match accepted.into_std() {
            Ok(handed) => handed,
            Err(err) => {
                tracing::warn!(%err, "cannot move a connection to another shard; dropped");
                return None;
            }
        };
        let shard = seat.shard;
        let (handed, _gone) = match self.inboxes[shard].send((handed, seat)) {
            Ok(()) => return None,
            Err(mpsc::error::SendError(back)) => back,
        };
        let accepted = handed.into_tokio().ok()?;
        Some((accepted, self.seat_on(here)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_connections_go_to_the_shard_with_fewest_once_counts_are_uneven() {
        let (balance, _inboxes) = Balance::new(2);
        let first = balance.seat(0);
        let second = balance.seat(0);
        assert_eq!((first.shard, second.shard), (0, 0), "within one: stays");
        let third = balance.seat(0);
        assert_eq!(third.shard, 1, "two more than shard 1: handed over");
        let fourth = balance.seat(0);
        assert_eq!(fourth.shard, 0);
        drop((first, second));
        let fifth = balance.seat(1);
        assert_eq!(fifth.shard, 1, "shard 0 had 1, shard 1 had 1");
        let sixth = balance.seat(1);
        assert_eq!(sixth.shard, 1);
        assert_eq!(balance.seat(1).shard, 0, "now shard 1 is two ahead");
        drop((third, fourth, fifth, sixth));
        assert_eq!(balance.seat(1).shard, 1, "every seat given back");
    }
}
