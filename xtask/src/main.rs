//! `cargo xtask <task>` (the alias is in `.cargo/config.toml`): build tasks
//! that need the project's own code but not at every build.
//!
//! - `man`: writes `switchboard.1` and a page per subcommand
//!   (`switchboard-serve.1`, …) into `target/man/`, from the same clap
//!   definition the binary parses (`switchboard::cli::Cli`), so the pages
//!   cannot drift from `--help`. Read one with `man target/man/switchboard.1`.
//!
//! A task rather than a `build.rs`: a build script would rebuild the pages
//! (and need the CLI compiled before the crate it is part of) on every
//! build, for a file almost nobody reads from `target/`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::CommandFactory;

fn main() -> anyhow::Result<()> {
    let task = std::env::args().nth(1);
    match task.as_deref() {
        Some("man") => man(),
        Some(other) => bail!("unknown task `{other}`; tasks: man"),
        None => bail!("usage: cargo xtask man"),
    }
}

/// Writes the man pages and prints where.
fn man() -> anyhow::Result<()> {
    let dir = target_dir().join("man");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let command = switchboard::cli::Cli::command();
    clap_mangen::generate_to(command, &dir)
        .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
    let mut pages: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "1"))
        .collect();
    pages.sort();
    for page in pages {
        println!("{}", page.display());
    }
    Ok(())
}

/// `CARGO_TARGET_DIR` when set, else the workspace's `target/`.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
            xtask.parent().unwrap_or(xtask).join("target")
        }
    }
}
