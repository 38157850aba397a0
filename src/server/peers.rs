//! Who may use the daemon: the calling process's uid, read once per
//! connection — with SO_PEERCRED on the Unix socket, from the kernel's
//! socket table on loopback TCP (see [`super::sockets`]) — against the
//! daemon's own uid and `[server] allowed_uids`. On the Unix socket the
//! file's mode is the first gate and this the second; on loopback TCP, which
//! every local user can reach, this is the only one.

use std::net::SocketAddr;
use std::sync::Arc;

use switchboard_actors::GatewayError;
use switchboard_actors::meta::Peer;

/// The uids allowed to connect.
#[derive(Clone, Debug)]
pub struct PeerPolicy {
    /// The daemon's own uid and the configured ones.
    allowed: Arc<[u32]>,
}

/// Who is on the other end of a connection, and what it may do.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The peer, when the socket could tell.
    pub peer: Option<Peer>,
    /// What it may reach.
    pub access: Access,
}

/// What a connection may reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Everything: an allowed user on the Unix socket.
    Full,
    /// Everything but requests from web pages: an allowed user over
    /// loopback TCP (`server.listen_tcp`). A page in that user's browser
    /// can reach the port too, and its requests carry `Origin`; those get
    /// 403, so no web site can spend the user's quota.
    Loopback,
    /// Nothing: a user that may not use the daemon (403 on every route).
    Refused,
    /// `GET /metrics` alone: the loopback metrics listener
    /// (`server.metrics_listen`), reachable by anyone on the machine.
    MetricsOnly,
}

impl PeerPolicy {
    /// Allows `own` and `others`.
    pub fn new(own: u32, others: &[u32]) -> Self {
        let mut allowed = vec![own];
        allowed.extend_from_slice(others);
        Self {
            allowed: allowed.into(),
        }
    }

    /// Whether `peer` may use the daemon. A peer whose credentials could not
    /// be read may not.
    pub fn allows(&self, peer: Option<&Peer>) -> bool {
        peer.is_some_and(|peer| self.allowed.contains(&peer.uid))
    }

    /// Reads a new connection's peer credentials (and the process name),
    /// keeps them for phase events and admin answers, and logs (once per
    /// connection) a peer that is refused.
    pub fn identify(&self, stream: &tokio::net::UnixStream) -> Caller {
        let peer = stream.peer_cred().ok().map(|credentials| Peer {
            uid: credentials.uid(),
            pid: credentials.pid(),
            process: credentials.pid().and_then(process_name),
        });
        self.admit(peer, Access::Full)
    }

    /// Identifies a loopback TCP connection from `peer` to our `ours` by
    /// the owner of the client's socket, read from the kernel's table on a
    /// blocking thread (it reads files): once per connection, before its
    /// first request is read. A peer whose owner cannot be found is refused.
    pub async fn identify_tcp(&self, peer: SocketAddr, ours: SocketAddr) -> Caller {
        let found = tokio::task::spawn_blocking(move || tcp_peer(peer, ours))
            .await
            .ok()
            .flatten();
        if found.is_none() {
            tracing::warn!(%peer, "cannot tell which user owns a loopback TCP connection");
        }
        self.admit(found, Access::Loopback)
    }

    /// `granted` for an allowed `peer`, else `Refused` (logged).
    fn admit(&self, peer: Option<Peer>, granted: Access) -> Caller {
        let access = match self.allows(peer.as_ref()) {
            true => granted,
            false => {
                let uid = peer.as_ref().map(|p| p.uid);
                let pid = peer.as_ref().and_then(|p| p.pid);
                tracing::warn!(
                    ?uid,
                    ?pid,
                    "refusing a connection from a user that is not allowed (server.allowed_uids)"
                );
                Access::Refused
            }
        };
        Caller { peer, access }
    }
}

/// The user, process and process name behind a loopback TCP peer.
fn tcp_peer(peer: SocketAddr, ours: SocketAddr) -> Option<Peer> {
    let owner = super::sockets::owner(peer, ours)?;
    let pid = super::sockets::process_of(owner);
    Some(Peer {
        uid: owner.uid,
        pid,
        process: pid.and_then(process_name),
    })
}

/// The longest process name kept; the kernel's `comm` is at most 15 bytes,
/// this only guards against an unexpected `/proc`.
const MAX_PROCESS_NAME: usize = 64;

/// The process's name as the kernel keeps it (`/proc/<pid>/comm`), read once
/// per connection so history can say which program spent what even after
/// the process has exited. `None` when it cannot be read (the process is
/// already gone, or `/proc` is not mounted).
fn process_name(pid: i32) -> Option<std::sync::Arc<str>> {
    let comm = std::fs::read(format!("/proc/{pid}/comm")).ok()?;
    let text = String::from_utf8_lossy(&comm);
    let name: String = text
        .trim_end_matches('\n')
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_PROCESS_NAME)
        .collect();
    (!name.is_empty()).then(|| name.into())
}

/// The error a refused peer gets.
pub fn forbidden() -> GatewayError {
    GatewayError::Forbidden(
        "this user may not use the daemon: connect as the daemon's user or one in server.allowed_uids"
            .into(),
    )
}

/// The error a request from a web page over loopback TCP gets.
pub fn from_a_browser() -> GatewayError {
    GatewayError::Forbidden(
        "requests from web pages (with an Origin header) are refused on server.listen_tcp".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_own_and_listed_uids_are_allowed() {
        let policy = PeerPolicy::new(1000, &[1001]);
        let peer = |uid| Peer {
            uid,
            pid: Some(1),
            process: None,
        };
        assert!(policy.allows(Some(&peer(1000))));
        assert!(policy.allows(Some(&peer(1001))));
        assert!(!policy.allows(Some(&peer(0))));
        assert!(!policy.allows(Some(&peer(65534))));
        assert!(!policy.allows(None), "an unidentified peer is refused");
    }

    #[test]
    fn a_process_is_named_by_its_comm() {
        let own = i32::try_from(std::process::id()).expect("pid fits");
        let name = process_name(own).expect("our own /proc/<pid>/comm is readable");
        assert!(!name.is_empty() && !name.contains('\n'), "{name:?}");
        assert_eq!(process_name(i32::MAX), None);
    }
}
