//! Requests whose body is still arriving: the one time a request exists
//! before the supervisor has heard of it.
//!
//! A chat request becomes a session once its body is read, because routing
//! needs the body's `model`. A client that sends a head and then trickles
//! (or stops sending) its body would be invisible until then, so the chat
//! route registers every request here while it reads the body: admin
//! listings and `/healthz` count it, and `DELETE /admin/sessions/{id}`
//! cancels it. Each shard has its own registry (taken only by its own
//! thread on the request path, so the lock is never contended there); admin
//! answers read all of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use switchboard_actors::ids::SessionId;
use switchboard_actors::meta::Received;
use tokio::sync::Notify;

/// One shard's requests whose body is being read.
#[derive(Default)]
pub struct Arrivals {
    reading: Mutex<HashMap<SessionId, Arrival>>,
}

/// A request whose body is being read, as admin answers show it.
#[derive(Clone)]
pub struct Arrival {
    /// Its ids, arrival time, caller and class.
    pub received: Received,
    /// Notified when an operator cancels it.
    cancel: Arc<Notify>,
}

/// Keeps a request listed while its body is read; unlists it when dropped.
pub struct Reading<'a> {
    arrivals: &'a Arrivals,
    id: SessionId,
    /// Resolves when an operator cancels the request.
    pub cancelled: Arc<Notify>,
}

impl Arrivals {
    fn lock(&self) -> MutexGuard<'_, HashMap<SessionId, Arrival>> {
        self.reading.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lists `received` until the returned guard is dropped.
    pub fn reading(&self, received: &Received) -> Reading<'_> {
        let cancel = Arc::new(Notify::new());
        let arrival = Arrival {
            received: received.clone(),
            cancel: cancel.clone(),
        };
        self.lock().insert(received.session_id, arrival);
        Reading {
            arrivals: self,
            id: received.session_id,
            cancelled: cancel,
        }
    }

    /// The requests being read now.
    pub fn list(&self) -> Vec<Arrival> {
        self.lock().values().cloned().collect()
    }

    /// How many requests are being read now.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// Cancels the request `id` if it is being read here; whether it was.
    pub fn cancel(&self, id: SessionId) -> bool {
        match self.lock().get(&id) {
            Some(arrival) => {
                // `notify_one` keeps the permit if the reader is not waiting
                // at this instant, so the cancel cannot be missed.
                arrival.cancel.notify_one();
                true
            }
            None => false,
        }
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        self.arrivals.lock().remove(&self.id);
    }
}
