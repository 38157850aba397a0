//! The live `switchboard top` on a real terminal (a pseudo-terminal the
//! test holds, as a terminal emulator would): it shows a live session,
//! ↓ selects it and `c` cancels it through the admin API (its client gets
//! 503 `session_cancelled`, its upstream call is aborted), and `q` quits
//! with exit 0, leaving the alternate screen and putting the terminal back
//! in the mode it found it in.

use crate::support;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{body, error_code, wait_live};
use switchboard_testkit::{FakeProvider, eventually};

const WAIT: Duration = Duration::from_secs(10);

/// Leaving the alternate screen (what every exit must write).
const LEAVE_ALTERNATE_SCREEN: &str = "\u{1b}[?1049l";

/// The terminal's size: room for the tables and a full session id.
const ROWS: u16 = 30;
const COLUMNS: u16 = 140;

/// A pseudo-terminal: the side the test reads and types on, and the side
/// `top` gets as its terminal.
struct Pty {
    master: std::fs::File,
    slave: OwnedFd,
}

fn open_pty() -> Pty {
    let (mut master, mut slave) = (0, 0);
    let size = libc::winsize {
        ws_row: ROWS,
        ws_col: COLUMNS,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: both out-pointers are valid; no name buffer or termios given.
    let made = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(made, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: openpty just returned these descriptors, owned by no one else.
    unsafe {
        Pty {
            master: std::fs::File::from_raw_fd(master),
            slave: OwnedFd::from_raw_fd(slave),
        }
    }
}

/// The terminal's local modes (canonical input, echo, …).
fn local_modes(fd: &OwnedFd) -> libc::tcflag_t {
    // SAFETY: termios is plain data; tcgetattr fills it for a valid fd.
    let mut termios: libc::termios = unsafe { std::mem::zeroed() };
    let got = unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut termios) };
    assert_eq!(got, 0, "tcgetattr: {}", std::io::Error::last_os_error());
    termios.c_lflag
}

/// Everything `top` wrote, kept by a thread reading the terminal.
fn record(mut master: std::fs::File) -> Arc<Mutex<Vec<u8>>> {
    let screen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&screen);
    std::thread::spawn(move || {
        let mut buffer = [0; 4096];
        // Ends with EIO once the test closes its side of the slave.
        while let Ok(read) = master.read(&mut buffer) {
            if read == 0 {
                return;
            }
            sink.lock()
                .expect("screen lock")
                .extend_from_slice(&buffer[..read]);
        }
    });
    screen
}

/// What the terminal shows now: everything `top` wrote, replayed on a
/// grid of [`ROWS`] x [`COLUMNS`] cells. ratatui only redraws the cells
/// that changed, so the raw bytes alone do not hold whole lines; cursor
/// moves (`CSI row;col H`) and clears (`CSI 2J`) are followed, other
/// sequences (colours, modes) ignored.
fn text(screen: &Mutex<Vec<u8>>) -> String {
    let raw = String::from_utf8_lossy(&screen.lock().expect("screen lock")).into_owned();
    let blank = || vec![vec![' '; usize::from(COLUMNS)]; usize::from(ROWS)];
    let mut grid = blank();
    let (mut row, mut col) = (0_usize, 0_usize);
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' if chars.next_if_eq(&'[').is_some() => {
                let mut params = String::new();
                for p in chars.by_ref() {
                    if ('@'..='~').contains(&p) {
                        match p {
                            'H' => {
                                let mut at = params.split(';').map(|n| n.parse().unwrap_or(1));
                                row = at.next().unwrap_or(1_usize).saturating_sub(1);
                                col = at.next().unwrap_or(1_usize).saturating_sub(1);
                            }
                            'J' if params == "2" => grid = blank(),
                            _ => {}
                        }
                        break;
                    }
                    params.push(p);
                }
            }
            '\u{1b}' => {
                chars.next();
            }
            '\r' => col = 0,
            '\n' => row += 1,
            c if !c.is_control() => {
                if let Some(cell) = grid.get_mut(row).and_then(|line| line.get_mut(col)) {
                    *cell = c;
                }
                col += 1;
            }
            _ => {}
        }
    }
    let lines: Vec<String> = grid.into_iter().map(|l| l.into_iter().collect()).collect();
    lines.join("\n")
}

