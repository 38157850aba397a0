//! `switchboard mcp`: a Model Context Protocol server on stdin/stdout (with
//! the `rmcp` crate) for MCP clients such as Claude Desktop and Claude Code.
//!
//! It is a client of the running daemon: every tool call is an HTTP request
//! over the daemon's Unix socket, found as the other client commands find
//! it (`--socket`, else `SWITCHBOARD__SERVER__SOCKET`, else the default), so
//! each call gets a session, the queue, deadlines, cancellation, limits and
//! history. A daemon that is not running makes tool errors, never an exit.
//!
//! - `server.rs`: the rmcp handler (initialize, tool list, dispatch, cancel).
//! - `tools.rs`: names, descriptions and schemas; `args.rs`: their checks.
//! - `chat.rs`: the `chat` tool, whole or streamed as progress notifications.
//! - `admin.rs`: `models`, `sessions`, `session`, `cancel`.
//! - `identity.rs`: the MCP client's name and version as request metadata.
//! - `daemon.rs`: requests to the daemon and their failures.
//! - `log.rs`: stderr logging that never holds prompts.

mod admin;
mod args;
mod chat;
mod daemon;
mod identity;
mod log;
mod server;
mod tools;

use std::time::Duration;

use anyhow::Context;
use rmcp::ServiceExt;

use crate::cli::McpArgs;

/// How long leaving waits for tasks still running (a stdin read that the
/// runtime cannot interrupt); the process exits after it either way.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(200);

/// Serves MCP on stdio until the client closes stdin.
pub fn run(args: McpArgs) -> anyhow::Result<()> {
    log::init();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    let result = runtime.block_on(serve(args));
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    result
}

async fn serve(args: McpArgs) -> anyhow::Result<()> {
    let link = daemon::Link::new(args.socket.as_deref())?;
    tracing::info!(socket = %link.socket().display(), "serving MCP on stdio");
    let service = server::Server::new(link)
        .serve(rmcp::transport::stdio_pipes())
        .await
        .context("the MCP client did not start a session")?;
    let reason = service.waiting().await.context("the MCP service failed")?;
    tracing::info!(?reason, "the MCP client went away");
    Ok(())
}
