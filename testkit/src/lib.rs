//! Test and benchmark support for Switchboard.
//!
//! Used by the root package's integration tests and by the load benchmark:
//! - [`FakeProvider`]: an OpenAI-compatible chat-completions server on
//!   loopback (also serving embeddings, and Anthropic's Messages API at
//!   [`FakeProvider::anthropic_base_url`]) that misbehaves on demand
//!   ([`Behavior`]), including failing a
//!   few times before succeeding, the way OpenAI, Kimi and GLM fail, with
//!   counters of requests, connections and abandoned responses, and token
//!   usage in each provider's shape ([`UsageShape`]) with totals of what it
//!   reported ([`UsageTotals`]);
//! - [`Daemon`] / [`DaemonBuilder`]: starts the real `switchboard` binary on a
//!   temporary socket with a generated settings file;
//! - [`client`]: raw Unix-socket HTTP helpers and an SSE reader, for tests
//!   that must drop a connection at a precise moment or read events one by one;
//! - [`FakeProxy`]: a forward HTTP proxy on loopback (whole-URL requests
//!   and `CONNECT` tunnels) that records what went through it;
//! - [`metrics`]: a strict Prometheus / OpenMetrics text parser ([`Scrape`])
//!   to query the daemon's metrics by name and labels;
//! - [`wait`]: [`eventually`] / [`eventually_debug`], polling until an
//!   effect shows up, with a panic naming what never did.
//!
//! ```no_run
//! # async fn demo() {
//! use std::time::Duration;
//! use switchboard_testkit::{Daemon, FakeProvider};
//!
//! let fake = FakeProvider::start().await;
//! let daemon = Daemon::builder("target/debug/switchboard")
//!     .provider("fake", &fake.base_url())
//!     .provider_toml("fake", "timeout_ms = 500")
//!     .env("FAKE_API_KEY", "sk-test-secret")
//!     .start()
//!     .await;
//! let resp = daemon
//!     .client()
//!     .post(daemon.url("/v1/chat/completions"))
//!     .body(r#"{"model":"fake/delay-1000","messages":[]}"#)
//!     .send()
//!     .await
//!     .expect("request to the daemon");
//! assert!(fake.wait_until("one upstream call", Duration::from_secs(1), |f| f.request_count() == 1).await);
//! # drop(resp);
//! # }
//! ```

#![warn(missing_docs)]

mod anthropic;
mod behavior;
mod big_event;
pub mod client;
mod daemon;
mod failures;
mod fake_provider;
mod handler;
mod launch;
pub mod metrics;
mod proxy;
mod responses;
mod settings;
mod stats;
mod usage;
pub mod wait;

pub use behavior::{Behavior, ParseBehaviorError};
pub use big_event::big_event_content;
pub use client::{SseReader, raw_post, raw_request, read_head};
pub use daemon::Daemon;
pub use failures::{KimiError, RetryAfter};
pub use fake_provider::{FakeProvider, SeenRequest};
pub use handler::BEHAVIOR_HEADER;
pub use launch::DaemonBuilder;
pub use metrics::{Labels, Sample, Scrape};
pub use proxy::{FakeProxy, Proxied};
pub use usage::{USAGE_HEADER, UsageShape, UsageTotals};
pub use wait::{eventually, eventually_debug};

/// Locks a mutex, ignoring poisoning: a test that panicked while holding it
/// must not turn every later observation into a second, misleading panic.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
