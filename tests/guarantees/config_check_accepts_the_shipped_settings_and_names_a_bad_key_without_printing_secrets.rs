//! `switchboard config check [--config PATH]` validates settings exactly as
//! `serve` does (the same loader and `SWITCHBOARD__*` overrides): the
//! shipped settings.toml passes (exit 0) and prints the settings in force;
//! a bad file or variable fails (exit 1) with a message naming the key. A
//! key's value never appears on stdout or stderr, whether it sits in the
//! variable an `api_key_env` names, is pasted into a setting's value, or is
//! written under a key the file must not have.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A recognizable secret; the test fails if it is ever printed.
const SECRET: &str = "sk-config-check-7d2e91-SECRET";

/// Writes `text` as a settings file in `dir`.
fn file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("settings.toml");
    std::fs::write(&path, text).expect("write settings");
    path
}

/// Runs `config check` with `args` and these environment variables; both
/// secrets-bearing key variables of the shipped file are set to [`SECRET`].
fn check(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    command.args(["config", "check"]).args(args);
    let overrides = std::env::vars().filter(|(k, _)| k.starts_with("SWITCHBOARD__"));
    for (name, _) in overrides {
        command.env_remove(name);
    }
    command
        .env("MOONSHOT_API_KEY", SECRET)
        .env("ZHIPUAI_API_KEY", SECRET)
        .env("CUSTOM_KEY_VAR", SECRET)
        .envs(env.iter().copied());
    command.output().expect("the CLI runs")
}

/// stdout and stderr, after asserting neither holds the secret.
fn texts(output: &Output) -> (String, String) {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stdout.contains(SECRET), "the key is on stdout:\n{stdout}");
    assert!(!stderr.contains(SECRET), "the key is on stderr:\n{stderr}");
    (stdout, stderr)
}

/// The path of the settings.toml the repository ships.
fn shipped() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("settings.toml")
        .display()
        .to_string()
}

#[test]
fn the_shipped_settings_are_valid_and_printed_with_key_variables_by_name() {
    for args in [vec![], vec!["--config".to_owned(), shipped()]] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = check(&args, &[]);
        let (stdout, stderr) = texts(&output);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stdout.starts_with("# Valid"), "{stdout}");
        let printed: toml::Table = stdout.parse().expect("the settings print as TOML");
        assert_eq!(printed["server"]["socket_mode"].as_str(), Some("0600"));
        let kimi = &printed["providers"]["kimi"];
        assert_eq!(kimi["api_key_env"].as_str(), Some("MOONSHOT_API_KEY"));
        assert!(printed["sessions"]["timeout_ms"].is_integer(), "{stdout}");
    }
}

#[test]
fn environment_overrides_apply_as_for_serve() {
    let output = check(&[], &[("SWITCHBOARD__SESSIONS__TIMEOUT_MS", "4321")]);
    let (stdout, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let printed: toml::Table = stdout.parse().expect("TOML");
    assert_eq!(printed["sessions"]["timeout_ms"].as_integer(), Some(4321));

    let output = check(&[], &[("SWITCHBOARD__SESSIONS__TIMEOUT_MS", "soon")]);
    let (stdout, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stderr.contains("sessions.timeout_ms"), "{stderr}");
    assert!(stdout.is_empty(), "nothing printed for invalid settings");
}

#[test]
fn a_bad_file_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let dir = dir.path();
    let path = file(dir, "[sessions]\ntimeout_ms = \"thirty\"\n");
    let output = check(&["--config", path.to_str().expect("UTF-8")], &[]);
    let (stdout, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stderr.contains("sessions.timeout_ms"), "{stderr}");
    assert!(stdout.is_empty());

    let path = file(dir, "[server]\nsokcet_mode = \"0600\"\n");
    let output = check(&["--config", path.to_str().expect("UTF-8")], &[]);
    let (_, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("sokcet_mode"), "{stderr}");

    let missing = dir.join("missing.toml");
    let output = check(&["--config", missing.to_str().expect("UTF-8")], &[]);
    let (_, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("missing.toml"), "{stderr}");
}

#[test]
fn a_key_value_is_never_printed_wherever_it_was_written() {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let dir = dir.path();
    let provider = "[providers.custom]\nkind = \"openai\"\nmodels = [\"m\"]\n\
                    api_key_env = \"CUSTOM_KEY_VAR\"\n";
    // Valid, with the key pasted into a URL: printed, but redacted.
    let text = format!("{provider}base_url = \"https://example.test/v1?key={SECRET}\"\n");
    let path = file(dir, &text);
    let output = check(&["--config", path.to_str().expect("UTF-8")], &[]);
    let (stdout, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains("CUSTOM_KEY_VAR"),
        "the variable's name shows"
    );
    assert!(stdout.contains("<redacted>"), "{stdout}");

    // Invalid with the key as the offending value: refused, still redacted.
    let path = file(dir, &format!("{provider}timeout_ms = \"{SECRET}\"\n"));
    let output = check(&["--config", path.to_str().expect("UTF-8")], &[]);
    let (_, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("providers.custom.timeout_ms"), "{stderr}");

    // The key on a line TOML cannot parse: the error quotes the line.
    let path = file(dir, &format!("{provider}api_key = \"{SECRET}\n"));
    let output = check(&["--config", path.to_str().expect("UTF-8")], &[]);
    let (_, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("line 5"), "{stderr}");

    // The key written into the file itself, under a key that does not exist.
    let path = file(dir, &format!("{provider}api_key = \"{SECRET}\"\n"));
    let output = check(&["--config", path.to_str().expect("UTF-8")], &[]);
    let (_, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("api_key"), "{stderr}");
}
