//! Reading the history file: pages of finished sessions, one session with
//! its phases, and usage totals.
//!
//! Session ids are UUID v7, whose text begins with the arrival time in
//! milliseconds, so "newest first" is `ORDER BY id DESC` and a time range is
//! an id range: both ride the unique index on `id`, and no second index has
//! to be kept up to date on every write.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params_from_iter};

use super::id_bound;
use super::rows::{COLUMNS, read};
use crate::error::StoreError;
use crate::ids::SessionId;
use crate::outcome::Outcome;
use crate::record::SessionRecord;
use crate::settings::Prices;

/// Which finished sessions to list.
#[derive(Clone, Debug, Default)]
pub struct HistoryFilter {
    /// Only this outcome.
    pub outcome: Option<Outcome>,
    /// Only calls to this provider.
    pub provider: Option<String>,
    /// Only this model (as the provider knows it, or as requested).
    pub model: Option<String>,
    /// Only this caller.
    pub uid: Option<u32>,
    /// Received at or after.
    pub since: Option<SystemTime>,
    /// Only sessions received before this instant (the cursor moves it back).
    pub until: Option<SystemTime>,
    /// Older than this session (the cursor of the previous page).
    pub before: Option<SessionId>,
    /// At most this many.
    pub limit: usize,
}

/// One page of history, newest first.
#[derive(Clone, Debug)]
pub struct HistoryPage {
    /// The sessions (without their phases).
    pub sessions: Vec<SessionRecord>,
    /// The cursor for the next page, when there is one.
    pub next: Option<SessionId>,
}

/// What usage is added up by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageBy {
    /// The caller's uid.
    Uid,
    /// The caller's process name.
    Process,
    /// The provider called.
    Provider,
    /// `<provider>/<model>`.
    Model,
}

impl UsageBy {
    /// Reads `uid`, `process`, `provider` or `model`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "uid" => Some(UsageBy::Uid),
            "process" => Some(UsageBy::Process),
            "provider" => Some(UsageBy::Provider),
            "model" => Some(UsageBy::Model),
            _ => None,
        }
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            UsageBy::Uid => "uid",
            UsageBy::Process => "process",
            UsageBy::Provider => "provider",
            UsageBy::Model => "model",
        }
    }

    fn key_sql(self) -> &'static str {
        match self {
            UsageBy::Uid => "COALESCE(CAST(uid AS TEXT), 'unknown')",
            UsageBy::Process => "COALESCE(process, 'unknown')",
            UsageBy::Provider => "COALESCE(provider, 'none')",
            UsageBy::Model => "COALESCE(provider || '/' || model, requested_model)",
        }
    }
}

/// One key's totals.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UsageRow {
    /// The uid, process, provider or model.
    pub key: String,
    /// Sessions that ended in this row's key, whatever their outcome.
    pub requests: u64,
    /// Those that did not complete.
    pub errors: u64,
    /// Prompt tokens reported.
    pub prompt_tokens: u64,
    /// Completion tokens reported.
    pub completion_tokens: u64,
    /// Total tokens reported.
    pub total_tokens: u64,
    /// Priced tokens' cost, when any of its models has a price.
    pub cost: Option<f64>,
}

fn ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The `WHERE` clause of a time range, and its values.
fn range(
    since: Option<SystemTime>,
    until: Option<SystemTime>,
    sql: &mut String,
    values: &mut Vec<Value>,
) {
    if let Some(since) = since {
        sql.push_str(" AND id >= ?");
        values.push(Value::Text(id_bound(ms(since))));
    }
    if let Some(until) = until {
        sql.push_str(" AND id < ?");
        values.push(Value::Text(id_bound(ms(until))));
    }
}

