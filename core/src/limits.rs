//! [`Limits`]: the resources a supervisor's whole subtree may use.

use std::fmt;

use crate::Error;

/// What a supervisor's subtree (the supervisor process, its worker host,
/// and everything below) may use at most, set with
/// [`with_limits`](crate::Tree::with_limits).
///
/// Each limit is enforced by the strongest mechanism the machine allows,
/// and the root logs, once per limited supervisor, which mechanism enforces
/// which limit:
///
/// | limit | by a cgroup (v2, else v1) | without a cgroup |
/// |---|---|---|
/// | [`memory`](Self::memory) | `memory.max` / `memory.limit_in_bytes`: the subtree's processes together | `RLIMIT_AS`: each process's address space, by itself |
/// | [`processes`](Self::processes) | `pids.max` | refused: `start()` fails |
/// | [`open_files`](Self::open_files) | — | `RLIMIT_NOFILE`, per process, always |
/// | [`cpu`](Self::cpu) | `cpu.max` / `cpu.cfs_quota_us` | refused: `start()` fails |
///
/// A cgroup is made per limited supervisor where the tree may create
/// cgroups (as root, or with a delegated cgroup), nested as the supervisors
/// are, so a limit also bounds the limited supervisors below. Where it may
/// not (or making the subtree's cgroup fails), only rlimits are left, and
/// they bound each process by itself: that is honest for `memory` (each
/// process gets the whole limit) and `open_files`, but not for `processes`
/// (`RLIMIT_NPROC` counts every process of the *user*, so a subtree that
/// shares its user with anything else could never start) nor for `cpu` (no
/// rlimit bounds a share of CPU time). A limit that nothing can enforce for
/// the subtree alone makes `start()` fail with
/// [`Error::UnenforceableLimit`] naming the supervisor and the limit,
/// before anything is forked, rather than a subtree that never starts or a
/// limit that is silently not there.
///
/// A process that goes over `memory` is reported as
/// [`ChildExit::OutOfMemory`](crate::ChildExit::OutOfMemory) and restarted
/// by its policy: under a cgroup, when the kernel's OOM killer killed it
/// (the cgroup's OOM counter says so); under `RLIMIT_AS`, when an
/// allocation failed and the process aborted (Rust aborts with `SIGABRT`
/// after `memory allocation of N bytes failed`; see
/// [`ChildExit::OutOfMemory`](crate::ChildExit::OutOfMemory) for what tells
/// it from other aborts). In
/// [`run_simulated`](crate::testing::run_simulated) limits are accepted and
/// ignored.
///
/// # Examples
///
/// ```
/// # extern crate supertrees_core as supertrees;
/// use supertrees::Limits;
///
/// let limits = Limits::new().memory(64 << 20).processes(64).open_files(1024).cpu(0.5);
/// assert_eq!(limits.to_string(), "memory 64 MiB, processes 64, open files 1024, cpu 0.5");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[must_use]
pub struct Limits {
    pub memory: Option<u64>,
    pub processes: Option<u32>,
    pub open_files: Option<u64>,
    pub cpu: Option<f64>,
}

impl Limits {
    /// No limits.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::Limits;
    ///
    /// assert_eq!(Limits::new().to_string(), "no limits");
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `bytes` of memory for the whole subtree: with a cgroup, its
    /// processes' memory together; without one, `RLIMIT_AS` on each process
    /// by itself, which counts its *address space*: every thread's stack,
    /// every allocator arena and mapping reserved, not only the memory in
    /// use. A multi-threaded runtime reserves far more than it touches, so
    /// leave room (tens of MiB per thread) where rlimits enforce it.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::Limits;
    ///
    /// assert_eq!(Limits::new().memory(256 << 20).to_string(), "memory 256 MiB");
    /// ```
    pub fn memory(mut self, bytes: u64) -> Self {
        self.memory = Some(bytes);
        self
    }

