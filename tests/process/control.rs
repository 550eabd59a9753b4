//! Scenarios for operators' requests on the status socket that name a
//! node (`restart PATH`): each reaches the state machine of the supervisor
//! that owns the node, in whatever process it runs, and its answer comes
//! back; and for `status json` and `watch`, what dashboards read. Included
//! by `main.rs`: each scenario body runs in its own process, each drive in
//! the runner.

pub(crate) mod scenario {
    use std::time::Duration;

    use supertrees::{BoxFuture, Intensity, Restartable, Shutdown, Supertree, Worker};

    use crate::observe::{now_ms, test_dir};

    /// Prints `start <name> <ms>` when it starts and `stopped <name>` when
    /// it is asked to stop (then ends): its stops are in order.
    pub(crate) struct Polite(pub(crate) &'static str);

    impl Worker for Polite {
        fn init(&self) -> BoxFuture {
            let name = self.0;
            Box::pin(async move {
                println!("start {name} {}", now_ms());
                supertrees::stopping().await;
                println!("stopped {name}");
            })
        }
    }

    impl Restartable for Polite {}

    /// A [`Polite`] worker killed at once when stopped: the bound of an
    /// order about it is 5 s.
    pub(crate) struct Brief(pub(crate) &'static str);

    impl Worker for Brief {
        fn init(&self) -> BoxFuture {
            Polite(self.0).init()
        }
    }

    impl Restartable for Brief {
        fn shutdown(&self) -> Shutdown {
            Shutdown::Kill
        }
    }

    /// Two child supervisors under a root whose program set SIGPIPE back
    /// to its default (as command-line programs do): the runner has the
    /// root send an order to a child supervisor that just died. After
    /// `start()`, says whether SIGPIPE is back to the program's setting.
    #[allow(unsafe_code)]
    pub(crate) fn sigpipe() {
        use nix::sys::signal::{signal, SigHandler, Signal};
        // SAFETY: SIG_DFL installs no handler code.
        if let Err(err) = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) } {
            println!("skipped: SIGPIPE can not be set to its default: {err}");
            return;
        }
        let result = Supertree::new()
            .add_supervisor(|s| s.add_worker(Polite("root/0/0")))
            .add_supervisor(|s| s.add_worker(Polite("root/1/0")))
            .observed()
            .start();
        // SigIgn is a mask with bit 12 for SIGPIPE (13).
        let ignored = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                let mask = s.lines().find_map(|l| l.strip_prefix("SigIgn:"))?;
                u64::from_str_radix(mask.trim(), 16).ok()
            })
            .map(|mask| mask & (1 << 12) != 0);
        println!("sigpipe ignored after start: {ignored:?}");
        crate::scenario::report(result);
    }

    /// `root/0` a supervisor of two workers (the runner SIGSTOPs it),
    /// `root/1` a worker.
    pub(crate) fn stopped() {
        let result = Supertree::new()
            .add_supervisor(|s| {
                s.add_worker(Brief("root/0/0"))
                    .add_worker(Brief("root/0/1"))
            })
            .add_worker(Polite("root/1"))
            .observed()
            .start();
        crate::scenario::report(result);
    }

    /// What the drives read of every tree here: its status socket, events
    /// and readiness.
    pub(crate) trait Observed {
        fn observed(self) -> Self;
    }

    impl Observed for Supertree {
        fn observed(self) -> Self {
            self.status_socket(test_dir().join("status.sock"))
                .on_event(|event| println!("event {event}"))
                .on_ready(|_| println!("tree-ready"))
        }
    }

    /// Prints `start <name> <ms>` when it starts; asked to stop, prints
    /// `stopping <name>`, takes 1.5 s, prints `stopped <name>` and ends.
    struct Slow(&'static str);

    impl Worker for Slow {
        fn init(&self) -> BoxFuture {
            let name = self.0;
            Box::pin(async move {
                println!("start {name} {}", now_ms());
                supertrees::stopping().await;
                println!("stopping {name}");
                std::thread::sleep(Duration::from_millis(1500));
                println!("stopped {name}");
            })
        }
    }

    impl Restartable for Slow {}

    /// A worker of the root's and a forked supervisor with a worker: the
    /// runner reads `status json` and watches while it restarts them.
    pub(crate) fn watch() {
        let result = Supertree::new()
            .add_worker(Polite("root/0"))
            .add_supervisor(|s| s.add_worker(Polite("root/1/0")))
            .observed()
            .start();
        crate::scenario::report(result);
    }

    /// Named nodes for an operator: `root/api` (a forked `OneForAll`
    /// supervisor of `web`, `cache` and an unnamed worker, `root/api/2`)
    /// and `root/jobs`, `root/slow` under a root that allows three
    /// restarts a minute.
    pub(crate) fn operator() {
        let result = Supertree::new()
            .with_intensity(Intensity::new(3, Duration::from_secs(60)))
            .add_supervisor(|s| {
                s.with_name("api")
                    .with_strategy(supertrees::Strategy::OneForAll)
                    .add_named_worker("web", Polite("root/api/web"))
                    .add_named_worker("cache", Polite("root/api/cache"))
                    .add_worker(Polite("root/api/2"))
            })
            .add_named_worker("jobs", Polite("root/jobs"))
            .add_named_worker("slow", Slow("root/slow"))
            .observed()
            .start();
        crate::scenario::report(result);
    }

    /// Two children of the root with one name: `start()` fails naming it.
    pub(crate) fn duplicate_name() {
        let result = Supertree::new()
            .add_named_worker("jobs", Polite("root/jobs"))
            .add_supervisor(|s| s.with_name("jobs").add_worker(Polite("root/jobs/0")))
            .start();
        crate::scenario::report(result);
    }

    /// Three levels, two of them forked supervisors, each allowing one
    /// restart a minute: an operator's restarts must not count.
    pub(crate) fn restart() {
        let once = Intensity::new(1, Duration::from_secs(60));
        let result = Supertree::new()
            .with_intensity(once)
            .add_worker(Polite("root/0"))
            .add_supervisor(|s| {
                s.with_intensity(once)
                    .add_worker(Polite("root/1/0"))
                    .add_supervisor(|s| {
                        s.with_intensity(once)
                            .add_worker(Polite("root/1/1/0"))
                            .add_worker(Polite("root/1/1/1"))
                    })
            })
            .observed()
            .start();
        crate::scenario::report(result);
    }
}

