//! Second review of issue 20: attacks on the fixes of the first one
//! (`attack20`).
//!
//! Breaks (these fail on the code they were written against):
//!
//! * `attack20b_signal_pipe_zero`: a worker puts `/dev/zero` (with
//!   `dup2`) at the number of its host's signal self-pipe read end. The
//!   fix of `attack20_host_signal_pipe` renews the pipe when a read says
//!   "ended" (`/dev/null`) or fails, but `/dev/zero` always reads: the
//!   host's command reader loops in `SignalPipe::drain` for ever (a CPU
//!   spins) and never reads its channel again, so the worker is never run
//!   again (its restart is a command) and nothing reports it.
//! * `attack20b_executor_exit`: a worker ends its host's executor thread
//!   (the main thread, on Tokio's current-thread runtime) with the `exit`
//!   system call, which ends that thread only. The host's command reader
//!   runs on, so the process lives with its main thread a zombie; the
//!   watchdog (200 ms, `Limits::cpu(0.5)`) takes a process whose main
//!   thread ended for one that is exiting and looks at it again half a
//!   period on, for ever: the host that runs nothing is never reported
//!   hung, and its worker is never run again.
//! * `attack20b_unix_symlink_chain`: `Listen::unix(path)` where `path`
//!   goes through a root-owned symbolic link whose target goes through a
//!   link owned by uid 65534 in a sticky directory. `check_ancestors`
//!   checks the links on the path as written (the root's one passes) and
//!   the directories of the resolved path, but not the links met while
//!   resolving: the other user re-points its link and takes the clients.
//! * `attack20b_users_without_caps`: run as root without `CAP_SETUID`
//!   and `CAP_SETGID` (a container that drops them): `check_users` looks
//!   at the uid only, so `start()` accepts a `with_user(65534, 65534)`
//!   subtree whose supervisor then fails `setresgid` (EPERM) every time
//!   it is forked, until the root's intensity gives up (not
//!   `Error::Privilege`).
//! * `attack20b_open_files_entries`: `descriptors_needed` does not count
//!   the `cgroup.procs` descriptors a supervisor below `with_user` holds
//!   for the limited supervisors below it (one per hierarchy each): a
//!   `with_user` supervisor with `open_files(34)`, what `start()` says it
//!   needs, and 8 limited children (3 hierarchies: 24 descriptors) gets
//!   EMFILE making their channels. (The same tree with unlimited children
//!   runs.)
//!
//! Held (pass):
//!
//! * `attack20b_reach_more`: a worker of a limited subtree below a
//!   `with_user(65534, 65534)` supervisor tries, besides what
//!   `attack20_cgroup_escape` and `attack20_stop_mark` tried: to make the
//!   stop mark's read-only view writable (`mprotect`, `mremap` then
//!   `mprotect`, `remap_file_pages`, `/proc/self/mem`,
//!   `/proc/self/map_files`); to reach its supervisors' memory and
//!   descriptors (`/proc/<pid>/mem`, `process_vm_readv`, `PTRACE_SEIZE`,
//!   `/proc/<pid>/fd`, `pidfd_getfd`); and to move itself or change its
//!   groups by path (`tasks` and `cgroup.procs` of every group up to the
//!   hierarchy's root, `notify_on_release`, a sub-group in its leaf).
#![allow(unsafe_code)]

/// `attack20b_users_without_caps` runs as root without `CAP_SETUID` and
/// `CAP_SETGID` (a bounding set without them, through `setpriv`), as in a
/// container that drops them.
pub(crate) fn no_setuid_command(exe: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args([
        "--bounding-set",
        "-setuid,-setgid",
        "--inh-caps",
        "-setuid,-setgid",
    ])
    .arg(exe)
    .env(crate::SCENARIO_VAR, "attack20b_users_without_caps");
    cmd
}

pub(crate) mod scenario {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    use supertrees::{Intensity, Limits, Listen, RestartPolicy, Shutdown, Supertree};