/// `top`, killed when dropped so a failing test leaves no process behind
/// (with no controlling terminal, nothing sends it SIGHUP).
struct Top(Child);

impl Drop for Top {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn spawn_top(pty: &Pty, socket: &std::path::Path) -> Top {
    let tty = || Stdio::from(pty.slave.try_clone().expect("dup the terminal"));
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["top", "--socket"])
        .arg(socket)
        .env("TERM", "xterm-256color")
        .stdin(tty())
        .stdout(tty())
        .stderr(tty())
        .spawn()
        .map(Top)
        .expect("top starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_and_c_cancel_the_session_and_q_restores_the_terminal() {
    let fake = FakeProvider::start().await;
    let daemon = support::daemon(&fake).start().await;
    let request = daemon
        .client()
        .post(daemon.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body("fake/hang", false))
        .send();
    let waiting = tokio::spawn(request);
    let live = wait_live(&daemon, 1).await;
    let id = live[0]["id"].as_str().expect("an id").to_owned();

    let pty = open_pty();
    let modes_before = local_modes(&pty.slave);
    let mut keys = pty.master.try_clone().expect("dup the terminal");
    let screen = record(pty.master.try_clone().expect("dup the terminal"));
    let mut top = spawn_top(&pty, daemon.socket());
    eventually("top to draw the live session", WAIT, || async {
        text(&screen).contains(&id).then_some(())
    })
    .await;

    keys.write_all(b"j").expect("type j");
    keys.write_all(b"c").expect("type c");
    let answer = tokio::time::timeout(WAIT, waiting)
        .await
        .expect("timed out waiting for the cancelled request's answer")
        .expect("join")
        .expect("an answer");
    assert_eq!(answer.status(), 503);
    assert_eq!(error_code(answer).await, "session_cancelled");
    assert!(
        fake.wait_until("the upstream call aborted", WAIT, |f| f.abandoned() == 1)
            .await,
        "timed out waiting for the upstream call to be aborted"
    );
    eventually("top to report the cancel", WAIT, || async {
        text(&screen)
            .contains(&format!("cancelled {id}"))
            .then_some(())
    })
    .await;

    keys.write_all(b"q").expect("type q");
    let status = eventually("top to quit on q", WAIT, || {
        let exited = top.0.try_wait().expect("wait for top");
        async move { exited }
    })
    .await;
    assert!(status.success(), "{status:?}: {}", text(&screen));
    assert_eq!(
        local_modes(&pty.slave),
        modes_before,
        "the terminal's modes are restored"
    );
    let raw = String::from_utf8_lossy(&screen.lock().expect("screen lock")).into_owned();
    assert!(
        raw.contains(LEAVE_ALTERNATE_SCREEN),
        "the alternate screen is left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_restores_the_terminal_too() {
    let fake = FakeProvider::start().await;
    let daemon = support::daemon(&fake).start().await;
    let pty = open_pty();
    let modes_before = local_modes(&pty.slave);
    let screen = record(pty.master.try_clone().expect("dup the terminal"));
    let mut top = spawn_top(&pty, daemon.socket());
    eventually("top to draw", WAIT, || async {
        text(&screen).contains("Live sessions (0").then_some(())
    })
    .await;
    let pid = i32::try_from(top.0.id()).expect("a pid");
    // SAFETY: signalling the child this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = eventually("top to quit on SIGTERM", WAIT, || {
        let exited = top.0.try_wait().expect("wait for top");
        async move { exited }
    })
    .await;
    assert!(status.success(), "{status:?}");
    assert_eq!(local_modes(&pty.slave), modes_before);
    let raw = String::from_utf8_lossy(&screen.lock().expect("screen lock")).into_owned();
    assert!(
        raw.contains(LEAVE_ALTERNATE_SCREEN),
        "the alternate screen is left"
    );
}
