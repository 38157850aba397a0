//! The daemon's Unix socket: claimed safely, created with the right mode,
//! removed on exit.
//!
//! A lock file beside the socket (`<socket>.lock`, held with `flock` for the
//! daemon's life) decides who owns the path, so two daemons starting at once
//! cannot both take it. With the lock held, a socket file left by a dead
//! daemon is replaced; a path where something still answers is never taken.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use socket2::{Domain, SockAddr, Socket, Type};

/// Requested listen backlog; the kernel caps it at `net.core.somaxconn`
/// (4096 here), so a burst of connects is queued rather than refused.
const LISTEN_BACKLOG: i32 = 65_535;

/// A bound, listening socket this daemon owns.
pub struct OwnedSocket {
    /// Where it is.
    path: PathBuf,
    /// The listener, until handed to the HTTP server.
    listener: Option<UnixListener>,
    /// Held for the daemon's life: ownership of `path`.
    _lock: File,
}

impl OwnedSocket {
    /// Claims `path`, binds it with `mode` and listens.
    pub fn bind(path: &Path, mode: u32) -> anyhow::Result<Self> {
        let lock = claim(path)?;
        remove_stale(path)?;
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        let address = SockAddr::unix(path)?;
        // The file appears with the umask's mode; create it owner-only so no
        // one can connect in the moment before it gets its configured mode.
        // SAFETY: umask only swaps the process's mask; nothing else runs yet.
        let old_mask = unsafe { libc::umask(0o177) };
        let bound = socket.bind(&address);
        // SAFETY: as above, restoring the previous mask.
        unsafe { libc::umask(old_mask) };
        bound.with_context(|| format!("cannot bind {}", path.display()))?;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set mode {mode:o} on {}", path.display()))?;
        socket.listen(LISTEN_BACKLOG)?;
        socket.set_nonblocking(true)?;
        Ok(Self {
            path: path.to_owned(),
            listener: Some(socket.into()),
            _lock: lock,
        })
    }

    /// The listener, for the HTTP server (once).
    pub fn take_listener(&mut self) -> Option<UnixListener> {
        self.listener.take()
    }
}

impl Drop for OwnedSocket {
    fn drop(&mut self) {
        // The lock file stays: deleting it would let a third daemon lock a new
        // file while a second holds the old one.
        if let Err(err) = fs::remove_file(&self.path)
            && err.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), %err, "cannot remove the socket file");
        }
    }
}

/// Takes the lock that makes this daemon the owner of `path`.
fn claim(path: &Path) -> anyhow::Result<File> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open the lock file {}", lock_path.display()))?;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    let locked = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if locked != 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock {
            bail!(
                "another switchboard daemon is serving {} (it holds {}); stop it first or choose another socket",
                path.display(),
                lock_path.display()
            );
        }
        return Err(err).with_context(|| format!("cannot lock {}", lock_path.display()));
    }
    Ok(lock)
}

/// Removes a socket file nobody answers on; refuses to touch anything else.
fn remove_stale(path: &Path) -> anyhow::Result<()> {
    let metadata = match fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err).with_context(|| format!("cannot inspect {}", path.display())),
    };
    if !metadata.file_type().is_socket() {
        bail!(
            "{} exists and is not a socket; refusing to replace it",
            path.display()
        );
    }
    match UnixStream::connect(path) {
        Ok(_) => bail!(
            "something is already listening on {}; refusing to take its socket",
            path.display()
        ),
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "replacing a stale socket left by a dead daemon");
            fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))
        }
        Err(err) => Err(err).with_context(|| format!("cannot check {}", path.display())),
    }
}

/// Raises the soft open-file limit to the hard one: every client connection
/// and every provider connection is a descriptor, and 10,000 concurrent
/// sessions need more than the usual soft limit of 1,024.
pub fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit read and write the struct we pass; nothing else.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                tracing::warn!("cannot raise the open-file limit");
            }
        }
    }
}
