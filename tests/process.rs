//! Process-level tests of the fork-per-supervisor engine: real trees, real
//! `fork`, real signals.
//!
//! This is a `harness = false` test, and one binary plays two parts:
//!
//! * **Scenario.** With `SUPERTREES_SCENARIO=<name>` in its environment the
//!   binary runs that one scenario in its own, still single-threaded process:
//!   it prints `root-pid <pid>`, builds a tree, calls `start()` (so this
//!   process becomes the root supervisor and forks the rest of the tree),
//!   prints what `start()` returned, and exits.
//! * **Runner.** Without it, the binary runs every scenario (or those whose
//!   name contains one of the arguments: `cargo test --test process -- NAME`)
//!   one after the other, each as a child process in a process group of its
//!   own, under a timeout. The runner reads the scenario's output, drives it
//!   where the scenario needs it (signals, SIGKILL chaos) and checks its exit
//!   status, its output, and that no process of its group is left behind.
//!
//! libtest runs tests on several threads, and forking a multi-threaded process
//! is exactly what the engine must never do; hence the hand-written runner.
//!
//! The runner makes itself a child subreaper, so the processes of a tree that
//! lose their parent are re-parented to the runner (not to whatever runs as
//! PID 1), and it reaps them itself. A zombie whose parent is still a process
//! of the tree is counted as the tree's fault.
//!
//! Scenario output protocol (one line each, on stdout):
//!
//! * `root-pid <pid>` first;
//! * `start <worker> <pid>` when a worker's future starts (pid of its worker
//!   host) and `dropped <worker> <pid>` when that future is dropped;
//! * `run <worker>` for workers that return at once;
//! * `returned Ok` or `returned Err <kind>: <message>` after `start()`.
//!
//! Environment: `SUPERTREES_CHAOS_SEED` fixes the chaos scenario's random
//! choices (the seed used is printed); `RUST_LOG` sets the scenarios' log
//! filter (default `info`; their stderr is shown for failed scenarios).
#![forbid(unsafe_code)]

use std::time::Duration;

#[path = "process/observe.rs"]
mod observe;

/// The environment variable that makes this binary run one scenario.
const SCENARIO_VAR: &str = "SUPERTREES_SCENARIO";

fn main() {
    if let Some(socket) = std::env::var_os(observe::CLIENT_VAR) {
        observe::client(socket.as_ref());
    }
    match std::env::var(SCENARIO_VAR) {
        Ok(name) => scenario::run(&name),
        Err(_) => std::process::exit(runner::main()),
    }
}

/// What the runner does and checks while a scenario (or example) runs.
type Drive = fn(&mut runner::Run) -> Result<(), String>;

/// One scenario: what runs in the scenario process (`body`) and what the
/// runner does and checks meanwhile (`drive`).
struct Scenario {
    name: &'static str,
    body: fn(),
    drive: Drive,
    timeout: Duration,
}

const fn scenario(name: &'static str, body: fn(), drive: Drive, timeout_secs: u64) -> Scenario {
    Scenario {
        name,
        body,
        drive,
        timeout: Duration::from_secs(timeout_secs),
    }
}

/// Every scenario, in the order they run.
const SCENARIOS: &[Scenario] = &[
    // Issue 3: seed compatibility and the plain ways `start()` ends.
    scenario("seed", scenario::seed, drive::seed, 10),
    scenario("once_twice", scenario::once_twice, drive::once_twice, 10),
    scenario(
        "start_returns",
        scenario::start_returns,
        drive::start_returns,
        10,
    ),
    scenario(
        "inside_runtime_multi_thread",
        scenario::inside_runtime_multi_thread,
        drive::inside_runtime,
        10,
    ),
    scenario(
        "inside_runtime_current_thread",
        scenario::inside_runtime_current_thread,
        drive::inside_runtime,
        10,
    ),
    // Issue 4: robustness of the process engine.
    scenario("kill_root", scenario::small_tree, drive::kill_root, 10),
    scenario("term_root", scenario::small_tree, drive::term_root, 15),
    scenario("int_root", scenario::small_tree, drive::int_root, 15),
    scenario(
        "panic_intensity",
        scenario::panic_intensity,
        drive::panic_intensity,
        10,
    ),
    scenario(
        "panic_intensity_nested",
        scenario::panic_intensity_nested,
        drive::panic_intensity_nested,
        10,
    ),
    scenario(
        "term_host_drops_futures",
        scenario::term_host_drops_futures,
        drive::term_host_drops_futures,
        10,
    ),
    scenario(
        "busy_restarts_stop",
        scenario::busy_restarts_stop,
        drive::busy_restarts_stop,
        10,
    ),
    scenario("chaos", scenario::chaos, drive::chaos, 30),
    scenario(
        "panic_one_for_all_mix",
        scenario::panic_one_for_all_mix,
        drive::panic_one_for_all_mix,
        10,
    ),
    scenario(
        "shutdown_timeout_kills",
        scenario::shutdown_timeout_kills,
        drive::shutdown_timeout_kills,
        10,
    ),
    scenario(
        "resource_limits",
        scenario::resource_limits,
        drive::resource_limits,
        20,
    ),
    // Issue 6: readiness, events, status socket, systemd, IPC faults.
    scenario(
        "observe",
        observe::scenario::observe,
        observe::drive::observe,
        20,
    ),
    scenario(
        "sd_notify",
        observe::scenario::sd_notify,
        observe::drive::sd_notify,
        15,
    ),
    scenario(
        "sd_notify_done",
        observe::scenario::sd_notify_done,
        observe::drive::sd_notify_done,
        10,
    ),
    scenario(
        "panic_in_on_event",
        observe::scenario::panic_in_on_event,
        observe::drive::panic_in_on_event,
        10,
    ),
    scenario(
        "ipc_garbage",
        observe::scenario::ipc_garbage,
        observe::drive::ipc_garbage,
        10,
    ),
    scenario(
        "slow_reader",
        observe::scenario::slow_reader,
        observe::drive::slow_reader,
        20,
    ),
];

/// Examples run as they are, when their binaries have been built.
const EXAMPLES: &[(&str, Drive)] = &[
    ("seed_tree", drive::seed),
    ("smol_tree", drive::example),
    ("custom_executor", drive::example),
];

/// The small tree of the signal scenarios: two levels of supervisors, six
/// workers that run until stopped.
mod small {
    /// Processes: root + host, and for `root/s1` and `root/s2` each: the
    /// supervisor, its host, its sub-supervisor and that one's host.
    pub(crate) const PROCESSES: usize = 10;

    /// Every worker of the tree, in start order.
    pub(crate) const WORKERS: [&str; 6] = [
        "root/w0",
        "root/s1/w0",
        "root/s1/s1/w0",
        "root/s2/w0",
        "root/s2/s1/w0",
        "root/w3",
    ];

