//! The driver's side of the trees: re-executing this binary as a figure's
//! tree process (in a process group of its own), reading its `result`
//! lines under a timeout, making sure nothing of it is left, and turning
//! the lines into the figures of one run.

use std::collections::HashMap;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::procs::{self, Failure};
use crate::stats::Series;
use crate::trees::{CHILDREN, PANIC_CALLS, PANIC_EVERY, SENDS};
use crate::{push_ratio, Bench, TREE_VAR};

/// How long a tree process may take, start to exit.
const TIMEOUT: Duration = Duration::from_secs(60);
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(10);
/// The last lines of a tree's stderr kept for a failure's note.
const STDERR_TAIL: usize = 5;

/// The `key=value` fields of every `result <name> ...` line of a run, by
/// `name`.
#[derive(Debug, Default)]
pub struct Output {
    results: HashMap<String, HashMap<String, String>>,
}

impl Output {
    /// Field `key` of the `result <name>` line, as a number.
    pub fn get(&self, name: &str, key: &str) -> Result<f64, Failure> {
        let line = self
            .results
            .get(name)
            .ok_or_else(|| Failure::Error(format!("no `result {name}` line")))?;
        line.get(key)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Failure::Error(format!("`result {name}` has no number {key}")))
    }

    pub fn text(&self, name: &str, key: &str) -> Option<&str> {
        self.results.get(name)?.get(key).map(String::as_str)
    }
}

