//! Fault modes of the fake provider and their textual syntax.
//!
//! Integration tests pick a behavior per request through the upstream
//! `model` name (`"fake/delay-1000"` reaches the fake provider as
//! `"delay-1000"`) or the `x-fake-behavior` header; Rust code (tests, the
//! load benchmark) builds [`Behavior`] values directly, e.g. for
//! [`crate::FakeProvider::start_with`]. The arguments of the retry-test
//! behaviors (`fail…`, `glm…`, `kimi…`) are parsed and written by
//! `failures.rs`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::failures::{self, KimiError, RetryAfter};

/// What the fake provider does with one chat-completion request.
///
/// The textual form (accepted by [`FromStr`], produced by [`fmt::Display`])
/// is given on each variant; durations are whole milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Behavior {
    /// `instant`: 200 at once with a realistic `chat.completion` JSON body
    /// (or a 3-chunk stream if the request asked for `"stream": true`).
    Instant,
    /// `delay-<ms>`: like [`Behavior::Instant`] after sleeping this long.
    Delay(Duration),
    /// `hang`: never answers; only the client going away ends the request.
    Hang,
    /// `status-<code>`: this HTTP status with an OpenAI-style error body.
    Status(u16),
    /// `broken`: 200 `application/json` whose body is truncated, invalid JSON.
    Broken,
    /// `stream-<n>-<ms>`: an SSE stream of `chunks` content chunks, one every
    /// `interval` (the first at once), then, right after the last one, a
    /// `finish_reason: "stop"` chunk and `data: [DONE]`.
    Stream {
        /// How many content chunks to send before the final `stop` chunk.
        chunks: usize,
        /// Pause between consecutive content chunks.
        interval: Duration,
    },
    /// `stall-<n>`: an SSE stream that sends n chunks 10 ms apart, then
    /// nothing ever again, without ending.
    Stall(usize),
    /// `lateend-<ms>`: an SSE stream of 3 chunks 10 ms apart and `[DONE]`,
    /// after which the body ends only ms later (the HTTP/1.1 chunked
    /// terminator arrives in a later read, as from a slow real provider).
    LateEnd(Duration),
    /// `cut-<n>`: an SSE stream that sends n chunks 10 ms apart, then 10 ms
    /// later aborts the response without `[DONE]` (the body errors, so hyper
    /// closes the connection mid-chunked-encoding on HTTP/1.1, or resets the
    /// stream on HTTP/2). Not counted as abandoned.
    Cut(usize),
    /// `bigevent-<bytes>-<piece>`: an SSE stream whose first event is one
    /// content chunk carrying `bytes` characters
    /// ([`crate::big_event_content`]), then the `stop` chunk and
    /// `data: [DONE]`; the whole body is written `piece` bytes at a time,
    /// each write flushed on its own, so the event arrives over many reads.
    BigEvent {
        /// Characters of content in the big event.
        bytes: usize,
        /// Bytes per write.
        piece: usize,
    },
    /// `slowheaders-<ms>`: waits this long before sending the response head,
    /// then a normal 3-chunk stream 10 ms apart.
    SlowHeaders(Duration),
    /// `fail-<n>-<status>`, `fail-<n>-<status>-after-<s>` or
    /// `failms-<n>-<status>-after-<ms>`: the first `times` requests answer
    /// `status` (400..=599) with the OpenAI-style error body of `status-<code>`
    /// (`{"error":{"message":"fake failure <status>","type":"server_error",
    /// "code":"<status>"}}`), plus a `Retry-After: <s>` or `retry-after-ms:
    /// <ms>` header if given; later ones answer like [`Behavior::Instant`]
    /// (streamed if asked).
    ///
    /// Like every counted (`…fail-<n>-…`) behavior, requests are counted per
    /// provider and per exact request `model` string (`"fake/fail-1-503"` and
    /// `"fail-1-503"` count apart), and per behavior when the header or the
    /// default picks it; failures are JSON even for `"stream": true`.
    Fail {
        /// How many requests fail before the first success.
        times: u32,
        /// The HTTP status of each failure.
        status: u16,
        /// The retry hint header each failure carries, if any.
        retry_after: Option<RetryAfter>,
    },
    /// `glm-<code>`: always 429 with GLM's (Zhipu's) error shape
    /// `{"error":{"code":"<code>","message":"glm error <code>"}}`, the code a
    /// string (e.g. 1302, 1305, 1312 retryable; 1113, 1304 not).
    Glm(u32),
    /// `glmfail-<n>-<code>`: the first `times` requests answer like
    /// `glm-<code>`, later ones like [`Behavior::Instant`]; counted as for
    /// [`Behavior::Fail`].
    GlmFail {
        /// How many requests fail before the first success.
        times: u32,
        /// GLM's business error code.
        code: u32,
    },
    /// `kimi-<overloaded|ratelimit|quota>`: always 429 with Kimi's error shape
    /// `{"error":{"message":"kimi error","type":"<type>"}}`, the type given
    /// by [`KimiError::error_type`].
    Kimi(KimiError),
    /// `kimifail-<n>-<kind>`: the first `times` requests answer like
    /// `kimi-<kind>`, later ones like [`Behavior::Instant`]; counted as for
    /// [`Behavior::Fail`].
    KimiFail {
        /// How many requests fail before the first success.
        times: u32,
        /// Which Kimi error each failure carries.
        kind: KimiError,
    },
    /// `refuse`: no HTTP answer at all. Once the request (head and body) is
    /// read, the provider closes its TCP connection, so the client sees a
    /// connection error ("connection closed before message completed" on
    /// HTTP/1.1; on h2c every stream of that connection fails). Counted as a
    /// request and recorded, not counted as abandoned.
    Refuse,
}