pub(crate) mod drive {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::path::Path;
    use std::time::Duration;

    use nix::sys::signal::Signal;

    use super::super::drive::{pid_in, wait_line};
    use super::super::observe::dir_of;
    use super::super::runner::Run;

    /// Sends `request` on the status socket and reads its answer.
    pub(crate) fn ask(socket: &Path, request: &str) -> Result<String, String> {
        ask_within(socket, request, Duration::from_secs(10))
    }

    /// Sends `request` and reads its answer, waiting at most `wait`.
    pub(crate) fn ask_within(
        socket: &Path,
        request: &str,
        wait: Duration,
    ) -> Result<String, String> {
        let mut stream = UnixStream::connect(socket).map_err(|e| format!("connect: {e}"))?;
        stream
            .set_read_timeout(Some(wait))
            .map_err(|e| e.to_string())?;
        stream
            .write_all(format!("{request}\n").as_bytes())
            .map_err(|e| format!("send {request:?}: {e}"))?;
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .map_err(|e| format!("answer to {request:?}: {e}"))?;
        Ok(answer)
    }

    pub(crate) fn expect_answer(socket: &Path, request: &str, want: &str) -> Result<(), String> {
        let got = ask(socket, request)?;
        if got == want {
            Ok(())
        } else {
            Err(format!("{request:?} was answered {got:?}, not {want:?}"))
        }
    }

    pub(crate) fn starts(run: &Run, name: &str) -> usize {
        let prefix = format!("start {name} ");
        run.count(|l| l.starts_with(&prefix))
    }

    /// The pid of the latest start of supervisor `path`.
    pub(super) fn sup_pid(run: &Run, path: &str) -> Result<i32, String> {
        let prefix = format!("event {path} (pid ");
        let line = run
            .stdout()
            .into_iter()
            .rfind(|l| l.starts_with(&prefix) && l.contains("supervisor started"))
            .ok_or_else(|| format!("no start of {path}"))?;
        pid_in(&line)
    }

    fn supervisor_starts(run: &Run, path: &str) -> usize {
        let prefix = format!("event {path} (pid ");
        run.count(|l| l.starts_with(&prefix) && l.contains("supervisor started"))
    }

