//! Switchboard's actor system. It knows nothing of HTTP serving: the daemon
//! (the `switchboard` crate) turns HTTP into the messages declared here and
//! the answers back into HTTP.
//!
//! # Layout
//!
//! Actors, one file each, with the messages they take declared at the top:
//! - [`supervisor`]: admission (limits, the priority queue, rate limits),
//!   routing and fallbacks, the registry of live sessions.
//! - [`session`]: one request from allocation to answer; owns its deadline.
//! - [`provider`]: one per configured provider; makes calls that sessions
//!   run, with retries; keeps the provider's health.
//! - [`lifecycle`]: records every phase; keeps bounded timelines, counts
//!   sessions, batches history writes, feeds live event readers.
//! - [`store`]: the SQLite history file, on a `SyncArbiter`.
//! - [`shutdown`]: the drain protocol, on signals or request.
//!
//! Plain types they share:
//! - [`ids`], [`meta`], [`phase`]: who a session is and where it is.
//! - [`request`]: the caller's JSON, read just enough to route it;
//!   [`wire`]: which API it came in on.
//! - [`answer`]: what a session sends back, and the client-gone signal.
//! - [`outcome`], [`record`], [`usage`], [`transcript`]: how a session
//!   ended, what history keeps of it, the tokens it used, its text (opt-in).
//! - [`metrics`]: the Prometheus registry.
//! - [`error`]: everything that can go wrong, HTTP-free.
//! - [`settings`]: plain settings structs.
//! - [`system`]: starts all of the above together.

pub mod admission;
pub mod answer;
pub mod body;
pub mod error;
pub mod ids;
pub mod lifecycle;
pub mod meta;
pub mod metrics;
pub mod outcome;
pub mod phase;
pub mod provider;
pub mod record;
pub mod reload;
pub mod request;
pub mod session;
pub mod settings;
pub mod shutdown;
pub mod store;
pub mod supervisor;
pub mod system;
pub mod transcript;
pub mod usage;
pub mod wire;

pub use error::{CancelReason, GatewayError, StoreError};
pub use system::ActorSystem;