/// Why a behavior string was rejected; its `Display` names the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseBehaviorError {
    /// The text that failed to parse, so the message points at the typo.
    pub input: String,
    /// What was wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for ParseBehaviorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid fake behavior {:?}: {}", self.input, self.reason)
    }
}

impl std::error::Error for ParseBehaviorError {}

impl Behavior {
    /// Picks the behavior named by an upstream model name.
    ///
    /// Tries the whole name first, then the part after the last `/`, so both
    /// `"delay-5"` and an unstripped `"fake/delay-5"` work. `None` means the
    /// name is an ordinary model name and the default behavior applies.
    pub fn from_model(model: &str) -> Option<Behavior> {
        if let Ok(b) = model.parse() {
            return Some(b);
        }
        let (_, last) = model.rsplit_once('/')?;
        last.parse().ok()
    }
}

impl FromStr for Behavior {
    type Err = ParseBehaviorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = |reason| ParseBehaviorError {
            input: s.to_owned(),
            reason,
        };
        let text = s.trim();
        match text.split_once('-') {
            None => match text {
                "instant" => Ok(Behavior::Instant),
                "hang" => Ok(Behavior::Hang),
                "broken" => Ok(Behavior::Broken),
                "refuse" => Ok(Behavior::Refuse),
                "delay" | "status" | "stream" | "stall" | "cut" | "bigevent" | "slowheaders"
                | "fail" | "failms" | "glm" | "glmfail" | "kimi" | "kimifail" => {
                    Err(fail("missing arguments after the name"))
                }
                _ => Err(fail("unknown behavior name")),
            },
            Some((name, args)) => match name {
                "instant" | "hang" | "broken" | "refuse" => {
                    Err(fail("this behavior takes no arguments"))
                }
                _ => with_args(name, args).ok_or_else(|| fail(usage(name))),
            },
        }
    }
}

/// The expected syntax of a behavior that takes arguments, for error messages.
fn usage(name: &str) -> &'static str {
    match name {
        "delay" => "expected delay-<ms>",
        "status" => "expected status-<200..=599>",
        "stream" => "expected stream-<n>-<ms>",
        "stall" => "expected stall-<n>",
        "cut" => "expected cut-<n>",
        "bigevent" => "expected bigevent-<bytes>-<piece>",
        "slowheaders" => "expected slowheaders-<ms>",
        _ => failures::usage(name).unwrap_or("unknown behavior name"),
    }
}

/// Parses the arguments of a behavior that takes some.
fn with_args(name: &str, args: &str) -> Option<Behavior> {
    match name {
        "delay" => millis(args).map(Behavior::Delay),
        "status" => parse_status(args).map(Behavior::Status),
        "stream" => parse_stream(args),
        "stall" => count(args).map(Behavior::Stall),
        "lateend" => millis(args).map(Behavior::LateEnd),
        "cut" => count(args).map(Behavior::Cut),
        "bigevent" => parse_big_event(args),
        "slowheaders" => millis(args).map(Behavior::SlowHeaders),
        _ => failures::with_args(name, args),
    }
}

/// Parses a plain decimal count (no sign, no spaces).
fn count(s: &str) -> Option<usize> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses a decimal number of milliseconds.
fn millis(s: &str) -> Option<Duration> {
    count(s).map(|ms| Duration::from_millis(ms as u64))
}

