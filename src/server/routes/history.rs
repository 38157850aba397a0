//! `GET /admin/history` (finished sessions from the history file, newest
//! first, a page at a time) and `GET /admin/usage` (token totals by caller,
//! process, provider or model). Both are answered by the store's reader
//! threads; bad filters get 400 naming the parameter.

use hyper::Request;
use hyper::body::Incoming;
use serde_json::{Value, json};
use switchboard_actors::GatewayError;
use switchboard_actors::ids::SessionId;
use switchboard_actors::outcome::Outcome;
use switchboard_actors::store::{History, HistoryFilter, UsageBy, UsageTotals};

use super::query::Params;
use super::records::{record, rfc3339};
use crate::server::Ctx;
use crate::server::error;
use crate::server::http::{Answer, ok};

/// Sessions per page when `limit` is not given.
const DEFAULT_LIMIT: usize = 100;

/// The most sessions one page may hold.
const MAX_LIMIT: usize = 1_000;

const HISTORY_PARAMS: &[&str] = &[
    "outcome", "provider", "model", "uid", "since", "until", "limit", "before",
];

/// `GET /admin/history`.
pub async fn history(req: &Request<Incoming>, cx: &Ctx) -> Answer {
    let filter = match history_filter(req.uri().query().unwrap_or("")) {
        Ok(filter) => filter,
        Err(error) => return error::response(&error, None),
    };
    let Some(store) = &cx.actors.common.history else {
        return disabled();
    };
    match store.send(History(filter)).await {
        Ok(Ok(page)) => {
            let sessions: Vec<Value> = page.sessions.iter().map(record).collect();
            ok(&json!({ "sessions": sessions, "next": page.next }))
        }
        Ok(Err(store_error)) => error::response(&store_error.into(), None),
        Err(_) => unavailable(),
    }
}

fn history_filter(query: &str) -> Result<HistoryFilter, GatewayError> {
    let params = Params::parse(query, HISTORY_PARAMS)?;
    let outcomes = "must be one of COMPLETED, TIMEOUT, ERROR, CANCELLED, REJECTED, INTERRUPTED";
    let limit = params
        .parsed("limit", "must be a whole number from 1 to 1000", |text| {
            text.parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
        })?
        .unwrap_or(DEFAULT_LIMIT);
    Ok(HistoryFilter {
        outcome: params.parsed("outcome", outcomes, Outcome::parse)?,
        provider: params.text("provider").map(str::to_owned),
        model: params.text("model").map(str::to_owned),
        uid: params.parsed("uid", "must be a numeric uid", |t| t.parse().ok())?,
        since: params.time("since")?,
        until: params.time("until")?,
        before: params.parsed(
            "before",
            "must be the `next` of a previous page",
            SessionId::parse,
        )?,
        limit,
    })
}

const USAGE_PARAMS: &[&str] = &["by", "since", "until"];

/// `GET /admin/usage`.
pub async fn usage(req: &Request<Incoming>, cx: &Ctx) -> Answer {
    let params = match Params::parse(req.uri().query().unwrap_or(""), USAGE_PARAMS) {
        Ok(params) => params,
        Err(error) => return error::response(&error, None),
    };
    let ask = (|| {
        let by = params
            .parsed(
                "by",
                "must be uid, process, provider or model",
                UsageBy::parse,
            )?
            .unwrap_or(UsageBy::Process);
        Ok::<_, GatewayError>(UsageTotals {
            by,
            since: params.time("since")?,
            until: params.time("until")?,
            prices: cx.actors.common.prices(),
        })
    })();
    let ask = match ask {
        Ok(ask) => ask,
        Err(error) => return error::response(&error, None),
    };
    let Some(store) = &cx.actors.common.history else {
        return disabled();
    };
    let (by, since, until) = (ask.by, ask.since, ask.until);
    match store.send(ask).await {
        Ok(Ok(rows)) => {
            let rows: Vec<Value> = rows
                .iter()
                .map(|row| {
                    json!({
                        "key": row.key,
                        "requests": row.requests,
                        "errors": row.errors,
                        "prompt_tokens": row.prompt_tokens,
                        "completion_tokens": row.completion_tokens,
                        "total_tokens": row.total_tokens,
                        "cost": row.cost,
                    })
                })
                .collect();
            ok(&json!({
                "by": by.as_str(),
                "since": since.map(rfc3339),
                "until": until.map(rfc3339),
                "rows": rows,
            }))
        }
        Ok(Err(store_error)) => error::response(&store_error.into(), None),
        Err(_) => unavailable(),
    }
}

/// The answer when `history.enabled = false`.
pub fn disabled() -> Answer {
    let error = switchboard_actors::StoreError::Disabled;
    error::response(&error.into(), None)
}

fn unavailable() -> Answer {
    let error = GatewayError::HistoryUnavailable("the history store is not running".into());
    error::response(&error, None)
}
