//! Finished sessions the logger has not yet written to the history file,
//! bounded.
//!
//! (Live sessions wait in the logger's registry; their open rows are built
//! fresh at each batch.) If the store falls behind, the buffer keeps
//! summaries first: past [`KEEP_PHASES_UP_TO`] waiting records, new ones are
//! kept without their phase events; past [`MAX_WAITING`], new ones are
//! dropped. Both are counted.

use std::sync::Arc;

use crate::ids::SessionMap;
use crate::record::SessionRecord;

/// Finished records waiting before phase detail is dropped: at 10,000
/// sessions a second that is a second of writes, far beyond a normal batch
/// (100 ms), about 10 MB with their events.
pub const KEEP_PHASES_UP_TO: usize = 10_000;

/// Finished records waiting at most: a minute of a busy daemon's summaries
/// while the file is locked, about 20 MB.
pub const MAX_WAITING: usize = 65_536;

/// What was dropped, since it was last reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Phase events not written.
    pub events: u64,
    /// Whole sessions not written.
    pub sessions: u64,
}

/// The write buffer.
#[derive(Default)]
pub struct Pending {
    /// Finished sessions' records.
    finished: SessionMap<Arc<SessionRecord>>,
    /// Events recorded since the last batch was taken.
    events_since: usize,
    /// Drops not yet reported.
    dropped: Dropped,
}

impl Pending {
    /// `events` more were recorded (by a session that began or ended).
    pub fn recorded(&mut self, events: usize) {
        self.events_since += events;
    }

    /// A session ended: its whole record waits to be written.
    pub fn finished(&mut self, record: Arc<SessionRecord>) {
        if self.finished.contains_key(&record.id) {
            return; // already waiting (given back from a failed batch)
        }
        let events = record.phases.len() as u64;
        if self.finished.len() >= MAX_WAITING {
            self.dropped.sessions += 1;
            self.dropped.events += events;
            return;
        }
        let record = match self.finished.len() >= KEEP_PHASES_UP_TO && events > 0 {
            true => {
                self.dropped.events += events;
                Arc::new(without_phases(&record))
            }
            false => record,
        };
        self.finished.insert(record.id, record);
    }

    /// Events recorded since the last batch was taken.
    pub fn events_since(&self) -> usize {
        self.events_since
    }

    /// Takes every finished record waiting.
    pub fn take(&mut self) -> Vec<Arc<SessionRecord>> {
        self.events_since = 0;
        self.finished.drain().map(|(_, record)| record).collect()
    }

    /// Drops since the last call (and resets them).
    pub fn take_dropped(&mut self) -> Dropped {
        std::mem::take(&mut self.dropped)
    }
}

/// `record` without its phase events (counted as dropped in it).
fn without_phases(record: &SessionRecord) -> SessionRecord {
    SessionRecord {
        phases: Vec::new(),
        dropped_events: record.dropped_events + record.phases.len() as u32,
        id: record.id,
        request_id: record.request_id.clone(),
        requested: record.requested.clone(),
        provider: record.provider.clone(),
        model: record.model.clone(),
        peer: record.peer.clone(),
        priority: record.priority,
        stream: record.stream,
        received_at: record.received_at,
        metadata: record.metadata.clone(),
        end: record.end.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{RequestId, SessionId};
    use crate::phase::EventView;

    fn record(events: usize) -> Arc<SessionRecord> {
        let now = std::time::SystemTime::now();
        let event = EventView {
            phase: "RECEIVED",
            wall: now,
            elapsed: std::time::Duration::ZERO,
            attempt: 0,
            detail: None,
        };
        Arc::new(SessionRecord {
            id: SessionId::new(),
            request_id: RequestId::generate(),
            requested: "a/b".into(),
            provider: None,
            model: None,
            peer: None,
            priority: Default::default(),
            stream: false,
            received_at: now,
            metadata: None,
            phases: vec![event; events],
            dropped_events: 0,
            end: None,
        })
    }

    #[test]
    fn summaries_outlast_phase_detail_and_drops_are_counted() {
        let mut pending = Pending::default();
        for _ in 0..KEEP_PHASES_UP_TO {
            pending.finished(record(6));
        }
        pending.finished(record(6));
        assert_eq!(
            pending.take_dropped(),
            Dropped {
                events: 6,
                sessions: 0
            }
        );
        for _ in pending.finished.len()..MAX_WAITING {
            pending.finished(record(6));
        }
        pending.finished(record(6));
        let dropped = pending.take_dropped();
        assert_eq!(dropped.sessions, 1);
        let batch = pending.take();
        assert_eq!(batch.len(), MAX_WAITING);
        assert_eq!(
            batch.iter().filter(|r| r.phases.is_empty()).count(),
            MAX_WAITING - KEEP_PHASES_UP_TO
        );
        assert!(pending.take().is_empty());
    }
}
