//! Processes: forking the process of a run, waiting with timeouts, reading
//! `/proc`, and making sure nothing of a run is left.

use std::collections::{BTreeSet, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, setpgid, ForkResult, Pid};

/// How long the driver sleeps between two looks at shared memory or `/proc`.
pub const STEP: Duration = Duration::from_micros(100);

/// Why a measurement has no value.
#[derive(Debug, Clone)]
pub enum Failure {
    Timeout(String),
    Error(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Timeout(what) => write!(f, "timeout: {what}"),
            Failure::Error(what) => write!(f, "error: {what}"),
        }
    }
}

/// Ends the calling (forked) process at once: no destructors, no atexit
/// handlers, no flushing of buffers inherited from the driver.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` is always safe to call: it ends the process without
    // running destructors or atexit handlers, which is the point here.
    unsafe { nix::libc::_exit(code) }
}

/// A forked process of the driver, in its own process group.
#[derive(Debug)]
pub struct Child {
    pub pid: Pid,
    /// How it ended, once reaped.
    pub status: Option<WaitStatus>,
}

impl Child {
    /// Forks a child that puts itself in its own process group, runs `body`
    /// and `_exit`s with its return value (101 if it panicked).
    pub fn spawn(body: impl FnOnce() -> i32) -> Result<Child, Failure> {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        // SAFETY: the driver is single-threaded (it never spawns a thread), so
        // the child can run any code; the child never returns into the
        // driver's code: it ends with `_exit`, even if `body` panics.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                let _ = setpgid(Pid::from_raw(0), Pid::from_raw(0));
                let code = catch_unwind(AssertUnwindSafe(body)).unwrap_or(101);
                exit_now(code)
            }
            Ok(ForkResult::Parent { child }) => {
                // Also here, so the group exists whoever runs first.
                let _ = setpgid(child, child);
                Ok(Child {
                    pid: child,
                    status: None,
                })
            }
            Err(err) => Err(Failure::Error(format!("fork failed: {err}"))),
        }
    }

    /// Reaps the child if it has ended; whether it has.
    pub fn poll_exit(&mut self) -> bool {
        if self.status.is_some() {
            return true;
        }
        match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => false,
            Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                self.status = Some(status);
                true
            }
            Ok(_) => false,
            Err(Errno::ECHILD) => {
                // Reaped elsewhere (cleanup); it is gone.
                self.status = Some(WaitStatus::Exited(self.pid, -1));
                true
            }
            Err(_) => false,
        }
    }

    /// Sleeps in small steps until `done()`; fails on timeout or if the child
    /// ends first.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut() -> bool,
    ) -> Result<(), Failure> {
        let deadline = Instant::now() + timeout;
        loop {
            if done() {
                return Ok(());
            }
            if self.poll_exit() {
                // One last look: it may have finished just before it ended.
                if done() {
                    return Ok(());
                }
                return Err(Failure::Error(format!(
                    "{what}: the tree process ended first ({:?})",
                    self.status
                )));
            }
            if Instant::now() >= deadline {
                return Err(Failure::Timeout(format!("{what} (after {timeout:?})")));
            }
            std::thread::sleep(STEP);
        }
    }

    /// Sleeps in small steps until the child ended; returns when it was seen
    /// gone, or fails on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<Instant, Failure> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.poll_exit() {
                return Ok(Instant::now());
            }
            if Instant::now() >= deadline {
                return Err(Failure::Timeout(format!(
                    "process {} did not exit within {timeout:?}",
                    self.pid
                )));
            }
            std::thread::sleep(STEP);
        }
    }

    pub fn signal(&self, sig: Signal) {
        if self.status.is_none() {
            let _ = kill(self.pid, sig);
        }
    }

    /// Signals the child's whole process group (its pid).
    pub fn signal_group(&self, sig: Signal) {
        let _ = killpg(self.pid, sig);
    }
}

/// One line of `/proc/PID/stat`.
#[derive(Debug, Clone, Copy)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    pub zombie: bool,
}

/// A snapshot of every process on the machine.
#[derive(Debug, Default)]
pub struct Snapshot {
    procs: HashMap<i32, Proc>,
    children: HashMap<i32, Vec<i32>>,
}

