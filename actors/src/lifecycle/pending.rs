//! What the logger has not yet written to the history file, bounded.
//!
//! Finished sessions wait here as whole records; live sessions only as a
//! mark that they changed (their open row is built from the timeline when
//! the batch is sent, so it is always the latest). If the store falls behind,
//! the buffer keeps summaries first: past [`KEEP_PHASES_UP_TO`] waiting
//! records, new ones are kept without their phase events; past
//! [`MAX_WAITING`], new ones are dropped. Both are counted.

use crate::ids::{SessionId, SessionMap};
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
    finished: SessionMap<SessionRecord>,
    /// Live sessions with events not yet written.
    changed: SessionMap<()>,
    /// Events recorded since the last batch was taken.
    events_since: usize,
    /// Drops not yet reported.
    dropped: Dropped,
}

impl Pending {
    /// A live session recorded an event.
    pub fn changed(&mut self, id: SessionId) {
        self.events_since += 1;
        self.changed.insert(id, ());
    }

    /// A session ended: its whole record waits to be written.
    pub fn finished(&mut self, mut record: SessionRecord) {
        self.events_since += 1;
        self.changed.remove(&record.id);
        if self.finished.contains_key(&record.id) {
            return; // already waiting (given back from a failed batch)
        }
        if self.finished.len() >= MAX_WAITING {
            self.dropped.sessions += 1;
            self.dropped.events += record.phases.len() as u64;
            return;
        }
        if self.finished.len() >= KEEP_PHASES_UP_TO && !record.phases.is_empty() {
            let events = record.phases.len() as u32;
            self.dropped.events += u64::from(events);
            record.dropped_events += events;
            record.phases = Vec::new();
        }
        self.finished.insert(record.id, record);
    }

    /// Events recorded since the last batch was taken.
    pub fn events_since(&self) -> usize {
        self.events_since
    }

    /// Takes everything waiting: the finished records, and for each changed
    /// live session the open record `open` builds (`None` once it is gone).
    pub fn take(
        &mut self,
        open: impl Fn(SessionId) -> Option<SessionRecord>,
    ) -> Vec<SessionRecord> {
        self.events_since = 0;
        let mut batch: Vec<SessionRecord> = self.finished.drain().map(|(_, r)| r).collect();
        batch.extend(self.changed.drain().filter_map(|(id, ())| open(id)));
        batch
    }

    /// A batch that could not be written comes back: its finished records
    /// wait again (unless dropped meanwhile by the bounds), its live ones are
    /// marked changed (their next open record is built fresh).
    pub fn give_back(&mut self, batch: Vec<SessionRecord>) {
        for record in batch {
            match record.end {
                Some(_) => self.finished(record),
                None => {
                    self.changed.insert(record.id, ());
                }
            }
        }
    }

    /// Drops since the last call (and resets them).
    pub fn take_dropped(&mut self) -> Dropped {
        std::mem::take(&mut self.dropped)
    }
}
