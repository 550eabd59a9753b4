//! Lifecycle events: what happened where in the tree, as the root sees it.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ChildExit;

/// What a path in the tree names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum NodeKind {
    /// A supervisor process (`root` is the calling process).
    Supervisor,
    /// A worker: an async task in its supervisor's worker host.
    Worker,
    /// The worker-host process of a supervisor, at `<supervisor>/host`.
    WorkerHost,
}

/// One lifecycle event of any process of the tree.
///
/// Every supervisor reports what happens to its children to the root process,
/// which hands each event to the callback given to
/// [`Supertree::on_event`](crate::Supertree::on_event) and folds it into the
/// live [`TreeStatus`](crate::TreeStatus).
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use supertrees::{ChildExit, Event, EventKind, NodeKind};
///
/// let event = Event {
///     path: "root/1/0".into(),
///     pid: Some(4242),
///     kind: EventKind::Exited { exit: ChildExit::Panicked, restart: None, reason: None },
/// };
/// assert_eq!(event.to_string(), "root/1/0 (pid 4242): panicked; not restarted");
/// let boom = Event {
///     path: "root/0".into(),
///     pid: Some(7),
///     kind: EventKind::Exited {
///         exit: ChildExit::Panicked,
///         restart: Some(std::time::Duration::from_millis(10)),
///         reason: Some("boom-42".into()),
///     },
/// };
/// assert_eq!(boom.to_string(), "root/0 (pid 7): panicked: boom-42; restarting after 10ms");
/// let started = Event { path: "root/1".into(), pid: Some(7), kind: EventKind::Started(NodeKind::Supervisor) };
/// assert_eq!(started.to_string(), "root/1 (pid 7): supervisor started");
/// let removed = Event { path: "root/1/3".into(), pid: None, kind: EventKind::Removed };
/// assert_eq!(removed.to_string(), "root/1/3: removed");
/// let host = Event {
///     path: "root/1/host".into(),
///     pid: Some(8),
///     kind: EventKind::HostExited {
///         exit: ChildExit::Signaled(9),
///         workers: 3,
///         restart: Some(std::time::Duration::from_millis(20)),
///     },
/// };
/// assert_eq!(
///     host.to_string(),
///     "root/1/host (pid 8): killed by signal SIGKILL; took down 3 workers, back after 20ms"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Where: a supervisor (`root/1`), a worker (`root/1/0`: child 0 of
    /// `root/1`) or a worker host (`root/1/host`).
    pub path: String,
    /// The process: a supervisor's or host's own pid; for a worker, the pid
    /// of the host it runs in. `None` where no process is known.
    pub pid: Option<u32>,
    /// What happened.
    pub kind: EventKind,
}

/// What happened, in an [`Event`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EventKind {
    /// It started (or restarted).
    Started(NodeKind),
    /// It is ready: a worker declared it (see [`ready()`](crate::ready())),
    /// or every child of a supervisor is ready.
    Ready,
    /// It exited with `exit`; it runs again after `restart`, or never
    /// (`None`). A worker restarted in place by its host reports `Exited`
    /// with the delay it waited and no separate `Started`.
    Exited {
        /// How it ended.
        exit: ChildExit,
        /// The delay before it runs again; `None` when it is not restarted.
        restart: Option<Duration>,
        /// Why it failed, where known: a worker's panic message (at most
        /// 256 bytes), displayed after the exit (`panicked: boom`).
        reason: Option<String>,
    },
    /// A worker host ended (at `<supervisor>/host`), taking down the
    /// `workers` of its workers that were running; each of them has an
    /// `Exited` event of its own, and the first to run again does so after
    /// `restart` (`None`: none does). A host stopped on request exits with
    /// [`ChildExit::Stopped`] and takes no worker down.
    HostExited {
        /// How the host process ended.
        exit: ChildExit,
        /// How many running workers it took down.
        workers: u32,
        /// When the first of them runs again, if any does.
        restart: Option<Duration>,
    },
    /// A supervisor stops all its children in reverse order: asked to
    /// (`gave_up == false`) or because its restart intensity was exceeded.
    Stopping {
        /// Whether the supervisor gave up.
        gave_up: bool,
    },
    /// The tree could not report this many events to the root (its pipe was
    /// full): the status may miss them.
    Dropped(u64),
    /// A child started at run time was terminated with `terminate_child`,
    /// ended for good, or ended with its supervisor, and is gone from the
    /// tree (and the status): its id is never given to another child.
    /// Follows its last `Exited`.
    Removed,
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeKind::Supervisor => "supervisor",
            NodeKind::Worker => "worker",
            NodeKind::WorkerHost => "worker host",
        })
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)?;
        if let Some(pid) = self.pid {
            write!(f, " (pid {pid})")?;
        }
        f.write_str(": ")?;
        match &self.kind {
            EventKind::Started(kind) => write!(f, "{kind} started"),
            EventKind::Ready => f.write_str("ready"),
            EventKind::Exited {
                exit,
                restart,
                reason,
            } => {
                write!(f, "{exit}")?;
                if let Some(reason) = reason {
                    write!(f, ": {reason}")?;
                }
                match restart {
                    Some(delay) => write!(f, "; restarting after {delay:?}"),
                    None => f.write_str("; not restarted"),
                }
            }
            EventKind::HostExited {
                exit, workers: 0, ..
            } => write!(f, "{exit}"),
            EventKind::HostExited {
                exit,
                workers,
                restart,
            } => {
                let plural = if *workers == 1 { "" } else { "s" };
                write!(f, "{exit}; took down {workers} worker{plural}, ")?;
                match restart {
                    Some(delay) => write!(f, "back after {delay:?}"),
                    None => f.write_str("none restarted"),
                }
            }
            EventKind::Stopping { gave_up: true } => {
                f.write_str("restart intensity exceeded; stopping all children")
            }
            EventKind::Stopping { gave_up: false } => f.write_str("stopping all children"),
            EventKind::Dropped(n) => write!(f, "{n} events were dropped"),
            EventKind::Removed => f.write_str("removed"),
        }
    }
}