/// A page of finished sessions matching `filter`, newest first.
pub fn history(conn: &Connection, filter: &HistoryFilter) -> Result<HistoryPage, StoreError> {
    let mut sql = format!("SELECT {COLUMNS} FROM sessions WHERE outcome IS NOT NULL");
    let mut values = Vec::new();
    let text = |t: &str| Value::Text(t.to_owned());
    if let Some(outcome) = filter.outcome {
        sql.push_str(" AND outcome = ?");
        values.push(text(outcome.as_str()));
    }
    if let Some(provider) = &filter.provider {
        sql.push_str(" AND provider = ?");
        values.push(text(provider));
    }
    if let Some(model) = &filter.model {
        sql.push_str(" AND (model = ? OR requested_model = ?)");
        values.extend([text(model), text(model)]);
    }
    if let Some(uid) = filter.uid {
        sql.push_str(" AND uid = ?");
        values.push(Value::Integer(i64::from(uid)));
    }
    if let Some(before) = filter.before {
        sql.push_str(" AND id < ?");
        values.push(Value::Text(before.to_string()));
    }
    range(filter.since, filter.until, &mut sql, &mut values);
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    values.push(Value::Integer(filter.limit as i64 + 1));
    let mut statement = conn.prepare_cached(&sql)?;
    let mut sessions: Vec<SessionRecord> = statement
        .query_map(params_from_iter(values), |row| read(row, false))?
        .collect::<Result<_, _>>()?;
    let next = (sessions.len() > filter.limit).then(|| {
        sessions.truncate(filter.limit);
        sessions.last().map(|s| s.id)
    });
    Ok(HistoryPage {
        sessions,
        next: next.flatten(),
    })
}

/// One stored session with its phases.
pub fn session(conn: &Connection, id: SessionId) -> Result<Option<SessionRecord>, StoreError> {
    let sql = format!("SELECT {COLUMNS}, phases FROM sessions WHERE id = ?1");
    let mut statement = conn.prepare_cached(&sql)?;
    Ok(statement
        .query_row([id.to_string()], |row| read(row, true))
        .optional()?)
}

/// Usage of finished sessions received in the range, added up `by`, with
/// `cost` from `prices`; largest total first.
pub fn usage(
    conn: &Connection,
    by: UsageBy,
    since: Option<SystemTime>,
    until: Option<SystemTime>,
    prices: &Prices,
) -> Result<Vec<UsageRow>, StoreError> {
    let mut sql = format!(
        "SELECT {key}, provider, model, count(*), sum(outcome <> 'COMPLETED'),
                total(prompt_tokens), total(completion_tokens),
                total(COALESCE(total_tokens, COALESCE(prompt_tokens, 0) + COALESCE(completion_tokens, 0)))
         FROM sessions WHERE outcome IS NOT NULL",
        key = by.key_sql()
    );
    let mut values = Vec::new();
    range(since, until, &mut sql, &mut values);
    sql.push_str(" GROUP BY 1, 2, 3");
    let mut statement = conn.prepare_cached(&sql)?;
    let mut rows = statement.query(params_from_iter(values))?;
    let mut totals: BTreeMap<String, UsageRow> = BTreeMap::new();
    while let Some(row) = rows.next()? {
        let key: String = row.get(0)?;
        let provider: Option<String> = row.get(1)?;
        let model: Option<String> = row.get(2)?;
        let (prompt, completion): (f64, f64) = (row.get(5)?, row.get(6)?);
        let entry = totals.entry(key.clone()).or_insert_with(|| UsageRow {
            key,
            ..UsageRow::default()
        });
        entry.requests += row.get::<_, i64>(3)? as u64;
        entry.errors += row.get::<_, i64>(4)? as u64;
        entry.prompt_tokens += prompt as u64;
        entry.completion_tokens += completion as u64;
        entry.total_tokens += row.get::<_, f64>(7)? as u64;
        if let (Some(provider), Some(model)) = (provider, model)
            && let Some(cost) = prices.cost(&provider, &model, prompt, completion)
        {
            *entry.cost.get_or_insert(0.0) += cost;
        }
    }
    let mut rows: Vec<UsageRow> = totals.into_values().collect();
    rows.sort_by(|a, b| b.total_tokens.cmp(&a.total_tokens).then(a.key.cmp(&b.key)));
    Ok(rows)
}
