//! A real MCP client for the tests: `tests/mcp/client.py` (the Python `mcp`
//! SDK) runs `switchboard mcp --socket <socket>` as its stdio server, as
//! Claude Desktop or Claude Code would, and takes commands from the test one
//! JSON line at a time (see the script's docstring). Everything it and the
//! server write to stderr is kept, for the tests that read the server's log.
//!
//! Set-up: the first client checks that the SDK's `Client` (the 2.x API the
//! script is written against) imports, and otherwise installs it with
//! `python3 -m pip install --quiet "mcp>=2.3"`.

use std::collections::VecDeque;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How long the client may take to start: Python imports the SDK (about 3 s
/// on an idle machine; the tests share two cores) and runs the handshake.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long any one awaited event may take, unless a test says otherwise:
/// far above the few hundred milliseconds a call takes here.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Options for [`McpClient::start`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `auto` (`server/discover`, the 2026 protocol) or `legacy` (`initialize`).
    pub mode: &'static str,
    /// The `clientInfo` name.
    pub name: String,
    /// The `clientInfo` version.
    pub version: String,
    /// `RUST_LOG` for the MCP server.
    pub rust_log: &'static str,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            mode: "auto",
            name: "switchboard-tests".into(),
            version: "0.0.1".into(),
            rust_log: "info",
        }
    }
}

/// The running Python client (and, under it, `switchboard mcp`).
pub struct McpClient {
    /// The Python process; killed when this is dropped.
    child: Child,
    /// Where commands go.
    stdin: ChildStdin,
    /// Where events come from.
    events: Lines<BufReader<ChildStdout>>,
    /// Events read while waiting for another one.
    held: VecDeque<Value>,
    /// Everything written to stderr (the client's and the server's).
    stderr: Arc<Mutex<String>>,
    /// The `ready` event: protocol version and server info.
    pub ready: Value,
}

