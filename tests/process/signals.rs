//! Signals and orderly shutdown: SIGKILL, SIGTERM and SIGINT to the root
//! of a small tree, SIGTERM to a worker host, a stop while a worker restarts
//! in a tight loop, and a shutdown timeout that must kill a stuck host.

/// The small tree of the signal scenarios: two levels of supervisors, six
/// workers that run until stopped.
mod small {
    /// Processes: root + host, and for `root/s1` and `root/s2` each: the
    /// supervisor, its host, its sub-supervisor and that one's host.
    pub(crate) const PROCESSES: usize = 10;

    /// Every worker of the tree, in start order.
    pub(crate) const WORKERS: [&str; 6] = [
        "root/w0",
        "root/s1/w0",
        "root/s1/s1/w0",
        "root/s2/w0",
        "root/s2/s1/w0",
        "root/w3",
    ];

    /// The order in which an orderly stop drops the workers' futures: every
    /// supervisor stops its children one at a time, in reverse start order.
    pub(crate) const STOP_ORDER: [&str; 6] = [
        "root/w3",
        "root/s2/s1/w0",
        "root/s2/w0",
        "root/s1/s1/w0",
        "root/s1/w0",
        "root/w0",
    ];
}

pub(crate) mod scenario {
    use std::time::Duration;

    use supertrees::{
        BoxFuture, RestartPolicy, Restartable, Shutdown, Supertree, Supervisor, Worker,
    };

    use crate::scenario::{report, Echo, Forever};

    /// See [`super::small`].
    pub(crate) fn small_tree() {
        let sub = |s: Supervisor, path: &str| {
            s.add_worker(Forever::new(format!("{path}/w0")))
                .add_supervisor(|s| s.add_worker(Forever::new(format!("{path}/s1/w0"))))
        };
        let tree = Supertree::new()
            .add_worker(Forever::new("root/w0"))
            .add_supervisor(|s| sub(s, "root/s1"))
            .add_supervisor(|s| sub(s, "root/s2"))
            .add_worker(Forever::new("root/w3"));
        report(tree.start());
    }

    pub(crate) fn term_host_drops_futures() {
        report(Supertree::new().add_worker(Forever::new("root/w0")).start());
    }

    /// A worker that returns at once, restarted at once without end (in
    /// place, by its host), beside one that runs until stopped.
    pub(crate) fn busy_restarts_stop() {
        report(
            Supertree::new()
                .add_supervisor(|s| {
                    s.add_worker(Forever::new("root/s0/w0"))
                        .add_worker(Echo::new("root/s0/w1", RestartPolicy::Always))
                })
                .start(),
        );
    }

    /// Blocks its thread (never yields) once started, so it can not be
    /// dropped; prints `start <name> <pid>` first.
    struct Blocker;

    impl Worker for Blocker {
        fn init(&self) -> BoxFuture {
            Box::pin(async move {
                println!("start root/s0/w0 {}", std::process::id());
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                }
            })
        }
    }

    impl Restartable for Blocker {
        fn shutdown(&self) -> Shutdown {
            Shutdown::Timeout(Duration::from_millis(300))
        }
    }

    /// A worker with `Shutdown::Timeout(300 ms)` that can not be stopped
    /// nor dropped: after 300 ms its host is told to drop it, and after the
    /// further drop grace (1 s) the host is killed.
    pub(crate) fn shutdown_timeout_kills() {
        report(
            Supertree::new()
                .add_supervisor(|s| s.add_worker(Blocker))
                .start(),
        );
    }
}

pub(crate) mod drive {
    use std::time::{Duration, Instant};

    use nix::sys::signal::Signal;

    use super::small;
    use crate::drive::{events, expect_all_dropped, expect_count, expect_exit_code, wait_up};
    use crate::runner::{Proc, Run};

    pub(crate) fn kill_root(run: &mut Run) -> Result<(), String> {
        wait_up(run, small::PROCESSES, &small::WORKERS)?;
        let killed_at = Instant::now();
        run.signal_root(Signal::SIGKILL)?;
        let status = run.reap_root()?;
        if status.code().is_some() {
            return Err(format!(
                "expected the root to die by SIGKILL, got {}",
                crate::runner::describe(status)
            ));
        }
        let left = run.wait_group_empty(Duration::from_secs(1));
        let took = killed_at.elapsed();
        if !left.is_empty() {
            return Err(format!(
                "{} process(es) of the tree still there {took:?} after SIGKILL of the root: {:?}",
                left.len(),
                left.iter().map(Proc::short).collect::<Vec<_>>()
            ));
        }
        run.note(format!(
            "the whole tree was gone {took:?} after SIGKILL of the root"
        ));
        Ok(())
    }

