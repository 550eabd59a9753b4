//! `panic_restart` (ours only): a worker that panics at once, restarted at
//! once in its host; the time from one start to the next, as p50 and p99
//! per run.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::procs::Failure;
use crate::report::num;
use crate::stats::percentile;
use crate::trees::{spawn_tree, Tree};
use crate::{Bench, Crate};

const PANIC_RESTARTS: usize = 10_000;
const PANIC_TIME_CAP: Duration = Duration::from_secs(5);

impl Bench {
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

    /// Every run of `panic_restart`.
    pub fn panic_restart_runs(&mut self) {
        let runs = self.runs;
        eprintln!("panic_restart (ours)");
        for run in 0..runs {
            match self.panic_restart() {
                Ok(deltas) => {
                    let (p50, p99) = (percentile(&deltas, 0.5), percentile(&deltas, 0.99));
                    eprintln!(
                        "  run {}/{runs}: {} restarts, p50 {} µs, p99 {} µs",
                        run + 1,
                        deltas.len(),
                        num(p50.unwrap_or(0.0)),
                        num(p99.unwrap_or(0.0))
                    );
                    self.r.panic_samples.push(deltas.len());
                    if let (Some(p50), Some(p99)) = (p50, p99) {
                        self.r.panic_p50.push(Ok(p50));
                        self.r.panic_p99.push(Ok(p99));
                    }
                }
                Err(f) => {
                    eprintln!("  run {}/{runs}: {f}", run + 1);
                    self.r.panic_p50.push(Err(f.clone()));
                    self.r.panic_p99.push(Err(f));
                }
            }
        }
    }
}
