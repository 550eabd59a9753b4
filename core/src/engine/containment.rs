//! The limits of a tree's subtrees, as the engine applies them: made by the
//! root before it forks anything (the groups of [`cgroup`] and their
//! [`Plan`]s), entered by each limited supervisor right after its fork,
//! read when a process dies (was it the kernel's OOM killer?) and for the
//! status, and removed when their subtree ends for good or the tree ends.

use std::collections::HashMap;

use super::cgroup::{self, apply_rlimits, Group, Hierarchies, Plan};
use crate::limits::bytes;
use crate::tree::{within, Supervisor};
use crate::Limits;

/// One limited supervisor's subtree.
#[derive(Debug)]
pub(crate) struct Subtree {
    /// The supervisor's path, e.g. `root/1`.
    pub(crate) path: String,
    limits: Limits,
    plan: Plan,
    /// Its cgroups, where the plan uses any and they could be made.
    group: Option<Group>,
    /// The user it runs as when it enters them.
    user: User,
}

/// Every limited subtree of a tree.
#[derive(Debug, Default)]
pub(crate) struct Containment {
    hierarchies: Hierarchies,
    subtrees: Vec<Subtree>,
}

impl Containment {
    /// Plans (and logs, once per limited supervisor) how the limits of the
    /// tree below `root` are enforced, and makes their cgroups. A tree
    /// without limits touches no cgroup.
    pub(crate) fn new(root: &Supervisor) -> Self {
        let supervisors = root.supervisors("root");
        // Each enters its group as the user of the nearest `with_user`
        // supervisor above it: a supervisor switches to its own user only
        // after it entered its group.
        let limited: Vec<(String, Limits, User)> = supervisors
            .iter()
            .filter(|(_, sup)| !sup.limits.is_empty())
            .map(|(path, sup)| {
                let user = supervisors
                    .iter()
                    .filter(|(above, s)| is_below(path, above) && s.user.is_some())
                    .max_by_key(|(above, _)| above.len())
                    .and_then(|(_, s)| s.user);
                (path.clone(), sup.limits, user)
            })
            .collect();
        if limited.is_empty() {
            return Self::default();
        }
        let hierarchies = cgroup::detect();
        let mut subtrees: Vec<Subtree> = Vec::new();
        for (path, limits, user) in limited {
            let plan = hierarchies.plan(&limits);
            let group = if plan.uses_cgroups() {
                match make_group(&hierarchies, &subtrees, &path, &limits, user) {
                    Ok(group) => Some(group),
                    Err(err) => {
                        tracing::error!(supervisor = %path, %err, "could not make the subtree's cgroups; its cgroup limits are not enforced");
                        None
                    }
                }
            } else {
                None
            };
            tracing::info!(supervisor = %path, "limits: {plan}");
            subtrees.push(Subtree {
                path,
                limits,
                plan,
                group,
                user,
            });
        }
        Self {
            hierarchies,
            subtrees,
        }
    }

    /// The subtree of supervisor `path`, if it is limited.
    fn of(&self, path: &str) -> Option<&Subtree> {
        self.subtrees.iter().find(|s| s.path == path)
    }

    /// In supervisor `path`'s freshly forked process, before anything of
    /// its subtree runs: enters its cgroups and sets its rlimits. What
    /// fails is said in the error.
    pub(crate) fn enter(&self, path: &str) -> Result<(), String> {
        let Some(subtree) = self.of(path) else {
            return Ok(());
        };
        if let Some(group) = &subtree.group {
            group
                .enter(nix::unistd::Pid::this())
                .map_err(|err| format!("entering its cgroup: {err}"))?;
        }
        apply_rlimits(&subtree.plan, &subtree.limits)
            .map_err(|err| format!("setting its rlimits: {err}"))
    }

    /// The group whose memory limit bounds the processes of supervisor
    /// `path` (its own, or its nearest limited ancestor's).
    fn enclosing(&self, path: &str) -> Option<&Group> {
        self.subtrees
            .iter()
            .filter(|s| s.path == path || is_below(path, &s.path))
            .filter(|s| s.group.is_some())
            .max_by_key(|s| s.path.len())
            .and_then(|s| s.group.as_ref())
    }

    /// The OOM kills so far in the group bounding supervisor `path`'s own
    /// processes (`own`: its worker host) or, for a limited child, in its
    /// subtree's group (`own` false).
    fn oom_kills(&self, path: &str, own: bool) -> Option<u64> {
        let group = if own {
            self.enclosing(path)
        } else {
            self.of(path)?.group.as_ref()
        };
        group.map(Group::oom_kills)
    }

    /// The limited subtrees at or below supervisor `path`, outermost first.
    fn at_or_below<'a>(&'a self, path: &'a str) -> impl Iterator<Item = &'a Subtree> {
        self.subtrees
            .iter()
            .filter(move |s| s.path == path || is_below(&s.path, path))
    }

