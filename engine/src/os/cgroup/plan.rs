//! The [`Plan`]: which mechanism enforces each limit, the limits nothing
//! can enforce for the subtree alone (which `start()` refuses), and the
//! rlimits a process sets for the limits no cgroup enforces.

use std::fmt;

use nix::sys::resource::{getrlimit, setrlimit, Resource};

use super::{Controller, Hierarchies, Version};
use crate::limits::bytes;
use crate::Limits;

/// What enforces one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
    /// A cgroup's controller, in a hierarchy of this version.
    Cgroup(Version, Controller),
    /// A resource limit of each process (`RLIMIT_*`, named).
    Rlimit(&'static str),
    /// Nothing can enforce it for the subtree alone: the reason. `start()`
    /// refuses such a plan ([`Plan::unenforced`]).
    NotEnforced(&'static str),
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cgroup(version, controller) => {
                write!(f, "by {version} ({})", controller.name())
            }
            Self::Rlimit(name) => write!(f, "by {name}"),
            Self::NotEnforced(reason) => write!(f, "not enforced ({reason})"),
        }
    }
}

/// For each limit set, what enforces it, from the [`Hierarchies`] found:
/// a cgroup where one has the controller, else the rlimit of the table in
/// [`Limits`] where that bounds each process of the subtree by itself
/// (`RLIMIT_AS`, `RLIMIT_NOFILE`), else nothing ([`Mechanism::NotEnforced`],
/// which `start()` refuses). Its `Display` is the line the root logs per
/// limited supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Plan {
    /// How [`Limits::memory`] is enforced, if set.
    pub(crate) memory: Option<Mechanism>,
    /// How [`Limits::processes`] is enforced, if set.
    pub(crate) processes: Option<Mechanism>,
    /// How [`Limits::open_files`] is enforced, if set.
    pub(crate) open_files: Option<Mechanism>,
    /// How [`Limits::cpu`] is enforced, if set.
    pub(crate) cpu: Option<Mechanism>,
    /// The limits themselves, for `Display`.
    limits: LimitsText,
}

/// Why [`Limits::processes`] can not be enforced without a pids cgroup.
const NO_PIDS: &str = "there is no pids cgroup for it, and RLIMIT_NPROC counts every process \
     of the user, not the subtree's (a subtree that shares its user with anything else would \
     never start)";
/// Why [`Limits::cpu`] can not be enforced without a cpu cgroup.
const NO_CPU: &str = "there is no cpu cgroup for it, and no rlimit bounds a share of CPU time";

/// The values of the limits, kept as text (a `Plan` is `Eq`; `f64` isn't).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct LimitsText {
    memory: u64,
    processes: u32,
    open_files: u64,
    cpu_bits: u64,
}

impl Plan {
    pub(super) fn new(hierarchies: &Hierarchies, limits: &Limits) -> Self {
        let by = |controller: Controller, rlimit: Mechanism| {
            hierarchies
                .version(controller)
                .map_or(rlimit, |version| Mechanism::Cgroup(version, controller))
        };
        Self {
            memory: limits
                .memory
                .map(|_| by(Controller::Memory, Mechanism::Rlimit("RLIMIT_AS"))),
            processes: limits
                .processes
                .map(|_| by(Controller::Pids, Mechanism::NotEnforced(NO_PIDS))),
            open_files: limits
                .open_files
                .map(|_| Mechanism::Rlimit("RLIMIT_NOFILE")),
            cpu: limits
                .cpu
                .map(|_| by(Controller::Cpu, Mechanism::NotEnforced(NO_CPU))),
            limits: LimitsText {
                memory: limits.memory.unwrap_or(0),
                processes: limits.processes.unwrap_or(0),
                open_files: limits.open_files.unwrap_or(0),
                cpu_bits: limits.cpu.unwrap_or(0.0).to_bits(),
            },
        }
    }

    /// The first limit of the plan that nothing enforces (its field name
    /// and why), if any: `start()` fails with it.
    pub(crate) fn unenforced(&self) -> Option<(&'static str, &'static str)> {
        [
            ("memory", self.memory),
            ("processes", self.processes),
            ("open_files", self.open_files),
            ("cpu", self.cpu),
        ]
        .into_iter()
        .find_map(|(field, m)| match m {
            Some(Mechanism::NotEnforced(why)) => Some((field, why)),
            _ => None,
        })
    }

    /// Whether any limit of the plan is enforced by a cgroup, i.e. the
    /// supervisor needs a [`Group`](super::Group).
    pub(crate) fn uses_cgroups(&self) -> bool {
        [self.memory, self.processes, self.cpu]
            .into_iter()
            .flatten()
            .any(|m| matches!(m, Mechanism::Cgroup(..)))
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.limits;
        let parts: Vec<String> = [
            self.memory
                .map(|m| format!("memory {} {m}", bytes(l.memory))),
            self.processes
                .map(|m| format!("processes {} {m}", l.processes)),
            self.open_files
                .map(|m| format!("open files {} {m}", l.open_files)),
            self.cpu
                .map(|m| format!("cpu {} {m}", f64::from_bits(l.cpu_bits))),
        ]
        .into_iter()
        .flatten()
        .collect();
        if parts.is_empty() {
            return f.write_str("no limits");
        }
        f.write_str(&parts.join(", "))
    }
}