    use crate::attack20::scenario::{
        broken_pipe_tree, first_run, pipe_breaker, quiet_idle, remove_marker, serve_genuine,
        sticky_and_private, take_fds, watched_under_quota, whoami,
    };
    use crate::observe::now_ms;
    use crate::scenario::{events, lenient, not_root, report, Life};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// `dup2(/dev/zero)` over descriptor `fd` (of pipe `inode`).
    fn zero_over(fd: i32, inode: &str) -> String {
        match std::fs::File::open("/dev/zero") {
            // SAFETY: dup2 on descriptor numbers; replacing one
            // the engine owns is the attack.
            Ok(zero) => match unsafe { nix::libc::dup2(zero.as_raw_fd(), fd) } {
                n if n < 0 => format!("dup2: {}", std::io::Error::last_os_error()),
                _ => format!("/dev/zero over fd {fd} ({inode})"),
            },
            Err(err) => format!("no /dev/zero: {err}"),
        }
    }

    /// On its first run: `dup2(/dev/zero)` over the read end of its host's
    /// signal self-pipe (the pipe both ends of which are in the host),
    /// then returns after 100 ms; every later run returns after 100 ms
    /// (its host restarts it). Restarted always.
    fn zero_over_signals() -> Life {
        let mut life = pipe_breaker("a20b", "zero", "signals", zero_over);
        life.shutdown = Shutdown::Timeout(ms(300));
        life
    }

    /// `root/0`: the worker that breaks its host's signal pipe, and a
    /// dynamic child spec; `root/1`: a worker that starts that child 600 ms
    /// in (a command to the broken host).
    pub(crate) fn signal_pipe_zero() {
        broken_pipe_tree("a20b-kid", true, as_nobody, zero_over_signals());
        remove_marker("a20b", "zero");
    }

    /// On its first run: ends the thread it runs on (the host's executor,
    /// its main thread on Tokio's current-thread runtime) with the `exit`
    /// system call, which ends that thread alone. Later runs wait.
    fn executor_ender() -> Life {
        let mut life = Life::new(|| {
            Box::pin(async {
                println!("start {} at {}", std::process::id(), now_ms());
                if first_run("a20b", "exit") {
                    tokio::time::sleep(ms(300)).await;
                    let main = nix::unistd::gettid().as_raw() == std::process::id() as i32;
                    println!("ending the executor thread (main: {main}) at {}", now_ms());
                    let _ = std::io::stdout().flush();
                    // SAFETY: SYS_exit ends the calling thread only; nothing
                    // of it runs again. That the host is left without its
                    // executor is the point.
                    unsafe { nix::libc::syscall(nix::libc::SYS_exit, 0) };
                }
                std::future::pending::<()>().await;
            })
        });
        life.restart = RestartPolicy::Always;
        life.shutdown = Shutdown::Timeout(ms(300));
        life
    }

    /// The user the attacking subtrees run as: 65534 when root.
    fn as_nobody(s: supertrees::Supervisor) -> supertrees::Supervisor {
        if nix::unistd::geteuid().is_root() {
            s.with_user(65534, 65534)
        } else {
            s
        }
    }

    /// `executor_ender` under `Limits::cpu(0.5)` and a 200 ms watchdog.
    pub(crate) fn executor_exit() {
        watched_under_quota(as_nobody, 0.5, executor_ender());
        remove_marker("a20b", "exit");
    }

    /// Run as root without `CAP_SETUID` and `CAP_SETGID` (see
    /// [`super::no_setuid_command`]): a `with_user(65534, 65534)` subtree,
    /// which no process of this tree may switch to.
    pub(crate) fn users_without_caps() {
        println!("euid {}", nix::unistd::geteuid());
        report(
            events(
                Supertree::new()
                    .with_intensity(Intensity::new(3, Duration::from_secs(1)))
                    .add_supervisor(|s| {
                        s.with_user(65534, 65534)
                            .with_intensity(lenient())
                            .add_worker(whoami())
                    }),
            )
            .start(),
        );
    }

