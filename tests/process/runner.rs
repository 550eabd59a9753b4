//! The runner: child processes, their output, their process groups.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{kill, Signal};
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
        for (e, _, _) in EXAMPLES {
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
        let cmd = match s.command {
            Some(command) => command(&exe),
            None => {
                let mut cmd = Command::new(&exe);
                cmd.env(SCENARIO_VAR, s.name);
                cmd
            }
        };
        tally(run_case(s.name, cmd, s.drive, s.timeout, true));
    }
    let examples_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples"));
    for &(example, drive, timeout_secs) in EXAMPLES {
        let name = format!("example_{example}");
        if !selected(&name) {
            continue;
        }
        let path: Option<PathBuf> = examples_dir.as_ref().map(|d| d.join(example));
        match path.filter(|p| p.is_file()) {
            Some(path) => {
                let mut cmd = Command::new(path);
                // The echo and metrics examples listen on a port of the
                // system's choice.
                cmd.env_remove(SCENARIO_VAR)
                    .env("ECHO_ADDR", "127.0.0.1:0")
                    .env("METRICS_ADDR", "127.0.0.1:0");
                tally(run_case(
                    &name,
                    cmd,
                    drive,
                    Duration::from_secs(timeout_secs),
                    false,
                ));
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
fn run_case(name: &str, cmd: Command, drive: Drive, timeout: Duration, is_scenario: bool) -> bool {
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
    // resource_limits makes TokioSpawner::block_on panic on purpose, and
    // the kv example crashes its server to show what a restart keeps.
    // The metrics example has a worker panic every five seconds.
    if !name.starts_with("panic_")
        && !["resource_limits", "example_kv", "example_metrics_http"].contains(&name)
    {
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
    /// The session: a scenario's root leads one, and every process of its
    /// tree stays in it (worker hosts lead process groups of their own).
    pub(crate) session: i32,
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
            session: rest.get(3)?.parse().ok()?,
            threads: rest.get(17)?.parse().ok()?,
        })
    }

    /// Every process of the session `session`.
    fn group(session: i32) -> Vec<Proc> {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter_map(Proc::read)
            .filter(|p| p.session == session)
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
            .stderr(Stdio::piped());
        // A session (and process group) of its own: its tree's processes
        // are found (and killed) by session, since worker hosts lead
        // process groups of their own.
        #[allow(unsafe_code)]
        // SAFETY: `setsid` is async-signal-safe, and the closure touches
        // nothing else between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()
                    .map(drop)
                    .map_err(std::io::Error::from)
            });
        }
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
                self.kill_session();
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
            !(orphan_zombie && waitpid(Pid::from_raw(p.pid), Some(WaitPidFlag::WNOHANG)).is_ok())
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

    /// SIGKILLs every process of the scenario's session.
    fn kill_session(&self) {
        for proc in Proc::group(self.pid) {
            let _ = kill(Pid::from_raw(proc.pid), Signal::SIGKILL);
        }
    }

    /// Kills whatever is left of the group and reaps it.
    fn clean_up(&mut self) {
        self.kill_session();
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

fn read_lines(stream: impl Read + Send + 'static, into: Arc<Mutex<Vec<String>>>) -> JoinHandle<()> {
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
