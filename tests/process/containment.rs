//! Containment: hang detection (`with_watchdog`) of a worker that blocks
//! its host's thread, of a SIGSTOPped worker host and of a SIGSTOPped
//! supervisor; a subtree running as another user (`with_user`), and the
//! error when that is not permitted; resource limits (`with_limits`).

pub(crate) mod scenario {
    use std::time::Duration;

    use supertrees::{Intensity, RestartPolicy, Supertree};

    use crate::observe::{now_ms, test_dir};
    use crate::scenario::{report, Life};

    const PERIOD: Duration = Duration::from_millis(200);

    fn events(tree: Supertree) -> Supertree {
        tree.on_event(|event| println!("event {event}"))
    }

    /// A worker that prints each start (with its host's pid); `block` makes
    /// its first run in the tree block its host's thread after 100 ms (a
    /// file marks that it did: a new host has a fresh copy of memory).
    fn probe(block: bool) -> Life {
        let marker =
            std::env::temp_dir().join(format!("supertrees-blocked-{}", std::process::id()));
        let mut probe = Life::new(move || {
            let marker = marker.clone();
            Box::pin(async move {
                println!("start {} at {}", std::process::id(), now_ms());
                if block && std::fs::File::create_new(&marker).is_ok() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    println!("blocking at {}", now_ms());
                    std::thread::sleep(Duration::from_secs(30));
                }
                std::future::pending::<()>().await;
            })
        });
        probe.restart = RestartPolicy::Always;
        probe
    }

    fn watched(worker: Life) -> Supertree {
        events(
            Supertree::new()
                .with_intensity(Intensity::new(10, Duration::from_secs(10)))
                .add_supervisor(|s| s.with_watchdog(PERIOD).add_worker(worker)),
        )
    }

    /// A worker blocks its host's thread: the host is killed as hung.
    pub(crate) fn watchdog_blocked_worker() {
        report(watched(probe(true)).start());
        let _ = std::fs::remove_file(
            std::env::temp_dir().join(format!("supertrees-blocked-{}", std::process::id())),
        );
    }

    /// The runner SIGSTOPs the host, or the supervisor.
    pub(crate) fn watchdog_stopped() {
        report(watched(probe(false)).start());
    }

    /// Prints the ids and privileges of its process.
    fn whoami() -> Life {
        Life::new(|| {
            Box::pin(async {
                let (r, e, s) = nix::unistd::getresuid().map_or((0, 0, 0), |u| {
                    (u.real.as_raw(), u.effective.as_raw(), u.saved.as_raw())
                });
                let (gr, ge, gs) = nix::unistd::getresgid().map_or((0, 0, 0), |g| {
                    (g.real.as_raw(), g.effective.as_raw(), g.saved.as_raw())
                });
                let groups = nix::unistd::getgroups().map_or(usize::MAX, |g| g.len());
                let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
                let no_new_privs = status
                    .lines()
                    .find_map(|l| l.strip_prefix("NoNewPrivs:"))
                    .map_or("?", str::trim)
                    .to_owned();
                println!("uids {r} {e} {s} gids {gr} {ge} {gs} groups {groups} no_new_privs {no_new_privs}");
                let kv = supertrees::mailbox::<u32>("root-box").expect("declared");
                let answer = kv.call::<u32>(41, Duration::from_secs(2)).await;
                println!("call across users: {answer:?}");
            })
        })
    }

    /// Prints its user and the memory cgroup it is in.
    fn cgroup_probe() -> Life {
        Life::new(|| {
            Box::pin(async {
                let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
                let memory = cgroup
                    .lines()
                    .find(|l| l.contains(":memory:"))
                    .unwrap_or("no memory cgroup");
                let in_tree =
                    memory.contains("/supertrees/") && memory.ends_with("/root-1-1/procs");
                println!(
                    "limited below the user: uid {} in its cgroup {in_tree}",
                    nix::unistd::getuid()
                );
            })
        })
    }

    /// Answers one call with its argument plus one.
    fn adder() -> Life {
        let mut adder = Life::new(|| {
            Box::pin(async {
                let mut inbox = supertrees::inbox::<u32>("root-box").expect("ours");
                if let Some(envelope) = inbox.recv().await {
                    let n = *envelope.message();
                    envelope.reply(n + 1);
                }
            })
        });
        adder.restart = RestartPolicy::Never;
        adder
    }

    /// A subtree running as nobody (65534): its ids, its groups, and a call
    /// to a mailbox of the root's, across the boundary.
    pub(crate) fn with_user() {
        if !nix::unistd::geteuid().is_root() {
            println!("skipped: switching users needs root");
            return;
        }
        report(
            events(
                Supertree::new()
                    .with_mailbox("root-box")
                    .add_worker(adder())
                    .add_supervisor(|s| {
                        s.with_user(65534, 65534)
                            .add_worker(whoami())
                            // Limited below the user: it enters its
                            // cgroup as nobody.
                            .add_supervisor(|s| {
                                s.with_limits(supertrees::Limits::new().memory(64 << 20))
                                    .add_worker(cgroup_probe())
                            })
                    }),
            )
            .start(),
        );
    }

    /// A limited supervisor below a user (`root/0/0/0`, below
    /// `with_user` `root/0/0`) whose work ends at once, so that its
    /// cgroup is removed when `root/0/0` ends for good; then `root/0`
    /// gives up (its worker `root/0/1` fails, 1.5 s in), and the root forks
    /// it again: the group is made again, and the supervisor must enter the
    /// new one as nobody, through a descriptor opened again by root.
    pub(crate) fn limits_user_made_again() {
        if !nix::unistd::geteuid().is_root() {
            println!("skipped: switching users needs root");
            return;
        }
        let probe = || {
            Life::new(|| {
                Box::pin(async {
                    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
                    let memory = cgroup
                        .lines()
                        .find(|l| l.contains(":memory:"))
                        .unwrap_or("no memory cgroup");
                    let in_tree =
                        memory.contains("/supertrees/") && memory.ends_with("/root-0-0-0/procs");
                    println!(
                        "limited below the user: uid {} in its cgroup {in_tree}",
                        nix::unistd::getuid()
                    );
                })
            })
        };
        // Its host exits with code 3: a failure, which `root/0` does not
        // tolerate.
        let mut failer = Life::new(|| {
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                println!("failing, to make root/0 give up");
                std::process::exit(3);
            })
        });
        failer.restart = RestartPolicy::Always;
        report(
            events(
                Supertree::new()
                    .with_intensity(Intensity::new(10, Duration::from_secs(10)))
                    .add_supervisor(|s| {
                        s.with_intensity(Intensity::new(0, Duration::from_secs(10)))
                            .add_supervisor(|s| {
                                s.with_user(65534, 65534).add_supervisor(|s| {
                                    s.with_limits(supertrees::Limits::new().memory(64 << 20))
                                        .add_worker(probe())
                                })
                            })
                            .add_worker(failer)
                    }),
            )
            .start(),
        );
    }

    /// Whether this scenario can make cgroups; if not, says it skips.
    fn can_make_cgroups() -> bool {
        let root = nix::unistd::geteuid().is_root();
        if !root {
            println!("skipped: making cgroups needs root (or a delegated cgroup)");
        }
        root
    }

    /// A subtree limited to 64 MiB whose worker leaks 8 MiB every 5 ms,
    /// and a sibling subtree with a 10 ms heartbeat.
    pub(crate) fn limits_oom() {
        if !can_make_cgroups() {
            return;
        }
        let mut leak = Life::new(|| {
            Box::pin(async {
                println!("leaker started in {}", std::process::id());
                let nofile =
                    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE);
                println!("nofile {nofile:?}");
                let mut kept: Vec<Vec<u8>> = Vec::new();
                loop {
                    // Touched, so that it is really in use.
                    kept.push(vec![1u8; 8 << 20]);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        });
        leak.restart = RestartPolicy::Always;
        let mut heart = Life::new(|| {
            Box::pin(async {
                loop {
                    println!("beat at {}", now_ms());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        });
        heart.restart = RestartPolicy::Always;
        report(
            events(
                Supertree::new()
                    .status_socket(test_dir().join("status.sock"))
                    .add_supervisor(|s| {
                        s.with_limits(
                            supertrees::Limits::new()
                                .memory(64 << 20)
                                .processes(64)
                                .open_files(256),
                        )
                        .add_worker(leak)
                    })
                    .add_supervisor(|s| s.add_worker(heart)),
            )
            .start(),
        );
    }

    /// Prints `idle started`, then waits until stopped.
    fn idle() -> Life {
        let mut idle = Life::new(|| {
            Box::pin(async {
                println!("idle started");
                std::future::pending::<()>().await;
            })
        });
        idle.restart = RestartPolicy::Always;
        idle
    }

    /// A limited tree that runs until stopped (the runner SIGKILLs its
    /// root).
    pub(crate) fn limits_root_killed() {
        if !can_make_cgroups() {
            return;
        }
        report(
            Supertree::new()
                .add_supervisor(|s| {
                    s.with_limits(supertrees::Limits::new().memory(32 << 20))
                        .add_worker(idle())
                })
                .start(),
        );
    }

    /// A limited subtree whose work ends at once, next to a worker that
    /// runs until the tree is stopped.
    pub(crate) fn limits_subtree_ends() {
        if !can_make_cgroups() {
            return;
        }
        report(
            events(Supertree::new().add_worker(idle()).add_supervisor(|s| {
                s.with_limits(supertrees::Limits::new().memory(32 << 20))
                    .add_worker(Life::new(|| Box::pin(async {})))
            }))
            .start(),
        );
    }

    /// A limited tree that ends at once: its start cleans up what killed
    /// roots left.
    pub(crate) fn limits_quick() {
        report(
            Supertree::new()
                .add_supervisor(|s| {
                    s.with_limits(supertrees::Limits::new().memory(32 << 20))
                        .add_worker(Life::new(|| Box::pin(async {})))
                })
                .start(),
        );
    }

    /// Not root any more, the tree asks for another user: `start()` fails
    /// before forking, naming the supervisor.
    pub(crate) fn with_user_refused() {
        if nix::unistd::geteuid().is_root() {
            let nobody = nix::unistd::Uid::from_raw(65534);
            let nogroup = nix::unistd::Gid::from_raw(65534);
            if let Err(err) = nix::unistd::setresgid(nogroup, nogroup, nogroup)
                .and_then(|()| nix::unistd::setresuid(nobody, nobody, nobody))
            {
                println!("skipped: could not become nobody first: {err}");
                return;
            }
        }
        report(
            Supertree::new()
                .add_supervisor(|s| s.add_supervisor(|s| s.with_user(0, 0).add_worker(whoami())))
                .start(),
        );
    }
}

pub(crate) mod drive {
    use std::time::Duration;

    use nix::sys::signal::Signal;

    use crate::drive::{expect_count, expect_exit_code, expect_prefix_once, pid_in, wait_line};
    use crate::observe::{dir_of, now_ms};
    use crate::runner::Run;

    /// `2 × period`: how soon a hung process must have been replaced.
    const WITHIN_MS: u128 = 400;

    /// The number after `at ` in `line`.
    fn at(line: &str) -> Result<u128, String> {
        line.rsplit("at ")
            .next()
            .and_then(|t| t.trim().parse().ok())
            .ok_or_else(|| format!("no time in {line:?}"))
    }

    fn stop_tree(run: &mut Run) -> Result<(), String> {
        run.signal_root(Signal::SIGTERM)?;
        expect_exit_code(run, 0)?;
        expect_prefix_once(run, "returned Ok").map(drop)
    }

    /// The host pid in a `start <pid> at <ms>` line.
    fn host_of(line: &str) -> Result<i32, String> {
        line.split(' ')
            .nth(1)
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("no pid in {line:?}"))
    }

    /// Waits for the worker to start in another host than `host`, at most
    /// [`WITHIN_MS`] after `since`.
    fn replaced_within(run: &mut Run, host: i32, since: u128, what: &str) -> Result<u128, String> {
        let restarted = run.wait_for("the worker in a new host", |run| {
            run.stdout()
                .into_iter()
                .find(|l| l.starts_with("start ") && host_of(l).is_ok_and(|p| p != host))
                .ok_or_else(|| "not yet".to_owned())
        })?;
        let took = at(&restarted)?.saturating_sub(since);
        if took > WITHIN_MS {
            return Err(format!(
                "{what}: replaced after {took} ms; at most {WITHIN_MS} ms (2 × the 200 ms period)"
            ));
        }
        run.note(format!("{what}: replaced after {took} ms"));
        Ok(took)
    }

    pub(crate) fn watchdog_blocked_worker(run: &mut Run) -> Result<(), String> {
        let host = host_of(&wait_line(run, "start ")?)?;
        let blocked = at(&wait_line(run, "blocking at ")?)?;
        replaced_within(run, host, blocked, "a worker blocking its host's thread")?;
        wait_line(run, "event root/0/host (pid ")?;
        if run.count(|l| l.starts_with("event root/0/host (pid ") && l.contains(": hung")) != 1 {
            return Err(format!("no hung host event: {:#?}", run.stdout()));
        }
        expect_count(run, "event root/0/0: hung: no sign of life within its watchdog period; killed; restarting after 10ms", 1)?;
        stop_tree(run)
    }

    pub(crate) fn watchdog_stopped_host(run: &mut Run) -> Result<(), String> {
        let host = host_of(&wait_line(run, "start ")?)?;
        std::thread::sleep(Duration::from_millis(100));
        let stopped = now_ms();
        run.signal(host, Signal::SIGSTOP)?;
        replaced_within(run, host, stopped, "a SIGSTOPped worker host")?;
        stop_tree(run)
    }

    pub(crate) fn watchdog_stopped_supervisor(run: &mut Run) -> Result<(), String> {
        let started = wait_line(run, "event root/0 (pid ")?;
        let supervisor = pid_in(&started)?;
        let host = host_of(&wait_line(run, "start ")?)?;
        std::thread::sleep(Duration::from_millis(100));
        let stopped = now_ms();
        run.signal(supervisor, Signal::SIGSTOP)?;
        replaced_within(run, host, stopped, "a SIGSTOPped supervisor")?;
        let hung = run.count(|l| l.starts_with("event root/0: hung"));
        if hung != 1 {
            return Err(format!(
                "expected one `root/0: hung` event, saw {hung}: {:#?}",
                run.stdout()
            ));
        }
        stop_tree(run)
    }

    pub(crate) fn limits_oom(run: &mut Run) -> Result<(), String> {
        let first = run.wait_for("the leaker, or a skip", |run| {
            run.stdout()
                .into_iter()
                .find(|l| l.starts_with("skipped: ") || l.starts_with("leaker started"))
                .ok_or_else(|| "not yet".to_owned())
        })?;
        if first.starts_with("skipped: ") {
            expect_exit_code(run, 0)?;
            run.note(first);
            return Ok(());
        }
        // Killed by the kernel at the limit, and restarted, twice.
        let oom =
            "event root/0/0: out of memory: ended at its subtree's memory limit; restarting after ";
        run.wait_for("two OOM kills", |run| {
            match run.count(|l| l.starts_with(oom)) {
                n if n >= 2 => Ok(()),
                n => Err(format!("{n} so far")),
            }
        })?;
        run.wait_for("the third start of the leaker", |run| {
            match run.count(|l| l.starts_with("leaker started")) {
                n if n >= 3 => Ok(()),
                n => Err(format!("{n} starts so far")),
            }
        })?;
        let hosts = run
            .count(|l| l.starts_with("event root/0/host (pid ") && l.contains(": out of memory"));
        if hosts < 2 {
            return Err(format!(
                "expected the host's end as `out of memory` twice, saw {hosts}"
            ));
        }
        // The status shows the subtree's limits and what it uses.
        let status = supertrees::query_status(dir_of(run.pid()).join("status.sock"))
            .map_err(|e| e.to_string())?;
        let limited = status
            .lines()
            .find(|l| l.contains("root/0  supervisor"))
            .unwrap_or_default()
            .to_owned();
        if !limited.contains("[limits: memory 64 MiB, processes 64, open files 256; memory in use ")
        {
            return Err(format!(
                "the status does not show the limits of root/0: {status}"
            ));
        }
        stop_tree(run)?;
        // The sibling subtree ran on: its 10 ms heartbeat never paused long.
        let beats: Vec<u128> = run
            .stdout()
            .iter()
            .filter_map(|l| l.strip_prefix("beat at ")?.parse().ok())
            .collect();
        let gap = beats
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or(u128::MAX);
        if gap > 100 {
            return Err(format!("the sibling's 10 ms heartbeat paused for {gap} ms"));
        }
        run.note(format!(
            "2 OOM kills at 64 MiB, restarted; sibling heartbeat's longest gap {gap} ms; {limited}"
        ));
        Ok(())
    }

    /// The directories of the cgroup base of root `pid`, in the memory
    /// hierarchy (`<its cgroup>/supertrees/<pid>.<start>`).
    fn bases_of(pid: i32) -> Vec<std::path::PathBuf> {
        let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        let Some(path) = own
            .lines()
            .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_owned()))
        else {
            return Vec::new();
        };
        let dir = std::path::Path::new("/sys/fs/cgroup/memory")
            .join(path.trim_start_matches('/'))
            .join("supertrees");
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with(&format!("{pid}."))
                    })
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// SIGKILL of a limited tree's root leaves its cgroups; the next
    /// limited tree's start removes them.
    pub(crate) fn limits_root_killed(run: &mut Run) -> Result<(), String> {
        if !idle_started(run)? {
            return Ok(());
        }
        let root = run.pid();
        let bases = bases_of(root);
        if bases.len() != 1 {
            return Err(format!(
                "expected one cgroup base of root {root}, found {bases:?}"
            ));
        }
        run.signal_root(Signal::SIGKILL)?;
        run.wait_exit()?;
        if !bases[0].exists() {
            return Err("the base went away by itself; nothing to clean up".into());
        }
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let next = std::process::Command::new(exe)
            .env(crate::SCENARIO_VAR, "limits_quick")
            .output()
            .map_err(|e| e.to_string())?;
        let said = String::from_utf8_lossy(&next.stdout);
        if !said.contains("returned Ok") {
            return Err(format!("the next tree did not run: {said}"));
        }
        if bases[0].exists() {
            return Err(format!(
                "{} is still there after the next start",
                bases[0].display()
            ));
        }
        run.note(format!("{} removed by the next start", bases[0].display()));
        Ok(())
    }

    /// Waits for `idle started`, or a skip (then checks the exit and
    /// notes it): whether the scenario runs.
    fn idle_started(run: &mut Run) -> Result<bool, String> {
        let first = run.wait_for("the worker, or a skip", |run| {
            run.stdout()
                .into_iter()
                .find(|l| l.starts_with("skipped: ") || l == "idle started")
                .ok_or_else(|| "not yet".to_owned())
        })?;
        if first.starts_with("skipped: ") {
            expect_exit_code(run, 0)?;
            run.note(first);
            return Ok(false);
        }
        Ok(true)
    }

    /// The cgroup of a subtree that ended for good is gone while the tree
    /// runs on.
    pub(crate) fn limits_subtree_ends(run: &mut Run) -> Result<(), String> {
        if !idle_started(run)? {
            return Ok(());
        }
        wait_line(run, "event root/1: exited normally; not restarted")?;
        let bases = bases_of(run.pid());
        let [base] = bases.as_slice() else {
            return Err(format!("expected one cgroup base, found {bases:?}"));
        };
        let group = base.join("root-1");
        let gone = run.wait_for("the subtree's cgroup removed", |_| {
            if group.exists() {
                Err(format!("{} is still there", group.display()))
            } else {
                Ok(())
            }
        });
        gone?;
        run.note(format!(
            "{} removed when its subtree ended",
            group.display()
        ));
        stop_tree(run)
    }

    pub(crate) fn limits_quick(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        expect_prefix_once(run, "returned Ok").map(drop)
    }

    fn skipped(run: &mut Run) -> bool {
        match run.stdout().iter().find(|l| l.starts_with("skipped: ")) {
            Some(line) => {
                let line = line.clone();
                run.note(line);
                true
            }
            None => false,
        }
    }

    pub(crate) fn with_user(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        if skipped(run) {
            return Ok(());
        }
        expect_count(
            run,
            "uids 65534 65534 65534 gids 65534 65534 65534 groups 0 no_new_privs 1",
            1,
        )?;
        expect_count(run, "call across users: Ok(42)", 1)?;
        expect_count(
            run,
            "limited below the user: uid 65534 in its cgroup true",
            1,
        )?;
        if run.count(|l| l.starts_with("event root/1/0 (pid ") && l.ends_with("worker started"))
            != 1
        {
            return Err("the events of the subtree did not reach the root".into());
        }
        expect_prefix_once(run, "returned Ok").map(drop)
    }

    /// The limited supervisor below the user enters its cgroup as nobody
    /// in both incarnations of `root/0`, its group made again between.
    pub(crate) fn limits_user_made_again(run: &mut Run) -> Result<(), String> {
        let probe = "limited below the user: uid 65534 in its cgroup";
        let first = run.wait_for("the probe, or a skip", |run| {
            run.stdout()
                .into_iter()
                .find(|l| l.starts_with(probe) || l.starts_with("skipped: "))
                .ok_or_else(|| "not yet".to_owned())
        })?;
        if first.starts_with("skipped: ") {
            run.note(first);
            return expect_exit_code(run, 0);
        }
        wait_line(run, "event root/0/0: exited normally; not restarted")?;
        let restarted = run.wait_for("root/0 forked again", |run| {
            run.stdout()
                .into_iter()
                .filter(|l| l.starts_with("event root/0 (pid ") && l.contains("supervisor started"))
                .nth(1)
                .ok_or_else(|| "not yet".to_owned())
        })?;
        let again = run.wait_for("the probe of the second incarnation, or a failure", |run| {
            let lines = run.stdout();
            let failed = lines
                .iter()
                .find(|l| l.starts_with("event root/0/0/0") && l.contains("could not be set up"));
            match failed {
                Some(line) => Ok(Err(line.clone())),
                None => lines
                    .iter()
                    .filter(|l| l.starts_with(probe))
                    .nth(1)
                    .map(|l| Ok(l.clone()))
                    .ok_or_else(|| "not yet".to_owned()),
            }
        })?;
        run.signal_root(Signal::SIGTERM)?;
        expect_exit_code(run, 0)?;
        run.note(first.clone());
        run.note(restarted);
        let again = again.map_err(|line| {
            format!("below the user, the limited supervisor could not enter its cgroup made again: {line}")
        })?;
        run.note(again.clone());
        for line in [&first, &again] {
            if !line.ends_with(" true") {
                return Err(format!("not in its own cgroup: {line}"));
            }
        }
        Ok(())
    }

    pub(crate) fn with_user_refused(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        if skipped(run) {
            return Ok(());
        }
        expect_prefix_once(
            run,
            "returned Err Privilege { path: \"root/0/0\", reason: \"only root may switch to uid 0 and gid 0; this process runs as uid 65534 and gid 65534\" }",
        )
        .map(drop)
    }
}