    /// A `with_user(65534, 65534)` supervisor limited to the open files
    /// `start()` computes it needs (34: 16, and a channel for each of its
    /// 9 children), with 8 limited children (memory, processes, cpu: a
    /// cgroup in 3 hierarchies each), whose `cgroup.procs` descriptors it
    /// holds (24) to fork them into their groups: not counted.
    pub(crate) fn open_files_entries() {
        if not_root("switching users needs root") {
            return;
        }
        let whoami = |n: usize| {
            let mut life = Life::new(move || {
                Box::pin(async move {
                    println!("up {n}");
                    std::future::pending::<()>().await
                })
            });
            life.restart = RestartPolicy::Always;
            life
        };
        report(
            events(
                Supertree::new()
                    .with_intensity(Intensity::new(3, Duration::from_secs(1)))
                    .add_supervisor(|s| {
                        let mut s = s
                            .with_user(65534, 65534)
                            .with_limits(Limits::new().open_files(34))
                            .with_intensity(Intensity::new(3, Duration::from_secs(1)));
                        for n in 0..8 {
                            s = s.add_supervisor(move |c| {
                                c.with_limits(
                                    Limits::new().memory(256 << 20).processes(64).cpu(0.5),
                                )
                                .add_worker(whoami(n))
                            });
                        }
                        s
                    }),
            )
            .start(),
        );
    }

