//! The store: the SQLite history file, on a `SyncArbiter` so no query or
//! write ever runs on the async threads that serve requests.
//!
//! Two arbiters run [`Store`]: one thread that writes (the lifecycle
//! logger's [`WriteBatch`]es and [`Prune`]), and two read-only ones for the
//! admin queries ([`History`], [`Stored`], [`UsageTotals`]). With the file in
//! WAL mode, readers never wait for the writer, and a writer stalled by a
//! lock another process holds never delays a query. The file is made ready
//! (directories, mode, migrations, crash recovery) by [`prepare`] before any
//! of this starts.

mod open;
mod query;
mod rows;
mod schema;
mod write;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use rusqlite::Connection;

use crate::error::StoreError;
use crate::ids::SessionId;
use crate::metrics::Metrics;
use crate::record::SessionRecord;
use crate::settings::{HistorySettings, Prices};

pub use open::{Prepared, prepare};
pub use query::{HistoryFilter, HistoryPage, UsageBy, UsageRow};
pub use schema::current_version as schema_version;
pub use write::Pruned;

/// Writes session rows in one transaction. When the file is locked by
/// someone else the batch comes back, to be tried again later.
#[derive(Message)]
#[rtype(result = "Result<(), WriteFailed>")]
pub struct WriteBatch(pub Vec<Arc<SessionRecord>>);

/// A batch that could not be written, and why.
#[derive(Debug)]
pub struct WriteFailed {
    /// The rows, untouched.
    pub batch: Vec<Arc<SessionRecord>>,
    /// What went wrong, logged once per interval rather than per batch.
    pub error: StoreError,
}

/// Deletes one chunk of sessions past their retention; answers whether
/// more are due.
#[derive(Message)]
#[rtype(result = "Result<Pruned, StoreError>")]
pub struct Prune;

/// A page of finished sessions.
#[derive(Message)]
#[rtype(result = "Result<HistoryPage, StoreError>")]
pub struct History(pub HistoryFilter);

/// One stored session with its phases.
#[derive(Message)]
#[rtype(result = "Result<Option<SessionRecord>, StoreError>")]
pub struct Stored(pub SessionId);

/// Usage totals over a time range.
#[derive(Message)]
#[rtype(result = "Result<Vec<UsageRow>, StoreError>")]
pub struct UsageTotals {
    /// What to add up by.
    pub by: UsageBy,
    /// Sessions received at or after.
    pub since: Option<SystemTime>,
    /// Sessions received before.
    pub until: Option<SystemTime>,
    /// Prices for `cost`.
    pub prices: Arc<Prices>,
}

/// The lower bound of session ids made at `ms` (Unix milliseconds) or
/// later: a UUID v7's text begins with its 48-bit millisecond timestamp in
/// fixed-width lowercase hex, so ids compare as their arrival times do.
pub(crate) fn id_bound(ms: u64) -> String {
    format!("{:08x}-{:04x}-", (ms >> 16) & 0xffff_ffff, ms & 0xffff)
}

/// The writer thread's nice value. Writing history is never urgent (a
/// batch may wait; the buffer is bounded and drops are counted), while the
/// threads that serve requests are: on a machine whose cores are all busy,
/// the scheduler should give the store only what the request path leaves
/// over. At 10 it still gets about a tenth of a contended core, more than
/// the few percent a busy daemon's rows need (about 5 µs each).
const WRITER_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority (Linux: per thread).
fn lower_this_threads_priority(nice: i32) {
    // SAFETY: gettid and setpriority only read and set this thread's
    // scheduling attributes.
    let failed = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) != 0
    };
    if failed {
        tracing::debug!("cannot lower the history writer's priority");
    }
}

/// New retention from a reload (`history.retention_days`,
/// `history.max_sessions`), for the writer's next prune.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Retain {
    /// How old a session may get.
    pub retention: Duration,
    /// Sessions kept at most.
    pub max_sessions: u64,
}

impl Retain {
    /// The retention `settings` ask for.
    pub fn of(settings: &HistorySettings) -> Self {
        Self {
            retention: Duration::from_secs(u64::from(settings.retention_days) * 86_400),
            max_sessions: settings.max_sessions,
        }
    }
}

