//! `cargo bench -p supertrees-bench --bench dynamic [-- FIGURE...]`
//!
//! Children started at run time at scale (issue 19), on the default
//! (Tokio) backend. Figures (default: both):
//!
//! * `start`: 8 callers start [`CHILDREN`] children that stay (idle
//!   forever) under one supervisor: the time it takes, then how long the
//!   status socket takes to answer (five queries, min and median), and the
//!   memory the children cost, per child: the resident set of the worker
//!   host that runs them and of their supervisor process, from one child to
//!   all of them.
//! * `cycles`: 8 callers start and terminate children, [`CYCLES`] times in
//!   all: the rate, and the open descriptors and resident memory of the
//!   supervisor, its worker host and the root after each tenth of them, to
//!   show they stay flat.
//!
//! `BENCH_RUNS` (default 3) sets the runs of each figure. The driver (this
//! binary without `SUPERTREES_BENCH_TREE`) runs every tree as a subprocess:
//! this binary again, with `SUPERTREES_BENCH_TREE=<figure>`, whose single
//! threaded `main` builds the tree and calls `start()`. Its measuring
//! worker prints `result <figure> key=value ...` lines and ends the tree
//! with SIGTERM to the root. The driver prints a Markdown table.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use supertrees::{
    query_status, start_child, terminate_child, BoxFuture, Error, RestartPolicy, Restartable,
    Supertree, Worker,
};

#[path = "../common/figures.rs"]
mod figures;

/// The environment variable that makes this binary run one figure's tree.
const TREE_VAR: &str = "SUPERTREES_BENCH_TREE";
/// Children started by the `start` figure.
const CHILDREN: u64 = 100_000;
/// Start-and-terminate cycles of the `cycles` figure.
const CYCLES: u64 = 100_000;
/// Callers that start children side by side.
const CALLERS: u64 = 8;
/// How long a tree may take, start to exit.
const TIMEOUT: Duration = Duration::from_secs(180);

fn main() {
    if let Ok(figure) = std::env::var(TREE_VAR) {
        tree(&figure);
    }
    figures::run(&["start", "cycles"], run_tree);
}

/// Runs `figure`'s tree as a subprocess and returns the fields of its
/// `result` lines.
fn run_tree(figure: &str) -> Result<Vec<(String, f64)>, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .env(TREE_VAR, figure)
        .env("RUST_LOG", "warn")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let group = child.id() as i32;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let started = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut fields = Vec::new();
    let mut error = None;
    loop {
        let left = TIMEOUT.saturating_sub(started.elapsed());
        match rx.recv_timeout(left) {
            Ok(line) => {
                eprintln!("  {line}");
                if let Some(rest) = line.strip_prefix("result ") {
                    for field in rest.split(' ').skip(1) {
                        if let Some((k, v)) = field.split_once('=') {
                            if let Ok(v) = v.parse() {
                                fields.push((k.to_owned(), v));
                            }
                        }
                    }
                } else if line.starts_with("error ") {
                    error = Some(line);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                error = Some(format!("timed out after {TIMEOUT:?}"));
                break;
            }
        }
    }
    let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
    let _ = child.wait();
    match error {
        Some(err) => Err(err),
        None if fields.is_empty() => Err("no result".to_owned()),
        None => Ok(fields),
    }
}

// ---------------------------------------------------------------------------
// The trees (in the subprocess)
// ---------------------------------------------------------------------------

/// A child that stays until it is terminated (it never calls `stopping()`,
/// so `terminate_child` drops it at once).
struct Idle;

impl Worker for Idle {
    fn init(&self) -> BoxFuture {
        Box::pin(std::future::pending())
    }
}

impl Restartable for Idle {}

/// The measuring worker: runs once.
struct Measure(fn(i32, std::path::PathBuf) -> BoxFuture);

impl Worker for Measure {
    fn init(&self) -> BoxFuture {
        (self.0)(std::process::id() as i32, socket())
    }
}

impl Restartable for Measure {
    fn restart_policy(&self) -> RestartPolicy {
        RestartPolicy::Never
    }
}

/// The status socket, in a directory of this tree's own.
fn socket() -> std::path::PathBuf {
    dir().join("status.sock")
}

fn dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("supertrees-bench-dynamic-{}", root_pid()))
}

