//! The trees, run in the subprocess (`SUPERTREES_BENCH_TREE=<figure>`): its
//! plain `main`, still single-threaded, builds the figure's tree and calls
//! `start()` on the default (Tokio) backend, so that this process becomes
//! the root supervisor and forks the rest of the tree.
//!
//! Every tree has a measuring worker in a supervisor of its own (its own
//! supervisor process and worker host): it measures, prints one line
//! `result <figure> key=value ...` (or `error <figure> <what>`) to stdout,
//! and ends the tree with SIGTERM to the root, whose pid it took before
//! `start()`. Latencies are timed around each operation with `Instant`;
//! percentiles are computed in the worker, so the line stays short.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use supertrees::{
    inbox, mailbox, start_child, terminate_child, BackoffPolicy, BoxFuture, Error, Intensity,
    RestartPolicy, Restartable, Supertree, Worker,
};

use crate::cpus::{self, End};
use crate::floor::{latency, mono_ns, MESSAGE};
use crate::stats::median_usize;

pub const CALL_WARMUP: usize = 1_000;
pub const CALLS: usize = 20_000;
pub const SEND_WARMUP: usize = 1_000;
pub const SENDS: usize = 200_000;
pub const PANIC_CALLS: u64 = 20_000;
/// The server panics on every message whose number is 999 modulo this.
pub const PANIC_EVERY: u64 = 1_000;
pub const CHILDREN: usize = 2_000;
const CHILD_WARMUP: usize = 50;
/// What a `call` waits at most: far above any figure measured here.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
const PLANNED: &str = "supertrees-bench: planned panic";

/// A worker whose runs are made by `make`.
struct Task {
    make: Arc<dyn Fn() -> BoxFuture + Send + Sync>,
    restart: RestartPolicy,
    backoff: BackoffPolicy,
    end: End,
}

impl Task {
    /// A measuring worker: runs once.
    fn once(make: impl Fn() -> BoxFuture + Send + Sync + 'static) -> Task {
        Task {
            make: Arc::new(make),
            restart: RestartPolicy::Never,
            backoff: BackoffPolicy::immediate(),
            end: End::Measuring,
        }
    }

    /// A server: restarted always, at once.
    fn server(make: impl Fn() -> BoxFuture + Send + Sync + 'static) -> Task {
        Task {
            make: Arc::new(make),
            restart: RestartPolicy::Always,
            backoff: BackoffPolicy::immediate(),
            end: End::Serving,
        }
    }
}

impl Worker for Task {
    fn init(&self) -> BoxFuture {
        let (end, run) = (self.end, (self.make)());
        Box::pin(async move {
            cpus::pin_end(end);
            run.await
        })
    }
}

impl Restartable for Task {
    fn restart_policy(&self) -> RestartPolicy {
        self.restart
    }
    fn backoff_policy(&self) -> BackoffPolicy {
        self.backoff
    }
}

/// A dynamic child that waits forever (it never calls `stopping()`, so
/// `terminate_child` drops it at once).
struct Idle;

impl Worker for Idle {
    fn init(&self) -> BoxFuture {
        Box::pin(std::future::pending())
    }
}

impl Restartable for Idle {}

/// Runs the tree of `figure` in this process and exits.
pub fn run(figure: &str) -> ! {
    let threads = std::fs::read_dir("/proc/self/task").map_or(0, |dir| dir.count());
    if threads != 1 {
        println!("error {figure} the tree process has {threads} threads before start()");
        std::process::exit(2);
    }
    let root = std::process::id() as i32;
    cpus::pin_all();
    let tree = match figure {
        "call" => call_tree(root),
        "send" => send_tree(root),
        "panics" => {
            // The planned panics would print a message each.
            let default = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                let planned = info
                    .payload()
                    .downcast_ref::<String>()
                    .is_some_and(|m| m.starts_with(PLANNED));
                if !planned {
                    default(info);
                }
            }));
            panics_tree(root)
        }
        "start_child" => start_child_tree(root),
        other => {
            println!("error {other} no such tree");
            std::process::exit(2);
        }
    };
    if let Err(err) = tree.start() {
        println!("error {figure} start() returned: {err}");
    }
    std::process::exit(0)
}

/// Prints the measuring worker's outcome and ends the tree.
fn finish(figure: &str, root: i32, outcome: Result<String, String>) {
    match outcome {
        Ok(fields) => println!("result {figure} {fields}"),
        Err(what) => println!("error {figure} {what}"),
    }
    let _ = kill(Pid::from_raw(root), Signal::SIGTERM);
}

/// A serving worker that could not take its inbox: says so, ends the tree,
/// and waits (it is restarted always; returning would spin).
async fn cannot_serve(figure: &'static str, root: i32, err: Error) {
    finish(figure, root, Err(format!("inbox: {err}")));
    std::future::pending::<()>().await
}

