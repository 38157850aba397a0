//! The service manager's side of the notify protocol, for tests: a datagram
//! socket bound where `NOTIFY_SOCKET` points, and a reader of what arrives.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long a test waits for one notification: generous for a loaded machine.
const WAIT: Duration = Duration::from_secs(20);

/// A bound notify socket in its own temp dir.
pub struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl NotifySocket {
    /// Binds a fresh notify socket.
    pub fn bind() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("binding the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("a read timeout");
        Self {
            socket,
            path,
            _dir: dir,
        }
    }

    /// The value for the daemon's `NOTIFY_SOCKET`.
    pub fn env_value(&self) -> String {
        self.path.to_str().expect("UTF-8 path").to_owned()
    }

    /// Reads datagrams until one satisfies `want`, returning everything
    /// read; panics naming `what` after [`WAIT`].
    pub fn read_until(&self, what: &str, mut want: impl FnMut(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            match self.socket.recv(&mut buf) {
                Ok(n) => {
                    let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let done = want(&message);
                    seen.push(message);
                    if done {
                        return seen;
                    }
                }
                Err(err)
                    if matches!(
                        err.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(err) => panic!("reading the notify socket: {err}"),
            }
        }
        panic!("timed out waiting for {what}; saw {seen:?}");
    }
}
