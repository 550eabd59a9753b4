//! Subtrees as boundaries: a worker of a `with_user(65534, 65534)` subtree
//! attacks every descriptor it holds with raw system calls (steal, hijack,
//! shut down), while a root-owned client uses another subtree's mailbox,
//! template and listener.

pub(crate) mod scenario {
    use std::io::{BufRead, BufReader, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
    use std::time::{Duration, Instant};

    use nix::sys::socket::{
        self, accept, getsockopt, recvmsg, sockopt, AddressFamily, ControlMessageOwned, MsgFlags,
        SockFlag, SockType, UnixAddr,
    };
    use supertrees::{inbox, mailbox, start_child, Listen, RestartPolicy, Supertree};

    use crate::scenario::{report, Life};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The descriptors of this process that are sockets.
    fn sockets() -> Vec<RawFd> {
        std::fs::read_dir("/proc/self/fd")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let fd: RawFd = entry.file_name().to_string_lossy().parse().ok()?;
                let target = std::fs::read_link(entry.path()).ok()?;
                (fd > 2 && target.to_string_lossy().starts_with("socket:")).then_some(fd)
            })
            .collect()
    }

    /// `fd` of this process, borrowed for one system call.
    #[allow(unsafe_code)]
    fn borrow(fd: RawFd) -> BorrowedFd<'static> {
        // SAFETY: `fd` was just listed in /proc/self/fd, and the attacker
        // closes none of its descriptors while it borrows them.
        unsafe { BorrowedFd::borrow_raw(fd) }
    }

    /// What the attacker finds and does to every socket it holds, as uid
    /// 65534 with raw system calls: takes what it can read for 2 s
    /// (answering calls with forged replies), accepts connections off any
    /// listening socket, connects every datagram socket to one of its own,
    /// then shuts every socket down.
    fn attack() {
        let mine = socket::socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_NONBLOCK,
            None,
        );
        let own_addr =
            UnixAddr::new_abstract(format!("attacker-{}", std::process::id()).as_bytes());
        if let (Ok(mine), Ok(addr)) = (&mine, &own_addr) {
            let _ = socket::bind(mine.as_raw_fd(), addr);
        }
        let targets = sockets();
        println!(
            "attacker uid {} holds {} sockets",
            nix::unistd::getuid(),
            targets.len()
        );
        let (mut stolen, mut forged, mut accepted) = (0, 0, 0);
        let until = Instant::now() + ms(2000);
        while Instant::now() < until {
            for &fd in &targets {
                let listening = getsockopt(&borrow(fd), sockopt::AcceptConn).unwrap_or(false);
                if listening {
                    let _ = nix::fcntl::fcntl(
                        borrow(fd),
                        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
                    );
                    if let Ok(conn) = accept(fd) {
                        accepted += 1;
                        let _ = nix::unistd::write(borrow(conn), b"forged\n");
                        let _ = nix::unistd::close(conn);
                    }
                    continue;
                }
                let mut buf = [0u8; 70000];
                let mut iov = [std::io::IoSliceMut::new(&mut buf)];
                let mut space = nix::cmsg_space!([RawFd; 4]);
                let got = recvmsg::<()>(fd, &mut iov, Some(&mut space), MsgFlags::MSG_DONTWAIT);
                if let Ok(msg) = got {
                    if msg.bytes == 0 {
                        continue;
                    }
                    stolen += 1;
                    let passed: Vec<RawFd> = msg
                        .cmsgs()
                        .into_iter()
                        .flatten()
                        .flat_map(|c| match c {
                            ControlMessageOwned::ScmRights(fds) => fds,
                            _ => Vec::new(),
                        })
                        .collect();
                    for reply in passed {
                        // A reply tag and garbage: the caller must never
                        // take it for the server's answer.
                        if nix::unistd::write(borrow(reply), b"\x01forged").is_ok() {
                            forged += 1;
                        }
                        let _ = nix::unistd::close(reply);
                    }
                }
            }
            std::thread::sleep(ms(1));
        }
        let mut hijacked = 0;
        if let Ok(addr) = &own_addr {
            for &fd in &targets {
                let datagram = getsockopt(&borrow(fd), sockopt::SockType)
                    .is_ok_and(|t| t == SockType::Datagram);
                if datagram && socket::connect(fd, addr).is_ok() {
                    hijacked += 1;
                }
            }
        }
        let mut shut = 0;
        for &fd in &targets {
            if socket::shutdown(fd, socket::Shutdown::Both).is_ok() {
                shut += 1;
            }
        }
        println!(
            "attack done: stolen {stolen}, forged replies {forged}, accepted {accepted}, hijacked {hijacked}, shut down {shut}"
        );
    }

    /// The attack, in a worker of a `with_user(65534, 65534)` subtree
    /// that declares a mailbox of its own (its own sockets to attack too),
    /// against a mailbox, a template and a listener of other subtrees that
    /// a root-owned client uses all along.
    pub(crate) fn attack_from_another_user() {
        if !nix::unistd::geteuid().is_root() {
            println!("skipped: switching users needs root");
            return;
        }
        let root = std::process::id();
        // A free port, for a listener of the web subtree the client
        // reaches from outside it.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(0);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut kv = Life::new(|| {
            Box::pin(async {
                let mut inbox = inbox::<u64>("kv").expect("ours");
                while let Some(envelope) = inbox.recv().await {
                    let n = *envelope.message();
                    envelope.reply(format!("genuine {n}"));
                }
            })
        });
        kv.restart = RestartPolicy::Always;
        let mut web = Life::new(|| {
            Box::pin(async {
                let listener = supertrees::tcp_listener("web").expect("ours");
                let listener = tokio::net::TcpListener::from_std(listener).expect("non-blocking");
                loop {
                    let Ok((conn, _)) = listener.accept().await else {
                        continue;
                    };
                    tokio::spawn(async move {
                        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
                        let (read, mut write) = conn.into_split();
                        let mut line = String::new();
                        let mut read = tokio::io::BufReader::new(read);
                        if read.read_line(&mut line).await.is_ok() {
                            let _ = write.write_all(format!("genuine {line}").as_bytes()).await;
                        }
                    });
                }
            })
        });
        web.restart = RestartPolicy::Always;
        let job = |k: u64| {
            let mut job = Life::new(move || {
                Box::pin(async move {
                    println!("ran {k}");
                })
            });
            job.restart = RestartPolicy::Never;
            job
        };
        let mut attacker = Life::new(|| {
            Box::pin(async {
                // Its own mailbox, served, so it holds sockets of its own;
                // read again after the attack shut them down (it must end,
                // not spin).
                let mut own = inbox::<u64>("own").expect("ours");
                tokio::time::sleep(ms(500)).await;
                tokio::task::spawn_blocking(attack).await.ok();
                let end = own.recv().await;
                println!(
                    "own inbox after the attack: {}",
                    if end.is_none() { "ended" } else { "a message" }
                );
                std::future::pending::<()>().await
            })
        });
        attacker.restart = RestartPolicy::Never;
        let mut client = Life::new(move || {
            Box::pin(async move {
                let kv = mailbox::<u64>("kv").expect("declared");
                let started = Instant::now();
                let (mut calls, mut genuine, mut forged, mut failed) = (0u64, 0, 0, 0);
                let (mut starts, mut start_failed) = (0u64, 0);
                let (mut conns, mut echoed, mut refused, mut other) = (0u64, 0, 0, 0);
                while started.elapsed() < ms(4000) {
                    calls += 1;
                    match kv.call::<String>(calls, ms(1000)).await {
                        Ok(reply) if reply == format!("genuine {calls}") => genuine += 1,
                        Ok(reply) => {
                            forged += 1;
                            println!("forged reply {reply:?}");
                        }
                        Err(err) => {
                            failed += 1;
                            println!("call failed: {err}");
                        }
                    }
                    starts += 1;
                    match start_child("t", starts).await {
                        Ok(_) => println!("started {starts}"),
                        Err(err) => {
                            start_failed += 1;
                            println!("start {starts} failed: {err}");
                        }
                    }
                    conns += 1;
                    let echo = tokio::task::spawn_blocking(move || {
                        let mut stream = TcpStream::connect_timeout(&addr, ms(1000))?;
                        stream.set_read_timeout(Some(ms(1000)))?;
                        stream.write_all(format!("ping {conns}\n").as_bytes())?;
                        let mut line = String::new();
                        BufReader::new(stream).read_line(&mut line)?;
                        Ok::<String, std::io::Error>(line)
                    })
                    .await;
                    match echo {
                        Ok(Ok(line)) if line == format!("genuine ping {conns}\n") => echoed += 1,
                        Ok(Err(err)) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                            refused += 1
                        }
                        Ok(line) => {
                            other += 1;
                            println!("connection {conns}: {line:?}");
                        }
                        Err(err) => println!("echo task: {err}"),
                    }
                    tokio::time::sleep(ms(5)).await;
                }
                println!(
                    "client: calls {calls} genuine {genuine} forged {forged} failed {failed}; starts {starts} failed {start_failed}; connections {conns} echoed {echoed} refused {refused} other {other}"
                );
                println!("client done");
                // The runner watches the processes for a while, then stops
                // the tree.
                let _ = root;
            })
        });
        client.restart = RestartPolicy::Never;
        report(
            Supertree::new()
                .add_supervisor(|s| s.with_mailbox("kv").add_worker(kv))
                .add_supervisor(|s| {
                    s.with_listener("web", Listen::tcp(addr))
                        .add_dynamic("t", job)
                        .add_worker(web)
                })
                .add_supervisor(|s| {
                    s.with_user(65534, 65534)
                        .with_mailbox("own")
                        .add_worker(attacker)
                })
                .add_supervisor(|s| s.add_worker(client))
                .start(),
        );
    }

    /// A worker that closes every pipe its host holds (its channel to
    /// its supervisor among them) on its first run: the host ends (it
    /// lost its channel; or, running on without it, its supervisor kills
    /// it), and the worker runs again in a new host with a new channel;
    /// nothing spins.
    pub(crate) fn own_channel_cut() {
        channel_cut(false);
    }

    /// The same, closing only the pipes it writes to (its notes to its
    /// supervisor among them): the host would run on, mute, so its
    /// supervisor kills it.
    pub(crate) fn own_channel_cut_writes() {
        channel_cut(true);
    }

    fn channel_cut(writes_only: bool) {
        let root = std::process::id();
        let marker = crate::observe::test_dir().join("cut");
        let _ = std::fs::create_dir_all(crate::observe::test_dir());
        let _ = std::fs::remove_file(&marker);
        let mut cutter = Life::new(move || {
            let marker = marker.clone();
            Box::pin(async move {
                println!("run in {}", std::process::id());
                if !marker.exists() {
                    let _ = std::fs::write(&marker, b"1");
                    let pipes: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
                        .into_iter()
                        .flatten()
                        .flatten()
                        .filter_map(|entry| {
                            let fd: RawFd = entry.file_name().to_string_lossy().parse().ok()?;
                            let target = std::fs::read_link(entry.path()).ok()?;
                            let pipe = target.to_string_lossy().starts_with("pipe:");
                            let flags =
                                nix::fcntl::fcntl(borrow(fd), nix::fcntl::FcntlArg::F_GETFL)
                                    .ok()?;
                            let writes = nix::fcntl::OFlag::from_bits_truncate(flags)
                                .contains(nix::fcntl::OFlag::O_WRONLY);
                            (fd > 2 && pipe && (writes || !writes_only)).then_some(fd)
                        })
                        .collect();
                    for &fd in &pipes {
                        let _ = nix::unistd::close(fd);
                    }
                    println!("cut {} pipes", pipes.len());
                } else {
                    tokio::time::sleep(ms(300)).await;
                    println!("running again");
                }
                std::future::pending::<()>().await
            })
        });
        cutter.restart = RestartPolicy::Always;
        let _ = root;
        report(
            Supertree::new()
                .add_supervisor(|s| s.add_worker(cutter))
                .start(),
        );
    }
}