    pub(crate) fn restart(run: &mut Run) -> Result<(), String> {
        let socket = dir_of(run.pid()).join("status.sock");
        wait_line(run, "tree-ready")?;
        // A worker two forked supervisors down, three times: each stopped
        // in order and started again; none counted in the intensity of one
        // restart a minute, so the supervisor goes on.
        for round in 2..=4 {
            expect_answer(&socket, "restart root/1/1/1", "ok restarted root/1/1/1\n")?;
            run.wait_for("the restarted worker to start again", |run| {
                let n = starts(run, "root/1/1/1");
                if n >= round {
                    Ok(())
                } else {
                    Err(format!("root/1/1/1 started {n} times"))
                }
            })?;
        }
        if run.count(|l| l == "stopped root/1/1/1") != 3 {
            return Err("root/1/1/1 was not asked to stop three times".to_owned());
        }
        if supervisor_starts(run, "root/1/1") != 1 || starts(run, "root/1/1/0") != 1 {
            return Err("restarting root/1/1/1 touched its supervisor or its sibling".to_owned());
        }
        // A child supervisor: its whole subtree, in order.
        expect_answer(&socket, "restart root/1/1", "ok restarted root/1/1\n")?;
        run.wait_for("the restarted subtree to be up again", |run| {
            let (sup, a, b) = (
                supervisor_starts(run, "root/1/1"),
                starts(run, "root/1/1/0"),
                starts(run, "root/1/1/1"),
            );
            if sup == 2 && a == 2 && b == 5 {
                Ok(())
            } else {
                Err(format!(
                    "root/1/1 started {sup} times, its workers {a} and {b}"
                ))
            }
        })?;
        if run.count(|l| l == "stopped root/1/1/0") != 1 {
            return Err("root/1/1/0 was not stopped in order with its supervisor".to_owned());
        }
        // The root's own worker, and one of a forked supervisor's.
        expect_answer(&socket, "restart root/0", "ok restarted root/0\n")?;
        expect_answer(&socket, "restart root/1/0", "ok restarted root/1/0\n")?;
        // What is not there, or no node, is refused in one line.
        for (request, want) in [
            ("restart root/1/9", "error: not found: root/1/9\n"),
            ("restart root/1/1/0/2", "error: not found: root/1/1/0/2\n"),
            ("restart root/7/0", "error: not found: root/7/0\n"),
            ("restart root/1/x", "error: not found: root/1/x\n"),
            (
                "restart root",
                "error: bad path `root`: the root itself can not be named; name a node below it\n",
            ),
            (
                "restart",
                "error: `restart` needs the path of a node: `restart root/1/0`\n",
            ),
        ] {
            expect_answer(&socket, request, want)?;
        }
        let status = ask(&socket, "status")?;
        if !status.contains("root/1/1/1  worker") {
            return Err(format!("status after the restarts:\n{status}"));
        }
        // Every order was logged with who asked.
        let logged =
            run.stderr_count(|l| l.contains("an operator's request") && l.contains("peer_uid"));
        if logged < 12 {
            return Err(format!(
                "{logged} operator's requests logged with their peer"
            ));
        }
        run.signal_root(Signal::SIGTERM)?;
        run.wait_exit()?;
        if !run.stdout().iter().any(|l| l == "returned Ok") {
            return Err(
                "start() did not return Ok: an operator's restart gave up a supervisor?".to_owned(),
            );
        }
        Ok(())
    }
}

pub(crate) mod drive_stopped {
    //! An order into a subtree whose supervisor is stopped (SIGSTOP: a
    //! worker of a `with_user` subtree may do that to its own supervisor)
    //! is answered at its bound by the supervisor that sent it down, and
    //! orders waiting for answers never keep `status` out.

    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::time::{Duration, Instant};

    use nix::sys::signal::Signal;

    use super::drive::{ask, ask_within, sup_pid};
    use crate::drive::wait_line;
    use crate::observe::dir_of;
    use crate::runner::Run;

