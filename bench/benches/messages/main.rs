//! `cargo bench -p supertrees-bench --bench messages [-- FIGURE...]`
//!
//! Messages between the processes of a tree (issue 13), against a floor
//! measured in the same run: two processes on a Unix stream socket pair,
//! with no supertrees at all. It prints a Markdown table to stdout.
//!
//! Figures: `floor`, `call`, `send`, `panics`, `start_child` (default: all;
//! `floor` is measured whenever `call` or `send` is, since their ratios
//! need it). `BENCH_RUNS` (default 5) sets the runs per figure; the figures
//! take turns, one run of each per round, so that every ratio is taken
//! between figures measured side by side.
//!
//! This binary plays two parts, like the process tests:
//!
//! * **Driver** (no `SUPERTREES_BENCH_TREE` in the environment): single
//!   threaded. It forks the two floor processes itself (`floor.rs`), and runs
//!   every tree as a subprocess: this binary again, re-executed with
//!   `SUPERTREES_BENCH_TREE=<figure>` in a process group of its own, whose
//!   `result` lines it reads under a timeout (`run.rs`).
//! * **Tree** (`SUPERTREES_BENCH_TREE` set): the plain `main` of that
//!   subprocess builds the figure's tree and calls `start()` (`trees.rs`);
//!   its measuring worker times its own operations with `Instant` (or
//!   `CLOCK_MONOTONIC` where two processes are involved), prints one
//!   `result` line and ends the tree with SIGTERM to the root.
//!
//! `BENCH_CPUS` (`free`, `same`, `split`) fixes the CPUs of the two ends
//! (`cpus.rs`).
//!
//! `stats.rs` and `procs.rs` are the `compare` bench's own (percentiles,
//! series of runs; forking, waiting, cleaning up after a run); `report.rs`
//! makes the table.

#![warn(clippy::undocumented_unsafe_blocks)]

mod cpus;
mod floor;
#[allow(dead_code)]
#[path = "../compare/procs.rs"]
mod procs;
mod report;
mod run;
#[allow(dead_code)]
#[path = "../compare/stats.rs"]
mod stats;
mod trees;

use std::time::Instant;

use procs::Failure;
use stats::Series;

/// The environment variable that makes this binary run one figure's tree.
pub const TREE_VAR: &str = "SUPERTREES_BENCH_TREE";

const FIGURES: [&str; 5] = ["floor", "call", "send", "panics", "start_child"];

/// The figures of every run, and what went wrong on the way.
#[derive(Debug, Default)]
pub struct Results {
    pub floor_p50: Series,
    pub floor_p99: Series,
    pub floor_rate: Series,
    pub call_p50: Series,
    pub call_p99: Series,
    /// Per run: call p50 / floor p50 of the same round.
    pub call_p50_ratio: Series,
    pub call_p99_ratio: Series,
    pub send_rate: Series,
    /// Per run: send rate / floor one-way rate of the same round.
    pub send_ratio: Series,
    pub panic_failed_max: Series,
    pub panic_failed_median: Series,
    pub panic_recovery_max: Series,
    pub panic_recovery_median: Series,
    /// Panics seen per run.
    pub panic_counts: Vec<usize>,
    pub start_rate: Series,
    pub start_p50: Series,
    pub start_p99: Series,
    pub terminate_rate: Series,
    pub notes: Vec<String>,
}

pub struct Bench {
    pub runs: usize,
    pub r: Results,
}

impl Bench {
    pub fn note(&mut self, note: String) {
        eprintln!("  note: {note}");
        self.r.notes.push(note);
    }
}

/// Pushes `a / b` of one round into `series`, or why there is none.
fn push_ratio(series: &mut Series, a: &Result<f64, Failure>, b: &Result<f64, Failure>) {
    series.push(match (a, b) {
        (Ok(a), Ok(b)) if *b != 0.0 => Ok(a / b),
        (Ok(_), Ok(_)) => Err(Failure::Error("the floor is 0".into())),
        (Err(f), _) | (_, Err(f)) => Err(f.clone()),
    });
}

fn main() {
    if let Ok(figure) = std::env::var(TREE_VAR) {
        trees::run(&figure);
    }
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
    if let Err(err) = cpus::mode() {
        eprintln!("{err}");
        std::process::exit(2);
    }
    // `cargo bench` passes `--bench`; anything else is a figure's name.
    let mut wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if let Some(bad) = wanted.iter().find(|w| !FIGURES.contains(&w.as_str())) {
        eprintln!("unknown figure {bad:?}; known: {}", FIGURES.join(", "));
        std::process::exit(2);
    }
    if wanted.is_empty() {
        wanted = FIGURES.iter().map(|s| (*s).to_owned()).collect();
    }
    let on = |s: &str| wanted.iter().any(|w| w == s);
    let floor = on("floor") || on("call") || on("send");

    // The tree processes that lose their parent re-parent to the driver,
    // which reaps them and makes sure none is left after a run.
    nix::sys::prctl::set_child_subreaper(true)
        .expect("PR_SET_CHILD_SUBREAPER is needed to collect what a run leaves");
    let mut b = Bench {
        runs,
        r: Results::default(),
    };

    for round in 1..=runs {
        eprintln!("round {round}/{runs}");
        let (mut floor_p50, mut floor_p99, mut floor_rate) = (
            Err(Failure::Error("not measured".into())),
            Err(Failure::Error("not measured".into())),
            Err(Failure::Error("not measured".into())),
        );
        if floor {
            match floor::ping_pong() {
                Ok(l) => {
                    eprintln!(
                        "  floor ping-pong: p50 {:.2} µs, p99 {:.2} µs",
                        l.p50 / 1e3,
                        l.p99 / 1e3
                    );
                    floor_p50 = Ok(l.p50 / 1e3);
                    floor_p99 = Ok(l.p99 / 1e3);
                }
                Err(f) => {
                    eprintln!("  floor ping-pong: {f}");
                    floor_p50 = Err(f.clone());
                    floor_p99 = Err(f);
                }
            }
            floor_rate = floor::stream();
            match &floor_rate {
                Ok(rate) => eprintln!("  floor stream: {rate:.0} messages/s"),
                Err(f) => eprintln!("  floor stream: {f}"),
            }
            b.r.floor_p50.push(floor_p50.clone());
            b.r.floor_p99.push(floor_p99.clone());
            b.r.floor_rate.push(floor_rate.clone());
        }
        if on("call") {
            b.call_run(&floor_p50, &floor_p99);
        }
        if on("send") {
            b.send_run(&floor_rate);
        }
        if on("panics") {
            b.panics_run();
        }
        if on("start_child") {
            b.start_child_run();
        }
    }
    let table = report::report(&b, began.elapsed());
    print!("{table}");
}
