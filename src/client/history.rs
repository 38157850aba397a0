//! `switchboard history`: finished sessions from the daemon's history file
//! (`GET /admin/history`), newest first, one page at a time, as a table with
//! a last line naming the command for the next page.

use anyhow::anyhow;
use serde_json::Value;

use super::table::{Align, route, table};
use super::{Daemon, print_line, print_pretty, text};
use crate::cli::HistoryArgs;

/// `switchboard history`: one page of finished sessions.
pub async fn run(args: &HistoryArgs) -> anyhow::Result<()> {
    let daemon = Daemon::new(&args.client)?;
    let answer = daemon
        .json(daemon.get_with("/admin/history", &query(args))?)
        .await?;
    if args.client.json {
        return print_pretty(&answer);
    }
    print_line(page(&answer, args)?.trim_end())
}

/// The query parameters the flags ask for.
fn query(args: &HistoryArgs) -> Vec<(&'static str, Option<String>)> {
    vec![
        ("outcome", args.outcome.clone()),
        ("provider", args.provider.clone()),
        ("model", args.model.clone()),
        ("uid", args.uid.map(|uid| uid.to_string())),
        ("since", args.since.clone()),
        ("until", args.until.clone()),
        ("limit", args.limit.map(|limit| limit.to_string())),
        ("before", args.before.clone()),
    ]
}

/// The page as text: the table (or a line saying nothing matched), then
/// how to ask for the next page when there is one.
fn page(answer: &Value, args: &HistoryArgs) -> anyhow::Result<String> {
    let sessions = answer
        .get("sessions")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("the daemon's answer has no sessions list"))?;
    if sessions.is_empty() {
        return Ok("No sessions matched.\n".to_owned());
    }
    let mut out = history_table(sessions);
    if let Some(next) = answer.get("next").and_then(Value::as_str) {
        out.push_str(&format!("more: {}\n", next_page(args, next)));
    }
    Ok(out)
}

/// The sessions table, in the daemon's order (newest first).
fn history_table(sessions: &[Value]) -> String {
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|session| {
            vec![
                text(session, "id"),
                received(&text(session, "received_at")),
                route(session),
                text(session, "outcome"),
                text(session, "status"),
                duration(session),
                tokens(session),
                caller(session),
            ]
        })
        .collect();
    use Align::{Left, Right};
    let columns = [
        ("ID", Left),
        ("RECEIVED", Left),
        ("PROVIDER/MODEL", Left),
        ("OUTCOME", Left),
        ("STATUS", Right),
        ("DURATION", Right),
        ("TOKENS", Right),
        ("CLIENT", Left),
    ];
    table(&columns, &rows)
}

/// `2026-12-01T10:00:00.123Z` as `2026-12-01T10:00:00Z`: the daemon's UTC
/// time to the second, still a valid `--since`/`--until` value.
fn received(at: &str) -> String {
    match at.split_once('.') {
        Some((seconds, rest)) if rest.ends_with('Z') && seconds.len() == 19 => {
            format!("{seconds}Z")
        }
        _ => at.to_owned(),
    }
}

/// `duration_ms` as whole milliseconds: `203ms`.
fn duration(session: &Value) -> String {
    match session.get("duration_ms").and_then(Value::as_f64) {
        Some(ms) => format!("{}ms", ms.round()),
        None => "-".to_owned(),
    }
}

/// The total tokens the provider reported, or `-`.
fn tokens(session: &Value) -> String {
    match session.get("usage") {
        Some(usage) if usage.is_object() => text(usage, "total_tokens"),
        _ => "-".to_owned(),
    }
}

/// The caller as `process(pid)` when its name is known, else `uid:pid`.
fn caller(session: &Value) -> String {
    let Some(peer) = session.get("client").filter(|peer| peer.is_object()) else {
        return "-".to_owned();
    };
    match peer.get("process").and_then(Value::as_str) {
        Some(process) if peer.get("pid").is_some_and(|pid| !pid.is_null()) => {
            format!("{process}({})", text(peer, "pid"))
        }
        Some(process) => process.to_owned(),
        None => format!("{}:{}", text(peer, "uid"), text(peer, "pid")),
    }
}

