//! Scenarios for the tree's figures: a scripted history read back from the
//! status socket's `metrics` request and parsed whole; the series stay
//! bounded however many children of a template come and go; and a
//! recorder of the user's own gets the figures within a second, from a
//! root that wakes at most once a second; and every log line a worker's
//! code emits says which node it is. Included by `main.rs`: each scenario
//! body runs in its own process, each drive in the runner.

pub(crate) mod scenario {
    use std::io::Write;
    use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
    use std::sync::Arc;
    use std::time::Duration;

    use metrics::{Counter, CounterFn, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata};
    use metrics::{Recorder, SharedString, Unit};
    use supertrees::{BoxFuture, RestartPolicy, Restartable, Supertree, Worker};

    use crate::observe::test_dir;

    /// Panics in its first three runs, then runs until stopped.
    struct Flaky;

    static RUNS: AtomicU32 = AtomicU32::new(0);

    impl Worker for Flaky {
        fn init(&self) -> BoxFuture {
            Box::pin(async {
                if RUNS.fetch_add(1, SeqCst) < 3 {
                    panic!("flaky");
                }
                supertrees::stopping().await;
            })
        }
    }

    impl Restartable for Flaky {}

    /// Serves `kv`: answers a call with its number plus one.
    struct Server;

    impl Worker for Server {
        fn init(&self) -> BoxFuture {
            Box::pin(async {
                let Ok(mut inbox) = supertrees::inbox::<u32>("kv") else {
                    println!("no inbox");
                    return;
                };
                while let Some(envelope) = inbox.recv().await {
                    if envelope.is_call() {
                        let n = *envelope.message();
                        envelope.reply(n + 1);
                    }
                }
            })
        }
    }

    impl Restartable for Server {}

    /// 100 casts and 50 calls to `kv`, three children of `conn` that stay,
    /// then `jobs` children of `job` that end at once; prints
    /// `client-done` and waits to be stopped.
    struct Client {
        jobs: u32,
    }

    impl Worker for Client {
        fn init(&self) -> BoxFuture {
            let jobs = self.jobs;
            Box::pin(async move {
                if let Err(err) = traffic(jobs).await {
                    println!("client failed: {err}");
                    return;
                }
                println!("client-done");
                supertrees::stopping().await;
            })
        }
    }

    impl Restartable for Client {
        fn restart_policy(&self) -> RestartPolicy {
            RestartPolicy::Never
        }
    }

    async fn traffic(jobs: u32) -> Result<(), supertrees::Error> {
        let kv = supertrees::mailbox::<u32>("kv")?;
        for n in 0..100 {
            kv.send(n).await?;
        }
        for n in 0..50 {
            let got: u32 = kv.call(n, Duration::from_secs(5)).await?;
            assert_eq!(got, n + 1);
        }
        for port in 0..3u16 {
            supertrees::start_child("conn", port).await?;
        }
        for n in 0..jobs {
            supertrees::start_child("job", n).await?;
        }
        Ok(())
    }

    /// Runs until stopped.
    struct Idle;

    impl Worker for Idle {
        fn init(&self) -> BoxFuture {
            Box::pin(supertrees::stopping())
        }
    }

    impl Restartable for Idle {}

    /// Ends at once, for good.
    struct Done;

    impl Worker for Done {
        fn init(&self) -> BoxFuture {
            Box::pin(async {})
        }
    }

    impl Restartable for Done {
        fn restart_policy(&self) -> RestartPolicy {
            RestartPolicy::Never
        }
    }

    /// The scripted history: `root/0` panics three times; `root/1` (a
    /// supervisor process) declares `kv` and the templates; the client,
    /// in `root/2` (another process, a subtree limited to 1 GiB), sends,
    /// calls, and starts three children that stay and 1 000 that end.
    fn scripted(jobs: u32) -> Supertree {
        Supertree::new()
            .with_intensity(crate::scenario::lenient())
            .status_socket(test_dir().join("status.sock"))
            .on_ready(|_| println!("tree-ready"))
            .add_worker(Flaky)
            .add_supervisor(|s| {
                s.with_mailbox("kv")
                    .add_dynamic("conn", |_port: u16| Idle)
                    .add_dynamic("job", |_n: u32| Done)
                    .add_worker(Server)
            })
            .add_supervisor(|s| {
                s.with_limits(supertrees::Limits::new().memory(1 << 30))
                    .add_worker(Client { jobs })
            })
    }

