//! Where `switchboard mcp` logs: readable lines on stderr only (stdout is
//! the protocol), filtered by `RUST_LOG` (default `info`: one line per tool
//! call, naming the tool, the session and how it ended).
//!
//! Other crates' lines are capped no matter what `RUST_LOG` asks for: `rmcp`
//! logs whole requests and results at debug (the prompt and the answer) and
//! argument errors at warn (serde's messages quote the offending value), so
//! it gets only errors; HTTP crates get warnings. No prompt text, answer
//! text or key reaches this log.

use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterExt, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

/// Installs the global subscriber.
pub fn init() {
    let wanted = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let caps = Targets::new()
        .with_default(Level::WARN)
        .with_target("switchboard", Level::TRACE)
        .with_target("rmcp", Level::ERROR);
    let layer = fmt::layer()
        .compact()
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .with_filter(wanted.and(caps));
    // A second init (only in tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(layer).try_init();
}
