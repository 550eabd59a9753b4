//! Scenarios for the hardening of the root (issue 11): a slow `on_event`
//! callback under a flood of events must not hold the root's loop (signals,
//! status requests, watchdog pings), the status must stay current under a
//! flood, the watchdog interval has a floor, and the status socket copes
//! with a reconnect flood, half-sent requests and unsafe directories.
//! Included by `main.rs`: each scenario body runs in its own process, each
//! drive in the runner.

use std::path::PathBuf;

/// The directory of the scenario whose root is `run`'s.
fn dir_of_run(run: &super::runner::Run) -> PathBuf {
    super::observe::dir_of(run.pid())
}

/// Where the status socket of the scenario whose directory is `dir` is: in
/// a directory of its own, which the tree creates (the runner may create
/// `dir` itself, for the notify socket, with another mode).
fn status_socket_in(dir: &std::path::Path) -> PathBuf {
    dir.join("run").join("status.sock")
}

pub(crate) mod scenario {
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    use supertrees::{BackoffPolicy, BoxFuture, EventKind, Restartable, Supertree, Worker};

    use super::super::observe::scenario::Spinner;
    use super::super::observe::{now_ms, test_dir};
    use super::super::scenario::report;

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

    /// Returns at once; never restarted.
    struct Once;

    impl Worker for Once {
        fn init(&self) -> BoxFuture {
            Box::pin(async {})
        }
    }

    impl Restartable for Once {
        fn restart_policy(&self) -> supertrees::RestartPolicy {
            supertrees::RestartPolicy::Never
        }
    }

    /// The scenario's status socket path; its directory's parent is made
    /// here (the tree makes only the socket's own directory).
    fn status_socket() -> std::path::PathBuf {
        let dir = test_dir();
        if let Err(err) = std::fs::create_dir_all(&dir) {
            println!("setup failed: {}: {err}", dir.display());
        }
        super::status_socket_in(&dir)
    }

    /// The slow callback: 10 ms per event; prints `dropped <n>` for each
    /// report of events it missed, and `callback <event>` for the root's
    /// shutdown.
    fn slow_callback(event: &supertrees::Event) {
        match event.kind {
            EventKind::Dropped(n) => println!("dropped {n}"),
            EventKind::Stopping { .. } if event.path == "root" => println!("callback {event}"),
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(10));
    }

    /// Waits for the runner's notify socket and points `NOTIFY_SOCKET` at
    /// it, with `WATCHDOG_USEC=watchdog_usec`.
    fn use_notify_socket(watchdog_usec: &str) {
        let socket = test_dir().join("notify.sock");
        for _ in 0..500 {
            if socket.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Single-threaded here: nothing else reads the environment.
        std::env::set_var("NOTIFY_SOCKET", &socket);
        std::env::set_var("WATCHDOG_USEC", watchdog_usec);
    }

    /// A worker of the root restarting in place as fast as it can, a 10 ms
    /// `on_event` callback, the status socket, and a 200 ms systemd
    /// watchdog (pings every 100 ms).
    pub(crate) fn slow_on_event() {
        use_notify_socket("200000");
        let result = Supertree::new()
            .add_worker(Spinner)
            .add_worker(Marker("root/1"))
            .status_socket(status_socket())
            .on_event(slow_callback)
            .start();
        report(result);
    }

    /// A supervisor below the root floods the event pipe (its worker
    /// restarts in place in a tight loop) while the root's callback takes
    /// 10 ms per event; the runner kills hosts and watches the status.
    pub(crate) fn flood_status() {
        let result = Supertree::new()
            .add_supervisor(|s| s.add_worker(Spinner).add_worker(Marker("root/0/1")))
            .add_supervisor(|s| s.add_worker(Marker("root/1/0")))
            .status_socket(status_socket())
            .on_event(slow_callback)
            .start();
        report(result);
    }

    /// `WATCHDOG_USEC=1`: the root must not spin.
    pub(crate) fn watchdog_floor() {
        use_notify_socket("1");
        let result = Supertree::new().add_worker(Marker("root/0")).start();
        report(result);
    }

    /// A plain tree serving the status socket until SIGTERM.
    pub(crate) fn status_abuse() {
        let result = Supertree::new()
            .add_worker(Marker("root/0"))
            .status_socket(status_socket())
            .start();
        report(result);
    }

    /// Makes `dir` with exactly `mode`.
    fn make_dir(dir: &std::path::Path, mode: u32) {
        if let Err(err) = std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)))
        {
            println!("setup failed: {}: {err}", dir.display());
        }
    }

    /// Prints `<tag> <what start() returned>`, for a tree that ends at once.
    fn try_socket(tag: &str, socket: std::path::PathBuf) {
        let result = Supertree::new()
            .add_worker(Once)
            .status_socket(socket)
            .start();
        match result {
            Ok(()) => println!("{tag} Ok"),
            Err(err) => println!("{tag} Err {err}"),
        }
    }

    /// Status socket paths that must be refused, leaving nothing behind,
    /// and one under a sticky world-writable directory that is fine.
    pub(crate) fn status_dirs() {
        let dir = test_dir();
        make_dir(&dir, 0o700);
        // Too long for a Unix socket address, in a directory that does not
        // exist yet: refused, and the directory is not left behind.
        let fresh = dir.join("fresh");
        try_socket("long", fresh.join(format!("{}.sock", "x".repeat(200))));
        println!("fresh-exists {}", fresh.exists());
        // Under a directory anyone can write to, without the sticky bit:
        // anyone could swap the socket's directory.
        let open = dir.join("open");
        make_dir(&open, 0o777);
        try_socket("open", open.join("run").join("status.sock"));
        println!("open-run-exists {}", open.join("run").exists());
        // The same with the sticky bit (like /tmp) is fine.
        let sticky = dir.join("sticky");
        make_dir(&sticky, 0o1777);
        try_socket("sticky", sticky.join("run").join("status.sock"));
        report(Ok(()));
    }
}