    /// The order in which an orderly stop drops the workers' futures: every
    /// supervisor stops its children one at a time, in reverse start order.
    pub(crate) const STOP_ORDER: [&str; 6] = [
        "root/w3",
        "root/s2/s1/w0",
        "root/s2/w0",
        "root/s1/s1/w0",
        "root/s1/w0",
        "root/w0",
    ];
}

/// The chaos tree: root → 3 supervisors → 2 sub-supervisors each; every
/// supervisor has 3 workers that run until stopped.
mod chaos_tree {
    /// 10 supervisors, each with one worker host.
    pub(crate) const PROCESSES: usize = 20;

    /// The paths of the 10 supervisors: the root's children are `w0..w2`,
    /// then `s3..s5`; theirs are `w0..w2`, then `s3`, `s4`.
    pub(crate) fn supervisors() -> Vec<String> {
        let mut paths = vec!["root".to_owned()];
        for i in 3..6 {
            let mid = format!("root/s{i}");
            paths.push(mid.clone());
            for j in 3..5 {
                paths.push(format!("{mid}/s{j}"));
            }
        }
        paths
    }

    /// The 30 worker names.
    pub(crate) fn workers() -> Vec<String> {
        supervisors()
            .iter()
            .flat_map(|sup| (0..3).map(move |w| format!("{sup}/w{w}")))
            .collect()
    }
}

/// The scenario side: trees built and started in the scenario process.
mod scenario {
    use std::time::{Duration, Instant};

    use supertrees::{
        BackoffPolicy, BoxFuture, Error, Intensity, RestartPolicy, Restartable, Shutdown, Strategy,
        Supertree, Supervisor, Worker,
    };

    use super::{chaos_tree, SCENARIOS};

    /// Runs scenario `name` in this process and exits.
    pub(crate) fn run(name: &str) -> ! {
        let Some(scenario) = SCENARIOS.iter().find(|s| s.name == name) else {
            eprintln!("unknown scenario {name:?}");
            std::process::exit(2);
        };
        let threads = std::fs::read_dir("/proc/self/task").map_or(0, |dir| dir.count());
        if threads != 1 {
            eprintln!("scenario process has {threads} threads before start(); expected 1");
            std::process::exit(2);
        }
        let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .init();
        println!("root-pid {}", std::process::id());
        (scenario.body)();
        std::process::exit(0)
    }

    /// Prints what `start()` returned, in a form the runner can match.
    pub(crate) fn report(result: Result<(), Error>) {
        match result {
            Ok(()) => println!("returned Ok"),
            Err(err) => {
                let kind = match &err {
                    Error::IntensityExceeded {
                        path,
                        max_restarts,
                        within,
                    } => format!(
                        "IntensityExceeded path={path} max_restarts={max_restarts} within={within:?}"
                    ),
                    Error::InsideRuntime => "InsideRuntime".to_owned(),
                    other => format!("{other:?}"),
                };
                println!("returned Err {kind}: {err}");
            }
        }
    }

    /// Prints `start <name> <pid>` when created and `dropped <name> <pid>`
    /// when dropped.
    struct Guard {
        name: String,
        pid: u32,
    }

    impl Guard {
        fn new(name: String) -> Self {
            let pid = std::process::id();
            println!("start {name} {pid}");
            Self { name, pid }
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            println!("dropped {} {}", self.name, self.pid);
        }
    }

    /// Runs until stopped, holding a [`Guard`]; `Always`, no backoff.
    struct Forever {
        name: String,
        backoff: BackoffPolicy,
    }

    impl Forever {
        fn new(name: impl Into<String>) -> Self {
            Self {
                name: name.into(),
                backoff: BackoffPolicy::immediate(),
            }
        }
    }

    impl Worker for Forever {
        fn init(&self) -> BoxFuture {
            let name = self.name.clone();
            Box::pin(async move {
                let _guard = Guard::new(name);
                std::future::pending::<()>().await;
            })
        }
    }

    impl Restartable for Forever {
        fn restart_policy(&self) -> RestartPolicy {
            RestartPolicy::Always
        }
        fn backoff_policy(&self) -> BackoffPolicy {
            self.backoff
        }
    }

    /// Prints `run <name>` and returns at once; no backoff.
    struct Echo {
        name: String,
        policy: RestartPolicy,
    }

    impl Echo {
        fn new(name: impl Into<String>, policy: RestartPolicy) -> Self {
            Self {
                name: name.into(),
                policy,
            }
        }
    }

    impl Worker for Echo {
        fn init(&self) -> BoxFuture {
            let name = self.name.clone();
            Box::pin(async move { println!("run {name}") })
        }
    }

    impl Restartable for Echo {
        fn restart_policy(&self) -> RestartPolicy {
            self.policy
        }
        fn backoff_policy(&self) -> BackoffPolicy {
            BackoffPolicy::immediate()
        }
    }

    /// Prints `start <name> <pid>` and panics; `Always`, no backoff.
    struct Panicker {
        name: String,
    }

    impl Worker for Panicker {
        fn init(&self) -> BoxFuture {
            let name = self.name.clone();
            Box::pin(async move {
                println!("start {name} {}", std::process::id());
                panic!("boom in {name}");
            })
        }
    }

    impl Restartable for Panicker {
        fn restart_policy(&self) -> RestartPolicy {
            RestartPolicy::Always
        }
        fn backoff_policy(&self) -> BackoffPolicy {
            BackoffPolicy::immediate()
        }
    }

