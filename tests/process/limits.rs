//! Resource limits: forks that fail with `EAGAIN` and worker hosts that
//! can't build their runtime under a pids cgroup, retried (after the
//! engine's floor delay) until the runner lifts the limit.

pub(crate) mod scenario {
    use std::time::Duration;

    use supertrees::{BackoffPolicy, Supertree};

    use crate::scenario::{report, Forever};

    /// Runs a small tree inside a pids cgroup (v1) that first allows only
    /// the root (every fork fails with EAGAIN), then too few tasks for a
    /// Tokio runtime; the runner lifts the limit step by step. Prints
    /// `cgroup <dir>`, or `skip <why>` where no pids cgroup can be made.
    pub(crate) fn resource_limits() {
        let dir = format!("/sys/fs/cgroup/pids/supertrees-test-{}", std::process::id());
        let setup = std::fs::create_dir(&dir)
            .and_then(|()| std::fs::write(format!("{dir}/pids.max"), "1"))
            .and_then(|()| {
                std::fs::write(
                    format!("{dir}/cgroup.procs"),
                    std::process::id().to_string(),
                )
            });
        if let Err(err) = setup {
            println!("skip no writable pids cgroup ({err})");
            let _ = std::fs::remove_dir(&dir);
            return;
        }
        println!("cgroup {dir}");
        let ms = Duration::from_millis;
        let worker = Forever {
            name: "root/s0/w0".to_owned(),
            backoff: BackoffPolicy::new(ms(10), ms(40), Duration::from_secs(5), 2.0),
        };
        // A multi-thread runtime, whose worker threads the pids limit can
        // refuse: the default current-thread runtime spawns none.
        report(
            Supertree::new()
                .add_supervisor(|s| s.add_worker(worker))
                .start_with(
                    supertrees::tokio::TokioSpawner::multi_thread(),
                    supertrees::tokio::TokioTimer::new(),
                ),
        );
    }
}

pub(crate) mod drive {
    use std::time::Duration;

    use nix::sys::signal::Signal;

    use crate::drive::{expect_count, expect_exit_code, wait_up};
    use crate::runner::Run;

    /// See [`super::scenario::resource_limits`].
    pub(crate) fn resource_limits(run: &mut Run) -> Result<(), String> {
        const W: &str = "root/s0/w0";
        let dir = run.wait_for("the cgroup line", |run| {
            match run
                .stdout()
                .iter()
                .find(|l| l.starts_with("cgroup ") || l.starts_with("skip "))
            {
                Some(line) => Ok(line.clone()),
                None => Err("no 'cgroup' or 'skip' line yet".to_owned()),
            }
        })?;
        let Some(dir) = dir.strip_prefix("cgroup ").map(str::to_owned) else {
            run.note(format!("skipped: {dir}"));
            return expect_exit_code(run, 0);
        };
        let limit = |max: &str| {
            std::fs::write(format!("{dir}/pids.max"), max)
                .map_err(|e| format!("writing pids.max in {dir}: {e}"))
        };
        let result = (|| {
            run.wait_for("fork failures to be logged and retried", |run| {
                // One line, then a summary per second of the retries.
                let failed = run.stderr_count(|l| l.contains("fork failed; will retry"));
                let retried = run.stderr_count(|l| l.contains("failed this many more times"));
                if failed >= 1 && retried >= 1 {
                    Ok(())
                } else {
                    Err(format!(
                        "{failed} 'fork failed' log lines, {retried} summaries of retries"
                    ))
                }
            })?;
            // Root, supervisor and host fit; the first worker thread of the
            // host's Tokio multi-thread runtime does not (the host starts its
            // reader thread after its runtime). With room for one worker
            // thread but not two, Tokio 1.54 deadlocks while it unwinds from
            // the failed second spawn, so the limit leaves room for none.
            limit("3")?;
            run.wait_for(
                "a worker host that can not build its runtime to fail",
                |run| {
                    // Tokio panics when it can not spawn its worker threads;
                    // each host says so on its channel before it exits, and
                    // its supervisor retries it after the engine's floor.
                    let hosts = run.stderr_count(|l| l.contains("runtime did not run"));
                    let reported = run.stderr_count(|l| {
                        l.contains("worker host could not be set up")
                            || l.contains("failed this many more times")
                    });
                    if hosts >= 2 && reported >= 1 {
                        Ok(())
                    } else {
                        Err(format!(
                            "{hosts} hosts without a runtime, {reported} reports of it"
                        ))
                    }
                },
            )?;
            limit("max")?;
            wait_up(run, 3, &[W])?;
            run.note("fork EAGAIN and a runtime that could not be built were retried until the limit was lifted".to_owned());
            run.signal_root(Signal::SIGTERM)?;
            expect_exit_code(run, 0)?;
            expect_count(run, "returned Ok", 1)
        })();
        let _ = limit("max");
        let _ = run.wait_group_empty(Duration::from_secs(1));
        if let Err(err) = std::fs::remove_dir(&dir) {
            run.note(format!("could not remove {dir}: {err}"));
        }
        result
    }
}
