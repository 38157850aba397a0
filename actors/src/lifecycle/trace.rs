//! One `tracing` event per phase: the daemon's log of sessions.

use crate::meta::duration_ms;
use crate::phase::{Phase, PhaseEvent};

/// One `tracing` event per phase: the end of a session at `info` (or `warn`
/// when it failed), the steps in between at `debug`.
pub fn trace_event(event: &PhaseEvent) {
    // Fields are only gathered for a level that is on: at the default level
    // most phases are not written, and reading the route takes a lock.
    macro_rules! emit {
        ($level:ident, $tracing_level:expr) => {{
            if !tracing::enabled!($tracing_level) {
                return;
            }
            let meta = &event.meta;
            let route = meta.route();
            tracing::$level!(
                session_id = %meta.id,
                request_id = %meta.request_id,
                phase = event.phase.as_str(),
                provider = &*route.provider,
                model = &*route.model,
                attempt = event.attempt,
                elapsed_ms = duration_ms(event.elapsed()),
                uid = meta.peer.as_ref().map(|peer| peer.uid),
                detail = event.detail.as_deref().unwrap_or(""),
                "session {}",
                event.phase.as_str()
            )
        }};
    }
    match event.phase {
        Phase::Timeout | Phase::Error => emit!(warn, tracing::Level::WARN),
        phase if phase.is_terminal() => emit!(info, tracing::Level::INFO),
        _ => emit!(debug, tracing::Level::DEBUG),
    }
}
