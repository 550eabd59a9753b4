//! [`Shutdown`]: how a supervisor stops a child process.

use std::time::Duration;

/// How a child is stopped: children stop in reverse start order.
///
/// A worker's is its [`Restartable::shutdown`](crate::Restartable::shutdown)
/// (the time it has to return after [`stopping()`](crate::stopping())
/// resolves, then its future is dropped). A supervisor's
/// [`with_shutdown`](crate::Tree::with_shutdown) is the time its worker
/// host has to exit once its workers are done. A child supervisor is always
/// stopped with [`Shutdown::Infinity`]: its own children's timeouts bound
/// its stop.
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use std::time::Duration;
/// use supertrees::Shutdown;
///
/// assert_eq!(Shutdown::default(), Shutdown::Timeout(Duration::from_secs(5)));
/// assert_eq!(Shutdown::Timeout(Duration::from_millis(10)).kill_after(), Some(Duration::from_millis(10)));
/// assert_eq!(Shutdown::Kill.kill_after(), Some(Duration::ZERO));
/// assert_eq!(Shutdown::Infinity.kill_after(), None);
/// ```
#[derive(Debug, PartialEq, Eq, Clone, Copy, Hash)]
#[non_exhaustive]
pub enum Shutdown {
    /// Send SIGTERM, and SIGKILL if the child has not exited after this long
    /// (the default: 5 s).
    Timeout(Duration),
    /// Send SIGKILL at once.
    Kill,
    /// Send SIGTERM and wait for as long as the child takes.
    Infinity,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::Timeout(Duration::from_secs(5))
    }
}

impl Shutdown {
    /// How long after the stop request SIGKILL is sent, or `None` for never.
    /// `Some(Duration::ZERO)` means SIGKILL straight away, with no SIGTERM.
    pub fn kill_after(self) -> Option<Duration> {
        match self {
            Shutdown::Timeout(d) => Some(d),
            Shutdown::Kill => Some(Duration::ZERO),
            Shutdown::Infinity => None,
        }
    }
}
