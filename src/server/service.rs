//! Running under a service manager (systemd, or anything speaking its
//! protocols): the listening socket handed over by socket activation, and
//! the notify protocol (`READY=1`, `STATUS=`, `STOPPING=1`, `WATCHDOG=1`).
//!
//! Outside a service manager nothing here does anything: no `LISTEN_FDS`
//! means the daemon binds its own socket, no `NOTIFY_SOCKET` means every
//! notification is skipped. `server::run` asks for the inherited socket
//! first thing, and `server::serve` drives the [`Notifier`].

use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use sd_notify::NotifyState;
use switchboard_actors::system::Shard;

use super::routes::health;

/// How often `STATUS=` is refreshed without a watchdog: often enough that
/// `systemctl status` is current when someone looks, rare enough to cost
/// nothing (one small message to each shard).
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// The listening socket passed by socket activation (`LISTEN_FDS=1`, fd 3,
/// `LISTEN_PID` naming this process), if there is one. Call it before any
/// thread starts: it removes the variables so no child inherits them.
pub fn inherited_socket() -> anyhow::Result<Option<UnixListener>> {
    let mut fds = listenfd::ListenFd::from_env();
    match fds.len() {
        0 => return Ok(None),
        1 => {}
        n => bail!(
            "the service manager passed {n} sockets (LISTEN_FDS={n}); switchboard takes exactly one"
        ),
    }
    let listener = fds
        .take_unix_listener(0)
        .context("the socket passed by the service manager (fd 3) is not a Unix stream socket")?
        .context("the socket passed by the service manager (fd 3) was already taken")?;
    listener.set_nonblocking(true)?;
    Ok(Some(listener))
}

/// Tells the service manager what the daemon is doing. Every call is a
/// no-op when the daemon was not started with `NOTIFY_SOCKET`.
#[derive(Clone, Copy, Debug)]
pub struct Notifier {
    /// Whether there is a service manager to tell.
    enabled: bool,
    /// `WATCHDOG_USEC`: the manager restarts the daemon when no
    /// `WATCHDOG=1` arrives within it.
    watchdog: Option<Duration>,
}

impl Notifier {
    /// What the environment asks for.
    pub fn from_env() -> Self {
        Self {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
            watchdog: sd_notify::watchdog_enabled(),
        }
    }

    /// The daemon serves: its listener is open and every shard accepts.
    pub fn ready(&self) {
        self.send(&[NotifyState::Ready]);
    }

    /// A reload begins (`READY=1` follows when it is over, whatever its
    /// outcome). systemd requires the monotonic time beside `RELOADING=1`.
    pub fn reloading(&self) {
        if !self.enabled {
            return;
        }
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(err) => tracing::warn!(%err, "cannot read the monotonic clock for RELOADING=1"),
        }
    }

    /// A drain began.
    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("draining")]);
    }

    /// Keeps `STATUS=` current and, when a watchdog is asked for, pings it at
    /// half its interval — only after every shard's supervisor has answered,
    /// so a wedged shard stops the pings and the manager restarts the daemon.
    /// Runs on the actor system's own thread until the daemon stops.
    pub async fn heartbeat(self, shards: Arc<[Shard]>) {
        if !self.enabled {
            return;
        }
        let every = self
            .watchdog
            .map_or(STATUS_EVERY, |w| (w / 2).min(STATUS_EVERY));
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let asked = tokio::time::timeout(every, health::status_of(&shards)).await;
            let Ok(Some(status)) = asked else {
                tracing::warn!(
                    "a shard did not answer within {every:?}; the watchdog is not pinged"
                );
                continue;
            };
            let line = format!(
                "{} live, {} queued{}",
                status.live,
                status.queued,
                if status.draining { ", draining" } else { "" }
            );
            let mut states = vec![NotifyState::Status(&line)];
            if self.watchdog.is_some() {
                states.push(NotifyState::Watchdog);
            }
            self.send(&states);
        }
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        if let Err(err) = sd_notify::notify(states) {
            tracing::warn!(%err, "cannot notify the service manager");
        }
    }
}
