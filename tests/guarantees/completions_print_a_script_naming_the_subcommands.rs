//! `switchboard completions bash|zsh|fish` prints a completion script for
//! that shell naming the subcommands, needs no daemon, and refuses a shell
//! it does not know with clap's usage error.

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .output()
        .expect("the CLI runs")
}

#[test]
fn each_shell_gets_a_script_naming_the_subcommands() {
    // What each shell's script starts its definitions with.
    let markers = [
        ("bash", "complete -F _switchboard"),
        ("zsh", "#compdef switchboard"),
        ("fish", "complete -c switchboard"),
    ];
    for (shell, marker) in markers {
        let output = run(&["completions", shell]);
        assert!(output.status.success(), "{shell}: {:?}", output.status);
        let script = String::from_utf8(output.stdout).expect("UTF-8");
        assert!(script.contains(marker), "{shell} script lacks {marker}");
        for subcommand in [
            "serve",
            "top",
            "config",
            "sessions",
            "cancel",
            "completions",
        ] {
            assert!(
                script.contains(subcommand),
                "{shell} script does not mention {subcommand}"
            );
        }
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let output = run(&["completions", "tcsh"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("tcsh"), "{stderr}");
    assert!(
        stderr.contains("bash"),
        "lists the shells it knows: {stderr}"
    );
}