    pub(crate) fn stopped(run: &mut Run) -> Result<(), String> {
        let socket = dir_of(run.pid()).join("status.sock");
        wait_line(run, "tree-ready")?;
        let sup = sup_pid(run, "root/0")?;
        run.signal(sup, Signal::SIGSTOP)?;
        // More orders than the server serves clients at once, whose
        // clients go away at once; one that waits.
        for _ in 0..20 {
            let mut gone = UnixStream::connect(&socket).map_err(|e| format!("connect: {e}"))?;
            gone.write_all(b"restart root/0/0\n")
                .map_err(|e| format!("send: {e}"))?;
        }
        let waiting = {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let began = Instant::now();
                (
                    ask_within(&socket, "restart root/0/1", Duration::from_secs(20)),
                    began.elapsed(),
                )
            })
        };
        let began = Instant::now();
        let status = ask_within(&socket, "status", Duration::from_secs(2))?;
        if !status.contains("root/0/1  worker") {
            return Err(format!("status with 21 orders waiting:\n{status}"));
        }
        run.note(format!(
            "status served in {:?} with 21 orders waiting",
            began.elapsed()
        ));
        let (answer, took) = waiting.join().map_err(|_| "the waiting client panicked")?;
        let answer = answer?;
        // Its bound (5 s: `Shutdown::Kill`) and the way up (1 s).
        if answer != "error: timed out after 6s: root/0/1\n" || took > Duration::from_secs(8) {
            return Err(format!(
                "an order into a stopped supervisor: {answer:?} after {took:?}"
            ));
        }
        run.note(format!(
            "an order into a stopped supervisor answered {answer:?} after {took:?}"
        ));
        // Running again, it carries out what waited in its pipe (the
        // timed-out order too: "it may be still"); then orders are ok.
        run.signal(sup, Signal::SIGCONT)?;
        run.wait_for(
            "an order into the subtree to be carried out again",
            |_| match ask(&socket, "restart root/0/1")?.as_str() {
                "ok restarted root/0/1\n" => Ok(()),
                other => Err(format!("answered {other:?}")),
            },
        )?;
        run.signal_root(Signal::SIGTERM)?;
        run.wait_exit()?;
        if !run.stdout().iter().any(|l| l == "returned Ok") {
            return Err("start() did not return Ok".to_owned());
        }
        Ok(())
    }
}

pub(crate) mod drive_sigpipe {
    //! An order into a child supervisor that has just died (its socket's
    //! other end closed, not reaped yet) fails to be written with EPIPE,
    //! and is answered: the root, whose program set SIGPIPE to its
    //! default, is not killed by it.

    use std::time::Duration;

    use nix::sys::signal::Signal;

    use super::drive::{ask_within, sup_pid};
    use crate::drive::wait_line;
    use crate::observe::dir_of;
    use crate::runner::Run;

    pub(crate) fn sigpipe(run: &mut Run) -> Result<(), String> {
        if run.stdout().iter().any(|l| l.starts_with("skipped: ")) {
            return Ok(());
        }
        let socket = dir_of(run.pid()).join("status.sock");
        wait_line(run, "tree-ready")?;
        for round in 1..=2 {
            let child = sup_pid(run, "root/1")?;
            // The root sees the order before it learns of the death.
            run.signal_root(Signal::SIGSTOP)?;
            run.signal(child, Signal::SIGKILL)?;
            std::thread::sleep(Duration::from_millis(100));
            let asking = {
                let socket = socket.clone();
                std::thread::spawn(move || {
                    ask_within(&socket, "restart root/1/0", Duration::from_secs(10))
                })
            };
            std::thread::sleep(Duration::from_millis(200));
            run.signal_root(Signal::SIGCONT)?;
            let answer = asking.join().map_err(|_| "the client panicked")??;
            if !answer.starts_with("error: ") || !answer.ends_with(": root/1/0\n") {
                return Err(format!(
                    "round {round}: an order into a dead root/1: {answer:?}"
                ));
            }
            run.note(format!("round {round}: {answer:?}"));
            run.wait_for("root/1 to start again", |run| {
                if sup_pid(run, "root/1")? != child {
                    Ok(())
                } else {
                    Err("not yet".to_owned())
                }
            })?;
            wait_line(run, "start root/1/0 ")?;
        }
        run.signal_root(Signal::SIGTERM)?;
        run.wait_exit()?;
        let out = run.stdout();
        if !out.iter().any(|l| l == "returned Ok") {
            return Err("start() did not return Ok".to_owned());
        }
        if !out
            .iter()
            .any(|l| l == "sigpipe ignored after start: Some(false)")
        {
            return Err("SIGPIPE is not back to the program's default after start()".to_owned());
        }
        Ok(())
    }
}

pub(crate) mod drive_operator {
    //! An operator's `stop` holds a named child down through its group's
    //! restart until `start`; five operator's restarts under a root that
    //! allows three restarts a minute leave it running; bad requests and
    //! requests during the shutdown get one `error:` line.

