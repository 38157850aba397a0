//! The `switchboard` binary: parses the command line and hands off.

use std::process::ExitCode;

use clap::Parser;
use switchboard::cli::{Cli, Command};
use switchboard::{client, logging, mcp, server, settings::Settings};

/// jemalloc instead of glibc's allocator: a request allocates and frees
/// dozens of small objects, and under load glibc's malloc/free took a sixth
/// of the daemon's CPU; jemalloc keeps no header beside each block, so the
/// untouched tail of a connection's buffers never becomes resident memory
/// (see README, Performance).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Mcp(args) => mcp::run(args),
        command => client::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("switchboard: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: switchboard::cli::ServeArgs) -> anyhow::Result<()> {
    logging::init(args.log_format);
    let mut settings = Settings::load(args.config.as_deref())?;
    if let Some(socket) = args.socket {
        settings.server.socket = Some(socket);
    }
    server::run(settings).inspect_err(|err| tracing::error!("{err:#}"))
}