impl McpClient {
    /// Starts a client whose server talks to the daemon at `socket`, and
    /// waits for its `ready` event.
    pub async fn start(socket: &Path, options: &ClientOptions) -> McpClient {
        ensure_python_mcp();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp/client.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--server", env!("CARGO_BIN_EXE_switchboard")])
            .arg("--socket")
            .arg(socket)
            .args(["--mode", options.mode, "--rust-log", options.rust_log])
            .args(["--client-name", &options.name])
            .args(["--client-version", &options.version])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 starts");
        let stdin = child.stdin.take().expect("stdin piped");
        let events = BufReader::new(child.stdout.take().expect("stdout piped")).lines();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut lines = BufReader::new(child.stderr.take().expect("stderr piped")).lines();
        let sink = Arc::clone(&stderr);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut log = sink.lock().unwrap_or_else(|e| e.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut client = McpClient {
            child,
            stdin,
            events,
            held: VecDeque::new(),
            stderr,
            ready: Value::Null,
        };
        client.ready = client
            .wait_for_within("the MCP client to be ready", READY_TIMEOUT, |e| {
                e["event"] == "ready"
            })
            .await;
        client
    }

    /// Sends one command.
    pub async fn send(&mut self, command: Value) {
        let line = format!("{command}\n");
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("the MCP client takes commands");
        self.stdin
            .flush()
            .await
            .expect("the MCP client takes commands");
    }

    /// Lists the tools.
    pub async fn list_tools(&mut self) -> Vec<Value> {
        self.send(json!({"op": "list_tools"})).await;
        let event = self
            .wait_for("the tool list", |e| e["event"] == "tools")
            .await;
        event["tools"].as_array().cloned().unwrap_or_default()
    }

    /// Starts a call (`progress`: with a progress token) without waiting.
    pub async fn start_call(&mut self, id: &str, tool: &str, args: Value, progress: bool) {
        self.send(
            json!({"op": "call", "id": id, "tool": tool, "args": args, "progress": progress}),
        )
        .await;
    }

    /// Calls a tool and waits for its result: `{isError, texts, structured}`.
    pub async fn call(&mut self, id: &str, tool: &str, args: Value) -> Value {
        self.start_call(id, tool, args, false).await;
        self.result(id).await
    }

    /// Waits for call `id` to finish; its result (panics on an SDK error).
    pub async fn result(&mut self, id: &str) -> Value {
        let event = self
            .wait_for(&format!("the result of call {id}"), |e| {
                e["id"] == id && (e["event"] == "result" || e["event"] == "error")
            })
            .await;
        assert_eq!(
            event["event"], "result",
            "call {id} failed in the SDK: {event}"
        );
        event["result"].clone()
    }

    /// Cancels call `id` the SDK's way (its cancel scope: the SDK sends
    /// `notifications/cancelled`) and waits until the call has given up.
    pub async fn cancel(&mut self, id: &str) {
        self.send(json!({"op": "cancel", "id": id})).await;
        self.wait_for(&format!("call {id} to be cancelled"), |e| {
            e["id"] == id && e["event"] == "cancelled"
        })
        .await;
    }

    /// The events of call `id` held so far, leaving the others held.
    pub fn take_held(&mut self, id: &str, kind: &str) -> Vec<Value> {
        let (taken, kept) = self
            .held
            .drain(..)
            .partition(|e| e["id"] == id && e["event"] == kind);
        self.held = kept;
        taken.into()
    }

    /// Waits for an event that `matches`, holding the others.
    pub async fn wait_for(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        self.wait_for_within(what, EVENT_TIMEOUT, matches).await
    }

    /// [`McpClient::wait_for`] with its own timeout.
    pub async fn wait_for_within(
        &mut self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Value {
        if let Some(at) = self.held.iter().position(&matches) {
            return self.held.remove(at).expect("just found");
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let line = tokio::time::timeout_at(deadline, self.events.next_line())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "timed out waiting for {what}\n--- stderr ---\n{}",
                        self.stderr()
                    )
                })
                .expect("reading the MCP client's output");
            let Some(line) = line else {
                panic!(
                    "the MCP client exited waiting for {what}\n--- stderr ---\n{}",
                    self.stderr()
                );
            };
            // Shown by `cargo test -- --nocapture`: what the real client saw.
            eprintln!("mcp client: {line}");
            let event: Value = serde_json::from_str(&line).expect("the client prints JSON lines");
            if matches(&event) {
                return event;
            }
            self.held.push_back(event);
        }
    }

    /// Everything written to stderr so far: the server's log lines (and the
    /// client's, if it complained).
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Asks the client to close the session and waits for it to exit.
    pub async fn close(mut self) {
        self.send(json!({"op": "exit"})).await;
        self.wait_for("the client to close", |e| e["event"] == "closed")
            .await;
        let status = tokio::time::timeout(EVENT_TIMEOUT, self.child.wait())
            .await
            .expect("timed out waiting for the MCP client to exit")
            .expect("waiting for the MCP client");
        assert!(
            status.success(),
            "the MCP client exited {status}\n{}",
            self.stderr()
        );
    }
}

/// The SDK release the script was written against (`mcp.Client`, `mode=`).
const MCP_REQUIREMENT: &str = "mcp>=2.3";

/// Installs the Python `mcp` SDK if its `Client` does not import (once per
/// test binary).
fn ensure_python_mcp() {
    static CHECKED: Once = Once::new();
    CHECKED.call_once(|| {
        let imports = |quiet: bool| {
            let mut check = std::process::Command::new("python3");
            check.args(["-c", "from mcp import Client"]);
            if quiet {
                check.stderr(Stdio::null());
            }
            check.status().is_ok_and(|s| s.success())
        };
        if imports(true) {
            return;
        }
        let installed = std::process::Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", MCP_REQUIREMENT])
            .status()
            .expect("python3 runs pip");
        assert!(installed.success(), "pip install mcp failed: {installed}");
        assert!(
            imports(false),
            "`import mcp` still fails after pip install mcp"
        );
    });
}

/// The text blocks of a tool result, joined by newlines.
pub fn texts(result: &Value) -> String {
    result["texts"]
        .as_array()
        .map(|texts| {
            texts
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}
