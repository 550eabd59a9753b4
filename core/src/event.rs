//! Lifecycle events: what happened where in the tree, as the root sees it.

use std::fmt;
use std::time::{Duration, SystemTime};

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
/// [`on_event`](crate::Tree::on_event) and folds it into the
/// live [`TreeStatus`](crate::TreeStatus). Its `Display` is one line, e.g.
/// `root/1/0 (pid 4242): panicked: boom-42; restarting after 10ms`.
///
/// Events are made by the tree, not by users: `Event` and the struct
/// variants of [`EventKind`] are `#[non_exhaustive]`, so that they can grow
/// (as `Exited` grew `reason`) without breaking your code. Read their
/// fields, and match the struct variants with `..`.
///
/// # Examples
///
/// Alerting on panics, tested on virtual time:
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use std::sync::{Arc, Mutex};
/// use std::time::{Duration, SystemTime};
/// use supertrees::testing::{run_simulated, FakeTimer};
/// use supertrees::{BackoffPolicy, BoxFuture, ChildExit, EventKind, RestartPolicy};
/// use supertrees::{Restartable, Supertree, Worker};
///
/// struct Flaky;
/// impl Worker for Flaky {
///     fn init(&self) -> BoxFuture {
///         Box::pin(async { panic!("boom-42") })
///     }
/// }
/// impl Restartable for Flaky {
///     fn restart_policy(&self) -> RestartPolicy {
///         RestartPolicy::Once
///     }
///     fn backoff_policy(&self) -> BackoffPolicy {
///         let delay = Duration::from_millis(10);
///         BackoffPolicy::new(delay, delay, Duration::from_secs(1), 1.0)
///     }
/// }
///
/// let alerts = Arc::new(Mutex::new(Vec::new()));
/// let sink = alerts.clone();
/// let tree = Supertree::new().add_worker(Flaky).on_event(move |event| {
///     // Name the fields you read, and `..` for the rest.
///     if let EventKind::Exited { exit: ChildExit::Panicked, reason, .. } = &event.kind {
///         assert_eq!(reason.as_deref(), Some("boom-42"));
///         sink.lock().unwrap().push(event.to_string());
///     }
/// });
/// run_simulated(tree, FakeTimer::new())?;
///
/// // The simulation has no processes, so no pids.
/// assert_eq!(*alerts.lock().unwrap(), [
///     "root/0: panicked: boom-42; restarting after 10ms",
///     "root/0: panicked: boom-42; not restarted",
/// ]);
/// # Ok::<(), supertrees::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Event {
    /// Where: a supervisor (`root/1`), a worker (`root/1/0`: child 0 of
    /// `root/1`) or a worker host (`root/1/host`).
    pub path: String,
    /// The process: a supervisor's or host's own pid; for a worker, the pid
    /// of the host it runs in. `None` where no process is known.
    pub pid: Option<u32>,
    /// What happened.
    pub kind: EventKind,
    /// When it happened, on the wall clock of the process that saw it (in
    /// [`run_simulated`](crate::testing::run_simulated): the Unix epoch
    /// plus the virtual time since the simulation began).
    pub at: SystemTime,
}

/// What happened, in an [`Event`].
///
/// It grows: the enum and each of its struct variants are
/// `#[non_exhaustive]`, so match it with a wildcard arm and its struct
/// variants with `..` (`EventKind::Exited { exit, .. }`).
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
    #[non_exhaustive]
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
    #[non_exhaustive]
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
    #[non_exhaustive]
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
    /// An operator stopped it (`stop PATH` on the status socket): it stays
    /// down, restarted neither by its policy nor with its siblings, until
    /// an operator starts it (`start PATH`). Follows its last `Exited`.
    Held,
}

impl EventKind {
    /// The kind's name in the JSON lines of `watch` on the status socket:
    /// `started`, `ready`, `exited`, `host_exited`, `stopping`, `dropped`,
    /// `removed` or `held`.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::EventKind;
    ///
    /// assert_eq!(EventKind::Ready.name(), "ready");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Started(_) => "started",
            EventKind::Ready => "ready",
            EventKind::Exited { .. } => "exited",
            EventKind::HostExited { .. } => "host_exited",
            EventKind::Stopping { .. } => "stopping",
            EventKind::Dropped(_) => "dropped",
            EventKind::Removed => "removed",
            EventKind::Held => "held",
        }
    }
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
            EventKind::Held => f.write_str("stopped by an operator; held down until started"),
        }
    }
}

/// Constructors of what the process engine (`supertrees-engine`) makes:
/// `#[non_exhaustive]` structs and variants can not be built outside this
/// crate. The engine's seam, not part of the API.
#[doc(hidden)]
impl Event {
    /// An event that happens now (on the wall clock).
    pub fn new(path: String, pid: Option<u32>, kind: EventKind) -> Self {
        Self::happened(path, pid, kind, SystemTime::now())
    }

    /// An event that happened at `at`.
    pub fn happened(path: String, pid: Option<u32>, kind: EventKind, at: SystemTime) -> Self {
        Event {
            path,
            pid,
            kind,
            at,
        }
    }
}

#[doc(hidden)]
impl EventKind {
    pub fn exited(exit: ChildExit, restart: Option<Duration>, reason: Option<String>) -> Self {
        EventKind::Exited {
            exit,
            restart,
            reason,
        }
    }
    pub fn host_exited(exit: ChildExit, workers: u32, restart: Option<Duration>) -> Self {
        EventKind::HostExited {
            exit,
            workers,
            restart,
        }
    }
    pub fn stopping(gave_up: bool) -> Self {
        EventKind::Stopping { gave_up }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(path: &str, pid: Option<u32>, kind: EventKind) -> Event {
        Event::happened(path.to_owned(), pid, kind, SystemTime::UNIX_EPOCH)
    }

    #[test]
    fn each_kind_displays_as_one_line() {
        let cases = [
            (
                event(
                    "root/1/0",
                    Some(4242),
                    EventKind::Exited {
                        exit: ChildExit::Panicked,
                        restart: None,
                        reason: None,
                    },
                ),
                "root/1/0 (pid 4242): panicked; not restarted",
            ),
            (
                event(
                    "root/0",
                    Some(7),
                    EventKind::Exited {
                        exit: ChildExit::Panicked,
                        restart: Some(Duration::from_millis(10)),
                        reason: Some("boom-42".into()),
                    },
                ),
                "root/0 (pid 7): panicked: boom-42; restarting after 10ms",
            ),
            (
                event("root/1", Some(7), EventKind::Started(NodeKind::Supervisor)),
                "root/1 (pid 7): supervisor started",
            ),
            (
                event("root/1/3", None, EventKind::Removed),
                "root/1/3: removed",
            ),
            (
                event(
                    "root/1/host",
                    Some(8),
                    EventKind::HostExited {
                        exit: ChildExit::Signaled(9),
                        workers: 3,
                        restart: Some(Duration::from_millis(20)),
                    },
                ),
                "root/1/host (pid 8): killed by signal SIGKILL; took down 3 workers, back after 20ms",
            ),
            (
                event(
                    "root/1/host",
                    Some(8),
                    EventKind::HostExited {
                        exit: ChildExit::Stopped,
                        workers: 0,
                        restart: None,
                    },
                ),
                "root/1/host (pid 8): stopped",
            ),
            (
                event("root", None, EventKind::Stopping { gave_up: true }),
                "root: restart intensity exceeded; stopping all children",
            ),
            (
                event("root", None, EventKind::Dropped(3)),
                "root: 3 events were dropped",
            ),
        ];
        for (event, text) in cases {
            assert_eq!(event.to_string(), text);
        }
    }
}
