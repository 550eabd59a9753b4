//! Control groups for [`Limits`]: where the machine lets the tree make
//! cgroups, which controller is in which hierarchy, one group per limited
//! supervisor, and the [`Plan`] of which mechanism enforces which limit.
//!
//! # Layout
//!
//! The tree's cgroups live below the cgroup the root process is in, in
//! every hierarchy that has a controller the tree uses (`memory`, `pids`,
//! `cpu`; cgroup v2 where it has the controller, else cgroup v1):
//!
//! ```text
//! <mount>/<own cgroup>/supertrees/<root pid>.<root start time>/   the base
//!     <supervisor>/                 a limited supervisor's group: its limits
//!         procs/                    its processes (a leaf)
//!         <limited child>/          a limited supervisor below: its group
//!             procs/
//! ```
//!
//! Processes are only ever in the `procs` leaves, which cgroup v2 requires
//! (no process in a cgroup that has controllers enabled for its children);
//! v1 uses the same layout. A group's limits bound everything below it.
//!
//! The base is named after the root's pid and start time, so that a later
//! root finds the bases of roots that died without removing theirs (killed
//! with SIGKILL, say), kills what is left in them and removes them.

mod dir;
mod group;
mod parse;
mod plan;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::Limits;

#[cfg(feature = "fuzzing")]
pub(crate) use parse::check::fuzz as fuzz_parsers;
pub(crate) use {
    group::Group,
    plan::{apply_rlimits, Mechanism, Plan},
};

/// The directory, below the root's own cgroup, that holds the bases.
const DIR: &str = "supertrees";
/// The leaf that holds a group's processes.
const LEAF: &str = "procs";
/// The CFS period written with a cpu limit, in microseconds.
const CPU_PERIOD_US: u64 = 100_000;
/// The smallest CFS quota the kernel accepts, in microseconds.
const CPU_MIN_QUOTA_US: u64 = 1_000;

/// A cgroup controller the tree uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Controller {
    /// `memory`: [`Limits::memory`].
    Memory = 0,
    /// `pids`: [`Limits::processes`].
    Pids = 1,
    /// `cpu`: [`Limits::cpu`].
    Cpu = 2,
}

impl Controller {
    const ALL: [Self; 3] = [Self::Memory, Self::Pids, Self::Cpu];

    /// The kernel's name of the controller.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Pids => "pids",
            Self::Cpu => "cpu",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// The cgroup version of a hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// cgroup v1: one hierarchy per controller (or per co-mounted set).
    V1,
    /// cgroup v2: the unified hierarchy.
    V2,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V1 => "cgroup v1",
            Self::V2 => "cgroup v2",
        })
    }
}

/// Where one controller is used: its hierarchy's version and the tree's
/// base directory in it (co-mounted v1 controllers share a base).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Place {
    version: Version,
    base: PathBuf,
}

/// The controllers the tree can use, and where: the result of [`detect`].
/// Plain data, so it is copied into forked children with the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Hierarchies {
    /// Per controller, in [`Controller`] order.
    places: [Option<Place>; 3],
}

/// Finds which controllers the tree can use and makes its base directory
/// in their hierarchies (see the module docs), after removing the bases of
/// roots that are gone. A hierarchy where the base can not be made (no
/// permission, read-only, no such controller) is left out; with none, the
/// result is [`Hierarchies::none`]. Called once, by the root, before it
/// forks anything.
pub(crate) fn detect() -> Hierarchies {
    let me = nix::unistd::getpid().as_raw();
    match std::fs::read_to_string("/proc/self/stat")
        .ok()
        .as_deref()
        .and_then(parse::start_time)
    {
        Some(start) => detect_in(DIR, &parse::base_name(me, start)),
        None => {
            tracing::info!("no start time in /proc/self/stat: not using cgroups");
            Hierarchies::none()
        }
    }
}

/// [`detect`] with the bases in `<own cgroup>/<dir_name>/<base_name>`
/// (tests use names of their own).
fn detect_in(dir_name: &str, base_name: &str) -> Hierarchies {
    let (mountinfo, cgroup) = match (
        std::fs::read_to_string("/proc/self/mountinfo"),
        std::fs::read_to_string("/proc/self/cgroup"),
    ) {
        (Ok(m), Ok(c)) => (m, c),
        (Err(err), _) | (_, Err(err)) => {
            tracing::info!(%err, "can't read /proc/self/mountinfo or /proc/self/cgroup: not using cgroups");
            return Hierarchies::none();
        }
    };
    let located = parse::locate(&parse::mountinfo(&mountinfo), &parse::proc_cgroup(&cgroup));
    let mut found = Hierarchies::none();
    let mut cleaned: Vec<PathBuf> = Vec::new();
    let mut clean_once = |dir: PathBuf| {
        if !cleaned.contains(&dir) {
            remove_stale(&dir);
            cleaned.push(dir);
        }
    };
    if let Some(own) = &located.v2 {
        let offered = std::fs::read_to_string(own.join("cgroup.controllers"))
            .map(|text| parse::controller_list(&text))
            .unwrap_or_default();
        if !offered.is_empty() {
            clean_once(own.join(dir_name));
            match make_v2_base(own, dir_name, base_name, &offered) {
                Ok((base, enabled)) => {
                    for controller in enabled {
                        found.places[controller as usize] = Some(Place {
                            version: Version::V2,
                            base: base.clone(),
                        });
                    }
                }
                Err(err) => tracing::info!(%err, "can't use cgroup v2"),
            }
        }
    }
    for controller in Controller::ALL {
        if found.places[controller as usize].is_some() {
            continue;
        }
        let Some(own) = located.v1(controller) else {
            continue;
        };
        clean_once(own.join(dir_name));
        let base = own.join(dir_name).join(base_name);
        match dir::make(&own.join(dir_name)).and_then(|()| dir::make(&base)) {
            Ok(()) => {
                found.places[controller as usize] = Some(Place {
                    version: Version::V1,
                    base,
                })
            }
            Err(err) => {
                tracing::info!(controller = controller.name(), %err, "can't use cgroup v1")
            }
        }
    }
    tracing::debug!(hierarchies = ?found, "cgroups detected");
    found
}

