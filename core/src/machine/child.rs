//! One child's restart record, and the rule applied when it exits on its own.
//!
//! The supervisor's [`Machine`](super::Machine) applies it, and so does a
//! worker host that restarts a `OneForOne` worker in place: both call
//! [`ChildRecord::restart_delay`], so there is one restart rule.

use std::time::Duration;

use crate::policy::BackoffState;
use crate::{BackoffPolicy, ChildExit, RestartPolicy};

/// The policies a supervisor applies to one child.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChildPolicy {
    pub(crate) restart: RestartPolicy,
    pub(crate) backoff: BackoffPolicy,
    /// A supervisor that exits normally has finished its work: it is never
    /// restarted, whatever its restart policy.
    pub(crate) is_supervisor: bool,
}

/// A child's policies and where it stands: restarts so far and its place in
/// the backoff sequence.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChildRecord {
    pub(crate) policy: ChildPolicy,
    pub(crate) restarts: u32,
    backoff: BackoffState,
}

impl ChildRecord {
    pub(crate) fn new(policy: ChildPolicy) -> Self {
        Self {
            policy,
            restarts: 0,
            backoff: BackoffState::default(),
        }
    }

    /// The child ran for `ran_for` and exited with `exit` on its own: the
    /// delay before it runs again (advancing its backoff), or `None` when it
    /// is done for good.
    pub(crate) fn restart_delay(
        &mut self,
        exit: &ChildExit,
        ran_for: Duration,
    ) -> Option<Duration> {
        let finished = self.policy.is_supervisor && !exit.is_failure();
        if finished || !self.policy.restart.restarts_after(exit, self.restarts) {
            return None;
        }
        Some(self.backoff.next_delay(&self.policy.backoff, ran_for))
    }

    /// The child has been started again.
    pub(crate) fn restarted(&mut self) {
        self.restarts = self.restarts.saturating_add(1);
    }
}
