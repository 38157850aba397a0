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
use switchboard_actors::ActorSystem;
use switchboard_actors::settings::ActorSettings;
use switchboard_actors::shutdown::DrainReport;
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
                ActorSystem::start(&self.settings, on_drained)
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
    ActorSystem::check(&actor_settings).map_err(|message| anyhow::anyhow!(message))?;
    let path = settings.server.socket_path();
    let mut owned = OwnedSocket::bind(&path, settings.server.socket_mode)?;
    let listener = owned
        .take_listener()
        .context("socket listener already taken")?;
    let result =
        actix_rt::System::new().block_on(serve(settings, actor_settings, listener, owned.path()));
    drop(owned);
    result
}

async fn serve(
    settings: Settings,
    actor_settings: ActorSettings,
    listener: std::os::unix::net::UnixListener,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let (drained_tx, drained_rx) = oneshot::channel();
    let lazy = Arc::new(LazyActors {
        system: OnceLock::new(),
        settings: actor_settings,
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
    .listen_uds(listener)
    .context("cannot serve on the socket")?
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
/// [`peers`]); everyone else goes on to the routes.
fn refuse_unknown_peers<S, B>(
    req: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    if req.conn_data::<peers::Refused>().is_some() {
        let response = error::response(&peers::forbidden(), None);
        let refused = req.into_response(response).map_into_right_body();
        return Either::Right(ready(Ok(refused)));
    }
    let call = service.call(req);
    Either::Left(async move { call.await.map(ServiceResponse::map_into_left_body) })
}
