//! `GET /healthz` (the daemon answers, with its load summed over every
//! shard) and `GET /readyz` (it takes new work: 503 while draining, so a
//! supervisor or load balancer stops sending).

use std::sync::atomic::Ordering;

use futures_util::future::join_all;
use hyper::StatusCode;
use hyper::header::{HeaderValue, RETRY_AFTER};
use serde_json::json;
use switchboard_actors::supervisor::{GetStatus, Status};
use switchboard_actors::system::Shard;

use crate::server::Ctx;
use crate::server::http::{Answer, json};

/// Every shard's status added up, with the HTTP layer's own drain flag.
async fn status(cx: &Ctx) -> Option<Status> {
    let mut total = status_of(&cx.actors.shards).await?;
    total.draining |= cx.actors.common.draining.load(Ordering::Relaxed);
    Some(total)
}

/// Every shard's status added up; `None` when a shard is not running.
pub async fn status_of(shards: &[Shard]) -> Option<Status> {
    let asks = shards.iter().map(|s| s.supervisor.send(GetStatus));
    let mut total = Status::default();
    for answer in join_all(asks).await {
        let shard = answer.ok()?;
        total.live += shard.live;
        total.queued += shard.queued;
        total.draining |= shard.draining;
    }
    Some(total)
}

/// Liveness, with the live and queued session counts.
pub async fn healthz(cx: &Ctx) -> Answer {
    match status(cx).await {
        Some(status) => json(
            StatusCode::OK,
            &json!({
                "status": if status.draining { "draining" } else { "ok" },
                "live_sessions": status.live,
                "queued_sessions": status.queued,
                "receiving_requests": cx.app.arrivals.iter().map(|a| a.count()).sum::<usize>(),
                "connections": cx.app.balance.counts(),
            }),
        ),
        None => json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "status": "stopping" }),
        ),
    }
}

/// Readiness: 200 when taking new work, 503 when draining.
pub async fn readyz(cx: &Ctx) -> Answer {
    match status(cx).await {
        Some(status) if !status.draining => json(StatusCode::OK, &json!({ "ready": true })),
        _ => {
            let mut answer = json(StatusCode::SERVICE_UNAVAILABLE, &json!({ "ready": false }));
            answer
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            answer
        }
    }
}
