//! The scenario side: trees built and started in the scenario process.
//!
//! Here: running one scenario in this process, reporting what `start()`
//! returned, and the workers scenarios of several topics are built from.

use supertrees::{BackoffPolicy, BoxFuture, Error, RestartPolicy, Restartable, Worker};

#[path = "../common/life.rs"]
mod life;
pub(crate) use life::Life;

use super::SCENARIOS;

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

/// Events, with the time they reached the root.
pub(crate) fn events(tree: supertrees::Supertree) -> supertrees::Supertree {
    tree.on_event(|event| println!("event {event} at {}", crate::observe::now_ms()))
}

/// Restarts are allowed often: a hung kill is counted by the runner,
/// not turned into the end of the tree.
pub(crate) fn lenient() -> supertrees::Intensity {
    supertrees::Intensity::new(1000, std::time::Duration::from_secs(10))
}

/// Whether this process is not root; if so, it says `skipped: <why>` (the
/// scenario then returns).
pub(crate) fn not_root(why: &str) -> bool {
    let not = !nix::unistd::geteuid().is_root();
    if not {
        println!("skipped: {why}");
    }
    not
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
                    ..
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
pub(crate) struct Forever {
    pub(crate) name: String,
    pub(crate) backoff: BackoffPolicy,
}

impl Forever {
    pub(crate) fn new(name: impl Into<String>) -> Self {
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
pub(crate) struct Echo {
    name: String,
    policy: RestartPolicy,
}

impl Echo {
    pub(crate) fn new(name: impl Into<String>, policy: RestartPolicy) -> Self {
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
