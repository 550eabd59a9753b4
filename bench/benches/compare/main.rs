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
//! above it (e.g. `BENCH_MAX_N=100` skips N=1000).

#![warn(clippy::undocumented_unsafe_blocks)]

mod procs;
mod shm;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use procs::{Child, Failure, Snapshot};
use shm::{now_ns, Shared};

/// The scenario code, compiled against this workspace's crate.
mod ours {
    use supertrees as st;

    fn start_tree(tree: st::Supertree) -> Result<(), String> {
        tree.start().map_err(|err| err.to_string())
    }

    include!("scenario.rs");

    /// `host_kill`: a root with 10 workers that never finish, restarted at
    /// once.
    pub fn host_kill_tree(shm: &'static Shared) -> st::Supertree {
        (0..10).fold(st::Supertree::new(), |tree, _| {
            tree.add_worker(Probe::new(
                shm,
                Behavior::Pend,
                st::BackoffPolicy::immediate(),
            ))
        })
    }

    /// `panic_restart`: one worker that panics at once, restarted at once.
    pub fn panic_tree(shm: &'static Shared) -> st::Supertree {
        st::Supertree::new().add_worker(Probe::new(
            shm,
            Behavior::Panic,
            st::BackoffPolicy::immediate(),
        ))
    }
}

/// The same scenario code, compiled against supertrees 0.1.2.
mod seed {
    use seed as st;

    fn start_tree(tree: st::Supertree) -> Result<(), String> {
        // The seed's start() returns nothing, and also returns in the forked
        // children of the tree; the caller `_exit`s right after.
        tree.start();
        Ok(())
    }

    include!("scenario.rs");
}

const WARMUP: Duration = Duration::from_millis(200);
const WINDOW: Duration = Duration::from_secs(1);
const HOST_KILLS: usize = 200;
const KILL_PAUSE: Duration = Duration::from_millis(2);
const PANIC_RESTARTS: usize = 10_000;
const PANIC_TIME_CAP: Duration = Duration::from_secs(5);
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

#[derive(Debug, Clone, Copy)]
enum Tree {
    RestartRate,
    Supervisors(usize),
    HostKill,
    PanicRestart,
}

