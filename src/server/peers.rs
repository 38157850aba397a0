//! Who may use the daemon: the calling process's uid, read once per
//! connection with SO_PEERCRED, against the daemon's own uid and
//! `[server] allowed_uids`. The socket file's mode is the first gate; this is
//! the second, for sockets opened wider than 0600.

use std::any::Any;
use std::sync::Arc;

use actix_web::dev::Extensions;
use switchboard_actors::GatewayError;
use switchboard_actors::meta::Peer;

/// The uids allowed to connect.
#[derive(Clone, Debug)]
pub struct PeerPolicy {
    /// The daemon's own uid and the configured ones.
    allowed: Arc<[u32]>,
}

/// Stored in a connection's extensions when its peer may not use the daemon.
#[derive(Clone, Copy, Debug)]
pub struct Refused;

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
    pub fn allows(&self, peer: Option<Peer>) -> bool {
        peer.is_some_and(|peer| self.allowed.contains(&peer.uid))
    }

    /// Reads a new connection's peer credentials, keeps them for phase events
    /// and admin answers, and marks (and logs, once) a peer that is refused.
    pub fn on_connect(&self, connection: &dyn Any, extensions: &mut Extensions) {
        let peer = connection
            .downcast_ref::<tokio::net::UnixStream>()
            .and_then(|stream| stream.peer_cred().ok())
            .map(|credentials| Peer {
                uid: credentials.uid(),
                pid: credentials.pid(),
            });
        if let Some(peer) = peer {
            extensions.insert(peer);
        }
        if !self.allows(peer) {
            let (uid, pid) = (peer.map(|p| p.uid), peer.and_then(|p| p.pid));
            tracing::warn!(
                ?uid,
                ?pid,
                "refusing a connection from a user that is not allowed (server.allowed_uids)"
            );
            extensions.insert(Refused);
        }
    }
}

/// The error a refused peer gets.
pub fn forbidden() -> GatewayError {
    GatewayError::Forbidden(
        "this user may not use the daemon: connect as the daemon's user or one in server.allowed_uids"
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_own_and_listed_uids_are_allowed() {
        let policy = PeerPolicy::new(1000, &[1001]);
        let peer = |uid| Some(Peer { uid, pid: Some(1) });
        assert!(policy.allows(peer(1000)));
        assert!(policy.allows(peer(1001)));
        assert!(!policy.allows(peer(0)));
        assert!(!policy.allows(peer(65534)));
        assert!(!policy.allows(None), "an unidentified peer is refused");
    }
}
