//! One `tracing` event per phase: the daemon's log of sessions, written by
//! the session's recorder as the phase happens.

use std::time::Duration;

use crate::meta::{Route, SessionMeta, duration_ms};
use crate::phase::Phase;

/// Logs `phase` of the session `meta` (now at `route()`): its end at `info`
/// (or `warn` when it failed), the steps in between at `debug`.
pub fn trace(
    meta: &SessionMeta,
    route: impl FnOnce() -> Route,
    phase: Phase,
    elapsed: Duration,
    attempt: u32,
    detail: Option<&str>,
) {
    // Fields are only gathered for a level that is on: at the default level
    // most phases are not written, and reading the route takes a lock.
    macro_rules! emit {
        ($level:ident, $tracing_level:expr) => {{
            if !tracing::enabled!($tracing_level) {
                return;
            }
            let route = route();
            tracing::$level!(
                session_id = %meta.id,
                request_id = %meta.request_id,
                phase = phase.as_str(),
                provider = &*route.provider,
                model = &*route.model,
                attempt,
                elapsed_ms = duration_ms(elapsed),
                uid = meta.peer.as_ref().map(|peer| peer.uid),
                detail = detail.unwrap_or(""),
                "session {}",
                phase.as_str()
            )
        }};
    }
    match phase {
        Phase::Timeout | Phase::Error => emit!(warn, tracing::Level::WARN),
        phase if phase.is_terminal() => emit!(info, tracing::Level::INFO),
        _ => emit!(debug, tracing::Level::DEBUG),
    }
}