/// Forks the process that runs `tree` of `krate` as its root.
fn spawn_tree(krate: Crate, shm: &'static Shared, tree: Tree) -> Result<Child, Failure> {
    Child::spawn(move || match (krate, tree) {
        (Crate::Ours, Tree::RestartRate) => ours::run(shm, ours::restart_rate_tree(shm)),
        (Crate::Seed, Tree::RestartRate) => seed::run(shm, seed::restart_rate_tree(shm)),
        (Crate::Ours, Tree::Supervisors(n)) => ours::run(shm, ours::supervisors_tree(shm, n)),
        (Crate::Seed, Tree::Supervisors(n)) => seed::run(shm, seed::supervisors_tree(shm, n)),
        (Crate::Ours, Tree::HostKill) => ours::run(shm, ours::host_kill_tree(shm)),
        (Crate::Ours, Tree::PanicRestart) => {
            std::panic::set_hook(Box::new(|_| {}));
            ours::run(shm, ours::panic_tree(shm))
        }
        (Crate::Seed, Tree::HostKill | Tree::PanicRestart) => 2,
    })
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn as_ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

/// Nearest-rank percentile of `sorted` (ascending), `p` in (0, 1].
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The values of one figure over the runs, and the runs that gave none.
#[derive(Debug, Default, Clone)]
struct Series {
    values: Vec<f64>,
    failures: Vec<String>,
}

impl Series {
    fn push(&mut self, r: Result<f64, Failure>) {
        match r {
            Ok(v) => self.values.push(v),
            Err(f) => self.failures.push(f.to_string()),
        }
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.values.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    fn min(&self) -> Option<f64> {
        self.sorted().first().copied()
    }

    fn median(&self) -> Option<f64> {
        percentile(&self.sorted(), 0.5)
    }

    fn is_empty(&self) -> bool {
        self.values.is_empty() && self.failures.is_empty()
    }

    fn cell(&self, v: Option<f64>) -> String {
        match v {
            None if self.failures.is_empty() => "—".to_owned(),
            None if self.failures.iter().all(|f| f.starts_with("timeout")) => "timeout".to_owned(),
            None => "failed".to_owned(),
            Some(v) if self.failures.is_empty() => num(v),
            Some(v) => format!("{} ({} failed)", num(v), self.failures.len()),
        }
    }
}

fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// Memory of one N=100 tree.
#[derive(Debug, Clone, Copy)]
struct Mem {
    root: f64,
    sup: f64,
    host: f64,
    sups: usize,
    hosts: usize,
}

#[derive(Debug, Default)]
struct MemSeries {
    root: Series,
    sup: Series,
    host: Series,
    pair: Series,
    counts: Vec<(usize, usize)>,
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

    fn restart_rate(&mut self, krate: Crate) -> Result<f64, Failure> {
        let shm = self.shm;
        shm.reset();
        shm.win_from.store(as_ns(WARMUP), Ordering::SeqCst);
        shm.win_to.store(as_ns(WARMUP + WINDOW), Ordering::SeqCst);
        let mut child = spawn_tree(krate, shm, Tree::RestartRate)?;
        let measured = (|| {
            child.wait_for("tree process start", Duration::from_secs(5), || {
                shm.t0.load(Ordering::SeqCst) != 0
            })?;
            let end = shm.t0.load(Ordering::SeqCst) + as_ns(WARMUP + WINDOW) + 1_000_000;
            child.sleep_until_ns(end)?;
            let n = shm.win_count.load(Ordering::SeqCst);
            if n == 0 {
                return Err(Failure::Error(format!(
                    "no worker start in the window ({} starts in all)",
                    shm.count()
                )));
            }
            Ok(n as f64 / WINDOW.as_secs_f64())
        })();
        self.stop(
            &format!("restart_rate {}", krate.name()),
            &mut child,
            krate == Crate::Ours,
        );
        measured
    }

    fn host_kill(&mut self) -> Result<Vec<f64>, Failure> {
        let shm = self.shm;
        shm.reset();
        let mut child = spawn_tree(Crate::Ours, shm, Tree::HostKill)?;
        let root = child.pid.as_raw();
        let measured = (|| {
            child.wait_for(
                "first start of the 10 workers",
                Duration::from_secs(5),
                || shm.count() >= 10,
            )?;
            let mut latencies = Vec::with_capacity(HOST_KILLS);
            for i in 0..HOST_KILLS {
                // /proc/<pid>/task/<pid>/children needs CONFIG_PROC_CHILDREN:
                // find the root's children by their ppid instead.
                let hosts = Snapshot::take().live_children(root);
                let [host] = hosts[..] else {
                    return Err(Failure::Error(format!(
                        "kill {i}: expected one worker host under the root, found {hosts:?}"
                    )));
                };
                std::thread::sleep(KILL_PAUSE);
                let before = shm.count();
                let t_kill = now_ns();
                kill(Pid::from_raw(host), Signal::SIGKILL)
                    .map_err(|e| Failure::Error(format!("kill {i}: SIGKILL failed: {e}")))?;
                child.wait_for(
                    &format!("kill {i}: all 10 workers started again"),
                    Duration::from_secs(2),
                    || shm.count() >= before + 10,
                )?;
                let last = shm.last_ns.load(Ordering::SeqCst);
                latencies.push(ms(last.saturating_sub(t_kill)));
            }
            Ok(latencies)
        })();
        self.stop("host_kill", &mut child, true);
        measured
    }

    /// Returns the restart deltas in µs.
    fn panic_restart(&mut self) -> Result<Vec<f64>, Failure> {
        let shm = self.shm;
        shm.reset();
        let mut child = spawn_tree(Crate::Ours, shm, Tree::PanicRestart)?;
        let waited = child.wait_for(
            &format!("{PANIC_RESTARTS} panic restarts"),
            PANIC_TIME_CAP,
            || shm.ring_len.load(Ordering::Acquire) as usize >= PANIC_RESTARTS,
        );
        self.stop("panic_restart", &mut child, true);
        // Every writer is gone now: the ring is complete.
        let mut deltas: Vec<f64> = shm
            .deltas()
            .into_iter()
            .take(PANIC_RESTARTS)
            .map(|ns| ns as f64 / 1e3)
            .collect();
        match waited {
            Ok(()) => {}
            Err(Failure::Timeout(what)) if deltas.len() >= 100 => self.note(format!(
                "panic_restart: {what}; used the {} restarts recorded",
                deltas.len()
            )),
            Err(f) => return Err(f),
        }
        deltas.sort_by(f64::total_cmp);
        Ok(deltas)
    }

    /// One tree of `n` supervisors × 10 workers: start time in ms; with
    /// `extras` (N=100), also its process count and memory, and the seed is
    /// stopped with SIGTERM to its root like ours.
    fn tree_run(&mut self, krate: Crate, n: usize, extras: bool) {
        let shm = self.shm;
        shm.reset();
        let expected = n as u64 * 10;
        let label = format!("tree_start N={n} {}", krate.name());
        let mut child = match spawn_tree(krate, shm, Tree::Supervisors(n)) {
            Ok(child) => child,
            Err(f) => {
                self.series_tree(n, krate).push(Err(f));
                return;
            }
        };
        let timeout = Duration::from_secs(10) + Duration::from_millis(20) * n as u32;
        let started = child
            .wait_for(&format!("{expected} workers started"), timeout, || {
                shm.count() >= expected
            })
            .map(|()| {
                let t0 = shm.t0.load(Ordering::SeqCst);
                ms(shm.last_ns.load(Ordering::SeqCst).saturating_sub(t0))
            });
        if let (true, Ok(_)) = (extras, &started) {
            let snap = Snapshot::take();
            let root = child.pid.as_raw();
            let descendants = snap.live_descendants(root);
            self.r.processes[krate.idx()].push(descendants.len());
            let mem = memory(&snap, root, &descendants);
            let series = &mut self.r.memory[krate.idx()];
            match mem {
                Some(m) => {
                    series.root.push(Ok(m.root));
                    series.sup.push(Ok(m.sup));
                    series.host.push(Ok(m.host));
                    series.pair.push(Ok(m.sup + m.host));
                    series.counts.push((m.sups, m.hosts));
                }
                None => {
                    let f = || Err(Failure::Error("could not read smaps_rollup".into()));
                    series.root.push(f());
                    series.sup.push(f());
                    series.host.push(f());
                    series.pair.push(f());
                }
            }
        }
        eprintln!(
            "  {label}: {}",
            match &started {
                Ok(v) => format!("{} ms", num(*v)),
                Err(f) => f.to_string(),
            }
        );
        self.series_tree(n, krate).push(started);
        let graceful = krate == Crate::Ours || extras;
        let stopped = self.stop(&label, &mut child, graceful);
        let clean_exit = matches!(child.status, Some(WaitStatus::Exited(_, 0)));
        if krate == Crate::Ours && matches!(stopped.shutdown, Some(Ok(_))) && !clean_exit {
            self.note(format!(
                "{label}: the root did not exit 0 after SIGTERM: {:?}",
                child.status
            ));
        }
        if let Some(shutdown) = stopped.shutdown {
            if let Ok(v) = &shutdown {
                eprintln!(
                    "  {label}: shutdown {} ms, {} processes left",
                    num(*v),
                    stopped.leftovers.unwrap_or(0)
                );
            }
            self.r.shutdown.entry(n).or_default()[krate.idx()].push(shutdown);
        }
        if let Some(left) = stopped.leftovers {
            self.r.leftovers.entry(n).or_default()[krate.idx()].push(left);
        }
    }

    /// `runs` trees of `n` supervisors per crate, alternating the crates,
    /// each pair followed by a fork floor run with `floor`. A crate whose
    /// tree timed out is not run again at this size, so that a broken engine
    /// can not stretch the bench.
    fn tree_runs(&mut self, n: usize, extras: bool, floor: bool) {
        let mut skip = [false; 2];
        for run in 0..self.runs {
            for k in Crate::BOTH {
                if skip[k.idx()] {
                    continue;
                }
                self.tree_run(k, n, extras);
                let timed_out = self
                    .series_tree(n, k)
                    .failures
                    .last()
                    .is_some_and(|f| f.starts_with("timeout"));
                if timed_out {
                    skip[k.idx()] = true;
                    self.note(format!(
                        "tree_start N={n} {}: timed out; its other runs at this size are skipped",
                        k.name()
                    ));
                }
            }
            if floor {
                // P = the processes our tree forks, counted from /proc while
                // it was up (expected: a supervisor + a host per supervisor).
                let p = median_usize(&self.r.processes[Crate::Ours.idx()]).unwrap_or(2 * n);
                self.r.floor_p = p;
                let r = self.fork_floor(p);
                eprintln!(
                    "  fork floor run {}/{}, P={p}: {}",
                    run + 1,
                    self.runs,
                    r.as_ref()
                        .map_or_else(|f| f.to_string(), |v| format!("{} ms", num(*v)))
                );
                self.r.floor.push(r);
            }
        }
    }

    fn series_tree(&mut self, n: usize, krate: Crate) -> &mut Series {
        &mut self.r.tree_start.entry(n).or_default()[krate.idx()]
    }

    /// `p` sequential fork + `_exit(0)` + waitpid, in a forked
    /// single-threaded child: the floor of forking a tree of `p` processes.
    fn fork_floor(&mut self, p: usize) -> Result<f64, Failure> {
        let shm = self.shm;
        shm.reset();
        let mut child = Child::spawn(move || {
            let t = now_ns();
            for _ in 0..p {
                // SAFETY: this helper process is single-threaded (forked from
                // the single-threaded driver); the new child only `_exit`s.
                match unsafe { fork() } {
                    Ok(ForkResult::Child) => procs::exit_now(0),
                    Ok(ForkResult::Parent { child }) => {
                        if waitpid(child, None).is_err() {
                            return 1;
                        }
                    }
                    Err(_) => return 1,
                }
            }
            shm.result_ns.store(now_ns() - t, Ordering::SeqCst);
            0
        })?;
        let waited = child.wait_exit(Duration::from_secs(30));
        let status = child.status;
        self.stop("fork floor", &mut child, false);
        waited?;
        match status {
            Some(WaitStatus::Exited(_, 0)) => Ok(ms(shm.result_ns.load(Ordering::SeqCst))),
            other => Err(Failure::Error(format!("fork floor process: {other:?}"))),
        }
    }
}

/// PSS of the root and of each descendant, classified by structure: a
/// descendant with children is a supervisor process, a leaf a worker host
/// (the seed: a "watcher").
fn memory(snap: &Snapshot, root: i32, descendants: &[i32]) -> Option<Mem> {
    let (mut sups, mut hosts) = (Vec::new(), Vec::new());
    for &pid in descendants {
        let pss = procs::pss_kib(pid)? as f64;
        if snap.live_children(pid).is_empty() {
            hosts.push(pss);
        } else {
            sups.push(pss);
        }
    }
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    Some(Mem {
        root: procs::pss_kib(root)? as f64,
        sup: mean(&sups),
        host: mean(&hosts),
        sups: sups.len(),
        hosts: hosts.len(),
    })
}

/// Least-squares fit y = a + b·x: (b, a, r²).
fn least_squares(points: &[(f64, f64)]) -> Option<(f64, f64, f64)> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let syy: f64 = points.iter().map(|p| (p.1 - my).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let b = sxy / sxx;
    let r2 = if syy == 0.0 {
        1.0
    } else {
        sxy * sxy / (sxx * syy)
    };
    Some((b, my - b * mx, r2))
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let model = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let mem_kib: f64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    let kernel = read("/proc/sys/kernel/osrelease");
    let pid_max = read("/proc/sys/kernel/pid_max");
    format!(
        "{cpus} CPUs ({model}), {:.1} GiB RAM, Linux {}, pid_max {}",
        mem_kib / 1024.0 / 1024.0,
        kernel.trim(),
        pid_max.trim()
    )
}

struct Row {
    figure: String,
    unit: &'static str,
    ours: Option<Series>,
    seed: Option<Series>,
    ratio: Option<f64>,
    target: String,
    met: Option<bool>,
}

impl Row {
    fn new(figure: impl Into<String>, unit: &'static str) -> Row {
        Row {
            figure: figure.into(),
            unit,
            ours: None,
            seed: None,
            ratio: None,
            target: "—".to_owned(),
            met: None,
        }
    }

    fn ours(mut self, s: &Series) -> Row {
        self.ours = Some(s.clone());
        self
    }

    fn seed(mut self, s: &Series) -> Row {
        self.seed = Some(s.clone());
        self
    }

    fn ratio(mut self) -> Row {
        if let (Some(o), Some(s)) = (
            self.ours.as_ref().and_then(Series::median),
            self.seed.as_ref().and_then(Series::median),
        ) {
            if s != 0.0 {
                self.ratio = Some(o / s);
            }
        }
        self
    }

    /// A target on a value (the ratio, or ours' median) checked by `ok`.
    fn target(mut self, text: &str, value: Option<f64>, ok: impl Fn(f64) -> bool) -> Row {
        self.target = text.to_owned();
        self.met = value.map(ok);
        self
    }

    fn render(&self, out: &mut String) {
        let cells = |s: &Option<Series>| match s {
            None => ("—".to_owned(), "—".to_owned()),
            Some(s) => (s.cell(s.min()), s.cell(s.median())),
        };
        let (omin, omed) = cells(&self.ours);
        let (smin, smed) = cells(&self.seed);
        let ratio = self
            .ratio
            .map_or("—".to_owned(), |r| format!("{}×", num(r)));
        let met = match self.met {
            None => "—",
            Some(true) => "yes",
            Some(false) => "**no**",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {omin} | {omed} | {smin} | {smed} | {ratio} | {} | {met} |",
            self.figure, self.unit, self.target
        );
    }
}

fn median_usize(v: &[usize]) -> Option<usize> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len().saturating_sub(1) / 2).copied()
}

