//! `switchboard service install` writes the systemd user units with this
//! binary's path, the settings and key files the service reads (never over
//! an operator's own), and says what to run where systemctl is missing;
//! `service uninstall` removes the units and keeps everything else. There is
//! no systemd here: the test points XDG_CONFIG_HOME at a temp dir and runs
//! without systemctl on PATH.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

fn service(config_home: &Path, empty_path: &Path, verb: &str) -> Output {
    Command::new(BIN)
        .args(["service", verb])
        .env("XDG_CONFIG_HOME", config_home)
        .env("PATH", empty_path)
        .output()
        .expect("running switchboard service")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn service_install_writes_user_units_and_keeps_the_operators_files() {
    let home = tempfile::tempdir().expect("a temp dir");
    let empty = tempfile::tempdir().expect("an empty PATH");
    let installed = service(home.path(), empty.path(), "install");
    let said = text(&installed);
    assert!(
        installed.status.success(),
        "install succeeds without systemctl: {said}"
    );
    assert!(
        said.contains("systemctl --user enable --now switchboard.socket"),
        "it says what to run: {said}"
    );

    let units = home.path().join("systemd/user");
    let socket = std::fs::read_to_string(units.join("switchboard.socket")).expect("socket unit");
    let service_unit =
        std::fs::read_to_string(units.join("switchboard.service")).expect("service unit");
    assert!(
        socket.contains("ListenStream=%t/switchboard.sock"),
        "{socket}"
    );
    assert!(socket.contains("SocketMode=0600"), "{socket}");
    for line in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "WatchdogSec=",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "StateDirectory=switchboard",
    ] {
        assert!(service_unit.contains(line), "{line} in:\n{service_unit}");
    }
    let exec = format!("ExecStart={BIN} serve --config %E/switchboard/settings.toml");
    assert!(service_unit.contains(&exec), "{exec} in:\n{service_unit}");

    let own = home.path().join("switchboard");
    let env = std::fs::metadata(own.join("env")).expect("the key file");
    assert_eq!(
        env.permissions().mode() & 0o777,
        0o600,
        "keys are owner-only"
    );
    let shipped = include_str!("../../settings.toml");
    let settings = own.join("settings.toml");
    assert_eq!(
        std::fs::read_to_string(&settings).expect("settings"),
        shipped
    );

    // An operator's edits survive a second install.
    std::fs::write(&settings, "# mine\n").expect("editing the settings");
    let again = service(home.path(), empty.path(), "install");
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("kept"), "{}", text(&again));
    assert_eq!(
        std::fs::read_to_string(&settings).expect("settings"),
        "# mine\n"
    );

    let removed = service(home.path(), empty.path(), "uninstall");
    assert!(removed.status.success(), "{}", text(&removed));
    assert!(!units.join("switchboard.socket").exists());
    assert!(!units.join("switchboard.service").exists());
    assert!(
        settings.exists() && own.join("env").exists(),
        "uninstall keeps settings and keys"
    );
}
