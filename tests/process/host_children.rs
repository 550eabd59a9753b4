//! What workers start ends with their host: processes a worker spawns are
//! in its host's process group, which its supervisor kills when the host
//! ends, whether it was SIGKILLed or stopped in order.

pub(crate) mod scenario {
    use supertrees::{BackoffPolicy, BoxFuture, Restartable, Supertree, Worker};

    use crate::scenario::report;

    /// Spawns `sleep 300`, prints `child <sleep pid> <host pid>`, and runs
    /// until stopped (keeping the child's handle, never waiting for it).
    struct Spawner;

    impl Worker for Spawner {
        fn init(&self) -> BoxFuture {
            Box::pin(async {
                let child = std::process::Command::new("sleep").arg("300").spawn();
                match child {
                    Ok(child) => {
                        println!("child {} {}", child.id(), std::process::id());
                        std::future::pending::<()>().await;
                        drop(child);
                    }
                    Err(err) => println!("spawn failed: {err}"),
                }
            })
        }
    }

    impl Restartable for Spawner {
        fn backoff_policy(&self) -> BackoffPolicy {
            BackoffPolicy::immediate()
        }
    }

    /// A worker that starts a process, below a supervisor.
    pub(crate) fn worker_children() {
        report(
            Supertree::new()
                .add_supervisor(|s| s.add_worker(Spawner))
                .start(),
        );
    }
}

pub(crate) mod drive {
    use std::time::Duration;

    use nix::sys::signal::Signal;

    use crate::runner::Run;

    /// `(sleep pid, host pid)` of every `child` line so far.
    fn children(run: &Run) -> Vec<(i32, i32)> {
        run.stdout()
            .iter()
            .filter_map(|l| {
                let mut words = l.strip_prefix("child ")?.split(' ');
                Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
            })
            .collect()
    }

    fn alive(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
    }

    pub(crate) fn worker_children(run: &mut Run) -> Result<(), String> {
        let (first, host) = run.wait_for("the worker to start a process", |run| {
            children(run)
                .first()
                .copied()
                .ok_or_else(|| "not yet".to_owned())
        })?;
        if !alive(first) {
            return Err(format!("the worker's process {first} is not running"));
        }
        run.signal(host, Signal::SIGKILL)?;
        run.wait_for("the SIGKILLed host's process to be gone", |_| {
            if alive(first) {
                Err(format!("process {first} still runs"))
            } else {
                Ok(())
            }
        })?;
        let (second, _) = run.wait_for("the restarted worker to start another", |run| {
            children(run)
                .get(1)
                .copied()
                .ok_or_else(|| "not yet".to_owned())
        })?;
        std::thread::sleep(Duration::from_millis(20));
        run.signal_root(Signal::SIGTERM)?;
        let status = run.wait_exit()?;
        if status.code() != Some(0) || !run.stdout().iter().any(|l| l == "returned Ok") {
            return Err(format!("the tree did not stop cleanly: {status:?}"));
        }
        if alive(second) {
            return Err(format!(
                "process {second}, started by a worker, outlived the orderly stop"
            ));
        }
        run.note(format!(
            "process {first} ended with its SIGKILLed host; {second} with the orderly stop"
        ));
        Ok(())
    }
}

/// A worker that panics as fast as it is restarted is logged at most once a
/// second, with a count of the panics not logged.
pub(crate) mod panic_log {
    pub(crate) mod scenario {
        use supertrees::{BackoffPolicy, BoxFuture, Restartable, Supertree, Worker};

        use crate::scenario::report;

        struct Panics;

        impl Worker for Panics {
            fn init(&self) -> BoxFuture {
                Box::pin(async { panic!("panics at once, every run") })
            }
        }

        impl Restartable for Panics {
            fn backoff_policy(&self) -> BackoffPolicy {
                BackoffPolicy::immediate()
            }
        }

        pub(crate) fn panic_flood() {
            // The default hook would print every panic: that is the
            // program's choice, not the engine's log.
            std::panic::set_hook(Box::new(|_| {}));
            report(Supertree::new().add_worker(Panics).start());
        }
    }

    pub(crate) mod drive {
        use std::time::Duration;

        use nix::sys::signal::Signal;

        use crate::runner::Run;

        pub(crate) fn panic_flood(run: &mut Run) -> Result<(), String> {
            std::thread::sleep(Duration::from_millis(1500));
            run.signal_root(Signal::SIGTERM)?;
            let status = run.wait_exit()?;
            if status.code() != Some(0) {
                return Err(format!("the tree did not stop cleanly: {status:?}"));
            }
            let lines = run.stderr_count(|l| l.contains("worker panicked"));
            let counted = run.stderr_count(|l| {
                l.contains("worker panicked")
                    && l.split("not_logged=").nth(1).is_some_and(|n| {
                        n.split_whitespace()
                            .next()
                            .and_then(|n| n.parse::<u64>().ok())
                            > Some(1000)
                    })
            });
            if lines == 0 || lines > 3 || counted == 0 {
                return Err(format!(
                    "expected 1 to 3 'worker panicked' lines in 1.5 s, one counting over 1000 held back; saw {lines} ({counted} counting)"
                ));
            }
            run.note(format!(
                "{lines} log lines for a worker panicking in a tight loop for 1.5 s"
            ));
            Ok(())
        }
    }
}
