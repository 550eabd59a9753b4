//! [`RestartPolicy`]: whether a child runs again after it exits.

use crate::ChildExit;

/// When a child is restarted after it exits, in OTP terms.
///
/// | policy | OTP | restarted after |
/// |---|---|---|
/// | [`Always`](Self::Always) (default) | `permanent` | any exit |
/// | [`Once`](Self::Once) | — | the first exit only: the child runs at most twice |
/// | [`Never`](Self::Never) | `temporary` | no exit |
/// | [`OnFailure`](Self::OnFailure) | `transient` | a panic, a signal, a non-zero exit |
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use supertrees::{ChildExit, RestartPolicy};
///
/// assert!(RestartPolicy::Always.restarts_after(&ChildExit::Normal, 10));
/// assert!(RestartPolicy::Once.restarts_after(&ChildExit::Normal, 0));
/// assert!(!RestartPolicy::Once.restarts_after(&ChildExit::Normal, 1));
/// assert!(!RestartPolicy::OnFailure.restarts_after(&ChildExit::Normal, 0));
/// assert!(RestartPolicy::OnFailure.restarts_after(&ChildExit::Panicked, 0));
/// ```
#[derive(Debug, Default, PartialEq, Eq, Clone, Copy, Hash)]
#[non_exhaustive]
pub enum RestartPolicy {
    /// Always restart the child (OTP `permanent`).
    #[default]
    Always,
    /// Restart the child once: it runs at most twice.
    Once,
    /// Never restart the child (OTP `temporary`).
    Never,
    /// Restart the child only after an abnormal exit (OTP `transient`).
    OnFailure,
}

impl RestartPolicy {
    /// Whether a child that has been restarted `restarts` times so far runs
    /// again after exiting with `exit`.
    pub fn restarts_after(self, exit: &ChildExit, restarts: u32) -> bool {
        match self {
            RestartPolicy::OnFailure => exit.is_failure(),
            _ => self.allows_another_run(restarts),
        }
    }

    /// Whether a child that has been restarted `restarts` times so far may run
    /// again when its supervisor stopped it to restart a group of siblings
    /// ([`Strategy::OneForAll`](crate::Strategy::OneForAll) or
    /// [`Strategy::RestForOne`](crate::Strategy::RestForOne)).
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::RestartPolicy;
    ///
    /// assert!(RestartPolicy::OnFailure.allows_another_run(7));
    /// assert!(!RestartPolicy::Never.allows_another_run(0));
    /// ```
    pub fn allows_another_run(self, restarts: u32) -> bool {
        match self {
            RestartPolicy::Always | RestartPolicy::OnFailure => true,
            RestartPolicy::Once => restarts < 1,
            RestartPolicy::Never => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXITS: [ChildExit; 5] = [
        ChildExit::Normal,
        ChildExit::Panicked,
        ChildExit::Exited(1),
        ChildExit::Signaled(9),
        ChildExit::GaveUp,
    ];

    #[test]
    fn always_restarts_after_every_exit() {
        for exit in &EXITS {
            assert!(RestartPolicy::Always.restarts_after(exit, u32::MAX));
        }
    }

    #[test]
    fn once_restarts_exactly_once_whatever_the_exit() {
        for exit in &EXITS {
            assert!(RestartPolicy::Once.restarts_after(exit, 0));
            assert!(!RestartPolicy::Once.restarts_after(exit, 1));
        }
    }

    #[test]
    fn never_restarts() {
        for exit in &EXITS {
            assert!(!RestartPolicy::Never.restarts_after(exit, 0));
        }
    }

    #[test]
    fn on_failure_restarts_only_abnormal_exits() {
        assert!(!RestartPolicy::OnFailure.restarts_after(&ChildExit::Normal, 0));
        for exit in &EXITS[1..] {
            assert!(RestartPolicy::OnFailure.restarts_after(exit, 100));
        }
    }

    #[test]
    fn default_is_always() {
        assert_eq!(RestartPolicy::default(), RestartPolicy::Always);
    }
}