    use nix::sys::signal::Signal;

    use super::drive::{ask, expect_answer, starts};
    use crate::drive::{pid_in, wait_line};
    use crate::observe::dir_of;
    use crate::runner::Run;

    /// The pid of the latest start of the worker host of supervisor `path`.
    fn host_pid(run: &Run, path: &str) -> Result<i32, String> {
        let prefix = format!("event {path}/host (pid ");
        let line = run
            .stdout()
            .into_iter()
            .rfind(|l| l.starts_with(&prefix) && l.contains("worker host started"))
            .ok_or_else(|| format!("no start of {path}/host"))?;
        pid_in(&line)
    }

    pub(crate) fn operator(run: &mut Run) -> Result<(), String> {
        let socket = dir_of(run.pid()).join("status.sock");
        wait_line(run, "tree-ready")?;
        // Named paths everywhere: events and the status.
        let status = ask(&socket, "status")?;
        for path in [
            "root/api  supervisor",
            "root/api/web  worker",
            "root/api/2  worker",
            "root/jobs  worker",
        ] {
            if !status.contains(path) {
                return Err(format!("no {path:?} in the status:\n{status}"));
            }
        }
        expect_answer(
            &socket,
            "stop root/api/cache",
            "ok stopped root/api/cache\n",
        )?;
        // Its output and the root's callback come on their own ways.
        run.wait_for("root/api/cache to be stopped in order, and held", |run| {
            let stopped = run.count(|l| l == "stopped root/api/cache");
            let held = run.count(|l| {
                l.starts_with("event root/api/cache")
                    && l.ends_with("stopped by an operator; held down until started")
            });
            match (stopped, held) {
                (1, 1) => Ok(()),
                _ => Err(format!("stopped {stopped} times, held {held} times")),
            }
        })?;
        expect_answer(
            &socket,
            "stop root/api/cache",
            "error: already stopped: root/api/cache\n",
        )?;
        // Its group restarts (its worker host is killed): web and root/api/2
        // start again, cache stays down.
        let host = host_pid(run, "root/api")?;
        run.signal(host, Signal::SIGKILL)?;
        run.wait_for("the group of root/api to start again", |run| {
            let (web, other) = (starts(run, "root/api/web"), starts(run, "root/api/2"));
            if web == 2 && other == 2 {
                Ok(())
            } else {
                Err(format!("web started {web} times, root/api/2 {other}"))
            }
        })?;
        std::thread::sleep(std::time::Duration::from_millis(300));
        if starts(run, "root/api/cache") != 1 {
            return Err("the held root/api/cache was started with its group".to_owned());
        }
        let status = ask(&socket, "status")?;
        if !status
            .lines()
            .any(|l| l.contains("root/api/cache  worker  stopped"))
        {
            return Err(format!("the held child in the status:\n{status}"));
        }
        expect_answer(
            &socket,
            "start root/api/cache",
            "ok started root/api/cache\n",
        )?;
        run.wait_for("root/api/cache to start again", |run| {
            match starts(run, "root/api/cache") {
                2 => Ok(()),
                n => Err(format!("started {n} times")),
            }
        })?;
        expect_answer(
            &socket,
            "start root/api/cache",
            "error: already running: root/api/cache\n",
        )?;
        // Five operator's restarts under three a minute: counted nowhere.
        for round in 2..=6 {
            expect_answer(&socket, "restart root/jobs", "ok restarted root/jobs\n")?;
            run.wait_for("root/jobs to start again", |run| {
                let n = starts(run, "root/jobs");
                if n >= round {
                    Ok(())
                } else {
                    Err(format!("root/jobs started {n} times"))
                }
            })?;
        }
        // A stopped supervisor is its whole subtree, held down.
        expect_answer(&socket, "stop root/api", "ok stopped root/api\n")?;
        run.wait_for("root/api's workers to be stopped with it", |run| {
            for worker in ["root/api/web", "root/api/cache", "root/api/2"] {
                if run.count(|l| l == format!("stopped {worker}")) < 1 {
                    return Err(format!("{worker} was not stopped with its supervisor"));
                }
            }
            Ok(())
        })?;
        expect_answer(
            &socket,
            "restart root/api/web",
            "error: not running: root/api/web\n",
        )?;
        expect_answer(&socket, "start root/api", "ok started root/api\n")?;
        run.wait_for("root/api's workers to start again", |run| {
            match starts(run, "root/api/web") {
                3 => Ok(()),
                n => Err(format!("web started {n} times")),
            }
        })?;
        // Bad requests: one line each.
        for (request, want) in [
            ("stop root/nope", "error: not found: root/nope\n"),
            ("stop root/0", "error: not found: root/0\n"),
            ("start root/api/9", "error: not found: root/api/9\n"),
            (
                "stop root",
                "error: bad path `root`: the root itself can not be named; name a node below it\n",
            ),
            (
                "stop",
                "error: `stop` needs the path of a node: `stop root/1/0`\n",
            ),
        ] {
            expect_answer(&socket, request, want)?;
        }
        let unknown = ask(&socket, "frobnicate root/jobs")?;
        if !unknown.starts_with("error: unknown request `frobnicate root/jobs`") {
            return Err(format!("an unknown request was answered {unknown:?}"));
        }
        // While the tree shuts down (root/slow takes 1.5 s to stop), a
        // command is refused in one line.
        run.signal_root(Signal::SIGTERM)?;
        wait_line(run, "stopping root/slow")?;
        let late = ask(&socket, "restart root/jobs")?;
        if late != "error: shutting down: root/jobs\n" {
            return Err(format!(
                "a command during the shutdown was answered {late:?}"
            ));
        }
        run.wait_exit()?;
        if !run.stdout().iter().any(|l| l == "returned Ok") {
            return Err(
                "start() did not return Ok: five operator's restarts gave the root up?".to_owned(),
            );
        }
        let logged =
            run.stderr_count(|l| l.contains("an operator's request") && l.contains("peer_uid"));
        if logged < 15 {
            return Err(format!(
                "{logged} operator's requests logged with their peer"
            ));
        }
        Ok(())
    }

