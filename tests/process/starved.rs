//! Starved is not hung, and busy is not starved.
//!
//! * `watchdog_starved`: a watched subtree whose processes are runnable but
//!   get next to no CPU (a cgroup v1 `cpu` quota of a quarter CPU, handed
//!   out as 125 ms every 500 ms, shared with three CPU hogs: the group is
//!   throttled for most of each 500 ms) is not killed as `hung`. The whole
//!   tree is starved for 6 s, then the root is moved out for 6 s more: its
//!   judgement of its starved child supervisor is then on time, and the
//!   scheduler's word is what saves it.
//! * `watchdog_starved_still_hung`: under a quarter CPU too (25 ms every
//!   100 ms), a worker that blocks its host's thread is caught with the
//!   whole tree starved; then the root and the judging supervisor are
//!   moved out, and a SIGSTOPped supervisor is caught by a judge on time.
//!   Both within 2 × the period (asserted: 3 × the period). While a group
//!   is throttled, a thread of a hung process that woke waits for a CPU
//!   like any other, and its process is judged starved until the
//!   throttling ends: hence the kernel's default 100 ms periods here
//!   (measured with the 500 ms periods: a blocked host killed ~500 ms
//!   after it blocked).
//! * `watchdog_busy_host`, on an idle machine (no cgroup): a worker that
//!   spins on its host's thread (on a CPU, silent) is hung.
//!
//! The runner makes the cgroup, moves the scenario's root into it before
//! the root forks anything (the scenario waits for that), so the whole
//! tree is in it, starts the hogs in it, and removes it all afterwards.
//! Where no cgroup can be made (not root, no cgroup v1 `cpu` hierarchy),
//! the scenario says `skipped:` and the runner notes it.

/// Set in the environment of this binary to make it a CPU hog (see
/// [`hog`]).
pub(crate) const HOG_VAR: &str = "SUPERTREES_HOG";

/// The part of the cgroup's name that the scenario looks for.
const CGROUP_PREFIX: &str = "supertrees-starved-";

