//! Workers that fail and processes that are killed: panics up to the
//! restart intensity (flat and nested), a OneForAll restart across
//! processes, and chaos (random SIGKILLs in a larger tree, which must heal).

/// The chaos tree: root → 3 supervisors → 2 sub-supervisors each; every
/// supervisor has 3 workers that run until stopped.
mod chaos_tree {
    /// 10 supervisors, each with one worker host.
    pub(crate) const PROCESSES: usize = 20;

    /// The paths of the 10 supervisors: the root's children are `w0..w2`,
    /// then `s3..s5`; theirs are `w0..w2`, then `s3`, `s4`.
    pub(crate) fn supervisors() -> Vec<String> {
        let mut paths = vec!["root".to_owned()];
        for i in 3..6 {
            let mid = format!("root/s{i}");
            paths.push(mid.clone());
            for j in 3..5 {
                paths.push(format!("{mid}/s{j}"));
            }
        }
        paths
    }

    /// The 30 worker names.
    pub(crate) fn workers() -> Vec<String> {
        supervisors()
            .iter()
            .flat_map(|sup| (0..3).map(move |w| format!("{sup}/w{w}")))
            .collect()
    }
}

pub(crate) mod scenario {
    use std::time::Duration;

    use supertrees::{
        BackoffPolicy, BoxFuture, Intensity, RestartPolicy, Restartable, Strategy, Supertree,
        Supervisor, Worker,
    };

    use super::chaos_tree;
    use crate::scenario::{report, Forever};

    /// Prints `start <name> <pid>` and panics; `Always`, no backoff.
    struct Panicker {
        name: String,
    }

    impl Worker for Panicker {
        fn init(&self) -> BoxFuture {
            let name = self.name.clone();
            Box::pin(async move {
                println!("start {name} {}", std::process::id());
                panic!("boom in {name}");
            })
        }
    }

    impl Restartable for Panicker {
        fn restart_policy(&self) -> RestartPolicy {
            RestartPolicy::Always
        }
        fn backoff_policy(&self) -> BackoffPolicy {
            BackoffPolicy::immediate()
        }
    }

    pub(crate) fn panic_intensity() {
        let tree = Supertree::new()
            .with_intensity(Intensity::new(5, Duration::from_secs(10)))
            .add_worker(Panicker {
                name: "root/w0".to_owned(),
            });
        report(tree.start());
    }

    pub(crate) fn panic_intensity_nested() {
        let tree = Supertree::new()
            .with_intensity(Intensity::new(2, Duration::from_secs(10)))
            .add_supervisor(|s| {
                s.with_intensity(Intensity::new(3, Duration::from_secs(10)))
                    .with_restart_policy(RestartPolicy::Always)
                    .with_backoff_policy(BackoffPolicy::immediate())
                    .add_worker(Panicker {
                        name: "root/s0/w0".to_owned(),
                    })
            });
        report(tree.start());
    }

    /// Prints `start <name> <pid>`, sleeps 100 ms, and panics; `Once`.
    struct FailsLater {
        name: String,
    }

    impl Worker for FailsLater {
        fn init(&self) -> BoxFuture {
            let name = self.name.clone();
            Box::pin(async move {
                println!("start {name} {}", std::process::id());
                tokio::time::sleep(Duration::from_millis(100)).await;
                panic!("{name} fails after 100 ms");
            })
        }
    }

    impl Restartable for FailsLater {
        fn restart_policy(&self) -> RestartPolicy {
            RestartPolicy::Once
        }
        fn backoff_policy(&self) -> BackoffPolicy {
            BackoffPolicy::immediate()
        }
    }

