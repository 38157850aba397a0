//! The live sessions' recorders of one shard, shared by the recorders and
//! the lifecycle logger.
//!
//! A recorder adds itself when its session arrives, by a plain call: the
//! logger needs it only at its next batch (to write the open rows of
//! sessions still running, so a crash leaves them to be found), so a
//! message per session, waking the logger for nothing else, was a hop that
//! carried no work. The logger takes a recorder out when its session's
//! `Ended` arrives, so the map holds what the logger held before: every
//! request from RECEIVED to its end (a refusal ends at once, a session
//! actor ends its recorder in `stopped` however it stops).
//!
//! The lock is only taken on the shard's own thread (the recorders of one
//! shard's sessions and that shard's logger), so it is never contended; a
//! recorder never holds its own progress lock while taking this one.

use std::sync::{Mutex, MutexGuard, PoisonError};

use super::Recorder;
use crate::ids::{SessionId, SessionMap};

/// The recorders of the sessions that began and have not ended.
#[derive(Default)]
pub struct Live(Mutex<SessionMap<Recorder>>);

impl Live {
    /// A session began.
    pub fn insert(&self, recorder: Recorder) {
        self.lock().insert(recorder.meta().id, recorder);
    }

    /// A session ended.
    pub fn remove(&self, id: &SessionId) {
        self.lock().remove(id);
    }

    /// The map, for the logger to read. Not re-entrant: a guard held while
    /// calling anything that takes it again (the logger's `open_rows`)
    /// blocks the shard's thread for good.
    pub fn lock(&self) -> MutexGuard<'_, SessionMap<Recorder>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
