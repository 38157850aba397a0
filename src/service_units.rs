//! `switchboard service install|uninstall`: the systemd user units of
//! `contrib/systemd/`, written with this binary's path and enabled through
//! `systemctl --user` when there is one. Runs alone, without a daemon.
//!
//! Installing also makes the two files the service reads and the operator
//! edits: the settings (from the built-in defaults, only if absent) and an
//! environment file for API keys (mode 0600, only if absent). Nothing the
//! operator wrote is ever overwritten or removed.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::cli::{ServiceArgs, ServiceCommand};
use crate::settings::DEFAULT_SETTINGS;

const SOCKET_UNIT: &str = include_str!("../contrib/systemd/switchboard.socket");
const SERVICE_UNIT: &str = include_str!("../contrib/systemd/switchboard.service");
const UNITS: [&str; 2] = ["switchboard.socket", "switchboard.service"];

/// Runs `service install` or `service uninstall`.
pub fn run(command: &ServiceCommand) -> anyhow::Result<()> {
    match command {
        ServiceCommand::Install(args) => install(args),
        ServiceCommand::Uninstall(args) => uninstall(args),
    }
}

/// `$XDG_CONFIG_HOME`, else `~/.config`.
fn config_home() -> anyhow::Result<PathBuf> {
    match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir)),
        _ => {
            let home =
                std::env::var_os("HOME").context("neither XDG_CONFIG_HOME nor HOME is set")?;
            Ok(Path::new(&home).join(".config"))
        }
    }
}

fn install(args: &ServiceArgs) -> anyhow::Result<()> {
    if !args.user {
        bail!(
            "only user units are offered (--user): the socket and its history belong to one user"
        );
    }
    let home = config_home()?;
    let units = home.join("systemd/user");
    let own = home.join("switchboard");
    fs::create_dir_all(&units).with_context(|| format!("cannot create {}", units.display()))?;
    fs::create_dir_all(&own).with_context(|| format!("cannot create {}", own.display()))?;
    let bin = std::env::current_exe().context("cannot tell where this binary is")?;
    let bin = bin.to_str().context("the binary's path is not UTF-8")?;
    let exec = if bin.contains(char::is_whitespace) {
        format!("\"{bin}\"")
    } else {
        bin.to_owned()
    };
    write(&units.join(UNITS[0]), SOCKET_UNIT, 0o644)?;
    write(
        &units.join(UNITS[1]),
        &SERVICE_UNIT.replace("@BIN@", &exec),
        0o644,
    )?;
    create_if_absent(&own.join("settings.toml"), DEFAULT_SETTINGS, 0o644)?;
    let env_header = "# API keys for the switchboard service: NAME=value, one per line,\n\
                      # for the variables api_key_env names in settings.toml.\n";
    create_if_absent(&own.join("env"), env_header, 0o600)?;
    let steps: [&[&str]; 2] = [
        &["daemon-reload"],
        &["enable", "--now", "switchboard.socket"],
    ];
    systemctl(args, &steps)?;
    println!("logs: journalctl --user -u switchboard; status: systemctl --user status switchboard");
    Ok(())
}

fn uninstall(args: &ServiceArgs) -> anyhow::Result<()> {
    let units = config_home()?.join("systemd/user");
    let steps: [&[&str]; 1] = [&["disable", "--now", UNITS[0], UNITS[1]]];
    systemctl(args, &steps)?;
    for unit in UNITS {
        let path = units.join(unit);
        match fs::remove_file(&path) {
            Ok(()) => println!("removed {}", path.display()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                println!("{} was not installed", path.display())
            }
            Err(err) => {
                return Err(err).with_context(|| format!("cannot remove {}", path.display()));
            }
        }
    }
    if !args.no_enable {
        systemctl(args, &[&["daemon-reload"]])?;
    }
    println!("kept: the settings, the env file and the history (remove them yourself if unwanted)");
    Ok(())
}

/// Runs `systemctl --user` with each step, or says what to run.
fn systemctl(args: &ServiceArgs, steps: &[&[&str]]) -> anyhow::Result<()> {
    let lines: Vec<String> = steps
        .iter()
        .map(|step| format!("systemctl --user {}", step.join(" ")))
        .collect();
    if args.no_enable {
        println!("not run (--no-enable): {}", lines.join(" && "));
        return Ok(());
    }
    for (step, line) in steps.iter().zip(&lines) {
        match Command::new("systemctl").arg("--user").args(*step).status() {
            Ok(status) if status.success() => println!("ran: {line}"),
            Ok(status) => bail!("`{line}` failed ({status}); fix it and run it again"),
            Err(err) => {
                println!(
                    "systemctl is not available here ({err}); run yourself: {}",
                    lines.join(" && ")
                );
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Writes `path` (replacing a unit written before), saying so.
fn write(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    let existed = path.exists();
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    println!(
        "{} {}",
        if existed { "replaced" } else { "wrote" },
        path.display()
    );
    Ok(())
}

/// Creates `path` with `text` unless it exists: an operator's file is kept.
fn create_if_absent(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path);
    match file {
        Ok(mut file) => {
            file.write_all(text.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("wrote {}", path.display());
            Ok(())
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            println!("kept {} (already there)", path.display());
            Ok(())
        }
        Err(err) => Err(err).with_context(|| format!("cannot create {}", path.display())),
    }
}
