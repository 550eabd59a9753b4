//! Listening sockets declared on the tree (`with_listener`): bound in the
//! root before anything is forked and inherited by every process, so that a
//! connection that arrives while the serving worker restarts (even after a
//! SIGKILL of its host) waits in the backlog instead of being refused.
//!
//! Kill storms against a tree's listener and, for comparison, against a
//! worker that binds its own port on every start; a socket passed by
//! systemd socket activation; and the errors: an address in use, an unknown
//! name, and what may lie at a Unix socket's path.
//!
//! A storm: one thread of the runner echoes one line over a fresh
//! connection after another (read timeout 1 s; after a failed attempt it
//! waits 1 ms), while the drive SIGKILLs the echo worker's current host
//! (its latest `host <pid>` line) once that host has run for 120 ms, and
//! at least 120 ms after the previous kill. The worker has the default
//! backoff (50 ms, ×1.2 per consecutive restart), so 25 kills take some
//! 25 s: the later restarts wait seconds. Percentiles are over every
//! attempt, a failed one counting as slower than any echo.

pub(crate) mod scenario {
    use std::net::SocketAddr;
    use std::path::Path;
    use std::time::Duration;

    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    use supertrees::{BackoffPolicy, Listen, RestartPolicy, Supertree};
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    use crate::scenario::{report, Life};

