//! Hardening: a machine where forks keep failing never sees a busy loop and
//! still obeys SIGTERM; the engine's own failures are retried after a floor
//! delay; a root that is PID 1 reaps the orphans it inherits; a supervisor
//! waits for its child supervisors' stops instead of racing their timeouts;
//! SIGHUP and SIGQUIT stop the tree in order.

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

    use supertrees::{BackoffPolicy, BoxFuture, Restartable, Shutdown, Spawner, Supertree, Worker};

    use super::common::Blocker;
    use crate::observe::{now_ms, test_dir};
    use crate::scenario::{report, Forever};

    /// Switches this (root) process to an unprivileged uid of its own with
    /// `RLIMIT_NPROC` 2: the root and one child supervisor fit, every other
    /// fork fails with `EAGAIN`. Prints `limited <uid>` or `skip <why>`.
    fn limit_processes() -> bool {
        use nix::sys::resource::{setrlimit, Resource};
        use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
        if !Uid::effective().is_root() {
            println!("skip not root: can not switch to an unprivileged uid");
            return false;
        }
        // A uid no other process uses (RLIMIT_NPROC counts the processes
        // of the real uid), unique per scenario process.
        let id = 200_000 + std::process::id();
        let dropped = setgroups(&[])
            .and_then(|()| setresgid(Gid::from_raw(id), Gid::from_raw(id), Gid::from_raw(id)))
            .and_then(|()| setresuid(Uid::from_raw(id), Uid::from_raw(id), Uid::from_raw(id)))
            .and_then(|()| setrlimit(Resource::RLIMIT_NPROC, 2, 2));
        match dropped {
            Ok(()) => {
                println!("limited {id}");
                true
            }
            Err(err) => {
                println!("skip could not drop privileges ({err})");
                false
            }
        }
    }

    /// A worker and a supervisor with a worker, all restarted at once
    /// (`BackoffPolicy::immediate()`), where no worker host can be forked.
    /// Events are printed as `event <event> @<ms>`.
    pub(crate) fn fork_fails() {
        if !limit_processes() {
            return;
        }
        let tree = Supertree::new()
            .add_worker(Forever::new("root/w0"))
            .add_supervisor(|s| {
                s.with_backoff_policy(BackoffPolicy::immediate())
                    .add_worker(Forever::new("root/s1/w0"))
            })
            .on_event(|event| println!("event {event} @{}", now_ms()));
        report(tree.start());
    }

    /// Lowers `RLIMIT_NOFILE` so that the root can make its own pipes (its
    /// signal pipe and its event pipe: 4 descriptors) and not one more:
    /// every channel to a child then fails with `EMFILE`. Prints
    /// `limited <n>` or `skip <why>`.
    fn limit_files() -> bool {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        let open: Vec<i32> = match std::fs::read_dir("/proc/self/fd") {
            Ok(dir) => dir
                .filter_map(Result::ok)
                // Not the descriptor of this listing, closed after it.
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .map_or(true, |to| !to.to_string_lossy().ends_with("/fd"))
                })
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect(),
            Err(err) => {
                println!("skip can not list open descriptors ({err})");
                return false;
            }
        };
        // The limit leaves exactly 4 free descriptor numbers below it.
        let mut free = 0;
        let mut limit = 0u64;
        while free < 4 {
            if !open.contains(&(limit as i32)) {
                free += 1;
            }
            limit += 1;
        }
        let hard = getrlimit(Resource::RLIMIT_NOFILE).map_or(limit, |(_, hard)| hard);
        match setrlimit(Resource::RLIMIT_NOFILE, limit, hard) {
            Ok(()) => {
                println!("limited {limit}");
                true
            }
            Err(err) => {
                println!("skip could not lower RLIMIT_NOFILE ({err})");
                false
            }
        }
    }

    /// The tree of [`fork_fails`], where no pipe can be made for a child.
    pub(crate) fn pipe_fails() {
        if !limit_files() {
            return;
        }
        let tree = Supertree::new()
            .add_worker(Forever::new("root/w0"))
            .add_supervisor(|s| {
                s.with_backoff_policy(BackoffPolicy::immediate())
                    .add_worker(Forever::new("root/s1/w0"))
            })
            .on_event(|event| println!("event {event} @{}", now_ms()));
        report(tree.start());
    }

    /// A spawner whose runtime can never be built: `block_on` panics before
    /// it polls anything, as Tokio does when it can not spawn its threads.
    #[derive(Clone)]
    struct BrokenRuntime;

    impl Spawner for BrokenRuntime {
        fn block_on(&self, _fut: BoxFuture) {
            panic!("this runtime can not be built (on purpose)");
        }
        fn spawn(&self, _fut: BoxFuture) {}
    }

    /// A worker whose host never gets a runtime, restarted at once by its
    /// policy: the engine must still wait its floor.
    pub(crate) fn host_setup_fails() {
        let tree = Supertree::new()
            .add_worker(Forever::new("root/w0"))
            .on_event(|event| println!("event {event} @{}", now_ms()));
        report(tree.start_with(BrokenRuntime, supertrees::tokio::TokioTimer::new()));
    }

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
                        .add_worker(Blocker300)
                })
                .on_event(|event| println!("event {event} @{}", now_ms()))
                .start(),
        );
    }

    /// A [`Blocker`] whose own `shutdown()` is 300 ms: dropped then (which
    /// it can not be), its host is killed after the further drop grace.
    struct Blocker300;

    impl Worker for Blocker300 {
        fn init(&self) -> BoxFuture {
            Blocker("root/0/0").init()
        }
    }

    impl Restartable for Blocker300 {
        fn shutdown(&self) -> Shutdown {
            Shutdown::Timeout(Duration::from_millis(300))
        }
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

    /// CPU time used so far by the live processes of the scenario's group:
    /// from `/proc/<pid>/schedstat` (nanoseconds), else from the clock ticks
    /// (utime + stime) of `/proc/<pid>/stat`.
    fn cpu_time(run: &mut Run) -> Duration {
        let ticks_per_second = match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
            Ok(Some(n)) if n > 0 => n as u64,
            _ => 100,
        };
        let of = |pid: i32| -> Option<Duration> {
            if let Ok(sched) = std::fs::read_to_string(format!("/proc/{pid}/schedstat")) {
                if let Some(ns) = sched.split_whitespace().next().and_then(|n| n.parse().ok()) {
                    return Some(Duration::from_nanos(ns));
                }
            }
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let rest: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
            let utime: u64 = rest.get(11)?.parse().ok()?;
            let stime: u64 = rest.get(12)?.parse().ok()?;
            Some(Duration::from_millis(
                (utime + stime) * 1000 / ticks_per_second,
            ))
        };
        run.group().iter().filter_map(|p| of(p.pid)).sum()
    }

    /// The restart delays of `path`'s `Exited` events, in order.
    fn restart_delays(run: &Run, path: &str) -> Vec<String> {
        let prefix = format!("event {path}: ");
        run.stdout()
            .iter()
            .filter_map(|l| l.strip_prefix(&prefix))
            .filter_map(|l| l.split("; restarting after ").nth(1))
            .filter_map(|l| l.split(' ').next())
            .map(str::to_owned)
            .collect()
    }

    /// Checks that the first delays of `path` grow from the 10 ms floor.
    fn expect_floor(run: &Run, path: &str) -> Result<Vec<String>, String> {
        let delays = restart_delays(run, path);
        let expected = ["10ms", "20ms", "40ms", "80ms"];
        if delays.len() < expected.len() || delays[..expected.len()] != expected {
            return Err(format!(
                "{path}: restart delays {delays:?}, expected them to start with {expected:?}"
            ));
        }
        Ok(delays)
    }

    /// See [`super::scenario::fork_fails`].
    pub(crate) fn fork_fails(run: &mut Run) -> Result<(), String> {
        busy(run, "forks", &["root/0", "root/1/0"])
    }

    /// See [`super::scenario::pipe_fails`].
    pub(crate) fn pipe_fails(run: &mut Run) -> Result<(), String> {
        busy(run, "pipes", &["root/0", "root/1"])
    }

    /// While `what` keep failing: the CPU time and log lines of the tree
    /// over a second, how soon SIGTERM stops it, and the floor under the
    /// restart delays of `paths`.
    fn busy(run: &mut Run, what: &str, paths: &[&str]) -> Result<(), String> {
        if setup_line(run, "limited ")?.is_none() {
            return expect_exit_code(run, 0);
        }
        run.wait_for("the first failure to be logged", |run| {
            match run.stderr_count(|l| l.contains("will retry")) {
                0 => Err("no failure logged".to_owned()),
                _ => Ok(()),
            }
        })?;
        let (cpu0, lines0, t0) = (cpu_time(run), run.stderr_count(|_| true), Instant::now());
        std::thread::sleep(Duration::from_secs(1));
        let (cpu1, lines1) = (cpu_time(run), run.stderr_count(|_| true));
        let secs = t0.elapsed().as_secs_f64();
        let cpu = cpu1.saturating_sub(cpu0).as_secs_f64() / secs * 100.0;
        let lines = (lines1.saturating_sub(lines0)) as f64 / secs;
        run.note(format!(
            "during the first second of failing {what}: the tree used {cpu:.2}% CPU and logged {lines:.0} lines/s"
        ));
        let latency = stop_latency(run, Signal::SIGTERM, Duration::from_secs(3));
        match &latency {
            Ok(took) => run.note(format!("SIGTERM stopped the tree in {took:?}")),
            Err(err) => run.note(err.clone()),
        }
        let latency = latency?;
        if cpu > 20.0 || lines > 20.0 {
            return Err(format!(
                "busy loop: {cpu:.0}% CPU, {lines:.0} log lines/s while {what} fail"
            ));
        }
        if latency > Duration::from_millis(250) {
            return Err(format!("SIGTERM took {latency:?} to stop the tree"));
        }
        for path in paths {
            let delays = expect_floor(run, path)?;
            run.note(format!("restart delays of {path}: {delays:?}"));
        }
        expect_exit_code(run, 0)?;
        expect_count(run, "returned Ok", 1)
    }

    /// See [`super::scenario::host_setup_fails`].
    pub(crate) fn host_setup_fails(run: &mut Run) -> Result<(), String> {
        run.wait_for("five restarts of root/0", |run| {
            match restart_delays(run, "root/0").len() {
                n if n >= 5 => Ok(()),
                n => Err(format!("{n} restarts")),
            }
        })?;
        let delays = expect_floor(run, "root/0")?;
        let exits: Vec<String> = run
            .stdout()
            .into_iter()
            .filter(|l| l.starts_with("event root/0: "))
            .collect();
        if exits
            .iter()
            .any(|l| !l.contains("could not be set up: its process failed before it ran"))
        {
            return Err(format!(
                "the host's setup failure must be told as such: {exits:?}"
            ));
        }
        if run.stderr_count(|l| l.contains("exited with code 101")) > 0 {
            return Err("an exit code was read as a setup failure".to_owned());
        }
        let took = stop_latency(run, Signal::SIGTERM, Duration::from_secs(3))?;
        run.note(format!(
            "a host whose runtime can not be built: restarted after {delays:?}; SIGTERM stopped the tree in {took:?}"
        ));
        expect_exit_code(run, 0)?;
        expect_count(run, "returned Ok", 1)
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
        // A child of PID 1 may also be an orphaned worker host about to die
        // of its parent's death: only a process with children of its own
        // (a supervisor, with its host) is a victim, and one that is gone
        // by the time it is signalled is no round.
        let mut killed = 0;
        let mut attempts = 0;
        while killed < 20 {
            attempts += 1;
            if attempts > 100 {
                return Err(format!(
                    "only {killed} supervisors could be killed in 100 attempts"
                ));
            }
            let group = run.group();
            let (live, _) = children(run);
            let Some(victim) = live
                .iter()
                .map(|p| p.pid)
                .find(|&pid| group.iter().any(|q| q.ppid == pid && q.state != 'Z'))
            else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            if run.signal(victim, Signal::SIGKILL).is_err() {
                continue;
            }
            killed += 1;
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
