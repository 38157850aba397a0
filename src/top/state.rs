//! What `top` shows and what the keys change: the latest answers, the
//! minute of scrapes behind the rates, the provider filter and the selected
//! session. The event loop ([`super`]) feeds it; the view
//! ([`super::view`]) reads it. No terminal involved, so it is tested as is.

use std::time::Instant;

use super::data::{Fetched, Provider, Session};
use super::window::{Rates, Window};

/// The rows to show: everything, or one provider's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Filter {
    /// Every provider and session.
    #[default]
    All,
    /// Only this provider's row and sessions.
    Provider(String),
}

impl Filter {
    fn keeps(&self, provider: &str) -> bool {
        match self {
            Filter::All => true,
            Filter::Provider(name) => name == provider,
        }
    }
}

/// `top`'s state between two frames.
#[derive(Debug, Default)]
pub struct State {
    /// The latest refresh that succeeded.
    pub fetched: Option<Fetched>,
    /// Why the latest refresh failed, until one succeeds.
    pub error: Option<String>,
    /// The outcome of the last key's action (a cancel), for the status line.
    pub message: Option<String>,
    /// Which rows are shown.
    pub filter: Filter,
    /// The selected session, by id, so a refresh that reorders or removes
    /// rows does not move the selection to another session.
    selected: Option<String>,
    /// Where the selection was, for when its session ends.
    selected_index: usize,
    /// The scrapes behind the rates.
    window: Window,
}

impl State {
    /// A state showing `filter`'s rows.
    pub fn new(filter: Filter) -> Self {
        Self {
            filter,
            ..Self::default()
        }
    }

    /// Takes a refresh made `at`.
    pub fn refreshed(&mut self, at: Instant, fetched: Fetched) {
        self.window.push(at, fetched.scrape.clone());
        self.fetched = Some(fetched);
        self.error = None;
        self.keep_selection();
    }

    /// Adds a scrape alone (the first of `top --once`).
    pub fn scraped(&mut self, at: Instant, scrape: super::scrape::Scrape) {
        self.window.push(at, scrape);
    }

    /// Notes a failed refresh; the last good answers stay on screen.
    pub fn failed(&mut self, error: String) {
        self.error = Some(error);
    }

    /// The providers the filter keeps, each with its rates (`None` until
    /// the window has two scrapes).
    pub fn providers(&self) -> Vec<(&Provider, Option<Rates>)> {
        let Some(fetched) = &self.fetched else {
            return Vec::new();
        };
        let rates = self.window.rates();
        let has_window = self.window.covered().is_some();
        fetched
            .providers
            .iter()
            .filter(|p| self.filter.keeps(&p.name))
            .map(|p| {
                let figures = has_window.then(|| rates.get(&p.name).cloned().unwrap_or_default());
                (p, figures)
            })
            .collect()
    }

    /// The window's length, when there is one.
    pub fn window_covered(&self) -> Option<std::time::Duration> {
        self.window.covered()
    }

    /// The sessions the filter keeps, oldest first.
    pub fn sessions(&self) -> Vec<&Session> {
        let Some(fetched) = &self.fetched else {
            return Vec::new();
        };
        let keep = |s: &&Session| self.filter.keeps(&s.provider);
        fetched.sessions.iter().filter(keep).collect()
    }

    /// The selected row's index among [`State::sessions`].
    pub fn selected_row(&self) -> Option<usize> {
        let id = self.selected.as_deref()?;
        self.sessions().iter().position(|s| s.id == id)
    }

    /// The selected session's id (what `c` cancels).
    pub fn selected_id(&self) -> Option<&str> {
        self.selected_row().and(self.selected.as_deref())
    }

    /// Moves the selection `down` or up one row, staying inside the list.
    pub fn select_step(&mut self, down: bool) {
        let count = self.sessions().len();
        if count == 0 {
            return;
        }
        let index = match self.selected_row() {
            None => 0,
            Some(i) if down => (i + 1).min(count - 1),
            Some(i) => i.saturating_sub(1),
        };
        self.select_index(index);
    }

