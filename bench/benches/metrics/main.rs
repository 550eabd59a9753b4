//! `cargo bench -p supertrees-bench --bench metrics [-- FIGURE...]`
//!
//! What the tree's figures (issue 23) cost, on the default (Tokio) backend.
//! Each round measures the same tree without figures and with them, side by
//! side: every variant twice, in mirrored order (plain, metrics, socket,
//! socket, metrics, plain), and each variant's value in the round is the
//! mean of its two, so that a drift of the machine over the round falls on
//! every variant alike. Figures (default: all):
//!
//! * `restart`: a worker of the root that panics at once and is restarted
//!   in its host at once, as fast as it can (`compare`'s `panic_restart`
//!   tree): its restarts per second over [`WINDOW`] after [`WARMUP`], with
//!   the starts counted in memory shared by the tree's processes
//!   (`compare`'s `shm.rs`). The root decides each restart and, with
//!   figures, folds every event into them. Variants: `plain` (no figures),
//!   `metrics` (`.with_metrics()`, a Prometheus recorder installed as the
//!   global one before `start()`; it starts no thread), `socket` (a status
//!   socket, which keeps the figures; nobody asks). The ratios are the
//!   variant's rate over `plain`'s of the same round (1.00: no cost).
//! * `call`: a `call` round trip of 64 bytes between two workers in
//!   different supervisor processes (the `messages` bench's `call` tree),
//!   [`CALLS`] calls after [`CALL_WARMUP`]: p50 and p99. With figures,
//!   every call is counted in shared memory. The ratios are the variant's
//!   latency over `plain`'s (1.00: no cost).
//! * `scrape`: the `operator` bench's tree of 1,103 nodes (100 supervisors
//!   of 9 workers, their worker hosts, and `root/spin`, restarted at once,
//!   as fast as it can, all along) with a status socket; once it is up,
//!   [`QUERIES`] `metrics` requests (connect, `metrics\n`, read to the end)
//!   one after the other, [`GAP`] apart, alternating with as many `status
//!   json` requests for comparison: p50, p99 and max of each, the size of
//!   the last `metrics` answer in bytes and its series (lines that are not
//!   comments). The root renders an answer once per turn of its loop,
//!   however many clients ask in it: requests back to back may get the
//!   answer rendered for the one before. The gap keeps them apart, and
//!   `metrics_repeats` counts the answers that were such a repeat
//!   (`root/spin`'s restarts unchanged since the answer before).
//!
//! `BENCH_RUNS` (default 3) sets the rounds; `BENCH_CPUS` (`free`, the
//! default, `same` or `split`) fixes the CPUs of the trees' processes as in
//! the `messages` bench (`messages/cpus.rs`: on a small VM a call's round
//! trip changes regime with the CPUs the scheduler picks, by more than the
//! cost measured here). Every tree is this binary again, with
//! `SUPERTREES_BENCH_TREE=<figure>:<variant>`, whose single-threaded
//! `main` builds it and calls `start()`; a measuring worker prints a
//! `result` line and ends the tree with SIGTERM to the root, or (`scrape`)
//! this process measures from outside, as a Prometheus server would. It
//! prints a Markdown table of each field's min and median over the rounds
//! (`common/figures.rs`).

#![warn(clippy::undocumented_unsafe_blocks)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use supertrees::{
    inbox, mailbox, BackoffPolicy, BoxFuture, RestartPolicy, Restartable, Supertree, Worker,
};

#[allow(dead_code)]
#[path = "../messages/cpus.rs"]
mod cpus;
#[path = "../common/figures.rs"]
mod figures;
#[allow(dead_code)]
#[path = "../compare/shm.rs"]
mod shm;
#[path = "../common/socket_tree.rs"]
mod socket_tree;
#[allow(dead_code)]
#[path = "../compare/stats.rs"]
mod stats;
// `stats.rs` names its failures with `crate::procs::Failure`.
#[allow(dead_code)]
#[path = "../compare/procs.rs"]
mod procs;