impl Snapshot {
    pub fn take() -> Snapshot {
        let mut snap = Snapshot::default();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return snap;
        };
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            // The process may be gone already: skip it.
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            if let Some(p) = parse_stat(pid, &stat) {
                snap.children.entry(p.ppid).or_default().push(pid);
                snap.procs.insert(pid, p);
            }
        }
        snap
    }

    /// Live (not zombie) children of `pid`.
    pub fn live_children(&self, pid: i32) -> Vec<i32> {
        self.children
            .get(&pid)
            .into_iter()
            .flatten()
            .copied()
            .filter(|c| self.procs.get(c).is_some_and(|p| !p.zombie))
            .collect()
    }

    /// All descendants of `pid` (not `pid` itself), zombies included.
    pub fn descendants(&self, pid: i32) -> Vec<i32> {
        let mut out = Vec::new();
        let mut todo = vec![pid];
        while let Some(p) = todo.pop() {
            for &c in self.children.get(&p).into_iter().flatten() {
                out.push(c);
                todo.push(c);
            }
        }
        out
    }

    /// Live descendants of `pid`.
    pub fn live_descendants(&self, pid: i32) -> Vec<i32> {
        self.descendants(pid)
            .into_iter()
            .filter(|c| self.procs.get(c).is_some_and(|p| !p.zombie))
            .collect()
    }

    /// Live members of process group `pgid`.
    pub fn live_group(&self, pgid: i32) -> Vec<i32> {
        self.procs
            .values()
            .filter(|p| p.pgrp == pgid && !p.zombie)
            .map(|p| p.pid)
            .collect()
    }
}

fn parse_stat(pid: i32, stat: &str) -> Option<Proc> {
    // "pid (comm) S ppid pgrp ...": comm may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some(Proc {
        pid,
        ppid,
        pgrp,
        zombie: state == "Z" || state == "X",
    })
}

/// Proportional set size of `pid` in KiB (`Pss:` of `smaps_rollup`).
pub fn pss_kib(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Processes the run left alive right now: members of its group and any
/// descendant of the driver (orphans come back to the driver, a subreaper).
pub fn leftovers(group: i32) -> usize {
    let snap = Snapshot::take();
    let me = std::process::id() as i32;
    let set: BTreeSet<i32> = snap
        .live_group(group)
        .into_iter()
        .chain(snap.live_descendants(me))
        .collect();
    set.len()
}

/// Kills and reaps everything a run left: its process group, and every
/// descendant of the driver. Returns how many live processes it found in the
/// first pass, or fails if they are not all gone within `timeout`.
pub fn cleanup(group: i32, timeout: Duration) -> Result<usize, Failure> {
    let me = std::process::id() as i32;
    let deadline = Instant::now() + timeout;
    let mut first = None;
    loop {
        let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
        let snap = Snapshot::take();
        let live: BTreeSet<i32> = snap
            .live_group(group)
            .into_iter()
            .chain(snap.live_descendants(me))
            .collect();
        first.get_or_insert(live.len());
        for &pid in &live {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let no_children = reap_all();
        if live.is_empty() && no_children && snap.descendants(me).is_empty() {
            return Ok(first.unwrap_or(0));
        }
        if Instant::now() >= deadline {
            return Err(Failure::Timeout(format!(
                "{} processes of the run still alive after {timeout:?}",
                live.len()
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Reaps every exited child of the driver; whether the driver has no
/// children left at all.
fn reap_all() -> bool {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return false,
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            Err(_) => return true,
        }
    }
}

/// The mappings of `pid` (`/proc/PID/smaps`), each as a name (its path, or
/// `[anon]`, with its permissions and size in KiB) and its `Pss`,
/// `Private_Dirty` and `Private_Clean` in KiB.
pub fn smaps(pid: i32) -> Option<Vec<(String, [u64; 3])>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
    let mut out: Vec<(String, [u64; 3])> = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else {
            continue;
        };
        let field = ["Pss:", "Private_Dirty:", "Private_Clean:"]
            .iter()
            .position(|k| *k == first);
        if let Some(idx) = field {
            if let (Some(last), Some(v)) = (out.last_mut(), fields.next()) {
                last.1[idx] = v.parse().unwrap_or(0);
            }
        } else if first.contains('-') && !first.ends_with(':') {
            // A mapping's header: "start-end perms offset dev inode [path]".
            let (start, end) = first.split_once('-')?;
            let size = u64::from_str_radix(end, 16).ok()? - u64::from_str_radix(start, 16).ok()?;
            let perms = fields.next().unwrap_or("");
            let path = fields.nth(3).unwrap_or("[anon]");
            let path = path.rsplit('/').next().unwrap_or(path);
            out.push((format!("{path} {perms} {}K", size / 1024), [0; 3]));
        }
    }
    Some(out)
}

/// Minor page faults of `pid` since it was forked (`minflt` of
/// `/proc/PID/stat`).
pub fn minflt(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After "(comm)": state ppid pgrp session tty_nr tpgid flags minflt.
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(7)?
        .parse()
        .ok()
}