/// Runs the tree of `figure` in a re-executed copy of this binary, until it
/// exits (at most [`TIMEOUT`]); its `result` lines.
fn run_tree(b: &mut Bench, figure: &str) -> Result<Output, Failure> {
    let exe = std::env::current_exe().expect("the path of the bench binary");
    let mut child = Command::new(exe)
        .env(TREE_VAR, figure)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Failure::Error(format!("{figure}: could not start the tree process: {e}")))?;
    let pid = child.id() as i32;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let deadline = Instant::now() + TIMEOUT;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let (mut out_open, mut err_open) = (true, true);
    let mut buf = [0u8; 8192];
    let mut timed_out = false;
    // Every process of the tree holds the pipes: both ends once all are gone.
    while out_open || err_open {
        if Instant::now() >= deadline {
            timed_out = true;
            break;
        }
        let mut fds = Vec::new();
        if out_open {
            fds.push(PollFd::new(stdout.as_fd(), PollFlags::POLLIN));
        }
        if err_open {
            fds.push(PollFd::new(stderr.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(Failure::Error(format!("{figure}: poll failed: {e}"))),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|fd| fd.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        let mut i = 0;
        if out_open {
            if ready[i] {
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => out_open = false,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                }
            }
            i += 1;
        }
        if err_open && ready[i] {
            match stderr.read(&mut buf) {
                Ok(0) | Err(_) => err_open = false,
                Ok(n) => err.extend_from_slice(&buf[..n]),
            }
        }
    }
    // The root exits last of the tree; give it a moment after the pipes.
    let mut exited = None;
    while !timed_out {
        match child.try_wait() {
            Ok(Some(status)) => {
                exited = Some(status);
                break;
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(procs::STEP),
            Ok(None) => timed_out = true,
            Err(e) => {
                b.note(format!("{figure}: waiting for the tree process: {e}"));
                break;
            }
        }
    }
    if exited.is_some() {
        let left = procs::leftovers(pid);
        if left > 0 {
            b.note(format!(
                "{figure}: {left} processes of the tree left after its root exited"
            ));
        }
    } else {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    if let Err(f) = procs::cleanup(pid, CLEANUP_TIMEOUT) {
        b.note(format!("{figure}: cleanup failed: {f}"));
    }
    let text = String::from_utf8_lossy(&out);
    let tail = || {
        let err = String::from_utf8_lossy(&err);
        let lines: Vec<&str> = err.lines().collect();
        match lines[lines.len().saturating_sub(STDERR_TAIL)..].join(" | ") {
            tail if tail.is_empty() => String::new(),
            tail => format!(" [stderr: {tail}]"),
        }
    };
    // `error <figure> <what>`
    if let Some(error) = text.lines().find_map(|l| l.strip_prefix("error ")) {
        let what = error.split_once(' ').map_or(error, |(_, what)| what);
        return Err(Failure::Error(format!("{what}{}", tail())));
    }
    if timed_out {
        return Err(Failure::Timeout(format!(
            "the tree did not end within {TIMEOUT:?} [stdout: {:?}]{}",
            text.trim(),
            tail()
        )));
    }
    if !exited.is_some_and(|s| s.success()) {
        b.note(format!("{figure}: the tree process exited with {exited:?}"));
    }
    let mut output = Output::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("result") {
            continue;
        }
        let Some(name) = words.next() else { continue };
        let fields = words
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        output.results.insert(name.to_owned(), fields);
    }
    Ok(output)
}

/// Pushes one value into each series, or the same failure into all.
fn push_all(pairs: &mut [(&mut Series, Result<f64, Failure>)]) {
    let failure = pairs.iter().find_map(|(_, r)| r.as_ref().err().cloned());
    for (series, r) in pairs.iter_mut() {
        series.push(match &failure {
            Some(f) => Err(f.clone()),
            None => r.clone(),
        });
    }
}

fn say(figure: &str, what: Result<String, &Failure>) {
    match what {
        Ok(s) => eprintln!("  {figure}: {s}"),
        Err(f) => eprintln!("  {figure}: {f}"),
    }
}

impl Bench {
    /// One run of `call`; its ratios to this round's floor.
    pub fn call_run(&mut self, floor_p50: &Result<f64, Failure>, floor_p99: &Result<f64, Failure>) {
        let got = run_tree(self, "call");
        let (p50, p99) = match &got {
            Ok(o) => (
                o.get("call", "p50_ns").map(|v| v / 1e3),
                o.get("call", "p99_ns").map(|v| v / 1e3),
            ),
            Err(f) => (Err(f.clone()), Err(f.clone())),
        };
        say(
            "call",
            match (&p50, &p99) {
                (Ok(a), Ok(b)) => Ok(format!("p50 {a:.2} µs, p99 {b:.2} µs")),
                (Err(f), _) | (_, Err(f)) => Err(f),
            },
        );
        push_ratio(&mut self.r.call_p50_ratio, &p50, floor_p50);
        push_ratio(&mut self.r.call_p99_ratio, &p99, floor_p99);
        push_all(&mut [(&mut self.r.call_p50, p50), (&mut self.r.call_p99, p99)]);
    }

    /// One run of `send`; its ratio to this round's floor.
    pub fn send_run(&mut self, floor_rate: &Result<f64, Failure>) {
        let rate = run_tree(self, "send").and_then(|o| {
            let first = o.get("send", "first_ns")?;
            let last = o.get("send-server", "last_ns")?;
            if last <= first {
                return Err(Failure::Error(format!("send: last {last} ≤ first {first}")));
            }
            Ok(SENDS as f64 / ((last - first) / 1e9))
        });
        say("send", rate.as_ref().map(|r| format!("{r:.0} messages/s")));
        push_ratio(&mut self.r.send_ratio, &rate, floor_rate);
        self.r.send_rate.push(rate);
    }

    /// One run of `panics`.
    pub fn panics_run(&mut self) {
        let got = run_tree(self, "panics");
        let field = |k: &str| {
            got.as_ref()
                .map_err(Clone::clone)
                .and_then(|o| o.get("panics", k))
        };
        let (fmax, fmed, rmax, rmed) = (
            field("failed_max"),
            field("failed_median"),
            field("recovery_max_ns").map(|v| v / 1e6),
            field("recovery_median_ns").map(|v| v / 1e6),
        );
        if let Ok(o) = &got {
            let panics = o.get("panics", "panics").map_or(0, |v| v as usize);
            let expected = (PANIC_CALLS / PANIC_EVERY) as usize;
            if panics != expected {
                self.note(format!(
                    "panics: {panics} panics seen in a run, {expected} expected"
                ));
            }
            self.r.panic_counts.push(panics);
            if let Some(kinds) = o.text("panics", "errors").filter(|k| *k != "NoReply") {
                self.note(format!("panics: failed calls ended with {kinds}"));
            }
        }
        say(
            "panics",
            match (&fmax, &rmax, &rmed) {
                (Ok(f), Ok(m), Ok(d)) => Ok(format!(
                    "at most {f} failed calls per panic; recovery max {m:.3} ms, median {d:.3} ms"
                )),
                (Err(f), _, _) | (_, Err(f), _) | (_, _, Err(f)) => Err(f),
            },
        );
        push_all(&mut [
            (&mut self.r.panic_failed_max, fmax),
            (&mut self.r.panic_failed_median, fmed),
            (&mut self.r.panic_recovery_max, rmax),
            (&mut self.r.panic_recovery_median, rmed),
        ]);
    }

    /// One run of `start_child`.
    pub fn start_child_run(&mut self) {
        let got = run_tree(self, "start_child");
        let field = |k: &str| {
            got.as_ref()
                .map_err(Clone::clone)
                .and_then(|o| o.get("start_child", k))
        };
        let rate = |ns: Result<f64, Failure>| ns.map(|ns| CHILDREN as f64 / (ns / 1e9));
        let (start, term) = (rate(field("start_ns")), rate(field("terminate_ns")));
        let (p50, p99) = (
            field("start_p50_ns").map(|v| v / 1e3),
            field("start_p99_ns").map(|v| v / 1e3),
        );
        say(
            "start_child",
            match (&start, &term) {
                (Ok(s), Ok(t)) => Ok(format!("{s:.0} starts/s, {t:.0} terminations/s")),
                (Err(f), _) | (_, Err(f)) => Err(f),
            },
        );
        push_all(&mut [
            (&mut self.r.start_rate, start),
            (&mut self.r.terminate_rate, term),
            (&mut self.r.start_p50, p50),
            (&mut self.r.start_p99, p99),
        ]);
    }
}
