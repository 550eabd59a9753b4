//! Messages between processes: a key-value server and its clients in other
//! supervisor processes, a server that panics or whose host is SIGKILLed
//! while clients call and send, and children started at run time.

pub(crate) mod scenario {
    use std::collections::HashMap;
    use std::time::{Duration, Instant};

    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    use serde::{Deserialize, Serialize};
    use supertrees::tree::Root;
    use supertrees::{
        inbox, mailbox, start_child, terminate_child, BackoffPolicy, Error, RestartPolicy,
        Shutdown, Supertree, Tree,
    };

    use crate::scenario::{report, Life};

    #[derive(Debug, Serialize, Deserialize)]
    enum Kv {
        Put(u64, u64),
        Get(u64),
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Ends the tree: SIGTERM to the root (this scenario's process).
    fn stop_tree(root: u32) {
        let _ = kill(Pid::from_raw(root as i32), Signal::SIGTERM);
    }

    /// Serves "kv", restarted always at once.
    fn kv_server() -> Life {
        let mut server = Life::new(|| {
            Box::pin(async {
                println!("server-host {}", std::process::id());
                let mut inbox = inbox::<Kv>("kv").expect("kv is ours");
                let mut map = HashMap::new();
                while let Some(envelope) = inbox.recv().await {
                    match *envelope.message() {
                        Kv::Put(k, v) => {
                            map.insert(k, v);
                        }
                        Kv::Get(k) => envelope.reply(map.get(&k).copied()),
                    }
                }
            })
        });
        server.restart = RestartPolicy::Always;
        server
    }

    /// A server in one supervisor, clients in another and in the root's
    /// own host; a client checks the errors of names too. On Tokio.
    pub(crate) fn kv() {
        report(kv_tree::<supertrees::tokio::Tokio>().start());
    }

    /// The same on smol (with the `smol` feature; otherwise it says it
    /// skips).
    pub(crate) fn kv_smol() {
        #[cfg(feature = "smol")]
        report(kv_tree::<supertrees::smol::Smol>().start());
        #[cfg(not(feature = "smol"))]
        println!("skipped: built without the smol feature");
    }

    fn kv_tree<B>() -> Tree<Root<B>> {
        let root = std::process::id();
        let client = Life::new(move || {
            Box::pin(async move {
                let kv = mailbox::<Kv>("kv").expect("declared");
                for k in 0..100 {
                    kv.send(Kv::Put(k, k * k)).await.expect("queued");
                }
                for k in [0, 7, 99, 100] {
                    let v: Option<u64> = kv.call(Kv::Get(k), ms(1000)).await.expect("answered");
                    println!("get {k} {v:?} from {}", std::process::id());
                }
                println!("unknown: {}", mailbox::<Kv>("nope").unwrap_err());
                println!("not ours: {}", inbox::<Kv>("kv").unwrap_err());
                stop_tree(root);
            })
        });
        Tree::<Root<B>>::new()
            .add_supervisor(|s| s.with_mailbox("kv").add_worker(kv_server()))
            .add_supervisor(|s| s.add_worker(client))
    }

    /// A duplicate name: `start()` fails before anything is forked.
    pub(crate) fn duplicate_name() {
        report(
            Supertree::new()
                .with_mailbox("kv")
                .add_supervisor(|s| s.with_mailbox("kv"))
                .start(),
        );
    }

    /// The server panics on every 50th call, before replying, and restarts
    /// at once: those calls fail at once, the others are answered.
    pub(crate) fn panic_server_restarts() {
        let root = std::process::id();
        let mut server = Life::new(|| {
            Box::pin(async {
                let mut inbox = inbox::<u64>("echo").expect("ours");
                while let Some(envelope) = inbox.recv().await {
                    let n = *envelope.message();
                    if n % 50 == 49 {
                        panic!("boom at {n}");
                    }
                    envelope.reply(n);
                }
            })
        });
        server.restart = RestartPolicy::Always;
        server.backoff = BackoffPolicy::immediate();
        let client = Life::new(move || {
            Box::pin(async move {
                let echo = mailbox::<u64>("echo").expect("declared");
                let (mut ok, mut failed, mut other) = (0, 0, 0);
                let mut recovery = Duration::ZERO;
                let mut failed_at = None;
                for n in 0..500u64 {
                    match echo.call::<u64>(n, ms(2000)).await {
                        Ok(got) if got == n => {
                            ok += 1;
                            if let Some(at) = failed_at.take() {
                                recovery = recovery.max(Instant::elapsed(&at));
                            }
                        }
                        Err(Error::NoReply { .. }) => {
                            failed += 1;
                            failed_at = Some(Instant::now());
                        }
                        got => {
                            other += 1;
                            println!("unexpected {got:?}");
                        }
                    }
                }
                println!("calls ok={ok} failed={failed} other={other}");
                println!("slowest recovery {} us", recovery.as_micros());
                stop_tree(root);
            })
        });
        report(
            Supertree::new()
                .with_intensity(supertrees::Intensity::new(1000, Duration::from_secs(10)))
                .add_supervisor(|s| {
                    s.with_mailbox("echo")
                        .with_intensity(supertrees::Intensity::new(1000, Duration::from_secs(10)))
                        .add_worker(server)
                })
                .add_worker(client)
                .start(),
        );
    }

    /// A server whose host the runner SIGKILLs while a client sends 3000
    /// numbered casts: what waited in the mailbox reaches the next host,
    /// in order, never twice.
    pub(crate) fn mailbox_outlives_host() {
        let root = std::process::id();
        let mut server = Life::new(|| {
            Box::pin(async {
                println!("server-host {}", std::process::id());
                let mut inbox = inbox::<u32>("numbers").expect("ours");
                while let Some(envelope) = inbox.recv().await {
                    let n = envelope.into_message();
                    println!("got {n}");
                    if n == 2999 {
                        println!("last received");
                    }
                }
            })
        });
        server.restart = RestartPolicy::Always;
        let client = Life::new(move || {
            Box::pin(async move {
                let numbers = mailbox::<u32>("numbers").expect("declared");
                for n in 0..3000u32 {
                    numbers.send(n).await.expect("queued");
                    if n % 100 == 99 {
                        tokio::time::sleep(ms(5)).await;
                    }
                }
                println!("all sent");
                tokio::time::sleep(ms(300)).await;
                stop_tree(root);
            })
        });
        report(
            Supertree::new()
                .add_supervisor(|s| s.with_mailbox("numbers").add_worker(server))
                .add_worker(client)
                .start(),
        );
    }

    /// A server that starts reading after 300 ms, and a client that sends
    /// 2000 casts: the mailbox holds what its socket holds, and `send`
    /// waits meanwhile; then everything arrives, in order.
    pub(crate) fn mailbox_bounded() {
        let root = std::process::id();
        let server = Life::new(|| {
            Box::pin(async {
                let mut inbox = inbox::<u32>("slow").expect("ours");
                tokio::time::sleep(ms(300)).await;
                let mut next = 0;
                while next < 2000 {
                    let n = inbox.recv().await.expect("open").into_message();
                    if n != next {
                        println!("out of order: {n} after {next}");
                    }
                    next = n + 1;
                }
                println!("server got 2000");
            })
        });
        let client = Life::new(move || {
            Box::pin(async move {
                let slow = mailbox::<u32>("slow").expect("declared");
                let sent = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
                let counter = sent.clone();
                supertrees::spawn(async move {
                    tokio::time::sleep(ms(150)).await;
                    println!(
                        "sent by 150 ms: {}",
                        counter.load(std::sync::atomic::Ordering::SeqCst)
                    );
                });
                for n in 0..2000u32 {
                    slow.send(n).await.expect("queued");
                    sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                tokio::time::sleep(ms(100)).await;
                stop_tree(root);
            })
        });
        report(
            Supertree::new()
                .add_supervisor(|s| s.with_mailbox("slow").add_worker(server))
                .add_worker(client)
                .start(),
        );
    }

    #[derive(Debug, Serialize, Deserialize)]
    struct ConnArgs {
        n: u32,
    }

    /// A connection: prints its starts, drains for 50 ms when stopped.
    fn conn(arg: ConnArgs) -> Life {
        let n = arg.n;
        let mut conn = Life::new(move || {
            Box::pin(async move {
                println!("conn {n} started in {}", std::process::id());
                supertrees::stopping().await;
                tokio::time::sleep(ms(50)).await;
                println!("conn {n} drained");
            })
        });
        conn.restart = RestartPolicy::Always;
        conn.shutdown = Shutdown::Timeout(ms(1000));
        conn
    }

    /// Children started at run time from another supervisor's worker;
    /// the runner SIGKILLs their host once, and they come back.
    pub(crate) fn dynamic_children() {
        let root = std::process::id();
        let client = Life::new(move || {
            Box::pin(async move {
                let mut ids = Vec::new();
                for n in 1..=3 {
                    ids.push(start_child("conn", ConnArgs { n }).await.expect("started"));
                }
                let shown: Vec<String> = ids.iter().map(ToString::to_string).collect();
                println!("ids {}", shown.join(" "));
                println!(
                    "refused: {}",
                    start_child("conn", ConnArgs { n: 4 }).await.unwrap_err()
                );
                println!("wrong: {}", start_child("conn", 4u8).await.unwrap_err());
                terminate_child("conn", ids[0]).await.expect("terminated");
                println!("terminated {}", ids[0]);
                println!(
                    "again: {}",
                    terminate_child("conn", ids[0]).await.unwrap_err()
                );
                let id = start_child("conn", ConnArgs { n: 5 })
                    .await
                    .expect("room again");
                println!("started {id}");
                // The runner kills the children's host now; they return.
                tokio::time::sleep(ms(1500)).await;
                stop_tree(root);
            })
        });
        report(
            Supertree::new()
                .on_event(|e| {
                    if e.path.contains('#') {
                        println!("event {e}");
                    }
                })
                .add_supervisor(|s| s.add_dynamic("conn", conn).with_max_children(3))
                .add_supervisor(|s| s.add_worker(client))
                .start(),
        );
    }

    /// The supervisor of template "conn" gives up (its worker, restarted
    /// always, returns under an intensity of 0) and is not restarted: a
    /// worker of another supervisor that asks it about its children gets
    /// `NoReply` after 5 s, rather than waiting without end.
    pub(crate) fn dynamic_supervisor_gone() {
        let root = std::process::id();
        let mut doomed = Life::new(|| {
            Box::pin(async {
                tokio::time::sleep(ms(200)).await;
            })
        });
        doomed.restart = RestartPolicy::Always;
        let client = Life::new(move || {
            Box::pin(async move {
                let id = start_child("conn", ConnArgs { n: 1 })
                    .await
                    .expect("started");
                println!("started {id}");
                tokio::time::sleep(ms(1000)).await;
                let at = Instant::now();
                match terminate_child("conn", id).await {
                    Err(Error::NoReply { .. }) => {
                        println!("terminate: NoReply after {} ms", at.elapsed().as_millis())
                    }
                    other => println!("terminate: {other:?}"),
                }
                let at = Instant::now();
                match start_child("conn", ConnArgs { n: 2 }).await {
                    Err(Error::NoReply { .. }) => {
                        println!("start: NoReply after {} ms", at.elapsed().as_millis())
                    }
                    other => println!("start: {other:?}"),
                }
                stop_tree(root);
            })
        });
        report(
            Supertree::new()
                .on_event(|e| {
                    if e.path == "root/0" {
                        println!("event {e}");
                    }
                })
                .add_supervisor(|s| {
                    s.with_intensity(supertrees::Intensity::new(0, Duration::from_secs(1)))
                        .with_restart_policy(RestartPolicy::Never)
                        .add_worker(doomed)
                        .add_dynamic("conn", conn)
                })
                .add_supervisor(|s| s.add_worker(client))
                .start(),
        );
    }
}

pub(crate) mod drive {
    use nix::sys::signal::Signal;

    use crate::drive::{expect_count, expect_exit_code, expect_prefix_once, wait_line};
    use crate::runner::Run;

    /// The pid at the end of `line`.
    fn pid_in(line: &str) -> Result<i32, String> {
        line.rsplit(' ')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("no pid at the end of {line:?}"))
    }

    pub(crate) fn kv(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        if let Some(skipped) = run.stdout().iter().find(|l| l.starts_with("skipped: ")) {
            run.note(skipped.clone());
            return Ok(());
        }
        let client = pid_in(&expect_prefix_once(run, "get 0 Some(0) from ")?)?;
        let server = pid_in(&expect_prefix_once(run, "server-host ")?)?;
        if client == server {
            return Err("client and server share a process".into());
        }
        expect_prefix_once(run, "get 7 Some(49) from ")?;
        expect_prefix_once(run, "get 99 Some(9801) from ")?;
        expect_prefix_once(run, "get 100 None from ")?;
        expect_count(run, "unknown: no mailbox is named \"nope\" in this tree", 1)?;
        expect_count(
            run,
            "not ours: mailbox \"kv\" belongs to supervisor root/0: only its workers can serve it",
            1,
        )?;
        expect_prefix_once(run, "returned Ok").map(drop)
    }

    pub(crate) fn duplicate_name(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        expect_prefix_once(run, "returned Err DuplicateName").map(drop)
    }

    pub(crate) fn panic_server_restarts(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        expect_count(run, "calls ok=490 failed=10 other=0", 1)?;
        let line = expect_prefix_once(run, "slowest recovery ")?;
        let us: u64 = line["slowest recovery ".len()..]
            .trim_end_matches(" us")
            .parse()
            .map_err(|e| format!("{line:?}: {e}"))?;
        if us > 50_000 {
            return Err(format!(
                "a good reply came {us} us after a failed call; at most 50 ms"
            ));
        }
        expect_prefix_once(run, "returned Ok").map(drop)
    }

    pub(crate) fn mailbox_outlives_host(run: &mut Run) -> Result<(), String> {
        // Kill the first host once it has received something.
        let host = pid_in(&wait_line(run, "server-host ")?)?;
        run.wait_for("200 messages received", |run| {
            match run.count(|l| l.starts_with("got ")) {
                n if n > 200 => Ok(()),
                n => Err(format!("{n} received")),
            }
        })?;
        run.signal(host, Signal::SIGKILL)?;
        expect_exit_code(run, 0)?;
        let hosts = run.count(|l| l.starts_with("server-host "));
        if hosts != 2 {
            return Err(format!("expected the server in 2 hosts, saw {hosts}"));
        }
        let got: Vec<u32> = run
            .stdout()
            .iter()
            .filter_map(|l| l.strip_prefix("got ")?.parse().ok())
            .collect();
        if !got.windows(2).all(|w| w[0] < w[1]) {
            return Err("messages out of order or duplicated".into());
        }
        // At most the one message the dying run had taken is lost.
        if got.len() < 2999 {
            return Err(format!("only {} of 3000 messages arrived", got.len()));
        }
        expect_count(run, "last received", 1)?;
        expect_prefix_once(run, "returned Ok").map(drop)
    }

    pub(crate) fn mailbox_bounded(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        let line = expect_prefix_once(run, "sent by 150 ms: ")?;
        let sent: u32 = line["sent by 150 ms: ".len()..]
            .parse()
            .map_err(|e| format!("{line:?}: {e}"))?;
        if !(1..2000).contains(&sent) {
            return Err(format!(
                "{sent} messages were queued before the server read any; the mailbox must hold some, not all 2000"
            ));
        }
        run.note(format!(
            "the mailbox held {sent} messages before send waited"
        ));
        expect_count(run, "server got 2000", 1)?;
        if run.count(|l| l.starts_with("out of order")) > 0 {
            return Err("messages out of order".into());
        }
        expect_prefix_once(run, "returned Ok").map(drop)
    }

    pub(crate) fn dynamic_children(run: &mut Run) -> Result<(), String> {
        let started = wait_line(run, "started ")?;
        let host = pid_in(&expect_prefix_once(run, "conn 5 started in ")?)?;
        run.signal(host, Signal::SIGKILL)?;
        expect_exit_code(run, 0)?;
        let _ = started;
        expect_count(run, "ids 1 2 3", 1)?;
        expect_count(
            run,
            "refused: the supervisor of template \"conn\" already runs its maximum of 3 children",
            1,
        )?;
        expect_prefix_once(
            run,
            "wrong: \"conn\" was sent a u8 where its receiving side takes a ",
        )?;
        expect_count(run, "terminated 1", 1)?;
        expect_count(run, "again: no child 1 runs under template \"conn\"", 1)?;
        expect_count(run, "started 4", 1)?;
        expect_count(run, "conn 1 drained", 1)?;
        // Children 2, 3 and 4 (argument 5) came back in a new host.
        for n in [2, 3, 5] {
            let starts = run.count(|l| l.starts_with(&format!("conn {n} started in ")));
            if starts != 2 {
                return Err(format!("conn {n} started {starts} times; expected 2"));
            }
        }
        expect_count(run, "event root/0/conn#1: stopped; not restarted", 1)?;
        expect_count(run, "event root/0/conn#1: removed", 1)?;
        for id in [2, 3, 4] {
            let line = format!("event root/0/conn#{id}: killed by signal SIGKILL");
            if run.count(|l| l.starts_with(&line)) != 1 {
                return Err(format!("no {line:?}: {:#?}", run.stdout()));
            }
        }
        expect_prefix_once(run, "returned Ok").map(drop)
    }

    pub(crate) fn dynamic_supervisor_gone(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        expect_count(run, "started 1", 1)?;
        expect_count(
            run,
            "event root/0: gave up: restart intensity exceeded; not restarted",
            1,
        )?;
        for what in ["terminate", "start"] {
            let prefix = format!("{what}: NoReply after ");
            let line = expect_prefix_once(run, &prefix)?;
            let ms: u64 = line[prefix.len()..]
                .trim_end_matches(" ms")
                .parse()
                .map_err(|e| format!("{line:?}: {e}"))?;
            if !(4900..=6500).contains(&ms) {
                return Err(format!("{what}: NoReply after {ms} ms; expected 5 s"));
            }
        }
        expect_prefix_once(run, "returned Ok").map(drop)
    }
}

/// The runner's side of `examples/kv.rs` and `examples/conn_pool.rs`.
pub(crate) mod examples {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    use nix::sys::signal::Signal;

