//! The command line: `serve` runs the daemon; `config check`, `env` and
//! `completions` work alone; the other commands are clients of a running
//! daemon over its socket (`mcp` too: it serves the Model Context Protocol
//! on stdio and calls the daemon for every tool call).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// Make the daemon re-read its settings file and the environment, and
    /// print what changed (and what needs a restart).
    Reload(ClientArgs),
    /// List finished sessions from the history file, newest first.
    History(HistoryArgs),
    /// Add up requests, errors, tokens and cost by user, process, provider or model.
    Usage(UsageArgs),
    /// Follow phase events as they happen, one line each, until Ctrl-C.
    Events(EventsArgs),
    /// Print the daemon's metrics as Prometheus scrapes them (OpenMetrics text).
    Metrics(MetricsArgs),
    /// Watch providers and live sessions, refreshed every second (like `docker stats`).
    Top(TopArgs),
    /// Work with settings files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
    /// Print the shell lines that point tools (OpenAI and Anthropic SDKs, Claude Code, Codex,
    /// aider) at the daemon's loopback TCP listener: `eval "$(switchboard env)"`.
    Env(EnvArgs),
    /// Serve the Model Context Protocol on stdin/stdout for an MCP client (Claude Desktop,
    /// Claude Code, …): tools that chat and inspect sessions through the daemon.
    Mcp(McpArgs),
    /// Install or remove the systemd user units (socket activation, notify, watchdog).
    #[command(subcommand)]
    Service(ServiceCommand),
}

/// `service` subcommands.
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Write switchboard.socket and switchboard.service as user units and enable the socket.
    Install(ServiceArgs),
    /// Disable and remove the units (settings, keys and history are kept).
    Uninstall(ServiceArgs),
}

/// `service install|uninstall` options.
#[derive(Debug, Args)]
#[command(
    after_help = "Units go to $XDG_CONFIG_HOME/systemd/user (default ~/.config/systemd/user), settings to \
$XDG_CONFIG_HOME/switchboard/settings.toml (written from the built-in defaults if absent) and API keys to \
$XDG_CONFIG_HOME/switchboard/env (NAME=value lines, mode 0600). Logs: journalctl --user -u switchboard."
)]
pub struct ServiceArgs {
    /// As units of the user's own service manager (the only kind offered: the socket is the user's).
    #[arg(long, default_value_t = true)]
    pub user: bool,
    /// Write or remove the files, but do not run systemctl.
    #[arg(long)]
    pub no_enable: bool,
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

/// `usage` options.
#[derive(Debug, Args)]
#[command(
    after_help = "Times are RFC 3339 (2026-12-01T10:00:00Z, an offset allowed) or a \
duration back from now (90s, 15m, 1h, 7d); `--since all` counts the whole history file.\n\
COST is `-` for models without input_price_per_mtok/output_price_per_mtok."
)]
pub struct UsageArgs {
    /// What to add up by.
    #[arg(long, value_enum, default_value = "process")]
    pub by: UsageBy,
    /// Count requests received at or after this time; `all` for no limit.
    #[arg(long, value_name = "WHEN", default_value = "24h")]
    pub since: String,
    /// Count requests received before this time (default: now).
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// Socket and output options.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// What `usage` adds up by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum UsageBy {
    /// The caller's user id.
    Uid,
    /// The caller's process name.
    Process,
    /// The provider called.
    Provider,
    /// `<provider>/<model>`.
    Model,
}

impl UsageBy {
    /// Its name, as the daemon's `by` parameter takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            UsageBy::Uid => "uid",
            UsageBy::Process => "process",
            UsageBy::Provider => "provider",
            UsageBy::Model => "model",
        }
    }
}

