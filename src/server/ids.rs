//! The `x-session-id` / `x-request-id` headers every chat answer carries.

use actix_web::HttpResponseBuilder;
use switchboard_actors::meta::Received;

/// A session's ids, ready to put on an answer.
pub struct Ids {
    /// `x-session-id`.
    session: String,
    /// `x-request-id`.
    request: String,
}

impl Ids {
    /// The ids of `received`.
    pub fn of(received: &Received) -> Self {
        Self {
            session: received.session_id.to_string(),
            request: received.request_id.to_string(),
        }
    }

    /// Adds the headers.
    pub fn apply(&self, builder: &mut HttpResponseBuilder) {
        builder.insert_header(("x-session-id", self.session.as_str()));
        builder.insert_header(("x-request-id", self.request.as_str()));
    }
}
