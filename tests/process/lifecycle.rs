//! Worker lifecycle in processes: graceful stops through `stopping()`, a
//! worker that ignores it dropped after its `shutdown()`, subtasks
//! (`spawn()`), start timeouts, and panic messages in the event lines.

pub(crate) mod scenario {
    use std::time::{Duration, Instant};

    use supertrees::{Intensity, Readiness, RestartPolicy, Shutdown, Supertree};

    use crate::scenario::{report, Life};

    /// Panics after 100 ms, restarted: under an intensity of 0 the root
    /// gives up and stops its siblings.
    fn gives_up() -> Life {
        let mut life = Life::new(|| {
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                panic!("give up");
            })
        });
        life.restart = RestartPolicy::Always;
        life
    }

    fn events(tree: Supertree) -> Supertree {
        tree.on_event(|event| println!("event {event}"))
    }

    /// A worker that drains for 200 ms once asked to stop.
    pub(crate) fn drain() {
        let drains = Life::new(|| {
            Box::pin(async {
                supertrees::stopping().await;
                let asked = Instant::now();
                tokio::time::sleep(Duration::from_millis(200)).await;
                println!("drained after {} ms", asked.elapsed().as_millis());
            })
        });
        report(
            events(
                Supertree::new()
                    .with_intensity(Intensity::new(0, Duration::from_secs(10)))
                    .add_worker(drains)
                    .add_worker(gives_up()),
            )
            .start(),
        );
    }

    /// Prints how long after its start it was dropped.
    struct DropClock(Instant);

    impl Drop for DropClock {
        fn drop(&mut self) {
            println!("dropped after {} ms", self.0.elapsed().as_millis());
        }
    }

    /// A worker that calls `stopping()` but ignores it: dropped after its
    /// 300 ms `shutdown()`.
    pub(crate) fn ignores_stopping() {
        let mut ignores = Life::new(|| {
            Box::pin(async {
                let _clock = DropClock(Instant::now());
                let _ignored = supertrees::stopping();
                std::future::pending::<()>().await;
            })
        });
        ignores.shutdown = Shutdown::Timeout(Duration::from_millis(300));
        report(
            events(
                Supertree::new()
                    .with_intensity(Intensity::new(0, Duration::from_secs(10)))
                    .add_worker(ignores)
                    .add_worker(gives_up()),
            )
            .start(),
        );
    }

    /// A subtask that panics after 50 ms: its worker restarts (once).
    pub(crate) fn subtask_panic() {
        let mut parent = Life::new(|| {
            Box::pin(async {
                supertrees::spawn(async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    panic!("sub-boom-7");
                });
                std::future::pending::<()>().await;
            })
        });
        parent.restart = RestartPolicy::Once;
        report(events(Supertree::new().add_worker(parent)).start());
    }

    /// A `Notify` worker that never calls `ready()`, with a 200 ms start
    /// timeout: restarted once, then not.
    pub(crate) fn start_timeout() {
        let mut silent = Life::new(|| Box::pin(std::future::pending()));
        silent.readiness = Readiness::Notify;
        silent.start_timeout = Some(Duration::from_millis(200));
        silent.restart = RestartPolicy::Once;
        report(events(Supertree::new().add_worker(silent)).start());
    }

    /// `stopping()` handed to a task of the worker's runtime: called in
    /// the run, as `with_graceful_shutdown(supertrees::stopping())` does,
    /// it resolves; called when the task first polls it, as `async {
    /// supertrees::stopping().await }` does, it never does, and says so in
    /// the log, once however many tasks do it. Prints `serving`, then
    /// `resolved: ...` for each that resolves.
    pub(crate) fn stopping_handed_on() {
        let mut worker = Life::new(|| {
            Box::pin(async {
                let works = supertrees::stopping();
                tokio::spawn(async move {
                    works.await;
                    println!("resolved: called in the run");
                });
                for _ in 0..2 {
                    tokio::spawn(async {
                        supertrees::stopping().await;
                        println!("resolved: called in a task");
                    });
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                println!("serving");
                std::future::pending::<()>().await;
            })
        });
        worker.shutdown = Shutdown::Timeout(Duration::from_millis(300));
        report(Supertree::new().add_worker(worker).start());
    }
}

pub(crate) mod drive {
    use crate::drive::{expect_count, expect_exit_code, expect_prefix_once};
    use crate::runner::Run;

    /// The number in a line `<prefix><n> ms`.
    fn millis(run: &Run, prefix: &str) -> Result<u64, String> {
        let line = expect_prefix_once(run, prefix)?;
        line[prefix.len()..]
            .trim_end_matches(" ms")
            .parse()
            .map_err(|e| format!("bad line {line:?}: {e}"))
    }

