//! `restart_rate`: how many times per second one worker that returns at
//! once is restarted, ours and the seed side by side, counted over a window
//! after a warm-up.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::procs::{Child, Failure};
use crate::shm::now_ns;
use crate::stats::as_ns;
use crate::trees::{spawn_tree, Tree};
use crate::{Bench, Crate};

const WARMUP: Duration = Duration::from_millis(200);
const WINDOW: Duration = Duration::from_secs(1);

impl Bench {
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

    /// Every run of `restart_rate`, alternating the crates.
    pub fn restart_rate_runs(&mut self) {
        let runs = self.runs;
        eprintln!("restart_rate");
        for run in 0..runs {
            for k in Crate::BOTH {
                let r = self.restart_rate(k);
                eprintln!(
                    "  run {}/{runs} {}: {}",
                    run + 1,
                    k.name(),
                    r.as_ref()
                        .map_or_else(|f| f.to_string(), |v| format!("{v:.0} restarts/s"))
                );
                self.r.restart_rate[k.idx()].push(r);
            }
        }
    }
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
