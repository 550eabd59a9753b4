//! [`ChildExit`]: how a child ended.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How a child of a supervisor ended.
///
/// [`Normal`](ChildExit::Normal) and [`Stopped`](ChildExit::Stopped) are
/// normal exits; every other variant is a failure, which is what
/// [`RestartPolicy::OnFailure`](crate::RestartPolicy::OnFailure) restarts.
/// No meaning is read into a process's exit code: a worker host that exits
/// with code 3 is `Exited(3)`.
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use supertrees::ChildExit;
///
/// assert!(!ChildExit::Normal.is_failure());
/// assert!(ChildExit::Signaled(9).is_failure());
/// assert_eq!(ChildExit::Signaled(9).to_string(), "killed by signal SIGKILL");
/// assert_eq!(ChildExit::Stopped.to_string(), "stopped");
/// assert!(!ChildExit::Stopped.is_failure());
/// let timeout = ChildExit::StartTimeout(std::time::Duration::from_secs(30));
/// assert!(timeout.is_failure());
/// assert_eq!(timeout.to_string(), "not ready within 30s");
/// assert!(ChildExit::OutOfMemory.to_string().starts_with("out of memory"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ChildExit {
    /// A worker's future returned, or a supervisor finished its work.
    Normal,
    /// The tree stopped it on request: a shutdown, or a sibling's restart
    /// under [`Strategy::OneForAll`](crate::Strategy::OneForAll) or
    /// [`Strategy::RestForOne`](crate::Strategy::RestForOne). Displayed as
    /// `stopped`. A child that had to be killed because it did not stop
    /// within its [`Shutdown`](crate::Shutdown) timeout is reported with the
    /// signal that killed it instead; a worker is always reported
    /// `Stopped`, whether it returned by itself after
    /// [`stopping()`](crate::stopping()) resolved or its future was dropped
    /// at its [`Restartable::shutdown`](crate::Restartable::shutdown)
    /// deadline.
    Stopped,
    /// A worker's future panicked.
    Panicked,
    /// A child process exited with this non-zero code.
    Exited(i32),
    /// A child process was killed by this signal.
    Signaled(i32),
    /// A child supervisor exceeded its restart intensity and gave up.
    GaveUp,
    /// The child's process could not be forked, or a pipe for it could not
    /// be made (the `errno`, e.g. `EAGAIN`, `EMFILE`). A failure of the
    /// engine's own machinery before any of the child's code ran: it is
    /// retried by the child's restart policy, after at least the engine's
    /// floor delay (see [`is_engine_failure`](ChildExit::is_engine_failure)).
    ForkFailed(i32),
    /// The child's process was forked but could not be set up before any of
    /// the child's code ran: its worker host's runtime or threads did not
    /// start (e.g. [`Spawner::block_on`](crate::Spawner::block_on) panicked
    /// building its runtime), or its signal handling could not be
    /// installed. The process said so on its channel before it exited.
    /// Retried like [`ForkFailed`](ChildExit::ForkFailed).
    SetupFailed,
    /// A [`Readiness::Notify`](crate::Readiness::Notify) worker did not call
    /// [`ready()`](crate::ready()) within its
    /// [`start_timeout`](crate::Restartable::start_timeout) (this long): it
    /// was dropped, and is restarted by its restart policy. Displayed as
    /// `not ready within 30s`.
    StartTimeout(std::time::Duration),
    /// It ended at its subtree's memory limit
    /// ([`Limits::memory`](crate::Limits::memory)). Displayed `out of
    /// memory`. Read from:
    ///
    /// * a cgroup: the kernel's OOM killer SIGKILLed it, and the cgroup's
    ///   OOM counter went up;
    /// * `RLIMIT_AS` (no cgroup): an allocation failed, so the process
    ///   aborted (Rust prints `memory allocation of N bytes failed` and
    ///   raises `SIGABRT`). A handler the engine installs in each process
    ///   under `RLIMIT_AS` tells this from other aborts: a `SIGABRT` sent by
    ///   another process, or raised by a thread that was panicking (a panic
    ///   under `panic = "abort"`), stays `Signaled(SIGABRT)`, and so does
    ///   one without `errno` `ENOMEM` unless `RUST_BACKTRACE` is on (the
    ///   backtrace printed before the abort sets `errno`). Hence its
    ///   limits: with `RUST_BACKTRACE` on, an explicit
    ///   [`std::process::abort`] outside a panic also reads as out of
    ///   memory; a process that installs its own `SIGABRT` handler is
    ///   reported `Signaled(SIGABRT)` when it runs out.
    OutOfMemory,
    /// It showed no life within its supervisor's watchdog period
    /// ([`with_watchdog`](crate::Tree::with_watchdog): a worker blocking its
    /// thread, a deadlock, a SIGSTOP), and was not starved of CPU, so it
    /// was killed. Displayed `hung`.
    Hung,
}

impl ChildExit {
    /// Whether this is an abnormal exit: anything but
    /// [`Normal`](ChildExit::Normal) and [`Stopped`](ChildExit::Stopped).
    pub fn is_failure(&self) -> bool {
        !matches!(self, ChildExit::Normal | ChildExit::Stopped)
    }

    /// Whether the engine's own machinery failed before any of the child's
    /// code ran ([`ForkFailed`](ChildExit::ForkFailed),
    /// [`SetupFailed`](ChildExit::SetupFailed)): then the restart waits at
    /// least a floor delay, whatever the child's backoff — 10 ms, doubling
    /// with each consecutive such failure up to 1 s — so a machine out of
    /// processes or file descriptors never sees a busy loop.
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::ChildExit;
    ///
    /// assert!(ChildExit::ForkFailed(11).is_engine_failure());
    /// assert!(ChildExit::SetupFailed.is_engine_failure());
    /// assert!(!ChildExit::Panicked.is_engine_failure());
    /// ```
    pub fn is_engine_failure(&self) -> bool {
        matches!(self, ChildExit::ForkFailed(_) | ChildExit::SetupFailed)
    }
}

impl fmt::Display for ChildExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildExit::Normal => f.write_str("exited normally"),
            ChildExit::Stopped => f.write_str("stopped"),
            ChildExit::Panicked => f.write_str("panicked"),
            ChildExit::Exited(code) => write!(f, "exited with code {code}"),
            ChildExit::Signaled(sig) => match nix::sys::signal::Signal::try_from(*sig) {
                Ok(signal) => write!(f, "killed by signal {signal}"),
                Err(_) => write!(f, "killed by signal {sig}"),
            },
            ChildExit::GaveUp => f.write_str("gave up: restart intensity exceeded"),
            ChildExit::ForkFailed(errno) => {
                write!(
                    f,
                    "could not be forked: {}",
                    nix::errno::Errno::from_raw(*errno)
                )
            }
            ChildExit::SetupFailed => {
                f.write_str("could not be set up: its process failed before it ran")
            }
            ChildExit::StartTimeout(limit) => write!(f, "not ready within {limit:?}"),
            ChildExit::OutOfMemory => {
                f.write_str("out of memory: ended at its subtree's memory limit")
            }
            ChildExit::Hung => {
                f.write_str("hung: no sign of life within its watchdog period; killed")
            }
        }
    }
}