    fn stop_root(run: &mut Run, signal: Signal) -> Result<(), String> {
        wait_up(run, small::PROCESSES, &small::WORKERS)?;
        let before = run.stdout().len();
        let sent = Instant::now();
        run.signal_root(signal)?;
        expect_exit_code(run, 0)?;
        run.note(format!(
            "the root exited {:?} after {signal}",
            sent.elapsed()
        ));
        expect_count(run, "returned Ok", 1)?;
        let lines = run.stdout();
        expect_all_dropped(&lines, &small::WORKERS)?;
        let order: Vec<&str> = lines[before..]
            .iter()
            .filter_map(|l| l.strip_prefix("dropped "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        if order != small::STOP_ORDER {
            return Err(format!(
                "workers were stopped in the order {order:?}; expected reverse start order {:?}",
                small::STOP_ORDER
            ));
        }
        Ok(())
    }

    pub(crate) fn term_root(run: &mut Run) -> Result<(), String> {
        stop_root(run, Signal::SIGTERM)
    }

    pub(crate) fn int_root(run: &mut Run) -> Result<(), String> {
        stop_root(run, Signal::SIGINT)
    }

    pub(crate) fn term_host_drops_futures(run: &mut Run) -> Result<(), String> {
        const W: &str = "root/w0";
        wait_up(run, 2, &[W])?;
        let host = match events(&run.stdout(), W).last() {
            Some(&(true, pid)) => pid,
            other => return Err(format!("no start line for {W}: {other:?}")),
        };
        run.signal(host, Signal::SIGTERM)?;
        run.wait_for("the future to be dropped in the SIGTERMed host", |run| {
            if events(&run.stdout(), W).contains(&(false, host)) {
                Ok(())
            } else {
                Err(format!("no 'dropped {W} {host}' line"))
            }
        })?;
        let new_host = run.wait_for(
            "the worker to start again in a new host",
            |run| match events(&run.stdout(), W).last() {
                Some(&(true, pid)) if pid != host => Ok(pid),
                other => Err(format!("last event of {W}: {other:?}")),
            },
        )?;
        wait_up(run, 2, &[W])?;
        run.note(format!(
            "host {host} dropped the future on SIGTERM; restarted in host {new_host}"
        ));
        run.signal_root(Signal::SIGTERM)?;
        expect_exit_code(run, 0)?;
        expect_count(run, "returned Ok", 1)?;
        expect_count(run, &format!("dropped {W} {new_host}"), 1)
    }

    /// A host whose worker restarts in a tight loop still obeys its
    /// supervisor: SIGTERM to the root stops the tree at once, not after the
    /// 5 s shutdown timeout that would kill a host that ignores commands.
    pub(crate) fn busy_restarts_stop(run: &mut Run) -> Result<(), String> {
        run.wait_for("the busy worker to have run 1000 times", |run| {
            match run.count(|l| l == "run root/s0/w1") {
                n if n >= 1000 => Ok(()),
                n => Err(format!("{n} runs")),
            }
        })?;
        run.signal_root(Signal::SIGTERM)?;
        let asked = Instant::now();
        expect_exit_code(run, 0)?;
        let took = asked.elapsed();
        if took > Duration::from_secs(1) {
            return Err(format!("the tree took {took:?} to stop"));
        }
        expect_all_dropped(&run.stdout(), &["root/s0/w0"])?;
        if run.stderr_count(|l| l.contains("did not stop in time")) > 0 {
            return Err("a host had to be killed".to_owned());
        }
        run.note(format!(
            "stopped {took:?} after SIGTERM while a worker restarted in a tight loop"
        ));
        Ok(())
    }

    /// See [`super::scenario::shutdown_timeout_kills`].
    pub(crate) fn shutdown_timeout_kills(run: &mut Run) -> Result<(), String> {
        wait_up(run, 3, &["root/s0/w0"])?;
        let sent = Instant::now();
        run.signal_root(Signal::SIGTERM)?;
        expect_exit_code(run, 0)?;
        let took = sent.elapsed();
        if took < Duration::from_millis(300) || took > Duration::from_secs(3) {
            return Err(format!(
                "the root exited {took:?} after SIGTERM; expected the 300 ms shutdown timeout to pass first, then a SIGKILL"
            ));
        }
        run.note(format!(
            "the stuck worker's host was killed; root exited {took:?} after SIGTERM"
        ));
        expect_count(run, "returned Ok", 1)
    }
}
