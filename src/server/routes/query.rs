//! Reading admin query strings: each parameter named, checked and turned
//! into its type, or a 400 that names the parameter.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use switchboard_actors::GatewayError;

/// The longest value accepted for a text parameter.
const MAX_VALUE: usize = 256;

/// A query string's parameters, each at most once, all of them known.
pub struct Params(HashMap<String, String>);

impl Params {
    /// Parses `query`, refusing parameters outside `known` and repeats.
    pub fn parse(query: &str, known: &[&'static str]) -> Result<Self, GatewayError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|_| GatewayError::bad_request("the query string is not form-encoded", None))?;
        let mut params = HashMap::new();
        for (key, value) in pairs {
            let Some(name) = known.iter().find(|k| **k == key) else {
                let shown: String = key.chars().take(32).collect();
                let message = format!("unknown parameter `{shown}`; known: {}", known.join(", "));
                return Err(GatewayError::bad_request(message, None));
            };
            if value.len() > MAX_VALUE {
                return Err(bad(name, "is too long"));
            }
            if params.insert(key, value).is_some() {
                return Err(bad(name, "is given twice"));
            }
        }
        Ok(Self(params))
    }

    /// A text parameter, if given (an empty one counts as not given).
    pub fn text(&self, name: &'static str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A parameter parsed by `parse`, which says what it expects on failure.
    pub fn parsed<T>(
        &self,
        name: &'static str,
        expected: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, GatewayError> {
        match self.text(name) {
            None => Ok(None),
            Some(text) => parse(text).map(Some).ok_or_else(|| bad(name, expected)),
        }
    }

    /// A time: RFC 3339 (`2026-12-01T10:00:00Z`, an offset allowed) or a
    /// duration back from now (`90s`, `1h`, `7d`).
    pub fn time(&self, name: &'static str) -> Result<Option<SystemTime>, GatewayError> {
        self.parsed(
            name,
            "must be an RFC 3339 time (2026-12-01T10:00:00Z) or a duration back from now (90s, 1h, 7d)",
            |text| parse_time(text, SystemTime::now()),
        )
    }
}

/// The 400 for parameter `name`.
pub fn bad(name: &'static str, what: &str) -> GatewayError {
    GatewayError::bad_request(format!("parameter `{name}` {what}"), Some(name))
}

/// `text` as a time, relative to `now` for durations.
pub fn parse_time(text: &str, now: SystemTime) -> Option<SystemTime> {
    if let Ok(back) = humantime::parse_duration(text) {
        return now.checked_sub(back);
    }
    let (local, offset) = split_offset(text)?;
    let at = humantime::parse_rfc3339_weak(local).ok()?;
    match offset {
        Some(east) if east >= 0 => at.checked_sub(Duration::from_secs(east as u64)),
        Some(west) => at.checked_add(Duration::from_secs(west.unsigned_abs())),
        None => Some(at),
    }
}

/// Splits a trailing `Z` or `±HH:MM` from an RFC 3339 time; the offset in
/// seconds east of UTC (`None` for `Z` or none).
fn split_offset(text: &str) -> Option<(&str, Option<i64>)> {
    if let Some(local) = text.strip_suffix('Z').or_else(|| text.strip_suffix('z')) {
        return Some((local, None));
    }
    let tail = text.len().checked_sub(6).map(|i| (i, &text[i..]));
    match tail {
        Some((i, offset))
            if text.is_char_boundary(i)
                && matches!(offset.as_bytes()[0], b'+' | b'-')
                && text[..i].contains('T') =>
        {
            let sign = if offset.starts_with('-') { -1 } else { 1 };
            let (hours, minutes) = offset[1..].split_once(':')?;
            let seconds = hours.parse::<i64>().ok()? * 3600 + minutes.parse::<i64>().ok()? * 60;
            Some((&text[..i], Some(sign * seconds)))
        }
        _ => Some((text, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_a_duration_back() {
        let now = humantime::parse_rfc3339("2026-12-01T12:00:00Z").unwrap();
        let at = |t: &str| parse_time(t, now).map(|t| humantime::format_rfc3339(t).to_string());
        assert_eq!(at("90s").as_deref(), Some("2026-12-01T11:58:30Z"));
        assert_eq!(at("7d").as_deref(), Some("2026-11-24T12:00:00Z"));
        assert_eq!(
            at("2026-12-01T10:00:00Z").as_deref(),
            Some("2026-12-01T10:00:00Z")
        );
        assert_eq!(
            at("2026-12-01T10:00:00+02:00").as_deref(),
            Some("2026-12-01T08:00:00Z")
        );
        assert_eq!(
            at("2026-12-01T10:00:00-01:30").as_deref(),
            Some("2026-12-01T11:30:00Z")
        );
        assert_eq!(at("yesterday"), None);
        assert_eq!(at("2026-13-01T00:00:00Z"), None);
    }

    #[test]
    fn unknown_and_repeated_parameters_are_refused() {
        assert!(Params::parse("limit=5&outcome=ERROR", &["limit", "outcome"]).is_ok());
        match Params::parse("limit=5&limit=6", &["limit"]) {
            Err(GatewayError::BadRequest { param, .. }) => assert_eq!(param, Some("limit")),
            _ => panic!("a repeat is refused"),
        }
        assert!(Params::parse("nope=1", &["limit"]).is_err());
        let params = Params::parse("limit=x", &["limit"]).unwrap();
        let limit = params.parsed("limit", "must be a number", |t| t.parse::<u32>().ok());
        assert!(matches!(
            limit,
            Err(GatewayError::BadRequest {
                param: Some("limit"),
                ..
            })
        ));
    }
}
