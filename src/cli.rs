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
    /// The session id (from `x-session-id` or `switchboard sessions`).
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
