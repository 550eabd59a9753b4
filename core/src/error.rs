//! The one error type of supertrees.

use std::fmt;
use std::time::Duration;

/// Everything that can go wrong when building or running a supervision tree.
///
/// The error is `Send + Sync + 'static` so it travels through `?`, `anyhow`
/// and threads, and it is `#[non_exhaustive]`: match it with a wildcard arm.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use supertrees_core::{BackoffPolicy, Error};
///
/// let err = BackoffPolicy::try_new(Duration::ZERO, Duration::from_secs(1), Duration::from_secs(2), 2.0)
///     .unwrap_err();
/// assert!(matches!(err, Error::InvalidPolicy { field: "min_delay", .. }));
/// assert_eq!(err.to_string(), "invalid policy: min_delay must be greater than zero");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A policy was given a value it can not work with. `field` names the
    /// argument at fault.
    InvalidPolicy {
        /// The name of the offending argument, e.g. `"multiplier"`.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The supervisor at `path` restarted its children more than
    /// `max_restarts` times within `within`, stopped them all and gave up.
    /// At the root, [`start`](crate::Supertree::start_with) returns this.
    IntensityExceeded {
        /// The supervisor that gave up, e.g. `"root"`.
        path: String,
        /// The configured limit.
        max_restarts: u32,
        /// The configured window.
        within: Duration,
    },
    /// The tree was started from inside a running async runtime (for example
    /// within `#[tokio::main]`). Forking such a process is unsound, so the tree
    /// refuses to start; start it from a plain `fn main` instead.
    InsideRuntime,
    /// A simulated tree can make no more progress: every task waits, and no
    /// timer is pending (e.g. a worker awaits a future that nothing will wake).
    Stalled,
    /// An operating-system call the engine needs failed while setting up the
    /// root supervisor (e.g. creating its signal pipe).
    Os {
        /// What the engine was doing.
        context: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidPolicy { field, reason } => {
                write!(f, "invalid policy: {field} {reason}")
            }
            Error::IntensityExceeded {
                path,
                max_restarts,
                within,
            } => write!(
                f,
                "supervisor {path} exceeded its restart intensity \
                 (more than {max_restarts} restarts within {within:?}) and gave up"
            ),
            Error::InsideRuntime => f.write_str(
                "a supervision tree can not be started from inside a running async runtime; \
                 call start() from a plain fn main",
            ),
            Error::Stalled => {
                f.write_str("simulation stalled: every task waits and no timer is pending")
            }
            Error::Os { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Os { source, .. } => Some(source),
            _ => None,
        }
    }
}
