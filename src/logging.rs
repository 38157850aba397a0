//! Log output: `tracing` events to stderr, as JSON lines or readable text,
//! filtered by `RUST_LOG` (default `info`: one line per finished session plus
//! the daemon's own events; `debug` adds every phase).

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, for journald, Loki and friends.
    Json,
    /// Human-readable lines.
    Pretty,
}

/// Installs the global subscriber.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Pretty => builder.compact().init(),
    }
}
