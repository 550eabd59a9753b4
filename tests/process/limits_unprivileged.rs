//! Limits without cgroups: the scenarios run as another user (nobody,
//! through `setpriv`), who can make no cgroup, so only rlimits are left.
//! A limit they can not enforce for the subtree alone (`processes`, `cpu`)
//! makes `start()` fail naming the supervisor and the limit, before
//! anything is forked; `memory` is `RLIMIT_AS` on each process, and a
//! process that dies of it is reported `out of memory`, while one that
//! aborts for another reason is not (with `RUST_BACKTRACE` off, an explicit
//! `abort()`; on, a panic that aborts).
//!
//! Run as root, the runner wraps these scenarios in `setpriv --reuid 65534
//! --regid 65534 --clear-groups` (see [`as_nobody`]); run as another user,
//! it runs them as they are. They skip, saying why, where neither works.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::SCENARIO_VAR;

/// Why the runner could not run a scenario as nobody (set by [`as_nobody`]
/// when it could not, for the scenario to say so).
const SKIP_VAR: &str = "SUPERTREES_UNPRIVILEGED_SKIP";

/// The user and group the scenarios run as when the runner is root.
const NOBODY: &str = "65534";

/// Scenario `name` of this binary (`exe`), as nobody when the runner is
/// root and `setpriv` can run this binary as nobody (it and its directories
/// must be readable and searchable by others); else as it is, with
/// [`SKIP_VAR`] saying why not.
pub(crate) fn as_nobody(exe: &Path, name: &str) -> Command {
    let plain = |why: Option<String>| {
        let mut cmd = Command::new(exe);
        cmd.env(SCENARIO_VAR, name);
        if let Some(why) = why {
            cmd.env(SKIP_VAR, why);
        }
        cmd
    };
    if !nix::unistd::geteuid().is_root() {
        return plain(None);
    }
    let setpriv = |cmd: &mut Command| {
        cmd.args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"]);
    };
    // Can nobody run this binary at all? `--list` only prints.
    let mut probe = Command::new("setpriv");
    setpriv(&mut probe);
    let probed = probe
        .arg(exe)
        .arg("--list")
        .env_remove(SCENARIO_VAR)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match probed {
        Ok(status) if status.success() => {
            let mut cmd = Command::new("setpriv");
            setpriv(&mut cmd);
            cmd.arg(exe).env(SCENARIO_VAR, name);
            cmd
        }
        Ok(status) => plain(Some(format!(
            "setpriv could not run {} as uid {NOBODY} ({status}): is it, and every directory \
             above it, readable and searchable by others?",
            exe.display()
        ))),
        Err(err) => plain(Some(format!("can not run setpriv: {err}"))),
    }
}

pub(crate) fn refused_command(exe: &Path) -> Command {
    as_nobody(exe, "unprivileged_limits_refused")
}

/// With `RUST_BACKTRACE` off: `errno` tells an allocation that failed.
pub(crate) fn oom_command(exe: &Path) -> Command {
    let mut cmd = as_nobody(exe, "unprivileged_limits_oom");
    cmd.env_remove("RUST_BACKTRACE");
    cmd
}

/// With `RUST_BACKTRACE` on: the backtrace printed before the abort
/// changes `errno`, and a panic that aborts is what is told apart.
pub(crate) fn oom_backtrace_command(exe: &Path) -> Command {
    let mut cmd = as_nobody(exe, "panic_unprivileged_limits_oom_backtrace");
    cmd.env("RUST_BACKTRACE", "1");
    cmd
}

pub(crate) mod scenario {
    use std::time::Duration;

    use supertrees::{Limits, RestartPolicy, Supertree};

    use super::SKIP_VAR;
    use crate::observe::test_dir;
    use crate::scenario::{report, Life};

    /// Whether this process runs as a user who can make no cgroup; if not,
    /// says it skips, and why.
    fn unprivileged() -> bool {
        if nix::unistd::geteuid().is_root() {
            let why = std::env::var(SKIP_VAR).unwrap_or_else(|_| "it runs as root".to_owned());
            println!("skipped: not run as another user: {why}");
            return false;
        }
        if let Some(dir) = writable_cgroup() {
            println!("skipped: this user may make cgroups in {dir}");
            return false;
        }
        true
    }

    /// A cgroup directory of this process that it may write to (a
    /// delegated cgroup), if any.
    fn writable_cgroup() -> Option<String> {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        own.lines()
            .filter_map(|line| {
                let mut parts = line.splitn(3, ':');
                let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
                let mount = match controllers {
                    "" => "/sys/fs/cgroup".to_owned(),
                    c => format!("/sys/fs/cgroup/{}", c.split(',').next()?),
                };
                Some(format!("{mount}{path}"))
            })
            .find(|dir| nix::unistd::access(dir.as_str(), nix::unistd::AccessFlags::W_OK).is_ok())
    }

