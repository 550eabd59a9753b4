//! `tree_start`: the time from `start()` until every worker of a tree of N
//! supervisors × 10 workers has started, against the floor of forking as
//! many processes. The N=100 trees also give the `memory` figures (see
//! `memory.rs`) and, stopped with SIGTERM, the `shutdown` ones.

use std::sync::atomic::Ordering;
use std::time::Duration;

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

use crate::memory::memory;
use crate::procs::{self, Child, Failure, Snapshot};
use crate::report::num;
use crate::shm::now_ns;
use crate::stats::{median_usize, ms, Series};
use crate::trees::{spawn_tree, Tree};
use crate::{Bench, Crate};

impl Bench {
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
            crate::memory::breakdown(krate.name(), &snap, &descendants);
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
    pub fn tree_runs(&mut self, n: usize, extras: bool, floor: bool) {
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