    pub(crate) fn history() {
        crate::scenario::report(scripted(1000).start());
    }

    /// Logs from its `init`, its future, a subtask, and starts a child of
    /// `conn` that logs; then prints `talked <pid>` and waits.
    struct Talker(&'static str);

    impl Worker for Talker {
        fn init(&self) -> BoxFuture {
            let name = self.0;
            tracing::info!("{name} talks from init");
            Box::pin(async move {
                tracing::info!("{name} talks from its future");
                let (tx, rx) = futures::channel::oneshot::channel();
                supertrees::spawn(async move {
                    tracing::info!("{name} talks from a subtask");
                    let _ = tx.send(());
                });
                let _ = rx.await;
                if name == "talker" {
                    if let Err(err) = supertrees::start_child("conn", 7u16).await {
                        println!("no child: {err}");
                    }
                }
                println!("talked {name} {}", std::process::id());
                supertrees::stopping().await;
            })
        }
    }

    impl Restartable for Talker {}

    /// Logs once it runs, then waits.
    struct Conn;

    impl Worker for Conn {
        fn init(&self) -> BoxFuture {
            Box::pin(async {
                tracing::info!("conn talks");
                println!("talked conn {}", std::process::id());
                supertrees::stopping().await;
            })
        }
    }

    impl Restartable for Conn {}

    /// Workers that log, named and not, and a child started at run time.
    pub(crate) fn spans() {
        let tree = Supertree::new()
            .add_worker(Talker("talker"))
            .add_supervisor(|s| {
                s.with_name("api")
                    .add_dynamic("conn", |_port: u16| Conn)
                    .add_named_worker("web", Talker("web"))
            });
        crate::scenario::report(tree.start());
    }

    /// Casts `casts` to `kv`, then prints `<name> sent`.
    struct Caster {
        name: &'static str,
        casts: u32,
    }

    impl Worker for Caster {
        fn init(&self) -> BoxFuture {
            let (name, casts) = (self.name, self.casts);
            Box::pin(async move {
                let sent = async {
                    let kv = supertrees::mailbox::<u32>("kv")?;
                    for n in 0..casts {
                        kv.send(n).await?;
                    }
                    Ok::<_, supertrees::Error>(())
                };
                match sent.await {
                    Ok(()) => println!("{name} sent"),
                    Err(err) => println!("{name} failed: {err}"),
                }
                supertrees::stopping().await;
            })
        }
    }

    impl Restartable for Caster {}

    /// Casts 5 to `kv`, waits 1.5 s (the client's 100 are counted by
    /// then), then zeroes every shared writable mapping of its process
    /// (where the tallies are) and prints `forged <n> mappings`.
    struct Forger;

    impl Worker for Forger {
        fn init(&self) -> BoxFuture {
            Box::pin(async {
                let sent = async {
                    let kv = supertrees::mailbox::<u32>("kv")?;
                    for n in 0..5 {
                        kv.send(n).await?;
                    }
                    Ok::<_, supertrees::Error>(())
                };
                if let Err(err) = sent.await {
                    println!("forger failed: {err}");
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1500)).await;
                match forge() {
                    Ok(n) => println!("forged {n} mappings"),
                    Err(err) => println!("forging failed: {err}"),
                }
                supertrees::stopping().await;
            })
        }
    }

    impl Restartable for Forger {}