    /// Prints `worker ran`: it never should.
    fn probe() -> Life {
        Life::new(|| Box::pin(async { println!("worker ran") }))
    }

    /// Trees with a limit rlimits can not enforce for the subtree alone,
    /// one after the other: each `start()` must fail before forking.
    pub(crate) fn refused() {
        if !unprivileged() {
            return;
        }
        type Build = fn() -> Supertree;
        let trees: [(&str, Build); 3] = [
            ("processes", || {
                Supertree::new().add_supervisor(|s| {
                    s.with_limits(Limits::new().processes(4))
                        .add_worker(probe())
                })
            }),
            ("cpu", || {
                Supertree::new().add_supervisor(|s| {
                    s.with_limits(Limits::new().memory(1 << 30).open_files(64).cpu(0.5))
                        .add_worker(probe())
                })
            }),
            ("nested processes", || {
                Supertree::new().add_worker(probe()).add_supervisor(|s| {
                    s.with_limits(Limits::new().memory(1 << 30))
                        .add_worker(probe())
                        .add_supervisor(|s| {
                            s.with_limits(Limits::new().processes(64))
                                .add_worker(probe())
                        })
                })
            }),
        ];
        for (what, tree) in trees {
            println!("tree limiting {what}");
            report(tree().start());
        }
    }

    /// The memory every limited process may map: `RLIMIT_AS`, which counts
    /// the address space (the test binary, its threads' stacks, the
    /// allocator's arenas).
    pub(crate) const MEMORY: u64 = 512 << 20;

    /// Panics again while a panic unwinds through it: Rust aborts.
    struct PanicsAgain;

    impl Drop for PanicsAgain {
        fn drop(&mut self) {
            if std::thread::panicking() {
                panic!("panicking again while unwinding");
            }
        }
    }

    /// A subtree limited in memory whose worker leaks 16 MiB every 5 ms,
    /// and one whose worker aborts once for another reason than memory:
    /// with `RUST_BACKTRACE` off, an explicit `abort()`; on, a panic while
    /// panicking (an explicit abort would read as out of memory then).
    pub(crate) fn oom() {
        if !unprivileged() {
            return;
        }
        let mut leak = Life::new(|| {
            Box::pin(async {
                use nix::sys::resource::{getrlimit, Resource};
                let rlimit = |r| getrlimit(r).map_or((0, 0), |(s, h)| (s, h));
                println!(
                    "leaker started in {} nofile {:?} as {:?}",
                    std::process::id(),
                    rlimit(Resource::RLIMIT_NOFILE),
                    rlimit(Resource::RLIMIT_AS)
                );
                let mut kept: Vec<Vec<u8>> = Vec::new();
                loop {
                    // Touched, so that it is really in use.
                    kept.push(vec![1u8; 16 << 20]);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        });
        leak.restart = RestartPolicy::Always;
        // In the scenario's directory, which the runner removes.
        let dir = test_dir();
        if let Err(err) = std::fs::create_dir_all(&dir) {
            println!("skipped: can not make {}: {err}", dir.display());
            return;
        }
        let marker = dir.join("aborted");
        let mut abort = Life::new({
            move || {
                let marker = marker.clone();
                Box::pin(async move {
                    println!("aborter started in {}", std::process::id());
                    if std::fs::File::create_new(&marker).is_ok() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
                            let _again = PanicsAgain;
                            panic!("a panic that unwinds");
                        }
                        std::process::abort();
                    }
                    std::future::pending::<()>().await;
                })
            }
        });
        abort.restart = RestartPolicy::Always;
        let limits = Limits::new().memory(MEMORY).open_files(64);
        report(
            Supertree::new()
                .on_event(|event| println!("event {event}"))
                .add_supervisor(|s| s.with_limits(limits).add_worker(leak))
                .add_supervisor(|s| s.with_limits(limits).add_worker(abort))
                .start(),
        );
    }
}

pub(crate) mod drive {
    use nix::sys::signal::Signal;

    use crate::drive::{expect_exit_code, expect_prefix_once};
    use crate::runner::Run;

    /// Whether the scenario skipped (then notes why, and checks its exit).
    fn skipped(run: &mut Run, first: &str) -> Result<bool, String> {
        if let Some(why) = first.strip_prefix("skipped: ") {
            let why = why.to_owned();
            expect_exit_code(run, 0)?;
            run.note(format!("skipped: {why}"));
            return Ok(true);
        }
        Ok(false)
    }

    /// Waits for the first line starting with one of `prefixes`.
    fn first_of(run: &mut Run, prefixes: &[&str]) -> Result<String, String> {
        run.wait_for("the scenario's first line", |run| {
            run.stdout()
                .into_iter()
                .find(|l| prefixes.iter().any(|p| l.starts_with(p)))
                .ok_or_else(|| format!("no line starting with one of {prefixes:?} yet"))
        })
    }

