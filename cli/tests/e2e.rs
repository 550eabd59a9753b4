//! End-to-end tests of the `supertrees` command against a real tree.
//!
//! A `harness = false` test, and one binary plays two parts, as
//! `tests/process` does: with `SUPERTREES_E2E_TREE=<socket>` it is the
//! tree (a single-threaded `main` that calls `start()`, so that the root
//! may fork); without, it starts that tree as a child process and runs the
//! real `supertrees` binary (`CARGO_BIN_EXE_supertrees`) against it,
//! checking exit codes and output. `top` runs in a real terminal, a
//! detached tmux session (`tmux new-session -d -x 120 -y 40`), read with
//! `tmux capture-pane -p`; without tmux those checks are skipped, and the
//! summary says so.
//!
//! Each check passes, fails, or is *pending*: a request this tree does not
//! serve yet (`error: ... is not served by this tree yet`) makes the checks
//! that need it pending, with the tree's answer, instead of passing; once
//! the tree serves it they run. `status --json`,
//! `probe ready`, `watch` and `top` also run against a fake status server
//! of this test's own (`Fake`), which can send any event and go away and
//! come back. The run ends with `N passed, N failed, N skipped` (pending
//! and skipped checks counted as skipped), and fails if any check failed.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The variable that makes this binary the tree, serving this socket.
const TREE_VAR: &str = "SUPERTREES_E2E_TREE";

/// The tree: `root/0` a worker, `root/1` a supervisor of two workers,
/// `root/api` a named supervisor of the named worker `root/api/web`.
fn tree(socket: &Path) {
    use supertrees::{BoxFuture, Restartable, Supertree, Worker};

    /// Runs until asked to stop.
    struct Polite;
    impl Worker for Polite {
        fn init(&self) -> BoxFuture {
            Box::pin(supertrees::stopping())
        }
    }
    impl Restartable for Polite {}

    /// Runs until asked to stop, then takes 1 s to stop: the tree's
    /// shutdown lasts that long.
    struct Slow;
    impl Worker for Slow {
        fn init(&self) -> BoxFuture {
            Box::pin(async {
                supertrees::stopping().await;
                std::thread::sleep(Duration::from_secs(1));
            })
        }
    }
    impl Restartable for Slow {}

    // Three restarts a minute at the root: an operator's five must not
    // count.
    let result = Supertree::new()
        .with_intensity(supertrees::Intensity::new(3, Duration::from_secs(60)))
        .add_worker(Polite)
        .add_supervisor(|s| s.add_worker(Polite).add_worker(Polite))
        .add_supervisor(|s| {
            s.with_name("api")
                .with_strategy(supertrees::Strategy::OneForAll)
                .add_named_worker("web", Polite)
                .add_named_worker("cache", Polite)
        })
        .add_named_worker("slow", Slow)
        .status_socket(socket)
        .on_ready(|_| println!("tree-ready"))
        .start();
    println!("returned {result:?}");
}