    use crate::drive::{expect_count, expect_exit_code, wait_line};
    use crate::runner::Run;

    /// A custom executor without a reactor of its own: mailboxes work on
    /// supertrees' default one.
    pub(crate) fn custom_executor(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        expect_count(run, "asked across processes: pong-ping", 1)?;
        expect_count(run, "done", 1)
    }

    pub(crate) fn kv(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        for line in [
            "client: apples = Some(3)",
            "client: the server crashed with our call",
            "client: after the restart pears = Some(5), apples = None (its state went with it)",
            "done",
        ] {
            expect_count(run, line, 1)?;
        }
        let servers = run.count(|l| l.starts_with("server: serving kv in process "));
        if servers != 2 {
            return Err(format!("the server ran {servers} times; expected 2"));
        }
        Ok(())
    }

    /// A line-echoing client of the pool.
    struct Client {
        reader: BufReader<TcpStream>,
        writer: TcpStream,
    }

    impl Client {
        fn connect(addr: &str) -> Result<Self, String> {
            let stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
            stream
                .set_read_timeout(Some(Duration::from_secs(3)))
                .map_err(|e| e.to_string())?;
            let writer = stream.try_clone().map_err(|e| e.to_string())?;
            Ok(Self {
                reader: BufReader::new(stream),
                writer,
            })
        }

