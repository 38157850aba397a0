//! How a session ended: the outcome history and metrics count, and what the
//! terminal phase event carries so they can be counted without asking again.
//!
//! The session (or the supervisor, for a request that never got a session)
//! builds an [`Ending`] when it records its last phase; the lifecycle logger
//! turns it into a history row and metric updates.

use std::sync::Arc;

use serde::Serialize;

use crate::error::GatewayError;
use crate::phase::Phase;
use crate::usage::Usage;

/// The outcome of a session, as history stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    /// Answered in full.
    Completed,
    /// A deadline passed.
    Timeout,
    /// The provider failed, or the answer could not be delivered.
    Error,
    /// The client left, an operator cancelled it, or the drain ran out of time.
    Cancelled,
    /// Refused before a session was allocated.
    Rejected,
    /// The daemon stopped (crash, kill) before the session ended; found at
    /// the next start.
    Interrupted,
}

impl Outcome {
    /// Every outcome, for labels and parsing.
    pub const ALL: [Outcome; 6] = [
        Outcome::Completed,
        Outcome::Timeout,
        Outcome::Error,
        Outcome::Cancelled,
        Outcome::Rejected,
        Outcome::Interrupted,
    ];

    /// The name in history, admin answers and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "COMPLETED",
            Outcome::Timeout => "TIMEOUT",
            Outcome::Error => "ERROR",
            Outcome::Cancelled => "CANCELLED",
            Outcome::Rejected => "REJECTED",
            Outcome::Interrupted => "INTERRUPTED",
        }
    }

    /// Reads an outcome's name, in any case.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|outcome| outcome.as_str().eq_ignore_ascii_case(text.trim()))
    }

    /// The outcome a terminal phase stands for.
    pub fn of_phase(phase: Phase) -> Option<Self> {
        match phase {
            Phase::Completed => Some(Outcome::Completed),
            Phase::Timeout => Some(Outcome::Timeout),
            Phase::Error => Some(Outcome::Error),
            Phase::Cancelled => Some(Outcome::Cancelled),
            Phase::Rejected => Some(Outcome::Rejected),
            _ => None,
        }
    }

    /// The terminal phase for a session that ended with `error` (or none),
    /// having started (`allocated`) or not.
    pub fn phase_for(error: Option<&GatewayError>, allocated: bool) -> Phase {
        match error {
            None => Phase::Completed,
            Some(GatewayError::Cancelled(_)) => Phase::Cancelled,
            Some(GatewayError::Timeout { which, .. }) if which.is_the_callers() => Phase::Timeout,
            Some(_) if !allocated => Phase::Rejected,
            Some(GatewayError::Timeout { .. }) => Phase::Timeout,
            Some(_) => Phase::Error,
        }
    }
}

/// What a session's terminal event tells the records beyond its phase.
#[derive(Clone, Debug, Default)]
pub struct Ending {
    /// Why it failed; `None` for a completed session.
    pub error: Option<GatewayError>,
    /// Whether the client had already been sent a 200 head (a stream that
    /// began): then that is the status it saw, whatever came after.
    pub answered: bool,
    /// Tokens the provider reported.
    pub usage: Usage,
    /// The prompt and answer, when `history.record_prompts` is on.
    pub exchange: Option<Arc<Exchange>>,
}

/// A session's prompt and answer text, kept only when the operator opted in,
/// each already cut to `history.max_record_bytes`.
#[derive(Clone, Debug, Default)]
pub struct Exchange {
    /// The request's `messages`, as JSON.
    pub prompt: Option<String>,
    /// The answer's text (content of the first choice, or of a stream's deltas).
    pub answer: Option<String>,
}

/// `text` cut to at most `max` bytes at a character boundary.
pub fn capped(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CancelReason;

    #[test]
    fn outcomes_parse_in_any_case_and_round_trip() {
        for outcome in Outcome::ALL {
            assert_eq!(Outcome::parse(outcome.as_str()), Some(outcome));
        }
        assert_eq!(Outcome::parse("timeout"), Some(Outcome::Timeout));
        assert_eq!(Outcome::parse("done"), None);
    }

    #[test]
    fn a_request_that_never_started_is_rejected_unless_cancelled() {
        let timeout = GatewayError::Timeout {
            which: crate::error::Deadline::Total,
            timeout_ms: 1,
        };
        assert_eq!(Outcome::phase_for(Some(&timeout), true), Phase::Timeout);
        assert_eq!(Outcome::phase_for(Some(&timeout), false), Phase::Rejected);
        let gone = GatewayError::Cancelled(CancelReason::ClientGone);
        assert_eq!(Outcome::phase_for(Some(&gone), false), Phase::Cancelled);
        assert_eq!(Outcome::phase_for(None, true), Phase::Completed);
    }

    #[test]
    fn capped_text_ends_on_a_character() {
        assert_eq!(capped("héllo", 2), "h");
        assert_eq!(capped("short", 10), "short");
    }
}
