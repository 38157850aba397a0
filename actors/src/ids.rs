//! Identities of sessions and requests.
//!
//! A [`SessionId`] is made by the daemon for every chat request it receives
//! (UUID v7: time-ordered, carries nothing about the caller). A [`RequestId`]
//! is the caller's own correlation id when it sends a usable `x-request-id`,
//! otherwise one the daemon makes. Both travel on every phase event and in the
//! `x-session-id` / `x-request-id` answer headers.

use std::fmt;
use std::sync::Arc;

use uuid::Uuid;

/// The identity of one session: one chat request from arrival to answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(Uuid);

/// Hashes a [`SessionId`] by the random half of its UUID v7 as is: the
/// registries keyed by session id are on the hot path, the ids are made by
/// the daemon (never chosen by a caller), and 62 random bits need no mixing.
#[derive(Clone, Copy, Debug, Default)]
pub struct SessionIdHasher(u64);

impl std::hash::Hasher for SessionIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // A UUID hashes as its 16 bytes; the last 8 are the random ones.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }
}

/// A map keyed by session id, hashed with [`SessionIdHasher`].
pub type SessionMap<V> =
    std::collections::HashMap<SessionId, V, std::hash::BuildHasherDefault<SessionIdHasher>>;

impl SessionId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// Parses the hyphenated form the daemon hands out; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        Uuid::try_parse(text).ok().map(Self)
    }
}

impl Default for SessionId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_hyphenated().fmt(f)
    }
}

impl serde::Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The longest caller-supplied request id we keep; longer ones are replaced,
/// so a caller cannot make every phase event carry a large string.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// A correlation id for one request, shared cheaply by every event about it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// A fresh id, for callers that sent none.
    pub fn generate() -> Self {
        Self(Uuid::now_v7().as_hyphenated().to_string().into())
    }

    /// The caller's id if it is short and made of safe characters
    /// (letters, digits, `-_.:`), so it can go into logs and headers as is.
    pub fn from_client(text: &str) -> Option<Self> {
        let usable = !text.is_empty()
            && text.len() <= MAX_REQUEST_ID_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        usable.then(|| Self(text.into()))
    }

    /// An id read back from the history file, where only ids that were
    /// usable (or made by the daemon) were ever written.
    pub fn from_stored(text: &str) -> Self {
        Self(text.into())
    }

    /// The caller's id when usable, else a fresh one.
    pub fn from_client_or_generate(text: Option<&str>) -> Self {
        text.and_then(Self::from_client)
            .unwrap_or_else(Self::generate)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for RequestId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_round_trip_through_text() {
        let id = SessionId::new();
        assert_eq!(SessionId::parse(&id.to_string()), Some(id));
        assert_eq!(SessionId::parse("not-an-id"), None);
    }

    #[test]
    fn unsafe_request_ids_are_replaced() {
        assert_eq!(
            RequestId::from_client("abc-123:x.y_z").unwrap().as_str(),
            "abc-123:x.y_z"
        );
        assert!(RequestId::from_client("has space").is_none());
        assert!(RequestId::from_client("new\nline").is_none());
        assert!(RequestId::from_client(&"a".repeat(MAX_REQUEST_ID_LEN + 1)).is_none());
        assert_ne!(
            RequestId::from_client_or_generate(Some("bad id")).as_str(),
            "bad id"
        );
    }
}
