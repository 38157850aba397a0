//! The daemon's one error type on the wire: every actor error mapped to an
//! HTTP status and OpenAI's error shape, in one `match`.
//!
//! `{"error":{"message","type","code","param"}}`, so OpenAI SDKs raise the
//! right exception; `Retry-After` where waiting helps. On Anthropic's
//! routes the same status comes in Anthropic's shape,
//! `{"type":"error","error":{"type","message"}}`, its `type` read from the
//! status by [`anthropic_kind`], so Anthropic's SDKs raise theirs.

use bytes::Bytes;
use hyper::StatusCode;
use hyper::header::{HeaderValue, RETRY_AFTER};
use switchboard_actors::error::retry_after_secs;
use switchboard_actors::wire::Wire;
use switchboard_actors::{CancelReason, GatewayError};

use super::http::{Answer, json_bytes};
use super::ids::Ids;

/// How an error looks on the wire.
pub struct WireError {
    /// HTTP status.
    pub status: StatusCode,
    /// OpenAI's `type`.
    pub kind: &'static str,
    /// A stable, machine-readable `code`.
    pub code: &'static str,
}

/// The one mapping from actor errors to the wire.
pub fn wire(error: &GatewayError) -> WireError {
    use GatewayError as E;
    let (status, kind, code) = match error {
        E::BadRequest { .. } => (400, "invalid_request_error", "invalid_request"),
        E::BodyTooLarge { .. } => (413, "invalid_request_error", "request_too_large"),
        E::UnknownModel(_) => (404, "invalid_request_error", "model_not_found"),
        E::NotServed { .. } => (404, "invalid_request_error", "endpoint_not_served"),
        E::SessionNotFound(_) => (404, "invalid_request_error", "session_not_found"),
        E::NoRoute { .. } => (404, "invalid_request_error", "not_found"),
        E::MethodNotAllowed { .. } => (405, "invalid_request_error", "method_not_allowed"),
        E::HistoryUnavailable(_) => (503, "server_error", "history_unavailable"),
        E::Draining { .. } => (503, "server_error", "draining"),
        E::Overloaded { .. } => (503, "server_error", "overloaded"),
        E::RateLimited { .. } => (429, "rate_limit_error", "rate_limit_exceeded"),
        E::Forbidden(_) => (403, "permission_error", "forbidden"),
        E::MissingApiKey { .. } => (502, "authentication_error", "provider_api_key_missing"),
        E::ProviderStatus { .. } => (502, "upstream_error", "provider_error"),
        E::ProviderFailed { .. } | E::NoTargetLeft => {
            (502, "upstream_error", "provider_unavailable")
        }
        E::Timeout { which, .. } if which.is_the_callers() => {
            (408, "invalid_request_error", "request_timeout")
        }
        E::Timeout { .. } => (504, "timeout_error", "timeout"),
        E::Cancelled(CancelReason::Operator) => (503, "server_error", "session_cancelled"),
        E::Cancelled(CancelReason::Shutdown) => (503, "server_error", "shutting_down"),
        // Nobody is left to read it; 499 is what proxies log for this.
        E::Cancelled(CancelReason::ClientGone) => (499, "server_error", "client_closed_request"),
        E::Internal(_) => (500, "server_error", "internal_error"),
    };
    WireError {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        kind,
        code,
    }
}

/// The status and code `error` is answered with, for history and metrics
/// (the actors are handed this, so the mapping stays in this one place).
pub fn classify(error: &GatewayError) -> (u16, &'static str) {
    let wire = wire(error);
    (wire.status.as_u16(), wire.code)
}