    pub(crate) fn refused(run: &mut Run) -> Result<(), String> {
        let first = first_of(run, &["skipped: ", "tree limiting "])?;
        if skipped(run, &first)? {
            return Ok(());
        }
        // Each tree fails at once; a tree that started instead would never
        // return (its host can not fork under RLIMIT_NPROC, or it runs).
        for (path, field) in [
            ("root/0", "processes"),
            ("root/0", "cpu"),
            ("root/1/1", "processes"),
        ] {
            let expected =
                format!("returned Err UnenforceableLimit {{ path: \"{path}\", field: \"{field}\"");
            run.wait_for(
                &format!("start() to refuse the {field} limit of {path}"),
                |run| match run.count(|l| l.starts_with(&expected)) {
                    1 => Ok(()),
                    n => Err(format!("{n} lines starting with {expected:?}")),
                },
            )?;
        }
        expect_exit_code(run, 0)?;
        let said = expect_prefix_once(
            run,
            "returned Err UnenforceableLimit { path: \"root/0\", field: \"processes\"",
        )?;
        if !said.contains("RLIMIT_NPROC counts every process of the user") {
            return Err(format!("the error does not say why: {said}"));
        }
        let forked = run.stderr_count(|l| {
            l.contains("child supervisor started")
                || l.contains("worker host started")
                || l.contains("fork failed")
        });
        if forked > 0 || run.count(|l| l == "worker ran") > 0 {
            return Err(format!(
                "something was forked or ran: {forked} log lines of forks"
            ));
        }
        run.note("processes and cpu without cgroups: start() refused them, naming the supervisor, before forking".to_owned());
        Ok(())
    }

    pub(crate) fn oom(run: &mut Run) -> Result<(), String> {
        let first = first_of(run, &["skipped: ", "leaker started"])?;
        if skipped(run, &first)? {
            return Ok(());
        }
        let limit = super::scenario::MEMORY;
        let rlimits = format!("nofile (64, 64) as ({limit}, {limit})");
        if !first.ends_with(&rlimits) {
            return Err(format!("the leaker's rlimits are not {rlimits}: {first}"));
        }
        let oom = "event root/0/0: out of memory";
        run.wait_for("two ends of the leaker as out of memory", |run| {
            match run.count(|l| l.starts_with(oom)) {
                n if n >= 2 => Ok(()),
                n => {
                    let ends: Vec<String> = run
                        .stdout()
                        .into_iter()
                        .filter(|l| l.starts_with("event root/0/0: "))
                        .collect();
                    let last = &ends[ends.len().saturating_sub(3)..];
                    Err(format!("{n} so far; its last ends: {last:?}"))
                }
            }
        })?;
        run.wait_for("the third start of the leaker", |run| {
            match run.count(|l| l.starts_with("leaker started")) {
                n if n >= 3 => Ok(()),
                n => Err(format!("{n} starts so far")),
            }
        })?;
        let hosts = run
            .count(|l| l.starts_with("event root/0/host (pid ") && l.contains(": out of memory"));
        if hosts < 2 {
            return Err(format!(
                "expected the host's end as `out of memory` twice, saw {hosts}"
            ));
        }
        // The other subtree's abort is not taken for one of memory, nor is
        // a SIGABRT another process sends.
        let aborted =
            |run: &Run| run.count(|l| l.starts_with("event root/1/0: killed by signal SIGABRT"));
        let second = run.wait_for("the aborter's abort and its second start", |run| {
            let starts: Vec<String> = run
                .stdout()
                .into_iter()
                .filter(|l| l.starts_with("aborter started in "))
                .collect();
            match (aborted(run), starts.as_slice()) {
                (1, [_, second]) => Ok(second.clone()),
                (n, starts) => Err(format!("{n} aborts, {} starts so far", starts.len())),
            }
        })?;
        let host: i32 = second["aborter started in ".len()..]
            .parse()
            .map_err(|_| format!("no pid in {second:?}"))?;
        run.signal(host, Signal::SIGABRT)?;
        run.wait_for(
            "the SIGABRT sent to the aborter's host",
            |run| match aborted(run) {
                2 => Ok(()),
                n => Err(format!("{n} aborts so far")),
            },
        )?;
        let misread = run.count(|l| l.starts_with("event root/1/0: out of memory"));
        if misread != 0 {
            return Err(format!(
                "the aborter's ends were taken {misread} time(s) for `out of memory`"
            ));
        }
        if run.stderr_count(|l| l.contains("memory allocation of")) < 2 {
            return Err("no `memory allocation of N bytes failed` on stderr".to_owned());
        }
        run.signal_root(Signal::SIGTERM)?;
        expect_exit_code(run, 0)?;
        expect_prefix_once(run, "returned Ok")?;
        run.note(format!(
            "RLIMIT_AS {} MiB: the leaker's ends reported out of memory; an abort of another \
             kind, and a SIGABRT sent by the runner, as SIGABRT",
            limit >> 20
        ));
        Ok(())
    }
}
