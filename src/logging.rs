//! Log output: `tracing` events to stderr, as JSON lines or readable text,
//! filtered by `RUST_LOG` (default `info`: one line per finished session plus
//! the daemon's own events; `debug` adds every phase).
//!
//! A finished session's `info` line is the daemon's access log, and under
//! load there is one per request: written on its own, each was a `write`
//! on the request's thread, about a tenth of a request's CPU with its
//! formatting. So those lines gather in one buffer and go out together
//! every [`FLUSH_EVERY`] (or at once when [`FLUSH_AT`] bytes are waiting),
//! as nginx's `access_log … buffer=` does. Everything else — warnings,
//! errors, the daemon's own events — is written as it happens, so a
//! session's line may follow a later event by up to [`FLUSH_EVERY`]. The
//! buffer is written out when the daemon exits ([`Flush`]).

use std::io::{self, Write};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// How long a finished session's line may wait to be written: short enough
/// that `tail -f` follows the traffic, long enough that a busy second is a
/// few writes rather than one per request.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// Waiting bytes that are written at once, by whoever adds the line that
/// crosses it (so the buffer stays bounded whatever the rate): 64 KiB, a
/// few hundred lines.
pub const FLUSH_AT: usize = 64 * 1024;

/// The module whose `info` lines are sessions' (see `lifecycle::trace`).
const SESSION_LINES: &str = "switchboard_actors::lifecycle::trace";

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, for journald, Loki and friends.
    Json,
    /// Human-readable lines.
    Pretty,
}

/// Session lines waiting to be written.
static WAITING: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Writes out the waiting session lines when dropped: held by `serve` for
/// the daemon's whole run.
#[must_use = "dropping it writes out the buffered log lines"]
pub struct Flush(());

impl Drop for Flush {
    fn drop(&mut self) {
        flush();
    }
}

/// Installs the global subscriber and starts the flusher.
pub fn init(format: LogFormat) -> Flush {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Writers);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Pretty => builder.compact().init(),
    }
    start_flusher();
    Flush(())
}

fn start_flusher() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("log-flush".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(FLUSH_EVERY);
                    flush();
                }
            });
        if let Err(err) = spawned {
            eprintln!(
                "switchboard: no log flusher ({err}); session lines are written as they come"
            );
        }
    });
}

/// Writes the waiting session lines to stderr.
fn flush() {
    let lines = std::mem::take(&mut *lock());
    if !lines.is_empty() {
        let _ = io::stderr().lock().write_all(&lines);
    }
}

fn lock() -> std::sync::MutexGuard<'static, Vec<u8>> {
    WAITING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Chooses each event's writer: the buffer for sessions' `info` lines,
/// stderr for the rest.
struct Writers;

/// Where one event's line goes.
enum Line {
    /// Straight to stderr.
    Now(io::Stderr),
    /// Into the buffer, written out within [`FLUSH_EVERY`].
    Batched,
}

impl<'a> MakeWriter<'a> for Writers {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line::Now(io::stderr())
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line {
        if *meta.level() == Level::INFO && meta.target() == SESSION_LINES {
            Line::Batched
        } else {
            Line::Now(io::stderr())
        }
    }
}

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Line::Now(stderr) => stderr.write(bytes),
            Line::Batched => {
                let full = {
                    let mut waiting = lock();
                    waiting.extend_from_slice(bytes);
                    waiting.len() >= FLUSH_AT
                };
                if full {
                    flush();
                }
                Ok(bytes.len())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Line::Now(stderr) => stderr.flush(),
            Line::Batched => Ok(()),
        }
    }
}
