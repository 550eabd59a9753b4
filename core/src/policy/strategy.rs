//! [`Strategy`]: which siblings restart with a failed child.

use std::ops::Range;

/// Which children a supervisor restarts when one of them is restarted.
///
/// Children are ordered by the order of `add_worker`/`add_supervisor` calls.
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use supertrees::Strategy;
///
/// // Child 1 of 4 fails:
/// assert_eq!(Strategy::OneForOne.affected(1, 4), 1..2);
/// assert_eq!(Strategy::OneForAll.affected(1, 4), 0..4);
/// assert_eq!(Strategy::RestForOne.affected(1, 4), 1..4);
/// ```
#[derive(Debug, Default, PartialEq, Eq, Clone, Copy, Hash)]
#[non_exhaustive]
pub enum Strategy {
    /// Restart only the child that exited (the default).
    #[default]
    OneForOne,
    /// Stop every other child in reverse order, then restart them all in
    /// order.
    OneForAll,
    /// Stop the children added after the one that exited, in reverse order,
    /// then restart it and them in order.
    RestForOne,
}

impl Strategy {
    /// The children (as a range of positions) restarted together when the
    /// child at `failed` of `count` children is restarted.
    pub fn affected(self, failed: usize, count: usize) -> Range<usize> {
        match self {
            Strategy::OneForOne => failed..failed + 1,
            Strategy::OneForAll => 0..count,
            Strategy::RestForOne => failed..count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_at_the_edges() {
        assert_eq!(Strategy::OneForOne.affected(0, 1), 0..1);
        assert_eq!(Strategy::OneForAll.affected(0, 1), 0..1);
        assert_eq!(Strategy::RestForOne.affected(2, 3), 2..3);
        assert_eq!(Strategy::RestForOne.affected(0, 3), 0..3);
        assert_eq!(Strategy::OneForAll.affected(2, 3), 0..3);
    }

    #[test]
    fn default_is_one_for_one() {
        assert_eq!(Strategy::default(), Strategy::OneForOne);
    }
}