    pub(crate) fn duplicate_name(run: &mut Run) -> Result<(), String> {
        run.wait_exit()?;
        let want = ": supervisor root: invalid name \"jobs\": another child of this supervisor has this name";
        if run
            .stdout()
            .iter()
            .any(|l| l.starts_with("returned Err ") && l.ends_with(want))
        {
            Ok(())
        } else {
            Err(format!("no {want:?} in {:?}", run.stdout()))
        }
    }
}

pub(crate) mod drive_watch {
    //! `status json` is one JSON document of the tree as it runs, and
    //! `watch` streams the events that follow the request, as JSON lines,
    //! until the client hangs up or the tree ends.

    use std::io::{BufRead, BufReader, Read, Write};
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    use nix::sys::signal::Signal;
    use serde_json::Value;

    use super::drive::{ask, expect_answer, sup_pid};
    use crate::drive::{pid_in, wait_line};
    use crate::observe::{dir_of, now_ms};
    use crate::runner::Run;

    /// Asks for `watch` on a connection of its own.
    fn open_watch(socket: &std::path::Path) -> Result<BufReader<UnixStream>, String> {
        let mut stream = UnixStream::connect(socket).map_err(|e| format!("connect: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        stream
            .write_all(b"watch\n")
            .map_err(|e| format!("send watch: {e}"))?;
        Ok(BufReader::new(stream))
    }

    /// The next line of a watch, as JSON.
    fn next_line(watch: &mut BufReader<UnixStream>) -> Result<Value, String> {
        let mut line = String::new();
        match watch.read_line(&mut line) {
            Ok(0) => Err("the watch ended".to_owned()),
            Ok(_) => serde_json::from_str(&line).map_err(|e| format!("{line:?}: {e}")),
            Err(e) => Err(format!("reading the watch: {e}")),
        }
    }

    /// The node at `path` of a `status json` document.
    fn node<'a>(doc: &'a Value, path: &str) -> Result<&'a Value, String> {
        doc["nodes"]
            .as_array()
            .and_then(|nodes| nodes.iter().find(|n| n["path"] == path))
            .ok_or_else(|| format!("no {path} in {doc}"))
    }

    /// The pid of the latest `started` event of worker `path`.
    fn worker_pid(run: &Run, path: &str) -> Result<i32, String> {
        let prefix = format!("event {path} (pid ");
        let line = run
            .stdout()
            .into_iter()
            .rfind(|l| l.starts_with(&prefix) && l.contains("worker started"))
            .ok_or_else(|| format!("no start of {path}"))?;
        pid_in(&line)
    }

