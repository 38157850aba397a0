//! The daemon: the socket, the HTTP server on it, and the actor system behind it.
//!
//! `run` claims the socket, makes the history file ready, starts what every
//! shard shares, then `server.workers` shards: each is a thread (an actix
//! arbiter) running a supervisor, a logger, provider actors, and its own
//! accept loop on the shared listener, so a request is served — handler,
//! supervisor, session, provider call, answer — on the thread that serves
//! its connection, never crossing to another (a connection changes thread
//! at most once, when accepted, to keep the shards' counts even: see
//! [`balance`]). HTTP is hyper's HTTP/1.1
//! server, straight on the Unix listener (see [`listen`]). When the shutdown
//! actor reports the drain done, the shards stop accepting, their last
//! answers are written, and `run` removes the socket and returns.
//!
//! Under socket activation the socket is the service manager's (see
//! [`service`]): the daemon serves it, never removes it, and drains by
//! handing over — it stops accepting when the drain begins, so connections
//! that arrive meanwhile wait in the backlog for the next process.

mod arrivals;
mod balance;
mod body;
mod clock;
mod error;
mod http;
mod ids;
mod listen;
mod peers;
mod reload;
mod routes;
mod service;
mod socket;
mod sockets;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix::{Addr, Arbiter};
use anyhow::Context as _;
use bytes::Bytes;
use switchboard_actors::ActorSystem;
use switchboard_actors::settings::ActorSettings;
use switchboard_actors::shutdown::{DrainHooks, Shutdown};
use switchboard_actors::supervisor::DrainMode;
use switchboard_actors::system::{Checked, Common, Shard};
use tokio::sync::{oneshot, watch};

use crate::settings::Settings;
pub use peers::Caller;
use peers::PeerPolicy;
pub use reload::Source;
use socket::OwnedSocket;

/// After the drain, how long open connections get to finish writing their
/// last answers. Every session has ended by then, so this is only bytes on
/// a local socket.
const FINAL_WRITE_GRACE: Duration = Duration::from_secs(2);

/// What every handler of one shard can reach.
pub struct Ctx {
    /// The actors: this shard's, every shard's, and what they share.
    actors: ActorSystem,
    /// The daemon's fixed answers and limits.
    app: Arc<App>,
    /// This shard's requests whose body is still arriving.
    arrivals: Arc<arrivals::Arrivals>,
}

/// What the HTTP layer is configured with, the same for every shard.
pub struct App {
    /// `GET /v1/models`, encoded once per settings (a reload replaces it).
    models: Arc<RwLock<Bytes>>,
    /// `POST /admin/reload` (SIGHUP reaches it too).
    reloader: Arc<reload::Reloader>,
    /// `server.max_body_bytes`.
    max_body_bytes: usize,
    /// `sessions.metadata_max_bytes`.
    metadata_max_bytes: usize,
    /// Who may connect.
    policy: PeerPolicy,
    /// How long connections may stay idle or take to send a request.
    timeouts: listen::Timeouts,
    /// Every shard's requests whose body is still arriving, for admin answers.
    arrivals: Vec<Arc<arrivals::Arrivals>>,
    /// Every shard's open connections, for `/healthz`.
    balance: Arc<balance::Balance>,
}

/// The listeners the shards share.
struct Listeners {
    /// The Unix socket: the whole API.
    socket: std::os::unix::net::UnixListener,
    /// `server.listen_tcp`: the whole API on loopback TCP.
    tcp: Option<std::net::TcpListener>,
    /// `server.metrics_listen`: `GET /metrics` alone.
    metrics: Option<std::net::TcpListener>,
}

/// Where the daemon's socket came from: who removes its file, and how a
/// drain treats requests that still arrive.
enum Origin {
    /// Bound by this daemon; dropping it at exit removes the file.
    Owned { _socket: OwnedSocket },
    /// Passed by the service manager, which owns the file.
    Inherited,
}

impl Origin {
    fn drain_mode(&self) -> DrainMode {
        match self {
            Origin::Owned { .. } => DrainMode::Refuse,
            Origin::Inherited => DrainMode::Handover,
        }
    }
}

