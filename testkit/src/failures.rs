//! The retry-test behaviors' vocabulary: retry hints, Kimi error kinds, and
//! the parsing of the `fail…`, `glm…` and `kimi…` behavior arguments.
//!
//! Used by `behavior.rs` (which owns the [`Behavior`] syntax and its
//! `Display`, and hands these arguments here to parse), by `responses.rs` (which shapes the error bodies)
//! and by tests that build the values directly, e.g.
//! `Behavior::KimiFail { times: 2, kind: KimiError::Overloaded }`.

use std::fmt;

use crate::behavior::Behavior;

/// The retry hint a `fail…` failure carries as a response header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryAfter {
    /// `Retry-After: <s>`: the standard HTTP header, whole seconds.
    Seconds(u32),
    /// `retry-after-ms: <ms>`: OpenAI's millisecond header.
    Millis(u32),
}

/// The error `type`s Kimi (Moonshot) answers 429 with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KimiError {
    /// `overloaded`: `engine_overloaded_error` (retryable).
    Overloaded,
    /// `ratelimit`: `rate_limit_reached_error` (retryable).
    RateLimit,
    /// `quota`: `exceeded_current_quota_error` (not retryable).
    Quota,
}

impl KimiError {
    /// Every kind, for tests that go through them all.
    pub const ALL: [KimiError; 3] = [
        KimiError::Overloaded,
        KimiError::RateLimit,
        KimiError::Quota,
    ];

    /// The `error.type` string Kimi puts in the body.
    pub fn error_type(self) -> &'static str {
        match self {
            KimiError::Overloaded => "engine_overloaded_error",
            KimiError::RateLimit => "rate_limit_reached_error",
            KimiError::Quota => "exceeded_current_quota_error",
        }
    }

    /// The short name used in behavior text (`kimi-<kind>`).
    pub fn keyword(self) -> &'static str {
        match self {
            KimiError::Overloaded => "overloaded",
            KimiError::RateLimit => "ratelimit",
            KimiError::Quota => "quota",
        }
    }

    /// The kind named by `keyword`, if any.
    fn from_keyword(keyword: &str) -> Option<KimiError> {
        KimiError::ALL.into_iter().find(|k| k.keyword() == keyword)
    }
}

impl fmt::Display for KimiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// The expected syntax of a retry-test behavior, for error messages; `None`
/// if `name` is not one of them.
pub(crate) fn usage(name: &str) -> Option<&'static str> {
    Some(match name {
        "fail" => "expected fail-<n>-<400..=599> or fail-<n>-<400..=599>-after-<s>",
        "failms" => "expected failms-<n>-<400..=599>-after-<ms>",
        "glm" => "expected glm-<code>",
        "glmfail" => "expected glmfail-<n>-<code>",
        "kimi" => "expected kimi-<overloaded|ratelimit|quota>",
        "kimifail" => "expected kimifail-<n>-<overloaded|ratelimit|quota>",
        _ => return None,
    })
}

/// Parses the arguments of the retry-test behavior `name`; `None` if they are
/// malformed or `name` is not one of them.
pub(crate) fn with_args(name: &str, args: &str) -> Option<Behavior> {
    match name {
        "fail" => parse_fail(args, false),
        "failms" => parse_fail(args, true),
        "glm" => number(args).map(Behavior::Glm),
        "glmfail" => {
            let (n, code) = args.split_once('-')?;
            Some(Behavior::GlmFail {
                times: number(n)?,
                code: number(code)?,
            })
        }
        "kimi" => KimiError::from_keyword(args).map(Behavior::Kimi),
        "kimifail" => {
            let (n, kind) = args.split_once('-')?;
            Some(Behavior::KimiFail {
                times: number(n)?,
                kind: KimiError::from_keyword(kind)?,
            })
        }
        _ => None,
    }
}

/// Parses `<n>-<status>` or `<n>-<status>-after-<hint>`; the hint is seconds
/// for `fail` and milliseconds (and required) for `failms`.
fn parse_fail(args: &str, millis: bool) -> Option<Behavior> {
    let (n, rest) = args.split_once('-')?;
    let (status, hint) = match rest.split_once("-after-") {
        Some((status, hint)) => (status, Some(number(hint)?)),
        None => (rest, None),
    };
    let retry_after = match (hint, millis) {
        (None, false) => None,
        (Some(s), false) => Some(RetryAfter::Seconds(s)),
        (Some(ms), true) => Some(RetryAfter::Millis(ms)),
        (None, true) => return None,
    };
    let status = u16::try_from(number(status)?).ok()?;
    Some(Behavior::Fail {
        times: number(n)?,
        status: (400..=599).contains(&status).then_some(status)?,
        retry_after,
    })
}

/// Parses a plain decimal `u32` (no sign, no spaces).
fn number(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_retry_form_round_trips() {
        let all = [
            "fail-2-503",
            "fail-0-429",
            "fail-1-429-after-3",
            "failms-3-503-after-250",
            "glm-1302",
            "glmfail-2-1305",
            "kimi-overloaded",
            "kimi-ratelimit",
            "kimi-quota",
            "kimifail-1-quota",
            "refuse",
        ];
        for text in all {
            let b: Behavior = text.parse().expect("valid behavior text");
            assert_eq!(b.to_string(), text);
            assert_eq!(Behavior::from_model(&format!("fake/{text}")), Some(b));
        }
    }

    #[test]
    fn builds_the_documented_values() {
        assert_eq!(
            "fail-2-503".parse(),
            Ok(Behavior::Fail {
                times: 2,
                status: 503,
                retry_after: None
            })
        );
        assert_eq!(
            "fail-1-429-after-7".parse(),
            Ok(Behavior::Fail {
                times: 1,
                status: 429,
                retry_after: Some(RetryAfter::Seconds(7))
            })
        );
        assert_eq!(
            "failms-4-502-after-120".parse(),
            Ok(Behavior::Fail {
                times: 4,
                status: 502,
                retry_after: Some(RetryAfter::Millis(120))
            })
        );
        assert_eq!("glm-1312".parse(), Ok(Behavior::Glm(1312)));
        assert_eq!(
            "kimifail-5-ratelimit".parse(),
            Ok(Behavior::KimiFail {
                times: 5,
                kind: KimiError::RateLimit
            })
        );
        assert_eq!("refuse".parse(), Ok(Behavior::Refuse));
    }

    #[test]
    fn rejects_malformed_retry_text() {
        for bad in [
            "fail",
            "fail-2",
            "fail-2-",
            "fail--503",
            "fail-2-200",
            "fail-2-600",
            "fail-x-503",
            "fail-2-503-after-",
            "fail-2-503-after-1s",
            "fail-2-503-before-1",
            "failms-2-503",
            "failms-2-503-after-",
            "glm",
            "glm-",
            "glm-abc",
            "glmfail-2",
            "glmfail--1302",
            "kimi",
            "kimi-busy",
            "kimi-Overloaded",
            "kimifail-2",
            "kimifail-x-quota",
            "refuse-1",
        ] {
            assert!(bad.parse::<Behavior>().is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn kimi_kinds_name_kimis_error_types() {
        let types: Vec<_> = KimiError::ALL.iter().map(|k| k.error_type()).collect();
        assert_eq!(
            types,
            [
                "engine_overloaded_error",
                "rate_limit_reached_error",
                "exceeded_current_quota_error"
            ]
        );
    }
}