    /// The seed program of API.md, verbatim but for ignoring the result.
    pub(crate) fn seed() {
        use supertrees::{RestartPolicy, Restartable, Supertree, Worker};

        #[derive(Debug)]
        struct W {
            num: i32,
        }
        impl Worker for W {
            fn init(
                &self,
            ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>
            {
                let num = self.num;
                Box::pin(async move {
                    println!("worker {num}");
                })
            }
        }
        impl Restartable for W {
            fn restart_policy(&self) -> RestartPolicy {
                RestartPolicy::Once
            }
        }

        let root = Supertree::new()
            .add_worker(W { num: 1 })
            .add_supervisor(|s| {
                s.add_worker(W { num: 2 })
                    .add_supervisor(|s| s.add_worker(W { num: 3 }))
            });
        let _ = root.start();
        println!("done");
    }

    pub(crate) fn once_twice() {
        report(
            Supertree::new()
                .add_worker(Echo::new("root/w0", RestartPolicy::Once))
                .start(),
        );
    }

    pub(crate) fn start_returns() {
        let never = |name: &str| Echo::new(name, RestartPolicy::Never);
        let tree = Supertree::new()
            .add_worker(never("root/w0"))
            .add_supervisor(|s| {
                s.add_worker(never("root/s1/w0"))
                    .add_supervisor(|s| s.add_worker(never("root/s1/s1/w0")))
                    .add_worker(never("root/s1/w2"))
            })
            .add_supervisor(|s| s.add_worker(never("root/s2/w0")))
            .add_supervisor(|s| s);
        report(tree.start());
    }

    fn inside_runtime(runtime: tokio::runtime::Runtime) {
        runtime.block_on(async {
            let began = Instant::now();
            let result = Supertree::new()
                .add_worker(Echo::new("root/w0", RestartPolicy::Never))
                .start();
            println!("elapsed-ms {}", began.elapsed().as_millis());
            report(result);
        });
    }

    pub(crate) fn inside_runtime_multi_thread() {
        inside_runtime(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime"),
        );
    }

    pub(crate) fn inside_runtime_current_thread() {
        inside_runtime(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime"),
        );
    }

    /// See [`super::small`].
    pub(crate) fn small_tree() {
        let sub = |s: Supervisor, path: &str| {
            s.add_worker(Forever::new(format!("{path}/w0")))
                .add_supervisor(|s| s.add_worker(Forever::new(format!("{path}/s1/w0"))))
        };
        let tree = Supertree::new()
            .add_worker(Forever::new("root/w0"))
            .add_supervisor(|s| sub(s, "root/s1"))
            .add_supervisor(|s| sub(s, "root/s2"))
            .add_worker(Forever::new("root/w3"));
        report(tree.start());
    }

    pub(crate) fn panic_intensity() {
        let tree = Supertree::new()
            .with_intensity(Intensity::new(5, Duration::from_secs(10)))
            .add_worker(Panicker {
                name: "root/w0".to_owned(),
            });
        report(tree.start());
    }

    pub(crate) fn panic_intensity_nested() {
        let tree = Supertree::new()
            .with_intensity(Intensity::new(2, Duration::from_secs(10)))
            .add_supervisor(|s| {
                s.with_intensity(Intensity::new(3, Duration::from_secs(10)))
                    .with_restart_policy(RestartPolicy::Always)
                    .with_backoff_policy(BackoffPolicy::immediate())
                    .add_worker(Panicker {
                        name: "root/s0/w0".to_owned(),
                    })
            });
        report(tree.start());
    }

    pub(crate) fn term_host_drops_futures() {
        report(Supertree::new().add_worker(Forever::new("root/w0")).start());
    }

    /// A worker that returns at once, restarted at once without end (in
    /// place, by its host), beside one that runs until stopped.
    pub(crate) fn busy_restarts_stop() {
        report(
            Supertree::new()
                .add_supervisor(|s| {
                    s.add_worker(Forever::new("root/s0/w0"))
                        .add_worker(Echo::new("root/s0/w1", RestartPolicy::Always))
                })
                .start(),
        );
    }

    /// Runs a small tree inside a pids cgroup (v1) that first allows only
    /// the root (every fork fails with EAGAIN), then too few tasks for a
    /// Tokio runtime; the runner lifts the limit step by step. Prints
    /// `cgroup <dir>`, or `skip <why>` where no pids cgroup can be made.
    pub(crate) fn resource_limits() {
        let dir = format!("/sys/fs/cgroup/pids/supertrees-test-{}", std::process::id());
        let setup = std::fs::create_dir(&dir)
            .and_then(|()| std::fs::write(format!("{dir}/pids.max"), "1"))
            .and_then(|()| {
                std::fs::write(
                    format!("{dir}/cgroup.procs"),
                    std::process::id().to_string(),
                )
            });
        if let Err(err) = setup {
            println!("skip no writable pids cgroup ({err})");
            let _ = std::fs::remove_dir(&dir);
            return;
        }
        println!("cgroup {dir}");
        let ms = Duration::from_millis;
        let worker = Forever {
            name: "root/s0/w0".to_owned(),
            backoff: BackoffPolicy::new(ms(10), ms(40), Duration::from_secs(5), 2.0),
        };
        // A multi-thread runtime, whose worker threads the pids limit can
        // refuse: the default current-thread runtime spawns none.
        report(
            Supertree::new()
                .add_supervisor(|s| s.add_worker(worker))
                .start_with(
                    supertrees::tokio::TokioSpawner::multi_thread(),
                    supertrees::tokio::TokioTimer::new(),
                ),
        );
    }

    /// Prints `start <name> <pid>`, sleeps 100 ms, and panics; `Once`.
    struct FailsLater {
        name: String,
    }

    impl Worker for FailsLater {
        fn init(&self) -> BoxFuture {
            let name = self.name.clone();
            Box::pin(async move {
                println!("start {name} {}", std::process::id());
                tokio::time::sleep(Duration::from_millis(100)).await;
                panic!("{name} fails after 100 ms");
            })
        }
    }

    impl Restartable for FailsLater {
        fn restart_policy(&self) -> RestartPolicy {
            RestartPolicy::Once
        }
        fn backoff_policy(&self) -> BackoffPolicy {
            BackoffPolicy::immediate()
        }
    }

    /// OneForAll across processes: worker `root/w0`, supervisor `root/s1`
    /// (one worker), worker `root/w2` that fails once after 100 ms.
    pub(crate) fn panic_one_for_all_mix() {
        report(
            Supertree::new()
                .with_strategy(Strategy::OneForAll)
                .add_worker(Forever::new("root/w0"))
                .add_supervisor(|s| s.add_worker(Forever::new("root/s1/w0")))
                .add_worker(FailsLater {
                    name: "root/w2".to_owned(),
                })
                .start(),
        );
    }

    /// Blocks its thread (never yields) once started, so it can not be
    /// dropped; prints `start <name> <pid>` first.
    struct Blocker;

    impl Worker for Blocker {
        fn init(&self) -> BoxFuture {
            Box::pin(async move {
                println!("start root/s0/w0 {}", std::process::id());
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                }
            })
        }
    }

    impl Restartable for Blocker {}

    /// A supervisor with `Shutdown::Timeout(300 ms)` over a worker that can
    /// not be stopped: its host must be killed after 300 ms.
    pub(crate) fn shutdown_timeout_kills() {
        report(
            Supertree::new()
                .add_supervisor(|s| {
                    s.with_shutdown(Shutdown::Timeout(Duration::from_millis(300)))
                        .add_worker(Blocker)
                })
                .start(),
        );
    }

    /// See [`super::chaos_tree`].
    pub(crate) fn chaos() {
        fn workers(mut s: Supervisor, path: &str) -> Supervisor {
            for w in 0..3 {
                s = s.add_worker(Forever::new(format!("{path}/w{w}")));
            }
            s
        }
        let mut tree = Supertree::new();
        for w in 0..3 {
            tree = tree.add_worker(Forever::new(format!("root/w{w}")));
        }
        for i in 3..6 {
            tree = tree.add_supervisor(move |s| {
                let path = format!("root/s{i}");
                let mut s = workers(s, &path);
                for j in 3..5 {
                    let sub = format!("{path}/s{j}");
                    s = s.add_supervisor(move |s| workers(s, &sub));
                }
                s
            });
        }
        debug_assert_eq!(chaos_tree::workers().len(), 30);
        report(tree.start());
    }
}

/// The runner side: what each scenario expects.
mod drive {
    use std::time::{Duration, Instant};

    use nix::sys::signal::Signal;

    use super::runner::{Proc, Rng, Run};
    use super::{chaos_tree, small};