    /// Zeroes every shared writable mapping of this process; how many.
    #[allow(unsafe_code)]
    fn forge() -> Result<usize, String> {
        let maps = std::fs::read_to_string("/proc/self/maps").map_err(|e| e.to_string())?;
        let mut forged = 0;
        for line in maps.lines() {
            let mut fields = line.split_whitespace();
            let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
                continue;
            };
            if !perms.starts_with("rw") || !perms.ends_with('s') {
                continue;
            }
            let Some((start, end)) = range.split_once('-') else {
                continue;
            };
            let (Ok(start), Ok(end)) =
                (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
            else {
                continue;
            };
            // SAFETY: the attack: a shared writable mapping of this
            // process, written whole while nothing else here uses it (the
            // tallies' atomics are zero-valid; the abort mark a word).
            unsafe { std::ptr::write_bytes(start as *mut u8, 0, (end - start) as usize) };
            forged += 1;
        }
        Ok(forged)
    }

    /// A root-owned client casts 100 to `kv`; a worker of a
    /// `with_user(65534, 65534)` subtree casts 5, then, told to, zeroes
    /// every shared writable mapping it holds: it may unsay its own
    /// user's traffic, never the root's user's.
    pub(crate) fn forge_tallies() {
        if !nix::unistd::geteuid().is_root() {
            println!("skipped: switching users needs root");
            return;
        }
        let tree = Supertree::new()
            .status_socket(test_dir().join("status.sock"))
            .add_supervisor(|s| s.with_mailbox("kv").add_worker(Idle))
            .add_worker(Caster {
                name: "client",
                casts: 100,
            })
            .add_supervisor(|s| s.with_user(65534, 65534).add_worker(Forger));
        crate::scenario::report(tree.start());
    }

    /// A recorder that prints every value a counter or gauge is set to:
    /// `figure <name>{<label>=<value>,...} <value>`.
    #[derive(Debug)]
    struct Printer;

    #[derive(Debug)]
    struct Printed(String);

    impl Printed {
        fn print(&self, value: f64) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "figure {} {value}", self.0);
            let _ = out.flush();
        }
    }

    impl CounterFn for Printed {
        fn increment(&self, value: u64) {
            self.print(value as f64);
        }
        fn absolute(&self, value: u64) {
            self.print(value as f64);
        }
    }

    impl GaugeFn for Printed {
        fn increment(&self, value: f64) {
            self.print(value);
        }
        fn decrement(&self, value: f64) {
            self.print(-value);
        }
        fn set(&self, value: f64) {
            self.print(value);
        }
    }

    fn series(key: &Key) -> Arc<Printed> {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        Arc::new(Printed(format!("{}{{{}}}", key.name(), labels.join(","))))
    }

    impl Recorder for Printer {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(series(key))
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(series(key))
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    /// The scripted history without the 1 000 jobs, `with_metrics`, and
    /// the user's recorder (the [`Printer`]) installed in `main`: no
    /// status socket.
    pub(crate) fn recorder() {
        if metrics::set_global_recorder(Printer).is_err() {
            println!("a recorder was installed already");
            return;
        }
        // No `on_ready`, no `on_event`: the figures alone have the root
        // gather the tree's events.
        let tree = Supertree::new()
            .with_intensity(crate::scenario::lenient())
            .with_metrics()
            .add_worker(Flaky)
            .add_supervisor(|s| {
                s.with_mailbox("kv")
                    .add_dynamic("conn", |_port: u16| Idle)
                    .add_dynamic("job", |_n: u32| Done)
                    .add_worker(Server)
            })
            .add_supervisor(|s| s.add_worker(Client { jobs: 0 }));
        crate::scenario::report(tree.start());
    }
}

pub(crate) mod drive {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::time::{Duration, Instant};

    use nix::sys::signal::Signal;
    use prometheus_parse::{Scrape, Value};

    use super::super::control::drive::ask;
    use super::super::drive::wait_line;
    use super::super::observe::dir_of;
    use super::super::runner::Run;

    /// Every family of the contract.
    const FAMILIES: [&str; 13] = [
        "supertrees_child_restarts_total",
        "supertrees_child_exits_total",
        "supertrees_child_up",
        "supertrees_child_ready",
        "supertrees_intensity_exceeded_total",
        "supertrees_dynamic_children",
        "supertrees_mailbox_sent_total",
        "supertrees_mailbox_calls_total",
        "supertrees_events_dropped_total",
        "supertrees_memory_bytes",
        "supertrees_upgrades_total",
        "supertrees_generation",
        "supertrees_build_info",
    ];

