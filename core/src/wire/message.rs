//! The messages of a supervisor's channel to each child process.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::control::{Answer, Order};
use crate::machine::{ChildIdx, Grant, Outcome, RecordState};
use crate::{ChildExit, ChildId};

/// Supervisor → worker host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Start (or restart) worker `child`. With a `lease` (its restart record
    /// as the supervisor's machine has it), the host restarts it in place
    /// while the rule and the [`Grant`] allow; see `crate::lease`.
    Start {
        child: ChildIdx,
        lease: Option<RecordState>,
    },
    /// Build worker `child` (a child started at run time) from the
    /// supervisor's template `template` and its encoded argument, to be
    /// started by the `Start` that follows.
    Add {
        child: ChildIdx,
        template: u32,
        /// Its id (`conn#7`): what the host names it in its logs.
        id: ChildId,
        arg: Vec<u8>,
    },
    /// Ask worker `child` to stop: resolve its `stopping()`, or, if its run
    /// never called it, drop its future at once; report it `Stopped` once
    /// it ended.
    Stop(ChildIdx),
    /// Drop worker `child`'s future now (its stop deadline passed, or its
    /// start timed out), then report it `Stopped`.
    Drop(ChildIdx),
    /// A new restart budget for in-place restarts.
    Grant(Grant),
    /// Ask every worker to stop, in reverse order (as `Stop` each); drop
    /// those named by `Drop`s that follow; report each, and exit once they
    /// all ended.
    Shutdown,
}

/// Supervisor → child supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Down {
    /// An operator's order about a node of the child's subtree: the child
    /// hands it to its machine if the node is its own child, or on down
    /// (see [`NodePath::hop`](crate::control::NodePath::hop)); its
    /// [`Note::Answered`] comes back up.
    Order(Order),
}

/// Child process → supervisor. A worker host sends exactly one `Exited` per
/// `Start`, and any number of `WorkerReady` and `Restarted` before it; a
/// child supervisor sends `Ready` once and `Ended` last. Either sends
/// `SetupFailed` alone, and exits, when it could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Note {
    /// Worker `child` declared itself ready.
    WorkerReady(ChildIdx),
    /// Worker `child`, started at run time, was built from its template
    /// and argument and its run spawned: what `start_child` is answered
    /// after.
    Began(ChildIdx),
    /// Worker `child` ended with `exit`, and the host started it again in
    /// place after `delay`, spending its lease: `state` is its record now,
    /// which the supervisor's machine adopts.
    Restarted {
        child: ChildIdx,
        exit: ChildExit,
        /// A panic's message, capped at 256 bytes.
        reason: Option<String>,
        delay: Duration,
        state: RecordState,
    },
    /// Worker `child` ended with `exit`; its future has been dropped, and
    /// the supervisor decides what follows.
    Exited {
        child: ChildIdx,
        exit: ChildExit,
        /// A panic's message, capped at 256 bytes.
        reason: Option<String>,
    },
    /// A child supervisor: every one of its children is ready.
    Ready,
    /// The process shows life, for its supervisor's watchdog: from a task
    /// on a worker host's executor, or from a child supervisor's loop.
    Alive {
        /// The thread that sent it (its Linux thread id): one that answers
        /// for the process, which the watchdog judges when the process
        /// misses its deadline (see `engine::supervisor::watch`).
        thread: i32,
    },
    /// A child supervisor's last word before it exits.
    Ended(Ending),
    /// The child process could not be set up before any user code ran (its
    /// signal handling; a worker host's runtime), and exits: its exit is
    /// [`ChildExit::SetupFailed`], whatever its exit code.
    SetupFailed,
    /// A child supervisor: what an [`Order`] sent down to it came to. Its
    /// supervisor passes it up only if it sent that order down.
    Answered(Answer),
}

/// How a supervisor process ended, as it tells its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ending {
    pub outcome: Outcome,
    /// The signal (SIGTERM; at the root also SIGINT, SIGHUP, SIGQUIT) that
    /// asked it to stop, if any.
    pub signal: Option<i32>,
}

impl Ending {
    /// How its parent reports a child supervisor that ended this way (when
    /// the parent did not ask it to stop; then it is `Stopped`).
    pub fn exit(self) -> ChildExit {
        match (self.outcome, self.signal) {
            (Outcome::GaveUp, _) => ChildExit::GaveUp,
            (Outcome::Normal, Some(signal)) => ChildExit::Signaled(signal),
            (Outcome::Normal, None) => ChildExit::Normal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{NodePath, Op, Refusal, Ticket};
    use crate::wire::frame::{encode, FrameReader};

    #[test]
    fn every_message_round_trips_losslessly() {
        let child = ChildIdx::new(3).unwrap();
        let state = RecordState::default();
        let commands = vec![
            Command::Start {
                child,
                lease: Some(state),
            },
            Command::Start { child, lease: None },
            Command::Add {
                child,
                template: 1,
                id: ChildId::new(7),
                arg: vec![0, 7],
            },
            Command::Stop(child),
            Command::Drop(child),
            Command::Grant(Grant {
                budget: Some(4),
                as_of: 9,
            }),
            Command::Shutdown,
        ];
        let notes = vec![
            Note::WorkerReady(child),
            Note::Restarted {
                child,
                exit: ChildExit::Exited(3),
                reason: Some("boom ✓".into()),
                delay: Duration::from_micros(2),
                state,
            },
            Note::Exited {
                child,
                exit: ChildExit::ForkFailed(11),
                reason: None,
            },
            Note::Exited {
                child,
                exit: ChildExit::Panicked,
                reason: Some("x".repeat(256)),
            },
            Note::Exited {
                child,
                exit: ChildExit::StartTimeout(Duration::from_secs(30)),
                reason: None,
            },
            Note::Exited {
                child,
                exit: ChildExit::Stopped,
                reason: None,
            },
            Note::Ready,
            Note::Alive { thread: 4321 },
            Note::Ended(Ending {
                outcome: Outcome::GaveUp,
                signal: Some(15),
            }),
            Note::SetupFailed,
            Note::Answered(Answer {
                ticket: Ticket(9),
                path: NodePath::parse("root/1/conn#3").expect("a path"),
                op: Op::Restart,
                result: Err(Refusal::TimedOut(Duration::from_secs(35))),
            }),
            Note::Exited {
                child,
                exit: ChildExit::SetupFailed,
                reason: None,
            },
        ];
        let mut r = FrameReader::default();
        r.push(&commands.iter().flat_map(encode).collect::<Vec<u8>>());
        assert_eq!(
            std::iter::from_fn(|| r.next::<Command>()).collect::<Vec<_>>(),
            commands
        );
        r.push(&notes.iter().flat_map(encode).collect::<Vec<u8>>());
        assert_eq!(
            std::iter::from_fn(|| r.next::<Note>()).collect::<Vec<_>>(),
            notes
        );
        let down = vec![Down::Order(Order {
            ticket: Ticket(u64::MAX),
            path: NodePath::parse("root/0/1").expect("a path"),
            op: Op::Restart,
        })];
        r.push(&down.iter().flat_map(encode).collect::<Vec<u8>>());
        assert_eq!(
            std::iter::from_fn(|| r.next::<Down>()).collect::<Vec<_>>(),
            down
        );
    }

    #[test]
    fn endings_say_what_happened() {
        let end = |outcome, signal| Ending { outcome, signal }.exit();
        assert_eq!(end(Outcome::Normal, None), ChildExit::Normal);
        assert_eq!(end(Outcome::GaveUp, None), ChildExit::GaveUp);
        assert_eq!(end(Outcome::Normal, Some(15)), ChildExit::Signaled(15));
    }
}