/// Anthropic's error `type` for an answer with `status`. A deadline (504)
/// and a client that left (499) are `api_error`: Anthropic has no type of
/// its own for them, and its SDKs retry `api_error` as they retry 5xx.
pub fn anthropic_kind(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 405 | 408 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

/// The error body in `wire`'s shape.
pub fn body_on(wire: Wire, error: &GatewayError) -> Bytes {
    if !wire.is_anthropic() {
        return body(error);
    }
    let body = serde_json::json!({
        "type": "error",
        "error": {
            "type": anthropic_kind(wire_status(error)),
            "message": error.to_string(),
        }
    });
    Bytes::from(body.to_string())
}

fn wire_status(error: &GatewayError) -> StatusCode {
    wire(error).status
}

/// The error body in OpenAI's shape.
pub fn body(error: &GatewayError) -> Bytes {
    let wire = wire(error);
    let param = match error {
        GatewayError::BadRequest { param, .. } => *param,
        GatewayError::UnknownModel(_) => Some("model"),
        _ => None,
    };
    let body = serde_json::json!({
        "error": {
            "message": error.to_string(),
            "type": wire.kind,
            "code": wire.code,
            "param": param,
        }
    });
    Bytes::from(body.to_string())
}

/// The full error answer in OpenAI's shape, with the session's ids when
/// there is a session.
pub fn response(error: &GatewayError, ids: Option<&Ids>) -> Answer {
    response_on(Wire::Chat, error, ids)
}

/// The full error answer in `wire`'s shape.
pub fn response_on(wire: Wire, error: &GatewayError, ids: Option<&Ids>) -> Answer {
    shaped(wire, wire_status(error), error, ids)
}

/// An error answer with `status` in `wire`'s shape (for routes that are not
/// actor errors: 404 for an unknown path, 405 for a wrong method).
pub fn shaped(wire: Wire, status: StatusCode, error: &GatewayError, ids: Option<&Ids>) -> Answer {
    let mut answer = json_bytes(status, body_on(wire, error));
    let headers = answer.headers_mut();
    if let Some(ids) = ids {
        ids.apply(headers);
    }
    if let Some(after) = error.retry_after() {
        headers.insert(RETRY_AFTER, HeaderValue::from(retry_after_secs(&after)));
    }
    if matches!(error, GatewayError::Cancelled(CancelReason::Operator)) {
        // OpenAI SDKs retry 5xx unless told not to; an operator's cancel must stick.
        headers.insert("x-should-retry", HeaderValue::from_static("false"));
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn statuses_follow_the_documented_table() {
        let status = |e: GatewayError| wire(&e).status.as_u16();
        assert_eq!(status(GatewayError::bad_request("x", None)), 400);
        assert_eq!(status(GatewayError::BodyTooLarge { limit: 1 }), 413);
        assert_eq!(status(GatewayError::UnknownModel("m".into())), 404);
        assert_eq!(
            status(GatewayError::Draining {
                retry_after: Duration::from_secs(1)
            }),
            503
        );
        assert_eq!(
            status(GatewayError::Timeout {
                which: switchboard_actors::error::Deadline::Total,
                timeout_ms: 1
            }),
            504
        );
        let failed = GatewayError::ProviderFailed {
            provider: "p".into(),
            reason: "r".into(),
        };
        assert_eq!(status(failed), 502);
    }

    #[test]
    fn anthropic_routes_get_anthropics_shape_and_types() {
        let unknown = GatewayError::UnknownModel("nope/x".into());
        let value: serde_json::Value =
            serde_json::from_slice(&body_on(Wire::Messages, &unknown)).unwrap();
        assert_eq!(value["type"], "error");
        assert_eq!(value["error"]["type"], "not_found_error");
        assert!(
            value["error"]["message"]
                .as_str()
                .unwrap()
                .contains("nope/x")
        );
        let kind = |code: u16| anthropic_kind(StatusCode::from_u16(code).unwrap());
        assert_eq!(kind(400), "invalid_request_error");
        assert_eq!(kind(401), "authentication_error");
        assert_eq!(kind(403), "permission_error");
        assert_eq!(kind(413), "request_too_large");
        assert_eq!(kind(429), "rate_limit_error");
        assert_eq!(kind(502), "api_error");
        assert_eq!(kind(503), "overloaded_error");
        assert_eq!(kind(504), "api_error");
        let openai: serde_json::Value =
            serde_json::from_slice(&body_on(Wire::Embeddings, &unknown)).unwrap();
        assert_eq!(openai["error"]["code"], "model_not_found");
    }

    #[test]
    fn error_bodies_have_openais_shape() {
        let value: serde_json::Value =
            serde_json::from_slice(&body(&GatewayError::bad_request("no model", Some("model"))))
                .unwrap();
        assert_eq!(value["error"]["message"], "no model");
        assert_eq!(value["error"]["type"], "invalid_request_error");
        assert_eq!(value["error"]["code"], "invalid_request");
        assert_eq!(value["error"]["param"], "model");
    }
}
