//! Where the two ends of a figure run (`BENCH_CPUS`): on a small VM the
//! floor and the trees change regime with the CPUs the scheduler picks (a
//! wake-up on the same CPU is a context switch; on another, idle CPU it is
//! an inter-processor interrupt and a halted vCPU to wake), so the bench
//! can fix them.
//!
//! * `free` (default): where the scheduler puts them.
//! * `same`: everything on CPU 0 (the floor's two processes; every process
//!   of a tree, pinned before `start()` and inherited by every fork).
//! * `split`: the measuring end (pinger, writer, the tree's measuring
//!   worker) on CPU 0, the other end (echo, reader, the server) on CPU 1;
//!   the tree's supervisors where the scheduler puts them.
//!
//! A tree's worker pins the thread that runs it, the worker host's (a
//! current-thread runtime runs its tasks and its reactor on it).

use nix::sched::{sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// The environment variable; the tree processes inherit it.
pub const VAR: &str = "BENCH_CPUS";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Free,
    Same,
    Split,
}

/// Which end of a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The one that measures: pinger, writer, the measuring worker.
    Measuring,
    /// The other: echo, reader, server.
    Serving,
}

pub fn mode() -> Result<Mode, String> {
    match std::env::var(VAR).as_deref() {
        Err(_) | Ok("free") => Ok(Mode::Free),
        Ok("same") => Ok(Mode::Same),
        Ok("split") => Ok(Mode::Split),
        Ok(other) => Err(format!("{VAR} must be free, same or split, got {other:?}")),
    }
}

pub fn name() -> &'static str {
    match mode() {
        Ok(Mode::Same) => "same (both ends on CPU 0)",
        Ok(Mode::Split) => "split (measuring end on CPU 0, the other on CPU 1)",
        _ => "free (the scheduler's choice)",
    }
}

fn pin_to(cpu: usize) {
    let mut set = CpuSet::new();
    let pinned = set
        .set(cpu)
        .and_then(|()| sched_setaffinity(Pid::from_raw(0), &set));
    if let Err(err) = pinned {
        eprintln!("could not pin to CPU {cpu}: {err}");
    }
}

/// Pins the calling thread as `end` of a figure, in `split` mode.
pub fn pin_end(end: End) {
    if mode() == Ok(Mode::Split) {
        pin_to(match end {
            End::Measuring => 0,
            End::Serving => 1,
        });
    }
}

/// Pins the calling thread (and what it forks from now on) to CPU 0, in
/// `same` mode.
pub fn pin_all() {
    if mode() == Ok(Mode::Same) {
        pin_to(0);
    }
}

/// Pins a floor process: `same` or `split`.
pub fn pin_floor(end: End) {
    pin_all();
    pin_end(end);
}
