//! `cargo bench -p supertrees-bench --bench listeners [-- listen]`
//!
//! Listening sockets held by the tree (`with_listener`) against a worker
//! that binds its own port on every start, side by side in one run, under
//! the same kill storm. It prints a Markdown table to stdout.
//!
//! Figure: `listen` (the only one). `BENCH_RUNS` (default 3) sets the runs
//! per side; the two sides take turns, one run of each per round.
//!
//! A run: this binary again, re-executed with `SUPERTREES_BENCH_TREE=<side>`
//! in a process group of its own, builds the side's tree and calls
//! `start()`: one echo worker, restarted always with the default backoff
//! (50 ms, ×1.2 per consecutive restart), printing `host <pid>` on every
//! start and `listening on <addr>`. The driver then, on one thread, echoes
//! one line over a fresh connection after another (read timeout 1 s; 1 ms
//! pause after a failed attempt), while its main thread SIGKILLs the latest
//! host 25 times: each once it has run 120 ms, and at least 120 ms after the
//! previous kill. Then it stops the tree with SIGTERM and makes sure
//! nothing of it is left.
//!
//! * `shared`: `with_listener("echo", Listen::tcp(127.0.0.1:0))`, and the
//!   worker takes `tcp_listener("echo")` on every start.
//! * `own`: the worker binds a fixed port (free when the tree process
//!   picked it, before `start()`) with `tokio::net::TcpListener::bind`.
//!
//! Percentiles are over every attempt, a failed one (refused, timed out,
//! reset) counting as slower than any echo: `failed` in the table when
//! more than 1 % (p99) or half (p50) of the attempts failed.

#![warn(clippy::undocumented_unsafe_blocks)]

#[allow(dead_code)]
#[path = "../compare/procs.rs"]
mod procs;
#[allow(dead_code)]
#[path = "../compare/stats.rs"]
mod stats;

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use procs::Failure;
use stats::Series;
use supertrees::{BackoffPolicy, BoxFuture, Listen, RestartPolicy, Restartable, Supertree, Worker};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The environment variable that makes this binary run one side's tree.
const TREE_VAR: &str = "SUPERTREES_BENCH_TREE";
const SIDES: [&str; 2] = ["shared", "own"];
const KILLS: usize = 25;
const KILL_EVERY: Duration = Duration::from_millis(120);
/// How long a tree may take to come up, or to stop after SIGTERM.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

// ---- The tree process -------------------------------------------------

struct Echo {
    /// `None`: the tree's listener "echo"; `Some`: bound on every start.
    own: Option<SocketAddr>,
}

impl Worker for Echo {
    fn init(&self) -> BoxFuture {
        let own = self.own;
        Box::pin(async move {
            println!("host {}", std::process::id());
            let listener = match own {
                None => {
                    supertrees::tcp_listener("echo").and_then(tokio::net::TcpListener::from_std)
                }
                Some(addr) => tokio::net::TcpListener::bind(addr).await,
            };
            let listener = match listener {
                Ok(listener) => listener,
                // Restarted after its backoff.
                Err(err) => return println!("bind error: {err}"),
            };
            if let Ok(addr) = listener.local_addr() {
                println!("listening on {addr}");
            }
            loop {
                if let Ok((stream, _)) = listener.accept().await {
                    supertrees::spawn(echo(stream));
                }
            }
        })
    }
}

impl Restartable for Echo {
    fn restart_policy(&self) -> RestartPolicy {
        RestartPolicy::Always
    }
    fn backoff_policy(&self) -> BackoffPolicy {
        BackoffPolicy::default()
    }
}

