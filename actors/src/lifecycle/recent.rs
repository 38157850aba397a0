//! The most recent finished sessions, kept in memory for
//! `GET /admin/sessions/{id}` (older ones are read from the history file).

use std::collections::VecDeque;
use std::sync::Arc;

use crate::ids::{SessionId, SessionMap};
use crate::record::SessionRecord;

/// At most `max` finished sessions, the oldest forgotten first.
pub struct Recent {
    /// `lifecycle.recent_sessions`.
    max: usize,
    /// The records by session.
    records: SessionMap<Arc<SessionRecord>>,
    /// Their order, oldest first.
    order: VecDeque<SessionId>,
}

impl Recent {
    /// Keeping at most `max`.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            records: SessionMap::default(),
            order: VecDeque::new(),
        }
    }

    /// Keeps `record`, forgetting the oldest beyond the bound.
    pub fn keep(&mut self, record: Arc<SessionRecord>) {
        if self.max == 0 {
            return;
        }
        self.order.push_back(record.id);
        self.records.insert(record.id, record);
        while self.order.len() > self.max {
            if let Some(old) = self.order.pop_front() {
                self.records.remove(&old);
            }
        }
    }

    /// A recent session's record.
    pub fn get(&self, id: &SessionId) -> Option<Arc<SessionRecord>> {
        self.records.get(id).cloned()
    }
}