    /// The directories of `attack20b_unix_symlink_chain`.
    pub(crate) fn chain_base(sid: i32) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("supertrees-a20b-chain-{sid}"))
    }

    /// `<base>/root-link` (root's, in root's 0755 directory) →
    /// `<base>/sticky/app` (65534's, in a sticky 1777 directory) →
    /// `<base>/private` (root's, 0700); the listener at
    /// `<base>/root-link/s.sock`.
    pub(crate) fn unix_symlink_chain() {
        if not_root("only root can give a link away") {
            return;
        }
        let base = chain_base(std::process::id() as i32);
        let setup = || -> std::io::Result<std::path::PathBuf> {
            let (sticky, private) = sticky_and_private(&base)?;
            let theirs = sticky.join("app");
            std::os::unix::fs::symlink(&private, &theirs)?;
            std::os::unix::fs::lchown(&theirs, Some(65534), Some(65534))?;
            // Root's own link, in root's own directory, to the other's.
            let ours = base.join("root-link");
            std::os::unix::fs::symlink(&theirs, &ours)?;
            Ok(ours.join("s.sock"))
        };
        let path = match setup() {
            Ok(path) => path,
            Err(err) => return println!("setup failed: {err}"),
        };
        serve_genuine(&path);
        let _ = std::fs::remove_dir_all(&base);
    }

    /// The mappings of this process whose line contains `what`:
    /// `(start, end)`.
    fn mappings(what: &str) -> Vec<(usize, usize)> {
        std::fs::read_to_string("/proc/self/maps")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(what))
            .filter_map(|l| {
                let (a, b) = l.split_whitespace().next()?.split_once('-')?;
                Some((
                    usize::from_str_radix(a, 16).ok()?,
                    usize::from_str_radix(b, 16).ok()?,
                ))
            })
            .collect()
    }

    fn errno() -> String {
        std::io::Error::last_os_error().to_string()
    }

    /// Tries to make the stop mark's read-only view writable, or to write
    /// to it anyway: each attempt's outcome, `WROTE`/`WRITABLE` when it
    /// worked (nothing is stored through a view made writable).
    fn stop_mark_attempts() -> Vec<String> {
        use nix::libc;
        let mut out = Vec::new();
        let views = mappings("supertrees-stop");
        if views.is_empty() {
            out.push("no stop mark mapped".to_owned());
        }
        for (start, end) in views {
            let len = end - start;
            let addr = start as *mut libc::c_void;
            // SAFETY: raw calls on this process's own mapping of the mark;
            // on success (the defect) it is left as it is.
            unsafe {
                let r = libc::mprotect(addr, len, libc::PROT_READ | libc::PROT_WRITE);
                out.push(if r == 0 {
                    "mprotect WRITABLE".to_owned()
                } else {
                    format!("mprotect: {}", errno())
                });
                // Moved for sure: over a fresh placeholder page.
                let spot = libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_NONE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                );
                let moved = libc::mremap(
                    addr,
                    len,
                    len,
                    libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                    spot,
                );
                if moved == libc::MAP_FAILED {
                    out.push(format!("mremap: {}", errno()));
                } else {
                    let r = libc::mprotect(moved, len, libc::PROT_READ | libc::PROT_WRITE);
                    out.push(if r == 0 {
                        "mremap+mprotect WRITABLE".to_owned()
                    } else {
                        format!("mremap (moved) then mprotect: {}", errno())
                    });
                    // Back where the engine reads it.
                    let back = libc::mremap(
                        moved,
                        len,
                        len,
                        libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                        addr,
                    );
                    if back == libc::MAP_FAILED {
                        out.push(format!("mremap back: {}", errno()));
                    }
                }
                let r = libc::remap_file_pages(addr, len, 0, 0, 0);
                out.push(if r == 0 {
                    let w = libc::mprotect(addr, len, libc::PROT_READ | libc::PROT_WRITE);
                    if w == 0 {
                        "remap_file_pages+mprotect WRITABLE".to_owned()
                    } else {
                        format!("remap_file_pages ok, mprotect: {}", errno())
                    }
                } else {
                    format!("remap_file_pages: {}", errno())
                });
            }
            let map_file = format!("/proc/self/map_files/{start:x}-{end:x}");
            out.push(
                match std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&map_file)
                {
                    Ok(_) => "map_files open WRITABLE".to_owned(),
                    Err(err) => format!("map_files open: {err}"),
                },
            );
            // Its own host may be made dumpable again, so that it can open
            // its own /proc/self/mem.
            let _ = nix::sys::prctl::set_dumpable(true);
            out.push(
                match std::fs::OpenOptions::new()
                    .write(true)
                    .open("/proc/self/mem")
                {
                    Ok(mem) => {
                        use std::os::unix::fs::FileExt;
                        // Writes what is there (0: not set), to test the way.
                        match mem.write_at(&[0u8], start as u64) {
                            Ok(_) => "/proc/self/mem WROTE".to_owned(),
                            Err(err) => format!("/proc/self/mem write: {err}"),
                        }
                    }
                    Err(err) => format!("/proc/self/mem open: {err}"),
                },
            );
        }
        out
    }

    /// Tries to reach process `pid`'s memory and descriptors.
    fn reach(pid: i32) -> Vec<String> {
        use nix::libc;
        let mut out = Vec::new();
        out.push(match std::fs::File::open(format!("/proc/{pid}/mem")) {
            Ok(_) => format!("{pid} /proc mem OPENED"),
            Err(err) => format!("{pid} /proc mem: {err}"),
        });
        out.push(match std::fs::read_dir(format!("/proc/{pid}/fd")) {
            Ok(d) => format!("{pid} /proc fd LISTED {}", d.count()),
            Err(err) => format!("{pid} /proc fd: {err}"),
        });
        // SAFETY: raw calls on numbers and a local buffer.
        unsafe {
            let mut byte = 0u8;
            let local = libc::iovec {
                iov_base: (&mut byte as *mut u8).cast(),
                iov_len: 1,
            };
            // Any address: EPERM says the way is shut, EFAULT that it is open.
            let remote = libc::iovec {
                iov_base: 0x1000 as *mut libc::c_void,
                iov_len: 1,
            };
            let r = libc::process_vm_readv(pid, &local, 1, &remote, 1, 0);
            let e = std::io::Error::last_os_error();
            out.push(if r >= 0 || e.raw_os_error() == Some(libc::EFAULT) {
                format!("{pid} process_vm_readv OPEN ({e})")
            } else {
                format!("{pid} process_vm_readv: {e}")
            });
            let r = libc::ptrace(libc::PTRACE_SEIZE, pid, 0, 0);
            out.push(if r == 0 {
                libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0);
                format!("{pid} ptrace SEIZED")
            } else {
                format!("{pid} ptrace: {}", errno())
            });
            let (_, got) = take_fds(pid, 256, |_| {});
            out.push(if got > 0 {
                format!("{pid} pidfd_getfd TOOK {got}")
            } else {
                format!("{pid} pidfd_getfd took none ({})", errno())
            });
        }
        out
    }

    /// Tries to move itself, or change its groups, by path.
    fn cgroup_attempts() -> Vec<String> {
        let me = std::process::id().to_string();
        let mut out = Vec::new();
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        for line in own.lines() {
            let mut f = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let name = controllers.trim_start_matches("name=");
            let name = if name.is_empty() { "unified" } else { name };
            let here = std::path::Path::new("/sys/fs/cgroup")
                .join(name)
                .join(path.trim_start_matches('/'));
            if !here.is_dir() {
                continue;
            }
            // Every group from here up to the hierarchy's root, and each
            // one's other children (siblings of the path).
            let mut dirs: Vec<std::path::PathBuf> = Vec::new();
            for dir in here.ancestors() {
                if !dir.starts_with("/sys/fs/cgroup")
                    || dir == std::path::Path::new("/sys/fs/cgroup")
                {
                    break;
                }
                dirs.push(dir.to_owned());
                for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        dirs.push(e.path());
                    }
                }
            }
            dirs.sort();
            dirs.dedup();
            for dir in dirs {
                for file in ["cgroup.procs", "tasks"] {
                    let f = dir.join(file);
                    if f.exists() && std::fs::write(&f, &me).is_ok() {
                        out.push(format!("MOVED through {}", f.display()));
                    }
                }
                let n = dir.join("notify_on_release");
                if n.exists() && std::fs::write(&n, "1").is_ok() {
                    out.push(format!("WROTE {}", n.display()));
                }
            }
            let sub = here.join("a20b-sub");
            match std::fs::create_dir(&sub) {
                Ok(()) => {
                    out.push(format!("MADE {}", sub.display()));
                    let _ = std::fs::remove_dir(&sub);
                }
                Err(err) => out.push(format!("{name}: mkdir in own group: {err}")),
            }
        }
        if let Ok(agent) = std::fs::OpenOptions::new()
            .write(true)
            .open("/sys/fs/cgroup/memory/release_agent")
        {
            drop(agent);
            out.push("release_agent OPENED".to_owned());
        }
        out
    }

    /// The attacker of `attack20b_reach_more`.
    fn reacher() -> Life {
        let mut life = Life::new(|| {
            Box::pin(async {
                tokio::time::sleep(ms(300)).await;
                let uid = nix::unistd::getuid();
                let sup = nix::unistd::getppid().as_raw();
                let above = std::fs::read_to_string(format!("/proc/{sup}/stat"))
                    .ok()
                    .and_then(|s| {
                        let rest = s.get(s.rfind(')')? + 2..)?.to_owned();
                        rest.split_whitespace().nth(1)?.parse::<i32>().ok()
                    })
                    .unwrap_or(0);
                let mut lines = stop_mark_attempts();
                lines.extend(reach(sup));
                lines.extend(reach(above));
                lines.extend(cgroup_attempts());
                for line in &lines {
                    println!("reacher: {line}");
                }
                println!(
                    "reacher done: uid {uid}, supervisor {sup}, the one above {above}, {} attempts",
                    lines.len()
                );
                std::future::pending::<()>().await
            })
        });
        life.restart = RestartPolicy::Never;
        life
    }

    pub(crate) fn reach_more() {
        if not_root("switching users needs root") {
            return;
        }
        report(
            events(
                Supertree::new()
                    .with_listener("tcp", Listen::tcp("127.0.0.1:0".parse().expect("addr")))
                    .add_supervisor(|s| {
                        s.with_user(65534, 65534)
                            .add_supervisor(|s| {
                                s.with_limits(Limits::new().memory(64 << 20).processes(64))
                                    .add_worker(reacher())
                            })
                            .add_supervisor(|s| {
                                s.with_limits(Limits::new().memory(1 << 30))
                                    .add_worker(quiet_idle())
                            })
                    }),
            )
            .start(),
        );
    }
}

