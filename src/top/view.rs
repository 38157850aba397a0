//! How a [`State`] looks: the cells of the provider and session tables
//! (one definition), drawn either as a ratatui frame for the live view or
//! as plain text for `top --once` (no control codes, columns lined up like
//! the other client commands' tables).

use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState};

use super::data::Health;
use super::state::{Filter, State};
use super::window::Rates;
use crate::client::table::{Align, format_age, table};

/// The provider table's columns.
const PROVIDER_COLUMNS: [(&str, Align); 10] = [
    ("PROVIDER", Align::Left),
    ("HEALTH", Align::Left),
    ("IN FLIGHT", Align::Right),
    ("MAX", Align::Right),
    ("QUEUED", Align::Right),
    ("REQ/S", Align::Right),
    ("ERRORS", Align::Right),
    ("P50", Align::Right),
    ("P99", Align::Right),
    ("TOK/S", Align::Right),
];

/// The session table's columns.
const SESSION_COLUMNS: [(&str, Align); 5] = [
    ("ID", Align::Left),
    ("PROVIDER/MODEL", Align::Left),
    ("PHASE", Align::Left),
    ("AGE", Align::Right),
    ("CLIENT", Align::Left),
];

/// The keys, as the live view's last line lists them.
const KEYS: &str = "↑/↓ select  c cancel  f filter  q quit";

/// One row of cells per provider the filter keeps.
fn provider_rows(state: &State) -> Vec<Vec<String>> {
    state
        .providers()
        .into_iter()
        .map(|(p, rates)| {
            let mut row = vec![
                p.name.clone(),
                health(p.health),
                p.in_flight.to_string(),
                p.max_concurrency.to_string(),
                p.queued.to_string(),
            ];
            row.extend(rate_cells(rates.as_ref()));
            row
        })
        .collect()
}

/// REQ/S, ERRORS, P50, P99, TOK/S; `-` without a window or observations.
fn rate_cells(rates: Option<&Rates>) -> [String; 5] {
    let dash = || "-".to_owned();
    let Some(r) = rates else {
        return [dash(), dash(), dash(), dash(), dash()];
    };
    [
        format!("{:.2}", r.requests_per_s),
        r.errors.to_string(),
        r.p50.map_or_else(dash, latency),
        r.p99.map_or_else(dash, latency),
        format!("{:.1}", r.tokens_per_s),
    ]
}

/// One row of cells per session the filter keeps, oldest first.
fn session_rows(state: &State) -> Vec<Vec<String>> {
    state
        .sessions()
        .into_iter()
        .map(|s| {
            let phase = match s.queue_position {
                Some(position) => format!("{} #{position}", s.phase),
                None => s.phase.clone(),
            };
            vec![
                s.id.clone(),
                s.route.clone(),
                phase,
                format_age(millis(s.age)),
                s.client.clone(),
            ]
        })
        .collect()
}

fn health(health: Health) -> String {
    match health {
        Health::Healthy => "ok".to_owned(),
        Health::Cooling(left) => format!("cooling {}", format_age(millis(left))),
        Health::Unhealthy => "unhealthy".to_owned(),
    }
}

/// Seconds as `850ms` or `2.35s`.
fn latency(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{:.0}ms", seconds * 1_000.0)
    } else {
        format!("{seconds:.2}s")
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The first line: the daemon's totals, the window, the filter.
fn summary(state: &State) -> String {
    let totals = match &state.fetched {
        Some(f) => format!(
            "{} · {} live · {} queued",
            f.totals.status, f.totals.live, f.totals.queued
        ),
        None => "connecting…".to_owned(),
    };
    let window = match state.window_covered() {
        Some(covered) => format!("rates over the last {}", format_age(millis(covered))),
        None => "rates: waiting for a second scrape".to_owned(),
    };
    let filter = match &state.filter {
        Filter::All => "all providers".to_owned(),
        Filter::Provider(name) => format!("provider {name} only"),
    };
    format!("switchboard top · {totals} · {window} · {filter}")
}

/// The frame as plain text, for `top --once`.
pub fn text(state: &State) -> String {
    let mut out = summary(state);
    out.push('\n');
    if let Some(error) = &state.error {
        out.push_str(&format!("error: {error}\n"));
    }
    out.push('\n');
    out.push_str(&table(&PROVIDER_COLUMNS, &provider_rows(state)));
    out.push('\n');
    let sessions = session_rows(state);
    if sessions.is_empty() {
        out.push_str("No live sessions.\n");
    } else {
        out.push_str(&table(&SESSION_COLUMNS, &sessions));
    }
    out
}

/// Draws the live view: summary, providers, sessions (the selected one
/// highlighted), then the keys and the last message or error.
pub fn draw(frame: &mut Frame, state: &State) {
    let providers = provider_rows(state);
    let provider_height = u16::try_from(providers.len()).unwrap_or(u16::MAX);
    let [top, middle, bottom, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(provider_height.saturating_add(3)),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(summary(state)), top);
    frame.render_widget(widget(&PROVIDER_COLUMNS, &providers, "Providers"), middle);
    draw_sessions(frame, state, bottom);
    let status = state
        .error
        .as_deref()
        .map(|e| format!("error: {e}"))
        .or_else(|| state.message.clone())
        .unwrap_or_default();
    let line = Line::from(format!("{KEYS}   {status}"));
    frame.render_widget(Paragraph::new(line), footer);
}

fn draw_sessions(frame: &mut Frame, state: &State, area: Rect) {
    let rows = session_rows(state);
    let title = format!("Live sessions ({}, oldest first)", rows.len());
    let table = widget(&SESSION_COLUMNS, &rows, &title)
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut selection = TableState::default().with_selected(state.selected_row());
    frame.render_stateful_widget(table, area, &mut selection);
}

/// A bordered table, each column as wide as its widest cell.
fn widget<'a>(columns: &[(&'a str, Align)], rows: &'a [Vec<String>], title: &str) -> Table<'a> {
    let widths = columns.iter().enumerate().map(|(i, (header, _))| {
        let widest = rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
        Constraint::Length(u16::try_from(widest.max(header.len())).unwrap_or(u16::MAX))
    });
    let cell = |text: &'a str, align: Align| match align {
        Align::Left => Cell::from(Line::from(text).left_aligned()),
        Align::Right => Cell::from(Line::from(text).right_aligned()),
    };
    let header = Row::new(columns.iter().map(|(h, a)| cell(h, *a)))
        .style(Style::default().add_modifier(Modifier::BOLD));
    let body = rows
        .iter()
        .map(|row| Row::new(row.iter().zip(columns).map(|(text, (_, a))| cell(text, *a))));
    Table::new(body, widths)
        .header(header)
        .column_spacing(2)
        .block(Block::bordered().title(title.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_read_as_milliseconds_or_seconds() {
        assert_eq!(latency(0.0123), "12ms");
        assert_eq!(latency(2.345), "2.35s");
    }

    #[test]
    fn without_a_window_every_rate_is_a_dash() {
        assert!(rate_cells(None).iter().all(|c| c == "-"));
        let rates = Rates {
            requests_per_s: 1.5,
            errors: 2,
            p50: None,
            p99: Some(0.5),
            tokens_per_s: 10.0,
        };
        assert_eq!(
            rate_cells(Some(&rates)),
            ["1.50", "2", "-", "500ms", "10.0"]
        );
    }

    #[test]
    fn an_empty_state_prints_without_control_codes() {
        let text = text(&State::default());
        assert!(text.starts_with("switchboard top · connecting…"));
        assert!(text.contains("No live sessions."));
        assert!(!text.contains('\u{1b}'));
    }
}