    /// OneForAll across processes: worker `root/w0`, supervisor `root/s1`
    /// (one worker), worker `root/w2` that fails once after 100 ms.
    pub(crate) fn panic_one_for_all_mix() {
        report(
            Supertree::new()
                .with_strategy(Strategy::OneForAll)
                .add_worker(Forever::new("root/w0"))
                .add_supervisor(|s| s.add_worker(Forever::new("root/s1/w0")))
                .add_worker(FailsLater {
                    name: "root/w2".to_owned(),
                })
                .start(),
        );
    }

    /// See [`super::chaos_tree`].
    pub(crate) fn chaos() {
        fn workers(mut s: Supervisor, path: &str) -> Supervisor {
            for w in 0..3 {
                s = s.add_worker(Forever::new(format!("{path}/w{w}")));
            }
            s
        }
        let mut tree = Supertree::new();
        for w in 0..3 {
            tree = tree.add_worker(Forever::new(format!("root/w{w}")));
        }
        for i in 3..6 {
            tree = tree.add_supervisor(move |s| {
                let path = format!("root/s{i}");
                let mut s = workers(s, &path);
                for j in 3..5 {
                    let sub = format!("{path}/s{j}");
                    s = s.add_supervisor(move |s| workers(s, &sub));
                }
                s
            });
        }
        debug_assert_eq!(chaos_tree::workers().len(), 30);
        report(tree.start());
    }
}

pub(crate) mod drive {
    use std::time::{Duration, Instant};

    use nix::sys::signal::Signal;

    use super::chaos_tree;
    use crate::drive::{
        events, expect_all_dropped, expect_count, expect_exit_code, expect_prefix_once, wait_up,
        TreeState,
    };
    use crate::runner::{Rng, Run};

    fn worker_starts(run: &Run, worker: &str) -> usize {
        events(&run.stdout(), worker).iter().filter(|e| e.0).count()
    }

    pub(crate) fn panic_intensity(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        expect_prefix_once(
            run,
            "returned Err IntensityExceeded path=root max_restarts=5 within=10s:",
        )?;
        // At most 5 restarts: the worker runs 6 times.
        let starts = worker_starts(run, "root/w0");
        if starts != 6 {
            return Err(format!(
                "the panicking worker ran {starts} times; expected 1 + 5 restarts = 6"
            ));
        }
        Ok(())
    }

    pub(crate) fn panic_intensity_nested(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        expect_prefix_once(
            run,
            "returned Err IntensityExceeded path=root max_restarts=2 within=10s:",
        )?;
        // The nested supervisor runs its worker 1 + 3 times, then gives up;
        // the root restarts it twice, then gives up: 3 × 4 runs.
        let starts = worker_starts(run, "root/s0/w0");
        if starts != 12 {
            return Err(format!(
                "the panicking worker ran {starts} times; expected 3 supervisor runs × 4 = 12"
            ));
        }
        Ok(())
    }