/// One connection to the history file.
pub struct Store {
    /// The connection, or why it could not be opened (every message then
    /// answers that).
    conn: Result<Connection, String>,
    /// The file, for logs.
    path: PathBuf,
    /// `history.retention_days`, as a duration.
    retention: Duration,
    /// `history.max_sessions`.
    max_sessions: u64,
    /// Where write timings go (the writer only).
    metrics: Option<Arc<Metrics>>,
}

impl Store {
    /// The writer, on a file [`prepare`] made ready. Called on the writer's
    /// own thread, which it lowers to [`WRITER_NICE`].
    pub fn writer(settings: &HistorySettings, path: &Path, metrics: Option<Arc<Metrics>>) -> Self {
        lower_this_threads_priority(WRITER_NICE);
        Self::new(settings, path, false, metrics)
    }

    /// A reader.
    pub fn reader(settings: &HistorySettings, path: &Path) -> Self {
        Self::new(settings, path, true, None)
    }

    fn new(
        settings: &HistorySettings,
        path: &Path,
        read_only: bool,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        let conn = open::connect(path, read_only).map_err(|e| e.to_string());
        if let Err(reason) = &conn {
            tracing::error!(path = %path.display(), reason, "cannot open the history file");
        }
        Self {
            conn,
            path: path.to_owned(),
            retention: Retain::of(settings).retention,
            max_sessions: settings.max_sessions,
            metrics,
        }
    }

    fn conn(&mut self) -> Result<&mut Connection, StoreError> {
        self.conn.as_mut().map_err(|reason| StoreError::Io {
            path: self.path.display().to_string(),
            reason: reason.clone(),
        })
    }
}

impl Actor for Store {
    type Context = SyncContext<Self>;
}

impl Handler<WriteBatch> for Store {
    type Result = Result<(), WriteFailed>;

    fn handle(&mut self, WriteBatch(batch): WriteBatch, _: &mut Self::Context) -> Self::Result {
        let started = Instant::now();
        let written = self
            .conn()
            .and_then(|conn| write::write_batch(conn, &batch));
        if let Some(metrics) = &self.metrics {
            metrics
                .history_write
                .observe(started.elapsed().as_secs_f64());
        }
        written.map_err(|error| WriteFailed { batch, error })
    }
}

impl Handler<Retain> for Store {
    type Result = ();

    fn handle(&mut self, retain: Retain, _: &mut Self::Context) {
        self.retention = retain.retention;
        self.max_sessions = retain.max_sessions;
    }
}

impl Handler<Prune> for Store {
    type Result = Result<Pruned, StoreError>;

    fn handle(&mut self, _: Prune, _: &mut Self::Context) -> Self::Result {
        let (retention, max) = (self.retention, self.max_sessions);
        let pruned = write::prune(self.conn()?, retention, max, SystemTime::now())?;
        if pruned.removed > 0 {
            tracing::info!(removed = pruned.removed, "history pruned");
        }
        Ok(pruned)
    }
}

impl Handler<History> for Store {
    type Result = Result<HistoryPage, StoreError>;

    fn handle(&mut self, History(filter): History, _: &mut Self::Context) -> Self::Result {
        query::history(self.conn()?, &filter)
    }
}

impl Handler<Stored> for Store {
    type Result = Result<Option<SessionRecord>, StoreError>;

    fn handle(&mut self, Stored(id): Stored, _: &mut Self::Context) -> Self::Result {
        query::session(self.conn()?, id)
    }
}

impl Handler<UsageTotals> for Store {
    type Result = Result<Vec<UsageRow>, StoreError>;

    fn handle(&mut self, ask: UsageTotals, _: &mut Self::Context) -> Self::Result {
        query::usage(self.conn()?, ask.by, ask.since, ask.until, &ask.prices)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SessionId;

    #[test]
    fn id_bounds_order_like_the_ids_they_bound() {
        let id = SessionId::new().to_string();
        let now = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis() as u64;
        assert!(id_bound(now - 1) < id, "{} < {id}", id_bound(now - 1));
        assert!(id_bound(now + 1) > id, "{} > {id}", id_bound(now + 1));
    }
}