async fn echo(mut stream: tokio::net::TcpStream) {
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

fn tree(side: &str) -> ! {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let tree = match side {
        "shared" => Supertree::new()
            .with_listener("echo", Listen::tcp(loopback))
            .add_worker(Echo { own: None }),
        _ => {
            let addr = std::net::TcpListener::bind(loopback).and_then(|l| l.local_addr());
            match addr {
                Ok(addr) => Supertree::new().add_worker(Echo { own: Some(addr) }),
                Err(err) => {
                    println!("error {side} no free port: {err}");
                    std::process::exit(1);
                }
            }
        }
    };
    if let Err(err) = tree.start() {
        println!("error {side} start: {err}");
        std::process::exit(1);
    }
    std::process::exit(0)
}

// ---- The driver -------------------------------------------------------

#[path = "../../../tests/common/echo_client.rs"]
mod echo_client;

use echo_client::{storm_client, Outcome};

/// The figures of one run.
struct Storm {
    attempts: f64,
    refused: f64,
    /// No reply within the read timeout.
    timed_out: f64,
    /// Reset, closed before the reply, or a wrong reply.
    cut: f64,
    /// Percent of the attempts.
    echoed: f64,
    /// ms; infinite when more than half (p50) or 1 % (p99) failed.
    p50: f64,
    p99: f64,
    slowest_echo: f64,
    took: Duration,
}

fn figures(samples: &[(Outcome, Duration)], took: Duration) -> Storm {
    let count = |o: Outcome| samples.iter().filter(|s| s.0 == o).count() as f64;
    let mut times: Vec<f64> = samples
        .iter()
        .map(|&(o, d)| {
            if o == Outcome::Echoed {
                d.as_secs_f64() * 1e3
            } else {
                f64::INFINITY
            }
        })
        .collect();
    times.sort_by(f64::total_cmp);
    Storm {
        attempts: samples.len() as f64,
        refused: count(Outcome::Refused),
        timed_out: count(Outcome::TimedOut),
        cut: count(Outcome::Failed),
        echoed: 100.0 * count(Outcome::Echoed) / (samples.len().max(1) as f64),
        p50: stats::percentile(&times, 0.5).unwrap_or(f64::INFINITY),
        p99: stats::percentile(&times, 0.99).unwrap_or(f64::INFINITY),
        slowest_echo: times
            .iter()
            .copied()
            .filter(|t| t.is_finite())
            .fold(0.0, f64::max),
        took,
    }
}

/// A running tree process and its stdout lines.
struct TreeProc {
    child: std::process::Child,
    pid: i32,
    lines: Arc<Mutex<Vec<String>>>,
}

impl TreeProc {
    fn spawn(side: &str) -> Result<TreeProc, Failure> {
        let exe = std::env::current_exe().expect("the path of the bench binary");
        let mut child = Command::new(exe)
            .env(TREE_VAR, side)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Failure::Error(format!("{side}: could not start the tree: {e}")))?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("piped stdout");
        let into = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if let Ok(mut lines) = into.lock() {
                    lines.push(line);
                }
            }
        });
        Ok(TreeProc {
            pid: child.id() as i32,
            child,
            lines,
        })
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Polls `probe` until `Some`, for at most [`STEP_TIMEOUT`].
    fn wait_for<T>(
        &mut self,
        what: &str,
        mut probe: impl FnMut(&[String]) -> Option<T>,
    ) -> Result<T, Failure> {
        let until = Instant::now() + STEP_TIMEOUT;
        loop {
            let lines = self.lines();
            if let Some(v) = probe(&lines) {
                return Ok(v);
            }
            if let Some(error) = lines.iter().find(|l| l.starts_with("error ")) {
                return Err(Failure::Error(error.clone()));
            }
            if Instant::now() >= until {
                return Err(Failure::Timeout(format!("waiting for {what}")));
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Failure::Error(format!(
                    "the tree exited ({status}) while waiting for {what}"
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn latest_host(lines: &[String]) -> Option<i32> {
        lines
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("host ")?.parse().ok())
    }

    /// SIGTERM, wait, then make sure nothing of it is left.
    fn stop(mut self, notes: &mut Vec<String>, side: &str) {
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGTERM);
        let until = Instant::now() + STEP_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => break,
                Ok(Some(status)) => {
                    notes.push(format!("{side}: the tree exited with {status}"));
                    break;
                }
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(5)),
                _ => {
                    notes.push(format!("{side}: the tree did not stop after SIGTERM"));
                    break;
                }
            }
        }
        let left = procs::leftovers(self.pid);
        if left > 0 {
            notes.push(format!(
                "{side}: {left} processes left after the root exited"
            ));
        }
        if let Err(f) = procs::cleanup(self.pid, Duration::from_secs(10)) {
            notes.push(format!("{side}: cleanup failed: {f}"));
        }
    }
}

/// One run of one side.
fn run(side: &str, notes: &mut Vec<String>) -> Result<Storm, Failure> {
    let mut tree = TreeProc::spawn(side)?;
    let result = storm(&mut tree);
    tree.stop(notes, side);
    result
}

fn storm(tree: &mut TreeProc) -> Result<Storm, Failure> {
    let addr: SocketAddr = tree.wait_for("listening on", |lines| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix("listening on ")?.parse().ok())
    })?;
    let stop = Arc::new(AtomicBool::new(false));
    let client = storm_client(addr, stop.clone());
    let began = Instant::now();
    let killed = kill_storm(tree);
    stop.store(true, Ordering::Relaxed);
    let took = began.elapsed();
    let samples = client
        .join()
        .map_err(|_| Failure::Error("the echo client panicked".into()))?;
    killed?;
    Ok(figures(&samples, took))
}

fn kill_storm(tree: &mut TreeProc) -> Result<(), Failure> {
    let mut killed: Vec<i32> = Vec::new();
    let mut last: Option<Instant> = None;
    while killed.len() < KILLS {
        let host = tree.wait_for("a new host", |lines| {
            TreeProc::latest_host(lines).filter(|pid| !killed.contains(pid))
        })?;
        let mut at = Instant::now() + KILL_EVERY;
        if let Some(last) = last {
            at = at.max(last + KILL_EVERY);
        }
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        kill(Pid::from_raw(host), Signal::SIGKILL)
            .map_err(|e| Failure::Error(format!("kill {host}: {e}")))?;
        last = Some(Instant::now());
        killed.push(host);
    }
    tree.wait_for("the worker back", |lines| {
        TreeProc::latest_host(lines).filter(|pid| !killed.contains(pid))
    })?;
    std::thread::sleep(KILL_EVERY);
    Ok(())
}