    /// See [`super::scenario::panic_one_for_all_mix`].
    pub(crate) fn panic_one_for_all_mix(run: &mut Run) -> Result<(), String> {
        let all = ["root/w0", "root/s1/w0", "root/w2"];
        // root + host, root/s1 + host.
        wait_up(run, 4, &["root/w0", "root/s1/w0"])?;
        run.wait_for(
            "the group restart after root/w2 failed",
            |run| match worker_starts(run, "root/w2") {
                2 => Ok(()),
                n => Err(format!("root/w2 started {n} time(s)")),
            },
        )?;
        wait_up(run, 4, &["root/w0", "root/s1/w0"])?;
        let lines = run.stdout();
        let order: Vec<String> = lines
            .iter()
            .filter(|l| l.starts_with("start ") || l.starts_with("dropped "))
            .map(|l| {
                l.rsplit_once(' ')
                    .map_or(l.clone(), |(head, _)| head.to_owned())
            })
            .collect();
        // Stops go one at a time in reverse order: root/s1 (a process) is
        // stopped, and its worker dropped, before root/w0. Starts are issued
        // in order but run in different processes, so only their count is
        // observable (ordered starts across processes need readiness).
        let first_drop = order.iter().position(|l| l.starts_with("dropped "));
        let Some(first_drop) = first_drop else {
            return Err(format!(
                "no worker was dropped by the group restart: {order:?}"
            ));
        };
        let drops: Vec<&str> = order[first_drop..first_drop + 2.min(order.len() - first_drop)]
            .iter()
            .map(String::as_str)
            .collect();
        if drops != ["dropped root/s1/w0", "dropped root/w0"] {
            return Err(format!(
                "expected root/s1/w0 then root/w0 to be dropped, got {order:?}"
            ));
        }
        let mut before: Vec<&str> = order[..first_drop].iter().map(String::as_str).collect();
        let mut after: Vec<&str> = order[first_drop + 2..].iter().map(String::as_str).collect();
        before.sort_unstable();
        after.sort_unstable();
        let starts = ["start root/s1/w0", "start root/w0", "start root/w2"];
        if before != starts || after != starts {
            return Err(format!(
                "expected all three to start before and after the group restart, got {order:?}"
            ));
        }
        for w in &all[..2] {
            if worker_starts(run, w) != 2 {
                return Err(format!("{w} should have started exactly twice"));
            }
        }
        run.note("OneForAll stopped the supervisor process and the worker in reverse order and restarted all in order".to_owned());
        stop_root_ok(run)
    }

    fn stop_root_ok(run: &mut Run) -> Result<(), String> {
        run.signal_root(Signal::SIGTERM)?;
        expect_exit_code(run, 0)?;
        expect_count(run, "returned Ok", 1)
    }

    pub(crate) fn chaos(run: &mut Run) -> Result<(), String> {
        const KILLS: usize = 100;
        let workers = chaos_tree::workers();
        wait_up(run, chaos_tree::PROCESSES, &workers)?;
        let initial = TreeState::observe(run, &workers);
        let mut rng = Rng::from_env_or_time("SUPERTREES_CHAOS_SEED");
        run.note(format!(
            "chaos seed {} (set SUPERTREES_CHAOS_SEED to repeat)",
            rng.seed()
        ));
        let root = run.pid();
        let me = std::process::id() as i32;
        let mut killed = 0;
        for _ in 0..KILLS {
            if run.poll_exit().is_some() {
                return Err(format!(
                    "the root exited during the chaos, after {killed} kills"
                ));
            }
            let candidates: Vec<i32> = run
                .group()
                .iter()
                .filter(|p| p.pid != root && p.state != 'Z' && p.ppid != me)
                .map(|p| p.pid)
                .collect();
            if !candidates.is_empty() {
                let victim = candidates[rng.below(candidates.len())];
                if run.signal(victim, Signal::SIGKILL).is_ok() {
                    killed += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        let settle = Instant::now();
        let mut state = TreeState::observe(run, &workers);
        while !state.healthy(initial.live.len()) && settle.elapsed() < Duration::from_secs(2) {
            if run.poll_exit().is_some() {
                return Err(format!("the root exited after the chaos ({killed} kills)"));
            }
            std::thread::sleep(Duration::from_millis(20));
            state = TreeState::observe(run, &workers);
        }
        if !state.healthy(initial.live.len()) || state.starts < initial.starts {
            return Err(format!(
                "{killed} SIGKILLs; 2 s later the tree has not healed (expected {} processes): {}",
                initial.live.len(),
                state.describe()
            ));
        }
        run.note(format!(
            "{killed} SIGKILLs; healed {:?} after the last ({} worker starts in all)",
            settle.elapsed(),
            state.starts
        ));
        let sent = Instant::now();
        run.signal_root(Signal::SIGTERM)?;
        expect_exit_code(run, 0)?;
        run.note(format!(
            "the root exited {:?} after SIGTERM",
            sent.elapsed()
        ));
        expect_count(run, "returned Ok", 1)?;
        expect_all_dropped(&run.stdout(), &workers)
    }
}
