//! A limited supervisor's [`Group`]: made by [`Hierarchies::create`], with
//! its limits written; entered by its processes; read; removed.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{dir, enable, parse, Controller, Hierarchies, Version};
use super::{CPU_MIN_QUOTA_US, CPU_PERIOD_US, LEAF};
use crate::Limits;

impl Hierarchies {
    /// Makes the group of a limited supervisor called `name`, below the
    /// group of its nearest limited ancestor (`parent`) or else the base,
    /// in every hierarchy with a controller for a limit in `limits`, and
    /// writes those limits. A group of that name left over is reused. With
    /// no such limit (or no controller) the group has no directory of its
    /// own and [`Group::enter`] does nothing. On an error, what was made is
    /// removed again.
    pub(crate) fn create(
        &self,
        parent: Option<&Group>,
        name: &str,
        limits: &Limits,
    ) -> io::Result<Group> {
        if name.is_empty() || name == "." || name == ".." || name == LEAF || name.contains('/') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name:?} can't name a cgroup"),
            ));
        }
        let wanted: Vec<Controller> = [
            (Controller::Memory, limits.memory.is_some()),
            (Controller::Pids, limits.processes.is_some()),
            (Controller::Cpu, limits.cpu.is_some()),
        ]
        .into_iter()
        .filter(|&(c, set)| set && self.place(c).is_some())
        .map(|(c, _)| c)
        .collect();
        let mut group = Group {
            name: name.to_owned(),
            dirs: Vec::new(),
            entry: Mutex::default(),
        };
        for place in self.distinct() {
            let controllers = self.controllers_at(&place.base);
            let limited: Vec<Controller> = controllers
                .iter()
                .copied()
                .filter(|c| wanted.contains(c))
                .collect();
            if limited.is_empty() {
                continue;
            }
            let above = parent
                .and_then(|p| p.dir_in(&place.base))
                .map_or(place.base.as_path(), |d| d.path.as_path());
            let path = above.join(name);
            let made = GroupDir {
                version: place.version,
                base: place.base.clone(),
                path,
                own: true,
                controllers: controllers.clone(),
            };
            if let Err(err) = made.make(&controllers, &limited, limits) {
                let _ = dir::remove_tree(&made.path);
                group.remove();
                return Err(err);
            }
            group.dirs.push(made);
        }
        // The hierarchies this group has no directory in: its processes
        // stay in the nearest limited ancestor's, which groups below this
        // one are made under.
        if let Some(parent) = parent {
            for d in &parent.dirs {
                if group.dir_in(&d.base).is_none() {
                    group.dirs.push(GroupDir {
                        own: false,
                        ..d.clone()
                    });
                }
            }
        }
        Ok(group)
    }
}

/// A limited supervisor's cgroup: its directory in each hierarchy, made by
/// [`Hierarchies::create`], and the descriptors its supervisor may enter
/// it through (see [`Group::hold_entry`]). Copied into forked children
/// with the rest of the process; each keeps the descriptors its role
/// needs.
#[derive(Debug)]
pub(crate) struct Group {
    name: String,
    pub(super) dirs: Vec<GroupDir>,
    /// Write descriptors of the `cgroup.procs` of the group's leaves, one
    /// per directory of its own where held, opened by root: what a
    /// supervisor that no longer runs as root enters the group through
    /// (see [`Group::hold_entry`]). Behind a lock: a process renews or
    /// closes them in the containment it shares with the rest of its state
    /// (only ever from its one supervisor thread).
    entry: Mutex<Vec<Entry>>,
}

/// A write descriptor of a leaf's `cgroup.procs`, opened by root.
#[derive(Debug)]
struct Entry {
    /// The file, `<group directory>/procs/cgroup.procs`.
    path: PathBuf,
    file: File,
}

impl Entry {
    /// Opens `path` for writing, close-on-exec (as `std` opens every file).
    fn open(path: PathBuf) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|err| dir::context(err, "opening", &path))?;
        Ok(Self { path, file })
    }

    /// Whether the descriptor still names the file at its path: a group
    /// removed and made again has new files, and writing to the old one
    /// fails with `ENODEV`.
    fn is_current(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        match (self.file.metadata(), std::fs::metadata(&self.path)) {
            (Ok(held), Ok(now)) => (held.dev(), held.ino()) == (now.dev(), now.ino()),
            _ => false,
        }
    }
}

