//! The id of a child started at run time.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The id of a child started at run time with `start_child`, never given
/// to another child of its template in the tree's whole life, restarts of
/// the supervisor that declared the template included: a request to
/// terminate a child that is gone (an earlier incarnation's included) is
/// `Error::UnknownChild`, never another child. It names the child in
/// events and the status (`root/1/conn#7`) and displays as the bare number.
///
/// The first incarnation of a supervisor numbers its children 1, 2, 3, ...;
/// after a restart the numbers go on from a point above every id the
/// earlier incarnations could have given (the nanoseconds since the tree
/// started), so they are larger. Treat an id as opaque: compare it, keep
/// it, print it.
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use std::collections::HashMap;
/// use supertrees::ChildId;
///
/// /// What a child started at run time is for, from what the caller
/// /// noted when it started it.
/// fn describe(jobs: &HashMap<ChildId, String>, id: ChildId) -> String {
///     match jobs.get(&id) {
///         Some(job) => format!("child {id} (#{}): {job}", id.get()),
///         None => format!("no child {id}"),
///     }
/// }
///
/// let jobs: HashMap<ChildId, String> = HashMap::new();
/// assert!(jobs.is_empty());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChildId(u64);

impl ChildId {
    /// The id numbered `n` (a supervisor numbers its children from 1).
    pub fn new(n: u64) -> Self {
        Self(n)
    }

    /// The number, e.g. to log or send it.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ChildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_the_bare_number() {
        let id = ChildId::new(42);
        assert_eq!(id.to_string(), "42");
        assert_eq!(id.get(), 42);
        assert!(ChildId::new(1) < ChildId::new(2));
    }
}