    fn expect_event(run: &Run, path: &str, ends: &str, count: usize) -> Result<(), String> {
        // With the host's pid when its host restarted it in place.
        let (bare, with_pid) = (format!("event {path}:"), format!("event {path} (pid "));
        let seen =
            run.count(|l| (l.starts_with(&bare) || l.starts_with(&with_pid)) && l.ends_with(ends));
        if seen != count {
            return Err(format!(
                "expected {count} event line(s) of {path} ending {ends:?}, saw {seen}: {:#?}",
                run.stdout()
            ));
        }
        Ok(())
    }

    fn no_host_killed(run: &Run) -> Result<(), String> {
        if run.count(|l| l.contains("/host") && l.contains("SIGKILL")) > 0 {
            return Err(format!("a worker host was killed: {:#?}", run.stdout()));
        }
        Ok(())
    }

    pub(crate) fn drain(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        let took = millis(run, "drained after ")?;
        if !(200..1_000).contains(&took) {
            return Err(format!("the drain took {took} ms; expected 200 ms"));
        }
        expect_event(run, "root/0", ": stopped; not restarted", 1)?;
        expect_event(run, "root/1", ": panicked: give up; not restarted", 1)?;
        no_host_killed(run)?;
        expect_prefix_once(run, "returned Err IntensityExceeded").map(drop)
    }

    pub(crate) fn ignores_stopping(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        // Asked at ~100 ms, dropped 300 ms later.
        let after = millis(run, "dropped after ")?;
        if !(380..1_500).contains(&after) {
            return Err(format!(
                "dropped {after} ms after its start; expected ~400 ms (stop at 100 ms + its 300 ms shutdown)"
            ));
        }
        expect_event(run, "root/0", ": stopped; not restarted", 1)?;
        no_host_killed(run)?;
        expect_prefix_once(run, "returned Err IntensityExceeded").map(drop)
    }

    pub(crate) fn subtask_panic(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        expect_event(
            run,
            "root/0",
            ": panicked: sub-boom-7; restarting after 10ms",
            1,
        )?;
        expect_event(run, "root/0", ": panicked: sub-boom-7; not restarted", 1)?;
        expect_count(run, "returned Ok", 1)
    }

    pub(crate) fn start_timeout(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        expect_event(
            run,
            "root/0",
            ": not ready within 200ms; restarting after 10ms",
            1,
        )?;
        expect_event(run, "root/0", ": not ready within 200ms; not restarted", 1)?;
        no_host_killed(run)?;
        expect_count(run, "returned Ok", 1)
    }

    pub(crate) fn stopping_handed_on(run: &mut Run) -> Result<(), String> {
        crate::drive::wait_line(run, "serving")?;
        run.signal_root(nix::sys::signal::Signal::SIGTERM)?;
        expect_exit_code(run, 0)?;
        expect_count(run, "resolved: called in the run", 1)?;
        expect_count(run, "resolved: called in a task", 0)?;
        let warned = run.stderr_count(|l| {
            l.contains("WARN") && l.contains("outside a worker run") && l.contains("stopping()")
        });
        if warned != 1 {
            return Err(format!(
                "{warned} warning(s) about stopping() called outside a worker run; expected 1"
            ));
        }
        expect_count(run, "returned Ok", 1)
    }
}

/// `examples/echo.rs` (and its smol twin): echo, then a drain on SIGTERM
/// while a client is connected.
pub(crate) mod echo_example {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    use nix::sys::signal::Signal;

    use crate::drive::wait_line;
    use crate::runner::Run;

    pub(crate) fn drive(run: &mut Run) -> Result<(), String> {
        let line = wait_line(run, "listening on ")?;
        let addr = line.trim_start_matches("listening on ").trim().to_owned();
        let stream = TcpStream::connect(&addr).map_err(|e| format!("connect {addr}: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(stream);
        let echo = |reader: &mut BufReader<TcpStream>,
                    writer: &mut TcpStream,
                    text: &str|
         -> Result<(), String> {
            writer
                .write_all(format!("{text}\n").as_bytes())
                .map_err(|e| e.to_string())?;
            let mut got = String::new();
            reader.read_line(&mut got).map_err(|e| e.to_string())?;
            if got.trim_end() == text {
                Ok(())
            } else {
                Err(format!("sent {text:?}, got {got:?} back"))
            }
        };
        echo(&mut reader, &mut writer, "hello")?;
        // Asked to stop, the server stops accepting and drains: the open
        // connection is still served until the client closes it.
        run.signal_root(Signal::SIGTERM)?;
        wait_line(run, "draining 1 connection(s)")?;
        echo(&mut reader, &mut writer, "still served while draining")?;
        // The client closes: the drain ends.
        drop((reader, writer));
        wait_line(run, "drained")?;
        let status = run.wait_exit()?;
        if status.code() != Some(0) || !run.stdout().iter().any(|l| l == "stopped") {
            return Err(format!("the tree did not stop cleanly: {status:?}"));
        }
        run.note(format!(
            "echoed on {addr}, drained one connection on SIGTERM"
        ));
        Ok(())
    }
}