use shm::{Behavior, Shared};
use socket_tree::SocketTree;
use stats::percentile;

/// The environment variable that makes this binary run one tree.
const TREE_VAR: &str = "SUPERTREES_BENCH_TREE";
/// Where that tree puts its status socket (`socket` and `scrape`).
const SOCKET_VAR: &str = "SUPERTREES_BENCH_SOCKET";
/// `restart`: restarts before the window are not counted.
const WARMUP: Duration = Duration::from_millis(300);
/// `restart`: the window the restarts are counted in.
const WINDOW: Duration = Duration::from_secs(2);
/// `call`: calls not timed, first.
const CALL_WARMUP: usize = 1_000;
/// `call`: calls timed.
const CALLS: usize = 20_000;
/// `call`: the size of a message and of its reply.
const MESSAGE: usize = 64;
/// `scrape`: `metrics` requests (and as many `status json`) per run.
const QUERIES: usize = 500;
/// `scrape`: the pause after each request.
const GAP: Duration = Duration::from_millis(2);
/// How long a tree may take, start to exit (`restart`, `call`), or to come
/// up (`scrape`).
const TIMEOUT: Duration = Duration::from_secs(60);

/// The variants of `restart` and `call`, in the order of a round's first
/// half.
const VARIANTS: [&str; 3] = ["plain", "metrics", "socket"];

fn main() {
    if let Ok(spec) = std::env::var(TREE_VAR) {
        tree(&spec);
    }
    if let Err(err) = cpus::mode() {
        eprintln!("{err}");
        std::process::exit(2);
    }
    eprintln!("CPUs: {}", cpus::name());
    figures::run(&["restart", "call", "scrape"], |figure| {
        let fields = match figure {
            "restart" => side_by_side(figure, &["restarts_per_s"])?,
            "call" => side_by_side(figure, &["p50_us", "p99_us"])?,
            "scrape" => scrape()?,
            other => return Err(format!("unknown figure {other}")),
        };
        for (key, value) in &fields {
            eprintln!("  {key} = {value:.3}");
        }
        Ok(fields)
    });
}

// ---------------------------------------------------------------------------
// The driver
// ---------------------------------------------------------------------------

/// One round of `figure`: each of [`VARIANTS`] twice, in mirrored order;
/// the mean of each variant's two values of each of `keys`, and each
/// variant's ratio to `plain`.
fn side_by_side(figure: &str, keys: &[&str]) -> Result<Vec<(String, f64)>, String> {
    let order = VARIANTS.iter().chain(VARIANTS.iter().rev());
    let mut sums: HashMap<(&str, &str), f64> = HashMap::new();
    for variant in order {
        let fields = run_tree(&format!("{figure}:{variant}"))?;
        for key in keys {
            let value = fields
                .get(*key)
                .ok_or_else(|| format!("{figure}:{variant}: no {key} in its result"))?;
            *sums.entry((variant, key)).or_default() += value / 2.0;
        }
    }
    let mut out = Vec::new();
    for key in keys {
        let plain = sums[&("plain", *key)];
        for variant in VARIANTS {
            let value = sums[&(variant, *key)];
            out.push((format!("{variant}_{key}"), value));
            if variant != "plain" {
                out.push((format!("{variant}_{key}_ratio"), value / plain));
            }
        }
    }
    Ok(out)
}