    /// The answer to `metrics` on `socket`.
    fn scrape(socket: &Path) -> Result<String, String> {
        ask(socket, "metrics")
    }

    /// Parses the whole exposition: every sample line is a sample of a
    /// family with its `# TYPE` (a counter or a gauge) and its `# HELP`.
    /// Returns `name{label=value,...}` (labels sorted) → value.
    pub(crate) fn parse(text: &str) -> Result<BTreeMap<String, f64>, String> {
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .map_err(|e| format!("the exposition does not parse: {e}"))?;
        let lines = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .count();
        if scrape.samples.len() != lines {
            return Err(format!(
                "{} samples parsed of {lines} sample lines:\n{text}",
                scrape.samples.len()
            ));
        }
        let mut figures = BTreeMap::new();
        for sample in scrape.samples {
            let value = match sample.value {
                Value::Counter(v) | Value::Gauge(v) => v,
                other => return Err(format!("{} has no TYPE: {other:?}", sample.metric)),
            };
            if !scrape.docs.contains_key(&sample.metric) {
                return Err(format!("{} has no HELP", sample.metric));
            }
            let mut labels: Vec<String> = sample
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            labels.sort();
            figures.insert(format!("{}{{{}}}", sample.metric, labels.join(",")), value);
        }
        Ok(figures)
    }

    pub(super) fn expect(
        figures: &BTreeMap<String, f64>,
        want: &[(&str, f64)],
    ) -> Result<(), String> {
        for (series, value) in want {
            match figures.get(*series) {
                Some(got) if got == value => {}
                got => return Err(format!("{series} is {got:?}, not {value}: {figures:#?}")),
            }
        }
        Ok(())
    }

    /// What the scripted history must read, however it was published.
    const HISTORY: &[(&str, f64)] = &[
        ("supertrees_child_restarts_total{path=root/0}", 3.0),
        (
            "supertrees_child_exits_total{path=root/0,reason=panicked}",
            3.0,
        ),
        ("supertrees_child_up{path=root/0}", 1.0),
        ("supertrees_child_ready{path=root/0}", 1.0),
        ("supertrees_child_up{path=root/1/conn}", 3.0),
        ("supertrees_dynamic_children{template=root/1/conn}", 3.0),
        ("supertrees_child_restarts_total{path=root/1/conn}", 0.0),
        ("supertrees_mailbox_sent_total{mailbox=kv}", 100.0),
        (
            "supertrees_mailbox_calls_total{mailbox=kv,outcome=ok}",
            50.0,
        ),
        (
            "supertrees_mailbox_calls_total{mailbox=kv,outcome=timeout}",
            0.0,
        ),
        (
            "supertrees_mailbox_calls_total{mailbox=kv,outcome=no_reply}",
            0.0,
        ),
        (
            "supertrees_mailbox_calls_total{mailbox=kv,outcome=error}",
            0.0,
        ),
        ("supertrees_intensity_exceeded_total{supervisor=root}", 0.0),
        (
            "supertrees_intensity_exceeded_total{supervisor=root/1}",
            0.0,
        ),
        ("supertrees_events_dropped_total{}", 0.0),
        ("supertrees_generation{}", 1.0),
        ("supertrees_upgrades_total{outcome=committed}", 0.0),
        ("supertrees_child_ready{path=root/2/0}", 1.0),
    ];