pub(crate) mod drive {
    use std::time::{Duration, Instant};

    use nix::sys::signal::Signal;

    use crate::drive::{expect_exit_code, expect_prefix_once, wait_line};

    use crate::runner::Run;

    /// CPU time (user + system, in clock ticks) of each process of the
    /// scenario's group.
    fn cpu_ticks(run: &mut Run) -> Vec<(i32, u64)> {
        run.group()
            .into_iter()
            .filter_map(|p| {
                let stat = std::fs::read_to_string(format!("/proc/{}/stat", p.pid)).ok()?;
                let rest = stat.rsplit_once(')')?.1;
                let fields: Vec<&str> = rest.split_whitespace().collect();
                let ticks =
                    fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
                Some((p.pid, ticks))
            })
            .collect()
    }

    /// Whether a process of the scenario's group spends more than a tenth
    /// of a CPU over 2 s: those that do.
    pub(crate) fn spinning(run: &mut Run) -> Vec<String> {
        let before = cpu_ticks(run);
        let since = Instant::now();
        std::thread::sleep(Duration::from_secs(2));
        let after = cpu_ticks(run);
        let ticks_per_s = 100.0;
        let spent = since.elapsed().as_secs_f64();
        after
            .iter()
            .filter_map(|(pid, t)| {
                let (_, t0) = before.iter().find(|(p, _)| p == pid)?;
                let share = (t - t0) as f64 / ticks_per_s / spent;
                (share > 0.10).then(|| format!("pid {pid}: {:.0} % of a CPU", share * 100.0))
            })
            .collect()
    }

