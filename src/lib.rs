//! Switchboard, the daemon: many programs on one machine use LLM providers at
//! once through one local Unix socket, and no request holds up another.
//!
//! This crate turns HTTP into messages for the actor system
//! (`switchboard_actors`) and its answers back into HTTP, and nothing more.
//!
//! # Layout
//!
//! - [`cli`]: the command line (`serve` and the client commands).
//! - [`settings`]: `settings.toml` + `SWITCHBOARD__*` variables, validated.
//! - [`logging`]: `tracing` output, JSON or readable.
//! - [`server`]: the socket, the HTTP server, routes, the error mapping.
//! - [`client`]: the client commands, speaking HTTP over the socket.
//! - [`top`]: `switchboard top`, the live view of providers and sessions.
//! - [`config_check`]: `switchboard config check`, settings validated and shown.
//! - [`env`]: `switchboard env`, the variables that point tools at the
//!   loopback TCP listener.
//! - [`mcp`]: `switchboard mcp`, an MCP server on stdio that is a client of
//!   the daemon.
//! - [`service_units`]: `switchboard service install|uninstall`, the systemd
//!   user units.

pub mod cli;
pub mod client;
pub mod config_check;
pub mod env;
pub mod logging;
pub mod mcp;
pub mod server;
pub mod service_units;
pub mod settings;
pub mod top;