    pub(crate) fn history(run: &mut Run) -> Result<(), String> {
        let socket = dir_of(run.pid()).join("status.sock");
        wait_line(run, "tree-ready")?;
        wait_line(run, "client-done")?;
        // The client's counts are in the root's figures at once (shared
        // memory), the events of the last jobs within moments.
        let figures = run.wait_for("the scripted history in the figures", |_| {
            let figures = parse(&scrape(&socket)?)?;
            let jobs = "supertrees_child_exits_total{path=root/1/job,reason=exited}";
            expect(&figures, &[(jobs, 1000.0)])?;
            // root/0's last restart may come after its backoff.
            expect(&figures, HISTORY)?;
            Ok(figures)
        })?;
        expect(
            &figures,
            &[
                ("supertrees_dynamic_children{template=root/1/job}", 0.0),
                ("supertrees_child_up{path=root/1/job}", 0.0),
            ],
        )?;
        let version = env!("CARGO_PKG_VERSION");
        expect(
            &figures,
            &[(&format!("supertrees_build_info{{version={version}}}"), 1.0)],
        )?;
        // The limited subtree's memory, as its memory cgroup reads; none
        // where limits are enforced by rlimits (no cgroup to read).
        let status = ask(&socket, "status json")?;
        let status: serde_json::Value =
            serde_json::from_str(&status).map_err(|e| format!("status json: {e}"))?;
        let limited = status["nodes"]
            .as_array()
            .and_then(|nodes| nodes.iter().find(|n| n["path"] == "root/2"))
            .ok_or("no root/2 in status json")?;
        let memory = figures.get("supertrees_memory_bytes{supervisor=root/2}");
        match (limited["memory_bytes"].as_u64(), memory) {
            (Some(_), Some(&bytes)) if bytes > 0.0 => {
                run.note(format!("root/2 uses {bytes} bytes"));
            }
            (None, None) => run.note("no memory cgroup: no supertrees_memory_bytes".to_owned()),
            (status, figure) => {
                return Err(format!(
                    "root/2's memory: {status:?} in status json, {figure:?} in the figures"
                ))
            }
        }
        // Every family there (memory only with a memory cgroup).
        for family in FAMILIES
            .iter()
            .filter(|f| **f != "supertrees_memory_bytes" || memory.is_some())
        {
            if !figures
                .keys()
                .any(|s| s.starts_with(&format!("{family}{{")))
            {
                return Err(format!("no {family}: {figures:#?}"));
            }
        }
        // Bounded: no series names a child's id, nor a worker host; one
        // series per family and label set however many jobs came and went.
        if let Some(bad) = figures
            .keys()
            .find(|s| s.contains('#') || s.contains("host"))
        {
            return Err(format!("a series names an id or a host: {bad}"));
        }
        if figures.len() > 60 {
            return Err(format!("{} series: {figures:#?}", figures.len()));
        }
        run.note(format!(
            "{} series after 1000 jobs came and went",
            figures.len()
        ));
        run.signal_root(Signal::SIGTERM)?;
        let status = run.wait_exit()?;
        if status.code() != Some(0) {
            return Err(format!("the tree did not stop cleanly: {status:?}"));
        }
        Ok(())
    }

    pub(crate) fn forge_tallies(run: &mut Run) -> Result<(), String> {
        let first = run.wait_for("the forgery, or a skip", |run| {
            run.stdout()
                .into_iter()
                .find(|l| {
                    l.starts_with("forged ") || l.starts_with("forg") || l.starts_with("skipped: ")
                })
                .ok_or_else(|| "not yet".to_owned())
        })?;
        if first.starts_with("skipped: ") {
            run.note(first);
            return super::super::drive::expect_exit_code(run, 0);
        }
        if !first.starts_with("forged ") || first == "forged 0 mappings" {
            return Err(format!("the forger: {first}"));
        }
        wait_line(run, "client sent")?;
        let socket = dir_of(run.pid()).join("status.sock");
        let figures = parse(&scrape(&socket)?)?;
        // The root's user's 100, whole; the forger's own 5 unsaid.
        expect(
            &figures,
            &[("supertrees_mailbox_sent_total{mailbox=kv}", 100.0)],
        )?;
        run.note(format!(
            "{first}; the root's user's 100 casts still counted"
        ));
        run.signal_root(Signal::SIGTERM)?;
        super::super::drive::expect_exit_code(run, 0)
    }

    /// Waits for `talked <name> <pid>`; the pid.
    fn talked(run: &mut Run, name: &str) -> Result<i32, String> {
        let line = wait_line(run, &format!("talked {name} "))?;
        line.rsplit(' ')
            .next()
            .and_then(|pid| pid.parse().ok())
            .ok_or_else(|| format!("no pid in {line:?}"))
    }