pub(crate) mod drive {
    use std::io::{Read, Write};
    use std::os::unix::net::{UnixDatagram, UnixStream};
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use nix::sys::signal::Signal;

    use super::super::drive::{line_with, wait_line};
    use super::super::runner::Run;
    use super::dir_of_run;

    /// The systemd notify socket the scenario waits for, receiving with a
    /// 20 ms timeout.
    fn bind_notify_socket(run: &Run) -> Result<UnixDatagram, String> {
        super::super::drive::bind_notify_socket(&dir_of_run(run), Duration::from_millis(20))
    }

    /// The times (since `began`) of the `WATCHDOG=1` pings received during
    /// `span`, and how many datagrams came in all.
    fn pings(socket: &UnixDatagram, span: Duration) -> (Vec<Duration>, usize) {
        let began = Instant::now();
        let mut at = Vec::new();
        let mut all = 0;
        let mut buf = [0u8; 256];
        while began.elapsed() < span {
            if let Ok(n) = socket.recv(&mut buf) {
                all += 1;
                if &buf[..n] == b"WATCHDOG=1" {
                    at.push(began.elapsed());
                }
            }
        }
        (at, all)
    }

    /// The longest time without a ping over `span`, counting from its start
    /// and to its end.
    fn max_gap(at: &[Duration], span: Duration) -> Duration {
        let mut last = Duration::ZERO;
        let mut gap = Duration::ZERO;
        for &t in at.iter().chain([span].iter()) {
            gap = gap.max(t.saturating_sub(last));
            last = t;
        }
        gap
    }

    /// Asks for the status; the answer and how long it took.
    fn timed_status(socket: &Path) -> (Result<String, String>, Duration) {
        let asked = Instant::now();
        let answer = supertrees::query_status(socket).map_err(|e| e.to_string());
        (answer, asked.elapsed())
    }

