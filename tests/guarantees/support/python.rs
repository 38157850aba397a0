//! Running the Python SDK scripts under tests/ against a test daemon: the
//! packages they need are installed on first use, as CI would.

use std::path::Path;
use std::process::{Command, Output};

/// Makes sure `python3` can import each of `modules`, installing
/// `packages` with pip when it cannot.
pub fn ensure(modules: &[&str], packages: &[&str]) {
    let imports = format!("import {}", modules.join(", "));
    let importable = || {
        Command::new("python3")
            .args(["-c", &imports])
            .output()
            .is_ok_and(|out| out.status.success())
    };
    if importable() {
        return;
    }
    let status = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet"])
        .args(packages)
        .status()
        .expect("python3 runs");
    assert!(status.success(), "pip install {packages:?} failed");
    assert!(
        importable(),
        "{modules:?} still not importable after pip install"
    );
}

/// Path of a script under tests/.
pub fn script(relative: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(relative)
        .to_string_lossy()
        .into_owned()
}

/// Runs `python3 script args…` to its end, off the async runtime.
pub async fn run(script: String, args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(&script)
            .args(&args)
            .output()
            .expect("python3 runs")
    })
    .await
    .expect("the python task ends")
}

/// The last stdout line of a script run as JSON, failing with its stderr.
pub fn json_result(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "script failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|err| panic!("not JSON ({err}): {stdout}\n{stderr}"))
}