    pub(crate) fn spans(run: &mut Run) -> Result<(), String> {
        let talker = talked(run, "talker")?;
        let web = talked(run, "web")?;
        let conn = talked(run, "conn")?;
        let expect = [
            ("root/0", talker, "talker talks from init"),
            ("root/0", talker, "talker talks from its future"),
            ("root/0", talker, "talker talks from a subtask"),
            ("root/api/web", web, "web talks from its future"),
            ("root/api/web", web, "web talks from a subtask"),
            ("root/api/conn#1", conn, "conn talks"),
        ];
        for (path, pid, message) in expect {
            let span = format!("worker{{path={path} pid={pid}}}");
            let lines = run.stderr_count(|l| l.contains(&span) && l.ends_with(message));
            if lines != 1 {
                return Err(format!("{lines} lines {message:?} in span {span}"));
            }
        }
        // The engine's own lines say which node speaks too.
        let host = format!("host{{path=root/api/host pid={web}}}");
        if run.stderr_count(|l| l.contains(&host)) == 0 {
            return Err(format!("no line of the engine in span {host}"));
        }
        run.signal_root(Signal::SIGTERM)?;
        let status = run.wait_exit()?;
        if status.code() != Some(0) {
            return Err(format!("the tree did not stop cleanly: {status:?}"));
        }
        Ok(())
    }

    /// The latest value printed for each series: `figure <series> <value>`.
    fn printed(run: &Run) -> BTreeMap<String, f64> {
        run.stdout()
            .iter()
            .filter_map(|l| l.strip_prefix("figure "))
            .filter_map(|l| l.rsplit_once(' '))
            .filter_map(|(series, value)| Some((series.to_owned(), value.parse().ok()?)))
            .collect()
    }

    /// How many times process `pid` gave up the CPU of its own accord
    /// (each wait in `poll` that slept).
    fn voluntary_switches(pid: i32) -> Result<u64, String> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| format!("no voluntary_ctxt_switches in /proc/{pid}/status"))
    }

    pub(crate) fn recorder(run: &mut Run) -> Result<(), String> {
        wait_line(run, "client-done")?;
        let done = Instant::now();
        // The user's recorder, in the root, gets the client's counts
        // (counted in another process) within a second.
        run.wait_for("the client's traffic in the user's recorder", |run| {
            let figures = printed(run);
            let sent = "supertrees_mailbox_sent_total{mailbox=kv}";
            match figures.get(sent) {
                Some(100.0) => Ok(()),
                got => Err(format!("{sent} is {got:?}")),
            }
        })?;
        let took = done.elapsed();
        // Published once a second: within a second of the last change,
        // and the scheduler's delay on a loaded machine (the runner polls
        // every 10 ms and reads output as it comes).
        if took > Duration::from_millis(1500) {
            return Err(format!("the figures took {took:?} to reach the recorder"));
        }
        // root/0's last restart may come after its backoff.
        run.wait_for("the scripted history in the user's recorder", |run| {
            expect(&printed(run), HISTORY)
        })?;
        run.note(format!("the recorder had the traffic {took:?} after it"));
        // An idle tree: the root wakes about once a second, no more.
        std::thread::sleep(Duration::from_millis(500));
        let before = voluntary_switches(run.pid())?;
        std::thread::sleep(Duration::from_secs(4));
        let woke = voluntary_switches(run.pid())? - before;
        if woke > 6 {
            return Err(format!("the idle root woke {woke} times in 4 s"));
        }
        run.note(format!("the idle root woke {woke} times in 4 s"));
        let lines = run.count(|l| l.starts_with("figure "));
        std::thread::sleep(Duration::from_millis(2500));
        let more = run.count(|l| l.starts_with("figure ")) - lines;
        if more != 0 {
            return Err(format!(
                "{more} figures published again while nothing changed"
            ));
        }
        run.signal_root(Signal::SIGTERM)?;
        let status = run.wait_exit()?;
        if status.code() != Some(0) {
            return Err(format!("the tree did not stop cleanly: {status:?}"));
        }
        // Published once more as the tree ended: its stops are in.
        expect(
            &printed(run),
            &[
                (
                    "supertrees_child_exits_total{path=root/2/0,reason=stopped}",
                    1.0,
                ),
                ("supertrees_child_up{path=root/2/0}", 0.0),
            ],
        )
    }
}

