//! The client commands (placeholder until written).

use crate::cli::Command;

/// Runs a client command.
pub fn run(command: Command) -> anyhow::Result<()> {
    anyhow::bail!("{command:?}: not yet available")
}
