//! The terminal side of the live view: taking the terminal over (raw mode,
//! the alternate screen) and giving it back on every way out, and reading
//! keys on a thread of their own.
//!
//! [`Screen`] restores the terminal when dropped, which happens on a normal
//! exit, on an error returned through `?`, and while a panic unwinds;
//! `ratatui::try_init` also installs a panic hook that restores it before
//! the panic message is printed, so the message is readable.

use std::time::Duration;

use anyhow::Context as _;
use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use tokio::sync::mpsc;

/// How often the key thread wakes to see whether `top` has ended (it can
/// only notice between two waits): short enough that it ends at once to a
/// person, long enough to cost nothing.
const KEY_POLL: Duration = Duration::from_millis(100);

/// What a key asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Select the session above.
    Up,
    /// Select the session below.
    Down,
    /// Cancel the selected session.
    Cancel,
    /// Show the next provider alone, or all.
    CycleFilter,
    /// Leave `top`.
    Quit,
    /// The terminal changed size: draw again.
    Redraw,
}

/// The action of a key press; `None` for keys `top` does not use.
pub fn action(key: KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    match key.code {
        KeyCode::Char('c') if ctrl => Some(Action::Quit),
        KeyCode::Char('q') | KeyCode::Esc => Some(Action::Quit),
        KeyCode::Up | KeyCode::Char('k') => Some(Action::Up),
        KeyCode::Down | KeyCode::Char('j') => Some(Action::Down),
        KeyCode::Char('c') => Some(Action::Cancel),
        KeyCode::Char('f') => Some(Action::CycleFilter),
        _ => None,
    }
}

/// The terminal, taken over for as long as this lives.
pub struct Screen {
    /// What frames are drawn on.
    pub terminal: DefaultTerminal,
}

impl Screen {
    /// Enters raw mode and the alternate screen.
    pub fn take() -> anyhow::Result<Self> {
        let terminal = ratatui::try_init().context("could not take over the terminal")?;
        Ok(Self { terminal })
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Reads keys on a thread of its own (crossterm's reads block) and sends
/// their actions to `actions` until that channel closes.
pub fn read_keys(actions: mpsc::Sender<Action>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !actions.is_closed() {
            let Ok(ready) = event::poll(KEY_POLL) else {
                // No more keys can be read: leave rather than ignore them.
                let _ = actions.blocking_send(Action::Quit);
                return;
            };
            if !ready {
                continue;
            }
            let found = match event::read() {
                Ok(Event::Key(key)) => action(key),
                Ok(Event::Resize(..)) => Some(Action::Redraw),
                Ok(_) => None,
                Err(_) => Some(Action::Quit),
            };
            if let Some(found) = found
                && actions.blocking_send(found).is_err()
            {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, modifiers: KeyModifiers) -> Option<Action> {
        action(KeyEvent::new(code, modifiers))
    }

    #[test]
    fn c_cancels_and_ctrl_c_quits() {
        assert_eq!(
            press(KeyCode::Char('c'), KeyModifiers::NONE),
            Some(Action::Cancel)
        );
        assert_eq!(
            press(KeyCode::Char('c'), KeyModifiers::CONTROL),
            Some(Action::Quit)
        );
        assert_eq!(press(KeyCode::Esc, KeyModifiers::NONE), Some(Action::Quit));
        assert_eq!(
            press(KeyCode::Char('q'), KeyModifiers::NONE),
            Some(Action::Quit)
        );
        assert_eq!(
            press(KeyCode::Char('f'), KeyModifiers::NONE),
            Some(Action::CycleFilter)
        );
        assert_eq!(press(KeyCode::Down, KeyModifiers::NONE), Some(Action::Down));
        assert_eq!(press(KeyCode::Char('x'), KeyModifiers::NONE), None);
    }
}