/// Runs the tree `spec` (`figure:variant`) as a subprocess until it exits;
/// the fields of its `result` line.
fn run_tree(spec: &str) -> Result<HashMap<String, f64>, String> {
    let dir = socket_dir(spec);
    let mut child = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .env(TREE_VAR, spec)
        .env(SOCKET_VAR, dir.join("status.sock"))
        .env("RUST_LOG", "error")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{spec}: {e}"))?;
    let group = Pid::from_raw(child.id() as i32);
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let began = Instant::now();
    let mut outcome = Err(format!("{spec}: no result"));
    loop {
        match rx.recv_timeout(TIMEOUT.saturating_sub(began.elapsed())) {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix("result ") {
                    let fields = rest
                        .split(' ')
                        .filter_map(|f| f.split_once('='))
                        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
                        .collect();
                    outcome = Ok(fields);
                } else if let Some(error) = line.strip_prefix("error ") {
                    outcome = Err(format!("{spec}: {error}"));
                }
            }
            // Every process of the tree has ended (they hold the pipe).
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                outcome = Err(format!("{spec}: timed out after {TIMEOUT:?}"));
                break;
            }
        }
    }
    let _ = killpg(group, Signal::SIGKILL);
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

/// The directory of the status socket of a run of `spec` (made by the
/// tree, only if it has one).
fn socket_dir(spec: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "supertrees-bench-metrics-{}-{}",
        std::process::id(),
        spec.replace(':', "-")
    ))
}

/// One run of `scrape`.
fn scrape() -> Result<Vec<(String, f64)>, String> {
    let tree = SocketTree::start(
        (TREE_VAR, "scrape"),
        SOCKET_VAR,
        socket_dir("scrape"),
        TIMEOUT,
    )?;
    let status: serde_json::Value =
        serde_json::from_str(&tree.ask("status json")?).map_err(|e| format!("status json: {e}"))?;
    let nodes = status["nodes"].as_array().map_or(0, Vec::len);
    if nodes < 1000 {
        return Err(format!("{nodes} nodes in the status, not 1,000 or more"));
    }
    let (mut metrics, mut json) = (Vec::with_capacity(QUERIES), Vec::with_capacity(QUERIES));
    let mut last = String::new();
    let (mut spins, mut repeats) = (None, 0);
    for _ in 0..QUERIES {
        let began = Instant::now();
        last = tree.ask("metrics")?;
        metrics.push(began.elapsed().as_secs_f64() * 1e3);
        if !last.starts_with('#') || !last.contains("supertrees_build_info{") {
            return Err(format!("metrics answered {last:.200}"));
        }
        let spun = last
            .lines()
            .find_map(|l| l.strip_prefix("supertrees_child_restarts_total{path=\"root/spin\"} "));
        if spun.is_none() {
            return Err("no restarts of root/spin in the metrics".to_owned());
        }
        if spun.map(str::to_owned) == spins {
            repeats += 1;
        }
        spins = spun.map(str::to_owned);
        std::thread::sleep(GAP);
        let began = Instant::now();
        let answer = tree.ask("status json")?;
        json.push(began.elapsed().as_secs_f64() * 1e3);
        if !answer.starts_with("{\"schema\":1,") {
            return Err(format!("status json answered {answer:.200}"));
        }
        std::thread::sleep(GAP);
    }
    let series = last
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    metrics.sort_by(f64::total_cmp);
    json.sort_by(f64::total_cmp);
    let at = |v: &[f64], q: f64| percentile(v, q).unwrap_or(f64::NAN);
    Ok(vec![
        ("nodes".to_owned(), nodes as f64),
        ("metrics_bytes".to_owned(), last.len() as f64),
        ("metrics_series".to_owned(), series as f64),
        ("metrics_p50_ms".to_owned(), at(&metrics, 0.50)),
        ("metrics_p99_ms".to_owned(), at(&metrics, 0.99)),
        ("metrics_max_ms".to_owned(), at(&metrics, 1.0)),
        ("metrics_repeats".to_owned(), repeats as f64),
        ("status_json_p50_ms".to_owned(), at(&json, 0.50)),
        ("status_json_p99_ms".to_owned(), at(&json, 0.99)),
    ])
}

// ---------------------------------------------------------------------------
// The trees (in the subprocess)
// ---------------------------------------------------------------------------