    /// Shows the next provider's rows alone, and after the last, all again.
    pub fn cycle_filter(&mut self) {
        let names: Vec<&str> = match &self.fetched {
            Some(fetched) => fetched.providers.iter().map(|p| p.name.as_str()).collect(),
            None => Vec::new(),
        };
        let next = match &self.filter {
            Filter::All => names.first(),
            Filter::Provider(current) => names
                .iter()
                .position(|n| n == current)
                .and_then(|i| names.get(i + 1)),
        };
        self.filter = next.map_or(Filter::All, |n| Filter::Provider((*n).to_owned()));
        self.keep_selection();
    }

    fn select_index(&mut self, index: usize) {
        let id = self.sessions().get(index).map(|s| s.id.clone());
        self.selected_index = index;
        self.selected = id;
    }

    /// After the rows changed: keeps the selected session if it is still
    /// shown, else selects the row now at its place (or none if empty).
    fn keep_selection(&mut self) {
        if let Some(row) = self.selected_row() {
            self.selected_index = row;
            return;
        }
        let count = self.sessions().len();
        if count == 0 {
            self.selected = None;
        } else if self.selected.is_some() {
            self.select_index(self.selected_index.min(count - 1));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::top::data::{Health, Totals};

    fn session(id: &str, provider: &str, age_s: u64) -> Session {
        Session {
            id: id.to_owned(),
            provider: provider.to_owned(),
            route: format!("{provider}/m"),
            phase: "PROVIDER_CALL_START".to_owned(),
            queue_position: None,
            age: Duration::from_secs(age_s),
            client: "-".to_owned(),
        }
    }

    fn fetched(sessions: Vec<Session>) -> Fetched {
        let provider = |name: &str| Provider {
            name: name.to_owned(),
            health: Health::Healthy,
            in_flight: 1,
            queued: 0,
            max_concurrency: 4,
        };
        Fetched {
            providers: vec![provider("a"), provider("b")],
            sessions,
            totals: Totals {
                status: "ok".to_owned(),
                live: 0,
                queued: 0,
            },
            scrape: Default::default(),
        }
    }

    #[test]
    fn the_selection_follows_its_session_and_stays_in_the_list() {
        let mut state = State::default();
        let rows = vec![
            session("s1", "a", 9),
            session("s2", "b", 5),
            session("s3", "a", 1),
        ];
        state.refreshed(Instant::now(), fetched(rows));
        assert_eq!(state.selected_id(), None);
        state.select_step(true);
        state.select_step(true);
        assert_eq!(state.selected_id(), Some("s2"));
        state.refreshed(
            Instant::now(),
            fetched(vec![session("s2", "b", 6), session("s3", "a", 2)]),
        );
        assert_eq!(
            state.selected_id(),
            Some("s2"),
            "follows the session, not the row"
        );
        state.refreshed(Instant::now(), fetched(vec![session("s3", "a", 3)]));
        assert_eq!(
            state.selected_id(),
            Some("s3"),
            "its row's neighbour once it ended"
        );
        state.select_step(true);
        assert_eq!(state.selected_id(), Some("s3"));
        state.refreshed(Instant::now(), fetched(Vec::new()));
        assert_eq!(state.selected_id(), None);
    }

    #[test]
    fn the_filter_cycles_through_providers_then_all() {
        let mut state = State::default();
        let rows = vec![session("s1", "a", 9), session("s2", "b", 5)];
        state.refreshed(Instant::now(), fetched(rows));
        state.cycle_filter();
        assert_eq!(state.filter, Filter::Provider("a".to_owned()));
        assert_eq!(state.sessions().len(), 1);
        assert_eq!(state.providers().len(), 1);
        state.cycle_filter();
        assert_eq!(state.sessions()[0].id, "s2");
        state.cycle_filter();
        assert_eq!(state.filter, Filter::All);
        assert_eq!(state.sessions().len(), 2);
    }

    #[test]
    fn rates_appear_once_there_are_two_scrapes() {
        let mut state = State::default();
        let start = Instant::now();
        state.refreshed(start, fetched(Vec::new()));
        assert!(state.providers().iter().all(|(_, rates)| rates.is_none()));
        state.refreshed(start + Duration::from_secs(1), fetched(Vec::new()));
        assert!(state.providers().iter().all(|(_, rates)| rates.is_some()));
    }
}
