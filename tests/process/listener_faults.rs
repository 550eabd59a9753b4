//! Listening sockets of the tree against their workers' mistakes and
//! through the tree's stop.
//!
//! Mistakes: a worker that makes its handle blocking, shuts the socket down
//! (`shutdown(2)`), closes its handle, or closes the descriptor its host
//! inherited, then returns (and is restarted). A client asks for each
//! mistake with one line (`blocking`, `shutdown`, `close`, `rawclose`) on a
//! connection; any other first line is echoed. The next run must serve
//! again (TCP), or its hand-out must fail naming the listener (what can not
//! be repaired: a Unix socket shut down, a descriptor closed under the
//! host).
//!
//! The stop: while the workers drain (SIGTERM, or the root giving up),
//! a client connecting to a listener the tree bound is refused at once (a
//! Unix socket's path is gone), a late hand-out does not make the TCP
//! listener listen again, and connections accepted before keep working; a
//! socket passed by systemd keeps listening.

pub(crate) mod scenario {
    use std::io;
    use std::os::fd::{AsFd, AsRawFd, RawFd};
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use supertrees::{BackoffPolicy, Intensity, Listen, RestartPolicy, Shutdown, Supertree};
    use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

    use crate::listeners::scenario::{echo, loopback};
    use crate::scenario::{report, Life};

    /// A connection of either kind.
    trait Conn: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
    impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Conn for T {}

    /// A listener of the tree, of either kind, on the worker's runtime.
    enum Held {
        Tcp(tokio::net::TcpListener),
        Unix(tokio::net::UnixListener),
    }

    impl Held {
        /// A fresh handle on listener `name`.
        fn take(name: &str, unix: bool) -> io::Result<Held> {
            if unix {
                supertrees::unix_listener(name)
                    .and_then(tokio::net::UnixListener::from_std)
                    .map(Held::Unix)
            } else {
                supertrees::tcp_listener(name)
                    .and_then(tokio::net::TcpListener::from_std)
                    .map(Held::Tcp)
            }
        }

        /// Its address or path.
        fn describe(&self) -> String {
            match self {
                Held::Tcp(l) => l
                    .local_addr()
                    .map_or_else(|e| format!("error {e}"), |a| a.to_string()),
                Held::Unix(l) => match l.local_addr() {
                    Ok(addr) => addr
                        .as_pathname()
                        .map_or("an unnamed socket".to_owned(), |p| p.display().to_string()),
                    Err(e) => format!("error {e}"),
                },
            }
        }

        async fn accept(&self) -> io::Result<Box<dyn Conn>> {
            Ok(match self {
                Held::Tcp(l) => Box::new(l.accept().await?.0),
                Held::Unix(l) => Box::new(l.accept().await?.0),
            })
        }

        fn raw(&self) -> RawFd {
            match self {
                Held::Tcp(l) => l.as_raw_fd(),
                Held::Unix(l) => l.as_raw_fd(),
            }
        }
    }

    /// Accepts on `held`, or waits for ever without one.
    async fn accept_on(held: &Option<Held>) -> io::Result<Box<dyn Conn>> {
        match held {
            Some(held) => held.accept().await,
            None => std::future::pending().await,
        }
    }

