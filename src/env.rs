//! `switchboard env`: the shell lines that point tools taking only a base
//! URL (the `openai` and `anthropic` SDKs, Claude Code, Codex CLI, aider) at
//! the daemon's loopback TCP listener, `server.listen_tcp`.
//!
//! It reads the settings the daemon reads (`Settings::load`, as `serve` and
//! `config check` do: the file, then `SWITCHBOARD__*` variables), so it
//! works whether or not the daemon is running, and prints nothing to eval
//! when the listener is off: then it says on stderr how to turn it on and
//! exits non-zero.

use std::net::SocketAddr;

use anyhow::bail;

use crate::cli::{EnvArgs, EnvShell};
use crate::settings::Settings;

/// What the SDKs send as their key: the daemon drops whatever key a client
/// sends and uses the provider's own, but the SDKs refuse to start without one.
const UNUSED_KEY: &str = "unused";

/// Prints the lines for `args.shell`, or fails with how to turn TCP on.
pub fn run(args: &EnvArgs) -> anyhow::Result<()> {
    let path = args.config.as_deref();
    let settings =
        Settings::load(path).map_err(|err| crate::config_check::redacted_error(&err, path))?;
    let addr = listener(settings.server.listen_tcp)?;
    print!("{}", lines(addr, args.shell));
    Ok(())
}

/// The listener to point at, or why there is none to point at.
fn listener(addr: Option<SocketAddr>) -> anyhow::Result<SocketAddr> {
    match addr {
        Some(addr) if addr.port() != 0 => Ok(addr),
        Some(addr) => bail!(
            "server.listen_tcp = \"{addr}\" lets the kernel pick a new port at every start, \
             so no tool can be pointed at it; set a fixed port, e.g. \"{}:8765\"",
            match addr {
                SocketAddr::V4(v4) => v4.ip().to_string(),
                SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
            }
        ),
        None => bail!(
            "the daemon serves no TCP listener (server.listen_tcp is unset), and tools that take \
             only a base URL cannot use its Unix socket.\n\
             Turn it on in the settings file the daemon reads:\n\
             \n    [server]\n    listen_tcp = \"127.0.0.1:8765\"\n\n\
             (or start it with SWITCHBOARD__SERVER__LISTEN_TCP=127.0.0.1:8765), restart the \
             daemon, then run: eval \"$(switchboard env)\""
        ),
    }
}

/// The variables, in `shell`'s syntax. OpenAI's SDKs append
/// `/chat/completions` to a base URL ending in `/v1`; Anthropic's append
/// `/v1/messages` to the bare origin.
fn lines(addr: SocketAddr, shell: EnvShell) -> String {
    let origin = format!("http://{addr}");
    let vars = [
        ("OPENAI_BASE_URL", format!("{origin}/v1")),
        ("OPENAI_API_KEY", UNUSED_KEY.to_owned()),
        ("ANTHROPIC_BASE_URL", origin),
        ("ANTHROPIC_AUTH_TOKEN", UNUSED_KEY.to_owned()),
    ];
    vars.iter()
        .map(|(name, value)| match shell {
            EnvShell::Sh => format!("export {name}='{value}'\n"),
            EnvShell::Fish => format!("set -gx {name} '{value}';\n"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_listeners_are_bracketed_in_urls() {
        let text = lines("[::1]:8765".parse().unwrap(), EnvShell::Sh);
        assert!(
            text.contains("export OPENAI_BASE_URL='http://[::1]:8765/v1'\n"),
            "{text}"
        );
        assert!(
            text.contains("export ANTHROPIC_BASE_URL='http://[::1]:8765'\n"),
            "{text}"
        );
    }

    #[test]
    fn a_port_the_kernel_picks_cannot_be_pointed_at() {
        let err = listener(Some("127.0.0.1:0".parse().unwrap())).unwrap_err();
        assert!(err.to_string().contains("127.0.0.1:8765"), "{err}");
        let err = listener(None).unwrap_err();
        assert!(err.to_string().contains("listen_tcp"), "{err}");
    }
}