fn report(b: &Bench, elapsed: Duration) -> String {
    let r = &b.r;
    let mut rows: Vec<Row> = Vec::new();
    if !r.restart_rate[0].is_empty() {
        let row = Row::new("restart_rate (1 worker, returns at once)", "restarts/s")
            .ours(&r.restart_rate[0])
            .seed(&r.restart_rate[1])
            .ratio();
        let ratio = row.ratio;
        rows.push(row.target("ours/seed ≥ 100×", ratio, |x| x >= 100.0));
    }
    if !r.host_kill_p50.is_empty() {
        rows.push(
            Row::new("host_kill p50 (SIGKILL host → 10 workers up)", "ms")
                .ours(&r.host_kill_p50)
                .target("≤ 0.5 ms", r.host_kill_p50.median(), |x| x <= 0.5),
        );
        rows.push(
            Row::new("host_kill p99", "ms")
                .ours(&r.host_kill_p99)
                .target("≤ 2 ms", r.host_kill_p99.median(), |x| x <= 2.0),
        );
    }
    if !r.panic_p50.is_empty() {
        rows.push(
            Row::new("panic_restart p50 (start → next start)", "µs")
                .ours(&r.panic_p50)
                .target("< 50 µs", r.panic_p50.median(), |x| x < 50.0),
        );
        rows.push(Row::new("panic_restart p99", "µs").ours(&r.panic_p99));
    }
    let headline = r.tree_start.get(&HEADLINE_N);
    if let Some([o, s]) = headline {
        let row = Row::new(format!("tree_start N={HEADLINE_N} (×10 workers)"), "ms")
            .ours(o)
            .seed(s)
            .ratio();
        let ratio = row.ratio;
        rows.push(row.target("ours/seed ≤ 0.5", ratio, |x| x <= 0.5));
    }
    if !r.floor.is_empty() {
        rows.push(Row::new(format!("fork floor, P={} forks", r.floor_p), "ms").ours(&r.floor));
        let ours_start = headline.and_then(|[o, _]| o.median());
        let ratio = ours_start.zip(r.floor.median()).map(|(t, f)| t / f);
        let mut row = Row::new(
            format!("tree_start N={HEADLINE_N} / fork floor (ours)"),
            "×",
        );
        row.ratio = ratio;
        rows.push(row.target("≤ 1.5", ratio, |x| x <= 1.5));
    }
    let [mo, ms_] = &r.memory;
    if !mo.sup.is_empty() || !ms_.sup.is_empty() {
        rows.push(
            Row::new(
                format!("memory N={HEADLINE_N}: PSS per supervisor process"),
                "KiB",
            )
            .ours(&mo.sup)
            .seed(&ms_.sup)
            .ratio()
            .target("< 500 KiB", mo.sup.median(), |x| x < 500.0),
        );
        rows.push(
            Row::new("memory: PSS per worker host (seed: watcher)", "KiB")
                .ours(&mo.host)
                .seed(&ms_.host)
                .ratio(),
        );
        rows.push(
            Row::new("memory: PSS per supervisor + host", "KiB")
                .ours(&mo.pair)
                .seed(&ms_.pair)
                .ratio(),
        );
        rows.push(
            Row::new("memory: PSS of the root", "KiB")
                .ours(&mo.root)
                .seed(&ms_.root)
                .ratio(),
        );
    }
    if let Some([o, s]) = r.shutdown.get(&HEADLINE_N) {
        rows.push(
            Row::new(
                format!("shutdown N={HEADLINE_N}: SIGTERM root → root exited (seed: dies at once)"),
                "ms",
            )
            .ours(o)
            .seed(s)
            .target("< 100 ms", o.median(), |x| x < 100.0),
        );
        if let Some([lo, ls]) = r.leftovers.get(&HEADLINE_N) {
            let series = |v: &[usize]| Series {
                values: v.iter().map(|&x| x as f64).collect(),
                failures: Vec::new(),
            };
            let worst = lo.iter().max().copied();
            rows.push(
                Row::new("shutdown: processes left after the root exited", "procs")
                    .ours(&series(lo))
                    .seed(&series(ls))
                    .target("0", worst.map(|w| w as f64), |x| x == 0.0),
            );
        }
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "# supertrees (this workspace) vs supertrees 0.1.2 (seed)\n"
    );
    let _ = writeln!(out, "- machine: {}", machine());
    let _ = writeln!(
        out,
        "- runs per figure: {} (BENCH_RUNS); whole bench: {:.1} s",
        b.runs,
        elapsed.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "- min and median are over runs; percentiles are per run (min/median of the per-run values); ratio = median ours / median seed\n"
    );
    let _ = writeln!(
        out,
        "| figure | unit | ours min | ours median | seed min | seed median | ours/seed | target | met |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for row in &rows {
        row.render(&mut out);
    }

    if r.tree_start.len() > 1 {
        let _ = writeln!(
            out,
            "\n## tree_start scaling (N supervisors × 10 workers)\n"
        );
        let _ = writeln!(
            out,
            "| N | ours median (ms) | ours ms/sup | seed median (ms) | seed ms/sup | ours/seed | ours shutdown median (ms) |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        let mut fits: [Vec<(f64, f64)>; 2] = [Vec::new(), Vec::new()];
        for (&n, [o, s]) in &r.tree_start {
            let per = |v: Option<f64>| v.map_or("—".to_owned(), |v| num(v / n as f64));
            let shutdown = r
                .shutdown
                .get(&n)
                .and_then(|[so, _]| so.median())
                .map_or("—".to_owned(), num);
            let ratio = o
                .median()
                .zip(s.median())
                .map_or("—".to_owned(), |(a, b)| format!("{}×", num(a / b)));
            let _ = writeln!(
                out,
                "| {n} | {} | {} | {} | {} | {ratio} | {shutdown} |",
                o.cell(o.median()),
                per(o.median()),
                s.cell(s.median()),
                per(s.median()),
            );
            for (i, series) in [o, s].into_iter().enumerate() {
                if let Some(m) = series.median() {
                    fits[i].push((n as f64, m));
                }
            }
        }
        let _ = writeln!(out);
        for (krate, fit) in Crate::BOTH.iter().zip(&fits) {
            if let Some((slope, intercept, r2)) = least_squares(fit) {
                // Linear growth: the same cost per added supervisor between
                // every pair of sizes.
                let steps: Vec<String> = fit
                    .windows(2)
                    .map(|w| {
                        format!(
                            "{}→{}: {}",
                            w[0].0,
                            w[1].0,
                            num((w[1].1 - w[0].1) / (w[1].0 - w[0].0))
                        )
                    })
                    .collect();
                let _ = writeln!(
                    out,
                    "- {}: least-squares slope {} ms per supervisor (intercept {} ms, r² {:.4}); ms per added supervisor {}",
                    krate.name(),
                    num(slope),
                    num(intercept),
                    r2,
                    steps.join(", ")
                );
            }
        }
    }

    let mut details = Vec::new();
    if r.host_kill_samples > 0 {
        details.push(format!(
            "host_kill: {} kills per run, {} ms pause after each recovery",
            HOST_KILLS,
            KILL_PAUSE.as_millis()
        ));
    }
    if !r.panic_samples.is_empty() {
        details.push(format!(
            "panic_restart: restart deltas per run: {:?}",
            r.panic_samples
        ));
    }
    for k in Crate::BOTH {
        if let Some(p) = median_usize(&r.processes[k.idx()]) {
            let counts = median_usize(
                &r.memory[k.idx()]
                    .counts
                    .iter()
                    .map(|c| c.0)
                    .collect::<Vec<_>>(),
            );
            let hosts = median_usize(
                &r.memory[k.idx()]
                    .counts
                    .iter()
                    .map(|c| c.1)
                    .collect::<Vec<_>>(),
            );
            details.push(format!(
                "{}: N={HEADLINE_N} tree has {p} processes below its root ({} supervisor processes, {} leaves)",
                k.name(),
                counts.unwrap_or(0),
                hosts.unwrap_or(0)
            ));
        }
    }
    for (&n, [lo, ls]) in &r.leftovers {
        if n != HEADLINE_N || (lo.is_empty() && ls.is_empty()) {
            continue;
        }
        details.push(format!(
            "shutdown N={n}: processes left after the root exited, per run: ours {lo:?}, seed {ls:?} (all killed and reaped by the bench afterwards)"
        ));
    }
    let failures = |name: &str, s: &Series, out: &mut Vec<String>| {
        for f in &s.failures {
            out.push(format!("{name}: {f}"));
        }
    };
    for k in Crate::BOTH {
        failures(
            &format!("restart_rate {}", k.name()),
            &r.restart_rate[k.idx()],
            &mut details,
        );
        for (n, s) in &r.tree_start {
            failures(
                &format!("tree_start N={n} {}", k.name()),
                &s[k.idx()],
                &mut details,
            );
        }
    }
    failures("host_kill", &r.host_kill_p50, &mut details);
    failures("panic_restart", &r.panic_p50, &mut details);
    failures("fork floor", &r.floor, &mut details);
    details.extend(r.notes.iter().cloned());
    if !details.is_empty() {
        let _ = writeln!(out, "\n## Notes\n");
        for d in details {
            let _ = writeln!(out, "- {d}");
        }
    }
    out
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
        eprintln!("restart_rate");
        for run in 0..runs {
            for k in Crate::BOTH {
                let r = b.restart_rate(k);
                eprintln!(
                    "  run {}/{runs} {}: {}",
                    run + 1,
                    k.name(),
                    r.as_ref()
                        .map_or_else(|f| f.to_string(), |v| format!("{v:.0} restarts/s"))
                );
                b.r.restart_rate[k.idx()].push(r);
            }
        }
    }
    if on("host_kill") {
        eprintln!("host_kill (ours)");
        for run in 0..runs {
            match b.host_kill() {
                Ok(mut lat) => {
                    lat.sort_by(f64::total_cmp);
                    let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
                    eprintln!(
                        "  run {}/{runs}: p50 {} ms, p99 {} ms, max {} ms",
                        run + 1,
                        num(p50.unwrap_or(0.0)),
                        num(p99.unwrap_or(0.0)),
                        num(lat.last().copied().unwrap_or(0.0))
                    );
                    b.r.host_kill_samples += lat.len();
                    if let (Some(p50), Some(p99)) = (p50, p99) {
                        b.r.host_kill_p50.push(Ok(p50));
                        b.r.host_kill_p99.push(Ok(p99));
                    }
                }
                Err(f) => {
                    eprintln!("  run {}/{runs}: {f}", run + 1);
                    b.r.host_kill_p50.push(Err(f.clone()));
                    b.r.host_kill_p99.push(Err(f));
                }
            }
        }
    }
    if on("panic_restart") {
        eprintln!("panic_restart (ours)");
        for run in 0..runs {
            match b.panic_restart() {
                Ok(deltas) => {
                    let (p50, p99) = (percentile(&deltas, 0.5), percentile(&deltas, 0.99));
                    eprintln!(
                        "  run {}/{runs}: {} restarts, p50 {} µs, p99 {} µs",
                        run + 1,
                        deltas.len(),
                        num(p50.unwrap_or(0.0)),
                        num(p99.unwrap_or(0.0))
                    );
                    b.r.panic_samples.push(deltas.len());
                    if let (Some(p50), Some(p99)) = (p50, p99) {
                        b.r.panic_p50.push(Ok(p50));
                        b.r.panic_p99.push(Ok(p99));
                    }
                }
                Err(f) => {
                    eprintln!("  run {}/{runs}: {f}", run + 1);
                    b.r.panic_p50.push(Err(f.clone()));
                    b.r.panic_p99.push(Err(f));
                }
            }
        }
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

impl Child {
    /// Sleeps until CLOCK_MONOTONIC reaches `deadline_ns` (in steps of a few
    /// ms); fails if the child ends first.
    fn sleep_until_ns(&mut self, deadline_ns: u64) -> Result<(), Failure> {
        loop {
            let now = now_ns();
            if now >= deadline_ns {
                return Ok(());
            }
            if self.poll_exit() {
                return Err(Failure::Error(format!(
                    "the tree process ended early ({:?})",
                    self.status
                )));
            }
            let left = Duration::from_nanos(deadline_ns - now);
            std::thread::sleep(left.min(Duration::from_millis(5)));
        }
    }
}
