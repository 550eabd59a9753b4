// STUB(machine): replaced by the dyn-machine branch.
use serde::{Deserialize, Serialize};
/// The id of a child started at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChildId(u64);
impl ChildId {
    #[allow(dead_code)]
    pub(crate) fn new(n: u64) -> Self {
        Self(n)
    }
    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }
}
impl std::fmt::Display for ChildId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