        fn line(&mut self) -> Result<String, String> {
            let mut got = String::new();
            self.reader.read_line(&mut got).map_err(|e| e.to_string())?;
            Ok(got.trim_end().to_owned())
        }

        /// Told `busy`, then the end of the connection (not a reset).
        fn turned_away(&mut self, who: &str) -> Result<(), String> {
            match self.line() {
                Ok(busy) if busy == "busy" => {}
                other => return Err(format!("{who} got {other:?}, not busy")),
            }
            match self.line() {
                Ok(end) if end.is_empty() => Ok(()),
                other => Err(format!(
                    "after busy, {who} got {other:?}, not the end of the connection"
                )),
            }
        }

        fn send(&mut self, text: &str) -> Result<(), String> {
            self.writer
                .write_all(format!("{text}\n").as_bytes())
                .map_err(|e| e.to_string())
        }

        fn echo(&mut self, text: &str) -> Result<(), String> {
            self.send(text)?;
            match self.line()? {
                got if got == text => Ok(()),
                got => Err(format!("sent {text:?}, got {got:?}")),
            }
        }
    }

    pub(crate) fn conn_pool(run: &mut Run) -> Result<(), String> {
        let line = wait_line(run, "listening on ")?;
        let addr = line.trim_start_matches("listening on ").trim().to_owned();
        let mut clients = Vec::new();
        for n in 0..4 {
            let mut client = Client::connect(&addr)?;
            client.echo(&format!("hello {n}"))?;
            clients.push(client);
        }
        // More are refused while four are served: told `busy`, then the
        // connection ends cleanly (not reset), whether they sent something
        // first (which the server does not read) or not.
        let mut fifth = Client::connect(&addr)?;
        fifth.turned_away("the fifth client")?;
        let mut eager = Client::connect(&addr)?;
        eager.send(&"hello ".repeat(1000))?;
        eager.turned_away("a client that sent first")?;
        // One leaves: its child ends and is removed; there is room again.
        drop(clients.remove(0));
        wait_line(run, "event root/0/conn#1: removed")?;
        let mut sixth = Client::connect(&addr)?;
        sixth.echo("room again")?;
        for client in &mut clients {
            client.echo("still here")?;
        }
        run.signal_root(Signal::SIGTERM)?;
        let status = run.wait_exit()?;
        if status.code() != Some(0) {
            return Err(format!("the tree did not stop cleanly: {status:?}"));
        }
        expect_count(run, "stopped", 1)?;
        let fifth = run.count(|l| {
            l.starts_with("event root/0/conn#5 (pid ") && l.ends_with("): worker started")
        });
        if fifth != 1 {
            return Err(format!("child 5 started {fifth} times; expected once"));
        }
        run.note(
            "4 connections served, 2 more told busy and closed cleanly, another served after one left"
                .into(),
        );
        Ok(())
    }
}
