//! Hardening: SIGHUP and SIGQUIT stop the tree in order.

pub(crate) mod scenario {
    use supertrees::{BoxFuture, Restartable, Supertree, Worker};

    use crate::observe::test_dir;
    use crate::scenario::{report, Forever};

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
    use std::time::Instant;

    use nix::sys::signal::{killpg, Signal};
    use nix::unistd::Pid;

    use crate::drive::{expect_all_dropped, expect_count, expect_exit_code, wait_up};
    use crate::runner::Run;

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
