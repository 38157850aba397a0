//! The `x-session-id` / `x-request-id` headers every chat answer carries.

use hyper::HeaderMap;
use hyper::header::HeaderValue;
use switchboard_actors::meta::Received;

/// A session's ids, ready to put on an answer.
pub struct Ids {
    /// `x-session-id`.
    session: HeaderValue,
    /// `x-request-id`.
    request: HeaderValue,
}

impl Ids {
    /// The ids of `received`.
    pub fn of(received: &Received) -> Self {
        // Both are made of safe characters (a UUID, or a caller's id that
        // passed `RequestId::from_client`), so they are valid header values.
        let value =
            |text: String| HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("-"));
        Self {
            session: value(received.session_id.to_string()),
            request: value(received.request_id.to_string()),
        }
    }

    /// Adds the headers.
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert("x-session-id", self.session.clone());
        headers.insert("x-request-id", self.request.clone());
    }
}
