//! `switchboard usage`: requests, errors, tokens and cost added up by
//! caller, process, provider or model over a period (`GET /admin/usage`),
//! as a table with a TOTAL line.

use anyhow::anyhow;
use serde_json::Value;

use super::table::{Align, table};
use super::{Daemon, print_line, print_pretty, text};
use crate::cli::UsageArgs;

/// The `--since` value that means "the whole history file".
pub const SINCE_ALL: &str = "all";

/// `switchboard usage`: the totals as a table.
pub async fn run(args: &UsageArgs) -> anyhow::Result<()> {
    let daemon = Daemon::new(&args.client)?;
    let answer = daemon
        .json(daemon.get_with("/admin/usage", &query(args))?)
        .await?;
    if args.client.json {
        return print_pretty(&answer);
    }
    print_line(totals(&answer)?.trim_end())
}

/// The query parameters the flags ask for; `--since all` sends none.
fn query(args: &UsageArgs) -> Vec<(&'static str, Option<String>)> {
    let since = Some(args.since.clone()).filter(|since| !since.eq_ignore_ascii_case(SINCE_ALL));
    vec![
        ("by", Some(args.by.as_str().to_owned())),
        ("since", since),
        ("until", args.until.clone()),
    ]
}

/// The usage table, one row per key and a TOTAL line, or a line saying no
/// session was in the period.
fn totals(answer: &Value) -> anyhow::Result<String> {
    let rows = answer
        .get("rows")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("the daemon's answer has no rows"))?;
    if rows.is_empty() {
        return Ok("No sessions in this period.\n".to_owned());
    }
    let mut cells: Vec<Vec<String>> = rows.iter().map(row).collect();
    cells.push(total(rows));
    use Align::{Left, Right};
    let columns = [
        ("KEY", Left),
        ("REQUESTS", Right),
        ("ERRORS", Right),
        ("PROMPT", Right),
        ("COMPLETION", Right),
        ("TOTAL", Right),
        ("COST", Right),
    ];
    Ok(table(&columns, &cells))
}

/// The counted columns, in table order.
const COUNTS: [&str; 5] = [
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
];

/// One key's cells.
fn row(row: &Value) -> Vec<String> {
    let mut cells = vec![text(row, "key")];
    cells.extend(COUNTS.iter().map(|key| text(row, key)));
    cells.push(cost(row.get("cost").and_then(Value::as_f64)));
    cells
}

/// The TOTAL line: each count summed; the cost summed over the keys that
/// have one (`-` when none has).
fn total(rows: &[Value]) -> Vec<String> {
    let sum = |key: &str| -> u64 { rows.iter().filter_map(|r| r.get(key)?.as_u64()).sum() };
    let mut cells = vec!["TOTAL".to_owned()];
    cells.extend(COUNTS.iter().map(|key| sum(key).to_string()));
    let costs: Vec<f64> = rows
        .iter()
        .filter_map(|r| r.get("cost")?.as_f64())
        .collect();
    cells.push(cost((!costs.is_empty()).then(|| costs.iter().sum())));
    cells
}

/// A cost with four decimals, or `-` when the model has no price.
fn cost(cost: Option<f64>) -> String {
    cost.map_or_else(|| "-".to_owned(), |cost| format!("{cost:.4}"))
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use serde_json::json;

    use super::*;
    use crate::cli::{Cli, Command};

    fn args(line: &[&str]) -> UsageArgs {
        let words = ["switchboard", "usage"].iter().chain(line);
        match Cli::parse_from(words).command {
            Command::Usage(args) => args,
            other => panic!("parsed as {other:?}"),
        }
    }

    fn given(args: &UsageArgs) -> Vec<(&'static str, String)> {
        query(args)
            .into_iter()
            .filter_map(|(name, value)| Some((name, value?)))
            .collect()
    }

    #[test]
    fn the_defaults_are_by_process_over_the_last_day() {
        let expected = [("by", "process"), ("since", "24h")];
        assert_eq!(given(&args(&[])), expected.map(|(n, v)| (n, v.to_owned())));
    }

    #[test]
    fn since_all_asks_for_the_whole_file() {
        let args = args(&["--by", "model", "--since", "all", "--until", "1h"]);
        let expected = [("by", "model"), ("until", "1h")];
        assert_eq!(given(&args), expected.map(|(n, v)| (n, v.to_owned())));
    }

    #[test]
    fn the_table_has_a_total_line_and_costs_with_four_decimals() {
        let answer = json!({"by": "model", "since": null, "until": null, "rows": [
            {"key": "kimi/k2", "requests": 3, "errors": 1, "prompt_tokens": 120,
             "completion_tokens": 300, "total_tokens": 420, "cost": 0.001_23},
            {"key": "fake/instant", "requests": 2, "errors": 0, "prompt_tokens": 10,
             "completion_tokens": 20, "total_tokens": 30, "cost": null},
        ]});
        let expected = [
            "KEY           REQUESTS  ERRORS  PROMPT  COMPLETION  TOTAL    COST",
            "kimi/k2              3       1     120         300    420  0.0012",
            "fake/instant         2       0      10          20     30       -",
            "TOTAL                5       1     130         320    450  0.0012",
            "",
        ];
        assert_eq!(totals(&answer).expect("a table"), expected.join("\n"));
    }

    #[test]
    fn no_prices_means_no_total_cost_and_no_rows_says_so() {
        let rows = [
            json!({"key": "0", "requests": 1, "errors": 0, "prompt_tokens": 1,
                           "completion_tokens": 1, "total_tokens": 2, "cost": null}),
        ];
        assert_eq!(total(&rows), ["TOTAL", "1", "0", "1", "1", "2", "-"]);
        let empty = json!({"rows": []});
        assert_eq!(
            totals(&empty).expect("text"),
            "No sessions in this period.\n"
        );
    }
}