fn main() {
    if let Some(socket) = std::env::var_os(TREE_VAR) {
        tree(Path::new(&socket));
        return;
    }
    // The processes tmux leaves behind (its server, the shells of its
    // sessions) come back to this process when they lose theirs, to be
    // reaped here (see `reap`), not left as zombies.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let mut run = Run::default();
    let dir = std::env::temp_dir().join(format!("supertrees-cli-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let socket = dir.join("status.sock");
    match Tree::start(&socket) {
        Ok(mut tree) => {
            checks(&mut run, &socket, &dir, &mut tree);
            let watching = match not_served(&socket, &["watch"]) {
                None => command(&["watch", "--socket", socket.to_str().unwrap_or_default()])
                    .stdout(Stdio::null())
                    .spawn()
                    .ok(),
                Some(answer) => {
                    run.skip(
                        "watch ends with exit 0 when the tree stops",
                        &format!("pending: {answer}"),
                    );
                    None
                }
            };
            // The stream is open once the command runs a moment.
            std::thread::sleep(Duration::from_millis(300));
            // While it stops (root/slow takes 1 s), a command is refused.
            let _ = kill(tree.pid(), Signal::SIGTERM);
            std::thread::sleep(Duration::from_millis(300));
            run.check(
                "a command while the tree shuts down: exit 1, shutting down",
                expect(
                    st(&socket, &["restart", "root/0"]),
                    1,
                    "",
                    "supertrees: shutting down: root/0\n",
                )
                .map(drop),
            );
            tree.stop(&mut run);
            if let Some(mut watch) = watching {
                run.check(
                    "watch ends with exit 0 when the tree stops",
                    match wait_exit(&mut watch, Duration::from_secs(10)) {
                        Ok(0) => Ok(()),
                        other => Err(format!("{other:?}")),
                    },
                );
            }
        }
        Err(why) => run.fail("the tree starts", why),
    }
    let _ = std::fs::remove_dir_all(&dir);
    reap();
    println!(
        "\n{} passed, {} failed, {} skipped",
        run.passed, run.failed, run.skipped
    );
    std::process::exit(i32::from(run.failed > 0));
}

/// Reaps every child that is left (at most 5 s for those still ending).
fn reap() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) if Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// The results so far.
#[derive(Default)]
struct Run {
    passed: usize,
    failed: usize,
    skipped: usize,
}

impl Run {
    fn check(&mut self, name: &str, result: Result<(), String>) {
        match result {
            Ok(()) => self.pass(name),
            Err(why) => self.fail(name, why),
        }
    }

    fn pass(&mut self, name: &str) {
        println!("ok       {name}");
        self.passed += 1;
    }

    fn fail(&mut self, name: &str, why: String) {
        println!("FAILED   {name}: {why}");
        self.failed += 1;
    }

    /// A check that can not run here (no tmux), or not yet (a request the
    /// tree does not serve yet): said, never passed.
    fn skip(&mut self, name: &str, why: &str) {
        println!("skipped  {name}: {why}");
        self.skipped += 1;
    }
}

/// The tree, a child process of this one.
struct Tree {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Tree {
    fn start(socket: &Path) -> Result<Tree, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .env(TREE_VAR, socket)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawn the tree: {e}"))?;
        let out = child.stdout.take().ok_or("no stdout")?;
        let (tell, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tell.send(line).is_err() {
                    return;
                }
            }
        });
        let mut tree = Tree { child, lines };
        tree.wait_line("tree-ready", Duration::from_secs(20))?;
        Ok(tree)
    }

    fn wait_line(&mut self, want: &str, within: Duration) -> Result<String, String> {
        let until = Instant::now() + within;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(want) => return Ok(line),
                Ok(_) => {}
                Err(_) => return Err(format!("no line `{want}` from the tree within {within:?}")),
            }
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX))
    }

    /// SIGTERM, and `start()` returns Ok.
    fn stop(mut self, run: &mut Run) {
        let _ = kill(self.pid(), Signal::SIGTERM);
        let returned = self.wait_line("returned", Duration::from_secs(20));
        let exited = wait_exit(&mut self.child, Duration::from_secs(10));
        run.check(
            "the tree stops on SIGTERM",
            match (returned, exited) {
                (Ok(line), Ok(_)) if line == "returned Ok(())" => Ok(()),
                (returned, exited) => Err(format!("{returned:?}, {exited:?}")),
            },
        );
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = kill(self.pid(), Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

fn wait_exit(child: &mut Child, within: Duration) -> Result<i32, String> {
    let until = Instant::now() + within;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.code().ok_or(format!("killed: {status}")),
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("still running after {within:?}"));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// What a run of `supertrees` came to.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// The `supertrees` command, with no `SUPERTREES_SOCKET` unless given.
fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_supertrees"));
    command.args(args).env_remove("SUPERTREES_SOCKET");
    command
}

/// Runs `command` to its end (at most a minute).
fn output(mut command: Command) -> Result<Out, String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn supertrees: {e}"))?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let mut stderr = child.stderr.take().ok_or("no stderr")?;
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let code = wait_exit(&mut child, Duration::from_secs(60))?;
    Ok(Out {
        code,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// `supertrees --socket SOCKET ARGS...`.
fn st(socket: &Path, args: &[&str]) -> Result<Out, String> {
    let mut command = command(args);
    command.arg("--socket").arg(socket);
    output(command)
}

/// `out` exited `code` and its stdout (or stderr) holds `want`.
fn expect(out: Result<Out, String>, code: i32, stdout: &str, stderr: &str) -> Result<Out, String> {
    let out = out?;
    if out.code != code || !out.stdout.contains(stdout) || !out.stderr.contains(stderr) {
        return Err(format!(
            "want exit {code}, stdout with {stdout:?}, stderr with {stderr:?}; got {out:?}"
        ));
    }
    Ok(out)
}

/// `top` in a terminal too small says so, and draws its table again once
/// the terminal is larger.
fn small_terminal(tmux: &Tmux) -> Result<(), String> {
    tmux.run(&["resize-window", "-t", "top", "-x", "30", "-y", "6"])?;
    tmux.wait_for(&["terminal too small"], Duration::from_secs(5))?;
    tmux.run(&["resize-window", "-t", "top", "-x", "60", "-y", "20"])?;
    tmux.wait_for(&["root/1/0", "STATE"], Duration::from_secs(5))
        .map(drop)
}

/// `q` ends `top` with exit 0 and restores the screen: `table` (a word of
/// its table) is gone.
fn quits_on_q(tmux: &Tmux, table: &str) -> Result<(), String> {
    tmux.run(&["send-keys", "-t", "top", "q"])?;
    let screen = tmux.wait_for(&["top exited 0"], Duration::from_secs(5))?;
    if screen.contains(table) {
        return Err(format!(
            "the table is still on the screen after q:\n{screen}"
        ));
    }
    Ok(())
}

/// The tree's `status json`, read with the command.
fn status_doc(socket: &Path) -> Result<serde_json::Value, String> {
    let out = expect(st(socket, &["status", "--json"]), 0, "\"schema\"", "")?;
    serde_json::from_str(&out.stdout).map_err(|e| e.to_string())
}

/// The node at `path` of a `status json` document (`Null` if none).
fn node<'a>(doc: &'a serde_json::Value, path: &str) -> &'a serde_json::Value {
    doc["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["path"] == path))
        .unwrap_or(&serde_json::Value::Null)
}

/// `root/api/cache` stopped, then its group restarted (its worker host
/// SIGKILLed under `OneForAll`): `web` comes back, `cache` stays down
/// until `start`; a second stop or start is refused (exit 1).
fn held_through_the_group(socket: &Path) -> Result<(), String> {
    expect(
        st(socket, &["stop", "root/api/cache"]),
        0,
        "ok stopped root/api/cache\n",
        "",
    )?;
    expect(
        st(socket, &["stop", "root/api/cache"]),
        1,
        "",
        "supertrees: already stopped: root/api/cache\n",
    )?;
    let doc = status_doc(socket)?;
    let web_restarts = node(&doc, "root/api/web")["restarts"].as_u64().unwrap_or(0);
    let host = node(&doc, "root/api/host")["pid"]
        .as_i64()
        .and_then(|p| i32::try_from(p).ok())
        .ok_or_else(|| format!("no pid of root/api/host in {doc}"))?;
    kill(Pid::from_raw(host), Signal::SIGKILL).map_err(|e| e.to_string())?;
    eventually(Duration::from_secs(10), || {
        let doc = status_doc(socket)?;
        let (web, cache) = (node(&doc, "root/api/web"), node(&doc, "root/api/cache"));
        let back = web["state"] == "ready"
            && web["restarts"].as_u64().unwrap_or(0) > web_restarts
            && node(&doc, "root/api/host")["pid"].as_i64() != Some(i64::from(host));
        if back && cache["state"] == "stopped" && cache["wanted"] == "down" {
            Ok(())
        } else {
            Err(format!("web {web}, cache {cache}"))
        }
    })?;
    expect(
        st(socket, &["start", "root/api/cache"]),
        0,
        "ok started root/api/cache\n",
        "",
    )?;
    expect(
        st(socket, &["start", "root/api/cache"]),
        1,
        "",
        "supertrees: already running: root/api/cache\n",
    )?;
    eventually(Duration::from_secs(10), || {
        let doc = status_doc(socket)?;
        let cache = node(&doc, "root/api/cache");
        if cache["state"] == "ready" && cache["wanted"] == "up" {
            Ok(())
        } else {
            Err(format!("cache {cache}"))
        }
    })
    .map(drop)
}

/// The pid that the text status shows for the node at `path`.
fn pid_of(status: &str, path: &str) -> Option<u32> {
    let line = status
        .lines()
        .find(|l| l.split_whitespace().any(|w| w == path) && !l.contains(&format!("{path}/")))?;
    let rest = line.split_once(" pid ")?.1;
    rest.split_whitespace().next()?.parse().ok()
}

/// Waits until `check` passes (every 50 ms, for at most `within`).
fn eventually<T>(
    within: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let until = Instant::now() + within;
    loop {
        match check() {
            Ok(t) => return Ok(t),
            Err(why) if Instant::now() >= until => return Err(why),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The tree's answer when it does not serve `request` yet, if so.
fn not_served(socket: &Path, args: &[&str]) -> Option<String> {
    let out = st(socket, args).ok()?;
    (out.code == 1 && out.stderr.contains("not served by this tree yet"))
        .then(|| out.stderr.trim().to_owned())
}

fn checks(run: &mut Run, socket: &Path, dir: &Path, tree: &mut Tree) {
    let socket_arg = socket.to_str().unwrap_or_default().to_owned();
    let missing = dir.join("missing.sock");

    run.check(
        "status prints the tree",
        expect(st(socket, &["status"]), 0, "root/1/0  worker  pid", "").map(drop),
    );
    run.check(
        "$SUPERTREES_SOCKET names the socket; --socket wins over it",
        (|| {
            let mut by_env = command(&["status"]);
            by_env.env("SUPERTREES_SOCKET", socket);
            expect(output(by_env), 0, "root/1  supervisor", "")?;
            let mut both = command(&["status", "--socket", &socket_arg]);
            both.env("SUPERTREES_SOCKET", &missing);
            expect(output(both), 0, "root/1  supervisor", "").map(drop)
        })(),
    );
    run.check(
        "restart of a worker: exit 0, restarted, a new run in the status",
        (|| {
            let out = expect(
                st(socket, &["restart", "root/1/0"]),
                0,
                "restarted root/1/0\n",
                "",
            )?;
            if out.stdout != "ok restarted root/1/0\n" {
                return Err(format!("stdout {:?}", out.stdout));
            }
            eventually(Duration::from_secs(10), || {
                let status = st(socket, &["status"])?.stdout;
                let line = status
                    .lines()
                    .find(|l| l.contains("root/1/0  worker"))
                    .ok_or(format!("no root/1/0 in {status}"))?;
                if line.contains("restarts 1") && line.contains("ready") {
                    Ok(())
                } else {
                    Err(format!("root/1/0 after its restart: {line}"))
                }
            })
        })(),
    );
    run.check(
        "restart of a supervisor: exit 0, new pids in the status",
        (|| {
            let before = st(socket, &["status"])?.stdout;
            let old = pid_of(&before, "root/1").ok_or(format!("no pid of root/1 in {before}"))?;
            expect(
                st(socket, &["restart", "root/1"]),
                0,
                "restarted root/1\n",
                "",
            )?;
            eventually(Duration::from_secs(10), || {
                let status = st(socket, &["status"])?.stdout;
                match (pid_of(&status, "root/1"), pid_of(&status, "root/1/0")) {
                    (Some(new), Some(_)) if new != old && status.contains("root/1/1  worker") => {
                        Ok(())
                    }
                    _ => Err(format!("root/1 was pid {old}; now:\n{status}")),
                }
            })
        })(),
    );
    run.check(
        "stop and start of a named node: root/api/web",
        (|| {
            expect(
                st(socket, &["stop", "root/api/web"]),
                0,
                "ok stopped root/api/web\n",
                "",
            )?;
            expect(
                st(socket, &["start", "root/api/web"]),
                0,
                "ok started root/api/web\n",
                "",
            )?;
            expect(
                st(socket, &["restart", "root/api"]),
                0,
                "ok restarted root/api\n",
                "",
            )
            .map(drop)
        })(),
    );
    run.check(
        "restart root/9: exit 1, not found",
        expect(
            st(socket, &["restart", "root/9"]),
            1,
            "",
            "supertrees: not found: root/9\n",
        )
        .map(drop),
    );
    run.check(
        "a path that is none: exit 100, refused before sending",
        (|| {
            for bad in ["1/0", "root", "root//1", "root/a b"] {
                expect(
                    st(socket, &["restart", bad]),
                    100,
                    "",
                    "supertrees: invalid value",
                )?;
            }
            // Refused with no socket either: nothing is sent.
            expect(
                st(&missing, &["stop", "root/"]),
                100,
                "",
                "a segment is empty",
            )
            .map(drop)
        })(),
    );
    run.check(
        "no socket: exit 111",
        expect(st(&missing, &["status"]), 111, "", "no such socket").map(drop),
    );
    run.check(
        "neither --socket nor $SUPERTREES_SOCKET: exit 100",
        expect(
            output(command(&["status"])),
            100,
            "",
            "give --socket PATH or set SUPERTREES_SOCKET",
        )
        .map(drop),
    );
    run.check(
        "wrong usage exits 100, help 0",
        (|| {
            expect(
                st(socket, &["frobnicate"]),
                100,
                "",
                "supertrees: unrecognized subcommand",
            )?;
            expect(output(command(&[])), 100, "", "Usage: supertrees")?;
            expect(output(command(&["--help"])), 0, "Usage: supertrees", "").map(drop)
        })(),
    );
    run.check(
        "probe live: exit 0",
        expect(st(socket, &["probe", "live"]), 0, "", "").map(drop),
    );
    run.check(
        "probe live on a dead socket: exit 111",
        (|| {
            let stale = dir.join("stale.sock");
            drop(std::os::unix::net::UnixListener::bind(&stale).map_err(|e| e.to_string())?);
            expect(
                st(&stale, &["probe", "live"]),
                111,
                "",
                "nothing is serving it",
            )?;
            expect(st(&missing, &["probe", "live"]), 111, "", "no such socket").map(drop)
        })(),
    );
    run.check(
        "stop and start: exit 0, then 1 when done already",
        (|| {
            expect(
                st(socket, &["stop", "root/1/1"]),
                0,
                "stopped root/1/1\n",
                "",
            )?;
            let status = st(socket, &["status"])?.stdout;
            if !status
                .lines()
                .any(|l| l.contains("root/1/1  worker  stopped"))
            {
                return Err(format!("root/1/1 not stopped:\n{status}"));
            }
            expect(
                st(socket, &["stop", "root/1/1"]),
                1,
                "",
                "supertrees: already stopped: root/1/1\n",
            )?;
            expect(
                st(socket, &["start", "root/1/1"]),
                0,
                "started root/1/1\n",
                "",
            )?;
            expect(
                st(socket, &["start", "root/1/1"]),
                1,
                "",
                "supertrees: already running: root/1/1\n",
            )?;
            eventually(Duration::from_secs(10), || {
                let status = st(socket, &["status"])?.stdout;
                if status
                    .lines()
                    .any(|l| l.contains("root/1/1  worker  pid") && l.contains("ready"))
                {
                    Ok(())
                } else {
                    Err(format!("root/1/1 not back:\n{status}"))
                }
            })
        })(),
    );

    // What needs `status json`, `watch` and `metrics`.
    match not_served(socket, &["status", "--json"]) {
        Some(answer) => {
            for name in [
                "status --json prints the document",
                "probe ready: 0 when ready, held nodes not counted",
            ] {
                run.skip(name, &format!("pending: {answer}"));
            }
            run.check(
                "probe ready on a tree that does not serve status json: exit 1",
                expect(
                    st(socket, &["probe", "ready"]),
                    1,
                    "",
                    "not ready: `status json` is not served",
                )
                .map(drop),
            );
        }
        None => {
            run.check(
                "status --json prints the document",
                (|| {
                    let out = expect(st(socket, &["status", "--json"]), 0, "\"schema\"", "")?;
                    let doc: serde_json::Value =
                        serde_json::from_str(&out.stdout).map_err(|e| e.to_string())?;
                    let paths: Vec<&str> = doc["nodes"]
                        .as_array()
                        .map(|nodes| nodes.iter().filter_map(|n| n["path"].as_str()).collect())
                        .unwrap_or_default();
                    if doc["schema"] == 1 && paths.contains(&"root/1/0") {
                        Ok(())
                    } else {
                        Err(format!("{doc}"))
                    }
                })(),
            );
            run.check(
                "probe ready: 0 when ready, held nodes not counted",
                (|| {
                    eventually(Duration::from_secs(10), || {
                        expect(st(socket, &["probe", "ready"]), 0, "", "")
                    })?;
                    expect(st(socket, &["stop", "root/0"]), 0, "stopped root/0", "")?;
                    let held = st(socket, &["probe", "ready"]);
                    expect(st(socket, &["start", "root/0"]), 0, "started root/0", "")?;
                    expect(held, 0, "", "")?;
                    eventually(Duration::from_secs(10), || {
                        expect(st(socket, &["probe", "ready"]), 0, "", "")
                    })
                    .map(drop)
                })(),
            );
        }
    }
    run.check(
        "metrics prints the Prometheus text",
        (|| {
            let out = expect(
                st(socket, &["metrics"]),
                0,
                "# TYPE supertrees_child_up gauge",
                "",
            )?;
            let series = r#"supertrees_child_up{path="root/1/0"} 1"#;
            if out.stdout.lines().any(|l| l == series) {
                Ok(())
            } else {
                Err(format!("no `{series}` in:\n{}", out.stdout))
            }
        })(),
    );
    let watch_pending = not_served(socket, &["watch"]);
    match &watch_pending {
        Some(answer) => {
            run.skip(
                "watch prints events as they happen",
                &format!("pending: {answer}"),
            );
            run.skip(
                "watch --json prints the JSON lines",
                &format!("pending: {answer}"),
            );
        }
        None => {
            run.check("watch prints events as they happen", watch(socket, false));
            run.check("watch --json prints the JSON lines", watch(socket, true));
        }
    }
    run.check(
        "a stop survives a OneForAll restart of its group, until start",
        held_through_the_group(socket),
    );
    run.check(
        "five operator's restarts under a root intensity of 3 in 60 s: the root runs on",
        (|| {
            for _ in 0..5 {
                expect(
                    st(socket, &["restart", "root/0"]),
                    0,
                    "ok restarted root/0\n",
                    "",
                )?;
            }
            eventually(Duration::from_secs(10), || {
                expect(st(socket, &["probe", "ready"]), 0, "", "")
            })?;
            let doc = status_doc(socket)?;
            match node(&doc, "root/0")["restarts"].as_u64() {
                Some(n) if n >= 5 => Ok(()),
                other => Err(format!("root/0 restarts: {other:?}")),
            }
        })(),
    );
    run.check(
        "the root's own path: exit 100, refused before it is sent",
        expect(st(socket, &["stop", "root"]), 100, "", "the root itself").map(drop),
    );
    top(run, socket, tree);
    commands_on_a_fake(run, dir);
    top_on_a_fake(run, dir);
}

/// `watch` (or `watch --json`) while `root/0` is restarted: a line about
/// it comes.
fn watch(socket: &Path, json: bool) -> Result<(), String> {
    let mut args = vec!["watch"];
    if json {
        args.push("--json");
    }
    let mut child = command(&args)
        .arg("--socket")
        .arg(socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let (tell, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tell.send(line);
        }
    });
    // The stream is open once the command runs a moment.
    std::thread::sleep(Duration::from_millis(300));
    let restarted = expect(
        st(socket, &["restart", "root/0"]),
        0,
        "restarted root/0",
        "",
    );
    let until = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let found = loop {
        match lines.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                let about = if json {
                    serde_json::from_str::<serde_json::Value>(&line)
                        .map(|v| v["path"] == "root/0" && v["kind"] == "started")
                        .unwrap_or(false)
                } else {
                    line.contains(" root/0 (pid ") && line.contains("worker started")
                };
                seen.push(line);
                if about {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    restarted?;
    if found {
        Ok(())
    } else {
        Err(format!("no start of root/0 in {seen:?}"))
    }
}

/// tmux on a server of this test's own.
struct Tmux {
    server: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.server)
            .args(args)
            .output()
            .map_err(|e| format!("tmux: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "tmux {args:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    fn screen(&self) -> Result<String, String> {
        self.run(&["capture-pane", "-p", "-t", "top"])
    }

    /// Waits until the screen holds every one of `want`.
    fn wait_for(&self, want: &[&str], within: Duration) -> Result<String, String> {
        eventually(within, || {
            let screen = self.screen()?;
            match want.iter().find(|w| !screen.contains(**w)) {
                None => Ok(screen.clone()),
                Some(missing) => Err(format!("no {missing:?} on the screen:\n{screen}")),
            }
        })
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// `top` in a real terminal: the nodes, a restart seen live, a small
/// terminal, `q` restoring the terminal.
fn top(run: &mut Run, socket: &Path, tree: &mut Tree) {
    let names = [
        "top shows the nodes and their state",
        "top follows a restart live",
        "top in a small terminal",
        "top quits on q and restores the terminal",
    ];
    if !Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        for name in names {
            run.skip(name, "tmux is not installed");
        }
        return;
    }
    let tmux = Tmux {
        server: format!("supertrees-e2e-{}", std::process::id()),
    };
    let shell = format!(
        "{} top --socket {}; echo \"top exited $?\"; sleep 60",
        env!("CARGO_BIN_EXE_supertrees"),
        socket.display()
    );
    if let Err(why) = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "120",
        "-y",
        "40",
        &shell,
    ]) {
        run.fail("tmux starts top", why);
        return;
    }
    if let Some(answer) = not_served(socket, &["status", "--json"]) {
        // Until the tree serves `status json`, top refuses to start, as
        // any command the tree refuses: exit 1, with the tree's answer.
        run.check(
            "top on a tree that does not serve status json: exit 1",
            tmux.wait_for(
                &["not served by this tree yet", "top exited 1"],
                Duration::from_secs(10),
            )
            .map(drop),
        );
        for name in names {
            run.skip(name, &format!("pending: {answer}"));
        }
        return;
    }
    run.check(
        names[0],
        tmux.wait_for(
            &[
                "supertrees top",
                "PATH",
                "root/1/0",
                "root/1/host",
                "ready",
                "running",
                "events",
            ],
            Duration::from_secs(10),
        )
        .map(drop),
    );
    run.check(
        names[1],
        (|| {
            let _ = tree;
            expect(
                st(socket, &["restart", "root/1"]),
                0,
                "restarted root/1",
                "",
            )?;
            tmux.wait_for(
                &["root/1 (pid", "supervisor started"],
                Duration::from_secs(10),
            )
            .map(drop)
        })(),
    );
    run.check(names[2], small_terminal(&tmux));
    run.check(names[3], quits_on_q(&tmux, "PATH"));
}

/// A status server of this test's own that serves `status json` and
/// `watch` as the documented protocol says, so that `top` is tested
/// whatever the tree serves yet: events sent on demand, and a tree that
/// goes away and comes back.
struct Fake {
    socket: std::path::PathBuf,
    state: std::sync::Arc<std::sync::Mutex<FakeState>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct FakeState {
    doc: String,
    watchers: Vec<std::os::unix::net::UnixStream>,
}

const FAKE_DOC: &str = r#"{"schema": 1, "generation": 3, "dropped": 0, "nodes": [
 {"path": "root", "kind": "supervisor", "pid": 500, "state": "ready", "wanted": "up", "restarts": 0, "last_exit": null, "up_ms": 65000},
 {"path": "root/host", "kind": "host", "pid": 501, "state": "running", "wanted": "up", "restarts": 0, "last_exit": null, "up_ms": 64000},
 {"path": "root/0", "kind": "worker", "pid": 501, "state": "ready", "wanted": "up", "restarts": 0, "last_exit": null, "up_ms": 64000},
 {"path": "root/1", "kind": "supervisor", "pid": 502, "state": "ready", "wanted": "up", "restarts": 0, "last_exit": null, "up_ms": 63000,
  "limits": {"memory": 67108864, "processes": null, "open_files": null, "cpu": null}, "memory_bytes": 12582912, "process_count": 2, "oom_kills": 0},
 {"path": "root/1/host", "kind": "host", "pid": 503, "state": "running", "wanted": "up", "restarts": 0, "last_exit": null, "up_ms": 62000},
 {"path": "root/1/0", "kind": "worker", "pid": 503, "state": "ready", "wanted": "up", "restarts": 4, "last_exit": {"exit": "panicked", "reason": "boom"}, "up_ms": 1000}
]}"#;

impl Fake {
    fn serve(socket: &Path) -> Result<Fake, String> {
        use std::io::Write;
        use std::sync::atomic::Ordering;
        let _ = std::fs::remove_file(socket);
        let listener = std::os::unix::net::UnixListener::bind(socket).map_err(|e| e.to_string())?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let state = std::sync::Arc::new(std::sync::Mutex::new(FakeState {
            doc: FAKE_DOC.to_owned(),
            watchers: Vec::new(),
        }));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (shared, stopping) = (std::sync::Arc::clone(&state), std::sync::Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut line = String::new();
                let Ok(mut reader) = stream.try_clone().map(BufReader::new) else {
                    continue;
                };
                if reader.read_line(&mut line).is_err() || line.is_empty() {
                    continue;
                }
                let Ok(mut state) = shared.lock() else { return };
                let mut stream = stream;
                match line.trim_end() {
                    "status json" => {
                        let _ = stream.write_all(format!("{}\n", state.doc).as_bytes());
                    }
                    "status" => {
                        let _ = stream.write_all(b"root  supervisor  pid 500  ready\n");
                    }
                    "watch" => state.watchers.push(stream),
                    other => {
                        let _ = stream
                            .write_all(format!("error: unknown request `{other}`\n").as_bytes());
                    }
                }
            }
            if let Ok(mut state) = shared.lock() {
                for watcher in state.watchers.drain(..) {
                    let _ = watcher.shutdown(std::net::Shutdown::Both);
                }
            }
        });
        Ok(Fake {
            socket: socket.to_owned(),
            state,
            stop,
            thread: Some(thread),
        })
    }

    /// Sends one event line to every watcher.
    fn event(&self, line: &str) -> Result<usize, String> {
        use std::io::Write;
        let mut state = self.state.lock().map_err(|e| e.to_string())?;
        state
            .watchers
            .retain_mut(|w| w.write_all(format!("{line}\n").as_bytes()).is_ok());
        Ok(state.watchers.len())
    }

    fn set_doc(&self, doc: String) {
        if let Ok(mut state) = self.state.lock() {
            state.doc = doc;
        }
    }

    fn watchers(&self) -> usize {
        self.state.lock().map_or(0, |s| s.watchers.len())
    }

    /// Goes away: the streams end, the socket is gone.
    fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `top` in a real terminal against [`Fake`]: the nodes, an event that
/// changes a node live, the tree going away and coming back, a small
/// terminal, `q`.
fn top_on_a_fake(run: &mut Run, dir: &Path) {
    let names = [
        "top (fake tree): the nodes, memory, live",
        "top (fake tree): an event changes a node and shows in the pane",
        "top (fake tree): disconnected while the tree is gone, live again when it is back",
        "top (fake tree): a small terminal",
        "top (fake tree): q quits and restores the terminal",
    ];
    if !Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        for name in names {
            run.skip(name, "tmux is not installed");
        }
        return;
    }
    let socket = dir.join("fake").join("status.sock");
    if let Err(e) = std::fs::create_dir_all(socket.parent().unwrap_or(dir)) {
        run.fail("the fake's directory", e.to_string());
        return;
    }
    let fake = match Fake::serve(&socket) {
        Ok(fake) => fake,
        Err(why) => return run.fail("the fake tree serves", why),
    };
    let tmux = Tmux {
        server: format!("supertrees-e2e-fake-{}", std::process::id()),
    };
    let shell = format!(
        "SUPERTREES_SOCKET={} {} top; echo \"top exited $?\"; sleep 60",
        socket.display(),
        env!("CARGO_BIN_EXE_supertrees"),
    );
    if let Err(why) = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "120",
        "-y",
        "40",
        &shell,
    ]) {
        return run.fail("tmux starts top", why);
    }
    run.check(
        names[0],
        (|| {
            eventually(Duration::from_secs(10), || {
                if fake.watchers() > 0 {
                    Ok(())
                } else {
                    Err("top never opened watch".to_owned())
                }
            })?;
            tmux.wait_for(
                &[
                    "live",
                    "generation 3",
                    "6 nodes",
                    "root/1/0",
                    "12.0 MiB",
                    "1m5s",
                    "panicked",
                ][..5],
                Duration::from_secs(10),
            )
            .map(drop)
        })(),
    );
    run.check(
        names[1],
        (|| {
            fake.event(r#"{"at": 1765130800123, "path": "root/1", "pid": 502, "kind": "exited", "text": "root/1 (pid 502): killed by signal SIGKILL; restarting after 10ms"}"#)?;
            tmux.wait_for(&["restarting", "18:06:40.123 root/1 (pid 502): killed by signal SIGKILL"], Duration::from_secs(5))?;
            fake.event(r#"{"at": 1765130800200, "path": "root/1", "pid": 602, "kind": "started", "text": "root/1 (pid 602): supervisor started"}"#)?;
            tmux.wait_for(&["602", "supervisor started"], Duration::from_secs(5)).map(drop)
        })(),
    );
    run.check(
        names[2],
        (|| {
            fake.stop();
            tmux.wait_for(&["disconnected", "no such socket"], Duration::from_secs(10))?;
            let back = Fake::serve(&socket)?;
            let screen = tmux.wait_for(&["live", "connected again"], Duration::from_secs(10));
            drop(back);
            screen.map(drop)
        })(),
    );
    run.check(names[3], small_terminal(&tmux));
    run.check(names[4], quits_on_q(&tmux, "STATE"));
}

/// `status --json`, `probe ready` and `watch` against [`Fake`], which
/// serves them as the protocol says.
fn commands_on_a_fake(run: &mut Run, dir: &Path) {
    let socket = dir.join("fake-commands").join("status.sock");
    if let Err(e) = std::fs::create_dir_all(socket.parent().unwrap_or(dir)) {
        return run.fail("the fake's directory", e.to_string());
    }
    let fake = match Fake::serve(&socket) {
        Ok(fake) => fake,
        Err(why) => return run.fail("the fake tree serves", why),
    };
    run.check(
        "status --json (fake tree): the document as the tree sent it",
        expect(st(&socket, &["status", "--json"]), 0, FAKE_DOC, "").map(drop),
    );
    run.check(
        "probe ready (fake tree): 0 when every node is up, held ones not counted",
        (|| {
            expect(st(&socket, &["probe", "ready"]), 0, "", "")?;
            fake.set_doc(FAKE_DOC.replace(
                r#""pid": 503, "state": "ready", "wanted": "up""#,
                r#""pid": null, "state": "stopped", "wanted": "down""#,
            ));
            expect(st(&socket, &["probe", "ready"]), 0, "", "").map(drop)
        })(),
    );
    run.check(
        "probe ready (fake tree): 1 with the nodes that are not up",
        {
            fake.set_doc(
                FAKE_DOC
                    .replace(r#""pid": 502, "state": "ready""#, r#""pid": null, "state": "restarting""#)
                    .replace(r#""pid": 501, "state": "running""#, r#""pid": 501, "state": "starting""#),
            );
            expect(
                st(&socket, &["probe", "ready"]),
                1,
                "",
                "supertrees: not ready: root/host (host) is starting, root/1 (supervisor) is restarting\n",
            )
            .map(drop)
        },
    );
    let event = r#"{"at": 1765130800123, "path": "root/1/0", "pid": 503, "kind": "exited", "text": "root/1/0 (pid 503): panicked: boom; restarting after 10ms"}"#;
    let watching = |json: bool| -> Result<Child, String> {
        let mut args = vec!["watch", "--socket", socket.to_str().unwrap_or_default()];
        if json {
            args.push("--json");
        }
        let before = fake.watchers();
        let child = command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        eventually(Duration::from_secs(5), || {
            if fake.watchers() > before {
                Ok(())
            } else {
                Err("watch never connected".to_owned())
            }
        })?;
        Ok(child)
    };
    let human = watching(false);
    let json = watching(true);
    let sent = fake
        .event(event)
        .and_then(|_| fake.event(r#"{"dropped": 2}"#));
    std::thread::sleep(Duration::from_millis(200));
    fake.stop();
    let finished = |child: Result<Child, String>| -> Result<(i32, String), String> {
        let mut child = child?;
        let mut out = child.stdout.take().ok_or("no stdout")?;
        let code = wait_exit(&mut child, Duration::from_secs(10))?;
        let mut text = String::new();
        out.read_to_string(&mut text).map_err(|e| e.to_string())?;
        Ok((code, text))
    };
    run.check(
        "watch (fake tree): one line per event, exit 0 when the tree closes",
        (|| {
            sent.clone()?;
            let (code, text) = finished(human)?;
            let want = "2025-12-07T18:06:40.123Z root/1/0 (pid 503): panicked: boom; restarting after 10ms\n\
                        (2 events missed: this watcher read too slowly)\n";
            if code == 0 && text == want {
                Ok(())
            } else {
                Err(format!("exit {code}, printed {text:?}"))
            }
        })(),
    );
    run.check(
        "watch --json (fake tree): the lines as the tree sent them",
        (|| {
            sent?;
            let (code, text) = finished(json)?;
            if code == 0 && text == format!("{event}\n{{\"dropped\": 2}}\n") {
                Ok(())
            } else {
                Err(format!("exit {code}, printed {text:?}"))
            }
        })(),
    );
}
