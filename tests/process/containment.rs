//! Containment: hang detection (`with_watchdog`) of a worker that blocks
//! its host's thread, of a SIGSTOPped worker host and of a SIGSTOPped
//! supervisor; a subtree running as another user (`with_user`), and the
//! error when that is not permitted; resource limits (`with_limits`).

/// Wall-clock milliseconds, comparable across the processes of a run.
pub(crate) fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

pub(crate) mod scenario {
    use std::time::Duration;

    use supertrees::{Intensity, RestartPolicy, Supertree};

    use super::now_ms;
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
                    .add_supervisor(|s| s.with_user(65534, 65534).add_worker(whoami())),
            )
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

    use super::now_ms;
    use crate::drive::{expect_count, expect_exit_code, expect_prefix_once, pid_in, wait_line};
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
        if run.count(|l| l.starts_with("event root/1/0 (pid ") && l.ends_with("worker started"))
            != 1
        {
            return Err("the events of the subtree did not reach the root".into());
        }
        expect_prefix_once(run, "returned Ok").map(drop)
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
