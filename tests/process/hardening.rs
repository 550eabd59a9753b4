//! Hardening: a supervisor waits for its child supervisors' stops instead
//! of racing their timeouts; SIGHUP and SIGQUIT stop the tree in order.

/// Workers and trees shared by the scenarios below.
mod common {
    use std::time::Duration;

    use supertrees::{BoxFuture, Restartable, Worker};

    /// Blocks its thread (never yields) once started, so it can not be
    /// stopped, only killed with its host; prints `start <name> <pid>`.
    pub(crate) struct Blocker(pub(crate) &'static str);

    impl Worker for Blocker {
        fn init(&self) -> BoxFuture {
            let name = self.0;
            Box::pin(async move {
                println!("start {name} {}", std::process::id());
                loop {
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        }
    }

    impl Restartable for Blocker {}
}

pub(crate) mod scenario {
    use std::time::Duration;

    use supertrees::{BoxFuture, Restartable, Shutdown, Supertree, Worker};

    use super::common::Blocker;
    use crate::observe::{now_ms, test_dir};
    use crate::scenario::{report, Forever};

    /// root → supervisor → a worker that ignores stops; the inner
    /// supervisor kills its host after 300 ms, the root has a shorter
    /// timeout (100 ms) of its own for its workers. Events printed.
    pub(crate) fn nested_shutdown() {
        let ms = Duration::from_millis;
        report(
            Supertree::new()
                .with_shutdown(Shutdown::Timeout(ms(100)))
                .add_supervisor(|s| {
                    s.with_shutdown(Shutdown::Timeout(ms(300)))
                        .add_worker(Blocker("root/0/0"))
                })
                .on_event(|event| println!("event {event} @{}", now_ms()))
                .start(),
        );
    }

    /// The same tree with every shutdown timeout at its default (5 s).
    pub(crate) fn nested_shutdown_default() {
        report(
            Supertree::new()
                .add_supervisor(|s| s.add_worker(Blocker("root/0/0")))
                .on_event(|event| println!("event {event} @{}", now_ms()))
                .start(),
        );
    }

    /// A worker that runs until stopped; `Forever` under another name.
    struct Quiet(&'static str);

    impl Worker for Quiet {
        fn init(&self) -> BoxFuture {
            Forever::new(self.0).init()
        }
    }

    impl Restartable for Quiet {}

    /// Three workers over two processes below the root, with a status
    /// socket in the test directory.
    pub(crate) fn hangup() {
        report(
            Supertree::new()
                .add_worker(Quiet("root/w0"))
                .add_supervisor(|s| s.add_worker(Quiet("root/s1/w0")))
                .add_worker(Quiet("root/w2"))
                .status_socket(test_dir().join("status.sock"))
                .start(),
        );
    }
}

pub(crate) mod drive {
    use std::time::{Duration, Instant};

    use nix::sys::signal::{killpg, Signal};
    use nix::unistd::Pid;

    use crate::drive::{expect_all_dropped, expect_count, expect_exit_code, wait_up};
    use crate::runner::Run;

    /// Sends `signal` to the root and waits up to `limit` for it to exit.
    fn stop_latency(run: &mut Run, signal: Signal, limit: Duration) -> Result<Duration, String> {
        run.signal_root(signal)?;
        let sent = Instant::now();
        while sent.elapsed() < limit {
            if run.poll_exit().is_some() {
                return Ok(sent.elapsed());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Err(format!("the root had not exited {limit:?} after {signal}"))
    }

    /// The first stdout line that starts with `prefix` and contains `word`.
    fn event_of(run: &Run, prefix: &str, word: &str) -> Option<String> {
        run.stdout()
            .into_iter()
            .find(|l| l.starts_with(prefix) && l.contains(word))
    }

    fn nested(run: &mut Run, min: Duration, max: Duration) -> Result<(), String> {
        wait_up(run, 3, &["root/0/0"])?;
        let took = stop_latency(run, Signal::SIGTERM, max)?;
        if took < min {
            return Err(format!(
                "the root exited {took:?} after SIGTERM, before the inner supervisor's timeout"
            ));
        }
        expect_exit_code(run, 0)?;
        expect_count(run, "returned Ok", 1)?;
        let sup = event_of(run, "event root/0: ", "; not restarted");
        if !sup
            .as_ref()
            .is_some_and(|l| l.contains(": stopped; not restarted"))
        {
            return Err(format!(
                "the root must wait for its child supervisor, not kill it: {sup:?}"
            ));
        }
        let host = event_of(run, "event root/0/host (", "killed");
        if !host
            .as_ref()
            .is_some_and(|l| l.contains("killed by signal SIGKILL"))
        {
            return Err(format!(
                "the inner supervisor must have killed its stuck host: {host:?}"
            ));
        }
        if run
            .stderr_count(|l| l.contains("did not stop in time") && l.contains("supervisor=root "))
            > 0
        {
            return Err("the root killed a child that was stopping".to_owned());
        }
        run.note(format!(
            "the inner supervisor killed its stuck host and stopped; the root exited {took:?} after SIGTERM"
        ));
        Ok(())
    }

    /// See [`super::scenario::nested_shutdown`].
    pub(crate) fn nested_shutdown(run: &mut Run) -> Result<(), String> {
        nested(run, Duration::from_millis(300), Duration::from_secs(3))
    }

    /// See [`super::scenario::nested_shutdown_default`].
    pub(crate) fn nested_shutdown_default(run: &mut Run) -> Result<(), String> {
        nested(run, Duration::from_secs(5), Duration::from_millis(7_500))
    }

    const WORKERS: [&str; 3] = ["root/w0", "root/s1/w0", "root/w2"];

    /// Sends `signal` to the root (or, `group`, to every process of the
    /// tree, as a terminal does); the tree must stop in order.
    fn hangup(run: &mut Run, signal: Signal, group: bool) -> Result<(), String> {
        // Root, its host, the supervisor and its host.
        wait_up(run, 4, &WORKERS)?;
        let socket = crate::observe::dir_of(run.pid()).join("status.sock");
        if !socket.exists() {
            return Err(format!("no status socket at {}", socket.display()));
        }
        let before = run.stdout().len();
        let sent = Instant::now();
        if group {
            killpg(Pid::from_raw(run.pid()), signal).map_err(|e| format!("killpg: {e}"))?;
        } else {
            run.signal_root(signal)?;
        }
        expect_exit_code(run, 0)?;
        let took = sent.elapsed();
        expect_count(run, "returned Ok", 1)?;
        let lines = run.stdout();
        expect_all_dropped(&lines, &WORKERS)?;
        let order: Vec<&str> = lines[before..]
            .iter()
            .filter_map(|l| l.strip_prefix("dropped "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        if order != ["root/w2", "root/s1/w0", "root/w0"] {
            return Err(format!("workers stopped in the order {order:?}"));
        }
        if socket.exists() {
            return Err(format!(
                "the status socket {} was left behind",
                socket.display()
            ));
        }
        let to = if group { "the whole group" } else { "the root" };
        run.note(format!(
            "{signal} to {to}: stopped in order in {took:?}, status socket removed"
        ));
        Ok(())
    }

    pub(crate) fn hup_root(run: &mut Run) -> Result<(), String> {
        hangup(run, Signal::SIGHUP, false)
    }

    pub(crate) fn quit_root(run: &mut Run) -> Result<(), String> {
        hangup(run, Signal::SIGQUIT, false)
    }

    pub(crate) fn hup_group(run: &mut Run) -> Result<(), String> {
        hangup(run, Signal::SIGHUP, true)
    }

    pub(crate) fn quit_group(run: &mut Run) -> Result<(), String> {
        hangup(run, Signal::SIGQUIT, true)
    }
}
