//! Scenarios for readiness, lifecycle events, the status socket, systemd
//! notification and faults on the IPC channels. Included by `main.rs`:
//! each scenario body runs in its own process, each drive in the runner.

/// The environment variable that makes the test binary a status client: it
/// asks the socket named there for the status, prints `ok` or `err <error>`
/// and exits. The runner starts it as another user.
pub(crate) const CLIENT_VAR: &str = "SUPERTREES_STATUS_CLIENT";

/// The status client (see [`CLIENT_VAR`]).
pub(crate) fn client(socket: &std::path::Path) -> ! {
    match supertrees::query_status(socket) {
        Ok(_) => println!("ok"),
        Err(err) => println!("err {err}"),
    }
    std::process::exit(0)
}

/// Milliseconds since the Unix epoch: comparable across processes.
pub(crate) fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// The directory of the scenario whose root (and session) is `pgid`;
/// not created by the runner (the status socket's owner-only directory is
/// created by the tree). The runner removes it after the scenario.
pub(crate) fn dir_of(pgid: i32) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("supertrees-test-{pgid}"))
}

/// The running scenario's directory, from any process of its tree.
pub(crate) fn test_dir() -> std::path::PathBuf {
    dir_of(nix::unistd::getsid(None).map_or(0, |sid| sid.as_raw()))
}

/// The directory of the scenario `run` runs.
fn test_dir_of(run: &super::runner::Run) -> std::path::PathBuf {
    dir_of(run.pid())
}

pub(crate) mod scenario {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use supertrees::{
        BackoffPolicy, BoxFuture, Readiness, Restartable, Strategy, Supertree, Worker,
    };

    use super::{now_ms, test_dir};

    /// Sleeps `delay`, prints `ready <name> <ms>`, declares itself ready,
    /// then runs until stopped.
    struct SlowStart {
        name: &'static str,
        delay: Duration,
    }