    pub(crate) fn loopback(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// Where the echo worker's listening socket comes from.
    #[derive(Clone, Copy)]
    enum Source {
        /// `tcp_listener(name)`: the tree's.
        Tree(&'static str),
        /// Bound by the worker itself, on every start.
        Own(SocketAddr),
        /// `unix_listener(name)`.
        Unix(&'static str),
    }

    /// An echo server, restarted always, with the default backoff. Prints
    /// `host <pid>` on every start, then `listening on <addr>`.
    fn echo_worker(source: Source) -> Life {
        let mut life = Life::new(move || Box::pin(serve(source)));
        life.restart = RestartPolicy::Always;
        life.backoff = BackoffPolicy::default();
        life
    }

    async fn serve(source: Source) {
        println!("host {}", std::process::id());
        match source {
            Source::Tree(name) => {
                let listener = match supertrees::tcp_listener(name)
                    .and_then(tokio::net::TcpListener::from_std)
                {
                    Ok(listener) => listener,
                    Err(err) => return println!("listener error: {err}"),
                };
                announce(listener.local_addr());
                // What systemd passed is the root's business only.
                let env: Vec<String> = ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"]
                    .iter()
                    .filter_map(|v| Some(format!("{v}={}", std::env::var(v).ok()?)))
                    .collect();
                if env.is_empty() {
                    println!("listen-env none");
                } else {
                    println!("listen-env {}", env.join(" "));
                }
                loop {
                    if let Ok((stream, _)) = listener.accept().await {
                        supertrees::spawn(echo(stream));
                    }
                }
            }
            Source::Own(addr) => {
                let listener = match tokio::net::TcpListener::bind(addr).await {
                    Ok(listener) => listener,
                    // Returns: restarted after its backoff.
                    Err(err) => return println!("bind error: {err}"),
                };
                announce(listener.local_addr());
                loop {
                    if let Ok((stream, _)) = listener.accept().await {
                        supertrees::spawn(echo(stream));
                    }
                }
            }
            Source::Unix(name) => {
                let listener = match supertrees::unix_listener(name)
                    .and_then(tokio::net::UnixListener::from_std)
                {
                    Ok(listener) => listener,
                    Err(err) => return println!("listener error: {err}"),
                };
                match listener.local_addr() {
                    Ok(addr) => match addr.as_pathname() {
                        Some(path) => println!("listening on {}", path.display()),
                        None => println!("listening on an unnamed socket"),
                    },
                    Err(err) => println!("local_addr error: {err}"),
                }
                loop {
                    if let Ok((stream, _)) = listener.accept().await {
                        supertrees::spawn(echo(stream));
                    }
                }
            }
        }
    }

    fn announce(addr: std::io::Result<SocketAddr>) {
        match addr {
            Ok(addr) => println!("listening on {addr}"),
            Err(err) => println!("local_addr error: {err}"),
        }
    }

    /// Echoes what the peer sends until it closes the connection.
    pub(crate) async fn echo(mut stream: impl AsyncRead + AsyncWrite + Unpin) {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if stream.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// The runner's kill storm against the tree's listener.
    pub(crate) fn kill_storm() {
        report(
            Supertree::new()
                .with_listener("echo", Listen::tcp(loopback(0)))
                .add_worker(echo_worker(Source::Tree("echo")))
                .start(),
        );
    }

    /// The same storm against a worker that binds a fixed port itself on
    /// every start: a port free now, picked before `start()`.
    pub(crate) fn kill_storm_unbound() {
        let addr = match std::net::TcpListener::bind(loopback(0)).and_then(|l| l.local_addr()) {
            Ok(addr) => addr,
            Err(err) => return println!("no free port: {err}"),
        };
        report(
            Supertree::new()
                .add_worker(echo_worker(Source::Own(addr)))
                .start(),
        );
    }

    /// Run by the runner under `systemd-socket-activate --fdname=echo`
    /// (without it: no `LISTEN_FDS`, and `start()` must fail).
    pub(crate) fn systemd() {
        report(
            Supertree::new()
                .with_listener("echo", Listen::systemd("echo"))
                .add_worker(echo_worker(Source::Tree("echo")))
                .start(),
        );
    }

    /// An address in use: `start()` fails before anything is forked, and
    /// names the listener; so does an address not permitted (checked when
    /// this process may not bind port 1 itself) and one of no interface.
    pub(crate) fn in_use() {
        let taken = match std::net::TcpListener::bind(loopback(0)) {
            Ok(taken) => taken,
            Err(err) => return println!("no free port: {err}"),
        };
        let addr = taken.local_addr().unwrap_or(loopback(0));
        println!("taken {addr}");
        report(
            Supertree::new()
                .with_listener("busy", Listen::tcp(addr))
                .add_worker(echo_worker(Source::Tree("busy")))
                .start(),
        );
        match std::net::TcpListener::bind(loopback(1)) {
            Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => {
                let result = Supertree::new()
                    .with_listener("lowport", Listen::tcp(loopback(1)))
                    .add_worker(echo_worker(Source::Tree("lowport")))
                    .start();
                match result {
                    Ok(()) => println!("not-permitted: Ok"),
                    Err(err) => println!("not-permitted: Err {err}"),
                }
            }
            Ok(_) => println!("not-permitted skipped: this process may bind port 1"),
            Err(err) => println!("not-permitted skipped: binding port 1 gave {err}"),
        }
        // An address of no interface here (TEST-NET-1): not available.
        let elsewhere = SocketAddr::from(([192, 0, 2, 1], 7880));
        outcome(
            "not-local",
            Supertree::new()
                .with_listener("elsewhere", Listen::tcp(elsewhere))
                .add_worker(echo_worker(Source::Tree("elsewhere")))
                .start(),
        );
        // The runner counts this tree's processes meanwhile.
        println!("counting");
        std::thread::sleep(Duration::from_millis(500));
        drop(taken);
    }

    /// Asks for names: unknown ones, and one of a supervisor it is not under.
    pub(crate) fn unknown_name() {
        let root = std::process::id();
        fn ask(place: &'static str) {
            for name in ["nope", "inner", "echo"] {
                match supertrees::tcp_listener(name) {
                    Ok(_) => println!("found {name} in {place}"),
                    Err(err) => println!("error {name} in {place}: {err}"),
                }
            }
            if let Err(err) = supertrees::unix_listener("nope") {
                println!("unix error nope in {place}: {err}");
            }
        }
        let in_root = Life::new(move || {
            Box::pin(async move {
                ask("root");
                tokio::time::sleep(Duration::from_millis(300)).await;
                let _ = kill(Pid::from_raw(root as i32), Signal::SIGTERM);
            })
        });
        let in_s1 = Life::new(|| Box::pin(async { ask("s1") }));
        report(
            Supertree::new()
                .with_listener("echo", Listen::tcp(loopback(0)))
                .add_supervisor(|s| {
                    s.with_listener("inner", Listen::tcp(loopback(0)))
                        .add_worker(in_s1)
                })
                .add_worker(in_root)
                .start(),
        );
    }

    fn unix_tree(path: &Path) -> Supertree {
        Supertree::new()
            .with_listener("echo", Listen::unix(path))
            .add_worker(echo_worker(Source::Unix("echo")))
    }

    fn outcome(what: &str, result: Result<(), supertrees::Error>) {
        match result {
            Ok(()) => println!("{what}: Ok"),
            Err(err) => println!("{what}: Err {err}"),
        }
    }

    /// A Unix socket in a temporary directory: a regular file and a
    /// symlink at its path make `start()` fail and are left as they were;
    /// a stale socket (bound, then closed: what a killed tree leaves) is
    /// replaced; the runner echoes, SIGKILLs the host, echoes again, then
    /// stops the tree, which removes the socket.
    pub(crate) fn unix() {
        let dir = std::env::temp_dir().join(format!("supertrees-listen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(err) = std::fs::create_dir_all(&dir) {
            return println!("no directory {}: {err}", dir.display());
        }
        let path = dir.join("echo.sock");
        let target = dir.join("target");
        let setup = || -> std::io::Result<()> {
            std::fs::write(&path, b"not a socket")?;
            outcome("regular-file", unix_tree(&path).start());
            let kept = std::fs::read(&path).ok();
            println!(
                "regular-file untouched {}",
                kept.as_deref() == Some(&b"not a socket"[..])
            );
            std::fs::remove_file(&path)?;
            std::fs::write(&target, b"the target")?;
            std::os::unix::fs::symlink(&target, &path)?;
            outcome("symlink", unix_tree(&path).start());
            let link = std::fs::read_link(&path).ok();
            let kept = std::fs::read(&target).ok();
            println!(
                "symlink untouched {}",
                link.as_deref() == Some(target.as_path())
                    && kept.as_deref() == Some(&b"the target"[..])
            );
            std::fs::remove_file(&path)?;
            drop(std::os::unix::net::UnixListener::bind(&path)?);
            println!("stale socket left {}", path.exists());
            Ok(())
        };
        if let Err(err) = setup() {
            println!("setup error: {err}");
            let _ = std::fs::remove_dir_all(&dir);
            return;
        }
        println!("unix-path {}", path.display());
        report(unix_tree(&path).start());
        println!("after: socket exists {}", path.symlink_metadata().is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

pub(crate) mod drive {
    use std::net::SocketAddr;
    use std::os::unix::net::UnixStream;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use nix::sys::signal::Signal;

    use crate::drive::{expect_exit_code, expect_prefix_once, wait_line};
    use crate::echo_client::{echo_on, echo_tcp, storm_client, Outcome};
    use crate::runner::Run;
    use crate::SCENARIO_VAR;

    /// Kills per storm.
    const KILLS: usize = 25;
    /// How long each host runs before it is killed; the least time between
    /// two kills.
    const KILL_EVERY: Duration = Duration::from_millis(120);

    /// The port the scenario under `systemd-socket-activate` runs on, 0
    /// when it runs without it.
    pub(crate) static SYSTEMD_PORT: AtomicU16 = AtomicU16::new(0);

    /// The command of `listener_systemd`: this binary under
    /// `systemd-socket-activate --fdname=echo -l 127.0.0.1:<free port>`,
    /// or plainly when that is not on `PATH`.
    pub(crate) fn systemd_command(exe: &Path) -> Command {
        activated(exe, "listener_systemd")
    }

    /// Scenario `name` (this binary) under `systemd-socket-activate
    /// --fdname=echo -l 127.0.0.1:<free port>`, the port kept in
    /// [`SYSTEMD_PORT`]; plainly (port 0) when that is not on `PATH`.
    pub(crate) fn activated(exe: &Path, name: &str) -> Command {
        let activate = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("systemd-socket-activate"))
                .find(|p| p.is_file())
        });
        let port = free_port();
        let mut cmd = match (activate, port) {
            (Some(activate), Some(port)) => {
                SYSTEMD_PORT.store(port, Ordering::SeqCst);
                let mut cmd = Command::new(activate);
                // It passes on only the variables named with -E.
                cmd.arg("--fdname=echo")
                    .arg("-l")
                    .arg(format!("127.0.0.1:{port}"))
                    .arg(format!("-E{SCENARIO_VAR}={name}"))
                    .arg("-ERUST_LOG")
                    .arg(exe);
                cmd
            }
            _ => {
                SYSTEMD_PORT.store(0, Ordering::SeqCst);
                Command::new(exe)
            }
        };
        cmd.env(SCENARIO_VAR, name);
        cmd
    }

    fn free_port() -> Option<u16> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
        Some(listener.local_addr().ok()?.port())
    }

    /// What a storm measured.
    struct Storm {
        attempts: usize,
        echoed: usize,
        refused: usize,
        timed_out: usize,
        failed: usize,
        /// Over every attempt; `None`: a failed one (slower than any echo).
        p50: Option<Duration>,
        p99: Option<Duration>,
        slowest_echo: Duration,
        kills: usize,
        took: Duration,
    }

    impl Storm {
        fn ok_share(&self) -> f64 {
            self.echoed as f64 / self.attempts.max(1) as f64
        }

        fn describe(&self) -> String {
            let p = |d: Option<Duration>| {
                d.map_or("failed".to_owned(), |d| {
                    format!("{:.2} ms", d.as_secs_f64() * 1e3)
                })
            };
            format!(
                "{} kills in {:.1} s: {} attempts, {} echoed ({:.2} %), {} refused, {} timed out, {} failed otherwise; p50 {}, p99 {}, slowest echo {:.1} ms",
                self.kills,
                self.took.as_secs_f64(),
                self.attempts,
                self.echoed,
                self.ok_share() * 100.0,
                self.refused,
                self.timed_out,
                self.failed,
                p(self.p50),
                p(self.p99),
                self.slowest_echo.as_secs_f64() * 1e3,
            )
        }
    }

    /// The latest `host <pid>` line's pid.
    pub(crate) fn latest_host(run: &Run) -> Option<i32> {
        run.stdout()
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("host ")?.parse().ok())
    }

    /// The address of the first `listening on <addr>` line.
    pub(crate) fn listening_on(run: &mut Run) -> Result<SocketAddr, String> {
        let line = wait_line(run, "listening on ")?;
        let addr = &line["listening on ".len()..];
        addr.parse()
            .map_err(|e| format!("bad address in {line:?}: {e}"))
    }

    /// Echoes in a loop on a thread of its own while this thread kills the
    /// current host `kills` times.
    fn storm(run: &mut Run, addr: SocketAddr, kills: usize) -> Result<Storm, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let client = storm_client(addr, stop.clone());
        let began = Instant::now();
        let killed = kill_hosts(run, kills);
        stop.store(true, Ordering::Relaxed);
        let took = began.elapsed();
        let samples = client
            .join()
            .map_err(|_| "the echo client panicked".to_owned())?;
        let kills = killed?;
        Ok(figures(&samples, kills, took))
    }

    /// SIGKILLs the latest host once it has run for [`KILL_EVERY`], at
    /// least [`KILL_EVERY`] after the previous kill, `kills` times.
    fn kill_hosts(run: &mut Run, kills: usize) -> Result<usize, String> {
        let mut killed: Vec<i32> = Vec::new();
        let mut last_kill: Option<Instant> = None;
        while killed.len() < kills {
            let host = run.wait_for("a new worker host", |run| match latest_host(run) {
                Some(pid) if !killed.contains(&pid) => Ok(pid),
                other => Err(format!("latest host {other:?}, killed {killed:?}")),
            })?;
            let mut at = Instant::now() + KILL_EVERY;
            if let Some(last) = last_kill {
                at = at.max(last + KILL_EVERY);
            }
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            run.signal(host, Signal::SIGKILL)?;
            last_kill = Some(Instant::now());
            killed.push(host);
        }
        // The last restart is served too.
        run.wait_for("the worker back after the storm", |run| {
            match latest_host(run) {
                Some(pid) if !killed.contains(&pid) => Ok(()),
                other => Err(format!("latest host {other:?}")),
            }
        })?;
        std::thread::sleep(KILL_EVERY);
        Ok(killed.len())
    }

    fn figures(samples: &[(Outcome, Duration)], kills: usize, took: Duration) -> Storm {
        let count = |o: Outcome| samples.iter().filter(|s| s.0 == o).count();
        // Failed attempts sort after every echo.
        let mut times: Vec<Option<Duration>> = samples
            .iter()
            .map(|&(o, d)| (o == Outcome::Echoed).then_some(d))
            .collect();
        times.sort_by_key(|t| (t.is_none(), *t));
        let pct = |p: f64| -> Option<Duration> {
            if times.is_empty() {
                return None;
            }
            let rank = (p * times.len() as f64).ceil() as usize;
            times[rank.clamp(1, times.len()) - 1]
        };
        Storm {
            attempts: samples.len(),
            echoed: count(Outcome::Echoed),
            refused: count(Outcome::Refused),
            timed_out: count(Outcome::TimedOut),
            failed: count(Outcome::Failed),
            p50: pct(0.5),
            p99: pct(0.99),
            slowest_echo: samples
                .iter()
                .filter(|s| s.0 == Outcome::Echoed)
                .map(|s| s.1)
                .max()
                .unwrap_or_default(),
            kills,
            took,
        }
    }

    /// Stops the tree with SIGTERM: exit 0, `returned Ok`.
    pub(crate) fn stop(run: &mut Run) -> Result<(), String> {
        run.signal_root(Signal::SIGTERM)?;
        expect_exit_code(run, 0)?;
        expect_prefix_once(run, "returned Ok").map(drop)
    }

    /// The targets of a storm against a tree's listener.
    fn check_storm(storm: &Storm) -> Result<(), String> {
        let mut missed = Vec::new();
        if storm.refused > 0 {
            missed.push(format!("{} connection(s) refused", storm.refused));
        }
        if storm.ok_share() < 0.9 {
            missed.push(format!(
                "{:.2} % of the echoes succeeded (at least 90 %)",
                storm.ok_share() * 100.0
            ));
        }
        match storm.p99 {
            Some(p99) if p99 <= Duration::from_millis(25) => {}
            Some(p99) => missed.push(format!(
                "p99 echo latency {:.2} ms (at most 25 ms)",
                p99.as_secs_f64() * 1e3
            )),
            None => missed.push("p99: more than 1 % of the attempts failed".to_owned()),
        }
        if missed.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{}; storm: {}",
                missed.join(", "),
                storm.describe()
            ))
        }
    }

    pub(crate) fn kill_storm(run: &mut Run) -> Result<(), String> {
        let addr = listening_on(run)?;
        let storm = storm(run, addr, KILLS)?;
        run.note(format!("with_listener: {}", storm.describe()));
        let starts = run.count(|l| l.starts_with("host "));
        if starts < KILLS + 1 {
            return Err(format!("{starts} starts of the worker for {KILLS} kills"));
        }
        check_storm(&storm)?;
        stop(run)
    }

    pub(crate) fn kill_storm_unbound(run: &mut Run) -> Result<(), String> {
        let addr = listening_on(run)?;
        let storm = storm(run, addr, KILLS)?;
        run.note(format!("own bind on each start: {}", storm.describe()));
        let bind_errors = run.count(|l| l.starts_with("bind error: "));
        if bind_errors > 0 {
            run.note(format!("{bind_errors} start(s) could not bind the port"));
        }
        if storm.echoed == 0 {
            return Err(format!("nothing echoed: {}", storm.describe()));
        }
        stop(run)
    }

    pub(crate) fn systemd(run: &mut Run) -> Result<(), String> {
        let port = SYSTEMD_PORT.load(Ordering::SeqCst);
        if port == 0 {
            // No systemd-socket-activate: no LISTEN_FDS, and start() fails.
            expect_exit_code(run, 0)?;
            let line = expect_prefix_once(run, "returned Err")?;
            if !line.contains("echo") {
                return Err(format!("the error does not name the listener: {line:?}"));
            }
            run.note(
                "skipped: systemd-socket-activate is not on PATH (checked only that start() fails without LISTEN_FDS)"
                    .to_owned(),
            );
            return Ok(());
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        // The first connection makes systemd-socket-activate exec the
        // tree; it may not listen yet when we first try.
        let first = Instant::now();
        let mut refused_before = 0;
        loop {
            match echo_tcp(addr, 0) {
                Outcome::Echoed => break,
                Outcome::Refused if first.elapsed() < Duration::from_secs(5) => {
                    refused_before += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ if first.elapsed() < Duration::from_secs(5) => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => return Err(format!("no echo on {addr} within 5 s")),
            }
        }
        let activated = first.elapsed();
        let seen = listening_on(run)?;
        if seen != addr {
            return Err(format!(
                "the worker listens on {seen}, systemd passed {addr}"
            ));
        }
        // One line per start; the first will do.
        let env = wait_line(run, "listen-env ")?;
        if env != "listen-env none" {
            return Err(format!("the workers see systemd's variables: {env:?}"));
        }
        let storm = storm(run, addr, KILLS)?;
        run.note(format!(
            "first echo {:.0} ms after the spawn ({refused_before} refused before systemd-socket-activate listened); {}",
            activated.as_secs_f64() * 1e3,
            storm.describe()
        ));
        if storm.refused > 0 || storm.ok_share() < 0.9 {
            return Err(format!("storm under systemd: {}", storm.describe()));
        }
        stop(run)
    }

    pub(crate) fn in_use(run: &mut Run) -> Result<(), String> {
        let line = wait_line(run, "returned ")?;
        if !line.starts_with("returned Err") || !line.contains("busy") {
            return Err(format!(
                "expected start() to fail naming the listener \"busy\", got {line:?}"
            ));
        }
        wait_line(run, "counting")?;
        let procs = run.group();
        if procs.len() != 1 {
            return Err(format!(
                "{} processes while start() had failed; expected only the root",
                procs.len()
            ));
        }
        if run.count(|l| l.starts_with("host ")) > 0 {
            return Err("a worker started".to_owned());
        }
        let low = wait_line(run, "not-permitted")?;
        if let Some(skipped) = low.strip_prefix("not-permitted skipped: ") {
            run.note(format!("address not permitted: not checked ({skipped})"));
        } else if !low.starts_with("not-permitted: Err") || !low.contains("lowport") {
            return Err(format!(
                "expected start() to fail naming the listener \"lowport\", got {low:?}"
            ));
        }
        let elsewhere = wait_line(run, "not-local: ")?;
        if !elsewhere.starts_with("not-local: Err") || !elsewhere.contains("elsewhere") {
            return Err(format!(
                "expected start() to fail naming the listener \"elsewhere\", got {elsewhere:?}"
            ));
        }
        expect_exit_code(run, 0)?;
        run.note(line);
        run.note(elsewhere);
        Ok(())
    }

    pub(crate) fn unknown_name(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        for name in ["nope", "inner"] {
            let line = expect_prefix_once(run, &format!("error {name} in root: "))?;
            let message = &line[format!("error {name} in root: ").len()..];
            if !message.contains(name) {
                return Err(format!("the error does not name {name:?}: {line:?}"));
            }
        }
        let line = expect_prefix_once(run, "unix error nope in root: ")?;
        if !line["unix error nope in root: ".len()..].contains("nope") {
            return Err(format!("the error does not name \"nope\": {line:?}"));
        }
        expect_prefix_once(run, "error nope in s1: ")?;
        for found in [
            "found echo in root",
            "found echo in s1",
            "found inner in s1",
        ] {
            expect_prefix_once(run, found)?;
        }
        let shown = expect_prefix_once(run, "error nope in root: ")?;
        run.note(shown);
        expect_prefix_once(run, "returned Ok").map(drop)
    }

    /// One echo over a fresh connection to a Unix socket.
    fn echo_unix(path: &Path, n: u64) -> Result<Duration, String> {
        let began = Instant::now();
        let stream = UnixStream::connect(path).map_err(|e| format!("connect {path:?}: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(3)))
            .map_err(|e| e.to_string())?;
        match echo_on(stream, n) {
            Outcome::Echoed => Ok(began.elapsed()),
            Outcome::TimedOut => Err("no echo within 3 s".to_owned()),
            _ => Err("the echo failed".to_owned()),
        }
    }

    pub(crate) fn unix(run: &mut Run) -> Result<(), String> {
        let path = PathBuf::from(&wait_line(run, "unix-path ")?["unix-path ".len()..]);
        for (what, prefix) in [
            ("a regular file", "regular-file: "),
            ("a symlink", "symlink: "),
        ] {
            let got = expect_prefix_once(run, prefix)?;
            if !got.starts_with(&format!("{prefix}Err")) || !got.contains("echo") {
                return Err(format!(
                    "with {what} at the path, expected start() to fail naming the listener, got {got:?}"
                ));
            }
        }
        for line in [
            "regular-file untouched true",
            "symlink untouched true",
            "stale socket left true",
        ] {
            expect_prefix_once(run, line)?;
        }
        let seen = wait_line(run, "listening on ")?;
        if seen != format!("listening on {}", path.display()) {
            return Err(format!("expected the worker on {path:?}, saw {seen:?}"));
        }
        let host = run.wait_for("the host", |run| {
            latest_host(run).ok_or("no host line".into())
        })?;
        let first = echo_unix(&path, 1)?;
        run.signal(host, Signal::SIGKILL)?;
        // Connects at once, while the worker restarts: waits in the backlog.
        let during = echo_unix(&path, 2)?;
        let next = run.wait_for("a new host", |run| match latest_host(run) {
            Some(pid) if pid != host => Ok(pid),
            other => Err(format!("latest host {other:?}")),
        })?;
        echo_unix(&path, 3)?;
        stop(run)?;
        expect_prefix_once(run, "after: socket exists false")?;
        if path.symlink_metadata().is_ok() {
            return Err(format!("{path:?} is left after the tree ended"));
        }
        run.note(format!(
            "echo {:.2} ms; across a SIGKILL of host {host} (next {next}): {:.1} ms",
            first.as_secs_f64() * 1e3,
            during.as_secs_f64() * 1e3
        ));
        Ok(())
    }
}

/// `examples/listener.rs`: echoes, then a SIGKILL of its host refuses no
/// connection made at once after it; SIGTERM stops it.
pub(crate) mod example {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    use nix::sys::signal::Signal;

    use crate::drive::wait_line;
    use crate::runner::Run;

    fn echo(addr: &str, text: &str) -> Result<Duration, String> {
        let began = Instant::now();
        let stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(3)))
            .map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(stream);
        reader
            .get_mut()
            .write_all(format!("{text}\n").as_bytes())
            .map_err(|e| e.to_string())?;
        let mut got = String::new();
        reader.read_line(&mut got).map_err(|e| e.to_string())?;
        if got.trim_end() == text {
            Ok(began.elapsed())
        } else {
            Err(format!("sent {text:?}, got {got:?} back"))
        }
    }

    pub(crate) fn drive(run: &mut Run) -> Result<(), String> {
        let line = wait_line(run, "listening on ")?;
        let addr = line.trim_start_matches("listening on ").trim().to_owned();
        let host: i32 = wait_line(run, "host ")?["host ".len()..]
            .parse()
            .map_err(|e| format!("bad host line: {e}"))?;
        echo(&addr, "hello")?;
        run.signal(host, Signal::SIGKILL)?;
        let across = echo(&addr, "across the restart")?;
        run.signal_root(Signal::SIGTERM)?;
        let status = run.wait_exit()?;
        if status.code() != Some(0) || !run.stdout().iter().any(|l| l == "stopped") {
            return Err(format!("the tree did not stop cleanly: {status:?}"));
        }
        run.note(format!(
            "echoed on {addr}; across a SIGKILL of its host in {:.1} ms",
            across.as_secs_f64() * 1e3
        ));
        Ok(())
    }
}