    fn expect_exit_code(run: &mut Run, code: i32) -> Result<(), String> {
        let status = run.wait_exit()?;
        if status.code() == Some(code) {
            Ok(())
        } else {
            Err(format!(
                "expected exit code {code}, got {}",
                super::runner::describe(status)
            ))
        }
    }

    fn expect_count(run: &Run, line: &str, count: usize) -> Result<(), String> {
        let seen = run.count(|l| l == line);
        if seen == count {
            Ok(())
        } else {
            Err(format!(
                "expected the line {line:?} {count} time(s) in stdout, saw it {seen} time(s)"
            ))
        }
    }

    fn expect_prefix_once(run: &Run, prefix: &str) -> Result<String, String> {
        let lines: Vec<String> = run
            .stdout()
            .into_iter()
            .filter(|l| l.starts_with(prefix))
            .collect();
        match lines.as_slice() {
            [line] => Ok(line.clone()),
            _ => Err(format!(
                "expected one stdout line starting with {prefix:?}, saw {}: {lines:?}",
                lines.len()
            )),
        }
    }

    /// A worker's `start`/`dropped` lines, in order: `(is_start, pid)`.
    fn events(lines: &[String], worker: &str) -> Vec<(bool, i32)> {
        lines
            .iter()
            .filter_map(|line| {
                let mut words = line.split(' ');
                let kind = words.next()?;
                let name = words.next()?;
                let pid = words.next()?.parse().ok()?;
                if name != worker || words.next().is_some() {
                    return None;
                }
                match kind {
                    "start" => Some((true, pid)),
                    "dropped" => Some((false, pid)),
                    _ => None,
                }
            })
            .collect()
    }

    /// What the runner sees of a running tree.
    struct TreeState {
        live: Vec<Proc>,
        zombies: Vec<Proc>,
        /// Workers whose last line is not a `start` in a live process.
        not_running: Vec<String>,
        starts: usize,
    }

    impl TreeState {
        fn observe(run: &mut Run, workers: &[impl AsRef<str>]) -> Self {
            let group = run.group();
            let lines = run.stdout();
            let (zombies, live): (Vec<Proc>, Vec<Proc>) =
                group.into_iter().partition(|p| p.state == 'Z');
            let not_running = workers
                .iter()
                .map(AsRef::as_ref)
                .filter(|w| match events(&lines, w).last() {
                    Some(&(true, pid)) => !live.iter().any(|p| p.pid == pid),
                    _ => true,
                })
                .map(str::to_owned)
                .collect();
            let starts = lines.iter().filter(|l| l.starts_with("start ")).count();
            Self {
                live,
                zombies,
                not_running,
                starts,
            }
        }

        fn healthy(&self, processes: usize) -> bool {
            self.live.len() == processes && self.zombies.is_empty() && self.not_running.is_empty()
        }

        fn describe(&self) -> String {
            let mut not_running = self.not_running.clone();
            if not_running.len() > 8 {
                let more = not_running.len() - 8;
                not_running.truncate(8);
                not_running.push(format!("... {more} more"));
            }
            format!(
                "{} live processes, zombies {:?}, {} start lines, workers not running: {:?}",
                self.live.len(),
                self.zombies.iter().map(Proc::short).collect::<Vec<_>>(),
                self.starts,
                not_running,
            )
        }
    }

    /// Waits until the tree has `processes` live processes, no zombie, and
    /// every worker of `workers` runs.
    fn wait_up(run: &mut Run, processes: usize, workers: &[impl AsRef<str>]) -> Result<(), String> {
        let what = format!(
            "the tree to be up ({processes} processes, {} workers)",
            workers.len()
        );
        run.wait_for(&what, |run| {
            let state = TreeState::observe(run, workers);
            if state.healthy(processes) {
                Ok(())
            } else {
                Err(state.describe())
            }
        })
    }

