//! When a failed provider attempt is worth another try, and how long to wait.
//!
//! Retried: connection errors, 429, 500/502/503/504 and Anthropic's 529,
//! Kimi's `engine_overloaded_error` and `rate_limit_reached_error`,
//! Anthropic's `overloaded_error`, GLM's 1302, 1305 and 1312. Never retried: Kimi's `exceeded_current_quota_error` and
//! GLM's 1113 and 1304 (even though they come as 429: waiting cannot help),
//! and every other 4xx. The wait is the provider's own hint when it sends
//! one (`retry-after-ms`, `Retry-After`, `x-ratelimit-reset-requests`), else
//! an exponential backoff with jitter.

use std::time::{Duration, SystemTime};

use hyper::header::HeaderMap;

/// Error codes (Kimi `type`s, GLM `code`s) that mean "try again later".
const RETRY_CODES: [&str; 6] = [
    "engine_overloaded_error",
    "rate_limit_reached_error",
    "overloaded_error",
    "1302",
    "1305",
    "1312",
];

/// Error codes that mean "this will not work by waiting".
const NEVER_CODES: [&str; 3] = ["exceeded_current_quota_error", "1113", "1304"];

/// Whether an answer with `status` and error `code` is worth retrying.
pub fn retryable_status(status: u16, code: Option<&str>) -> bool {
    match code {
        Some(code) if NEVER_CODES.contains(&code) => false,
        Some(code) if RETRY_CODES.contains(&code) => true,
        _ => matches!(status, 429 | 500 | 502 | 503 | 504 | 529),
    }
}

/// How long the provider asked us to wait, if it said.
pub fn hinted_wait(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    if let Some(value) = text("retry-after") {
        if let Ok(seconds) = value.parse::<u64>() {
            return Some(Duration::from_secs(seconds));
        }
        if let Ok(at) = httpdate::parse_http_date(value) {
            return Some(at.duration_since(SystemTime::now()).unwrap_or_default());
        }
    }
    text("x-ratelimit-reset-requests").and_then(parse_go_duration)
}

/// Reads durations like `1s`, `6m0s`, `250ms`, `1.5s` (OpenAI's reset headers).
fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut total = 0.0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (number, tail) = rest.split_at(digits);
        let number: f64 = number.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        total += number * scale;
        rest = tail;
    }
    (total.is_finite() && total >= 0.0).then(|| Duration::from_secs_f64(total))
}

/// The backoff before retry number `retry` (1 for the first): `base`
/// doubled each time up to `cap`, half of it fixed and half random, so
/// clients that failed together do not retry together.
pub fn backoff(retry: u32, base: Duration, cap: Duration) -> Duration {
    let doubled = base.saturating_mul(1u32 << retry.saturating_sub(1).min(20));
    let full = doubled.min(cap);
    let half = full / 2;
    half + half.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn provider_codes_decide_before_the_status() {
        assert!(retryable_status(429, None));
        assert!(retryable_status(503, None));
        assert!(!retryable_status(400, None));
        assert!(!retryable_status(401, None));
        assert!(retryable_status(429, Some("1302")));
        assert!(retryable_status(200, Some("engine_overloaded_error")));
        assert!(!retryable_status(429, Some("1113")));
        assert!(!retryable_status(429, Some("exceeded_current_quota_error")));
        assert!(!retryable_status(404, Some("model_not_found")));
        assert!(retryable_status(529, None));
        assert!(retryable_status(529, Some("overloaded_error")));
        assert!(!retryable_status(400, Some("invalid_request_error")));
    }

    #[test]
    fn wait_hints_are_read_in_every_form() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(hinted_wait(&headers), Some(Duration::from_secs(2)));
        headers.insert("retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(hinted_wait(&headers), Some(Duration::from_millis(150)));
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-ratelimit-reset-requests",
            HeaderValue::from_static("1m30s"),
        );
        assert_eq!(hinted_wait(&headers), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("soon"), None);
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(5));
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_str(&later).unwrap());
        assert!(hinted_wait(&headers).is_some_and(|d| d <= Duration::from_secs(5)));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(1);
        for _ in 0..50 {
            let first = backoff(1, base, cap);
            assert!(first >= Duration::from_millis(50) && first <= base);
            let tenth = backoff(10, base, cap);
            assert!(tenth >= Duration::from_millis(500) && tenth <= cap);
        }
    }
}
