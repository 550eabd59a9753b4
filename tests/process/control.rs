//! Scenarios for operators' requests on the status socket that name a
//! node (`restart PATH`): each reaches the state machine of the supervisor
//! that owns the node, in whatever process it runs, and its answer comes
//! back. Included by `main.rs`: each scenario body runs in its own process,
//! each drive in the runner.

pub(crate) mod scenario {
    use std::time::Duration;

    use supertrees::{BoxFuture, Intensity, Restartable, Supertree, Worker};

    use crate::observe::{now_ms, test_dir};

    /// Prints `start <name> <ms>` when it starts and `stopped <name>` when
    /// it is asked to stop (then ends): its stops are in order.
    struct Polite(&'static str);

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
            .status_socket(test_dir().join("status.sock"))
            .on_event(|event| println!("event {event}"))
            .on_ready(|_| println!("tree-ready"))
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

    use super::super::drive::wait_line;
    use super::super::observe::dir_of;
    use super::super::runner::Run;

    /// Sends `request` on the status socket and reads its answer.
    fn ask(socket: &Path, request: &str) -> Result<String, String> {
        let mut stream = UnixStream::connect(socket).map_err(|e| format!("connect: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
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

    fn expect_answer(socket: &Path, request: &str, want: &str) -> Result<(), String> {
        let got = ask(socket, request)?;
        if got == want {
            Ok(())
        } else {
            Err(format!("{request:?} was answered {got:?}, not {want:?}"))
        }
    }

    fn starts(run: &Run, name: &str) -> usize {
        let prefix = format!("start {name} ");
        run.count(|l| l.starts_with(&prefix))
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