/// Runs the daemon until it has drained, with `settings` loaded from
/// `source` (which reloads read again). Returns an error only if it could
/// not start.
pub fn run(settings: Settings, source: Source) -> anyhow::Result<()> {
    // First: it reads and clears LISTEN_FDS before any thread exists.
    let inherited = service::inherited_socket()?;
    socket::raise_open_file_limit();
    let actor_settings = settings.actors();
    let configured = settings.server.socket_path();
    let (origin, socket, path) = match inherited {
        Some(listener) => {
            let path = listener
                .local_addr()
                .ok()
                .and_then(|addr| addr.as_pathname().map(ToOwned::to_owned))
                .unwrap_or(configured);
            (Origin::Inherited, listener, path)
        }
        None => {
            let mut owned = OwnedSocket::bind(&configured, settings.server.socket_mode)?;
            let listener = owned
                .take_listener()
                .context("socket listener already taken")?;
            (Origin::Owned { _socket: owned }, listener, configured)
        }
    };
    let checked =
        ActorSystem::check(&actor_settings).map_err(|message| anyhow::anyhow!(message))?;
    log_history(&actor_settings, &checked);
    let listeners = Listeners {
        socket,
        tcp: bind_loopback(settings.server.listen_tcp, Listener::Api)?,
        metrics: bind_loopback(settings.server.metrics_listen, Listener::Metrics)?,
    };
    let mode = origin.drain_mode();
    let result = actix_rt::System::new().block_on(serve(
        (settings, source),
        actor_settings,
        checked,
        listeners,
        (&path, mode),
    ));
    drop(origin);
    result
}

/// Says where history goes, and what a crash left behind.
fn log_history(settings: &ActorSettings, checked: &Checked) {
    if !settings.history.enabled {
        tracing::info!("history is disabled (history.enabled = false)");
        return;
    }
    let path = settings.history.resolved_path();
    tracing::info!(path = %path.display(), "history file ready");
    let interrupted = checked.interrupted();
    if interrupted > 0 {
        tracing::warn!(
            interrupted,
            "sessions that were running when the daemon last stopped without draining are recorded as INTERRUPTED"
        );
    }
}

/// Which loopback TCP listener is being bound.
#[derive(Clone, Copy, Debug)]
enum Listener {
    /// `server.listen_tcp`.
    Api,
    /// `server.metrics_listen`.
    Metrics,
}

/// Binds a loopback TCP listener, if its setting is set. The settings were
/// checked to be loopback addresses when they were loaded.
fn bind_loopback(
    addr: Option<std::net::SocketAddr>,
    which: Listener,
) -> anyhow::Result<Option<std::net::TcpListener>> {
    let Some(addr) = addr else { return Ok(None) };
    let (key, serves) = match which {
        Listener::Api => ("server.listen_tcp", "the whole API"),
        Listener::Metrics => ("server.metrics_listen", "GET /metrics"),
    };
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("cannot listen on {key} = {addr}"))?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    tracing::info!(addr = %bound, "serving {serves} on loopback TCP ({key})");
    Ok(Some(listener))
}

/// Starts the shards and serves until the drain is done.
async fn serve(
    (settings, source): (Settings, Source),
    actor_settings: ActorSettings,
    checked: Checked,
    listeners: Listeners,
    (path, mode): (&std::path::Path, DrainMode),
) -> anyhow::Result<()> {
    let common = Common::start(&actor_settings, checked, error::classify);
    let workers = settings.server.worker_count();
    let arbiters: Vec<Arbiter> = (0..workers).map(|_| Arbiter::new()).collect();
    let shards = start_shards(&arbiters, &common).await?;
    let (drained_tx, drained_rx) = oneshot::channel();
    let (began_tx, began_rx) = oneshot::channel();
    let hooks = DrainHooks {
        mode,
        began: began_tx,
        drained: drained_tx,
    };
    let shutdown = ActorSystem::start_shutdown(&common, &shards, hooks);
    let notifier = service::Notifier::from_env();
    let models = Arc::new(RwLock::new(routes::models::catalogue(&settings)));
    let reloader = Arc::new(reload::Reloader::new(
        source,
        settings.clone(),
        (common.clone(), shards.clone()),
        models.clone(),
        notifier,
    ));
    reload::on_sighup(reloader.clone());
    // SAFETY: getuid has no preconditions and cannot fail.
    let own_uid = unsafe { libc::getuid() };
    let (balance, inboxes) = balance::Balance::new(workers);
    let app = Arc::new(App {
        models,
        reloader,
        max_body_bytes: settings.server.max_body_bytes,
        metadata_max_bytes: settings.sessions.metadata_max_bytes,
        policy: PeerPolicy::new(own_uid, &settings.server.allowed_uids),
        timeouts: listen::Timeouts::of(&settings.server),
        arrivals: (0..workers).map(|_| Arc::default()).collect(),
        balance,
    });
    let (stop_tx, stop_rx) = watch::channel(listen::Stop::Serving);
    let stop_tx = Arc::new(stop_tx);
    let actors = (&shards, &shutdown, &common);
    let served = start_serving(&arbiters, actors, (&app, inboxes), &listeners, &stop_rx)?;
    tracing::info!(
        socket = %path.display(),
        pid = std::process::id(),
        workers,
        inherited = mode == DrainMode::Handover,
        "switchboard is listening"
    );
    notifier.ready();
    actix_rt::spawn(notifier.heartbeat(shards.clone()));
    actix_rt::spawn(on_drain_begun(began_rx, notifier, mode, stop_tx.clone()));
    if let Ok(report) = drained_rx.await {
        tracing::info!(
            reason = ?report.reason,
            live_at_start = report.live_at_start,
            cancelled = report.cancelled,
            took_ms = report.took.as_millis() as u64,
            "drained"
        );
    }
    wind_down(&stop_tx, served, arbiters).await;
    tracing::info!("switchboard stopped");
    Ok(())
}