    /// At most `n` processes (and threads) in the subtree, all counted
    /// together. Only a pids cgroup enforces this: without one, `start()`
    /// fails with [`Error::UnenforceableLimit`].
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::Limits;
    ///
    /// assert_eq!(Limits::new().processes(64).to_string(), "processes 64");
    /// ```
    pub fn processes(mut self, n: u32) -> Self {
        self.processes = Some(n);
        self
    }

    /// At most `n` open file descriptors per process of the subtree
    /// (`RLIMIT_NOFILE`, with or without cgroups). At least 16: the
    /// engine's own pipes and sockets need some. Each process of the tree
    /// also holds a socket for every mailbox and template of the tree, the
    /// receiving sockets of those its subtree declares, the tree's
    /// listeners and a channel per child process: when `n` leaves no room
    /// for those, `start()` fails with [`Error::UnenforceableLimit`] naming
    /// the supervisor, `open_files` and the number needed.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::Limits;
    ///
    /// assert_eq!(Limits::new().open_files(1024).to_string(), "open files 1024");
    /// ```
    pub fn open_files(mut self, n: u64) -> Self {
        self.open_files = Some(n);
        self
    }

    /// At most `cores` CPUs' worth of time for the subtree (e.g. `0.5`: half
    /// a core). Only a cpu cgroup enforces this: without one, `start()`
    /// fails with [`Error::UnenforceableLimit`].
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::Limits;
    ///
    /// assert_eq!(Limits::new().cpu(0.5).to_string(), "cpu 0.5");
    /// ```
    pub fn cpu(mut self, cores: f64) -> Self {
        self.cpu = Some(cores);
        self
    }

    /// Whether no limit is set.
    ///
    /// # Examples
    ///
    /// ```
    /// # extern crate supertrees_core as supertrees;
    /// use supertrees::Limits;
    ///
    /// assert!(Limits::new().is_empty());
    /// assert!(!Limits::new().open_files(64).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Checks the values; `start()` returns this error before forking.
    pub fn check(&self) -> Result<(), Error> {
        let bad = |field, reason| Err(Error::InvalidLimits { field, reason });
        if self.memory == Some(0) {
            return bad("memory", "must be greater than zero");
        }
        if self.processes == Some(0) {
            return bad("processes", "must be greater than zero");
        }
        if self.open_files.is_some_and(|n| n < 16) {
            return bad(
                "open_files",
                "must be at least 16 (the engine's own pipes and sockets need some)",
            );
        }
        if self.cpu.is_some_and(|c| !(c.is_finite() && c > 0.0)) {
            return bad("cpu", "must be a positive number of cores");
        }
        Ok(())
    }
}

/// `n` bytes in the largest binary unit that divides them.
pub fn bytes(n: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (size, unit) in UNITS {
        if n >= size && n.is_multiple_of(size) {
            return format!("{} {unit}", n / size);
        }
    }
    format!("{n} bytes")
}

impl fmt::Display for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(m) = self.memory {
            parts.push(format!("memory {}", bytes(m)));
        }
        if let Some(p) = self.processes {
            parts.push(format!("processes {p}"));
        }
        if let Some(n) = self.open_files {
            parts.push(format!("open files {n}"));
        }
        if let Some(c) = self.cpu {
            parts.push(format!("cpu {c}"));
        }
        if parts.is_empty() {
            return f.write_str("no limits");
        }
        f.write_str(&parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_are_refused_naming_the_field() {
        for (limits, field) in [
            (Limits::new().memory(0), "memory"),
            (Limits::new().processes(0), "processes"),
            (Limits::new().open_files(3), "open_files"),
            (Limits::new().cpu(0.0), "cpu"),
            (Limits::new().cpu(f64::NAN), "cpu"),
        ] {
            match limits.check() {
                Err(Error::InvalidLimits { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{limits:?}: {other:?}"),
            }
        }
        assert!(Limits::new().memory(1).cpu(2.0).check().is_ok());
        assert!(Limits::new().is_empty());
        assert_eq!(bytes(1536), "1536 bytes");
        assert_eq!(bytes(3 << 30), "3 GiB");
    }
}