    /// Supervisor `path` ended for good (it will not be restarted): the
    /// cgroups of its subtree are removed, with anything left in them. A
    /// supervisor that is not root leaves them to the root, which removes
    /// them all when the tree ends.
    pub(crate) fn ended(&self, path: &str) {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let mut groups: Vec<&Subtree> = self.at_or_below(path).collect();
        groups.reverse();
        for subtree in groups {
            if let Some(group) = subtree.group.as_ref().filter(|g| g.exists()) {
                tracing::debug!(supervisor = %subtree.path, "its subtree ended; removing its cgroup");
                group.remove();
            }
        }
    }

    /// Supervisor `path` is about to be forked: the cgroups of its
    /// subtree that were removed when it last ended are made again.
    pub(crate) fn prepare(&self, path: &str) {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        for subtree in self.at_or_below(path) {
            let Some(group) = subtree.group.as_ref().filter(|g| !g.exists()) else {
                continue;
            };
            let made = make_group(
                &self.hierarchies,
                &self.subtrees,
                &subtree.path,
                &subtree.limits,
                subtree.user,
            );
            match made {
                Ok(again) if again == *group => {}
                Ok(_) => {
                    tracing::warn!(supervisor = %subtree.path, "its cgroup was made again elsewhere")
                }
                Err(err) => {
                    tracing::error!(supervisor = %subtree.path, %err, "could not make its cgroup again")
                }
            }
        }
    }

    /// What the status shows of each limited subtree: its limits and what
    /// it uses now.
    pub(crate) fn usage(&self) -> Vec<(String, String)> {
        self.subtrees
            .iter()
            .map(|s| {
                let mut text = format!("limits: {}", s.limits);
                if let Some(group) = &s.group {
                    if let Some(memory) = group.memory_usage() {
                        text.push_str(&format!("; memory in use {}", human(memory)));
                    }
                    if let Some(n) = group.processes() {
                        text.push_str(&format!("; processes {n}"));
                    }
                    let ooms = group.oom_kills();
                    if ooms > 0 {
                        text.push_str(&format!("; OOM kills {ooms}"));
                    }
                }
                (s.path.clone(), text)
            })
            .collect()
    }

    /// Removes the tree's cgroups, killing what is left in them (the root,
    /// when the tree has ended).
    pub(crate) fn remove(&self) {
        if !self.subtrees.is_empty() {
            self.hierarchies.remove_base();
        }
    }
}

/// Whether `path` is strictly below supervisor `ancestor`.
fn is_below(path: &str, ancestor: &str) -> bool {
    path != ancestor && within(path, ancestor)
}

/// The uid and gid a supervisor process runs as (`None`: the root's).
type User = Option<(u32, u32)>;

/// Makes (or makes again) the group of limited supervisor `path`, inside
/// the group of the nearest limited supervisor above it among `made`, and
/// lets `user` enter it.
fn make_group(
    hierarchies: &Hierarchies,
    made: &[Subtree],
    path: &str,
    limits: &Limits,
    user: User,
) -> std::io::Result<Group> {
    let parent = made
        .iter()
        .filter(|s| is_below(path, &s.path))
        .max_by_key(|s| s.path.len())
        .and_then(|s| s.group.as_ref());
    let group = hierarchies.create(parent, &path.replace('/', "-"), limits)?;
    if let Some((uid, gid)) = user {
        group.allow(uid, gid)?;
    }
    Ok(group)
}

/// `n` bytes, rounded to a readable unit.
fn human(n: u64) -> String {
    match n {
        0..=8191 => bytes(n),
        8192..=1_048_575 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0)),
    }
}

/// What a supervisor process remembers of the OOM counters it reads, so
/// that a kill is counted once.
#[derive(Debug, Default)]
pub(crate) struct OomWatch {
    seen: HashMap<(String, bool), u64>,
}

impl OomWatch {
    /// Reads the counters it will compare with (at the supervisor's start).
    pub(crate) fn baseline(&mut self, containment: &Containment, path: &str, own: bool) {
        if let Some(n) = containment.oom_kills(path, own) {
            self.seen.insert((path.to_owned(), own), n);
        }
    }

    /// Whether the kernel's OOM killer struck in the group of `path` (see
    /// [`Containment::oom_kills`]) since the last look.
    pub(crate) fn struck(&mut self, containment: &Containment, path: &str, own: bool) -> bool {
        let Some(now) = containment.oom_kills(path, own) else {
            return false;
        };
        let seen = self.seen.insert((path.to_owned(), own), now).unwrap_or(0);
        now > seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestry_is_by_whole_segments() {
        assert!(is_below("root/1/0", "root/1"));
        assert!(is_below("root/1", "root"));
        assert!(!is_below("root/10", "root/1"));
        assert!(!is_below("root/1", "root/1"));
    }

    #[test]
    fn a_tree_without_limits_has_no_subtrees_and_touches_no_cgroup() {
        let tree = crate::tree::TreeParts::from(crate::Supertree::new().add_supervisor(|s| s));
        let containment = Containment::new(&tree.root);
        assert!(containment.subtrees.is_empty());
        assert_eq!(containment.enter("root/0"), Ok(()));
        assert!(containment.usage().is_empty());
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human(512), "512 bytes");
        assert_eq!(human(12 * 1024 * 1024 + 300_000), "12.3 MiB");
        assert_eq!(human(3_678_208), "3.5 MiB");
        assert_eq!(human(20_480), "20.0 KiB");
    }
}
