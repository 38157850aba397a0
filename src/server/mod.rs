//! The daemon: the socket, the HTTP server on it, and the actor system behind it.
//!
//! `run` claims the socket, starts actix-web on it and waits for the shutdown
//! actor's drain report; then it stops serving, removes the socket and
//! returns. The actors start on the HTTP worker's own arbiter (see
//! [`LazyActors`]), so a request never crosses a thread.

mod error;
mod ids;
mod peers;
mod routes;
mod socket;

use std::future::{Future, ready};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;
use bytes::Bytes;
use futures_util::future::Either;
use switchboard_actors::ids::RequestId;
use switchboard_actors::meta::{Peer, Priority, Received};
use switchboard_actors::settings::ActorSettings;
use switchboard_actors::shutdown::DrainReport;
use switchboard_actors::supervisor::Refused;
use switchboard_actors::system::Checked;
use switchboard_actors::{ActorSystem, GatewayError};
use tokio::sync::oneshot;

use crate::settings::Settings;
use peers::PeerPolicy;
use socket::OwnedSocket;

/// After the drain, how long open connections get to finish writing their
/// last answers. Every session has ended by then, so this is only bytes on
/// a local socket.
const FINAL_WRITE_GRACE: Duration = Duration::from_secs(2);

/// How long an idle keep-alive connection stays open. Clients reuse
/// connections across requests seconds apart; a minute avoids reconnects.
const KEEP_ALIVE: Duration = Duration::from_secs(60);

/// What every handler can reach.
pub struct AppState {
    /// The actors.
    actors: ActorSystem,
    /// `GET /v1/models`, encoded once.
    models: Bytes,
    /// `server.max_body_bytes`.
    max_body_bytes: usize,
    /// `sessions.metadata_max_bytes`.
    metadata_max_bytes: usize,
}

/// Starts the actor system the first time an HTTP worker asks for it, on that
/// worker's arbiter: with one worker (the default) the handler, supervisor,
/// sessions and provider calls all share one thread.
struct LazyActors {
    /// The running system, once started.
    system: OnceLock<ActorSystem>,
    /// What to start it with.
    settings: ActorSettings,
    /// The history file made ready at start, taken by the start.
    checked: Mutex<Option<Checked>>,
    /// The drain report channel, taken by the start.
    on_drained: Mutex<Option<oneshot::Sender<DrainReport>>>,
}

impl LazyActors {
    fn get(&self) -> ActorSystem {
        self.system
            .get_or_init(|| {
                let on_drained = self
                    .on_drained
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .take()
                    .unwrap_or_else(|| oneshot::channel().0);
                let checked = self
                    .checked
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .take()
                    .expect("the actor system starts once");
                ActorSystem::start(&self.settings, checked, on_drained, error::classify)
                    .expect("providers were built once already at start")
            })
            .clone()
    }
}

/// Runs the daemon until it has drained. Returns an error only if it could
/// not start.
pub fn run(settings: Settings) -> anyhow::Result<()> {
    socket::raise_open_file_limit();
    let actor_settings = settings.actors();
    let path = settings.server.socket_path();
    let mut owned = OwnedSocket::bind(&path, settings.server.socket_mode)?;
    let checked =
        ActorSystem::check(&actor_settings).map_err(|message| anyhow::anyhow!(message))?;
    log_history(&actor_settings, &checked);
    let listener = owned
        .take_listener()
        .context("socket listener already taken")?;
    let metrics = bind_metrics(settings.server.metrics_listen)?;
    let listeners = Listeners {
        socket: listener,
        metrics,
    };
    let result = actix_rt::System::new().block_on(serve(
        settings,
        actor_settings,
        checked,
        listeners,
        owned.path(),
    ));
    drop(owned);
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

/// The listeners the server takes.
struct Listeners {
    /// The Unix socket: the whole API.
    socket: std::os::unix::net::UnixListener,
    /// `server.metrics_listen`: `GET /metrics` alone.
    metrics: Option<std::net::TcpListener>,
}

/// Binds `server.metrics_listen`, if set.
fn bind_metrics(
    addr: Option<std::net::SocketAddr>,
) -> anyhow::Result<Option<std::net::TcpListener>> {
    let Some(addr) = addr else { return Ok(None) };
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("cannot listen on server.metrics_listen = {addr}"))?;
    listener.set_nonblocking(true)?;
    tracing::info!(%addr, "serving GET /metrics on loopback TCP");
    Ok(Some(listener))
}