/// Parses an HTTP status a response can carry with a body.
fn parse_status(s: &str) -> Option<u16> {
    let code = u16::try_from(count(s)?).ok()?;
    (200..=599).contains(&code).then_some(code)
}

/// Parses the `<n>-<ms>` arguments of `stream`.
fn parse_stream(s: &str) -> Option<Behavior> {
    let (n, ms) = s.split_once('-')?;
    Some(Behavior::Stream {
        chunks: count(n)?,
        interval: millis(ms)?,
    })
}

/// Parses the `<bytes>-<piece>` arguments of `bigevent`.
fn parse_big_event(s: &str) -> Option<Behavior> {
    let (bytes, piece) = s.split_once('-')?;
    Some(Behavior::BigEvent {
        bytes: count(bytes)?,
        piece: count(piece).filter(|&piece| piece > 0)?,
    })
}

impl Behavior {
    /// How many requests fail before the first success, for the counted
    /// behaviors (`fail…`, `glmfail…`, `kimifail…`); `None` for the others.
    pub fn fail_times(self) -> Option<u32> {
        match self {
            Behavior::Fail { times, .. }
            | Behavior::GlmFail { times, .. }
            | Behavior::KimiFail { times, .. } => Some(times),
            _ => None,
        }
    }
}

impl fmt::Display for Behavior {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Behavior::Instant => f.write_str("instant"),
            Behavior::Delay(d) => write!(f, "delay-{}", d.as_millis()),
            Behavior::Hang => f.write_str("hang"),
            Behavior::Status(code) => write!(f, "status-{code}"),
            Behavior::Broken => f.write_str("broken"),
            Behavior::Stream { chunks, interval } => {
                write!(f, "stream-{chunks}-{}", interval.as_millis())
            }
            Behavior::Stall(n) => write!(f, "stall-{n}"),
            Behavior::LateEnd(d) => write!(f, "lateend-{}", d.as_millis()),
            Behavior::Cut(n) => write!(f, "cut-{n}"),
            Behavior::BigEvent { bytes, piece } => write!(f, "bigevent-{bytes}-{piece}"),
            Behavior::SlowHeaders(d) => write!(f, "slowheaders-{}", d.as_millis()),
            Behavior::Fail {
                times,
                status,
                retry_after,
            } => match retry_after {
                None => write!(f, "fail-{times}-{status}"),
                Some(RetryAfter::Seconds(s)) => write!(f, "fail-{times}-{status}-after-{s}"),
                Some(RetryAfter::Millis(ms)) => write!(f, "failms-{times}-{status}-after-{ms}"),
            },
            Behavior::Glm(code) => write!(f, "glm-{code}"),
            Behavior::GlmFail { times, code } => write!(f, "glmfail-{times}-{code}"),
            Behavior::Kimi(kind) => write!(f, "kimi-{kind}"),
            Behavior::KimiFail { times, kind } => write!(f, "kimifail-{times}-{kind}"),
            Behavior::Refuse => f.write_str("refuse"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_round_trips() {
        let all = [
            "instant",
            "delay-1000",
            "hang",
            "status-503",
            "broken",
            "stream-5-50",
            "stall-3",
            "cut-2",
            "bigevent-1048576-1024",
            "slowheaders-700",
        ];
        for text in all {
            let b: Behavior = text.parse().expect("valid behavior text");
            assert_eq!(b.to_string(), text);
        }
    }

    #[test]
    fn builds_the_documented_values() {
        assert_eq!(
            "delay-5".parse(),
            Ok(Behavior::Delay(Duration::from_millis(5)))
        );
        assert_eq!(
            "stream-3-20".parse(),
            Ok(Behavior::Stream {
                chunks: 3,
                interval: Duration::from_millis(20)
            })
        );
        assert_eq!("status-429".parse(), Ok(Behavior::Status(429)));
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in [
            "",
            "gpt-4o",
            "delay",
            "delay-",
            "delay--5",
            "delay-1x",
            "status-99",
            "status-600",
            "stream-5",
            "stream-5-",
            "hang-1",
            "instant-",
            "cut-a",
            "bigevent-10",
            "bigevent-10-0",
        ] {
            assert!(bad.parse::<Behavior>().is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn model_names_fall_back_to_the_last_segment() {
        assert_eq!(Behavior::from_model("fake/hang"), Some(Behavior::Hang));
        assert_eq!(Behavior::from_model("hang"), Some(Behavior::Hang));
        assert_eq!(Behavior::from_model("gpt-4o-mini"), None);
        assert_eq!(Behavior::from_model("openai/gpt-4o"), None);
    }
}