/// Spins on a CPU until killed (by the runner; or when the runner dies; or
/// after two minutes at most).
pub(crate) fn hog() -> ! {
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    let until = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut n: u64 = 0;
    while std::time::Instant::now() < until {
        for _ in 0..100_000 {
            n = std::hint::black_box(n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
    }
    std::process::exit(0)
}

pub(crate) mod scenario {
    use std::time::{Duration, Instant};

    use supertrees::{RestartPolicy, Supertree};

    use crate::observe::now_ms;
    use crate::scenario::{events, lenient, not_root, report, Life};

    const PERIOD: Duration = Duration::from_millis(200);

    /// Whether this process is in the runner's cpu cgroup: waits up to 5 s
    /// for the runner to move it there; if it can not be, says it skips.
    fn in_starved_cgroup() -> bool {
        if not_root("making cgroups needs root") {
            return false;
        }
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            let cgroups = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
            let moved = cgroups.lines().any(|l| {
                let mut fields = l.splitn(3, ':');
                let controllers = fields.nth(1).unwrap_or_default();
                let path = fields.next().unwrap_or_default();
                controllers.split(',').any(|c| c == "cpu") && path.contains(super::CGROUP_PREFIX)
            });
            if moved {
                println!("in the starved cgroup");
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        println!("skipped: the runner did not move this process into a cpu cgroup (see its note)");
        false
    }

    /// Prints `idle <name> started at <ms>`, then waits until stopped.
    fn idle(name: &'static str) -> Life {
        let mut idle = Life::new(move || {
            Box::pin(async move {
                println!("idle {name} started at {}", now_ms());
                std::future::pending::<()>().await;
            })
        });
        idle.restart = RestartPolicy::Always;
        idle
    }

    /// An idle watched subtree (a supervisor with three idle workers and a
    /// child supervisor with two), starved of CPU until the runner stops
    /// the tree.
    pub(crate) fn starved() {
        if !in_starved_cgroup() {
            return;
        }
        report(
            events(
                Supertree::new()
                    .with_intensity(lenient())
                    .add_supervisor(|s| {
                        s.with_watchdog(PERIOD)
                            .with_intensity(lenient())
                            .add_worker(idle("a"))
                            .add_worker(idle("b"))
                            .add_worker(idle("c"))
                            .add_supervisor(|s| {
                                s.with_intensity(lenient())
                                    .add_worker(idle("d"))
                                    .add_worker(idle("e"))
                            })
                    }),
            )
            .start(),
        );
    }

    /// On an idle machine (no cgroup): a worker that spins on its host's
    /// thread (its first run, 300 ms after it started), never blocking.
    pub(crate) fn busy_host() {
        let marker = std::env::temp_dir().join(format!("supertrees-busy-{}", std::process::id()));
        let spun = marker.clone();
        let mut spinner = Life::new(move || {
            let marker = marker.clone();
            Box::pin(async move {
                println!("start {} at {}", std::process::id(), now_ms());
                if std::fs::File::create_new(&marker).is_ok() {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    println!("spinning at {}", now_ms());
                    let until = Instant::now() + Duration::from_secs(60);
                    while Instant::now() < until {
                        std::hint::spin_loop();
                    }
                }
                std::future::pending::<()>().await;
            })
        });
        spinner.restart = RestartPolicy::Always;
        report(
            events(
                Supertree::new().add_supervisor(|s| s.with_watchdog(PERIOD).add_worker(spinner)),
            )
            .start(),
        );
        let _ = std::fs::remove_file(spun);
    }

    fn marker() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("supertrees-starved-blocked-{}", std::process::id()))
    }

    /// Under the same starvation: a worker that blocks its host's thread
    /// (its first run, two seconds after it started) and a child supervisor
    /// that the runner SIGSTOPs.
    pub(crate) fn still_hung() {
        if !in_starved_cgroup() {
            return;
        }
        let marker = marker();
        let mut blocker = Life::new(move || {
            let marker = marker.clone();
            Box::pin(async move {
                println!("start {} at {}", std::process::id(), now_ms());
                if std::fs::File::create_new(&marker).is_ok() {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    println!("blocking at {}", now_ms());
                    std::thread::sleep(Duration::from_secs(60));
                }
                std::future::pending::<()>().await;
            })
        });
        blocker.restart = RestartPolicy::Always;
        report(
            events(
                Supertree::new()
                    .with_intensity(lenient())
                    .add_supervisor(|s| {
                        s.with_watchdog(PERIOD)
                            .with_intensity(lenient())
                            .add_worker(blocker)
                            .add_supervisor(|s| s.with_intensity(lenient()).add_worker(idle("f")))
                    }),
            )
            .start(),
        );
        let _ = std::fs::remove_file(self::marker());
    }
}

pub(crate) mod drive {
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use nix::sys::signal::Signal;

    use crate::drive::{expect_exit_code, expect_prefix_once, pid_in, wait_line};
    use crate::observe::now_ms;
    use crate::runner::Run;

    /// A quarter CPU as 125 ms per 500 ms: the group is throttled for up
    /// to ~440 ms at a time (with 100 ms periods, the longest silence of a
    /// starved idle supervisor here stays under the 200 ms watchdog period).
    const LONG_THROTTLES: Quota = Quota {
        quota_us: 125_000,
        period_us: 500_000,
    };
    /// A quarter CPU as 25 ms per 100 ms, the kernel's default period.
    const SHORT_THROTTLES: Quota = Quota {
        quota_us: 25_000,
        period_us: 100_000,
    };

    /// A CFS quota: `quota_us` of CPU time per `period_us`.
    #[derive(Clone, Copy)]
    struct Quota {
        quota_us: u64,
        period_us: u64,
    }
    /// CPU hogs beside the tree in its cgroup.
    const HOGS: usize = 3;
    /// How long the idle tree is starved, with its root and without.
    const STARVED_FOR: Duration = Duration::from_secs(6);
    /// The bound on detection under starvation: 3 × the 200 ms period
    /// (2 × the period, and the judge's own wait for a CPU).
    const HUNG_WITHIN_MS: u128 = 600;
    /// The bound on detection on an idle machine: 2 × the 200 ms period.
    const BUSY_WITHIN_MS: u128 = 400;

    /// A cgroup v1 `cpu` group with a quota, the tree's root and CPU hogs
    /// in it; all removed when dropped.
    struct Starver {
        dir: PathBuf,
        /// Where what is left in it is moved back to: the runner's own
        /// cgroup.
        parent: PathBuf,
        hogs: Vec<Child>,
        quota: Quota,
    }

    impl Starver {
        /// Makes the group, moves `root` (still single-threaded, waiting
        /// to be moved) into it and starts the hogs in it.
        fn new(root: i32, quota: Quota) -> Result<Self, String> {
            let mount = ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"]
                .into_iter()
                .map(Path::new)
                .find(|m| m.join("cpu.cfs_quota_us").exists())
                .ok_or("no cgroup v1 cpu hierarchy at /sys/fs/cgroup/cpu")?;
            let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
            let own = own
                .lines()
                .find_map(|l| {
                    let mut fields = l.splitn(3, ':');
                    let controllers = fields.nth(1)?;
                    let path = fields.next()?;
                    controllers
                        .split(',')
                        .any(|c| c == "cpu")
                        .then(|| path.trim_start_matches('/').to_owned())
                })
                .ok_or("this process is in no cgroup v1 cpu group")?;
            let parent = mount.join(own);
            let dir = parent.join(format!("{}{root}", super::CGROUP_PREFIX));
            std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
            let mut starver = Self {
                dir,
                parent,
                hogs: Vec::new(),
                quota,
            };
            starver.write("cpu.cfs_period_us", quota.period_us)?;
            starver.write("cpu.cfs_quota_us", quota.quota_us)?;
            starver.write("cgroup.procs", root)?;
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            for _ in 0..HOGS {
                let hog = Command::new(&exe)
                    .env(super::HOG_VAR, "1")
                    .env_remove(crate::SCENARIO_VAR)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| format!("a hog: {e}"))?;
                let pid = hog.id();
                starver.hogs.push(hog);
                starver.write("cgroup.procs", pid)?;
            }
            Ok(starver)
        }

        /// Moves process `pid` back to the runner's own group.
        fn release(&self, pid: i32) -> Result<(), String> {
            let path = self.parent.join("cgroup.procs");
            std::fs::write(&path, pid.to_string())
                .map_err(|e| format!("moving {pid} to {}: {e}", path.display()))
        }

        /// Ends the starvation before the tree is stopped (a starved tree
        /// takes seconds to stop, one subtree after another): the hogs
        /// are killed and the quota lifted.
        fn relieve(&mut self) -> Result<(), String> {
            for hog in &mut self.hogs {
                let _ = hog.kill();
                let _ = hog.wait();
            }
            self.hogs.clear();
            self.write("cpu.cfs_quota_us", -1)
        }

        /// The group's `cpu.stat` (how often and how long it was
        /// throttled), on one line.
        fn stat(&self) -> String {
            std::fs::read_to_string(self.dir.join("cpu.stat"))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.starts_with("nr_") || l.starts_with("throttled_time"))
                .collect::<Vec<_>>()
                .join(", ")
        }

        fn write(&self, file: &str, value: impl std::fmt::Display) -> Result<(), String> {
            let path = self.dir.join(file);
            std::fs::write(&path, value.to_string())
                .map_err(|e| format!("writing {value} to {}: {e}", path.display()))
        }

        fn describe(&self) -> String {
            format!(
                "{} ({} µs per {} µs, {HOGS} hogs)",
                self.dir.display(),
                self.quota.quota_us,
                self.quota.period_us
            )
        }
    }

    impl Drop for Starver {
        fn drop(&mut self) {
            for hog in &mut self.hogs {
                let _ = hog.kill();
                let _ = hog.wait();
            }
            // Whatever is left (a tree that failed its check) goes back to
            // the runner's group, then the group goes.
            for _ in 0..100 {
                let left =
                    std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
                for pid in left.lines() {
                    let _ = std::fs::write(self.parent.join("cgroup.procs"), pid);
                }
                if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            eprintln!("could not remove {}", self.dir.display());
        }
    }

    /// Makes the starved cgroup for the scenario, or notes why not and
    /// checks that the scenario skipped: `None` then.
    fn starve(run: &mut Run, quota: Quota) -> Result<Option<Starver>, String> {
        let starver = if nix::unistd::geteuid().is_root() {
            Starver::new(run.pid(), quota)
        } else {
            Err("not root".to_owned())
        };
        let first = run.wait_for("the scenario in its cgroup, or a skip", |run| {
            run.stdout()
                .into_iter()
                .find(|l| l.starts_with("skipped: ") || l == "in the starved cgroup")
                .ok_or_else(|| "not yet".to_owned())
        })?;
        match (starver, first.starts_with("skipped: ")) {
            (Ok(starver), false) => Ok(Some(starver)),
            (Err(why), false) => Err(format!(
                "the scenario runs in the cgroup, but starving it failed: {why}"
            )),
            (starver, true) => {
                expect_exit_code(run, 0)?;
                let why = starver.err().unwrap_or_default();
                run.note(format!("{first} ({why})"));
                Ok(None)
            }
        }
    }

    fn stop_tree(run: &mut Run) -> Result<(), String> {
        run.signal_root(Signal::SIGTERM)?;
        expect_exit_code(run, 0)?;
        expect_prefix_once(run, "returned Ok").map(drop)
    }

    fn hung_events(run: &Run) -> Vec<String> {
        run.stdout()
            .into_iter()
            .filter(|l| l.starts_with("event ") && l.contains(": hung"))
            .collect()
    }

    /// Waits `how_long` (or until the root exits).
    fn keep_running(run: &mut Run, how_long: Duration) {
        let until = Instant::now() + how_long;
        while Instant::now() < until && run.poll_exit().is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The whole tree starved, then all of it but the root (whose
    /// judgement of its starved child supervisor is then on time).
    pub(crate) fn starved(run: &mut Run) -> Result<(), String> {
        let Some(mut starver) = starve(run, LONG_THROTTLES)? else {
            return Ok(());
        };
        run.wait_for("the five idle workers", |run| {
            match run.count(|l| l.starts_with("idle ")) {
                n if n >= 5 => Ok(()),
                n => Err(format!("{n} started")),
            }
        })?;
        keep_running(run, STARVED_FOR);
        let with_root = hung_events(run).len();
        starver.release(run.pid())?;
        keep_running(run, STARVED_FOR);
        let hung = hung_events(run);
        let starved = run.stderr_count(|l| l.contains("starved of CPU"));
        let stat = starver.stat();
        starver.relieve()?;
        stop_tree(run)?;
        let cgroup = starver.describe();
        drop(starver);
        if !hung.is_empty() {
            return Err(format!(
                "{} process(es) killed as hung starved in {cgroup} ({with_root} with the root in it, \
                 {} without; {stat}): {hung:#?}",
                hung.len(),
                hung.len() - with_root
            ));
        }
        run.note(format!(
            "no hung kill in 2 × {STARVED_FOR:?} in {cgroup} ({stat}); \
             {starved} process(es) judged starved (logged once each)"
        ));
        Ok(())
    }

    /// The number after `at ` in `line`.
    fn at(line: &str) -> Result<u128, String> {
        line.rsplit("at ")
            .next()
            .and_then(|t| t.trim().parse().ok())
            .ok_or_else(|| format!("no time in {line:?}"))
    }

    /// Whether process `pid` is dead (a zombie, or gone).
    fn dead(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
            stat.rfind(')')
                .and_then(|i| stat.get(i + 1..))
                .and_then(|rest| rest.split_whitespace().next())
                .is_none_or(|state| state == "Z" || state == "X")
        })
    }

    /// Polls every 2 ms until `pid` is dead: when it died (ms).
    fn death_of(run: &mut Run, pid: i32, what: &str) -> Result<u128, String> {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if dead(pid) {
                return Ok(now_ms());
            }
            if run.poll_exit().is_some() {
                return Err(format!("the root exited while waiting for {what} to die"));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Err(format!("{what} (pid {pid}) still alive 10 s on"))
    }

    /// Checks a time to a hung kill against [`HUNG_WITHIN_MS`].
    fn within(took: u128, figures: &str) -> Result<(), String> {
        if took > HUNG_WITHIN_MS {
            Err(format!(
                "a hung kill took {took} ms, starved; at most {HUNG_WITHIN_MS} ms \
                 (3 × the 200 ms period): {figures}"
            ))
        } else {
            Ok(())
        }
    }

    pub(crate) fn still_hung(run: &mut Run) -> Result<(), String> {
        let Some(mut starver) = starve(run, SHORT_THROTTLES)? else {
            return Ok(());
        };
        let judge = pid_in(&wait_line(run, "event root/0 (pid ")?)?;
        let host = started_host(run)?;
        // The blocked worker's host.
        let blocked = at(&wait_line(run, "blocking at ")?)?;
        let blocked_took = death_of(run, host, "the blocked host")?.saturating_sub(blocked);
        wait_hung(
            run,
            "the host's hung event",
            &format!("event root/0/host (pid {host})"),
        )?;
        // The stopped supervisor, judged by a supervisor (root/0) now out
        // of the group, whose own wait for a CPU is then not measured.
        starver.release(run.pid())?;
        starver.release(judge)?;
        let supervisor = pid_in(&wait_line(run, "event root/0/1 (pid ")?)?;
        let stopped = now_ms();
        run.signal(supervisor, Signal::SIGSTOP)?;
        let stopped_took =
            death_of(run, supervisor, "the stopped supervisor")?.saturating_sub(stopped);
        wait_hung(run, "the supervisor's hung event", "event root/0/1: hung")?;
        let stat = starver.stat();
        starver.relieve()?;
        stop_tree(run)?;
        let cgroup = starver.describe();
        drop(starver);
        let figures = format!(
            "a blocked host killed {blocked_took} ms after it blocked (the whole tree starved), \
             a SIGSTOPped supervisor {stopped_took} ms after the signal (its judge not starved)"
        );
        within(blocked_took, &figures)?;
        within(stopped_took, &figures)?;
        run.note(format!("starved in {cgroup} ({stat}): {figures}"));
        Ok(())
    }

    /// The pid of the worker host that printed `start <pid>`.
    fn started_host(run: &mut Run) -> Result<i32, String> {
        let host = wait_line(run, "start ")?;
        host.split(' ')
            .nth(1)
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("no pid in {host:?}"))
    }

    /// Waits for `what`: a `hung` event starting with `prefix`.
    fn wait_hung(run: &mut Run, what: &str, prefix: &str) -> Result<(), String> {
        run.wait_for(what, |run| {
            let hung = hung_events(run);
            hung.iter()
                .any(|l| l.starts_with(prefix))
                .then_some(())
                .ok_or_else(|| format!("hung events: {hung:?}"))
        })
    }

    /// A host whose worker spins (on a CPU, silent) is hung: killed within
    /// 2 × the period, the scheduler's word notwithstanding.
    pub(crate) fn busy_host(run: &mut Run) -> Result<(), String> {
        let host = started_host(run)?;
        let spinning = at(&wait_line(run, "spinning at ")?)?;
        let took = death_of(run, host, "the spinning host")?.saturating_sub(spinning);
        wait_hung(
            run,
            "the host's hung event",
            &format!("event root/0/host (pid {host})"),
        )?;
        let why = run.stderr_count(|l| l.contains("killing it") && l.contains("not starved"));
        stop_tree(run)?;
        if took > BUSY_WITHIN_MS {
            return Err(format!(
                "a spinning host killed {took} ms after it began to spin; at most {BUSY_WITHIN_MS} ms"
            ));
        }
        if why != 1 {
            return Err(format!(
                "expected one `killing it` line judging the host not starved, saw {why}"
            ));
        }
        run.note(format!(
            "a spinning host killed {took} ms after it began to spin"
        ));
        Ok(())
    }
}
