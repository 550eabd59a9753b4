//! `cargo bench -p supertrees-bench --bench compare [-- SCENARIO...]`
//!
//! Measures this workspace's `supertrees` ("ours") against the published
//! `supertrees = "=0.1.2"` ("the seed") in the same run, with plain
//! process-level timing: every tree runs in a process forked from this
//! (single-threaded) driver, its workers record their starts with
//! CLOCK_MONOTONIC timestamps in shared memory, and the driver computes the
//! figures from those timestamps. It prints a Markdown table to stdout.
//!
//! Scenarios: `restart_rate`, `host_kill`, `panic_restart`, `tree_start`,
//! `memory`, `shutdown` (default: all). `BENCH_RUNS` (default 5) sets the
//! runs per figure; `BENCH_MAX_N` leaves out the `tree_start` scaling sizes
//! above it (e.g. `BENCH_MAX_N=100` skips N=1000). `BENCH_SMAPS` (any
//! value) prints, per N=100 tree, each mapping's share of the PSS of its
//! supervisor processes and worker hosts, and their page faults (see
//! `memory::breakdown`).
//!
//! Layout: this file is the driver (arguments, the results, stopping a run's
//! tree); one file per scenario runs it and records its figures:
//! `restart_rate.rs`, `host_kill.rs`, `panic_restart.rs` and `tree_start.rs`
//! (whose trees also give the `memory` figures, classified in `memory.rs`,
//! and the `shutdown` ones). `trees.rs` compiles the tree code of
//! `scenario.rs` against both crates; `stats.rs` and `report.rs` turn the
//! figures into the table; `procs.rs` and `shm.rs` are the process and
//! shared-memory plumbing.

#![warn(clippy::undocumented_unsafe_blocks)]

mod host_kill;
mod memory;
mod panic_restart;
mod procs;
mod report;
mod restart_rate;
mod shm;
mod stats;
mod tree_start;
mod trees;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use memory::MemSeries;
use procs::{Child, Failure};
use report::report;
use shm::Shared;
use stats::Series;

const HEADLINE_N: usize = 100;
const SCALING_N: [usize; 3] = [10, 100, 1000];
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(10);
const SETTLE: Duration = Duration::from_millis(30);

const SCENARIOS: [&str; 6] = [
    "restart_rate",
    "host_kill",
    "panic_restart",
    "tree_start",
    "memory",
    "shutdown",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crate {
    Ours,
    Seed,
}

impl Crate {
    const BOTH: [Crate; 2] = [Crate::Ours, Crate::Seed];

    fn name(self) -> &'static str {
        match self {
            Crate::Ours => "ours",
            Crate::Seed => "seed",
        }
    }

    fn idx(self) -> usize {
        self as usize
    }
}

/// How a run's tree was stopped.
#[derive(Debug)]
struct Stopped {
    /// SIGTERM to the root until the driver saw it exit (graceful stops).
    shutdown: Option<Result<f64, Failure>>,
    /// Live processes of the run right after the root exited.
    leftovers: Option<usize>,
}

#[derive(Debug, Default)]
struct Results {
    restart_rate: [Series; 2],
    host_kill_p50: Series,
    host_kill_p99: Series,
    host_kill_samples: usize,
    panic_p50: Series,
    panic_p99: Series,
    panic_samples: Vec<usize>,
    tree_start: BTreeMap<usize, [Series; 2]>,
    shutdown: BTreeMap<usize, [Series; 2]>,
    leftovers: BTreeMap<usize, [Vec<usize>; 2]>,
    processes: [Vec<usize>; 2],
    floor_p: usize,
    floor: Series,
    memory: [MemSeries; 2],
    notes: Vec<String>,
}

struct Bench {
    shm: &'static Shared,
    runs: usize,
    r: Results,
}

impl Bench {
    fn note(&mut self, note: String) {
        eprintln!("  note: {note}");
        self.r.notes.push(note);
    }