/// A worker whose runs are made by `make`, with its restart policy
/// (always at once, or never).
struct Task {
    make: Box<dyn Fn() -> BoxFuture + Send + Sync>,
    restart: RestartPolicy,
}

impl Task {
    /// A measuring worker: runs once.
    fn once(make: impl Fn() -> BoxFuture + Send + Sync + 'static) -> Task {
        Task {
            make: Box::new(make),
            restart: RestartPolicy::Never,
        }
    }

    /// Restarted always, at once.
    fn always(make: impl Fn() -> BoxFuture + Send + Sync + 'static) -> Task {
        Task {
            make: Box::new(make),
            restart: RestartPolicy::Always,
        }
    }
}

impl Worker for Task {
    fn init(&self) -> BoxFuture {
        (self.make)()
    }
}

impl Restartable for Task {
    fn restart_policy(&self) -> RestartPolicy {
        self.restart
    }

    fn backoff_policy(&self) -> BackoffPolicy {
        BackoffPolicy::immediate()
    }
}

/// Runs the tree of `spec` (`figure:variant`, or `scrape`) in this process
/// and exits.
fn tree(spec: &str) -> ! {
    let threads = std::fs::read_dir("/proc/self/task").map_or(0, |dir| dir.count());
    if threads != 1 {
        println!("error the tree process has {threads} threads before start()");
        std::process::exit(2);
    }
    let root = std::process::id() as i32;
    // `same`: every process of the tree on CPU 0 (inherited by each fork).
    cpus::pin_all();
    let (figure, variant) = spec.split_once(':').unwrap_or((spec, "socket"));
    let tree = match figure {
        "restart" => match Shared::map() {
            Ok(shm) => restart_tree(root, shm),
            Err(err) => {
                println!("error mapping the shared memory: {err}");
                std::process::exit(2);
            }
        },
        "call" => call_tree(root),
        "scrape" => scrape_tree(),
        other => {
            println!("error no such figure {other}");
            std::process::exit(2);
        }
    };
    let tree = match variant {
        "plain" => tree,
        "metrics" => {
            // Builds the recorder only (no HTTP listener, no thread).
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
            if let Err(err) = metrics::set_global_recorder(recorder) {
                println!("error installing the recorder: {err}");
                std::process::exit(2);
            }
            tree.with_metrics()
        }
        "socket" => {
            let Some(socket) = std::env::var_os(SOCKET_VAR).map(PathBuf::from) else {
                println!("error {SOCKET_VAR} is not set");
                std::process::exit(2);
            };
            if let Some(dir) = socket.parent() {
                if let Err(err) = std::fs::DirBuilder::new().mode(0o700).create(dir) {
                    println!("error making {}: {err}", dir.display());
                    std::process::exit(2);
                }
            }
            tree.status_socket(socket)
        }
        other => {
            println!("error no such variant {other}");
            std::process::exit(2);
        }
    };
    let code = match tree.start() {
        Ok(()) => 0,
        Err(err) => {
            println!("error start() returned {err}");
            1
        }
    };
    std::process::exit(code)
}

/// Prints the measuring worker's outcome and ends the tree.
fn finish(root: i32, outcome: Result<String, String>) {
    match outcome {
        Ok(fields) => println!("result {fields}"),
        Err(what) => println!("error {what}"),
    }
    let _ = kill(Pid::from_raw(root), Signal::SIGTERM);
}

