//! Build script of the `switchboard` package: tells the integration tests
//! whether they are built by root.
//!
//! `tests/disallowed_users_are_refused.rs` runs a client as another user,
//! which needs root; a test can only be ignored at compile time, so this
//! emits `cfg(built_as_root)` when the build runs as root, and that test is
//! `#[cfg_attr(not(built_as_root), ignore = "needs root")]`. Nothing else
//! reads it.

use std::fs;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(built_as_root)");
    // Re-run when the building user changes, so a target dir shared by a
    // user and root does not keep the other's answer.
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=USER");
    println!("cargo::rerun-if-env-changed=HOME");
    if effective_uid() == Some(0) {
        println!("cargo::rustc-cfg=built_as_root");
    }
}

/// The effective uid of this process: the second field of the `Uid:` line
/// of `/proc/self/status` (real, effective, saved, filesystem), read instead
/// of calling `geteuid` so the build script needs no dependency.
fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