    /// Stops a run's tree and makes sure nothing of it is left. `graceful`:
    /// SIGTERM to the root only, timed until it exits; otherwise SIGTERM then
    /// SIGKILL to its process group.
    fn stop(&mut self, what: &str, child: &mut Child, graceful: bool) -> Stopped {
        let mut stopped = Stopped {
            shutdown: None,
            leftovers: None,
        };
        if graceful {
            let sent = Instant::now();
            child.signal(Signal::SIGTERM);
            let shutdown = child
                .wait_exit(SHUTDOWN_TIMEOUT)
                .map(|seen| (seen - sent).as_secs_f64() * 1e3);
            match &shutdown {
                Ok(_) => stopped.leftovers = Some(procs::leftovers(child.pid.as_raw())),
                Err(f) => self.note(format!("{what}: shutdown: {f}")),
            }
            stopped.shutdown = Some(shutdown);
        } else {
            child.signal_group(Signal::SIGTERM);
            let _ = child.wait_exit(Duration::from_millis(5));
            child.signal_group(Signal::SIGKILL);
        }
        match procs::cleanup(child.pid.as_raw(), CLEANUP_TIMEOUT) {
            Ok(_) => {}
            Err(f) => self.note(format!("{what}: cleanup failed: {f}")),
        }
        // Let the kernel finish tearing the run down before the next one.
        std::thread::sleep(SETTLE);
        child.poll_exit();
        if self.shm.failed.load(Ordering::SeqCst) != 0 {
            self.note(format!("{what}: the tree's start() returned an error"));
        }
        stopped
    }
}

fn main() {
    let began = Instant::now();
    let runs = match std::env::var("BENCH_RUNS") {
        Ok(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("BENCH_RUNS must be a positive integer, got {v:?}");
                std::process::exit(2);
            }
        },
        Err(_) => 5,
    };
    let max_n = match std::env::var("BENCH_MAX_N") {
        Ok(v) => match v.parse::<usize>() {
            Ok(n) => n,
            Err(_) => {
                eprintln!("BENCH_MAX_N must be an integer, got {v:?}");
                std::process::exit(2);
            }
        },
        Err(_) => usize::MAX,
    };
    // `cargo bench` passes `--bench`; anything else is a scenario name.
    let mut wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if let Some(bad) = wanted.iter().find(|w| !SCENARIOS.contains(&w.as_str())) {
        eprintln!("unknown scenario {bad:?}; known: {}", SCENARIOS.join(", "));
        std::process::exit(2);
    }
    if wanted.is_empty() {
        wanted = SCENARIOS.iter().map(|s| (*s).to_owned()).collect();
    }
    let on = |s: &str| wanted.iter().any(|w| w == s);

    // Orphans of a run (the seed does not take its tree down with its root)
    // re-parent to the driver, which reaps and counts them.
    nix::sys::prctl::set_child_subreaper(true)
        .expect("PR_SET_CHILD_SUBREAPER is needed to collect the orphans of a run");
    let shm = Shared::map().expect("could not map the shared memory page");
    let mut b = Bench {
        shm,
        runs,
        r: Results::default(),
    };

    if on("restart_rate") {
        b.restart_rate_runs();
    }
    if on("host_kill") {
        b.host_kill_runs();
    }
    if on("panic_restart") {
        b.panic_restart_runs();
    }
    if on("tree_start") || on("memory") || on("shutdown") {
        eprintln!("tree_start / memory / shutdown, N={HEADLINE_N} (+ fork floor)");
        b.tree_runs(HEADLINE_N, true, on("tree_start"));
    }
    if on("tree_start") {
        for n in SCALING_N
            .into_iter()
            .filter(|&n| n != HEADLINE_N && n <= max_n)
        {
            eprintln!("tree_start N={n}");
            b.tree_runs(n, false, false);
        }
    }
    let table = report(&b, began.elapsed());
    print!("{table}");
}
