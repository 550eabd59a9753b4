//! Supervisor paths: `root`, `root/1`, `root/1/0`, … (each segment the
//! position of a supervisor under its parent), and their ancestry.

/// Whether supervisor `path` (e.g. `root/1/0`) is `ancestor` or below it.
pub fn within(path: &str, ancestor: &str) -> bool {
    path.strip_prefix(ancestor)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether `path` is strictly below supervisor `ancestor`.
pub fn is_below(path: &str, ancestor: &str) -> bool {
    path != ancestor && within(path, ancestor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subtree_sees_the_listeners_of_its_supervisor_and_those_above() {
        assert!(within("root/1/0", "root/1"));
        assert!(within("root/1", "root/1"));
        assert!(within("root/1", "root"));
        assert!(!within("root/10", "root/1"));
        assert!(!within("root", "root/1"));
    }

    #[test]
    fn ancestry_is_by_whole_segments() {
        assert!(is_below("root/1/0", "root/1"));
        assert!(is_below("root/1", "root"));
        assert!(!is_below("root/10", "root/1"));
        assert!(!is_below("root/1", "root/1"));
    }
}
