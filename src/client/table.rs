//! Plain-text tables for the client commands, and the cells they share:
//! a session's route and caller, ages and durations for people, and JSON
//! numbers shown with `-` for what is missing.

use serde_json::Value;

use super::text;

/// How a column's cells line up.
#[derive(Clone, Copy, Debug)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A table: a header row, then `rows`, each column as wide as its widest
/// cell, two spaces between columns, no trailing spaces; each line ends in
/// `\n`.
pub fn table(columns: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = columns.iter().map(|(h, _)| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = columns.iter().map(|(h, _)| (*h).to_owned()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(columns.iter().zip(&widths))
            .map(|(cell, ((_, align), &width))| match align {
                Align::Left => format!("{cell:<width$}"),
                Align::Right => format!("{cell:>width$}"),
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `label  value` lines, the labels padded to the widest; each line ends
/// in `\n`.
pub fn fields(fields: &[(&str, String)]) -> String {
    let width = fields
        .iter()
        .map(|(label, _)| label.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (label, value) in fields {
        out.push_str(&format!("{label:<width$}  {value}\n"));
    }
    out
}

/// `provider/model` as routed; for a session never routed (an unknown
/// model, a refusal) the model as requested.
pub fn route(session: &Value) -> String {
    let provider = session.get("provider").and_then(Value::as_str);
    match provider.filter(|p| !p.is_empty()) {
        Some(provider) => format!("{provider}/{}", text(session, "model")),
        None => match session.get("requested_model").and_then(Value::as_str) {
            Some(requested) => requested.to_owned(),
            None => "-/-".to_owned(),
        },
    }
}

/// `age_ms` in [`format_age`]'s form.
pub fn age(session: &Value) -> String {
    match session.get("age_ms").and_then(Value::as_f64) {
        // Whole milliseconds are all a human needs here.
        Some(ms) if ms >= 0.0 => format_age(ms as u64),
        _ => "-".to_owned(),
    }
}

/// A boolean field as `yes`/`no`.
pub fn yes_no(value: &Value, key: &str) -> String {
    match value.get(key).and_then(Value::as_bool) {
        Some(true) => "yes".to_owned(),
        Some(false) => "no".to_owned(),
        None => "-".to_owned(),
    }
}

/// The caller as `uid:pid` (`-` for what is unknown).
pub fn client(session: &Value) -> String {
    match session.get("client") {
        Some(peer) if peer.is_object() => format!("{}:{}", text(peer, "uid"), text(peer, "pid")),
        _ => "-".to_owned(),
    }
}

/// A duration for people: `850ms`, `12.3s`, `4m05s`, `2h03m` (truncated,
/// never rounded up into the next unit).
pub fn format_age(ms: u64) -> String {
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    if ms < 60_000 {
        let tenths = ms / 100;
        return format!("{}.{}s", tenths / 10, tenths % 10);
    }
    let secs = ms / 1_000;
    if secs < 3_600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3_600, secs % 3_600 / 60)
    }
}

/// Milliseconds with three decimals: `12.345 ms`.
pub fn format_ms(ms: f64) -> String {
    format!("{ms:.3} ms")
}

/// A number of milliseconds as a field at `key`, in [`format_ms`]'s form,
/// or `None` when it is missing or `null`.
pub fn ms_field(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_f64).map(format_ms)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ages_read_naturally() {
        assert_eq!(format_age(0), "0ms");
        assert_eq!(format_age(850), "850ms");
        assert_eq!(format_age(999), "999ms");
        assert_eq!(format_age(1_000), "1.0s");
        assert_eq!(format_age(12_345), "12.3s");
        assert_eq!(format_age(59_999), "59.9s");
        assert_eq!(format_age(60_000), "1m00s");
        assert_eq!(format_age(245_000), "4m05s");
        assert_eq!(format_age(3_599_999), "59m59s");
        assert_eq!(format_age(3_600_000), "1h00m");
        assert_eq!(format_age(7_380_000), "2h03m");
    }

    #[test]
    fn milliseconds_have_three_decimals() {
        assert_eq!(format_ms(12.345), "12.345 ms");
        assert_eq!(format_ms(0.0), "0.000 ms");
        assert_eq!(
            ms_field(&json!({"t": 200.5}), "t").as_deref(),
            Some("200.500 ms")
        );
        assert_eq!(ms_field(&json!({"t": null}), "t"), None);
    }

    #[test]
    fn table_columns_fit_their_widest_cell() {
        let rows = vec![
            vec!["a".to_owned(), "5".to_owned(), "x".to_owned()],
            vec!["longer".to_owned(), "1234".to_owned(), String::new()],
        ];
        let columns = [
            ("ID", Align::Left),
            ("N", Align::Right),
            ("NOTE", Align::Left),
        ];
        assert_eq!(
            table(&columns, &rows),
            "ID         N  NOTE\n\
             a          5  x\n\
             longer  1234\n"
        );
    }

    #[test]
    fn fields_line_up_their_values() {
        let lines = fields(&[("id", "s1".to_owned()), ("request id", "r1".to_owned())]);
        assert_eq!(lines, "id          s1\nrequest id  r1\n");
    }

    #[test]
    fn cells_show_route_age_and_client() {
        let session = json!({
            "id": "s1", "provider": "mock", "model": "echo", "phase": "QUEUED",
            "age_ms": 12_345, "stream": true, "client": {"uid": 1000, "pid": 42},
        });
        assert_eq!(route(&session), "mock/echo");
        let unrouted = json!({"provider": null, "model": null, "requested_model": "nope/x"});
        assert_eq!(route(&unrouted), "nope/x");
        assert_eq!(route(&json!({})), "-/-");
        assert_eq!(age(&session), "12.3s");
        assert_eq!(yes_no(&session, "stream"), "yes");
        assert_eq!(client(&session), "1000:42");
        assert_eq!(client(&json!({"client": {"uid": 7, "pid": null}})), "7:-");
        assert_eq!(client(&json!({"client": null})), "-");
    }
}