    /// The line of the status `text` about `path` (`<path>  ` follows).
    fn status_line<'a>(text: &'a str, path: &str) -> &'a str {
        let key = format!("{path}  ");
        text.lines().find(|l| l.contains(&key)).unwrap_or_default()
    }

    fn pid_in_status(line: &str) -> Option<i32> {
        line.split("  pid ").nth(1)?.split(' ').next()?.parse().ok()
    }

    /// The CPU time (user + system, in clock ticks) the process `pid` used.
    fn cpu_ticks(pid: i32) -> Result<u64, String> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
        let rest: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // Fields 14 and 15 (utime, stime); `rest` starts at field 3.
        let field = |n: usize| -> Result<u64, String> {
            rest.get(n - 3)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("no field {n} in /proc/{pid}/stat"))
        };
        Ok(field(14)? + field(15)?)
    }

    /// Sends SIGTERM to the root; how long it took to exit, which it must
    /// have done with `returned Ok`.
    fn term_and_time(run: &mut Run) -> Result<Duration, String> {
        run.signal_root(Signal::SIGTERM)?;
        let asked = Instant::now();
        let status = run.wait_exit()?;
        let took = asked.elapsed();
        if status.code() != Some(0) || !run.stdout().iter().any(|l| l == "returned Ok") {
            return Err(format!(
                "the tree did not stop cleanly after SIGTERM ({status:?}, {took:?})"
            ));
        }
        Ok(took)
    }

    /// Fault 1: status requests answered, watchdog pinged and SIGTERM obeyed
    /// promptly while a 10 ms callback faces a restart flood.
    pub(crate) fn slow_on_event(run: &mut Run) -> Result<(), String> {
        let notify = bind_notify_socket(run)?;
        let socket = super::status_socket_in(&dir_of_run(run));
        wait_line(run, "start root/1 ")?;
        // The flood is on from the start; let the callback fall behind.
        std::thread::sleep(Duration::from_secs(1));
        let span = Duration::from_secs(2);
        let (at, _) = pings(&notify, span);
        let gap = max_gap(&at, span);
        let mut slowest = Duration::ZERO;
        let mut failed = Vec::new();
        for _ in 0..5 {
            let (answer, took) = timed_status(&socket);
            match answer {
                Ok(text) if text.contains("root/0  worker") => {}
                Ok(text) => failed.push(format!("the status lacks root/0:\n{text}")),
                Err(err) => failed.push(format!("{err} (after {took:?})")),
            }
            slowest = slowest.max(took);
        }
        let dropped = line_with(run, "dropped ").unwrap_or_else(|| "no drop report".to_owned());
        let took = term_and_time(run)?;
        run.note(format!(
            "10 ms on_event under a restart flood: {} pings in {span:?}, longest gap {gap:?} \
             (interval 100 ms); slowest of 5 status queries {slowest:?}, {} failed; the \
             callback got `{dropped}`; stopped {took:?} after SIGTERM",
            at.len(),
            failed.len()
        ));
        if !failed.is_empty() {
            return Err(format!("status queries failed: {failed:?}"));
        }
        if !dropped.starts_with("dropped ") {
            return Err("the callback was never told of dropped events".to_owned());
        }
        if line_with(run, "callback root ").is_none() {
            return Err("the callback never saw the root's shutdown".to_owned());
        }
        if gap > Duration::from_millis(300) {
            return Err(format!("a watchdog ping gap of {gap:?} (interval 100 ms)"));
        }
        if slowest > Duration::from_secs(1) {
            return Err(format!("a status query took {slowest:?}"));
        }
        if took > Duration::from_secs(3) {
            return Err(format!("the root took {took:?} to stop after SIGTERM"));
        }
        Ok(())
    }

    /// Waits until the status shows a host at `host` other than `old`,
    /// killed by SIGKILL, and `worker`'s line contains `want`; returns how
    /// long after `since` that was, and the status.
    fn wait_fresh(
        run: &mut Run,
        socket: &Path,
        (host, old): (&str, i32),
        (worker, want): (&str, &str),
        since: Instant,
    ) -> Result<(Duration, String), String> {
        let (text, seen) = run.wait_for(&format!("the status to show a new {host}"), |_| {
            let text = supertrees::query_status(socket).map_err(|e| e.to_string())?;
            let host_line = status_line(&text, host);
            let worker_line = status_line(&text, worker);
            let fresh = pid_in_status(host_line).is_some_and(|pid| pid != old)
                && host_line.contains("killed by signal SIGKILL")
                && worker_line.contains(want);
            if fresh {
                Ok((text, since.elapsed()))
            } else {
                Err(format!("{host_line:?} / {worker_line:?}"))
            }
        })?;
        Ok((seen, text))
    }

    /// The pid of `host` in the status, once it has one.
    fn host_pid(run: &mut Run, socket: &Path, host: &str) -> Result<i32, String> {
        run.wait_for(&format!("a pid for {host} in the status"), |_| {
            let text = supertrees::query_status(socket).map_err(|e| e.to_string())?;
            pid_in_status(status_line(&text, host))
                .ok_or_else(|| format!("no pid for {host} in the status:\n{text}"))
        })
    }

    /// The status's line about the events it missed.
    fn missed(text: &str) -> String {
        text.lines()
            .find(|l| l.contains("events dropped"))
            .unwrap_or("(no events dropped)")
            .to_owned()
    }

    /// Fault 2: the status stays current under a flood of events and says
    /// how many it missed.
    pub(crate) fn flood_status(run: &mut Run) -> Result<(), String> {
        let socket = super::status_socket_in(&dir_of_run(run));
        wait_line(run, "start root/1/0 ")?;
        wait_line(run, "runs 20000 ")?;
        // Let the flood fill whatever it fills.
        std::thread::sleep(Duration::from_secs(1));
        let mut notes = Vec::new();
        // A quiet supervisor's host, then the flooding one's.
        for (host, worker) in [("root/1/host", "root/1/0"), ("root/0/host", "root/0/1")] {
            let old = host_pid(run, &socket, host)?;
            run.signal(old, Signal::SIGKILL)?;
            let killed = Instant::now();
            let (seen, text) = wait_fresh(
                run,
                &socket,
                (host, old),
                (worker, "killed by signal SIGKILL"),
                killed,
            )?;
            notes.push(format!(
                "{host} SIGKILLed: in the status after {seen:?}; {}",
                missed(&text)
            ));
            if seen > Duration::from_millis(1500) {
                run.note(notes.join("; "));
                return Err(format!(
                    "the status took {seen:?} to show the killed {host}"
                ));
            }
        }
        // The root stops reading for 0.6 s (SIGSTOP): the flood fills the
        // pipe, and both hosts are killed meanwhile. Once the root goes on,
        // the status shows both new hosts (although the quiet supervisor
        // has nothing more to say), and the count of the events it missed.
        let quiet = host_pid(run, &socket, "root/1/host")?;
        let flooding = host_pid(run, &socket, "root/0/host")?;
        run.signal_root(Signal::SIGSTOP)?;
        std::thread::sleep(Duration::from_millis(300));
        run.signal(quiet, Signal::SIGKILL)?;
        run.signal(flooding, Signal::SIGKILL)?;
        std::thread::sleep(Duration::from_millis(300));
        run.signal_root(Signal::SIGCONT)?;
        let resumed = Instant::now();
        for (host, old, worker) in [
            ("root/1/host", quiet, "root/1/0"),
            ("root/0/host", flooding, "root/0/1"),
        ] {
            let (seen, text) =
                wait_fresh(run, &socket, (host, old), (worker, "restarts 2"), resumed)?;
            notes.push(format!(
                "{host} SIGKILLed while the root was stopped: in the status {seen:?} after it \
                 went on; {}",
                missed(&text)
            ));
            if seen > Duration::from_millis(1500) || !text.contains("events dropped") {
                run.note(notes.join("; "));
                return Err(format!(
                    "after the root went on, the status took {seen:?} to show the killed \
                     {host} and said {:?}",
                    missed(&text)
                ));
            }
        }
        let took = term_and_time(run)?;
        notes.push(format!("stopped {took:?} after SIGTERM"));
        run.note(notes.join("; "));
        Ok(())
    }

    /// Fault 3a: `WATCHDOG_USEC=1` is clamped: the root neither spins nor
    /// floods its log.
    pub(crate) fn watchdog_floor(run: &mut Run) -> Result<(), String> {
        let notify = bind_notify_socket(run)?;
        wait_line(run, "start root/0 ")?;
        let root = run.pid();
        let span = Duration::from_secs(1);
        let before = cpu_ticks(root)?;
        let (at, all) = pings(&notify, span);
        let used = cpu_ticks(root)?.saturating_sub(before);
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100) as f64;
        let cpu = used as f64 / hz / span.as_secs_f64() * 100.0;
        let took = term_and_time(run)?;
        let warnings = run.stderr_count(|l| l.contains("WARN"));
        run.note(format!(
            "WATCHDOG_USEC=1: root CPU {cpu:.0} %, {} pings ({all} datagrams) in {span:?}, \
             {warnings} warning line(s); stopped {took:?} after SIGTERM",
            at.len()
        ));
        if cpu > 25.0 || at.len() > 150 || warnings > 2 {
            return Err(format!(
                "the root used {cpu:.0} % CPU, pinged {} times and logged {warnings} warnings",
                at.len()
            ));
        }
        if run.stderr_count(|l| l.contains("WATCHDOG_USEC")) != 1 {
            return Err("the clamped interval was not logged exactly once".to_owned());
        }
        Ok(())
    }

    /// Connects, sends `request`, half-closes, and reads the answer.
    fn half_sent(socket: &Path, request: &[u8]) -> Result<String, String> {
        let mut stream = UnixStream::connect(socket).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        stream.write_all(request).map_err(|e| e.to_string())?;
        stream
            .shutdown(std::net::Shutdown::Write)
            .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .map_err(|e| format!("reading the answer to {request:?}: {e}"))?;
        Ok(answer)
    }

    /// Fault 3b: a half-sent request gets an error line; a same-uid
    /// reconnect flood does not lock others out.
    pub(crate) fn status_abuse(run: &mut Run) -> Result<(), String> {
        let socket = super::status_socket_in(&dir_of_run(run));
        wait_line(run, "start root/0 ")?;
        let mut problems = Vec::new();
        for request in [&b"stat"[..], b"status"] {
            let answer = half_sent(&socket, request)?;
            if !answer.starts_with("error: ") {
                problems.push(format!(
                    "{:?} then EOF got {answer:?}",
                    String::from_utf8_lossy(request)
                ));
            }
        }
        // Flooders: connect, say nothing, wait to be cut off, reconnect.
        let stop = Arc::new(AtomicBool::new(false));
        let connects = Arc::new(AtomicU64::new(0));
        let flooders: Vec<_> = (0..48)
            .map(|_| {
                let (stop, connects, socket) = (stop.clone(), connects.clone(), socket.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(mut stream) = UnixStream::connect(&socket) else {
                            std::thread::sleep(Duration::from_millis(1));
                            continue;
                        };
                        connects.fetch_add(1, Ordering::Relaxed);
                        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                        let mut sink = Vec::new();
                        let _ = stream.read_to_end(&mut sink);
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let mut results = Vec::new();
        for _ in 0..10 {
            results.push(timed_status(&socket));
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::Relaxed);
        for flooder in flooders {
            let _ = flooder.join();
        }
        let took = term_and_time(run)?;
        let failed: Vec<String> = results
            .iter()
            .filter_map(|(answer, took)| answer.as_ref().err().map(|e| format!("{e} ({took:?})")))
            .collect();
        let slowest = results.iter().map(|(_, t)| *t).max().unwrap_or_default();
        run.note(format!(
            "half-sent requests: {}; under a flood of 48 idle reconnecting clients \
             ({} connections) {} of 10 status queries answered, slowest {slowest:?}; \
             stopped {took:?} after SIGTERM",
            if problems.is_empty() {
                "error lines"
            } else {
                "no answer"
            },
            connects.load(Ordering::Relaxed),
            10 - failed.len()
        ));
        if !failed.is_empty() {
            problems.push(format!("status queries failed under the flood: {failed:?}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// Fault 3c: unsafe or impossible socket paths are refused with an
    /// error naming the path, and leave nothing behind.
    pub(crate) fn status_dirs(run: &mut Run) -> Result<(), String> {
        run.wait_exit()?;
        let dir = dir_of_run(run);
        let line = |prefix: &str| line_with(run, prefix).unwrap_or_default();
        if let Some(setup) = line_with(run, "setup failed") {
            return Err(setup);
        }
        let long = line("long ");
        if !long.starts_with("long Err") || !long.contains("too long") {
            return Err(format!("a too-long socket path gave {long:?}"));
        }
        if line("fresh-exists ") != "fresh-exists false" {
            return Err("the directory made for a too-long socket path was left behind".into());
        }
        let open = line("open ");
        let open_dir = dir.join("open").display().to_string();
        if !open.starts_with("open Err") || !open.contains(&open_dir) || !open.contains("writable")
        {
            return Err(format!(
                "a socket under the world-writable {open_dir} gave {open:?}"
            ));
        }
        if line("open-run-exists ") != "open-run-exists false" {
            return Err("a directory was created under the world-writable one".into());
        }
        let sticky = line("sticky ");
        if sticky != "sticky Ok" {
            return Err(format!("a socket under a sticky directory gave {sticky:?}"));
        }
        run.note(format!("{long}; {open}"));
        Ok(())
    }
}