fn payload(n: u64) -> Vec<u8> {
    let mut p = vec![0u8; MESSAGE];
    p[..8].copy_from_slice(&n.to_le_bytes());
    p
}

fn ns(t: Instant) -> f64 {
    t.elapsed().as_nanos() as f64
}

/// `call`: an echo server in one supervisor, the caller in another.
fn call_tree(root: i32) -> Supertree {
    let server = Task::server(move || {
        Box::pin(async move {
            let mut inbox = match inbox::<Vec<u8>>("echo") {
                Ok(inbox) => inbox,
                Err(err) => return cannot_serve("call", root, err).await,
            };
            while let Some(envelope) = inbox.recv().await {
                let msg = envelope.message().clone();
                envelope.reply(msg);
            }
        })
    });
    let client = Task::once(move || {
        Box::pin(async move {
            let outcome = async {
                let echo = mailbox::<Vec<u8>>("echo").map_err(|e| format!("mailbox: {e}"))?;
                let mut lat = Vec::with_capacity(CALLS);
                for n in 0..(CALL_WARMUP + CALLS) as u64 {
                    let t = Instant::now();
                    let reply: Vec<u8> = echo
                        .call(payload(n), CALL_TIMEOUT)
                        .await
                        .map_err(|e| format!("call {n}: {e}"))?;
                    if n as usize >= CALL_WARMUP {
                        lat.push(ns(t));
                    }
                    if reply.len() != MESSAGE {
                        return Err(format!("call {n}: a reply of {} bytes", reply.len()));
                    }
                }
                let l = latency(&mut lat).ok_or("no call")?;
                Ok(format!("n={CALLS} p50_ns={} p99_ns={}", l.p50, l.p99))
            }
            .await;
            finish("call", root, outcome);
        })
    });
    Supertree::new()
        .add_supervisor(|s| s.with_mailbox("echo").add_worker(server))
        .add_supervisor(|s| s.add_worker(client))
}

/// `send`: a server that counts 64-byte casts (and answers a call with
/// the count so far, which is how the sender knows the warm-up is
/// through), and a sender in another supervisor. The server prints the
/// `CLOCK_MONOTONIC` time at which it received the last one.
fn send_tree(root: i32) -> Supertree {
    let server = Task::server(move || {
        Box::pin(async move {
            let mut inbox = match inbox::<Vec<u8>>("sink") {
                Ok(inbox) => inbox,
                Err(err) => return cannot_serve("send", root, err).await,
            };
            let mut received = 0u64;
            while let Some(envelope) = inbox.recv().await {
                if envelope.is_call() {
                    envelope.reply(received);
                    continue;
                }
                received += 1;
                if received == (SEND_WARMUP + SENDS) as u64 {
                    println!("result send-server last_ns={}", mono_ns());
                }
            }
        })
    });
    let client = Task::once(move || {
        Box::pin(async move {
            let outcome = async {
                let sink = mailbox::<Vec<u8>>("sink").map_err(|e| format!("mailbox: {e}"))?;
                let msg = vec![7u8; MESSAGE];
                for _ in 0..SEND_WARMUP {
                    sink.send(msg.clone())
                        .await
                        .map_err(|e| format!("send: {e}"))?;
                }
                let count = |what: &'static str| {
                    let sink = sink.clone();
                    async move {
                        sink.call::<u64>(Vec::new(), Duration::from_secs(10))
                            .await
                            .map_err(|e| format!("{what}: {e}"))
                    }
                };
                count("sync after the warm-up").await?;
                let first = mono_ns();
                for _ in 0..SENDS {
                    sink.send(msg.clone())
                        .await
                        .map_err(|e| format!("send: {e}"))?;
                }
                let sent = mono_ns();
                let received = count("sync after the last").await?;
                if received != (SEND_WARMUP + SENDS) as u64 {
                    return Err(format!("the server received {received} messages"));
                }
                Ok(format!("n={SENDS} first_ns={first} sent_ns={sent}"))
            }
            .await;
            finish("send", root, outcome);
        })
    });
    Supertree::new()
        .add_supervisor(|s| s.with_mailbox("sink").add_worker(server))
        .add_supervisor(|s| s.add_worker(client))
}

