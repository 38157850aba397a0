//! The `switchboard` binary: parses the command line and hands off.

use std::process::ExitCode;

use clap::Parser;
use switchboard::cli::{Cli, Command};
use switchboard::{client, logging, server, settings::Settings};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
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