/// A group's directory in one hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GroupDir {
    pub(super) version: Version,
    /// The hierarchy's base, which names the hierarchy.
    pub(super) base: PathBuf,
    pub(super) path: PathBuf,
    /// Whether the group made it; if not, it is the nearest limited
    /// ancestor's, where the group's processes are in that hierarchy.
    pub(super) own: bool,
    /// The controllers of the hierarchy the tree uses.
    pub(super) controllers: Vec<Controller>,
}

impl GroupDir {
    /// Makes the directory and its leaf, enables `controllers` for its
    /// children (v2), and writes the limits of the `limited` ones.
    fn make(
        &self,
        controllers: &[Controller],
        limited: &[Controller],
        limits: &Limits,
    ) -> io::Result<()> {
        dir::make(&self.path)?;
        if self.version == Version::V2 {
            enable(&self.path, controllers);
        }
        for &controller in limited {
            self.write_limit(controller, limits)?;
        }
        dir::make(&self.path.join(LEAF))
    }

    fn write_limit(&self, controller: Controller, limits: &Limits) -> io::Result<()> {
        let file = |name: &str| self.path.join(name);
        match (controller, self.version) {
            (Controller::Memory, version) => {
                let Some(bytes) = limits.memory else {
                    return Ok(());
                };
                if version == Version::V1 {
                    dir::write(&file("memory.limit_in_bytes"), &bytes.to_string())
                } else {
                    dir::write(&file("memory.max"), &bytes.to_string())?;
                    let swap = file("memory.swap.max");
                    if swap.exists() {
                        dir::write(&swap, "0")?;
                    }
                    Ok(())
                }
            }
            (Controller::Pids, _) => match limits.processes {
                Some(n) => dir::write(&file("pids.max"), &n.to_string()),
                None => Ok(()),
            },
            (Controller::Cpu, version) => {
                let Some(cores) = limits.cpu else {
                    return Ok(());
                };
                let quota = cpu_quota_us(cores);
                if version == Version::V1 {
                    dir::write(&file("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                    match dir::write(&file("cpu.cfs_quota_us"), &quota.to_string()) {
                        // cgroup v1 refuses a quota above an enclosing
                        // group's, which bounds this one anyway.
                        Err(err) if err.kind() == io::ErrorKind::InvalidInput => {
                            tracing::warn!(%err, "cpu limit above an enclosing group's: that one applies");
                            Ok(())
                        }
                        other => other,
                    }
                } else {
                    dir::write(&file("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))
                }
            }
        }
    }
}

/// The CFS quota for `cores` CPUs' worth of time per [`CPU_PERIOD_US`].
fn cpu_quota_us(cores: f64) -> u64 {
    // `as` saturates; `Limits::check` refused what is not positive.
    ((cores * CPU_PERIOD_US as f64).round() as u64).max(CPU_MIN_QUOTA_US)
}

impl Group {
    fn dir_in(&self, base: &Path) -> Option<&GroupDir> {
        self.dirs.iter().find(|d| d.base == base)
    }

    pub(super) fn own(&self) -> impl Iterator<Item = &GroupDir> {
        self.dirs.iter().filter(|d| d.own)
    }

    /// The group's own directory in the hierarchy of `controller`.
    pub(super) fn own_with(&self, controller: Controller) -> Option<&GroupDir> {
        self.own().find(|d| d.controllers.contains(&controller))
    }

    /// Whether the group has a directory of its own anywhere.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.own().next().is_none()
    }

    /// The descriptors held (see [`Group::hold_entry`]).
    fn entry(&self) -> MutexGuard<'_, Vec<Entry>> {
        self.entry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `other` is this group, made again: the same directories.
    pub(crate) fn is_at(&self, other: &Group) -> bool {
        self.name == other.name && self.dirs == other.dirs
    }

    /// The file a process writes its pid to, to enter the group's leaf in
    /// the hierarchy of `d`.
    pub(super) fn procs(d: &GroupDir) -> PathBuf {
        d.path.join(LEAF).join("cgroup.procs")
    }

    /// Opens and holds a write descriptor of the `cgroup.procs` of each of
    /// the group's leaves, so that its supervisor, below a
    /// [`with_user`](crate::Tree::with_user) supervisor and so no longer
    /// root, can still enter the group through it (the supervisors on the
    /// way down to it hand it on), while the files stay root's (mode 0644),
    /// writable by path by no process of that user: no worker can write
    /// another subtree's leaf and escape its limits.
    ///
    /// Since Linux 5.16 the kernel checks a migration against the
    /// credentials of whoever opened `cgroup.procs` (root here), not the
    /// writer's: cgroup v1 lets root move any task, v2 wants write access
    /// to the `cgroup.procs` of the common ancestor of the task's cgroup
    /// and the leaf, which root has. Before 5.16 the writer's own
    /// credentials count: v1 lets a process move itself (its uid is the
    /// task's), v2 refuses the move (the common ancestor's file is root's),
    /// and the supervisor fails its setup, saying so.
    ///
    /// Called by a root-owned process. A descriptor held already is kept
    /// if it still names the file (see [`Entry::is_current`]), else opened
    /// again. On an error, the descriptors that could be opened are held.
    pub(crate) fn hold_entry(&self) -> io::Result<()> {
        let mut entry = self.entry();
        entry.retain(Entry::is_current);
        let mut result = Ok(());
        for d in self.own() {
            let path = Self::procs(d);
            if entry.iter().any(|e| e.path == path) {
                continue;
            }
            match Entry::open(path) {
                Ok(opened) => entry.push(opened),
                Err(err) if result.is_ok() => result = Err(err),
                Err(_) => {}
            }
        }
        result
    }

    /// Closes the descriptors held by [`Group::hold_entry`] in this process:
    /// a process whose role does not need them.
    pub(crate) fn drop_entry(&self) {
        self.entry().clear();
    }

    /// Copies of the descriptors of the group's leaves this process holds,
    /// with the files they name.
    #[cfg(test)]
    pub(crate) fn entries_held(&self) -> io::Result<Vec<(PathBuf, File)>> {
        self.entry()
            .iter()
            .map(|e| Ok((e.path.clone(), e.file.try_clone()?)))
            .collect()
    }

    /// Moves the process `pid` into the group's leaf in every hierarchy the
    /// group has a directory of its own in: a forked child calls it for
    /// itself, before it runs anything else or drops privileges. Writes
    /// through the descriptor held for the leaf (see
    /// [`Group::hold_entry`]), else by the file's path (which takes root).
    /// Tries every hierarchy; returns the first error, which names the
    /// file.
    pub(crate) fn enter(&self, pid: nix::unistd::Pid) -> io::Result<()> {
        let pid = pid.as_raw().to_string();
        let entry = self.entry();
        let mut result = Ok(());
        for d in self.own() {
            let path = Self::procs(d);
            let entered = match entry.iter().find(|e| e.path == path) {
                // A single `write(2)`, as the kernel wants.
                Some(held) => (&held.file).write_all(pid.as_bytes()).map_err(|err| {
                    dir::context(err, "writing (through the descriptor root opened)", &path)
                }),
                None => dir::write(&path, &pid),
            };
            if result.is_ok() {
                result = entered;
            }
        }
        result
    }

    /// How many processes of the group (and the groups below) the kernel's
    /// OOM killer has killed so far; 0 when unknown. cgroup v2 counts this
    /// in `memory.events` for a whole subtree; in v1 it is the sum of
    /// `memory.oom_control`'s counts below the group.
    pub(crate) fn oom_kills(&self) -> u64 {
        let Some(d) = self.own_with(Controller::Memory) else {
            return 0;
        };
        let count = |dir: &Path, file: &str| {
            std::fs::read_to_string(dir.join(file))
                .ok()
                .and_then(|text| parse::keyed(&text, "oom_kill"))
                .unwrap_or(0)
        };
        match d.version {
            Version::V2 => count(&d.path, "memory.events"),
            Version::V1 => dir::subtree(&d.path)
                .iter()
                .map(|sub| count(sub, "memory.oom_control"))
                .sum(),
        }
    }

    /// The memory the group's processes use now, in bytes.
    pub(crate) fn memory_usage(&self) -> Option<u64> {
        let d = self.own_with(Controller::Memory)?;
        let file = match d.version {
            Version::V1 => "memory.usage_in_bytes",
            Version::V2 => "memory.current",
        };
        read_number(&d.path.join(file))
    }

    /// How many processes (and threads) the group has now.
    pub(crate) fn processes(&self) -> Option<u64> {
        let d = self.own_with(Controller::Pids)?;
        read_number(&d.path.join("pids.current"))
    }

    /// Whether the group's directories are all there.
    pub(crate) fn exists(&self) -> bool {
        self.own().all(|d| d.path.join(LEAF).is_dir())
    }

    /// Kills what is left in the group (and the groups below) and removes
    /// its directories. Never fails; a failure is logged once.
    pub(crate) fn remove(&self) {
        let failed: Vec<String> = self
            .own()
            .filter_map(|d| dir::remove_tree(&d.path).err())
            .map(|err| err.to_string())
            .collect();
        if !failed.is_empty() {
            tracing::warn!(group = %self.name, errors = ?failed, "can't remove a supervisor's cgroup");
        }
    }
}

fn read_number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
