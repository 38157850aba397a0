//! The command line: `serve` runs the daemon; the other commands are clients
//! of a running daemon over its socket.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::logging::LogFormat;

/// Switchboard: many programs, one local gateway to LLM providers.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (as systemd and containers run daemons).
    Serve(ServeArgs),
    /// Send a chat request and print the answer.
    Chat(ChatArgs),
    /// List live sessions.
    Sessions(ClientArgs),
    /// Show one session and its phases.
    Session(SessionArgs),
    /// Cancel a live session.
    Cancel(SessionArgs),
    /// Ask the daemon to drain and exit.
    Drain(ClientArgs),
    /// List finished sessions from the history file, newest first.
    History(HistoryArgs),
}

/// `serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Settings file (default: the built-in settings.toml).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Socket path (overrides server.socket).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Log line format.
    #[arg(long, value_enum, default_value = "json")]
    pub log_format: LogFormat,
}

/// Options every client command takes.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The daemon's socket (default: SWITCHBOARD__SERVER__SOCKET, else the daemon's default).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Print the daemon's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `session` and `cancel` options.
#[derive(Debug, Args)]
pub struct SessionArgs {
    /// The session id (from `x-session-id`, `switchboard sessions` or `switchboard history`).
    pub id: String,
    /// Socket and output options.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `chat` options.
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// The model, as `<provider>/<model>`.
    #[arg(short, long, default_value = "mock/echo")]
    pub model: String,
    /// Print tokens as they arrive.
    #[arg(long)]
    pub stream: bool,
    /// The prompt.
    #[arg(required = true)]
    pub prompt: Vec<String>,
    /// Socket and output options.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `history` options.
#[derive(Debug, Args)]
#[command(
    after_help = "Times (--since, --until) are RFC 3339 (2026-12-01T10:00:00Z, an offset \
allowed) or a duration back from now (90s, 15m, 1h, 7d).\n\
A page that is not the last ends with a `more:` line: the command for the next one."
)]
pub struct HistoryArgs {
    /// Only this outcome: COMPLETED, TIMEOUT, ERROR, CANCELLED, REJECTED or INTERRUPTED.
    #[arg(long, value_name = "OUTCOME")]
    pub outcome: Option<String>,
    /// Only requests routed to this provider.
    #[arg(long, value_name = "NAME")]
    pub provider: Option<String>,
    /// Only this model, as the provider knows it or as requested.
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Only requests from this user id.
    #[arg(long, value_name = "N")]
    pub uid: Option<u32>,
    /// Only requests received at or after this time.
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only requests received before this time.
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// At most this many sessions, 1 to 1000 (the daemon's default: 100).
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// The next page: sessions older than this cursor (the previous page's `more:` line).
    #[arg(long, value_name = "CURSOR")]
    pub before: Option<String>,
    /// Socket and output options.
    #[command(flatten)]
    pub client: ClientArgs,
}