#[derive(Default)]
struct Side {
    attempts: Series,
    refused: Series,
    timed_out: Series,
    cut: Series,
    echoed: Series,
    p50: Series,
    p99: Series,
    slowest: Series,
    took: Series,
}

impl Side {
    fn push(&mut self, r: &Result<Storm, Failure>) {
        let put = |s: &mut Series, v: fn(&Storm) -> f64| {
            s.push(r.as_ref().map(v).map_err(Clone::clone));
        };
        put(&mut self.attempts, |s| s.attempts);
        put(&mut self.refused, |s| s.refused);
        put(&mut self.timed_out, |s| s.timed_out);
        put(&mut self.cut, |s| s.cut);
        put(&mut self.echoed, |s| s.echoed);
        put(&mut self.p50, |s| s.p50);
        put(&mut self.p99, |s| s.p99);
        put(&mut self.slowest, |s| s.slowest_echo);
        put(&mut self.took, |s| s.took.as_secs_f64());
    }
}

fn num(v: f64) -> String {
    if v.is_infinite() {
        "failed".to_owned()
    } else if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn in_ms(v: f64) -> String {
    match num(v) {
        failed if v.is_infinite() => failed,
        v => format!("{v} ms"),
    }
}

fn cell(s: &Series, v: Option<f64>) -> String {
    match v {
        None if s.failures.is_empty() => "—".to_owned(),
        None => "failed".to_owned(),
        Some(v) if s.failures.is_empty() => num(v),
        Some(v) => format!("{} ({} runs failed)", num(v), s.failures.len()),
    }
}

fn main() {
    if let Ok(side) = std::env::var(TREE_VAR) {
        tree(&side);
    }
    let began = Instant::now();
    let runs = match std::env::var("BENCH_RUNS") {
        Ok(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("BENCH_RUNS must be a positive integer, got {v:?}");
                std::process::exit(2);
            }
        },
        Err(_) => 3,
    };
    if let Some(bad) = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-') && a != "listen")
    {
        eprintln!("unknown figure {bad:?}; known: listen");
        std::process::exit(2);
    }
    // What the trees leave when they lose their parent comes back here.
    nix::sys::prctl::set_child_subreaper(true)
        .expect("PR_SET_CHILD_SUBREAPER is needed to collect what a run leaves");
    let mut notes = Vec::new();
    let mut sides: [Side; 2] = Default::default();
    for round in 1..=runs {
        eprintln!("round {round}/{runs}");
        for (i, side) in SIDES.iter().enumerate() {
            let r = run(side, &mut notes);
            match &r {
                Ok(s) => eprintln!(
                    "  {side}: {} kills in {:.1} s, {} attempts, {} refused, {} timed out, {} cut, p50 {}, p99 {}, slowest echo {} ms",
                    KILLS,
                    s.took.as_secs_f64(),
                    s.attempts,
                    s.refused,
                    s.timed_out,
                    s.cut,
                    in_ms(s.p50),
                    in_ms(s.p99),
                    num(s.slowest_echo)
                ),
                Err(f) => eprintln!("  {side}: {f}"),
            }
            sides[i].push(&r);
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n## Listening sockets: a kill storm ({KILLS} SIGKILLs of the host, {} ms apart), {runs} runs, {:.0} s\n",
        KILL_EVERY.as_millis(),
        began.elapsed().as_secs_f64()
    );
    let _ = writeln!(
        out,
        "| figure | unit | with_listener min | with_listener median | own bind min | own bind median |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    type Pick = fn(&Side) -> &Series;
    let rows: [(&str, &str, Pick); 9] = [
        ("connections refused", "count", |s| &s.refused),
        ("echoes timed out (no reply within 1 s)", "count", |s| {
            &s.timed_out
        }),
        ("echoes cut (reset, closed)", "count", |s| &s.cut),
        ("attempts", "count", |s| &s.attempts),
        ("attempts echoed", "%", |s| &s.echoed),
        ("echo latency p50 (all attempts)", "ms", |s| &s.p50),
        ("echo latency p99 (all attempts)", "ms", |s| &s.p99),
        ("slowest echo", "ms", |s| &s.slowest),
        ("storm duration", "s", |s| &s.took),
    ];
    for (name, unit, series) in rows {
        let (a, b) = (series(&sides[0]), series(&sides[1]));
        let _ = writeln!(
            out,
            "| {name} | {unit} | {} | {} | {} | {} |",
            cell(a, a.min()),
            cell(a, a.median()),
            cell(b, b.min()),
            cell(b, b.median())
        );
    }
    if !notes.is_empty() {
        let _ = writeln!(out, "\nNotes:\n");
        for note in &notes {
            let _ = writeln!(out, "* {note}");
        }
    }
    print!("{out}");
}