async fn serve(
    settings: Settings,
    actor_settings: ActorSettings,
    checked: Checked,
    listeners: Listeners,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let (drained_tx, drained_rx) = oneshot::channel();
    let lazy = Arc::new(LazyActors {
        system: OnceLock::new(),
        settings: actor_settings,
        checked: Mutex::new(Some(checked)),
        on_drained: Mutex::new(Some(drained_tx)),
    });
    let models = routes::models::catalogue(&settings);
    let max_body_bytes = settings.server.max_body_bytes;
    let metadata_max_bytes = settings.sessions.metadata_max_bytes;
    // SAFETY: getuid has no preconditions and cannot fail.
    let policy = PeerPolicy::new(unsafe { libc::getuid() }, &settings.server.allowed_uids);
    let server = HttpServer::new(move || {
        let state = AppState {
            actors: lazy.get(),
            models: models.clone(),
            max_body_bytes,
            metadata_max_bytes,
        };
        App::new()
            .app_data(web::Data::new(state))
            .wrap_fn(refuse_unknown_peers)
            .configure(routes::configure)
    })
    .workers(settings.server.workers)
    .disable_signals()
    .keep_alive(KEEP_ALIVE)
    .h1_allow_half_closed(false)
    .shutdown_timeout(FINAL_WRITE_GRACE.as_secs())
    .on_connect(move |connection, extensions| policy.on_connect(connection, extensions))
    .listen_uds(listeners.socket)
    .context("cannot serve on the socket")?;
    let server = match listeners.metrics {
        Some(tcp) => server
            .listen(tcp)
            .context("cannot serve server.metrics_listen")?,
        None => server,
    }
    .run();
    let handle = server.handle();
    let mut serving = actix_rt::spawn(server);
    tracing::info!(socket = %path.display(), pid = std::process::id(), "switchboard is listening");
    tokio::select! {
        report = drained_rx => {
            if let Ok(report) = report {
                tracing::info!(
                    reason = ?report.reason,
                    live_at_start = report.live_at_start,
                    cancelled = report.cancelled,
                    took_ms = report.took.as_millis() as u64,
                    "drained"
                );
            }
            let stopping = std::time::Instant::now();
            handle.stop(true).await;
            let _ = serving.await;
            tracing::info!(took_ms = stopping.elapsed().as_millis() as u64, "server stopped");
        }
        result = &mut serving => {
            result.context("the HTTP server panicked")?.context("the HTTP server failed")?;
        }
    }
    tracing::info!("switchboard stopped");
    Ok(())
}

/// Answers 403 on connections from users that may not use the daemon (see
/// [`peers`]), and recording it when it was an API request; serves only
/// `GET /metrics` on the metrics listener; everyone else goes on to the routes.
fn refuse_unknown_peers<S, B>(
    req: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    if req.conn_data::<peers::MetricsOnly>().is_some() && req.path() != "/metrics" {
        let message = format!("only GET /metrics is served here, not {}", req.path());
        let error = GatewayError::bad_request(message, None);
        let response = error::shaped(actix_web::http::StatusCode::NOT_FOUND, &error, None);
        return Either::Right(ready(Ok(req.into_response(response).map_into_right_body())));
    }
    if req.conn_data::<peers::Refused>().is_some() {
        let response = refuse(&req);
        let refused = req.into_response(response).map_into_right_body();
        return Either::Right(ready(Ok(refused)));
    }
    let call = service.call(req);
    Either::Left(async move { call.await.map(ServiceResponse::map_into_left_body) })
}

/// The 403 for a refused peer. An API request is recorded as REJECTED, so
/// history and metrics show who was turned away.
fn refuse(req: &ServiceRequest) -> actix_web::HttpResponse {
    let error = peers::forbidden();
    let state = req.app_data::<web::Data<AppState>>();
    let (Some(state), true) = (state, req.path().starts_with("/v1/")) else {
        return error::response(&error, None);
    };
    let header = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok());
    let request_id = RequestId::from_client_or_generate(header);
    let peer = req.conn_data::<Peer>().cloned();
    let received = Received::now(request_id, peer, Priority::default());
    let ids = ids::Ids::of(&received);
    let response = error::response(&error, Some(&ids));
    state.actors.supervisor.do_send(Refused { received, error });
    response
}
