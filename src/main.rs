//! The `switchboard` binary: parses the command line and hands off.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use switchboard::cli::{Cli, Command, CompletionsArgs, ConfigCommand};
use switchboard::{client, config_check, env, logging, mcp, server};

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
        Command::Config(ConfigCommand::Check(args)) => config_check::run(&args),
        Command::Completions(args) => completions(&args),
        Command::Mcp(args) => mcp::run(args),
        Command::Service(command) => switchboard::service_units::run(&command),
        Command::Env(args) => env::run(&args),
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
    let _flush = logging::init(args.log_format);
    let source = server::Source {
        path: args.config,
        socket: args.socket,
    };
    let settings = source.load()?;
    server::run(settings, source).inspect_err(|err| tracing::error!("{err:#}"))
}

/// Writes the completion script for the shell asked for to stdout. It is
/// generated into memory first: clap_complete panics when its writer fails,
/// and a closed pipe (`| head`) must be an error, not a panic.
fn completions(args: &CompletionsArgs) -> anyhow::Result<()> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(
        args.shell.generator(),
        &mut command,
        "switchboard",
        &mut script,
    );
    let mut out = std::io::stdout().lock();
    std::io::Write::write_all(&mut out, &script)
        .and_then(|()| std::io::Write::flush(&mut out))
        .map_err(|err| anyhow::anyhow!("could not write to stdout: {err}"))
}