    /// Makes mistake `what` with `held`; returns what it did.
    fn make_mistake(what: &str, held: &Held) -> String {
        let fd = held.raw();
        let done = match what {
            // Its handle is dropped when the run returns.
            "close" => Ok(String::new()),
            "blocking" => fcntl(fd_of(held), FcntlArg::F_GETFL)
                .map(OFlag::from_bits_truncate)
                .and_then(|flags| fcntl(fd_of(held), FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK)))
                .map(|_| String::new()),
            "shutdown" => nix::sys::socket::shutdown(fd, nix::sys::socket::Shutdown::Read)
                .map(|()| String::new()),
            "rawclose" => return raw_close(fd),
            other => return format!("unknown mistake {other}"),
        };
        match done {
            Ok(more) => format!("done {what}{more}"),
            Err(err) => format!("failed {what}: {err}"),
        }
    }

    fn fd_of(held: &Held) -> std::os::fd::BorrowedFd<'_> {
        match held {
            Held::Tcp(l) => l.as_fd(),
            Held::Unix(l) => l.as_fd(),
        }
    }

    /// Closes every other descriptor of this process on the socket `own`
    /// is on (the one the host inherited), then opens a socket, which may
    /// take the number.
    fn raw_close(own: RawFd) -> String {
        let Ok(ino) = std::fs::metadata(format!("/proc/self/fd/{own}")).map(|m| m.ino()) else {
            return "failed rawclose: no inode".to_owned();
        };
        let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
            return "failed rawclose: no /proc/self/fd".to_owned();
        };
        let inherited: Vec<RawFd> = entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&n: &RawFd| n != own)
            .filter(|n| {
                std::fs::metadata(format!("/proc/self/fd/{n}")).is_ok_and(|m| m.ino() == ino)
            })
            .collect();
        for &n in &inherited {
            if let Err(err) = nix::unistd::close(n) {
                return format!("failed rawclose: close({n}): {err}");
            }
        }
        // Whatever opens next may get the number: a socket, kept open.
        let reused = std::net::UdpSocket::bind(loopback(0)).map(|s| {
            let n = s.as_raw_fd();
            std::mem::forget(s);
            inherited.contains(&n)
        });
        format!(
            "done rawclose {inherited:?}, the number reused {}",
            reused.unwrap_or(false)
        )
    }

    /// One run of the worker that makes the mistakes its clients ask for:
    /// prints `host <pid>` and `listening on <addr>`, then serves until a
    /// client asks for a mistake, makes it, answers, and returns.
    async fn sabotaged(name: &'static str, unix: bool) {
        println!("host {}", std::process::id());
        let held = match Held::take(name, unix) {
            Ok(held) => held,
            Err(err) => return println!("listener error: {err}"),
        };
        println!("listening on {}", held.describe());
        loop {
            let conn = match held.accept().await {
                Ok(conn) => conn,
                Err(err) => {
                    println!("accept error: {err}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let mut reader = BufReader::new(conn);
            let mut line = String::new();
            if reader.read_line(&mut line).await.is_err() {
                continue;
            }
            let what = line.trim_end();
            if ["close", "blocking", "shutdown", "rawclose"].contains(&what) {
                let done = make_mistake(what, &held);
                let _ = reader
                    .get_mut()
                    .write_all(format!("{done}\n").as_bytes())
                    .await;
                return;
            }
            if reader.get_mut().write_all(line.as_bytes()).await.is_ok() {
                supertrees::spawn(echo(reader));
            }
        }
    }

    fn saboteur(name: &'static str, unix: bool) -> Life {
        let mut life = Life::new(move || Box::pin(sabotaged(name, unix)));
        life.restart = RestartPolicy::Always;
        life.backoff = BackoffPolicy::new(
            Duration::from_millis(20),
            Duration::from_millis(200),
            Duration::from_secs(60),
            1.5,
        );
        life
    }

    /// A TCP listener and the worker that makes mistakes with it.
    pub(crate) fn mistakes_tcp() {
        report(
            Supertree::new()
                .with_listener("echo", Listen::tcp(loopback(0)))
                .add_worker(saboteur("echo", false))
                .start(),
        );
    }

    /// A Unix listener and the worker that makes mistakes with it.
    pub(crate) fn mistakes_unix() {
        let dir = std::env::temp_dir().join(format!("supertrees-faults-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(err) = std::fs::create_dir_all(&dir) {
            return println!("no directory {}: {err}", dir.display());
        }
        report(
            Supertree::new()
                .with_listener("echo", Listen::unix(dir.join("echo.sock")))
                .add_worker(saboteur("echo", true))
                .start(),
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Runs `fut`, counting it in `open` meanwhile.
    async fn counted(open: Arc<AtomicUsize>, conn: Box<dyn Conn>) {
        open.fetch_add(1, Ordering::SeqCst);
        echo(conn).await;
        open.fetch_sub(1, Ordering::SeqCst);
    }

    /// One run of a worker that echoes on the TCP listener `tcp` and the
    /// Unix listener `unix` (`tcp on <addr>`, `unix on <path>`) until asked
    /// to stop; then prints `stopping`, takes a handle on `tcp` again (`late
    /// handout: ...`) and returns once its connections have ended
    /// (`drained`).
    async fn hold(tcp: &'static str, unix: Option<&'static str>) {
        let mut stop = Box::pin(supertrees::stopping());
        let taken = Held::take(tcp, false).and_then(|tcp| {
            let unix = unix.map(|name| Held::take(name, true)).transpose()?;
            Ok((tcp, unix))
        });
        let (tcp_held, unix_held) = match taken {
            Ok(taken) => taken,
            Err(err) => return println!("listener error: {err}"),
        };
        println!("tcp on {}", tcp_held.describe());
        if let Some(unix) = &unix_held {
            println!("unix on {}", unix.describe());
        }
        let open = Arc::new(AtomicUsize::new(0));
        let tcp_held = Some(tcp_held);
        loop {
            let conn = tokio::select! {
                () = &mut stop => break,
                conn = accept_on(&tcp_held) => conn,
                conn = accept_on(&unix_held) => conn,
            };
            match conn {
                Ok(conn) => supertrees::spawn(counted(open.clone(), conn)),
                // Once the tree stopped the listener, until the stop
                // request comes.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
        println!("stopping");
        match supertrees::tcp_listener(tcp) {
            Ok(late) => {
                let listening =
                    nix::sys::socket::getsockopt(&late, nix::sys::socket::sockopt::AcceptConn);
                println!("late handout: Ok, listening {listening:?}");
            }
            Err(err) => println!("late handout: Err {err}"),
        }
        while open.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        println!("drained");
    }

    fn holder(tcp: &'static str, unix: Option<&'static str>) -> Life {
        let mut life = Life::new(move || Box::pin(hold(tcp, unix)));
        life.restart = RestartPolicy::Always;
        life.shutdown = Shutdown::Timeout(Duration::from_secs(10));
        life
    }

    /// A worker that panics when a client connects to listener `trigger`
    /// (`trigger on <addr>`); restarted, so under an intensity of 0 the
    /// root gives up.
    fn trigger() -> Life {
        let mut life = Life::new(|| {
            Box::pin(async {
                let held = match Held::take("trigger", false) {
                    Ok(held) => held,
                    Err(err) => return println!("listener error: {err}"),
                };
                println!("trigger on {}", held.describe());
                let _ = held.accept().await;
                panic!("triggered");
            })
        });
        life.restart = RestartPolicy::Always;
        life
    }

    fn stop_tree(path: &Path, gives_up: bool) -> Supertree {
        let tree = Supertree::new()
            .with_listener("echo", Listen::tcp(loopback(0)))
            .with_listener("echo-unix", Listen::unix(path))
            .add_worker(holder("echo", Some("echo-unix")));
        if !gives_up {
            return tree;
        }
        tree.with_intensity(Intensity::new(0, Duration::from_secs(10)))
            .with_listener("trigger", Listen::tcp(loopback(0)))
            .add_worker(trigger())
    }

    fn stopping_tree(gives_up: bool) {
        let dir = std::env::temp_dir().join(format!("supertrees-faults-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(err) = std::fs::create_dir_all(&dir) {
            return println!("no directory {}: {err}", dir.display());
        }
        report(stop_tree(&dir.join("echo.sock"), gives_up).start());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A TCP and a Unix listener, stopped with SIGTERM by the runner.
    pub(crate) fn stop_signal() {
        stopping_tree(false);
    }

    /// The same, stopped by the root giving up (a sibling's panic under an
    /// intensity of 0).
    pub(crate) fn stop_gave_up() {
        stopping_tree(true);
    }

    /// A worker that shuts its listener down and takes it again (which
    /// makes it listen again) every millisecond, racing the tree's stop
    /// (SIGTERM by the runner): prints `racing`, then `handout refused
    /// ...` once the tree stopped the listener, and returns when asked to
    /// stop.
    pub(crate) fn stop_races_repair() {
        let mut racer = Life::new(|| {
            Box::pin(async {
                let stop = supertrees::stopping();
                match supertrees::tcp_listener("echo").and_then(|l| l.local_addr()) {
                    Ok(addr) => println!("tcp on {addr}"),
                    Err(err) => return println!("listener error: {err}"),
                }
                println!("racing");
                let mut repairs = 0u64;
                loop {
                    match supertrees::tcp_listener("echo") {
                        Ok(handle) => {
                            let _ = nix::sys::socket::shutdown(
                                handle.as_raw_fd(),
                                nix::sys::socket::Shutdown::Read,
                            );
                            repairs += 1;
                        }
                        Err(err) => {
                            println!("handout refused after {repairs} repairs: {err}");
                            break;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                stop.await;
                // The runner checks meanwhile that nothing listens.
                tokio::time::sleep(Duration::from_millis(300)).await;
                println!("drained");
            })
        });
        racer.shutdown = Shutdown::Timeout(Duration::from_secs(5));
        report(
            Supertree::new()
                .with_listener("echo", Listen::tcp(loopback(0)))
                .add_worker(racer)
                .start(),
        );
    }

    /// A socket passed by systemd (under `systemd-socket-activate
    /// --fdname=echo`), stopped with SIGTERM by the runner.
    pub(crate) fn stop_systemd() {
        report(
            Supertree::new()
                .with_listener("echo", Listen::systemd("echo"))
                .add_worker(holder("echo", None))
                .start(),
        );
    }
}

pub(crate) mod drive {
    use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::os::unix::net::UnixStream;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use nix::sys::signal::Signal;

    use crate::drive::{expect_exit_code, expect_prefix_once, wait_line};
    use crate::echo_client::{echo_on, storm_client, Outcome};
    use crate::listeners::drive::{activated, latest_host, stop, SYSTEMD_PORT};
    use crate::runner::Run;

    /// How long a worker has to serve again after a mistake.
    const RECOVERY: Duration = Duration::from_secs(5);
    /// How soon after the tree begins to stop a connection must be refused.
    /// The workers drain until the drive lets their connections go, after
    /// this check: any bound tells a stopped listener from one left
    /// listening. 500 ms, not 250: under a loaded machine (two CPUs, a
    /// build beside) the give-up path (a panic, the host's note, the
    /// root's stop) took 254 ms.
    const REFUSED_WITHIN: Duration = Duration::from_millis(500);

    /// Where the drive connects.
    #[derive(Clone)]
    enum Target {
        Tcp(SocketAddr),
        Unix(PathBuf),
    }

    trait Stream: Read + Write {}
    impl<T: Read + Write> Stream for T {}

    impl Target {
        fn connect(&self) -> std::io::Result<Box<dyn Stream>> {
            let timeout = Some(Duration::from_secs(2));
            Ok(match self {
                Target::Tcp(addr) => {
                    let s = TcpStream::connect_timeout(addr, Duration::from_secs(1))?;
                    s.set_read_timeout(timeout)?;
                    Box::new(s)
                }
                Target::Unix(path) => {
                    let s = UnixStream::connect(path)?;
                    s.set_read_timeout(timeout)?;
                    Box::new(s)
                }
            })
        }

        fn echo(&self, n: u64) -> Outcome {
            match self.connect() {
                Ok(stream) => echo_on(stream, n),
                Err(err) if err.kind() == ErrorKind::ConnectionRefused => Outcome::Refused,
                Err(_) => Outcome::Failed,
            }
        }

        /// Asks the worker for mistake `what`; its answer.
        fn ask(&self, what: &str) -> Result<String, String> {
            let stream = self
                .connect()
                .map_err(|e| format!("connect for {what}: {e}"))?;
            let mut reader = BufReader::new(stream);
            reader
                .get_mut()
                .write_all(format!("{what}\n").as_bytes())
                .map_err(|e| format!("send {what}: {e}"))?;
            let mut answer = String::new();
            reader
                .read_line(&mut answer)
                .map_err(|e| format!("answer to {what}: {e}"))?;
            Ok(answer.trim_end().to_owned())
        }
    }

    /// Polls `probe` every 10 ms for up to `within`.
    fn within<T>(
        run: &mut Run,
        what: &str,
        within: Duration,
        mut probe: impl FnMut(&mut Run) -> Option<T>,
    ) -> Result<T, String> {
        let until = Instant::now() + within;
        loop {
            if let Some(value) = probe(run) {
                return Ok(value);
            }
            if Instant::now() >= until || run.poll_exit().is_some() {
                return Err(format!(
                    "no {what} within {within:?}; {} panics in the log, last lines {:?}",
                    run.stderr_count(|l| l.contains("panicked")),
                    run.stdout().iter().rev().take(4).collect::<Vec<_>>()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn count(run: &Run, prefix: &str) -> usize {
        run.count(|l| l.starts_with(prefix))
    }

    /// Asks for mistake `what`, then checks that the next run serves.
    fn recovers(run: &mut Run, target: &Target, what: &str, n: u64) -> Result<(), String> {
        let runs = count(run, "listening on ");
        let answer = target.ask(what)?;
        if answer != format!("done {what}") {
            return Err(format!("asked for {what}, got {answer:?}"));
        }
        within(
            run,
            &format!("run listening after `{what}`"),
            RECOVERY,
            |run| (count(run, "listening on ") > runs).then_some(()),
        )?;
        match target.echo(n) {
            Outcome::Echoed => Ok(()),
            other => Err(format!(
                "after `{what}`, the next run took its listener, and an echo was {other:?}"
            )),
        }
    }

    /// The path or address in the first line starting with `prefix`.
    fn where_(run: &mut Run, prefix: &str) -> Result<String, String> {
        Ok(wait_line(run, prefix)?[prefix.len()..].to_owned())
    }

    pub(crate) fn mistakes_tcp(run: &mut Run) -> Result<(), String> {
        let addr: SocketAddr = where_(run, "listening on ")?
            .parse()
            .map_err(|e| format!("bad address: {e}"))?;
        let target = Target::Tcp(addr);
        if target.echo(0) != Outcome::Echoed {
            return Err("the first echo failed".to_owned());
        }
        let mut n = 1;
        for what in ["close", "blocking", "shutdown"] {
            recovers(run, &target, what, n)?;
            n += 1;
        }
        let warned = run.stderr_count(|l| {
            l.contains("WARN") && l.contains("\"echo\"") && l.contains("listening again")
        });
        if warned == 0 {
            return Err("no warning naming the listener made again".to_owned());
        }
        // The same mistakes in a loop while a client echoes.
        let stop_storm = Arc::new(AtomicBool::new(false));
        let client = storm_client(addr, stop_storm.clone());
        let rounds = ["shutdown", "blocking", "close"].repeat(4);
        let result = rounds.iter().try_for_each(|what| {
            n += 1;
            recovers(run, &target, what, n)
        });
        stop_storm.store(true, Ordering::Relaxed);
        let samples = client.join().map_err(|_| "the client panicked")?;
        result?;
        let echoed = samples.iter().filter(|s| s.0 == Outcome::Echoed).count();
        let refused = samples.iter().filter(|s| s.0 == Outcome::Refused).count();
        run.note(format!(
            "{} mistakes while a client echoed: {echoed} of {} attempts echoed, {refused} refused (between a shutdown and the next run)",
            rounds.len(),
            samples.len()
        ));
        // The descriptor the host inherited, closed under it: the host's
        // hand-outs fail naming the listener, until a new host.
        let errors = count(run, "listener error: ");
        let answer = target.ask("rawclose")?;
        if !answer.starts_with("done rawclose [") || answer.starts_with("done rawclose []") {
            return Err(format!("asked for rawclose, got {answer:?}"));
        }
        let error = next_error(run, errors, "hand-out error after rawclose")?;
        if !error.contains("\"echo\"") {
            return Err(format!(
                "the hand-out error does not name the listener: {error:?}"
            ));
        }
        // The log line comes on stderr, read apart from stdout: it may
        // arrive a little after the error line.
        let logged = run.wait_for("the closed descriptor's log line", |run| {
            (run.stderr_count(|l| l.contains("\"echo\"") && l.contains("no longer")) > 0)
                .then_some(())
                .ok_or_else(|| "not yet".to_owned())
        });
        if logged.is_err() {
            return Err("the closed descriptor was not logged".to_owned());
        }
        let host = latest_host(run).ok_or("no host line")?;
        let runs = count(run, "listening on ");
        run.signal(host, Signal::SIGKILL)?;
        within(run, "run of a new host", RECOVERY, |run| {
            (count(run, "listening on ") > runs).then_some(())
        })?;
        if target.echo(n + 1) != Outcome::Echoed {
            return Err("no echo from the new host".to_owned());
        }
        run.note(format!("{answer}: {error}"));
        stop(run)
    }

    /// The first `listener error: ` line after the `errors` there were,
    /// waited for.
    fn next_error(run: &mut Run, errors: usize, what: &str) -> Result<String, String> {
        within(run, what, RECOVERY, |run| {
            (count(run, "listener error: ") > errors).then(|| {
                run.stdout()
                    .into_iter()
                    .rev()
                    .find(|l| l.starts_with("listener error: "))
                    .unwrap_or_default()
            })
        })
    }

    pub(crate) fn mistakes_unix(run: &mut Run) -> Result<(), String> {
        let path = PathBuf::from(where_(run, "listening on ")?);
        let target = Target::Unix(path.clone());
        if target.echo(0) != Outcome::Echoed {
            return Err("the first echo failed".to_owned());
        }
        recovers(run, &target, "close", 1)?;
        recovers(run, &target, "blocking", 2)?;
        // Linux keeps a Unix socket shut down: the hand-out says so.
        let errors = count(run, "listener error: ");
        let answer = target.ask("shutdown")?;
        if answer != "done shutdown" {
            return Err(format!("asked for shutdown, got {answer:?}"));
        }
        let error = next_error(run, errors, "hand-out error after shutdown")?;
        if !error.contains("\"echo\"") || !error.contains("shut down") {
            return Err(format!(
                "the hand-out error does not say the listener was shut down: {error:?}"
            ));
        }
        if target.echo(3) != Outcome::Refused {
            return Err("a connection to the shut-down Unix socket was not refused".to_owned());
        }
        run.note(error);
        stop(run)?;
        if path.symlink_metadata().is_ok() {
            return Err(format!("{path:?} is left after the tree ended"));
        }
        Ok(())
    }

    /// One echo over `stream`, which stays open.
    fn echo_over(stream: &mut dyn Stream, text: &str) -> Result<(), String> {
        stream
            .write_all(format!("{text}\n").as_bytes())
            .map_err(|e| format!("send {text:?}: {e}"))?;
        let mut got = vec![0u8; text.len() + 1];
        stream
            .read_exact(&mut got)
            .map_err(|e| format!("echo of {text:?}: {e}"))?;
        if got != format!("{text}\n").as_bytes() {
            return Err(format!(
                "sent {text:?}, got {:?}",
                String::from_utf8_lossy(&got)
            ));
        }
        Ok(())
    }

    /// Connects to `target` until refused (a Unix socket: its path gone),
    /// for up to 2 s: when it was refused (after `since`), and how many
    /// connections were taken first.
    fn until_refused(target: &Target, since: Instant) -> (Option<Duration>, usize) {
        let mut taken = 0;
        while since.elapsed() < Duration::from_secs(2) {
            match target.connect() {
                Err(err)
                    if err.kind() == ErrorKind::ConnectionRefused
                        || err.kind() == ErrorKind::NotFound =>
                {
                    return (Some(since.elapsed()), taken)
                }
                Ok(_) => taken += 1,
                Err(_) => {}
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        (None, taken)
    }

    fn ms(d: Duration) -> String {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }

    fn stop_drive(run: &mut Run, gives_up: bool) -> Result<(), String> {
        let tcp: SocketAddr = where_(run, "tcp on ")?
            .parse()
            .map_err(|e| format!("bad address: {e}"))?;
        let unix = PathBuf::from(where_(run, "unix on ")?);
        let (tcp, unix) = (Target::Tcp(tcp), Target::Unix(unix));
        let mut held_tcp = tcp.connect().map_err(|e| format!("connect: {e}"))?;
        let mut held_unix = unix.connect().map_err(|e| format!("connect: {e}"))?;
        echo_over(&mut *held_tcp, "held tcp 1")?;
        echo_over(&mut *held_unix, "held unix 1")?;
        let trigger = if gives_up {
            Some(where_(run, "trigger on ")?)
        } else {
            None
        };
        let began = Instant::now();
        match &trigger {
            Some(addr) => {
                let addr: SocketAddr = addr.parse().map_err(|e| format!("bad address: {e}"))?;
                drop(TcpStream::connect(addr).map_err(|e| format!("trigger: {e}"))?);
            }
            None => run.signal_root(Signal::SIGTERM)?,
        }
        let mut refused = Vec::new();
        for (kind, target) in [("tcp", &tcp), ("unix", &unix)] {
            match until_refused(target, began) {
                (Some(after), taken) if after <= REFUSED_WITHIN => refused.push(format!(
                    "{kind} refused after {} ({taken} taken before)",
                    ms(after)
                )),
                (after, taken) => {
                    return Err(format!(
                        "{kind}: while the workers drain, a connection was refused after {after:?} \
                         (at most {REFUSED_WITHIN:?}); {taken} connection(s) were taken meanwhile"
                    ))
                }
            }
        }
        let late = wait_line(run, "late handout: ")?;
        if !late.starts_with("late handout: Err") {
            return Err(format!("a hand-out during the stop: {late:?}"));
        }
        if tcp.echo(9) != Outcome::Refused {
            return Err("after a late hand-out, a connection was not refused".to_owned());
        }
        // Accepted before the stop: still served.
        echo_over(&mut *held_tcp, "held tcp 2")?;
        echo_over(&mut *held_unix, "held unix 2")?;
        drop((held_tcp, held_unix));
        wait_line(run, "drained")?;
        expect_exit_code(run, 0)?;
        let returned = if gives_up {
            "returned Err IntensityExceeded"
        } else {
            "returned Ok"
        };
        expect_prefix_once(run, returned)?;
        run.note(format!("{}; {late}", refused.join(", ")));
        Ok(())
    }

    pub(crate) fn stop_signal(run: &mut Run) -> Result<(), String> {
        stop_drive(run, false)
    }

    pub(crate) fn stop_gave_up(run: &mut Run) -> Result<(), String> {
        stop_drive(run, true)
    }

    pub(crate) fn stop_races_repair(run: &mut Run) -> Result<(), String> {
        let tcp = Target::Tcp(
            where_(run, "tcp on ")?
                .parse()
                .map_err(|e| format!("bad address: {e}"))?,
        );
        wait_line(run, "racing")?;
        std::thread::sleep(Duration::from_millis(300));
        run.signal_root(Signal::SIGTERM)?;
        let refused = wait_line(run, "handout refused ")?;
        if !refused.contains("the tree is stopping") {
            return Err(format!("the hand-out failed otherwise: {refused:?}"));
        }
        // Whatever the race left, the listener stays stopped.
        let began = Instant::now();
        while began.elapsed() < Duration::from_millis(200) {
            match tcp.connect() {
                Err(err) if err.kind() == ErrorKind::ConnectionRefused => {}
                Ok(_) => return Err("a connection was taken after the tree stopped".to_owned()),
                Err(err) => return Err(format!("connect: {err}")),
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        expect_exit_code(run, 0)?;
        expect_prefix_once(run, "drained")?;
        expect_prefix_once(run, "returned Ok")?;
        run.note(refused);
        Ok(())
    }

    /// The command of `listener_stop_systemd`.
    pub(crate) fn systemd_command(exe: &Path) -> Command {
        activated(exe, "listener_stop_systemd")
    }

    pub(crate) fn stop_systemd(run: &mut Run) -> Result<(), String> {
        let port = SYSTEMD_PORT.load(Ordering::SeqCst);
        if port == 0 {
            expect_exit_code(run, 0)?;
            expect_prefix_once(run, "returned Err")?;
            run.note("skipped: systemd-socket-activate is not on PATH".to_owned());
            return Ok(());
        }
        let target = Target::Tcp(SocketAddr::from(([127, 0, 0, 1], port)));
        // The first connection makes systemd-socket-activate exec the
        // tree; it may not listen yet when we first try.
        let first = Instant::now();
        let mut held = loop {
            match target.connect() {
                Ok(held) => break held,
                Err(_) if first.elapsed() < Duration::from_secs(5) => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(err) => return Err(format!("connect: {err}")),
            }
        };
        echo_over(&mut *held, "held 1")?;
        wait_line(run, "tcp on ")?;
        run.signal_root(Signal::SIGTERM)?;
        wait_line(run, "stopping")?;
        // Left to systemd: still listening, connections wait.
        let began = Instant::now();
        let mut taken = 0;
        while began.elapsed() < Duration::from_millis(300) {
            match target.connect() {
                Ok(_) => taken += 1,
                Err(err) => return Err(format!("systemd's socket during the stop: {err}")),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        echo_over(&mut *held, "held 2")?;
        drop(held);
        wait_line(run, "drained")?;
        expect_exit_code(run, 0)?;
        expect_prefix_once(run, "returned Ok")?;
        run.note(format!(
            "systemd's socket took {taken} connection(s) during the stop"
        ));
        Ok(())
    }
}
