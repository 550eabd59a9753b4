//! [`ChildExit`]: how a child ended.

use std::fmt;

/// How a child of a supervisor ended.
///
/// Only [`Normal`](ChildExit::Normal) is a normal exit; every other variant
/// is a failure, which is what [`RestartPolicy::OnFailure`](crate::RestartPolicy::OnFailure)
/// restarts.
///
/// # Examples
///
/// ```
/// use supertrees_core::ChildExit;
///
/// assert!(!ChildExit::Normal.is_failure());
/// assert!(ChildExit::Signaled(9).is_failure());
/// assert_eq!(ChildExit::Signaled(9).to_string(), "killed by signal SIGKILL");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChildExit {
    /// A worker's future returned, or a supervisor finished its work.
    Normal,
    /// A worker's future panicked.
    Panicked,
    /// A child process exited with this non-zero code.
    Exited(i32),
    /// A child process was killed by this signal.
    Signaled(i32),
    /// A child supervisor exceeded its restart intensity and gave up.
    GaveUp,
    /// The child's process could not be forked (the `errno`, e.g. `EAGAIN`);
    /// it is retried like any failed child.
    ForkFailed(i32),
}

impl ChildExit {
    /// How the engines report a child they stopped on request (the machine
    /// accepts any exit of a child it asked to stop).
    pub(crate) const STOPPED: ChildExit = ChildExit::Signaled(nix::libc::SIGTERM);

    /// Whether this is an abnormal exit.
    pub fn is_failure(&self) -> bool {
        !matches!(self, ChildExit::Normal)
    }
}

impl fmt::Display for ChildExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildExit::Normal => f.write_str("exited normally"),
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
        }
    }
}