    /// After an orderly stop: every worker's future was dropped, in the
    /// host that started it.
    fn expect_all_dropped(lines: &[String], workers: &[impl AsRef<str>]) -> Result<(), String> {
        let bad: Vec<String> = workers
            .iter()
            .map(AsRef::as_ref)
            .filter(|w| {
                let ev = events(lines, w);
                match ev.as_slice() {
                    [.., (true, started), (false, dropped)] => started != dropped,
                    _ => true,
                }
            })
            .map(str::to_owned)
            .collect();
        if bad.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "after the stop, these workers' futures were not dropped (last line not a matching 'dropped'): {bad:?}"
            ))
        }
    }

    pub(crate) fn seed(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        expect_count(run, "done", 1)?;
        for n in 1..=3 {
            expect_count(run, &format!("worker {n}"), 2)?;
        }
        Ok(())
    }

    pub(crate) fn example(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        expect_count(run, "done", 1)
    }

    pub(crate) fn once_twice(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        expect_count(run, "run root/w0", 2)?;
        expect_count(run, "returned Ok", 1)
    }

    pub(crate) fn start_returns(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        expect_count(run, "returned Ok", 1)?;
        for w in [
            "root/w0",
            "root/s1/w0",
            "root/s1/s1/w0",
            "root/s1/w2",
            "root/s2/w0",
        ] {
            expect_count(run, &format!("run {w}"), 1)?;
        }
        Ok(())
    }

    pub(crate) fn inside_runtime(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        expect_prefix_once(run, "returned Err InsideRuntime:")?;
        expect_count(run, "run root/w0", 0)?;
        let elapsed = expect_prefix_once(run, "elapsed-ms ")?;
        let ms: u64 = elapsed["elapsed-ms ".len()..]
            .parse()
            .map_err(|e| format!("bad line {elapsed:?}: {e}"))?;
        if ms > 500 {
            return Err(format!(
                "start() took {ms} ms to return InsideRuntime; expected at once"
            ));
        }
        Ok(())
    }

    pub(crate) fn kill_root(run: &mut Run) -> Result<(), String> {
        wait_up(run, small::PROCESSES, &small::WORKERS)?;
        let killed_at = Instant::now();
        run.signal_root(Signal::SIGKILL)?;
        let status = run.reap_root()?;
        if status.code().is_some() {
            return Err(format!(
                "expected the root to die by SIGKILL, got {}",
                super::runner::describe(status)
            ));
        }
        let left = run.wait_group_empty(Duration::from_secs(1));
        let took = killed_at.elapsed();
        if !left.is_empty() {
            return Err(format!(
                "{} process(es) of the tree still there {took:?} after SIGKILL of the root: {:?}",
                left.len(),
                left.iter().map(Proc::short).collect::<Vec<_>>()
            ));
        }
        run.note(format!(
            "the whole tree was gone {took:?} after SIGKILL of the root"
        ));
        Ok(())
    }

    fn stop_root(run: &mut Run, signal: Signal) -> Result<(), String> {
        wait_up(run, small::PROCESSES, &small::WORKERS)?;
        let before = run.stdout().len();
        let sent = Instant::now();
        run.signal_root(signal)?;
        expect_exit_code(run, 0)?;
        run.note(format!(
            "the root exited {:?} after {signal}",
            sent.elapsed()
        ));
        expect_count(run, "returned Ok", 1)?;
        let lines = run.stdout();
        expect_all_dropped(&lines, &small::WORKERS)?;
        let order: Vec<&str> = lines[before..]
            .iter()
            .filter_map(|l| l.strip_prefix("dropped "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        if order != small::STOP_ORDER {
            return Err(format!(
                "workers were stopped in the order {order:?}; expected reverse start order {:?}",
                small::STOP_ORDER
            ));
        }
        Ok(())
    }

    pub(crate) fn term_root(run: &mut Run) -> Result<(), String> {
        stop_root(run, Signal::SIGTERM)
    }

    pub(crate) fn int_root(run: &mut Run) -> Result<(), String> {
        stop_root(run, Signal::SIGINT)
    }

    fn worker_starts(run: &Run, worker: &str) -> usize {
        events(&run.stdout(), worker).iter().filter(|e| e.0).count()
    }

    pub(crate) fn panic_intensity(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        expect_prefix_once(
            run,
            "returned Err IntensityExceeded path=root max_restarts=5 within=10s:",
        )?;
        // At most 5 restarts: the worker runs 6 times.
        let starts = worker_starts(run, "root/w0");
        if starts != 6 {
            return Err(format!(
                "the panicking worker ran {starts} times; expected 1 + 5 restarts = 6"
            ));
        }
        Ok(())
    }

    pub(crate) fn panic_intensity_nested(run: &mut Run) -> Result<(), String> {
        expect_exit_code(run, 0)?;
        expect_prefix_once(
            run,
            "returned Err IntensityExceeded path=root max_restarts=2 within=10s:",
        )?;
        // The nested supervisor runs its worker 1 + 3 times, then gives up;
        // the root restarts it twice, then gives up: 3 × 4 runs.
        let starts = worker_starts(run, "root/s0/w0");
        if starts != 12 {
            return Err(format!(
                "the panicking worker ran {starts} times; expected 3 supervisor runs × 4 = 12"
            ));
        }
        Ok(())
    }

    pub(crate) fn term_host_drops_futures(run: &mut Run) -> Result<(), String> {
        const W: &str = "root/w0";
        wait_up(run, 2, &[W])?;
        let host = match events(&run.stdout(), W).last() {
            Some(&(true, pid)) => pid,
            other => return Err(format!("no start line for {W}: {other:?}")),
        };
        run.signal(host, Signal::SIGTERM)?;
        run.wait_for("the future to be dropped in the SIGTERMed host", |run| {
            if events(&run.stdout(), W).contains(&(false, host)) {
                Ok(())
            } else {
                Err(format!("no 'dropped {W} {host}' line"))
            }
        })?;
        let new_host = run.wait_for(
            "the worker to start again in a new host",
            |run| match events(&run.stdout(), W).last() {
                Some(&(true, pid)) if pid != host => Ok(pid),
                other => Err(format!("last event of {W}: {other:?}")),
            },
        )?;
        wait_up(run, 2, &[W])?;
        run.note(format!(
            "host {host} dropped the future on SIGTERM; restarted in host {new_host}"
        ));
        run.signal_root(Signal::SIGTERM)?;
        expect_exit_code(run, 0)?;
        expect_count(run, "returned Ok", 1)?;
        expect_count(run, &format!("dropped {W} {new_host}"), 1)
    }

    /// See [`super::scenario::panic_one_for_all_mix`].
    /// A host whose worker restarts in a tight loop still obeys its
    /// supervisor: SIGTERM to the root stops the tree at once, not after the
    /// 5 s shutdown timeout that would kill a host that ignores commands.
    pub(crate) fn busy_restarts_stop(run: &mut Run) -> Result<(), String> {
        run.wait_for("the busy worker to have run 1000 times", |run| {
            match run.count(|l| l == "run root/s0/w1") {
                n if n >= 1000 => Ok(()),
                n => Err(format!("{n} runs")),
            }
        })?;
        run.signal_root(Signal::SIGTERM)?;
        let asked = Instant::now();
        expect_exit_code(run, 0)?;
        let took = asked.elapsed();
        if took > Duration::from_secs(1) {
            return Err(format!("the tree took {took:?} to stop"));
        }
        expect_all_dropped(&run.stdout(), &["root/s0/w0"])?;
        if run.stderr_count(|l| l.contains("did not stop in time")) > 0 {
            return Err("a host had to be killed".to_owned());
        }
        run.note(format!(
            "stopped {took:?} after SIGTERM while a worker restarted in a tight loop"
        ));
        Ok(())
    }

    pub(crate) fn panic_one_for_all_mix(run: &mut Run) -> Result<(), String> {
        let all = ["root/w0", "root/s1/w0", "root/w2"];
        // root + host, root/s1 + host.
        wait_up(run, 4, &["root/w0", "root/s1/w0"])?;
        run.wait_for(
            "the group restart after root/w2 failed",
            |run| match worker_starts(run, "root/w2") {
                2 => Ok(()),
                n => Err(format!("root/w2 started {n} time(s)")),
            },
        )?;
        wait_up(run, 4, &["root/w0", "root/s1/w0"])?;
        let lines = run.stdout();
        let order: Vec<String> = lines
            .iter()
            .filter(|l| l.starts_with("start ") || l.starts_with("dropped "))
            .map(|l| {
                l.rsplit_once(' ')
                    .map_or(l.clone(), |(head, _)| head.to_owned())
            })
            .collect();
        // Stops go one at a time in reverse order: root/s1 (a process) is
        // stopped, and its worker dropped, before root/w0. Starts are issued
        // in order but run in different processes, so only their count is
        // observable (ordered starts across processes need readiness).
        let first_drop = order.iter().position(|l| l.starts_with("dropped "));
        let Some(first_drop) = first_drop else {
            return Err(format!(
                "no worker was dropped by the group restart: {order:?}"
            ));
        };
        let drops: Vec<&str> = order[first_drop..first_drop + 2.min(order.len() - first_drop)]
            .iter()
            .map(String::as_str)
            .collect();
        if drops != ["dropped root/s1/w0", "dropped root/w0"] {
            return Err(format!(
                "expected root/s1/w0 then root/w0 to be dropped, got {order:?}"
            ));
        }
        let mut before: Vec<&str> = order[..first_drop].iter().map(String::as_str).collect();
        let mut after: Vec<&str> = order[first_drop + 2..].iter().map(String::as_str).collect();
        before.sort_unstable();
        after.sort_unstable();
        let starts = ["start root/s1/w0", "start root/w0", "start root/w2"];
        if before != starts || after != starts {
            return Err(format!(
                "expected all three to start before and after the group restart, got {order:?}"
            ));
        }
        for w in &all[..2] {
            if worker_starts(run, w) != 2 {
                return Err(format!("{w} should have started exactly twice"));
            }
        }
        run.note("OneForAll stopped the supervisor process and the worker in reverse order and restarted all in order".to_owned());
        stop_root_ok(run)
    }

    /// See [`super::scenario::shutdown_timeout_kills`].
    pub(crate) fn shutdown_timeout_kills(run: &mut Run) -> Result<(), String> {
        wait_up(run, 3, &["root/s0/w0"])?;
        let sent = Instant::now();
        run.signal_root(Signal::SIGTERM)?;
        expect_exit_code(run, 0)?;
        let took = sent.elapsed();
        if took < Duration::from_millis(300) || took > Duration::from_secs(3) {
            return Err(format!(
                "the root exited {took:?} after SIGTERM; expected the 300 ms shutdown timeout to pass first, then a SIGKILL"
            ));
        }
        run.note(format!(
            "the stuck worker's host was killed; root exited {took:?} after SIGTERM"
        ));
        expect_count(run, "returned Ok", 1)
    }

    fn stop_root_ok(run: &mut Run) -> Result<(), String> {
        run.signal_root(Signal::SIGTERM)?;
        expect_exit_code(run, 0)?;
        expect_count(run, "returned Ok", 1)
    }

    /// See [`super::scenario::resource_limits`].
    pub(crate) fn resource_limits(run: &mut Run) -> Result<(), String> {
        const W: &str = "root/s0/w0";
        let dir = run.wait_for("the cgroup line", |run| {
            match run
                .stdout()
                .iter()
                .find(|l| l.starts_with("cgroup ") || l.starts_with("skip "))
            {
                Some(line) => Ok(line.clone()),
                None => Err("no 'cgroup' or 'skip' line yet".to_owned()),
            }
        })?;
        let Some(dir) = dir.strip_prefix("cgroup ").map(str::to_owned) else {
            run.note(format!("skipped: {dir}"));
            return expect_exit_code(run, 0);
        };
        let limit = |max: &str| {
            std::fs::write(format!("{dir}/pids.max"), max)
                .map_err(|e| format!("writing pids.max in {dir}: {e}"))
        };
        let result = (|| {
            run.wait_for("fork failures to be logged and retried", |run| {
                match run.stderr_count(|l| l.contains("fork failed; will retry with backoff")) {
                    n if n >= 2 => Ok(()),
                    n => Err(format!("{n} 'fork failed' log lines")),
                }
            })?;
            // Root, supervisor and host fit; the first worker thread of the
            // host's Tokio multi-thread runtime does not (the host starts its
            // reader thread after its runtime). With room for one worker
            // thread but not two, Tokio 1.54 deadlocks while it unwinds from
            // the failed second spawn, so the limit leaves room for none.
            limit("3")?;
            run.wait_for(
                "a worker host that can not build its runtime to fail",
                |run| {
                    // Tokio panics when it can not spawn its worker threads;
                    // the host turns that into exit code 101, reported and
                    // retried by its supervisor.
                    let reported = run
                        .stderr_count(|l| l.contains("worker host panicked outside its workers"));
                    let retried = run.stderr_count(|l| {
                        l.contains("restarting after delay") && l.contains("exited with code 101")
                    });
                    if reported >= 2 && retried >= 2 {
                        Ok(())
                    } else {
                        Err(format!(
                            "{reported} host failure reports, {retried} retries"
                        ))
                    }
                },
            )?;
            limit("max")?;
            wait_up(run, 3, &[W])?;
            run.note("fork EAGAIN and a runtime that could not be built were retried until the limit was lifted".to_owned());
            run.signal_root(Signal::SIGTERM)?;
            expect_exit_code(run, 0)?;
            expect_count(run, "returned Ok", 1)
        })();
        let _ = limit("max");
        let _ = run.wait_group_empty(Duration::from_secs(1));
        if let Err(err) = std::fs::remove_dir(&dir) {
            run.note(format!("could not remove {dir}: {err}"));
        }
        result
    }

    pub(crate) fn chaos(run: &mut Run) -> Result<(), String> {
        const KILLS: usize = 100;
        let workers = chaos_tree::workers();
        wait_up(run, chaos_tree::PROCESSES, &workers)?;
        let initial = TreeState::observe(run, &workers);
        let mut rng = Rng::from_env_or_time("SUPERTREES_CHAOS_SEED");
        run.note(format!(
            "chaos seed {} (set SUPERTREES_CHAOS_SEED to repeat)",
            rng.seed()
        ));
        let root = run.pid();
        let me = std::process::id() as i32;
        let mut killed = 0;
        for _ in 0..KILLS {
            if run.poll_exit().is_some() {
                return Err(format!(
                    "the root exited during the chaos, after {killed} kills"
                ));
            }
            let candidates: Vec<i32> = run
                .group()
                .iter()
                .filter(|p| p.pid != root && p.state != 'Z' && p.ppid != me)
                .map(|p| p.pid)
                .collect();
            if !candidates.is_empty() {
                let victim = candidates[rng.below(candidates.len())];
                if run.signal(victim, Signal::SIGKILL).is_ok() {
                    killed += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        let settle = Instant::now();
        let mut state = TreeState::observe(run, &workers);
        while !state.healthy(initial.live.len()) && settle.elapsed() < Duration::from_secs(2) {
            if run.poll_exit().is_some() {
                return Err(format!("the root exited after the chaos ({killed} kills)"));
            }
            std::thread::sleep(Duration::from_millis(20));
            state = TreeState::observe(run, &workers);
        }
        if !state.healthy(initial.live.len()) || state.starts < initial.starts {
            return Err(format!(
                "{killed} SIGKILLs; 2 s later the tree has not healed (expected {} processes): {}",
                initial.live.len(),
                state.describe()
            ));
        }
        run.note(format!(
            "{killed} SIGKILLs; healed {:?} after the last ({} worker starts in all)",
            settle.elapsed(),
            state.starts
        ));
        let sent = Instant::now();
        run.signal_root(Signal::SIGTERM)?;
        expect_exit_code(run, 0)?;
        run.note(format!(
            "the root exited {:?} after SIGTERM",
            sent.elapsed()
        ));
        expect_count(run, "returned Ok", 1)?;
        expect_all_dropped(&run.stdout(), &workers)
    }
}

/// The runner: child processes, their output, their process groups.
mod runner {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::path::PathBuf;
    use std::process::{Child, Command, ExitStatus, Stdio};
    use std::sync::{Arc, Mutex};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    use nix::sys::signal::{kill, killpg, Signal};
    use nix::sys::wait::{waitpid, WaitPidFlag};
    use nix::unistd::Pid;

    use super::{Drive, EXAMPLES, SCENARIOS, SCENARIO_VAR};

    /// Lines of output shown per stream for a failed scenario.
    const TAIL: usize = 60;

    pub(crate) fn main() -> i32 {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let filters: Vec<&str> = args
            .iter()
            .filter(|a| !a.starts_with('-'))
            .map(String::as_str)
            .collect();
        let selected = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f));
        if args.iter().any(|a| a == "--list") {
            for s in SCENARIOS {
                println!("{}: test", s.name);
            }
            for (e, _) in EXAMPLES {
                println!("example_{e}: test");
            }
            return 0;
        }
        if let Err(err) = nix::sys::prctl::set_child_subreaper(true) {
            println!("note: could not become a child subreaper ({err}); orphans go to PID 1");
        }
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(err) => {
                println!("can not find this test binary: {err}");
                return 1;
            }
        };
        let began = Instant::now();
        let (mut passed, mut failed) = (0, 0);
        let mut tally = |ok: bool| {
            if ok {
                passed += 1;
            } else {
                failed += 1;
            }
        };
        for s in SCENARIOS.iter().filter(|s| selected(s.name)) {
            let mut cmd = Command::new(&exe);
            cmd.env(SCENARIO_VAR, s.name);
            tally(run_case(s.name, cmd, s.drive, s.timeout, true));
        }
        let examples_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .map(|profile| profile.join("examples"));
        for &(example, drive) in EXAMPLES {
            let name = format!("example_{example}");
            if !selected(&name) {
                continue;
            }
            let path: Option<PathBuf> = examples_dir.as_ref().map(|d| d.join(example));
            match path.filter(|p| p.is_file()) {
                Some(path) => {
                    let mut cmd = Command::new(path);
                    cmd.env_remove(SCENARIO_VAR);
                    tally(run_case(&name, cmd, drive, Duration::from_secs(10), false));
                }
                None => println!(
                    "{name} ... skipped (no binary in {}; build it with `cargo build --examples` or run `cargo test`)",
                    examples_dir.as_ref().map_or("?".into(), |d| d.display().to_string())
                ),
            }
        }
        println!("total time {:.1} s", began.elapsed().as_secs_f64());
        println!("{passed} passed, {failed} failed");
        i32::from(failed > 0)
    }

    /// Runs one scenario or example; prints its verdict; returns whether it passed.
    fn run_case(
        name: &str,
        cmd: Command,
        drive: Drive,
        timeout: Duration,
        is_scenario: bool,
    ) -> bool {
        print!("{name} ... ");
        let _ = std::io::stdout().flush();
        let began = Instant::now();
        let mut run = match Run::spawn(cmd, timeout) {
            Ok(run) => run,
            Err(err) => {
                println!("FAILED\n    {err}");
                return false;
            }
        };
        let mut errors = Vec::new();
        if let Err(err) = drive(&mut run) {
            errors.push(err);
            run.wind_down();
        }
        if let Err(err) = run.wait_exit() {
            if !errors.contains(&err) {
                errors.push(err);
            }
        }
        if is_scenario {
            let first = run.stdout().into_iter().next();
            let expected = format!("root-pid {}", run.pid);
            if first.as_deref() != Some(expected.as_str()) {
                errors.push(format!(
                    "first stdout line {first:?}, expected {expected:?}"
                ));
            }
        }
        // A panic in a scenario that does not make workers panic on purpose
        // is a panic of engine code in some process of the tree.
        // resource_limits makes TokioSpawner::block_on panic on purpose.
        if !name.starts_with("panic_") && name != "resource_limits" {
            let panics: Vec<String> = lock(&run.stderr)
                .into_iter()
                .filter(|l| l.contains("panicked"))
                .collect();
            if !panics.is_empty() {
                errors.push(format!("unexpected panic(s) on stderr: {panics:?}"));
            }
        }
        let left = run.wait_group_empty(Duration::from_secs(1));
        if !left.is_empty() {
            errors.push(format!(
                "{} process(es) left in the scenario's process group 1 s after the root exited: {:?}",
                left.len(),
                left.iter().map(Proc::short).collect::<Vec<_>>()
            ));
        }
        if !run.output_closed {
            errors.push(
                "stdout/stderr still open 1 s after the root exited: some process still holds them"
                    .to_owned(),
            );
        }
        run.clean_up();
        let _ = std::fs::remove_dir_all(super::observe::dir_of(run.pid()));
        let took = began.elapsed().as_secs_f64();
        if errors.is_empty() {
            println!("ok ({took:.2} s)");
            for note in &run.notes {
                println!("    {note}");
            }
            true
        } else {
            println!("FAILED ({took:.2} s)");
            for err in &errors {
                println!("    error: {err}");
            }
            for note in &run.notes {
                println!("    note: {note}");
            }
            if let Some(status) = run.status {
                println!("    exit: {}", describe(status));
            }
            print_tail("stdout", &run.stdout());
            print_tail("stderr", &lock(&run.stderr));
            false
        }
    }

    fn print_tail(what: &str, lines: &[String]) {
        let skip = lines.len().saturating_sub(TAIL);
        println!(
            "    --- {what} ({} lines{}):",
            lines.len(),
            if skip > 0 {
                format!(", last {TAIL}")
            } else {
                String::new()
            }
        );
        for line in &lines[skip..] {
            println!("    | {line}");
        }
    }

    /// "exit code N" or "killed by SIGNAME".
    pub(crate) fn describe(status: ExitStatus) -> String {
        match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(sig)) => match Signal::try_from(sig) {
                Ok(sig) => format!("killed by {sig}"),
                Err(_) => format!("killed by signal {sig}"),
            },
            _ => format!("{status:?}"),
        }
    }

    fn lock(lines: &Mutex<Vec<String>>) -> Vec<String> {
        lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// A process as `/proc/<pid>/stat` shows it.
    #[derive(Debug, Clone)]
    pub(crate) struct Proc {
        pub(crate) pid: i32,
        pub(crate) ppid: i32,
        pub(crate) pgrp: i32,
        pub(crate) state: char,
        pub(crate) threads: u32,
    }

    impl Proc {
        fn read(pid: i32) -> Option<Proc> {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let rest: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
            Some(Proc {
                pid,
                state: rest.first()?.chars().next()?,
                ppid: rest.get(1)?.parse().ok()?,
                pgrp: rest.get(2)?.parse().ok()?,
                threads: rest.get(17)?.parse().ok()?,
            })
        }

        /// Every process whose process group is `pgrp`.
        fn group(pgrp: i32) -> Vec<Proc> {
            let Ok(dir) = std::fs::read_dir("/proc") else {
                return Vec::new();
            };
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .filter_map(Proc::read)
                .filter(|p| p.pgrp == pgrp)
                .collect()
        }

        pub(crate) fn short(&self) -> String {
            format!(
                "pid {} ppid {} state {} threads {}",
                self.pid, self.ppid, self.state, self.threads
            )
        }
    }

    /// A running scenario (or example) process and its process group.
    pub(crate) struct Run {
        child: Child,
        pid: i32,
        started: Instant,
        deadline: Instant,
        timeout: Duration,
        stdout: Arc<Mutex<Vec<String>>>,
        stderr: Arc<Mutex<Vec<String>>>,
        readers: Vec<JoinHandle<()>>,
        status: Option<ExitStatus>,
        output_closed: bool,
        notes: Vec<String>,
    }

    impl Run {
        fn spawn(mut cmd: Command, timeout: Duration) -> Result<Run, String> {
            cmd.stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0);
            let mut child = cmd.spawn().map_err(|e| format!("spawn {cmd:?}: {e}"))?;
            let stdout = Arc::new(Mutex::new(Vec::new()));
            let stderr = Arc::new(Mutex::new(Vec::new()));
            let mut readers = Vec::new();
            if let Some(out) = child.stdout.take() {
                readers.push(read_lines(out, stdout.clone()));
            }
            if let Some(err) = child.stderr.take() {
                readers.push(read_lines(err, stderr.clone()));
            }
            Ok(Run {
                pid: child.id() as i32,
                child,
                started: Instant::now(),
                deadline: Instant::now() + timeout,
                timeout,
                stdout,
                stderr,
                readers,
                status: None,
                output_closed: false,
                notes: Vec::new(),
            })
        }

        /// The root's pid, which is also the process group id.
        pub(crate) fn pid(&self) -> i32 {
            self.pid
        }

        pub(crate) fn note(&mut self, note: String) {
            self.notes.push(note);
        }

        pub(crate) fn stdout(&self) -> Vec<String> {
            lock(&self.stdout)
        }

        pub(crate) fn stderr_count(&self, pred: impl Fn(&str) -> bool) -> usize {
            lock(&self.stderr).iter().filter(|l| pred(l)).count()
        }

        pub(crate) fn count(&self, pred: impl Fn(&str) -> bool) -> usize {
            self.stdout().iter().filter(|l| pred(l)).count()
        }

        pub(crate) fn signal(&self, pid: i32, sig: Signal) -> Result<(), String> {
            kill(Pid::from_raw(pid), sig).map_err(|e| format!("kill({pid}, {sig}): {e}"))
        }

        pub(crate) fn signal_root(&self, sig: Signal) -> Result<(), String> {
            self.signal(self.pid, sig)
        }

        /// The root's exit status, once it has exited (it is reaped then).
        pub(crate) fn poll_exit(&mut self) -> Option<ExitStatus> {
            if self.status.is_none() {
                self.status = self.child.try_wait().ok().flatten();
            }
            self.status
        }

        /// Waits for the root to exit, then for its output to close (up to
        /// 1 s). On timeout kills the whole process group.
        pub(crate) fn wait_exit(&mut self) -> Result<ExitStatus, String> {
            let status = self.reap_root();
            self.drain_output();
            status
        }

        /// Waits for the root to exit and reaps it. On timeout kills the
        /// whole process group.
        pub(crate) fn reap_root(&mut self) -> Result<ExitStatus, String> {
            loop {
                if let Some(status) = self.poll_exit() {
                    return Ok(status);
                }
                if Instant::now() >= self.deadline {
                    let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
                    if let Ok(status) = self.child.wait() {
                        self.status = Some(status);
                    }
                    return Err(format!(
                        "timed out: the root had not exited after {:?}; killed its process group",
                        self.timeout
                    ));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }

        /// After a failed check: asks a still running root to stop the tree
        /// (SIGTERM), and gives it 6 s more at most.
        fn wind_down(&mut self) {
            if self.poll_exit().is_none() {
                let _ = self.signal_root(Signal::SIGTERM);
                self.deadline = self.deadline.min(Instant::now() + Duration::from_secs(6));
                self.timeout = self.deadline.saturating_duration_since(self.started);
                self.notes.push(
                    "the check failed with the tree running: sent SIGTERM to the root".to_owned(),
                );
            }
        }

        fn drain_output(&mut self) {
            let until = Instant::now() + Duration::from_secs(1);
            while !self.readers.iter().all(JoinHandle::is_finished) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
            self.output_closed = self.readers.iter().all(JoinHandle::is_finished);
        }

        /// Polls `probe` every 10 ms until it returns `Ok`, the deadline
        /// passes, or the root exits (then `probe` gets one last look at
        /// the complete output). `Err` from `probe` says what is missing.
        pub(crate) fn wait_for<T>(
            &mut self,
            what: &str,
            mut probe: impl FnMut(&mut Run) -> Result<T, String>,
        ) -> Result<T, String> {
            loop {
                let exited = self.poll_exit();
                if exited.is_some() {
                    self.drain_output();
                }
                match probe(self) {
                    Ok(value) => return Ok(value),
                    Err(why) => {
                        if let Some(status) = exited {
                            return Err(format!(
                                "the root exited ({}) while waiting for {what}; {why}",
                                describe(status)
                            ));
                        }
                        if Instant::now() >= self.deadline {
                            return Err(format!("timed out waiting for {what}; {why}"));
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }

        /// The processes of the scenario's group, after reaping those that
        /// were orphaned, re-parented to this runner, and have died. What
        /// remains is alive, or a zombie some process of the tree (or this
        /// runner, for the root) has not reaped yet.
        pub(crate) fn group(&mut self) -> Vec<Proc> {
            let me = std::process::id() as i32;
            let mut procs = Proc::group(self.pid);
            procs.retain(|p| {
                let orphan_zombie = p.state == 'Z' && p.ppid == me && p.pid != self.pid;
                !(orphan_zombie
                    && waitpid(Pid::from_raw(p.pid), Some(WaitPidFlag::WNOHANG)).is_ok())
            });
            procs
        }

        /// Polls up to `grace` for the group to be empty; returns what is left.
        pub(crate) fn wait_group_empty(&mut self, grace: Duration) -> Vec<Proc> {
            let until = Instant::now() + grace;
            loop {
                let _ = self.poll_exit();
                let left = self.group();
                if left.is_empty() || Instant::now() >= until {
                    return left;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }

        /// Kills whatever is left of the group and reaps it.
        fn clean_up(&mut self) {
            let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
            if self.status.is_none() {
                let _ = self.child.kill();
                self.status = self.child.wait().ok();
            }
            let _ = self.wait_group_empty(Duration::from_secs(2));
            if !self.output_closed {
                self.drain_output();
            }
        }
    }

    fn read_lines(
        stream: impl Read + Send + 'static,
        into: Arc<Mutex<Vec<String>>>,
    ) -> JoinHandle<()> {
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf);
                        let line = line.strip_suffix('\n').unwrap_or(&line).to_owned();
                        if let Ok(mut lines) = into.lock() {
                            lines.push(line);
                        }
                    }
                }
            }
        })
    }

    /// xorshift64*: enough randomness to pick victims, repeatable by seed.
    pub(crate) struct Rng {
        seed: u64,
        state: u64,
    }

    impl Rng {
        pub(crate) fn from_env_or_time(var: &str) -> Rng {
            let seed = std::env::var(var)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| {
                    SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(1, |d| d.as_nanos() as u64)
                });
            Rng {
                seed,
                state: seed | 1,
            }
        }

        pub(crate) fn seed(&self) -> u64 {
            self.seed
        }

        pub(crate) fn below(&mut self, n: usize) -> usize {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            (self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
        }
    }
}
