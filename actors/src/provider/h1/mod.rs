//! The daemon's own HTTP/1.1 client, for providers reached over plain
//! `http://` (local servers such as vLLM, llama.cpp or Ollama, and the
//! benchmark's fake): a pool of keep-alive connections that the *session's*
//! future drives itself.
//!
//! hyper's client gives every connection a task of its own and a request
//! channel to it, so a call crossed two more task wake-ups per direction,
//! and each pooled connection held a 9 KiB channel block and two 8 KiB
//! buffers whether it was busy or waiting on a slow provider. Here a call
//! writes its request and reads its answer on the session's own task; a
//! connection holds no buffer while it waits for an answer, and reads into
//! one only once the answer is there (see README, Performance). `https://`
//! and HTTP/2 providers still go through hyper (see [`super::client`]).
//!
//! Dropping a call (its session ended) drops its connection, which closes
//! it: the provider sees the request aborted, as before. A connection goes
//! back to the pool only once its answer has been read to the end.

mod body;
mod conn;
pub mod decode;
pub mod head;
mod pool;
#[cfg(test)]
mod tests;

pub use body::Body;
pub use pool::{IDLE_TIMEOUT, Pool};

/// A body that could not be read to its end, in the daemon's words (hyper's
/// client's failures are told the same way).
pub const BROKE_READING: &str = "the connection broke while reading the answer";

/// Why a call on the daemon's own client failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The connection could not be made.
    Connect,
    /// Connecting took longer than the connect timeout.
    ConnectTimeout,
    /// The connection broke while the request was written.
    Send,
    /// The connection closed before any byte of the answer.
    Closed,
    /// The answer's head was not HTTP/1.1 as it should be.
    Protocol(&'static str),
}