/// The command that lists the next page: these flags and `--before next`.
fn next_page(args: &HistoryArgs, next: &str) -> String {
    let mut words = vec![
        "switchboard".to_owned(),
        "history".to_owned(),
        "--before".to_owned(),
        shell_word(next),
    ];
    let socket = args.client.socket.as_ref().map(|s| s.display().to_string());
    let flags = query(args)
        .into_iter()
        .filter(|(name, _)| *name != "before")
        .chain([("socket", socket)]);
    for (name, value) in flags {
        if let Some(value) = value {
            words.push(format!("--{name}"));
            words.push(shell_word(&value));
        }
    }
    words.join(" ")
}

/// `word` as a POSIX shell reads it: bare when safe, else single-quoted.
fn shell_word(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:=+@,%".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use serde_json::json;

    use super::*;
    use crate::cli::{Cli, Command};

    fn args(line: &[&str]) -> HistoryArgs {
        let words = ["switchboard", "history"].iter().chain(line);
        match Cli::parse_from(words).command {
            Command::History(args) => args,
            other => panic!("parsed as {other:?}"),
        }
    }

    fn sample() -> Value {
        json!({
            "sessions": [
                {"id": "0197a1b2-0002-7000-8000-000000000002", "provider": "fake",
                 "model": "instant", "requested_model": "fake/instant",
                 "received_at": "2026-12-01T10:00:01.250Z", "outcome": "COMPLETED",
                 "status": 200, "duration_ms": 12.6,
                 "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
                 "client": {"uid": 1000, "pid": 4242, "process": "curl"}},
                {"id": "0197a1b2-0001-7000-8000-000000000001", "provider": null,
                 "model": null, "requested_model": "nope/model",
                 "received_at": "2026-12-01T10:00:00.000Z", "outcome": "REJECTED",
                 "status": 404, "duration_ms": 0.2, "usage": null,
                 "client": {"uid": 1000, "pid": 17, "process": null}},
            ],
            "next": "0197a1b2-0001-7000-8000-000000000001",
        })
    }

    #[test]
    fn the_table_is_newest_first_with_a_line_for_the_next_page() {
        let expected = [
            "ID                                    RECEIVED              PROVIDER/MODEL  OUTCOME    STATUS  DURATION  TOKENS  CLIENT",
            "0197a1b2-0002-7000-8000-000000000002  2026-12-01T10:00:01Z  fake/instant    COMPLETED     200      13ms      12  curl(4242)",
            "0197a1b2-0001-7000-8000-000000000001  2026-12-01T10:00:00Z  nope/model      REJECTED      404       0ms       -  1000:17",
            "more: switchboard history --before 0197a1b2-0001-7000-8000-000000000001 --outcome completed --limit 2",
            "",
        ];
        let args = args(&["--outcome", "completed", "--limit", "2"]);
        assert_eq!(page(&sample(), &args).expect("a page"), expected.join("\n"));
    }

    #[test]
    fn an_empty_page_says_so() {
        let answer = json!({"sessions": [], "next": null});
        assert_eq!(
            page(&answer, &args(&[])).expect("a page"),
            "No sessions matched.\n"
        );
        assert!(page(&json!({}), &args(&[])).is_err());
    }

    #[test]
    fn flags_become_query_parameters() {
        let args = args(&[
            "--provider",
            "kimi",
            "--uid",
            "1000",
            "--since",
            "1h",
            "--json",
        ]);
        let given: Vec<(&str, String)> = query(&args)
            .into_iter()
            .filter_map(|(name, value)| Some((name, value?)))
            .collect();
        let expected = [("provider", "kimi"), ("uid", "1000"), ("since", "1h")];
        assert_eq!(given, expected.map(|(n, v)| (n, v.to_owned())));
    }

    #[test]
    fn the_next_page_command_quotes_what_the_shell_would_split() {
        let args = args(&["--model", "it's big", "--socket", "/tmp/sb.sock"]);
        assert_eq!(
            next_page(&args, "abc"),
            r"switchboard history --before abc --model 'it'\''s big' --socket /tmp/sb.sock"
        );
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn cells_fall_back_to_what_is_known() {
        assert_eq!(received("2026-12-01T10:00:00.123Z"), "2026-12-01T10:00:00Z");
        assert_eq!(received("not a time"), "not a time");
        assert_eq!(
            caller(&json!({"client": {"uid": 0, "pid": null, "process": "sh"}})),
            "sh"
        );
        assert_eq!(caller(&json!({"client": null})), "-");
        assert_eq!(duration(&json!({"duration_ms": null})), "-");
    }
}