/// The runner's side of `examples/metrics_http.rs`: its `GET /metrics`
/// parses whole, and a real Prometheus server scrapes it where one is
/// installed (Debian's `prometheus`).
pub(crate) mod example {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use nix::sys::signal::Signal;

    use super::drive::{expect, parse};
    use crate::drive::{expect_exit_code, wait_line};
    use crate::runner::Run;

    /// `GET path` on `addr`: the status line, the headers and the body.
    fn get(addr: SocketAddr, path: &str) -> Result<(String, String), String> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
            .map_err(|e| format!("connect {addr}: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .map_err(|e| format!("send: {e}"))?;
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .map_err(|e| format!("read: {e}"))?;
        let (head, body) = answer
            .split_once("\r\n\r\n")
            .ok_or_else(|| format!("no end of headers: {answer:?}"))?;
        Ok((head.to_owned(), body.to_owned()))
    }

    /// A Prometheus server that scrapes `target` every second, in a
    /// directory of its own; killed and removed when dropped.
    struct Prometheus {
        child: Child,
        dir: std::path::PathBuf,
        api: SocketAddr,
    }

    impl Prometheus {
        fn start(target: SocketAddr) -> Result<Self, String> {
            let api: SocketAddr = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| e.to_string())?;
            let dir =
                std::env::temp_dir().join(format!("supertrees-prometheus-{}", std::process::id()));
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let config = dir.join("prometheus.yml");
            std::fs::write(
                &config,
                format!(
                    "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: supertrees\n    static_configs:\n      - targets: [\"{target}\"]\n"
                ),
            )
            .map_err(|e| e.to_string())?;
            let child = Command::new("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address={api}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("prometheus: {e}"))?;
            Ok(Self { child, dir, api })
        }

        /// The value of the instant query `query` (its first series).
        fn query(&self, query: &str) -> Result<f64, String> {
            let encoded: String = query
                .bytes()
                .map(|b| match b {
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect();
            let (_, body) = get(self.api, &format!("/api/v1/query?query={encoded}"))?;
            let doc: serde_json::Value =
                serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
            doc["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{query}: {body}"))
        }
    }

    impl Drop for Prometheus {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    pub(crate) fn metrics_http(run: &mut Run) -> Result<(), String> {
        let line = wait_line(run, "serving http://")?;
        let addr: SocketAddr = line
            .trim_start_matches("serving http://")
            .trim_end_matches("/metrics")
            .parse()
            .map_err(|e| format!("{line:?}: {e}"))?;
        let (head, body) = get(addr, "/metrics")?;
        if !head.starts_with("HTTP/1.1 200") || !head.contains("text/plain; version=0.0.4") {
            return Err(format!("GET /metrics: {head}"));
        }
        let figures = parse(&body)?;
        expect(
            &figures,
            &[
                ("supertrees_child_up{path=root/telemetry/http}", 1.0),
                ("supertrees_generation{}", 1.0),
            ],
        )?;
        let (head, _) = get(addr, "/nope")?;
        if !head.starts_with("HTTP/1.1 404") {
            return Err(format!("GET /nope: {head}"));
        }
        if Command::new("prometheus")
            .arg("--version")
            .output()
            .is_err()
        {
            run.note(
                "skipped the real Prometheus: no `prometheus` (apt-get install prometheus)"
                    .to_owned(),
            );
        } else {
            let prometheus = Prometheus::start(addr)?;
            let began = Instant::now();
            let up = run.wait_for("Prometheus's first scrape", |_| {
                prometheus.query(r#"supertrees_child_up{path="root/telemetry/http"}"#)
            })?;
            if up != 1.0 {
                return Err(format!("Prometheus reads root/telemetry/http up = {up}"));
            }
            run.note(format!(
                "a real Prometheus scraped it {:?} after it started",
                began.elapsed()
            ));
        }
        run.signal_root(Signal::SIGTERM)?;
        expect_exit_code(run, 0)?;
        wait_line(run, "stopped").map(drop)
    }
}