/// `panics`: an echo server that panics on every 1000th message before
/// replying, restarted always at once; a caller in another supervisor. For
/// each panic: the calls that failed in a row, and the time from the start
/// of the first of them (the panic is in it) to the first good reply.
fn panics_tree(root: i32) -> Supertree {
    let server = Task::server(move || {
        Box::pin(async move {
            let mut inbox = match inbox::<Vec<u8>>("flaky") {
                Ok(inbox) => inbox,
                Err(err) => return cannot_serve("panics", root, err).await,
            };
            while let Some(envelope) = inbox.recv().await {
                let msg = envelope.message();
                let n = msg
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, u64::from_le_bytes);
                if n % PANIC_EVERY == PANIC_EVERY - 1 {
                    panic!("{PLANNED} at message {n}");
                }
                let msg = msg.clone();
                envelope.reply(msg);
            }
        })
    });
    let client = Task::once(move || {
        Box::pin(async move {
            let outcome = async {
                let flaky = mailbox::<Vec<u8>>("flaky").map_err(|e| format!("mailbox: {e}"))?;
                // Per panic: calls failed in a row, ns to the next good reply.
                let mut episodes: Vec<(usize, f64)> = Vec::new();
                let mut open: Option<(Instant, usize)> = None;
                let mut kinds: Vec<String> = Vec::new();
                // Past PANIC_CALLS only until the last panic's good reply
                // (the last of PANIC_CALLS is one the server panics on).
                let mut n = 0;
                while n < PANIC_CALLS || (open.is_some() && n < PANIC_CALLS + 100) {
                    n += 1;
                    let n = n - 1;
                    let t = Instant::now();
                    match flaky.call::<Vec<u8>>(payload(n), CALL_TIMEOUT).await {
                        Ok(_) => {
                            if let Some((since, failed)) = open.take() {
                                episodes.push((failed, ns(since)));
                            }
                        }
                        Err(err) => {
                            let kind = match err {
                                Error::NoReply { .. } => "NoReply".to_owned(),
                                Error::Timeout { .. } => "Timeout".to_owned(),
                                other => other.to_string(),
                            };
                            if !kinds.contains(&kind) {
                                kinds.push(kind);
                            }
                            let (_, failed) = open.get_or_insert((t, 0));
                            *failed += 1;
                        }
                    }
                }
                if open.is_some() {
                    return Err("the last calls failed: no good reply after them".into());
                }
                if episodes.is_empty() {
                    return Err("no call failed: the server never panicked?".into());
                }
                let failed: Vec<usize> = episodes.iter().map(|e| e.0).collect();
                let mut recovery: Vec<f64> = episodes.iter().map(|e| e.1).collect();
                recovery.sort_by(f64::total_cmp);
                Ok(format!(
                    "panics={} failed_total={} failed_max={} failed_median={} recovery_max_ns={} recovery_median_ns={} errors={}",
                    episodes.len(),
                    failed.iter().sum::<usize>(),
                    failed.iter().max().copied().unwrap_or(0),
                    median_usize(&failed).unwrap_or(0),
                    recovery.last().copied().unwrap_or(0.0),
                    crate::stats::percentile(&recovery, 0.5).unwrap_or(0.0),
                    kinds.join(",")
                ))
            }
            .await;
            finish("panics", root, outcome);
        })
    });
    let intensity = Intensity::new(1_000, Duration::from_secs(10));
    Supertree::new()
        .with_intensity(intensity)
        .add_supervisor(|s| {
            s.with_mailbox("flaky")
                .with_intensity(intensity)
                .add_worker(server)
        })
        .add_supervisor(|s| s.add_worker(client))
}

/// `start_child`: a supervisor with a template of idle children; a worker
/// of another supervisor starts 2000 of them one after the other, then
/// terminates them all.
fn start_child_tree(root: i32) -> Supertree {
    let client = Task::once(move || {
        Box::pin(async move {
            let outcome = async {
                let start = |n: u32| async move {
                    start_child("idle", n)
                        .await
                        .map_err(|e| format!("start_child {n}: {e}"))
                };
                let terminate = |id| async move {
                    terminate_child("idle", id)
                        .await
                        .map_err(|e| format!("terminate_child {id}: {e}"))
                };
                for n in 0..CHILD_WARMUP as u32 {
                    let id = start(n).await?;
                    terminate(id).await?;
                }
                let mut ids = Vec::with_capacity(CHILDREN);
                let mut lat = Vec::with_capacity(CHILDREN);
                let began = Instant::now();
                for n in 0..CHILDREN as u32 {
                    let t = Instant::now();
                    ids.push(start(n).await?);
                    lat.push(ns(t));
                }
                let started = began.elapsed();
                let began = Instant::now();
                for &id in &ids {
                    terminate(id).await?;
                }
                let terminated = began.elapsed();
                let l = latency(&mut lat).ok_or("no start")?;
                Ok(format!(
                    "n={CHILDREN} start_ns={} terminate_ns={} start_p50_ns={} start_p99_ns={}",
                    started.as_nanos(),
                    terminated.as_nanos(),
                    l.p50,
                    l.p99
                ))
            }
            .await;
            finish("start_child", root, outcome);
        })
    });
    Supertree::new()
        .add_supervisor(|s| s.add_dynamic("idle", |_n: u32| Idle))
        .add_supervisor(|s| s.add_worker(client))
}