    pub(crate) fn watch(run: &mut Run) -> Result<(), String> {
        let socket = dir_of(run.pid()).join("status.sock");
        wait_line(run, "tree-ready")?;
        // The status as one document, in tree order, the root first.
        let answer = ask(&socket, "status json")?;
        let doc: Value =
            serde_json::from_str(&answer).map_err(|e| format!("status json {answer:?}: {e}"))?;
        if doc["schema"] != 1 || doc["generation"] != 1 {
            return Err(format!("status json: {doc}"));
        }
        let root = &doc["nodes"][0];
        if root["path"] != "root" || root["kind"] != "supervisor" || root["pid"] != run.pid() {
            return Err(format!("the first node is not the root: {root}"));
        }
        let worker = node(&doc, "root/1/0")?;
        let host = worker_pid(run, "root/1/0")?;
        if worker["kind"] != "worker"
            || worker["pid"] != host
            || worker["state"] != "ready"
            || worker["wanted"] != "up"
            || !worker["up_ms"].is_u64()
        {
            return Err(format!(
                "root/1/0 in status json (host pid {host}): {worker}"
            ));
        }
        if node(&doc, "root/1")?["pid"] != sup_pid(run, "root/1")? {
            return Err(format!("root/1 in status json: {doc}"));
        }
        let status: supertrees::TreeStatus =
            serde_json::from_str(&answer).map_err(|e| format!("as a TreeStatus: {e}"))?;
        if status.get("root/1/0").map(|n| n.state) != Some(supertrees::NodeState::Ready) {
            return Err(format!("read back as a TreeStatus:\n{status}"));
        }
        // Two watch; an operator's restart, on another connection,
        // shows up in both, in order.
        let began = now_ms();
        let mut first = open_watch(&socket)?;
        let mut second = open_watch(&socket)?;
        expect_answer(&socket, "restart root/1/0", "ok restarted root/1/0\n")?;
        let mut seen: Vec<(String, u64)> = Vec::new();
        while !seen.iter().any(|(kind, _)| kind == "started") {
            let line = next_line(&mut first)?;
            let at = line["at"]
                .as_u64()
                .ok_or_else(|| format!("no at: {line}"))?;
            if u128::from(at) + 1000 < began || u128::from(at) > now_ms() + 1000 {
                return Err(format!("an event at {at}, watched from {began}: {line}"));
            }
            if line["path"] == "root/1/0" {
                let kind = line["kind"].as_str().unwrap_or_default().to_owned();
                let text = line["text"].as_str().unwrap_or_default();
                if !text.starts_with("root/1/0") {
                    return Err(format!("its text: {line}"));
                }
                seen.push((kind, at));
            }
        }
        let kinds: Vec<&str> = seen.iter().map(|(kind, _)| kind.as_str()).collect();
        let ordered = seen.windows(2).all(|w| w[0].1 <= w[1].1);
        if kinds.first() != Some(&"exited") || !ordered {
            return Err(format!("root/1/0's events in the watch: {seen:?}"));
        }
        run.note(format!("watched root/1/0's restart: {seen:?}"));
        let second_lines: Vec<Value> = (0..kinds.len())
            .map(|_| next_line(&mut second))
            .collect::<Result<_, _>>()?;
        if second_lines.iter().all(|l| l["path"] != "root/1/0") {
            return Err(format!("the second watcher got {second_lines:?}"));
        }
        // Who watches is logged; a watcher that hangs up is let go.
        drop(first);
        run.wait_for("the end of a watch in the log", |run| {
            let ended = run.stderr_count(|l| l.contains("watch ended") && l.contains("peer_uid"));
            let began = run.stderr_count(|l| {
                l.contains("an operator watches the tree's events") && l.contains("peer_pid")
            });
            if ended == 1 && began == 2 {
                Ok(())
            } else {
                Err(format!(
                    "{began} watches began and {ended} ended in the log"
                ))
            }
        })?;
        // The tree's end ends the other watch.
        run.signal_root(Signal::SIGTERM)?;
        run.wait_exit()?;
        let mut rest = String::new();
        second
            .read_to_string(&mut rest)
            .map_err(|e| format!("the watch after the tree's end: {e}"))?;
        if !rest
            .lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok())
        {
            return Err(format!("the end of the watch: {rest:?}"));
        }
        if !run.stdout().iter().any(|l| l == "returned Ok") {
            return Err("start() did not return Ok".to_owned());
        }
        Ok(())
    }
}
