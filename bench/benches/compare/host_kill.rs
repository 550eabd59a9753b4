//! `host_kill` (ours only): SIGKILL of a worker host until its 10 workers
//! run again, repeated, as p50 and p99 per run.

use std::sync::atomic::Ordering;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::procs::{Failure, Snapshot};
use crate::report::num;
use crate::shm::now_ns;
use crate::stats::{ms, percentile};
use crate::trees::{spawn_tree, Tree};
use crate::{Bench, Crate};

pub const HOST_KILLS: usize = 200;
pub const KILL_PAUSE: Duration = Duration::from_millis(2);

impl Bench {
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

    /// Every run of `host_kill`.
    pub fn host_kill_runs(&mut self) {
        let runs = self.runs;
        eprintln!("host_kill (ours)");
        for run in 0..runs {
            match self.host_kill() {
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
                    self.r.host_kill_samples += lat.len();
                    if let (Some(p50), Some(p99)) = (p50, p99) {
                        self.r.host_kill_p50.push(Ok(p50));
                        self.r.host_kill_p99.push(Ok(p99));
                    }
                }
                Err(f) => {
                    eprintln!("  run {}/{runs}: {f}", run + 1);
                    self.r.host_kill_p50.push(Err(f.clone()));
                    self.r.host_kill_p99.push(Err(f));
                }
            }
        }
    }
}
