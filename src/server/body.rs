//! Reading a request's body, at most `server.max_body_bytes` of it.
//!
//! A body that grows past the limit is refused with 413 only after the rest
//! of it has been read and thrown away (up to [`DISCARD_AT_MOST`] bytes for
//! [`DISCARD_FOR`]): a client still sending when the answer comes would see
//! its connection reset instead of the 413, as hyper closes a connection
//! whose request body was left unread.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Request;
use hyper::body::Incoming;
use hyper::header::CONTENT_LENGTH;
use switchboard_actors::GatewayError;
use switchboard_actors::body::Limited;

/// The most of a too-large body read and thrown away before the 413.
const DISCARD_AT_MOST: usize = 64 * 1024 * 1024;

/// The longest time spent reading and throwing away a too-large body.
const DISCARD_FOR: Duration = Duration::from_secs(2);

/// The whole body of `req`, refusing more than `limit` bytes (at once when
/// its `Content-Length` says so).
pub async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, GatewayError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = |_| GatewayError::BodyTooLarge { limit };
    let mut body = Limited::new(limit, declared).map_err(too_large)?;
    let mut incoming = req.into_body();
    while let Some(frame) = incoming.frame().await {
        let frame = frame.map_err(|err| {
            GatewayError::bad_request(format!("could not read the request body: {err}"), None)
        })?;
        if let Ok(data) = frame.into_data()
            && let Err(error) = body.push(data)
        {
            discard(incoming).await;
            return Err(too_large(error));
        }
    }
    Ok(body.finish())
}

/// Reads what is left of `body` and throws it away, within bounds.
async fn discard(mut body: Incoming) {
    let reading = async {
        let mut read = 0;
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, Bytes::len);
            if read > DISCARD_AT_MOST {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DISCARD_FOR, reading).await;
}
