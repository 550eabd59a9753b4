//! What the user watches a tree with: their callbacks and the status they
//! see, kept the same way by the root process and by the simulation.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use crate::tree::Observers;
use crate::{Event, TreeStatus};

/// The user's `on_event`/`on_ready` callbacks and the [`TreeStatus`] folded
/// from the events they are given.
pub(crate) struct Observed {
    observers: Observers,
    status: TreeStatus,
}

impl Observed {
    /// Starts watching at `now`, from the process `pid`.
    pub(crate) fn new(observers: Observers, pid: u32, now: Instant) -> Self {
        Self {
            observers,
            status: TreeStatus::new(pid, now),
        }
    }

    pub(crate) fn status(&self) -> &TreeStatus {
        &self.status
    }

    /// Moves the status's clock to `now`.
    pub(crate) fn advance(&mut self, now: Instant) {
        self.status.advance(now);
    }

    /// Records `event`, which happened at `now`, and hands it to `on_event`.
    /// A callback that panics is logged and not called again.
    pub(crate) fn event(&mut self, event: &Event, now: Instant) {
        self.status.record(event, now);
        if let Some(f) = &mut self.observers.on_event {
            if catch_unwind(AssertUnwindSafe(|| f(event))).is_err() {
                tracing::error!("the on_event callback panicked; it will not be called again");
                self.observers.on_event = None;
            }
        }
    }

    /// The whole tree is up: calls `on_ready`, once.
    pub(crate) fn ready(&mut self) {
        if let Some(f) = self.observers.on_ready.take() {
            let status = &self.status;
            if catch_unwind(AssertUnwindSafe(|| f(status))).is_err() {
                tracing::error!("the on_ready callback panicked");
            }
        }
    }

    /// In a freshly forked child: forgets all of it (no user destructor runs
    /// there, and no page shared with the root is written to free it).
    pub(crate) fn forget(self) {
        std::mem::forget(self);
    }
}
