//! Relaying a streamed answer to the client, with the stream deadlines.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::sync::mpsc;

use crate::answer::StreamItem;
use crate::error::{CancelReason, Deadline, GatewayError};
use crate::lifecycle::Recorder;
use crate::meta::duration_ms;
use crate::phase::AttemptResult;
use crate::provider::sse::has_data;
use crate::wire::Wire;

/// How long a stream may be silent, by when.
#[derive(Clone, Copy, Debug)]
pub struct StreamDeadlines {
    /// The first chunk must have come by then.
    pub first_token: Option<(Instant, Duration)>,
    /// The longest silence between chunks after the first.
    pub idle: Option<Duration>,
}

/// Relays the provider's events to the client, recording FIRST_TOKEN and the
/// end of the provider call; stops at the first failure on either side, or
/// when a stream deadline passes.
pub async fn relay(
    mut events: BoxStream<'static, Result<Bytes, GatewayError>>,
    tx: mpsc::Sender<StreamItem>,
    (recorder, wire): (Recorder, Wire),
    deadlines: StreamDeadlines,
) -> Result<(), GatewayError> {
    let client_gone = |_| GatewayError::Cancelled(CancelReason::ClientGone);
    let mut first = true;
    loop {
        let next = match (first, deadlines.first_token, deadlines.idle) {
            (true, Some((by, length)), _) => {
                let waited = tokio::time::timeout_at(by.into(), events.next()).await;
                waited.map_err(|_| deadline(Deadline::FirstToken, length))?
            }
            (false, _, Some(idle)) => {
                let waited = tokio::time::timeout(idle, events.next()).await;
                waited.map_err(|_| deadline(Deadline::Idle, idle))?
            }
            _ => events.next().await,
        };
        let Some(data) = next else { break };
        let data = data?;
        if first && has_data(&data) {
            first = false;
            recorder.first_token();
        }
        if let Some(usage) = crate::usage::in_events(&data, wire) {
            recorder.add_usage(usage);
        }
        recorder.transcribe(&data, true);
        tx.send(StreamItem::Data(data)).await.map_err(client_gone)?;
    }
    recorder.attempt_ended(AttemptResult::Succeeded, "stream complete");
    tx.send(StreamItem::Done).await.map_err(client_gone)
}

/// The error for a stream deadline that passed.
pub fn deadline(which: Deadline, length: Duration) -> GatewayError {
    GatewayError::Timeout {
        which,
        timeout_ms: duration_ms(length),
    }
}
