//! One child's restart record, and the rule applied when it exits on its own.
//!
//! The supervisor's [`Machine`](super::Machine) applies it, and so does a
//! worker host that restarts a `OneForOne` worker in place on a lease
//! (`crate::lease`): both call [`ChildRecord::restart_delay`] on the same
//! record, which travels between them ([`RecordState`]), so there is one
//! rule and one state.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::policy::BackoffState;
use crate::{BackoffPolicy, ChildExit, RestartPolicy, Shutdown};

/// A child's position among its supervisor's children, checked to fit the
/// wire (`u32`). It names a child of *some* supervisor: the machine checks
/// it against its own children before use.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChildIdx(u32);

/// The bare position, as in log lines (`children=[0, 3]`).
impl fmt::Debug for ChildIdx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl ChildIdx {
    /// The index of the `n`-th child, if it fits.
    pub fn new(n: usize) -> Option<Self> {
        u32::try_from(n).ok().map(Self)
    }

    /// The position, for indexing.
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for ChildIdx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The policies a supervisor applies to one child.
#[derive(Debug, Clone, Copy)]
pub struct ChildPolicy {
    pub restart: RestartPolicy,
    pub backoff: BackoffPolicy,
    /// How the child is stopped: its TERM→KILL deadline (for a worker:
    /// the time it has to return after its stop request, then it is dropped).
    pub shutdown: Shutdown,
    /// How long a worker may take to be ready after each start (only for a
    /// `Readiness::Notify` worker); past it, it is dropped and fails.
    pub start_timeout: Option<Duration>,
    /// A supervisor that exits normally has finished its work: it is never
    /// restarted, whatever its restart policy.
    pub is_supervisor: bool,
    /// A child supervisor's own watchdog period, if it has one (else its
    /// parent's applies: see [`Machine::watchdog_of`](super::Machine::watchdog_of)).
    pub watchdog: Option<Duration>,
}

/// Where a child stands: restarts so far and its place in the backoff
/// sequence. What a lease hands to a worker host and gets back.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordState {
    pub restarts: u32,
    pub backoff: BackoffState,
}

/// A child's policies and where it stands.
#[derive(Debug, Clone, Copy)]
pub struct ChildRecord {
    pub policy: ChildPolicy,
    pub state: RecordState,
}

impl ChildRecord {
    pub fn new(policy: ChildPolicy, state: RecordState) -> Self {
        Self { policy, state }
    }

    /// The child ran for `ran_for` and exited with `exit` on its own: the
    /// delay before it runs again (advancing its backoff), or `None` when it
    /// is done for good.
    pub fn restart_delay(&mut self, exit: &ChildExit, ran_for: Duration) -> Option<Duration> {
        let finished = self.policy.is_supervisor && !exit.is_failure();
        if finished
            || !self
                .policy
                .restart
                .restarts_after(exit, self.state.restarts)
        {
            return None;
        }
        Some(self.state.backoff.next_delay(&self.policy.backoff, ran_for))
    }

    /// The child has been started again.
    pub fn restarted(&mut self) {
        self.state.restarts = self.state.restarts.saturating_add(1);
    }

    /// Whether the child may run again after its supervisor stopped it to
    /// restart a group of siblings.
    pub fn allows_another_run(&self) -> bool {
        self.policy.restart.allows_another_run(self.state.restarts)
    }
}