    impl Worker for SlowStart {
        fn init(&self) -> BoxFuture {
            let (name, delay) = (self.name, self.delay);
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                println!("ready {name} {}", now_ms());
                supertrees::ready();
                std::future::pending::<()>().await;
            })
        }
        fn readiness(&self) -> Readiness {
            Readiness::Notify
        }
    }

    impl Restartable for SlowStart {
        fn backoff_policy(&self) -> BackoffPolicy {
            BackoffPolicy::immediate()
        }
    }

    /// Prints `start <name> <ms>` and runs until stopped.
    struct Marker(&'static str);

    impl Worker for Marker {
        fn init(&self) -> BoxFuture {
            let name = self.0;
            Box::pin(async move {
                println!("start {name} {}", now_ms());
                std::future::pending::<()>().await;
            })
        }
    }

    impl Restartable for Marker {
        fn backoff_policy(&self) -> BackoffPolicy {
            BackoffPolicy::immediate()
        }
    }

    /// OneForAll at the root: `root/1` may start only once the slow
    /// `root/0` is ready. `root/2` is a supervisor whose host the runner
    /// kills, and `root/2/2` one it kills (restarted at once). Events are printed as `event <event>`, the status socket is
    /// served in the test directory.
    pub(crate) fn observe() {
        let result = Supertree::new()
            .with_strategy(Strategy::OneForAll)
            .add_worker(SlowStart {
                name: "root/0",
                delay: Duration::from_millis(300),
            })
            .add_worker(Marker("root/1"))
            .add_supervisor(|s| {
                s.add_worker(Marker("root/2/0"))
                    .add_worker(Marker("root/2/1"))
                    .add_supervisor(|s| {
                        s.with_backoff_policy(BackoffPolicy::immediate())
                            .add_worker(Marker("root/2/2/0"))
                    })
            })
            .status_socket(test_dir().join("status.sock"))
            .on_event(|event| println!("event {event}"))
            .on_ready(|status| {
                println!("tree-ready {}", now_ms());
                for line in status.to_string().lines() {
                    println!("status| {line}");
                }
            })
            .start();
        super::super::scenario::report(result);
    }

    /// Waits for the runner's notify socket and points `NOTIFY_SOCKET` at it,
    /// with a 200 ms watchdog.
    fn use_notify_socket() {
        let socket = test_dir().join("notify.sock");
        for _ in 0..500 {
            if socket.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Single-threaded here: nothing else reads the environment.
        std::env::set_var("NOTIFY_SOCKET", &socket);
        std::env::set_var("WATCHDOG_USEC", "200000");
    }

    /// A tree that is ready after 300 ms and runs until SIGTERM, under
    /// `NOTIFY_SOCKET`.
    pub(crate) fn sd_notify() {
        use_notify_socket();
        let result = Supertree::new()
            .add_supervisor(|s| {
                s.add_worker(SlowStart {
                    name: "root/0/0",
                    delay: Duration::from_millis(300),
                })
            })
            .add_worker(Marker("root/1"))
            .start();
        super::super::scenario::report(result);
    }

    /// The `on_event` callback panics at the first event; the tree goes on.
    pub(crate) fn panic_in_on_event() {
        let result = Supertree::new()
            .add_supervisor(|s| s.add_worker(Marker("root/0/0")))
            .on_event(|event| panic!("callback panics at {event}"))
            .on_ready(|_| println!("tree-ready {}", now_ms()))
            .start();
        super::super::scenario::report(result);
    }

    /// Returns at once; never restarted.
    struct Once;

    impl Worker for Once {
        fn init(&self) -> BoxFuture {
            Box::pin(async { println!("ran") })
        }
    }

    impl Restartable for Once {
        fn restart_policy(&self) -> supertrees::RestartPolicy {
            supertrees::RestartPolicy::Never
        }
    }

    /// A tree whose work is done at once, under `NOTIFY_SOCKET`.
    pub(crate) fn sd_notify_done() {
        use_notify_socket();
        let result = Supertree::new()
            .add_worker(Once)
            .add_supervisor(|s| s.add_worker(Once))
            .start();
        super::super::scenario::report(result);
    }

    /// Writes garbage into every pipe its worker host holds (the note pipe to
    /// its supervisor among them), then returns; its next run prints
    /// `start vandal <ms>` and runs on.
    struct Vandal;

    impl Worker for Vandal {
        fn init(&self) -> BoxFuture {
            Box::pin(async move {
                let marker = super::test_dir().join("vandalised");
                if !marker.exists() {
                    let _ = std::fs::write(&marker, b"1");
                    let mut hit = 0;
                    for entry in std::fs::read_dir("/proc/self/fd")
                        .into_iter()
                        .flatten()
                        .flatten()
                    {
                        let fd: i32 = entry.file_name().to_string_lossy().parse().unwrap_or(-1);
                        let target = std::fs::read_link(entry.path())
                            .map(|l| l.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        if fd > 2 && (target.starts_with("pipe:") || target.starts_with("socket:"))
                        {
                            // A frame's magic with an impossible length, a
                            // frame cut short, then bytes that are no frame.
                            let junk =
                                b"\x5A\x17\xFF\xFF\xFF\xFFgarbage\x5A\x17\x09\x00\x00\x00trunc";
                            if write_raw(fd, junk) {
                                hit += 1;
                            }
                        }
                    }
                    println!("vandalised {hit}");
                    return;
                }
                println!("start vandal {}", now_ms());
                std::future::pending::<()>().await;
            })
        }
    }

    /// Writes `bytes` to descriptor `fd` of this process, a pipe or a
    /// socket (which, unlike a pipe, can not be reopened through `/proc`).
    #[allow(unsafe_code)]
    fn write_raw(fd: i32, bytes: &[u8]) -> bool {
        // SAFETY: `fd` was just listed in /proc/self/fd, and nothing in this
        // single task closes it while it is borrowed for this one write.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        nix::unistd::write(fd, bytes).is_ok()
    }

    impl Restartable for Vandal {
        fn backoff_policy(&self) -> BackoffPolicy {
            BackoffPolicy::immediate()
        }
    }

    pub(crate) fn ipc_garbage() {
        let _ = std::fs::create_dir_all(test_dir());
        let result = Supertree::new()
            .add_supervisor(|s| s.add_worker(Vandal).add_worker(Marker("root/0/1")))
            .on_event(|event| println!("event {event}"))
            .start();
        super::super::scenario::report(result);
    }

    /// Returns at once, `Always`, 1 µs backoff: its host restarts it in
    /// place as fast as it can. Prints `runs <n> <ms>` every 20 000 runs.
    pub(crate) struct Spinner;

    static RUNS: AtomicU64 = AtomicU64::new(0);

    impl Worker for Spinner {
        fn init(&self) -> BoxFuture {
            let n = RUNS.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_multiple_of(20_000) {
                println!("runs {n} {}", now_ms());
            }
            Box::pin(async {})
        }
    }

    impl Restartable for Spinner {
        fn backoff_policy(&self) -> BackoffPolicy {
            let us = Duration::from_micros(1);
            BackoffPolicy::new(us, us * 2, Duration::from_secs(1), 2.0)
        }
    }

    /// A slow event reader: the root's callback takes 200 µs per event while a
    /// worker below restarts in place in a tight loop.
    pub(crate) fn slow_reader() {
        let result = Supertree::new()
            .add_supervisor(|s| s.add_worker(Spinner))
            .on_event(|event| {
                if let supertrees::EventKind::Dropped(n) = event.kind {
                    println!("dropped {n}");
                }
                std::thread::sleep(Duration::from_micros(200));
            })
            .start();
        super::super::scenario::report(result);
    }
}

pub(crate) mod drive {
    use std::io::{Read, Write};
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    use std::os::unix::net::{UnixDatagram, UnixStream};
    use std::os::unix::process::CommandExt;
    use std::time::{Duration, Instant};

    use nix::sys::signal::Signal;

    use super::super::drive::{line_with, number_after, pid_in, wait_line};
    use super::super::runner::Run;
    use super::test_dir_of;

    fn ms_of_line(line: &str) -> Result<u128, String> {
        number_after(line, ' ')
    }

    fn bind_notify_socket(run: &Run) -> Result<UnixDatagram, String> {
        super::super::drive::bind_notify_socket(&test_dir_of(run), Duration::from_millis(100))
    }

    fn expect_event(run: &Run, path: &str, what: &str) -> Result<String, String> {
        let prefix = format!("event {path} ");
        run.stdout()
            .into_iter()
            .find(|l| l.starts_with(&prefix) && l.contains(what))
            .ok_or_else(|| format!("no event line for {path} with {what:?}"))
    }

    pub(crate) fn observe(run: &mut Run) -> Result<(), String> {
        let dir = test_dir_of(run);
        let socket = dir.join("status.sock");
        // 1. Readiness: root/1 starts only after root/0 is ready, and the
        //    tree is ready after all of them.
        let tree_ready = ms_of_line(&wait_line(run, "tree-ready ")?)?;
        let slow = ms_of_line(&wait_line(run, "ready root/0 ")?)?;
        let after = ms_of_line(&wait_line(run, "start root/1 ")?)?;
        let nested = ms_of_line(&wait_line(run, "start root/2/1 ")?)?;
        if !(slow <= after && after <= nested && nested <= tree_ready) {
            return Err(format!(
                "start order: root/0 ready at {slow}, root/1 started at {after}, root/2/1 at {nested}, tree ready at {tree_ready}"
            ));
        }
        let status_lines = run.count(|l| l.starts_with("status| "));
        if status_lines < 6 {
            return Err(format!("on_ready's status had {status_lines} lines"));
        }
        // 2. Events from every level reached the root, with paths and pids.
        expect_event(run, "root/0", "worker started")?;
        expect_event(run, "root/0", "ready")?;
        expect_event(run, "root/2", "supervisor started")?;
        expect_event(run, "root/2/host", "worker host started")?;
        expect_event(run, "root/2/1", "ready")?;
        expect_event(run, "root/2", "ready")?;
        expect_event(run, "root ", "ready").or_else(|_| {
            run.stdout()
                .into_iter()
                .find(|l| l.starts_with("event root (pid") && l.ends_with("ready"))
                .ok_or_else(|| "no event that the root is ready".to_owned())
        })?;
        // 3. The socket is owner-only.
        let dir_mode = std::fs::metadata(&dir)
            .map_err(|e| e.to_string())?
            .permissions()
            .mode();
        let meta = std::fs::metadata(&socket).map_err(|e| format!("{}: {e}", socket.display()))?;
        if dir_mode & 0o777 != 0o700
            || meta.permissions().mode() & 0o777 != 0o600
            || !meta.file_type().is_socket()
        {
            return Err(format!(
                "socket dir mode {:o}, socket mode {:o}",
                dir_mode & 0o777,
                meta.permissions().mode() & 0o777
            ));
        }
        // 4. Status from another process.
        let text = supertrees::query_status(&socket).map_err(|e| e.to_string())?;
        for want in [
            "root  supervisor",
            "├─ root/0  worker",
            "root/2/1  worker",
            "ready",
            "up ",
        ] {
            if !text.contains(want) {
                return Err(format!("status lacks {want:?}:\n{text}"));
            }
        }
        // 4b. Another user may not ask (the runner must be root to try).
        if nix::unistd::geteuid().is_root() {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let out = std::process::Command::new(exe)
                .env(super::CLIENT_VAR, &socket)
                .env_remove("SUPERTREES_SCENARIO")
                .uid(65534)
                .gid(65534)
                .output()
                .map_err(|e| format!("starting a client as uid 65534: {e}"))?;
            let answer = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if !answer.starts_with("err ") || !answer.contains("ermission denied") {
                return Err(format!("a client of uid 65534 got {answer:?}"));
            }
            run.note(format!("uid 65534 was refused: {answer}"));
        } else {
            run.note("not root: the other-user check of the status socket was skipped".to_owned());
        }
        // 5. Garbage gets an error line; silence gets a timeout, and the root
        //    answers others meanwhile.
        let mut garbage = UnixStream::connect(&socket).map_err(|e| e.to_string())?;
        garbage
            .write_all(b"GET / HTTP/1.1\r\n")
            .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        garbage
            .set_read_timeout(Some(Duration::from_secs(3)))
            .map_err(|e| e.to_string())?;
        let _ = garbage.read_to_string(&mut answer);
        if !answer.starts_with("error: unknown request") {
            return Err(format!("garbage got {answer:?}"));
        }
        let mut silent = UnixStream::connect(&socket).map_err(|e| e.to_string())?;
        silent
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let quick = Instant::now();
        supertrees::query_status(&socket)
            .map_err(|e| format!("with a silent client connected: {e}"))?;
        let served = quick.elapsed();
        let mut answer = String::new();
        let _ = silent.read_to_string(&mut answer);
        let waited = quick.elapsed();
        if !answer.starts_with("error: timed out") || served > Duration::from_secs(1) {
            return Err(format!(
                "silent client got {answer:?} after {waited:?}; another query took {served:?}"
            ));
        }
        run.note(format!(
            "status served in {served:?} with a silent client connected; the silent one was cut off after {waited:?}"
        ));
        // 6. SIGKILL of a worker host shows up as events and in the status.
        let host = pid_in(&expect_event(run, "root/2/host", "worker host started")?)?;
        run.signal(host, Signal::SIGKILL)?;
        run.wait_for("the killed host's workers to restart", |_| {
            let text = supertrees::query_status(&socket).map_err(|e| e.to_string())?;
            let line = text
                .lines()
                .find(|l| l.contains("root/2/1  worker"))
                .unwrap_or_default()
                .to_owned();
            if line.contains("restarts 1")
                && line.contains("killed by signal SIGKILL")
                && line.contains("ready")
            {
                Ok(())
            } else {
                Err(format!("root/2/1 is {line:?}"))
            }
        })?;
        expect_event(run, "root/2/host", "killed by signal SIGKILL")?;
        // 6b. So does SIGKILL of a supervisor restarted at once: its exit is
        //     reported before its new start.
        let sup = pid_in(&expect_event(run, "root/2/2", "supervisor started")?)?;
        run.signal(sup, Signal::SIGKILL)?;
        run.wait_for("the killed supervisor to be up again", |_| {
            let text = supertrees::query_status(&socket).map_err(|e| e.to_string())?;
            let line = text
                .lines()
                .find(|l| l.contains("root/2/2  supervisor"))
                .unwrap_or_default()
                .to_owned();
            if line.contains("restarts 1")
                && line.contains("killed by signal SIGKILL")
                && line.contains("ready")
                && !line.contains(&format!("pid {sup} "))
            {
                Ok(())
            } else {
                Err(format!("root/2/2 is {line:?}"))
            }
        })?;
        // 7. Shutdown: the socket goes away.
        run.signal_root(Signal::SIGTERM)?;
        run.wait_exit()?;
        if !run.stdout().iter().any(|l| l == "returned Ok") {
            return Err("start() did not return Ok".to_owned());
        }
        expect_event(run, "root (pid", "stopping all children").or_else(|_| {
            run.stdout()
                .into_iter()
                .find(|l| l.starts_with("event root (pid") && l.contains("stopping all children"))
                .ok_or_else(|| "no stopping event for the root".to_owned())
        })?;
        if socket.exists() {
            return Err("the status socket is still there after the tree ended".to_owned());
        }
        Ok(())
    }

    pub(crate) fn sd_notify(run: &mut Run) -> Result<(), String> {
        let socket = bind_notify_socket(run)?;
        let began = Instant::now();
        let mut got: Vec<(String, Duration)> = Vec::new();
        let mut buf = [0u8; 256];
        let mut receive = |got: &mut Vec<(String, Duration)>, until: Duration| {
            let end = Instant::now() + until;
            while Instant::now() < end {
                if let Ok(n) = socket.recv(&mut buf) {
                    got.push((
                        String::from_utf8_lossy(&buf[..n]).into_owned(),
                        began.elapsed(),
                    ));
                }
            }
        };
        receive(&mut got, Duration::from_millis(1500));
        run.signal_root(Signal::SIGTERM)?;
        receive(&mut got, Duration::from_millis(500));
        run.wait_exit()?;
        let ready_line =
            line_with(run, "ready root/0/0 ").ok_or("the slow worker never got ready")?;
        let kinds: Vec<&str> = got.iter().map(|(m, _)| m.as_str()).collect();
        let ready_at = kinds.iter().position(|m| *m == "READY=1");
        let stopping_at = kinds.iter().position(|m| *m == "STOPPING=1");
        let pings = kinds.iter().filter(|m| **m == "WATCHDOG=1").count();
        match (ready_at, stopping_at) {
            (Some(r), Some(s)) if r < s && kinds.iter().filter(|m| **m == "READY=1").count() == 1 && pings >= 8 => {}
            _ => {
                return Err(format!(
                    "sd_notify messages: {got:?} (expected READY=1 once, then STOPPING=1, and WATCHDOG=1 every 100 ms)"
                ))
            }
        }
        let ready_after = got[ready_at.unwrap_or(0)].1;
        if ready_after < Duration::from_millis(250) {
            return Err(format!(
                "READY=1 came {ready_after:?} after start, before the slow worker ({ready_line})"
            ));
        }
        run.note(format!(
            "READY=1 after {ready_after:?} (slow worker 300 ms), {pings} WATCHDOG=1 pings, then STOPPING=1"
        ));
        Ok(())
    }

    pub(crate) fn sd_notify_done(run: &mut Run) -> Result<(), String> {
        let socket = bind_notify_socket(run)?;
        let status = run.wait_exit()?;
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(n) = socket.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        if status.code() != Some(0) || run.count(|l| l == "ran") != 2 {
            return Err(format!("the tree did not end normally: {status:?}"));
        }
        let without_pings: Vec<&str> = got
            .iter()
            .map(String::as_str)
            .filter(|m| *m != "WATCHDOG=1")
            .collect();
        if without_pings != ["READY=1", "STOPPING=1"] {
            return Err(format!(
                "sd_notify messages {got:?}; expected READY=1 then STOPPING=1"
            ));
        }
        run.note("a tree whose work is done sent READY=1, then STOPPING=1".to_owned());
        Ok(())
    }

    pub(crate) fn panic_in_on_event(run: &mut Run) -> Result<(), String> {
        wait_line(run, "tree-ready ")?;
        wait_line(run, "start root/0/0 ")?;
        run.signal_root(Signal::SIGTERM)?;
        let status = run.wait_exit()?;
        if status.code() != Some(0) || !run.stdout().iter().any(|l| l == "returned Ok") {
            return Err(format!("the tree did not stop cleanly: {status:?}"));
        }
        if run.stderr_count(|l| l.contains("the on_event callback panicked")) != 1 {
            return Err("the callback's panic was not logged exactly once".to_owned());
        }
        run.note(
            "a panicking on_event callback was logged and dropped; the tree ran on".to_owned(),
        );
        Ok(())
    }

    pub(crate) fn ipc_garbage(run: &mut Run) -> Result<(), String> {
        let hit = wait_line(run, "vandalised ")?;
        wait_line(run, "start vandal ")?;
        // The supervisor understood its host after the garbage: the vandal's
        // in-place restart and root/0/1 still report as events.
        run.wait_for("the restart after the garbage to be reported", |run| {
            expect_event(run, "root/0/0", "exited normally; restarting").map(|_| ())
        })?;
        let warned = run.stderr_count(|l| l.contains("garbled"));
        if warned == 0 {
            return Err(format!("no warning about garbled bytes ({hit})"));
        }
        run.signal_root(Signal::SIGTERM)?;
        let status = run.wait_exit()?;
        if status.code() != Some(0) || !run.stdout().iter().any(|l| l == "returned Ok") {
            return Err(format!("the tree did not stop cleanly: {status:?}"));
        }
        run.note(format!(
            "{hit} pipes; {warned} warning(s) about garbled bytes; tree healthy"
        ));
        Ok(())
    }

    pub(crate) fn slow_reader(run: &mut Run) -> Result<(), String> {
        // The supervisor below keeps restarting its worker at full speed
        // although the root reads events slowly.
        let first = ms_of_line(&wait_line(run, "runs 20000 ")?)?;
        let later = ms_of_line(&wait_line(run, "runs 100000 ")?)?;
        let dropped = wait_line(run, "dropped ")?;
        run.signal_root(Signal::SIGTERM)?;
        let asked = Instant::now();
        let status = run.wait_exit()?;
        let took = asked.elapsed();
        if status.code() != Some(0) || took > Duration::from_secs(3) {
            return Err(format!("the root took {took:?} to stop ({status:?})"));
        }
        run.note(format!(
            "80 000 restarts in {} ms under a 200 µs/event reader; root reported {dropped}; stopped {took:?} after SIGTERM",
            later.saturating_sub(first)
        ));
        Ok(())
    }
}
