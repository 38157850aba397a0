//! The line-level grammar of the text exposition: sample lines, label
//! sets with their escapes, values, and names.
//!
//! Used only by [`super::Scrape::parse`], which handles comments, series
//! uniqueness and `# EOF` itself; every function here returns a message
//! saying what was wrong, which the caller prefixes with the line.

use super::{Labels, Sample};

/// Parses `name{labels} value [timestamp] [# exemplar]`.
pub(super) fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
    let name = &line[..name_end];
    check_metric_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        (labels, rest) = parse_labels(after)?;
    }
    if !rest.starts_with([' ', '\t']) {
        return Err("expected a space before the value".to_owned());
    }
    let (main, exemplar) = match rest.split_once(" # ") {
        Some((main, exemplar)) => (main, Some(exemplar)),
        None => (rest, None),
    };
    let (value, timestamp) = value_and_timestamp(main)?;
    if let Some(exemplar) = exemplar {
        let after = exemplar
            .strip_prefix('{')
            .ok_or("an exemplar must start with {")?;
        let (_, rest) = parse_labels(after)?;
        value_and_timestamp(rest).map_err(|e| format!("exemplar: {e}"))?;
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
        timestamp,
    })
}

/// Parses ` value [timestamp]` and insists nothing follows.
fn value_and_timestamp(text: &str) -> Result<(f64, Option<f64>), String> {
    let mut fields = text.split_whitespace();
    let value = parse_value(fields.next().ok_or("missing value")?)?;
    let timestamp = match fields.next() {
        Some(ts) => match parse_value(ts) {
            Ok(t) if t.is_finite() => Some(t),
            _ => return Err(format!("invalid timestamp {ts:?}")),
        },
        None => None,
    };
    match fields.next() {
        Some(extra) => Err(format!("unexpected {extra:?} after the value")),
        None => Ok((value, timestamp)),
    }
}

/// Parses the labels after `{` up to and including `}`; returns them and
/// the text after `}`. Allows spaces around tokens and a trailing comma.
fn parse_labels(mut s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Labels::new();
    loop {
        s = s.trim_start_matches([' ', '\t']);
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        let name = &s[..end];
        check_label_name(name)?;
        s = s[end..].trim_start_matches([' ', '\t']);
        s = s
            .strip_prefix('=')
            .ok_or_else(|| format!("expected = after label {name}"))?;
        s = s.trim_start_matches([' ', '\t']);
        s = s
            .strip_prefix('"')
            .ok_or_else(|| format!("expected a quoted value for label {name}"))?;
        let value;
        (value, s) = parse_quoted(s)?;
        if labels.iter().any(|(n, _)| n == name) {
            return Err(format!("label {name} given twice"));
        }
        labels.push((name.to_owned(), value));
        s = s.trim_start_matches([' ', '\t']);
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return Err(format!("expected , or }} after label {name}"));
        }
    }
}

/// Reads a label value after its opening quote: unescapes `\\`, `\"` and
/// `\n` (any other escape is an error) and returns the text after the
/// closing quote.
fn parse_quoted(s: &str) -> Result<(String, &str), String> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((_, 'n')) => out.push('\n'),
                Some((_, other)) => return Err(format!("invalid escape \\{other}")),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err("unterminated label value".to_owned())
}

/// Unescapes `# HELP` text (`\\`, `\n`, and OpenMetrics' `\"`). Any
/// other backslash is kept as written: `prometheus-client` writes help
/// text unescaped, and help never changes what a sample means.
pub(super) fn unescape_help(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let unescaped = match (c, chars.peek()) {
            ('\\', Some('\\')) => '\\',
            ('\\', Some('"')) => '"',
            ('\\', Some('n')) => '\n',
            _ => {
                out.push(c);
                continue;
            }
        };
        chars.next();
        out.push(unescaped);
    }
    out
}

/// Parses a sample value: `+Inf`, `-Inf`, `NaN`, or a decimal number
/// (Rust's own words such as `inf` or `nan` are refused).
pub(super) fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" | "Inf" => return Ok(f64::INFINITY),
        "-Inf" => return Ok(f64::NEG_INFINITY),
        "NaN" => return Ok(f64::NAN),
        _ => {}
    }
    let numeric = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'));
    match s.parse() {
        Ok(v) if numeric => Ok(v),
        _ => Err(format!("invalid value {s:?}")),
    }
}

/// Checks a metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub(super) fn check_metric_name(name: &str) -> Result<(), String> {
    check_name(name, true).map_err(|()| format!("invalid metric name {name:?}"))
}

/// Checks a label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn check_label_name(name: &str) -> Result<(), String> {
    check_name(name, false).map_err(|()| format!("invalid label name {name:?}"))
}

/// Checks `[a-zA-Z_][a-zA-Z0-9_]*`, with `:` allowed too if `colons`.
fn check_name(name: &str, colons: bool) -> Result<(), ()> {
    let ok = name.bytes().enumerate().all(|(i, b)| {
        b.is_ascii_alphabetic()
            || b == b'_'
            || (colons && b == b':')
            || (i > 0 && b.is_ascii_digit())
    });
    if ok && !name.is_empty() {
        Ok(())
    } else {
        Err(())
    }
}