/// Makes the v2 base `<own>/<dir_name>/<base_name>` and enables the
/// `offered` controllers on the way down to it, so that groups below the
/// base can have them. Returns the base and the controllers it has.
fn make_v2_base(
    own: &Path,
    dir_name: &str,
    base_name: &str,
    offered: &[Controller],
) -> io::Result<(PathBuf, Vec<Controller>)> {
    let parent = own.join(dir_name);
    let base = parent.join(base_name);
    // The root's own cgroup holds processes, so the kernel refuses to
    // enable controllers for its children unless it is the root cgroup or
    // they are enabled already (a delegated cgroup): failing here is fine,
    // what counts is what the base gets.
    enable(own, offered);
    dir::make(&parent)?;
    enable(&parent, offered);
    dir::make(&base)?;
    let has = std::fs::read_to_string(base.join("cgroup.controllers"))
        .map(|text| parse::controller_list(&text))
        .unwrap_or_default();
    enable(&base, &has);
    let enabled = std::fs::read_to_string(base.join("cgroup.subtree_control"))
        .map(|text| parse::controller_list(&text))
        .map_err(|err| dir::context(err, "reading", &base))?;
    Ok((base, enabled))
}

/// Enables `controllers` for the children of the v2 cgroup `dir`, one at a
/// time (a write naming several is all or nothing); failures are logged.
fn enable(dir: &Path, controllers: &[Controller]) {
    let file = dir.join("cgroup.subtree_control");
    let enabled = std::fs::read_to_string(&file)
        .map(|text| parse::controller_list(&text))
        .unwrap_or_default();
    for controller in controllers {
        if !enabled.contains(controller) {
            if let Err(err) = dir::write(&file, &format!("+{}", controller.name())) {
                tracing::debug!(%err, "enabling a cgroup v2 controller failed");
            }
        }
    }
}

/// Whether the process `pid` that started at `start` (clock ticks since
/// boot) still runs. When `/proc` can't tell, it counts as running.
fn is_alive(pid: i32, start: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => parse::start_time(&stat).is_none_or(|s| s == start),
        Err(err) => err.kind() != io::ErrorKind::NotFound,
    }
}

/// Removes the bases in `dir` (`<own cgroup>/supertrees`) whose root is
/// gone, killing what is left in them.
fn remove_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((pid, start)) = name.to_str().and_then(parse::parse_base_name) else {
            continue;
        };
        if is_alive(pid, start) || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        match dir::remove_tree(&path) {
            Ok(()) => tracing::info!(
                base = %path.display(),
                "removed the cgroups of a supervision tree whose root is gone"
            ),
            Err(err) => tracing::warn!(
                %err,
                "can't remove the cgroups of a supervision tree whose root is gone"
            ),
        }
    }
}

impl Hierarchies {
    /// No controller: every limit by rlimit, or not enforced.
    pub(crate) fn none() -> Self {
        Self::default()
    }

    /// Where `controller` is used, if anywhere: its hierarchy's version.
    pub(crate) fn version(&self, controller: Controller) -> Option<Version> {
        self.place(controller).map(|p| p.version)
    }

    fn place(&self, controller: Controller) -> Option<&Place> {
        self.places[controller as usize].as_ref()
    }

    /// The controllers whose hierarchy has its base at `base`.
    fn controllers_at(&self, base: &Path) -> Vec<Controller> {
        Controller::ALL
            .into_iter()
            .filter(|&c| self.place(c).is_some_and(|p| p.base == base))
            .collect()
    }

    /// The distinct places (hierarchies), in [`Controller`] order.
    fn distinct(&self) -> Vec<&Place> {
        let mut out: Vec<&Place> = Vec::new();
        for place in self.places.iter().flatten() {
            if !out.iter().any(|p| p.base == place.base) {
                out.push(place);
            }
        }
        out
    }

    /// Which mechanism enforces each limit of `limits` set.
    pub(crate) fn plan(&self, limits: &Limits) -> Plan {
        Plan::new(self, limits)
    }

    /// Removes the whole tree's base in every hierarchy, killing what is
    /// left in it: when the root ends. Never fails; failures are logged.
    pub(crate) fn remove_base(&self) {
        for place in self.distinct() {
            if let Err(err) = dir::remove_tree(&place.base) {
                tracing::warn!(%err, "can't remove the supervision tree's cgroups");
            }
        }
    }
}

#[cfg(test)]
mod tests;