pub(crate) mod drive {
    use std::time::{Duration, Instant};

    use nix::sys::signal::Signal;

    use crate::attack20::drive::{impostor_swap, skipped, unix_serving};
    use crate::drive::{expect_exit_code, wait_any, wait_line};
    use crate::runner::Run;

    pub(crate) fn signal_pipe_zero(run: &mut Run) -> Result<(), String> {
        let broke = wait_line(run, "broke signals")?;
        wait_line(run, "starting kid")?;
        let began = Instant::now();
        let mut kid = None;
        while began.elapsed() < Duration::from_secs(2) && kid.is_none() {
            kid = run
                .stdout()
                .into_iter()
                .find(|l| l.starts_with("kid runs") || l.starts_with("start_child failed"));
            std::thread::sleep(Duration::from_millis(20));
        }
        let spin = crate::boundaries::drive::spinning(run);
        let stop = Instant::now();
        run.signal_root(Signal::SIGTERM)?;
        let stopped = expect_exit_code(run, 0);
        let took = stop.elapsed();
        run.note(broke);
        run.note(format!("the tree stopped in {took:?}"));
        let mut broken = Vec::new();
        if !spin.is_empty() {
            broken.push(format!(
                "processes spinning once a command reached the host: {spin:?}"
            ));
        }
        match kid {
            Some(line) => run.note(line),
            None => broken.push(
                "the dynamic child started 600 ms in (a command to the host) never ran, and start_child never returned, in 2 s"
                    .to_owned(),
            ),
        }
        if let Err(err) = stopped {
            broken.push(format!("the tree's stop: {err}"));
        }
        if broken.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "after a worker put /dev/zero (always readable) over its host's signal pipe read end: {}",
                broken.join("; ")
            ))
        }
    }

    pub(crate) fn executor_exit(run: &mut Run) -> Result<(), String> {
        let first = wait_any(
            run,
            "the executor's end, or a skip",
            &["ending the executor", "skipped: "],
        )?;
        if skipped(run)? {
            return Ok(());
        }
        let at = crate::drive::number_after(&first, ' ')?;
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut hung = None;
        while Instant::now() < deadline && hung.is_none() {
            hung = run.stdout().into_iter().find(|l| {
                l.starts_with("event ")
                    && (l.contains("hung")
                        || (l.starts_with("event root/0/host") && !l.contains("started")))
            });
            std::thread::sleep(Duration::from_millis(20));
        }
        let starts = run.count(|l| l.starts_with("start "));
        run.signal_root(Signal::SIGTERM)?;
        let _ = expect_exit_code(run, 0);
        run.note(first.clone());
        match hung {
            Some(line) => {
                let t = crate::drive::number_after(&line, ' ')?;
                run.note(format!("{line} ({} ms after)", t.saturating_sub(at)));
                if t.saturating_sub(at) > 400 {
                    return Err(format!(
                        "the host was reported {} ms after its executor thread ended (at most 400)",
                        t - at
                    ));
                }
                Ok(())
            }
            None => Err(format!(
                "a worker host (200 ms watchdog, Limits::cpu(0.5)) whose executor thread ended by itself (`{}`) while its command reader ran on was never reported hung (nor its end seen) in 3 s, and its worker ran {starts} time(s): the watchdog takes a process whose main thread ended for one that is exiting, and looks again every half period for ever",
                first.trim()
            )),
        }
    }

    pub(crate) fn unix_symlink_chain(run: &mut Run) -> Result<(), String> {
        if !unix_serving(run)? {
            return Ok(());
        }
        let base = super::scenario::chain_base(run.pid());
        let path = base.join("root-link/s.sock");
        let swapped = impostor_swap(&base, path);
        run.signal_root(Signal::SIGTERM)?;
        expect_exit_code(run, 0)?;
        Err(format!(
            "start() accepted Listen::unix at <base>/root-link/s.sock, where root-link (root's) points to sticky/app, a link owned by uid 65534 in a sticky directory; after that user re-pointed its link, a client of the listener's path read {swapped:?}"
        ))
    }

    /// `start()` must refuse a tree that switches users when this process
    /// may not (no `CAP_SETUID`), as it refuses one run by another user
    /// than root; not accept it and fail its setup for ever.
    pub(crate) fn users_without_caps(run: &mut Run) -> Result<(), String> {
        let first = wait_any(
            run,
            "start()'s answer, or a worker",
            &["returned ", "whoami "],
        )?;
        if first.starts_with("whoami ") {
            run.signal_root(Signal::SIGTERM)?;
            let _ = expect_exit_code(run, 0);
            run.note(first);
            return Ok(());
        }
        let _ = expect_exit_code(run, 0);
        let setup_failures =
            run.stderr_count(|l| l.contains("could not switch to the supervisor's user"));
        run.note(first.clone());
        if first.starts_with("returned Err Privilege") {
            return Ok(());
        }
        Err(format!(
            "as root without CAP_SETUID/CAP_SETGID, start() accepted a with_user(65534, 65534) subtree that could never run: it failed to switch {setup_failures} time(s), and start() ended with `{first}` (not Error::Privilege)"
        ))
    }

    pub(crate) fn open_files_entries(run: &mut Run) -> Result<(), String> {
        let first = run.wait_for("start()'s answer, or all 8 up", |run| {
            if run.count(|l| l.starts_with("up ")) >= 8 {
                return Ok("all 8 up".to_owned());
            }
            run.stdout()
                .into_iter()
                .find(|l| l.starts_with("returned ") || l.starts_with("skipped: "))
                .ok_or_else(|| "not yet".to_owned())
        })?;
        if skipped(run)? {
            return Ok(());
        }
        if first == "all 8 up" {
            run.signal_root(Signal::SIGTERM)?;
            let _ = expect_exit_code(run, 0);
            run.note(first);
            return Ok(());
        }
        let _ = expect_exit_code(run, 0);
        run.note(first.clone());
        if first.contains("UnenforceableLimit") {
            return Ok(());
        }
        let ups = run.count(|l| l.starts_with("up "));
        let errors: Vec<String> = run
            .stdout()
            .into_iter()
            .filter(|l| l.contains("could not") || l.contains("failed"))
            .take(2)
            .collect();
        Err(format!(
            "start() accepted open_files(34) for a with_user supervisor with 8 limited children, which could not run them ({ups} of 8 up): `{first}`; {errors:?}"
        ))
    }

    pub(crate) fn reach_more(run: &mut Run) -> Result<(), String> {
        let first = wait_any(
            run,
            "the attempts, or a skip",
            &["reacher done", "skipped: "],
        )?;
        if skipped(run)? {
            return Ok(());
        }
        run.signal_root(Signal::SIGTERM)?;
        let _ = expect_exit_code(run, 0);
        run.note(first);
        let lines: Vec<String> = run
            .stdout()
            .into_iter()
            .filter(|l| l.starts_with("reacher: "))
            .collect();
        let worked: Vec<&String> = lines
            .iter()
            .filter(|l| {
                [
                    "WRITABLE", "WROTE", "OPENED", "LISTED", "OPEN (", "SEIZED", "TOOK", "MOVED",
                    "MADE",
                ]
                .iter()
                .any(|w| l.contains(w))
            })
            .collect();
        for line in &lines {
            run.note(line.clone());
        }
        if worked.is_empty() {
            Ok(())
        } else {
            Err(format!("a worker of uid 65534 got through: {worked:?}"))
        }
    }
}
