//! `switchboard top`: a live, full-screen view of a running daemon, like
//! `docker stats` or `htop` — per provider its load, health and the last
//! minute's rates, below it the live sessions, oldest first — refreshed
//! every second; `--once` prints one frame as plain text.
//!
//! Everything comes from the daemon's existing admin API
//! ([`data`]), the minute's rates from successive `/metrics` scrapes
//! ([`scrape`], [`window`]). [`state`] holds what is shown and what the keys
//! change, [`view`] draws it, [`terminal`] owns the terminal and the keys.
//! This module runs the loop: a refresher task, the key thread and the
//! signals all feed one channel the loop reads between frames.

mod data;
mod scrape;
mod state;
mod terminal;
mod view;
mod window;

use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::cli::TopArgs;
use crate::client::{Daemon, admin, print_line};
use data::Fetched;
use state::{Filter, State};
use terminal::{Action, Screen};

/// How often the view is refreshed: what `top` and `docker stats` do.
const REFRESH: Duration = Duration::from_secs(1);

/// Events waiting for the loop at most; the refresher sends one a second
/// and keys come at typing speed, so a handful never fills.
const EVENTS: usize = 16;

/// What the loop wakes up for, besides keys.
enum Event {
    /// A refresh finished (made at this instant), or failed.
    Refreshed(Instant, Result<Fetched, String>),
    /// A cancel finished; what to tell the operator.
    Cancelled(String),
}

/// Runs `top` against the daemon `args` names.
pub async fn run(args: TopArgs) -> anyhow::Result<()> {
    let daemon = Daemon::at(args.socket.as_deref())?;
    let filter = args.provider.map_or(Filter::All, Filter::Provider);
    if args.once {
        once(&daemon, filter).await
    } else {
        live(daemon, filter).await
    }
}

/// One frame as text: a scrape, a second's wait, then a full refresh, so
/// the rates cover that second (a single scrape would have no window).
async fn once(daemon: &Daemon, filter: Filter) -> anyhow::Result<()> {
    let mut state = State::new(filter);
    state.scraped(Instant::now(), data::fetch_scrape(daemon).await?);
    tokio::time::sleep(REFRESH).await;
    state.refreshed(Instant::now(), data::fetch(daemon).await?);
    print_line(view::text(&state).trim_end())
}

/// The live view, until a quit key or a signal. The first refresh is made
/// before the terminal is taken, so an unreachable daemon is a plain error.
async fn live(daemon: Daemon, filter: Filter) -> anyhow::Result<()> {
    let mut state = State::new(filter);
    state.refreshed(Instant::now(), data::fetch(&daemon).await?);
    let (key_tx, keys) = mpsc::channel(EVENTS);
    let (event_tx, events) = mpsc::channel(EVENTS);
    let mut screen = Screen::take()?;
    let key_thread = terminal::read_keys(key_tx);
    let refresher = tokio::spawn(refresh(daemon.clone(), event_tx.clone()));
    let result = run_loop(&mut screen, &mut state, keys, events, (daemon, event_tx)).await;
    refresher.abort();
    drop(screen);
    // The key thread sees its channel closed within one poll and ends.
    let _ = key_thread.join();
    result
}

/// Draws, waits for the next key, refresh or signal, applies it; again.
async fn run_loop(
    screen: &mut Screen,
    state: &mut State,
    mut keys: mpsc::Receiver<Action>,
    mut events: mpsc::Receiver<Event>,
    (daemon, event_tx): (Daemon, mpsc::Sender<Event>),
) -> anyhow::Result<()> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    loop {
        screen.terminal.draw(|frame| view::draw(frame, state))?;
        let action = tokio::select! {
            Some(action) = keys.recv() => action,
            Some(event) = events.recv() => {
                apply(state, event);
                continue;
            }
            _ = terminate.recv() => Action::Quit,
            _ = hangup.recv() => Action::Quit,
            _ = interrupt.recv() => Action::Quit,
        };
        match action {
            Action::Quit => return Ok(()),
            Action::Up => state.select_step(false),
            Action::Down => state.select_step(true),
            Action::CycleFilter => state.cycle_filter(),
            Action::Cancel => cancel_selected(state, &daemon, &event_tx),
            Action::Redraw => {}
        }
    }
}

fn apply(state: &mut State, event: Event) {
    match event {
        Event::Refreshed(at, Ok(fetched)) => state.refreshed(at, fetched),
        Event::Refreshed(_, Err(error)) => state.failed(error),
        Event::Cancelled(message) => state.message = Some(message),
    }
}

/// Refreshes every [`REFRESH`] (after the first, which `live` made) until
/// the loop stops listening.
async fn refresh(daemon: Daemon, events: mpsc::Sender<Event>) {
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let result = data::fetch(&daemon).await.map_err(|e| format!("{e:#}"));
        if events
            .send(Event::Refreshed(Instant::now(), result))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Cancels the selected session in the background; the outcome shows on
/// the status line, the session leaves the list at the next refresh.
fn cancel_selected(state: &mut State, daemon: &Daemon, events: &mpsc::Sender<Event>) {
    let Some(id) = state.selected_id().map(str::to_owned) else {
        state.message = Some("no session selected (↑/↓ to select)".to_owned());
        return;
    };
    state.message = Some(format!("cancelling {id}…"));
    let (daemon, events) = (daemon.clone(), events.clone());
    tokio::spawn(async move {
        let message = match admin::cancel_session(&daemon, &id).await {
            Ok(_) => format!("cancelled {id}"),
            Err(err) => format!("could not cancel {id}: {err:#}"),
        };
        let _ = events.send(Event::Cancelled(message)).await;
    });
}
