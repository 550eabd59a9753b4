//! Hardening: a root that is PID 1 reaps the orphans it inherits; a
//! supervisor waits for its child supervisors' stops instead of racing
//! their timeouts; SIGHUP and SIGQUIT stop the tree in order.

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

    use supertrees::{BackoffPolicy, BoxFuture, Restartable, Shutdown, Supertree, Worker};

    use super::common::Blocker;
    use crate::observe::{now_ms, test_dir};
    use crate::scenario::{report, Forever};

    /// When this process is PID 1 (of a PID namespace): a tree of two
    /// supervisors, each with a worker, all restarted at once. Otherwise:
    /// enters a new PID namespace and runs this same scenario as its PID 1,
    /// printing `pid1 <pid>` (its pid here) and the line it returned; or
    /// `skip <why>`.
    pub(crate) fn pid1() {
        if std::process::id() == 1 {
            let sup = |name: &'static str| {
                move |s: supertrees::Supervisor| {
                    s.with_backoff_policy(BackoffPolicy::immediate())
                        .add_worker(Forever::new(name))
                }
            };
            report(
                Supertree::new()
                    .add_supervisor(sup("root/s0/w0"))
                    .add_supervisor(sup("root/s1/w0"))
                    .start(),
            );
            return;
        }
        if let Err(err) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID) {
            println!("skip can not enter a new PID namespace ({err})");
            return;
        }
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(err) => {
                println!("skip can not find this binary ({err})");
                return;
            }
        };
        // The first process forked after unshare is PID 1 of the namespace.
        let mut child = match std::process::Command::new(exe).spawn() {
            Ok(child) => child,
            Err(err) => {
                println!("skip can not start PID 1 ({err})");
                return;
            }
        };
        println!("pid1 {}", child.id());
        match child.wait() {
            Ok(status) => {
                println!("pid1 exited {:?}", status.code());
                std::process::exit(status.code().unwrap_or(1));
            }
            Err(err) => {
                println!("pid1 lost ({err})");
                std::process::exit(1);
            }
        }
    }

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
    use crate::runner::{Proc, Run};

    /// Waits for the scenario's `<prefix> ...` or `skip ...` line; `None`
    /// after noting the skip.
    fn setup_line(run: &mut Run, prefix: &str) -> Result<Option<String>, String> {
        let line = run.wait_for(&format!("a {prefix:?} or 'skip' line"), |run| {
            run.stdout()
                .into_iter()
                .find(|l| l.starts_with(prefix) || l.starts_with("skip "))
                .ok_or_else(|| "not yet".to_owned())
        })?;
        match line.strip_prefix("skip ") {
            Some(why) => {
                run.note(format!("skipped: {why}"));
                Ok(None)
            }
            None => Ok(Some(line)),
        }
    }

    /// See [`super::scenario::pid1`].
    pub(crate) fn pid1(run: &mut Run) -> Result<(), String> {
        let Some(line) = setup_line(run, "pid1 ")? else {
            return expect_exit_code(run, 0);
        };
        let pid1: i32 = line
            .strip_prefix("pid1 ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("bad line {line:?}"))?;
        let result = pid1_checks(run, pid1);
        if result.is_err() && run.poll_exit().is_none() {
            // The runner's wind-down signals the outer process only.
            let _ = run.signal(pid1, Signal::SIGTERM);
        }
        result
    }

    fn pid1_checks(run: &mut Run, pid1: i32) -> Result<(), String> {
        let children = |run: &mut Run| -> (Vec<Proc>, Vec<Proc>) {
            run.group()
                .into_iter()
                .filter(|p| p.ppid == pid1)
                .partition(|p| p.state != 'Z')
        };
        // The outer scenario process, PID 1, two supervisors and their
        // hosts (the workers print pids of the namespace: not checked).
        let up = |run: &mut Run| {
            run.wait_for("the tree in the namespace to be up", |run| {
                let group = run.group();
                let live = group.iter().filter(|p| p.state != 'Z').count();
                let (sups, _) = children(run);
                if live == 6 && sups.len() == 2 {
                    Ok(())
                } else {
                    Err(format!("{live} live processes, {} supervisors", sups.len()))
                }
            })
        };
        up(run)?;
        for round in 0..20 {
            let (live, _) = children(run);
            let Some(victim) = live.first().map(|p| p.pid) else {
                return Err(format!("round {round}: PID 1 has no child supervisor"));
            };
            run.signal(victim, Signal::SIGKILL)?;
            run.wait_for("the killed supervisor to be replaced", |run| {
                let (live, _) = children(run);
                if live.len() == 2 && live.iter().all(|p| p.pid != victim) {
                    Ok(())
                } else {
                    Err(format!("{} live children of PID 1", live.len()))
                }
            })?;
        }
        up(run)?;
        let until = Instant::now() + Duration::from_secs(1);
        let zombies = loop {
            let (_, zombies) = children(run);
            if zombies.is_empty() || Instant::now() >= until {
                break zombies;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        if !zombies.is_empty() {
            return Err(format!(
                "{} zombie(s) left with PID 1 after 20 SIGKILLs of child supervisors: {:?}",
                zombies.len(),
                zombies.iter().map(Proc::short).collect::<Vec<_>>()
            ));
        }
        run.note(
            "20 SIGKILLs of child supervisors under a root that is PID 1: no zombie left"
                .to_owned(),
        );
        run.signal(pid1, Signal::SIGTERM)?;
        expect_exit_code(run, 0)?;
        expect_count(run, "returned Ok", 1)
    }

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