fn root_pid() -> i32 {
    std::env::var("SUPERTREES_BENCH_ROOT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

/// Runs `figure`'s tree in this process and exits.
fn tree(figure: &str) -> ! {
    let root = std::process::id();
    // Inherited by every process of the tree: where the status socket is.
    std::env::set_var("SUPERTREES_BENCH_ROOT", root.to_string());
    let measure: fn(i32, std::path::PathBuf) -> BoxFuture = match figure {
        "start" => |_, socket| Box::pin(start_figure(socket)),
        "cycles" => |_, socket| Box::pin(cycles_figure(socket)),
        other => {
            println!("error unknown figure {other}");
            std::process::exit(2);
        }
    };
    use std::os::unix::fs::DirBuilderExt;
    if let Err(err) = std::fs::DirBuilder::new().mode(0o700).create(dir()) {
        println!("error {figure} making {}: {err}", dir().display());
        std::process::exit(2);
    }
    let tree = Supertree::new()
        .status_socket(socket())
        .add_supervisor(|s| s.add_dynamic("idle", |_: u64| Idle))
        .add_supervisor(|s| s.add_worker(Measure(measure)));
    let result = tree.start();
    if let Err(err) = result {
        println!("error {figure} start() returned {err}");
    }
    let _ = std::fs::remove_dir_all(dir());
    std::process::exit(0)
}

/// Ends the tree.
fn stop_tree() {
    let _ = kill(Pid::from_raw(root_pid()), Signal::SIGTERM);
}

/// Starts one child, asking again while the supervisor is busy.
async fn start_one(k: u64) -> Result<(), Error> {
    start_child("idle", k).await.map(drop)
}

/// Runs `per_caller` for each of [`CALLERS`] callers side by side.
async fn callers<F, Fut>(per_caller: F) -> Result<(), Error>
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = Result<(), Error>>,
{
    let all = futures_join((0..CALLERS).map(per_caller).collect()).await;
    all.into_iter().collect()
}

/// Polls every future to its end, side by side (no runtime of its own).
async fn futures_join<Fut: std::future::Future>(futs: Vec<Fut>) -> Vec<Fut::Output> {
    let mut futs: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut outs: Vec<Option<Fut::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (fut, out) in futs.iter_mut().zip(outs.iter_mut()) {
            if out.is_none() {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *out = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outs.into_iter().flatten().collect()
}

/// The pids of the root, supervisor `root/0` and its worker host, from the
/// status.
fn pids(socket: &std::path::Path) -> Result<(i32, i32, i32), String> {
    let text = query_status(socket).map_err(|e| e.to_string())?;
    let pid_of = |path: &str| -> Result<i32, String> {
        text.lines()
            .find(|l| {
                l.trim_start_matches([' ', '│', '├', '└', '─'])
                    .starts_with(&format!("{path}  "))
            })
            .and_then(|l| l.split("pid ").nth(1))
            .and_then(|rest| rest.split(' ').next())
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("no pid of {path} in the status"))
    };
    Ok((pid_of("root")?, pid_of("root/0")?, pid_of("root/0/host")?))
}

/// `VmRSS` of `pid`, in bytes.
fn rss(pid: i32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib * 1024.0)
}

/// Open descriptors of `pid`.
fn fds(pid: i32) -> f64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(f64::NAN, |d| d.count() as f64)
}

async fn start_figure(socket: std::path::PathBuf) {
    let outcome: Result<String, String> = async {
        start_one(0).await.map_err(|e| e.to_string())?;
        // Let the first child's host settle before the baseline.
        std::thread::sleep(Duration::from_millis(200));
        let (_, sup, host) = pids(&socket)?;
        let (host_before, sup_before) = (rss(host), rss(sup));
        let started = Instant::now();
        let per = CHILDREN / CALLERS;
        callers(|c| async move {
            for n in 0..per {
                start_one(1 + c * per + n).await?;
            }
            Ok(())
        })
        .await
        .map_err(|e| e.to_string())?;
        let secs = started.elapsed().as_secs_f64();
        let total = 1 + per * CALLERS;
        // The children's `Ready` events reach the root: wait until the
        // status shows them all.
        let mut queries = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let t = Instant::now();
            let text = query_status(&socket).map_err(|e| e.to_string())?;
            let took = t.elapsed().as_secs_f64() * 1e3;
            let ready = text.lines().filter(|l| l.contains("idle#") && l.contains("  ready")).count() as u64;
            if ready >= total {
                queries.push(took);
                if queries.len() == 5 {
                    break;
                }
            } else if Instant::now() > deadline {
                return Err(format!("{ready} of {total} children ready in the status after 60 s"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        queries.sort_by(f64::total_cmp);
        let (host_after, sup_after) = (rss(host), rss(sup));
        let added = (total - 1) as f64;
        Ok(format!(
            "children={total} secs={secs:.3} per_sec={:.0} status_ms_min={:.1} status_ms_median={:.1} host_bytes_per_child={:.0} supervisor_bytes_per_child={:.0}",
            total as f64 / secs,
            queries[0],
            queries[2],
            (host_after - host_before) / added,
            (sup_after - sup_before) / added,
        ))
    }
    .await;
    match outcome {
        Ok(fields) => println!("result start {fields}"),
        Err(err) => println!("error start {err}"),
    }
    stop_tree();
}

async fn cycles_figure(socket: std::path::PathBuf) {
    let outcome: Result<String, String> = async {
        start_one(0).await.map_err(|e| e.to_string())?;
        std::thread::sleep(Duration::from_millis(200));
        let (root, sup, host) = pids(&socket)?;
        let tenth = CYCLES / 10 / CALLERS;
        let started = Instant::now();
        let mut samples = Vec::new();
        for round in 0..10u64 {
            callers(|c| async move {
                for n in 0..tenth {
                    let k = 1 + ((round * CALLERS + c) * tenth + n);
                    let id = start_child("idle", k).await?;
                    terminate_child("idle", id).await?;
                }
                Ok(())
            })
            .await
            .map_err(|e| e.to_string())?;
            samples.push([fds(sup), fds(host), fds(root), rss(sup), rss(host), rss(root)]);
        }
        let secs = started.elapsed().as_secs_f64();
        let first = samples[0];
        let last = samples[9];
        let mib = |b: f64| b / (1024.0 * 1024.0);
        Ok(format!(
            "cycles={} secs={secs:.3} per_sec={:.0} sup_fds_10pc={} sup_fds_100pc={} host_fds_10pc={} host_fds_100pc={} root_fds_10pc={} root_fds_100pc={} sup_rss_mib_10pc={:.2} sup_rss_mib_100pc={:.2} host_rss_mib_10pc={:.2} host_rss_mib_100pc={:.2} root_rss_mib_10pc={:.2} root_rss_mib_100pc={:.2}",
            tenth * CALLERS * 10,
            (tenth * CALLERS * 10) as f64 / secs,
            first[0], last[0], first[1], last[1], first[2], last[2],
            mib(first[3]), mib(last[3]), mib(first[4]), mib(last[4]), mib(first[5]), mib(last[5]),
        ))
    }
    .await;
    match outcome {
        Ok(fields) => println!("result cycles {fields}"),
        Err(err) => println!("error cycles {err}"),
    }
    stop_tree();
}