/// Starts each shard's accept loop on its arbiter; each answers on its
/// receiver once its connections are done.
fn start_serving(
    arbiters: &[Arbiter],
    (shards, shutdown, common): (&Arc<[Shard]>, &Addr<Shutdown>, &Arc<Common>),
    (app, inboxes): (&Arc<App>, Vec<balance::Inbox>),
    listeners: &Listeners,
    stop: &watch::Receiver<listen::Stop>,
) -> anyhow::Result<Vec<oneshot::Receiver<()>>> {
    let mut served = Vec::new();
    let lanes = inboxes
        .into_iter()
        .enumerate()
        .map(|(index, inbox)| listen::Lane {
            index,
            balance: app.balance.clone(),
            inbox,
        });
    for ((arbiter, local), lane) in arbiters.iter().zip(shards.iter()).zip(lanes) {
        let index = lane.index;
        let actors = ActorSystem {
            local: local.clone(),
            shards: shards.clone(),
            shutdown: shutdown.clone(),
            common: common.clone(),
        };
        let cx = Ctx {
            actors,
            app: app.clone(),
            arrivals: app.arrivals[index].clone(),
        };
        let listeners = listen::Shared::clone_from(listeners)?;
        let (done_tx, done_rx) = oneshot::channel();
        let stop = stop.clone();
        // The future holds `Rc`s (it never leaves its thread): it is made
        // on the arbiter's thread and spawned there.
        arbiter.spawn_fn(move || {
            actix_rt::spawn(async move {
                listen::serve(listeners, cx, stop, lane).await;
                let _ = done_tx.send(());
            });
        });
        served.push(done_rx);
    }
    Ok(served)
}

/// After the drain: every connection finishes its last answer (bounded by
/// [`FINAL_WRITE_GRACE`]), then the shards' threads stop.
async fn wind_down(
    stop: &watch::Sender<listen::Stop>,
    served: Vec<oneshot::Receiver<()>>,
    arbiters: Vec<Arbiter>,
) {
    let stopping = std::time::Instant::now();
    let _ = stop.send(listen::Stop::Now);
    let all_done = futures_util::future::join_all(served);
    let _ = tokio::time::timeout(FINAL_WRITE_GRACE, all_done).await;
    for arbiter in arbiters {
        arbiter.stop();
        let _ = arbiter.join();
    }
    tracing::info!(
        took_ms = stopping.elapsed().as_millis() as u64,
        "server stopped"
    );
}

/// When a drain begins: tells the service manager, and on an inherited
/// socket stops accepting at once (connections that arrive from now on wait
/// in the backlog for the next process) and closes idle connections.
async fn on_drain_begun(
    began: oneshot::Receiver<switchboard_actors::shutdown::DrainReason>,
    notifier: service::Notifier,
    mode: DrainMode,
    stop: Arc<watch::Sender<listen::Stop>>,
) {
    if began.await.is_err() {
        return;
    }
    notifier.stopping();
    if mode == DrainMode::Handover {
        tracing::info!("inherited socket: no longer accepting; the next process takes the backlog");
        let _ = stop.send(listen::Stop::Handover);
    }
}

/// Starts one shard's actors on each arbiter.
async fn start_shards(arbiters: &[Arbiter], common: &Arc<Common>) -> anyhow::Result<Arc<[Shard]>> {
    let mut shards = Vec::with_capacity(arbiters.len());
    for arbiter in arbiters {
        let (tx, rx) = oneshot::channel();
        let common = common.clone();
        arbiter.spawn_fn(move || {
            let _ = tx.send(Shard::start(&common));
        });
        let shard = rx
            .await
            .context("a shard's thread stopped while starting")?
            .map_err(|message| anyhow::anyhow!(message))?;
        shards.push(shard);
    }
    Ok(shards.into())
}