    pub(crate) fn own_channel_cut_writes(run: &mut Run) -> Result<(), String> {
        own_channel_cut(run)?;
        if run.stderr_count(|l| l.contains("runs on without its channel")) == 1 {
            Ok(())
        } else {
            Err(
                "the host that ran on without its channel was not killed (and logged) once"
                    .to_owned(),
            )
        }
    }

    pub(crate) fn own_channel_cut(run: &mut Run) -> Result<(), String> {
        let cut = wait_line(run, "cut ")?;
        let again = Instant::now();
        wait_line(run, "running again")?;
        let took = again.elapsed();
        let spinning = spinning(run);
        run.signal_root(Signal::SIGTERM)?;
        expect_exit_code(run, 0)?;
        run.note(format!("{cut}; running again in a new host {took:?} later"));
        if !spinning.is_empty() {
            return Err(format!("processes spinning: {spinning:?}"));
        }
        Ok(())
    }

    pub(crate) fn attack_from_another_user(run: &mut Run) -> Result<(), String> {
        let first = run.wait_for("the attack's end, or a skip", |run| {
            run.stdout()
                .into_iter()
                .find(|l| l.starts_with("attack done: ") || l.starts_with("skipped: "))
                .ok_or_else(|| "not yet".to_owned())
        })?;
        if first.starts_with("skipped: ") {
            run.note(first);
            return expect_exit_code(run, 0);
        }
        let done = first;
        wait_line(run, "own inbox after the attack: ended")?;
        wait_line(run, "client done")?;
        // No process of the tree spins afterwards: at most 10 % of a CPU
        // over 2 s each.
        let spinning = spinning(run);
        run.signal_root(Signal::SIGTERM)?;
        expect_exit_code(run, 0)?;
        let client = expect_prefix_once(run, "client: ")?;
        run.note(done.clone());
        run.note(client.clone());
        let number = |line: &str, key: &str| -> u64 {
            line.split(&format!("{key} "))
                .nth(1)
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(u64::MAX)
        };
        let mut broken = Vec::new();
        for (what, key, max) in [
            ("messages stolen", "stolen", 0),
            ("forged replies sent", "forged replies", 0),
            ("connections accepted by the attacker", "accepted", 0),
        ] {
            let n = number(&done, key);
            if n > max {
                broken.push(format!("{n} {what}"));
            }
        }
        for (what, key, max) in [
            ("forged replies taken", "forged", 0),
            ("calls failed", "failed", 2),
            ("connections refused", "refused", 0),
            ("connections answered otherwise", "other", 0),
        ] {
            let n = number(&client, key);
            if n > max {
                broken.push(format!("{n} {what}"));
            }
        }
        let start_failed = client
            .split("starts ")
            .nth(1)
            .map(|rest| number(rest, "failed"))
            .unwrap_or(u64::MAX);
        if start_failed > 2 {
            broken.push(format!("{start_failed} start_child failed"));
        }
        // Every start answered Ok ran its own argument.
        let lines = run.stdout();
        for line in lines.iter().filter(|l| l.starts_with("started ")) {
            let k = &line["started ".len()..];
            if !lines.iter().any(|l| *l == format!("ran {k}")) {
                broken.push(format!("start {k} answered Ok never ran"));
            }
        }
        if !spinning.is_empty() {
            broken.push(format!("processes spinning after the attack: {spinning:?}"));
        }
        if broken.is_empty() {
            Ok(())
        } else {
            Err(broken.join("; "))
        }
    }
}