/// Sets, for the calling process (a freshly forked child, before it runs
/// anything else), the rlimits of `plan`: `RLIMIT_NOFILE` for
/// [`Limits::open_files`] always, `RLIMIT_AS` for [`Limits::memory`] where
/// the plan has no cgroup for it. Soft and hard limit are both set, so the
/// subtree can't raise them again; where the current hard limit is lower
/// than asked and can't be raised, it is kept (stricter than asked).
pub(crate) fn apply_rlimits(plan: &Plan, limits: &Limits) -> Result<(), nix::Error> {
    let wanted = [
        (plan.open_files, Resource::RLIMIT_NOFILE, limits.open_files),
        (plan.memory, Resource::RLIMIT_AS, limits.memory),
    ];
    for (mechanism, resource, value) in wanted {
        if let (Some(Mechanism::Rlimit(_)), Some(n)) = (mechanism, value) {
            set_limit(resource, n)?;
        }
    }
    Ok(())
}

/// Sets both limits of `resource` to `n`, or to the hard limit where that
/// is lower and may not be raised.
fn set_limit(resource: Resource, n: u64) -> Result<(), nix::Error> {
    let (_, hard) = getrlimit(resource)?;
    let n = n as nix::libc::rlim_t;
    match setrlimit(resource, n, n) {
        Err(nix::Error::EPERM) if n > hard => setrlimit(resource, hard, hard),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::Place;
    use super::*;

    fn hierarchies(places: [Option<Version>; 3]) -> Hierarchies {
        let mut h = Hierarchies::none();
        for (i, version) in places.into_iter().enumerate() {
            h.places[i] = version.map(|version| Place {
                version,
                base: PathBuf::from(format!("/cg/{i}")),
            });
        }
        h
    }

    fn all() -> Limits {
        Limits::new()
            .memory(64 << 20)
            .processes(64)
            .open_files(1024)
            .cpu(0.5)
    }

    #[test]
    fn v1_memory_and_pids_without_cpu() {
        let plan = hierarchies([Some(Version::V1), Some(Version::V1), None]).plan(&all());
        assert_eq!(
            plan.to_string(),
            format!(
                "memory 64 MiB by cgroup v1 (memory), processes 64 by cgroup v1 (pids), \
                 open files 1024 by RLIMIT_NOFILE, cpu 0.5 not enforced ({NO_CPU})"
            )
        );
        assert!(plan.uses_cgroups());
        assert_eq!(plan.unenforced(), Some(("cpu", NO_CPU)));
    }

    #[test]
    fn v2_only_system() {
        let v2 = Some(Version::V2);
        let plan = hierarchies([v2, v2, v2]).plan(&all());
        assert_eq!(
            plan.to_string(),
            "memory 64 MiB by cgroup v2 (memory), processes 64 by cgroup v2 (pids), \
             open files 1024 by RLIMIT_NOFILE, cpu 0.5 by cgroup v2 (cpu)"
        );
        assert_eq!(
            plan.cpu,
            Some(Mechanism::Cgroup(Version::V2, Controller::Cpu))
        );
        assert_eq!(plan.unenforced(), None);
    }

    #[test]
    fn system_without_cgroups_uses_rlimits_per_process_and_refuses_the_rest() {
        let plan = Hierarchies::none().plan(&all());
        assert_eq!(
            plan.to_string(),
            format!(
                "memory 64 MiB by RLIMIT_AS, processes 64 not enforced ({NO_PIDS}), \
                 open files 1024 by RLIMIT_NOFILE, cpu 0.5 not enforced ({NO_CPU})"
            )
        );
        assert!(!plan.uses_cgroups());
        assert_eq!(plan.unenforced(), Some(("processes", NO_PIDS)));
        let cpu = Hierarchies::none().plan(&Limits::new().memory(1 << 30).cpu(1.0));
        assert_eq!(cpu.unenforced(), Some(("cpu", NO_CPU)));
        // What rlimits bound per process is enforced.
        let per_process = Limits::new().memory(1 << 30).open_files(64);
        assert_eq!(Hierarchies::none().plan(&per_process).unenforced(), None);
    }

    #[test]
    fn only_the_limits_set_are_planned() {
        let h = hierarchies([Some(Version::V1), None, Some(Version::V2)]);
        let plan = h.plan(&Limits::new().cpu(2.0));
        assert_eq!(plan.to_string(), "cpu 2 by cgroup v2 (cpu)");
        assert_eq!(
            (plan.memory, plan.processes, plan.open_files),
            (None, None, None)
        );
        let plan = h.plan(&Limits::new().open_files(64));
        assert_eq!(plan.to_string(), "open files 64 by RLIMIT_NOFILE");
        assert!(!plan.uses_cgroups());
        assert_eq!(h.plan(&Limits::new()).to_string(), "no limits");
    }

    #[test]
    fn rlimits_are_set_only_where_no_cgroup_enforces_the_limit() {
        // RLIMIT_AS stays as it is: the plan has a cgroup for memory.
        let before = getrlimit(Resource::RLIMIT_AS).unwrap();
        let limits = Limits::new().memory(1 << 20);
        let h = hierarchies([Some(Version::V1), None, None]);
        apply_rlimits(&h.plan(&limits), &limits).unwrap();
        assert_eq!(getrlimit(Resource::RLIMIT_AS).unwrap(), before);
        // Setting a limit sets soft and hard (RLIMIT_CORE: harmless to
        // change in a test process).
        let (soft, _) = getrlimit(Resource::RLIMIT_CORE).unwrap();
        set_limit(Resource::RLIMIT_CORE, soft).unwrap();
        assert_eq!(getrlimit(Resource::RLIMIT_CORE).unwrap(), (soft, soft));
    }
}