/// `restart`: a probe of the root that panics at once, restarted at once
/// (`compare`'s `panic_tree`); a measuring worker in a supervisor of its
/// own counts its starts in the window.
fn restart_tree(root: i32, shm: &'static Shared) -> Supertree {
    // The planned panics would print a message each.
    std::panic::set_hook(Box::new(|_| {}));
    shm.win_from
        .store(WARMUP.as_nanos() as u64, Ordering::SeqCst);
    shm.win_to
        .store((WARMUP + WINDOW).as_nanos() as u64, Ordering::SeqCst);
    shm.t0.store(shm::now_ns(), Ordering::SeqCst);
    let panics = Task::always(move || {
        Box::pin(async move {
            shm::record_start(shm, Behavior::Panic);
            panic!("supertrees-bench: deliberate worker panic");
        })
    });
    let measure = Task::once(move || {
        Box::pin(async move {
            let t0 = shm.t0.load(Ordering::SeqCst);
            let end = t0 + (WARMUP + WINDOW).as_nanos() as u64 + 1_000_000;
            tokio::time::sleep(Duration::from_nanos(end.saturating_sub(shm::now_ns()))).await;
            let n = shm.win_count.load(Ordering::SeqCst);
            let outcome = if n == 0 {
                Err(format!("no restart in the window ({} in all)", shm.count()))
            } else {
                Ok(format!(
                    "restarts_per_s={} restarts={}",
                    n as f64 / WINDOW.as_secs_f64(),
                    shm.count()
                ))
            };
            finish(root, outcome);
        })
    });
    Supertree::new()
        .add_worker(panics)
        .add_supervisor(|s| s.add_worker(measure))
}

/// A message of [`MESSAGE`] bytes numbered `n`.
fn payload(n: u64) -> Vec<u8> {
    let mut p = vec![0u8; MESSAGE];
    p[..8].copy_from_slice(&n.to_le_bytes());
    p
}

/// `call`: an echo server in one supervisor, the caller in another (the
/// `messages` bench's `call` tree).
fn call_tree(root: i32) -> Supertree {
    let server = Task::always(move || {
        Box::pin(async move {
            let mut inbox = match inbox::<Vec<u8>>("echo") {
                Ok(inbox) => inbox,
                Err(err) => {
                    finish(root, Err(format!("inbox: {err}")));
                    return std::future::pending().await;
                }
            };
            cpus::pin_end(cpus::End::Serving);
            while let Some(envelope) = inbox.recv().await {
                let msg = envelope.message().clone();
                envelope.reply(msg);
            }
        })
    });
    let client = Task::once(move || {
        Box::pin(async move {
            cpus::pin_end(cpus::End::Measuring);
            let outcome = async {
                let echo = mailbox::<Vec<u8>>("echo").map_err(|e| format!("mailbox: {e}"))?;
                let mut took = Vec::with_capacity(CALLS);
                for n in 0..(CALL_WARMUP + CALLS) as u64 {
                    let began = Instant::now();
                    let reply: Vec<u8> = echo
                        .call(payload(n), Duration::from_secs(2))
                        .await
                        .map_err(|e| format!("call {n}: {e}"))?;
                    if n as usize >= CALL_WARMUP {
                        took.push(began.elapsed().as_secs_f64() * 1e6);
                    }
                    if reply.len() != MESSAGE {
                        return Err(format!("call {n}: a reply of {} bytes", reply.len()));
                    }
                }
                took.sort_by(f64::total_cmp);
                let at = |q| percentile(&took, q).ok_or("no call");
                Ok(format!("p50_us={} p99_us={}", at(0.50)?, at(0.99)?))
            }
            .await;
            finish(root, outcome);
        })
    });
    Supertree::new()
        .add_supervisor(|s| s.with_mailbox("echo").add_worker(server))
        .add_supervisor(|s| s.add_worker(client))
}

/// `scrape`: the `operator` bench's `status_json` tree: 100 supervisors of
/// 9 idle workers, and `root/spin`, restarted at once all along.
fn scrape_tree() -> Supertree {
    let idle = || Task::always(|| Box::pin(supertrees::stopping()));
    (0..100)
        .fold(Supertree::new(), |t, _| {
            t.add_supervisor(|s| (0..9).fold(s, |s, _| s.add_worker(idle())))
        })
        .add_named_worker("spin", Task::always(|| Box::pin(async {})))
}