/// `events` options.
#[derive(Debug, Args)]
#[command(
    after_help = "Each line: <at>  <session id>  <provider>/<model>  <PHASE>  attempt <n>  \
<detail>; with --json, each event's JSON as the daemon sent it.\n\
Exits 0 on Ctrl-C or when the daemon ends the stream; non-zero if the daemon dropped this \
reader for falling behind (the reason goes to stderr)."
)]
pub struct EventsArgs {
    /// Only this session's events.
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
    /// Only events of sessions routed to this provider.
    #[arg(long, value_name = "NAME")]
    pub provider: Option<String>,
    /// Only this phase, e.g. PROVIDER_CALL_START or COMPLETED.
    #[arg(long, value_name = "PHASE")]
    pub phase: Option<String>,
    /// Socket and output options (`--json`: one JSON object per line).
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `metrics` options.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// The daemon's socket (default: SWITCHBOARD__SERVER__SOCKET, else the daemon's default).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

/// `top` options.
#[derive(Debug, Args)]
#[command(
    after_help = "Keys: Up/Down select a session, c cancels it, f cycles the provider filter, \
q, Esc or Ctrl-C quit.\n\
REQ/S, ERRORS, P50, P99 and TOK/S (output tokens) cover the last minute (less until top has run that long), \
from the daemon's metrics scraped every second; `-` where no request ended in the window. \
--once scrapes twice, a second apart, and prints one frame as plain text."
)]
pub struct TopArgs {
    /// The daemon's socket (default: SWITCHBOARD__SERVER__SOCKET, else the daemon's default).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Print one frame as plain text and exit (for scripts).
    #[arg(long)]
    pub once: bool,
    /// Only this provider's row and sessions.
    #[arg(long, value_name = "NAME")]
    pub provider: Option<String>,
}

/// The `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a settings file as `serve` would and print the settings in force, secrets redacted.
    #[command(
        after_help = "Exit status 0 when the settings are valid, 1 (with the reason, naming the key) \
when not. SWITCHBOARD__* variables apply, as they do for `serve`."
    )]
    Check(ConfigCheckArgs),
}

/// `config check` options.
#[derive(Debug, Args)]
pub struct ConfigCheckArgs {
    /// Settings file (default: the built-in settings.toml).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

/// `completions` options.
#[derive(Debug, Args)]
#[command(
    after_help = "bash: switchboard completions bash > ~/.local/share/bash-completion/completions/switchboard\n\
zsh:  switchboard completions zsh > ~/.zfunc/_switchboard (with ~/.zfunc in $fpath)\n\
fish: switchboard completions fish > ~/.config/fish/completions/switchboard.fish"
)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

/// The shells `completions` writes for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

impl CompletionShell {
    /// The generator clap_complete has for it.
    pub fn generator(self) -> clap_complete::Shell {
        match self {
            CompletionShell::Bash => clap_complete::Shell::Bash,
            CompletionShell::Zsh => clap_complete::Shell::Zsh,
            CompletionShell::Fish => clap_complete::Shell::Fish,
        }
    }
}

/// `env` options.
#[derive(Debug, Args)]
#[command(
    after_help = "Prints OPENAI_BASE_URL, OPENAI_API_KEY=unused, ANTHROPIC_BASE_URL and \
ANTHROPIC_AUTH_TOKEN=unused for server.listen_tcp, read from the settings the daemon uses \
(--config, then SWITCHBOARD__* variables). The daemon drops any key a client sends.\n\
sh/bash/zsh: eval \"$(switchboard env)\"    fish: switchboard env --shell fish | source\n\
Exits 1, saying how to turn it on, when server.listen_tcp is unset."
)]
pub struct EnvArgs {
    /// Settings file the daemon was started with (default: the built-in settings.toml).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The syntax to print.
    #[arg(long, value_enum, default_value = "sh")]
    pub shell: EnvShell,
}

/// The shells `env` prints for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EnvShell {
    /// POSIX sh, bash, zsh: `export NAME='value'`.
    Sh,
    /// fish: `set -gx NAME 'value';`.
    Fish,
}

/// `mcp` options.
#[derive(Debug, Args)]
#[command(
    after_help = "Speaks MCP (JSON-RPC) on stdin/stdout and logs to stderr; an MCP client starts it, \
e.g. `claude mcp add switchboard -- switchboard mcp`.\n\
Tools: chat, models, sessions, session, cancel. Each call is a request to the running daemon \
(`switchboard serve`), so it gets a session, the queue, deadlines, limits and history."
)]
pub struct McpArgs {
    /// The daemon's socket (default: SWITCHBOARD__SERVER__SOCKET, else the daemon's default).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}
