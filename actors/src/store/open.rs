//! Opening the history file: its directory (0700) and the file (0600) made
//! private before SQLite writes a byte, one daemon per file (a lock beside
//! it), the schema migrated, and sessions a crash left open marked
//! INTERRUPTED.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::schema::{MIGRATIONS, migrate};
use super::write::recover;
use crate::error::StoreError;

/// How long a statement waits for a lock another connection holds before
/// it gives up: long enough to ride out a checkpoint or a `sqlite3` user's
/// short transaction, short enough that the writer hands a stalled batch
/// back to the logger and tries again later rather than sitting on it.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// Page size of a new history file.
const PAGE_SIZE: u32 = 16_384;

/// The file, ready: migrated, recovered, and locked for this daemon.
#[derive(Debug)]
pub struct Prepared {
    /// The history file.
    pub path: PathBuf,
    /// Held for the daemon's life: ownership of the file.
    _lock: File,
    /// Sessions found open (a crash) and marked INTERRUPTED.
    pub interrupted: usize,
}

/// Makes the file ready for this daemon, or says why it cannot be used.
pub fn prepare(path: &Path) -> Result<Prepared, StoreError> {
    let io = |reason: std::io::Error, at: &Path| StoreError::Io {
        path: at.display().to_string(),
        reason: reason.to_string(),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io(e, dir))?;
    }
    let lock = claim(path)?;
    // Create the file owner-only before SQLite opens it (SQLite gives its
    // -wal and -shm files the same mode), and make an existing one so: it
    // may hold prompts, and it shows who used the daemon for what.
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io(e, path))?;
    refuse_newer(path)?;
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(|e| io(e, path))?;
    let mut conn = connect(path, false)?;
    migrate(&mut conn, MIGRATIONS)?;
    let interrupted = recover(&conn)?;
    Ok(Prepared {
        path: path.to_owned(),
        _lock: lock,
        interrupted,
    })
}

/// Refuses a file a newer daemon wrote before anything is changed in it
/// (not even its journal mode).
fn refuse_newer(path: &Path) -> Result<(), StoreError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let found: u32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let known = super::schema::current_version();
    match found > known {
        true => Err(StoreError::NewerSchema { found, known }),
        false => Ok(()),
    }
}

/// A connection with the daemon's settings: WAL (readers never wait for the
/// writer), `synchronous = NORMAL` (a commit survives the process dying; a
/// power cut may lose the last ones, never corrupt the file).
pub fn connect(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    if !read_only {
        let pages: i64 = conn.pragma_query_value(None, "page_count", |row| row.get(0))?;
        if pages == 0 {
            // A new file: settings that only take before the first page is
            // written. Bigger pages mean fewer WAL frames (one write each)
            // per batch: rows cost about a third less of the store's CPU
            // than with 4 KiB pages. Incremental auto-vacuum lets pruning
            // give pages back to the file system.
            conn.pragma_update(None, "page_size", PAGE_SIZE)?;
            conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        }
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
    }
    Ok(conn)
}

/// Takes `<path>.lock`, so two daemons never write (or recover) one file.
fn claim(path: &Path) -> Result<File, StoreError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|e| StoreError::Io {
            path: lock_path.display().to_string(),
            reason: e.to_string(),
        })?;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(StoreError::InUse {
            path: path.display().to_string(),
        });
    }
    Ok(lock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_gets_big_pages_and_incremental_vacuum() {
        let dir = std::env::temp_dir().join(format!("sb-open-{}", std::process::id()));
        let path = dir.join("history.db");
        let _ = fs::remove_dir_all(&dir);
        let prepared = prepare(&path).expect("prepares");
        let conn = connect(&path, true).expect("opens");
        let page: i64 = conn
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .unwrap();
        let vacuum: i64 = conn
            .pragma_query_value(None, "auto_vacuum", |r| r.get(0))
            .unwrap();
        assert_eq!((page, vacuum), (i64::from(PAGE_SIZE), 2));
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        drop(prepared);
        let _ = fs::remove_dir_all(&dir);
    }
}
