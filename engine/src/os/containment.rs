//! The limits of a tree's subtrees, as the engine applies them: made by the
//! root before it forks anything (the groups of [`cgroup`] and their
//! [`Plan`]s), entered by each limited supervisor right after its fork,
//! read when a process dies (was it the kernel's OOM killer?) and for the
//! status, and removed when their subtree ends for good or the tree ends.

use std::collections::HashMap;

use super::cgroup::{self, apply_rlimits, Group, Hierarchies, Mechanism, Plan};
use crate::path::{is_below, within};
use crate::tree::Supervisor;
use crate::{Error, Limits};
use supertrees_core::Resources;

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

impl Subtree {
    /// Whether its supervisor enters its group as another user than root,
    /// below a [`with_user`](crate::Tree::with_user) supervisor: through
    /// descriptors root opened (see [`Group::hold_entry`]).
    fn enters_as_user(&self) -> bool {
        self.user.is_some()
    }
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
    /// without limits touches no cgroup. Where a subtree's cgroup can not
    /// be made, its limits fall back to rlimits.
    ///
    /// # Errors
    ///
    /// [`Error::UnenforceableLimit`] naming the first supervisor with a
    /// limit that nothing enforces for its subtree alone (see
    /// [`Plan::unenforced`]); what was made for the tree is removed.
    pub(crate) fn new(root: &Supervisor) -> Result<Self, Error> {
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
            return Ok(Self::default());
        }
        for (path, limits, _) in &limited {
            check_open_files(root, path, limits, &limited)?;
        }
        let hierarchies = cgroup::detect();
        let mut subtrees: Vec<Subtree> = Vec::new();
        for (path, limits, user) in limited {
            match plan_subtree(&hierarchies, &subtrees, path, limits, user) {
                Ok(subtree) => subtrees.push(subtree),
                Err(err) => {
                    hierarchies.remove_base();
                    return Err(err);
                }
            }
        }
        for subtree in &subtrees {
            tracing::info!(supervisor = %subtree.path, "limits: {}", subtree.plan);
        }
        Ok(Self {
            hierarchies,
            subtrees,
        })
    }

    /// The subtree of supervisor `path`, if it is limited.
    fn of(&self, path: &str) -> Option<&Subtree> {
        self.subtrees.iter().find(|s| s.path == path)
    }

    /// In supervisor `path`'s freshly forked process, before anything of
    /// its subtree runs: enters its cgroups and sets its rlimits. What
    /// fails is said in the error. The descriptors it entered through are
    /// closed: it keeps those of the groups strictly below it (see
    /// [`Containment::keep_entries`]).
    pub(crate) fn enter(&self, path: &str) -> Result<(), String> {
        let Some(subtree) = self.of(path) else {
            return Ok(());
        };
        if let Some(group) = &subtree.group {
            let entered = group.enter(nix::unistd::Pid::this());
            group.drop_entry();
            entered.map_err(|err| format!("entering its cgroup: {err}"))?;
        }
        apply_rlimits(&subtree.plan, &subtree.limits)
            .map_err(|err| format!("setting its rlimits: {err}"))
    }

    /// In a freshly forked process: closes the descriptors of the groups
    /// of the subtrees whose supervisor `keep` does not keep. A process
    /// holds only those its role needs (see [`Group::hold_entry`]): a
    /// supervisor those of the groups of its own subtree, which it (or a
    /// supervisor below) enters or forks a supervisor into; a worker host
    /// none, so that no worker holds a way into a cgroup.
    pub(crate) fn keep_entries(&self, keep: impl Fn(&str) -> bool) {
        for subtree in self.subtrees.iter().filter(|s| !keep(&s.path)) {
            if let Some(group) = &subtree.group {
                group.drop_entry();
            }
        }
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

    /// Whether any subtree of the tree is limited.
    pub(crate) fn limits_any(&self) -> bool {
        !self.subtrees.is_empty()
    }

    /// Whether the processes of supervisor `path` (it, and its worker host)
    /// are under an `RLIMIT_AS` memory limit: its own, or one of a limited
    /// supervisor above it (rlimits are inherited, and can not be raised).
    pub(crate) fn memory_by_rlimit(&self, path: &str) -> bool {
        self.subtrees
            .iter()
            .filter(|s| s.path == path || is_below(path, &s.path))
            .any(|s| matches!(s.plan.memory, Some(Mechanism::Rlimit(_))))
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
    /// subtree that were removed when it last ended are made again, and
    /// the descriptors that its supervisors below a
    /// [`with_user`](crate::Tree::with_user) supervisor enter them through
    /// are opened again where they no longer name the group's file (a
    /// group made again, here or by a supervisor below since this process
    /// opened them, has new files). Only a root-owned process removes and
    /// makes groups (see [`Containment::ended`]): below another user, the
    /// groups stay as long as the processes that hold their descriptors.
    pub(crate) fn prepare(&self, path: &str) {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        for subtree in self.at_or_below(path) {
            let Some(group) = subtree.group.as_ref() else {
                continue;
            };
            if !group.exists() {
                let made = make_group(
                    &self.hierarchies,
                    &self.subtrees,
                    &subtree.path,
                    &subtree.limits,
                );
                match made {
                    Ok(again) if again.is_at(group) => {}
                    Ok(_) => {
                        tracing::warn!(supervisor = %subtree.path, "its cgroup was made again elsewhere")
                    }
                    Err(err) => {
                        tracing::error!(supervisor = %subtree.path, %err, "could not make its cgroup again");
                        continue;
                    }
                }
            }
            if subtree.enters_as_user() {
                if let Err(err) = group.hold_entry() {
                    tracing::error!(supervisor = %subtree.path, %err, "could not open its cgroup's cgroup.procs again, to enter it as its user");
                }
            }
        }
    }

    /// What the status shows of each limited subtree: its limits and what
    /// it uses now.
    pub(crate) fn usage(&self) -> Vec<(String, Resources)> {
        self.subtrees
            .iter()
            .map(|s| {
                let mut used = Resources::new(s.limits);
                if let Some(group) = &s.group {
                    used.memory_bytes = group.memory_usage();
                    used.processes = group.processes();
                    used.oom_kills = group.oom_kills();
                }
                (s.path.clone(), used)
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

/// The descriptors a process of the subtree of `path` holds before any of
/// its own: the floor of [`Limits::open_files`] (16, for its pipes,
/// channel and runtime), a sending socket for each mailbox and template of
/// the tree, the receiving sockets of those declared in the subtree (one
/// per user the tree runs as), the listeners of the tree, a channel (two
/// pipe ends) for each child process of its busiest supervisor, and the
/// `cgroup.procs` descriptors its supervisor holds for the limited
/// supervisors below it that enter their groups as another user (one per
/// hierarchy each: see [`Group::hold_entry`]); `limited` are the tree's
/// limited supervisors, with the user they enter their groups as.
fn descriptors_needed(root: &Supervisor, path: &str, limited: &[(String, Limits, User)]) -> u64 {
    let all = root.supervisors("root");
    let names = |s: &Supervisor| (s.mailboxes.len() + s.templates.len()) as u64;
    let users = root.users(nix::unistd::geteuid().as_raw()).len() as u64;
    let mut needed = 16;
    for (at, sup) in &all {
        needed += names(sup) + sup.listeners.len() as u64;
        if within(at, path) {
            needed += names(sup) * users;
        }
    }
    let children = all
        .iter()
        .filter(|(at, _)| within(at, path))
        .map(|(_, sup)| sup.children.len() as u64 + 1)
        .max()
        .unwrap_or(0);
    let entries: u64 = limited
        .iter()
        .filter(|(at, _, user)| is_below(at, path) && user.is_some())
        .map(|(_, l, _)| {
            [l.memory.is_some(), l.processes.is_some(), l.cpu.is_some()]
                .into_iter()
                .filter(|&set| set)
                .count() as u64
        })
        .sum();
    needed + 2 * children + entries
}

/// [`Error::UnenforceableLimit`] when the [`Limits::open_files`] of the
/// supervisor at `path` leaves its processes no room: they would hold more
/// descriptors for the tree than the limit lets them open, and could not
/// start (the kernel refuses every new descriptor above the limit).
fn check_open_files(
    root: &Supervisor,
    path: &str,
    limits: &Limits,
    limited: &[(String, Limits, User)],
) -> Result<(), Error> {
    let Some(limit) = limits.open_files else {
        return Ok(());
    };
    let needed = descriptors_needed(root, path, limited);
    if limit >= needed {
        return Ok(());
    }
    Err(Error::unenforceable_limit(
        path.to_owned(),
        "open_files",
        format!(
            "{limit} is below the {needed} descriptors each of its processes holds for the tree's \
             mailboxes, templates, listeners and its own channels; raise it to {needed} plus what \
             its workers open"
        ),
    ))
}

/// The uid and gid a supervisor process runs as (`None`: the root's).
type User = Option<(u32, u32)>;

/// The subtree of limited supervisor `path`: its plan, and its cgroups
/// where the plan uses any (made inside those of `made`, the subtrees
/// above it). When they can not be made, its limits are planned as if
/// there were no cgroups.
///
/// # Errors
///
/// [`Error::UnenforceableLimit`] when a limit of the plan is not enforced.
fn plan_subtree(
    hierarchies: &Hierarchies,
    made: &[Subtree],
    path: String,
    limits: Limits,
    user: User,
) -> Result<Subtree, Error> {
    let mut plan = hierarchies.plan(&limits);
    let mut group = None;
    let mut failure = None;
    if plan.uses_cgroups() {
        let made = make_group(hierarchies, made, &path, &limits).and_then(|made| {
            // Entered as another user: through descriptors root opens now.
            if user.is_some() {
                if let Err(err) = made.hold_entry() {
                    made.remove();
                    return Err(err);
                }
            }
            Ok(made)
        });
        match made {
            Ok(made) => group = Some(made),
            Err(err) => {
                tracing::warn!(supervisor = %path, %err, "could not make the subtree's cgroup; its limits fall back to rlimits");
                plan = Hierarchies::none().plan(&limits);
                failure = Some(err);
            }
        }
    }
    if let Some((field, why)) = plan.unenforced() {
        let reason = match failure {
            Some(err) => format!("{why} (making its cgroup failed: {err})"),
            None => why.to_owned(),
        };
        return Err(Error::unenforceable_limit(path, field, reason));
    }
    Ok(Subtree {
        path,
        limits,
        plan,
        group,
        user,
    })
}

/// Makes (or makes again) the group of limited supervisor `path`, inside
/// the group of the nearest limited supervisor above it among `made`. Its
/// files stay root's; where its supervisor enters it as another user, the
/// caller opens the descriptors it enters through ([`Group::hold_entry`]).
fn make_group(
    hierarchies: &Hierarchies,
    made: &[Subtree],
    path: &str,
    limits: &Limits,
) -> std::io::Result<Group> {
    let parent = made
        .iter()
        .filter(|s| is_below(path, &s.path))
        .max_by_key(|s| s.path.len())
        .and_then(|s| s.group.as_ref());
    hierarchies.create(parent, &path.replace('/', "-"), limits)
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
    fn open_files_must_leave_room_for_the_descriptors_of_the_tree() {
        let tree = |boxes: usize, open_files: u64| {
            let mut tree = crate::Supertree::new().add_supervisor(move |s| {
                s.with_limits(Limits::new().open_files(open_files))
                    .with_mailbox("own")
            });
            for n in 0..boxes {
                tree = tree.with_mailbox(&format!("box{n}"));
            }
            crate::tree::TreeParts::from(tree)
        };
        // 16, 80 + 1 senders, 1 receiver (one user), a channel for the host.
        assert_eq!(descriptors_needed(&tree(80, 64).root, "root/0", &[]), 100);
        match check_open_files(
            &tree(80, 64).root,
            "root/0",
            &Limits::new().open_files(64),
            &[],
        ) {
            Err(Error::UnenforceableLimit {
                path,
                field,
                reason,
                ..
            }) => {
                assert_eq!((path.as_str(), field), ("root/0", "open_files"));
                assert!(
                    reason.starts_with("64 is below the 100 descriptors"),
                    "{reason}"
                );
            }
            other => panic!("expected open_files refused, got {other:?}"),
        }
        let roomy = Limits::new().open_files(100);
        assert!(check_open_files(&tree(80, 100).root, "root/0", &roomy, &[]).is_ok());
        let few = Limits::new().open_files(64);
        assert!(check_open_files(&tree(2, 64).root, "root/0", &few, &[]).is_ok());
        // Below it, two supervisors limited in memory and processes that
        // enter their groups as another user: 2 × 2 descriptors more.
        let both = Limits::new().memory(1 << 30).processes(64);
        let below = [
            ("root/0/0".to_owned(), both, Some((65534, 65534))),
            ("root/0/1".to_owned(), both, Some((65534, 65534))),
            // Not below it, or entered as root: none.
            ("root/1".to_owned(), both, Some((65534, 65534))),
            ("root/0/2".to_owned(), both, None),
        ];
        assert_eq!(
            descriptors_needed(&tree(80, 64).root, "root/0", &below),
            104
        );
    }

    #[test]
    fn a_tree_without_limits_has_no_subtrees_and_touches_no_cgroup() {
        let tree = crate::tree::TreeParts::from(crate::Supertree::new().add_supervisor(|s| s));
        let containment = Containment::new(&tree.root).expect("no limits");
        assert!(containment.subtrees.is_empty());
        assert_eq!(containment.enter("root/0"), Ok(()));
        assert!(containment.usage().is_empty());
    }

    #[test]
    fn without_cgroups_only_what_rlimits_bound_per_process_is_accepted() {
        let none = Hierarchies::none();
        let plan = |limits| plan_subtree(&none, &[], "root/1".to_owned(), limits, None);
        for (limits, field) in [
            (Limits::new().processes(4), "processes"),
            (Limits::new().memory(1 << 30).cpu(0.5), "cpu"),
            (
                Limits::new().open_files(64).processes(64).cpu(1.0),
                "processes",
            ),
        ] {
            match plan(limits) {
                Err(Error::UnenforceableLimit {
                    path,
                    field: f,
                    reason,
                    ..
                }) => {
                    assert_eq!((path.as_str(), f), ("root/1", field), "{limits}");
                    assert!(
                        reason.contains(&format!(
                            "no {} cgroup",
                            if field == "cpu" { "cpu" } else { "pids" }
                        )),
                        "{reason}"
                    );
                }
                other => panic!("{limits}: {other:?}"),
            }
        }
        let subtree = plan(Limits::new().memory(64 << 20).open_files(64)).expect("enforced");
        assert!(subtree.group.is_none());
        let containment = Containment {
            hierarchies: none,
            subtrees: vec![subtree],
        };
        assert!(containment.memory_by_rlimit("root/1"));
        assert!(containment.memory_by_rlimit("root/1/0"));
        assert!(!containment.memory_by_rlimit("root/10"));
        assert!(!containment.memory_by_rlimit("root"));
        let subtree = &containment.subtrees[0];
        assert_eq!(
            subtree.plan.to_string(),
            "memory 64 MiB by RLIMIT_AS, open files 64 by RLIMIT_NOFILE"
        );
    }
}
